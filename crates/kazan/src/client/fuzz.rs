//! Fuzz target for error answers: arbitrary bodies (raw bytes, HTML, JSON, `metav1.Status` with
//! arbitrary fields, gzip whole, cut or corrupt) under arbitrary content types, encodings and
//! `Retry-After` values, through the same steps as a non-2xx answer (bounded read, gunzip, Status
//! decoding, `Display`).
//!
//! Properties: nothing panics; the decoded body never exceeds the read limit; a Status body is
//! recognised and its fields kept; a raw body is kept lossily within its limit; `Retry-After`
//! follows the header, then the Status details; and the error displays on one line of bounded
//! length. `PROPTEST_CASES=N` runs more cases; the corpus in `tests/corpus/error_body/` is replayed.

use std::{io::Write as _, path::PathBuf, time::Duration};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, header};
use kazan_test_support::fuzz_config;
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_json::{Value, json};

use super::response::{MAX_ERROR_BODY, MAX_KEPT_ERROR_BODY, api_error, decode_error_body};
use crate::Error;

const URL: &str = "https://127.0.0.1:6443/api/v1/namespaces/default/pods/web-0";

/// The most a displayed error may be, in characters, beyond the method and URL.
const DISPLAY_BOUND: usize = 1200;

/// The headers of an error answer.
#[derive(Debug, Clone)]
struct Headers {
    content_type: Option<String>,
    content_encoding: Option<String>,
    retry_after: Option<String>,
}

impl Headers {
    fn map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        let mut put = |name, value: &Option<String>| {
            if let Some(v) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
                map.insert(name, v);
            }
        };
        put(header::CONTENT_TYPE, &self.content_type);
        put(header::CONTENT_ENCODING, &self.content_encoding);
        put(header::RETRY_AFTER, &self.retry_after);
        map
    }

    fn gzip(&self) -> bool {
        self.content_encoding
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("gzip") && HeaderValue::from_str(v).is_ok())
    }
}

fn arb_headers() -> impl Strategy<Value = Headers> {
    let content_type = prop::option::of(prop_oneof![
        Just("application/json".to_string()),
        Just("text/html; charset=utf-8".to_string()),
        Just("text/plain".to_string()),
        "[ -~]{0,40}",
    ]);
    let content_encoding = prop::option::of(prop_oneof![
        3 => Just("gzip".to_string()),
        1 => Just(" GZIP ".to_string()),
        1 => Just("identity".to_string()),
        1 => "[ -~]{0,10}",
    ]);
    let retry_after = prop::option::of(prop_oneof![
        (0u64..100_000).prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!(" {n} ")),
        Just("18446744073709551616".to_string()),
        Just("-1".to_string()),
        Just("Wed, 21 Oct 2015 07:28:00 GMT".to_string()),
        "[ -~]{0,12}",
    ]);
    (content_type, content_encoding, retry_after).prop_map(|(content_type, content_encoding, retry_after)| {
        Headers {
            content_type,
            content_encoding,
            retry_after,
        }
    })
}

/// Text with newlines, tabs, control characters, non-ASCII, and sometimes a lot of it.
fn arb_message() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<String>(),
        2 => "[a-z \\n\\t\\r\\x00-\\x1f\\u{85}\\u{2028}]{0,80}",
        1 => ("[a-z ]{1,8}", 100usize..3000).prop_map(|(s, n)| s.repeat(n)),
    ]
}

/// A `metav1.Status`, as a server writes it, with arbitrary values.
fn arb_status() -> impl Strategy<Value = Value> {
    (
        arb_message(),
        prop::option::of("[A-Za-z\\n ]{0,80}"),
        prop::option::of(any::<i32>()),
        prop::option::of(prop_oneof![any::<i32>().prop_map(Value::from), Just(json!("3")), Just(Value::Null)]),
    )
        .prop_map(|(message, reason, code, retry)| {
            let mut status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message});
            if let Some(reason) = reason {
                status["reason"] = reason.into();
            }
            if let Some(code) = code {
                status["code"] = code.into();
            }
            if let Some(retry) = retry {
                status["details"] = json!({"retryAfterSeconds": retry});
            }
            status
        })
}

