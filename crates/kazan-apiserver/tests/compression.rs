//! gzip of large answers (issue 19, row 16), as the real server's response writers do it.

use crate::common;

use std::io::Read;

use common::*;
use flate2::read::GzDecoder;
use kazan_apiserver::ApiServer;
use serde_json::json;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn get_with(server: &ApiServer, path: &str, encoding: &str) -> TestResult<HttpResponse> {
    request(
        server.addr(),
        "GET",
        path,
        &[("Accept", "application/json"), ("Accept-Encoding", encoding)],
        None,
    )
    .await
}

fn gunzip(bytes: &[u8]) -> TestResult<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out)?;
    Ok(out)
}

/// Follows apiserver `pkg/endpoints/handlers/responsewriters/writers.go` (`SerializeObject`'s
/// `deferredResponseWriter`: gzip with `Content-Encoding` and `Vary: Accept-Encoding` once the
/// answer passes `defaultGzipThresholdBytes`, 128 KiB, if `responseContentEncodingSupported`
/// finds the token `gzip`) and `pkg/endpoints/handlers/watch.go` (watches are written as they
/// are).
#[tokio::test]
async fn answers_over_128_kib_are_gzipped_when_the_client_accepts_gzip() -> TestResult {
    let server = ApiServer::start().await?;
    let filler = "x".repeat(2048);
    for i in 0..80 {
        let created = post(
            server.addr(),
            CMS,
            &configmap("default", &format!("cm-{i}"), json!({"filler": filler})),
        )
        .await?;
        assert_eq!(created.status, 201, "{}", created.text());
    }
    let plain = get_with(&server, CMS, "identity").await?;
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none());
    assert!(plain.body.len() > 128 * 1024, "{} bytes", plain.body.len());

    let gzipped = get_with(&server, CMS, "gzip, deflate").await?;
    assert_eq!(gzipped.status, 200);
    assert_eq!(gzipped.header("content-encoding"), Some("gzip"));
    assert_eq!(gzipped.header("vary"), Some("Accept-Encoding"));
    assert!(gzipped.body.len() < plain.body.len() / 10);
    let list: serde_json::Value = serde_json::from_slice(&gunzip(&gzipped.body)?)?;
    assert_eq!(list["items"].as_array().map(Vec::len), Some(80));
    assert_eq!(list["items"], plain.json()?["items"]);

    // Small answers, a token with parameters, and watches stay as they are.
    let small = get_with(&server, &format!("{CMS}/cm-0"), "gzip").await?;
    assert!(small.header("content-encoding").is_none());
    assert_eq!(small.json()?["metadata"]["name"], "cm-0");
    let with_quality = get_with(&server, CMS, "gzip;q=1.0").await?;
    assert!(with_quality.header("content-encoding").is_none());
    let watch = WatchStream::open_with(
        server.addr(),
        &format!("{CMS}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1"),
        &[("Accept-Encoding", "gzip")],
    )
    .await?;
    let mut watch = watch;
    assert!(watch.header("content-encoding").is_none());
    let (kind, _) = watch.event().await?;
    assert_eq!(kind, "ADDED", "the events are plain JSON lines");
    Ok(())
}

/// Follows kube-openapi `pkg/handler/handler.go` (`/openapi/v2` is wrapped in `gziphandler`, whose
/// `DefaultMinSize` is 1400 bytes).
#[tokio::test]
async fn openapi_v2_is_gzipped_when_the_client_accepts_gzip() -> TestResult {
    let server = ApiServer::start().await?;
    let answer = request(
        server.addr(),
        "GET",
        "/openapi/v2",
        &[("Accept", "application/json"), ("Accept-Encoding", "gzip")],
        None,
    )
    .await?;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    let doc: serde_json::Value = serde_json::from_slice(&gunzip(&answer.body)?)?;
    assert_eq!(doc["swagger"], "2.0");
    Ok(())
}