/// A body, and the Status in it when it is one that must decode.
fn arb_body() -> impl Strategy<Value = (Vec<u8>, Option<Value>)> {
    prop_oneof![
        3 => arb_status().prop_map(|s| {
            let decodes = s["details"]["retryAfterSeconds"].is_i64() || s["details"].is_null();
            (s.to_string().into_bytes(), decodes.then_some(s))
        }),
        2 => prop::collection::vec(any::<u8>(), 0..2048).prop_map(|b| (b, None)),
        1 => (arb_message(), 0usize..3).prop_map(|(m, repeat)| {
            (format!("<html><body><h1>502 Bad Gateway</h1>{}</body></html>", m.repeat(repeat)).into_bytes(), None)
        }),
        1 => arb_status().prop_flat_map(|s| {
            let text = s.to_string();
            (0..text.len()).prop_map(move |cut| (text.as_bytes()[..cut].to_vec(), None))
        }),
        1 => Just((br#"{"kind":"Pod","metadata":{"name":"x"}}"#.to_vec(), None)),
        1 => (100usize..200_000).prop_map(|n| (vec![b'x'; n], None)),
    ]
}

/// How the body is compressed when the answer says gzip.
#[derive(Debug, Clone, Copy)]
enum Gzip {
    Whole,
    Cut(usize),
    FlipByte(usize),
    NotActually,
}

fn arb_gzip() -> impl Strategy<Value = Gzip> {
    prop_oneof![
        4 => Just(Gzip::Whole),
        1 => any::<usize>().prop_map(Gzip::Cut),
        1 => any::<usize>().prop_map(Gzip::FlipByte),
        1 => Just(Gzip::NotActually),
    ]
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn method_of(method: &str) -> Method {
    Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET)
}

/// Runs one answer through the error path and checks every property. `status` is the Status the
/// body must decode to, if it is one.
fn check_answer(
    method: &Method,
    code: u16,
    headers: &Headers,
    wire: &[u8],
    status: Option<&Value>,
) -> Result<(), TestCaseError> {
    let map = headers.map();
    let decoded = decode_error_body(Bytes::copy_from_slice(wire), &map);
    prop_assert!(decoded.len() <= MAX_ERROR_BODY, "{} bytes decoded", decoded.len());
    let e = api_error(method, URL, code, &map, &decoded);

    prop_assert_eq!(
        e.status.is_some(),
        e.body.is_none(),
        "a Status or a raw body, never both"
    );
    if let Some(expected) = status {
        let got = e
            .status
            .as_ref()
            .ok_or_else(|| TestCaseError::fail(format!("Status not recognised: {expected}")))?;
        prop_assert_eq!(got.message.as_deref(), expected["message"].as_str());
        prop_assert_eq!(got.reason.as_deref(), expected["reason"].as_str());
        prop_assert_eq!(got.code.map(i64::from), expected["code"].as_i64());
    }
    if let Some(body) = &e.body {
        prop_assert!(
            body.chars().count() <= MAX_KEPT_ERROR_BODY + "…[truncated]".chars().count(),
            "kept {} characters",
            body.chars().count()
        );
    }

    // Retry-After: the header in whole seconds, else the Status's positive retryAfterSeconds.
    let from_header = map
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let from_status = e
        .status
        .as_ref()
        .and_then(|s| s.details.as_ref())
        .and_then(|d| d.retry_after_seconds)
        .filter(|s| *s > 0)
        .and_then(|s| u64::try_from(s).ok());
    prop_assert_eq!(
        e.retry_after,
        from_header.or(from_status).map(Duration::from_secs)
    );

    // Displayed on one line, bounded, the same through `Error`.
    let shown = e.to_string();
    prop_assert!(!shown.contains(['\n', '\r']), "not one line: {:?}", shown);
    let bound = method.as_str().len() + URL.len() + DISPLAY_BOUND;
    prop_assert!(
        shown.chars().count() <= bound,
        "{} characters",
        shown.chars().count()
    );
    let start = format!("{method} {URL} answered {code}");
    prop_assert!(shown.starts_with(&start), "{}", shown);
    prop_assert_eq!(Error::Api(Box::new(e)).to_string(), shown);
    Ok(())
}

/// Compresses (or damages) `body` when the headers say gzip.
fn on_the_wire(body: &[u8], headers: &Headers, how: Gzip) -> Result<(Vec<u8>, bool), TestCaseError> {
    if !headers.gzip() {
        return Ok((body.to_vec(), true));
    }
    let compressed = gzip(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(match how {
        Gzip::Whole => (compressed, true),
        Gzip::Cut(at) => (compressed[..at % compressed.len()].to_vec(), false),
        Gzip::FlipByte(at) => {
            let mut damaged = compressed;
            let i = at % damaged.len();
            damaged[i] ^= 0x55;
            (damaged, false)
        }
        Gzip::NotActually => (body.to_vec(), false),
    })
}

proptest! {
    #![proptest_config(fuzz_config(512))]

    /// Any answer: typed error, never a panic, one bounded line.
    #[test]
    fn fuzz_error_body_any_answer(
        method in prop::sample::select(vec!["GET", "POST", "PATCH", "DELETE", "PUT", "X-CUSTOM"]),
        code in any::<u16>(),
        headers in arb_headers(),
        (body, status) in arb_body(),
        how in arb_gzip(),
    ) {
        let (wire, intact) = on_the_wire(&body, &headers, how)?;
        // Only a whole body small enough to be read whole must give its Status back.
        let status = status.filter(|_| intact && body.len() <= MAX_ERROR_BODY && wire.len() <= MAX_ERROR_BODY);
        check_answer(&method_of(method), code, &headers, &wire, status.as_ref())?;
    }

    /// A gzip bomb (a small body that expands far past the limit) is cut at the limit.
    #[test]
    fn fuzz_error_body_gzip_bomb(size in MAX_ERROR_BODY..(16 * MAX_ERROR_BODY), byte in any::<u8>()) {
        let headers = Headers { content_type: None, content_encoding: Some("gzip".into()), retry_after: None };
        let wire = gzip(&vec![byte; size]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_answer(&Method::GET, 500, &headers, &wire, None)?;
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/error_body")
}

/// Every file of `tests/corpus/error_body/` as the body of an answer, under several headers:
/// plain, JSON, HTML, gzip-encoded (files ending `.gz` are sent as they are, others compressed
/// first), and with odd `Retry-After` values.
#[test]
fn fuzz_error_body_corpus_replays() -> Result<(), Box<dyn std::error::Error>> {
    let mut replayed = 0;
    for entry in std::fs::read_dir(corpus_dir())? {
        let path = entry?.path();
        let body = std::fs::read(&path)?;
        let precompressed = path.extension().is_some_and(|e| e == "gz");
        for (content_type, content_encoding, retry_after) in [
            (None, None, None),
            (Some("application/json"), None, Some("7")),
            (Some("text/html"), None, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            (Some("application/json"), Some("gzip"), None),
            (None, Some("identity"), Some("99999999999999999999")),
        ] {
            let headers = Headers {
                content_type: content_type.map(str::to_string),
                content_encoding: content_encoding.map(str::to_string),
                retry_after: retry_after.map(str::to_string),
            };
            let wire = if headers.gzip() && !precompressed {
                gzip(&body)?
            } else {
                body.clone()
            };
            for code in [400, 404, 410, 429, 500, 503, 0, 999] {
                check_answer(&Method::GET, code, &headers, &wire, None)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        replayed += 1;
    }
    assert!(replayed >= 8, "only {replayed} corpus files");
    Ok(())
}
