//! The replay server: answers the list and watch requests of every consumer with a pre-built
//! [`EventSet`], over HTTP/1.1 chunked on a loopback port, as fast as the socket takes it.
//!
//! - `GET /api/v1/pods` or `/api/v1/namespaces/{ns}/pods` without `watch`: an empty `PodList`
//!   whose resourceVersion is the one before the first event (kube-runtime lists first).
//! - The same with `watch=true` (or `1`): the events after the request's `resourceVersion` (all of
//!   them when it is unset or older than the first), in large chunks that share the set's memory,
//!   then a clean end.
//!
//! The server runs in the harness process, never in a consumer's.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::{
    Method, Request, Response, StatusCode,
    body::{Frame, Incoming},
    header::{CONTENT_TYPE, HeaderValue},
    server::conn::http1,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, task::JoinSet};

use crate::{error::BenchError, events::EventSet};

/// How many bytes go into one chunk of a watch response.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// A running replay server; it stops when dropped.
#[derive(Debug)]
pub struct ReplayServer {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    events: EventSet,
}

impl ReplayServer {
    /// Starts a server for `events` on `127.0.0.1:0`.
    pub async fn start(events: EventSet) -> Result<Self, BenchError> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(BenchError::Bind)?;
        let addr = listener.local_addr().map_err(BenchError::Bind)?;
        let connections = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared { events });
        let accepted = connections.clone();
        let task = tokio::spawn(async move {
            // Connection tasks live in the set, so stopping the server stops them too.
            let mut open = JoinSet::new();
            loop {
                tokio::select! {
                    accept = listener.accept() => {
                        let Ok((socket, _)) = accept else { continue };
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let _ = socket.set_nodelay(true);
                        let shared = shared.clone();
                        open.spawn(async move {
                            let service = service_fn(move |request| {
                                let shared = shared.clone();
                                async move { Ok::<_, Infallible>(respond(&shared, &request)) }
                            });
                            // A client that goes away mid-stream is normal here.
                            let _ = http1::Builder::new()
                                .serve_connection(TokioIo::new(socket), service)
                                .await;
                        });
                    }
                    Some(_) = open.join_next(), if !open.is_empty() => {}
                }
            }
        });
        Ok(ReplayServer {
            addr,
            connections,
            task,
        })
    }

    /// The server's base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// TCP connections accepted so far.
    #[cfg(test)]
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// A counter of accepted connections that outlives a borrow of the server.
    pub fn connection_counter(&self) -> Arc<AtomicU64> {
        self.connections.clone()
    }
}

impl Drop for ReplayServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(shared: &Shared, request: &Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    let is_pods = path == "/api/v1/pods"
        || path
            .strip_prefix("/api/v1/namespaces/")
            .and_then(|rest| rest.strip_suffix("/pods"))
            .is_some_and(|namespace| !namespace.is_empty() && !namespace.contains('/'));
    if request.method() != Method::GET || !is_pods {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the replay server serves pods only",
        );
    }
    let query = request.uri().query().unwrap_or("");
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    };
    let watch = matches!(param("watch"), Some("true" | "1" | "True"));
    if !watch {
        let list = format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"{}"}},"items":[]}}"#,
            shared.events.first_rv().saturating_sub(1)
        );
        return json(StatusCode::OK, Full::new(Bytes::from(list)).boxed());
    }
    let since = match param("resourceVersion") {
        None | Some("" | "0") => 0,
        Some(rv) => match rv.parse::<u64>() {
            Ok(rv) => rv,
            Err(_) => {
                return status(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    "resourceVersion is not a number",
                );
            }
        },
    };
    let start = shared.events.index_after(since);
    let bytes = shared.events.slice(start..u64::MAX);
    let chunks = (0..bytes.len())
        .step_by(CHUNK_BYTES)
        .map(move |at| {
            let until = (at + CHUNK_BYTES).min(bytes.len());
            Ok::<_, Infallible>(Frame::data(bytes.slice(at..until)))
        })
        .collect::<Vec<_>>();
    json(StatusCode::OK, StreamBody::new(stream::iter(chunks)).boxed())
}

fn json(code: StatusCode, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn status(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    json(code, Full::new(Bytes::from(body.to_string())).boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::DEFAULT_POD;
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpStream,
        time::{Duration, timeout},
    };

    /// Sends one GET with `Connection: close` and returns the raw response.
    async fn get(server: &ReplayServer, target: &str) -> Result<String, Box<dyn std::error::Error>> {
        let mut socket = TcpStream::connect(server.addr).await?;
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        socket.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        timeout(Duration::from_secs(10), socket.read_to_end(&mut response)).await??;
        Ok(String::from_utf8(response)?)
    }

    /// The resourceVersions of the watch events in a (de-chunked) response body.
    fn resource_versions(response: &str) -> Vec<String> {
        response
            .lines()
            .filter(|line| line.starts_with(r#"{"type":"#))
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|event| {
                event
                    .pointer("/object/metadata/resourceVersion")
                    .and_then(|rv| rv.as_str().map(str::to_owned))
            })
            .collect()
    }

    /// A few events; under one chunk in all, so every line arrives whole inside one chunk.
    fn small_events(n: u64) -> Result<EventSet, BenchError> {
        EventSet::build(DEFAULT_POD, n, 2)
    }

    #[tokio::test]
    async fn a_list_is_empty_and_carries_the_resource_version_before_the_first_event()
    -> Result<(), Box<dyn std::error::Error>> {
        let server = ReplayServer::start(small_events(3)?).await?;
        let response = get(&server, "/api/v1/pods?limit=500").await?;
        let body = response.split("\r\n\r\n").nth(1).ok_or("no body")?;
        let list: serde_json::Value = serde_json::from_str(body)?;
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["metadata"]["resourceVersion"], "1");
        assert_eq!(list["items"], serde_json::json!([]));
        Ok(())
    }

    #[tokio::test]
    async fn a_watch_streams_exactly_the_n_events_after_its_resource_version()
    -> Result<(), Box<dyn std::error::Error>> {
        // Five events of ~3.9 KB each: one chunk, so every line arrives whole.
        let server = ReplayServer::start(small_events(5)?).await?;
        let all = get(&server, "/api/v1/pods?watch=true&resourceVersion=1").await?;
        assert!(all.contains("transfer-encoding: chunked"));
        assert_eq!(resource_versions(&all), ["2", "3", "4", "5", "6"]);
        let rest = get(
            &server,
            "/api/v1/namespaces/team-1/pods?watch=1&resourceVersion=4",
        )
        .await?;
        assert_eq!(resource_versions(&rest), ["5", "6"]);
        let none = get(&server, "/api/v1/pods?watch=true&resourceVersion=6").await?;
        assert!(resource_versions(&none).is_empty());
        assert_eq!(
            server.connections(),
            3,
            "one per request, each closed after its answer"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_large_watch_arrives_whole_in_large_chunks() -> Result<(), Box<dyn std::error::Error>> {
        let events = small_events(200)?;
        let expected = events.bytes().clone();
        let server = ReplayServer::start(events).await?;
        let response = get(&server, "/api/v1/pods?watch=true").await?;
        let body = response.split_once("\r\n\r\n").ok_or("no body")?.1;
        // De-chunk: size line, data, CRLF, until the zero-size chunk.
        let mut rest = body.as_bytes();
        let mut data = Vec::new();
        let mut chunk_sizes = Vec::new();
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or("no chunk size")?;
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..line_end])?, 16)?;
            if size == 0 {
                break;
            }
            chunk_sizes.push(size);
            data.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest = &rest[line_end + 2 + size + 2..];
        }
        assert_eq!(data, expected);
        assert!(chunk_sizes.iter().all(|size| *size <= CHUNK_BYTES));
        assert_eq!(chunk_sizes.first(), Some(&CHUNK_BYTES));
        Ok(())
    }

    #[tokio::test]
    async fn anything_but_pods_is_a_not_found_status() -> Result<(), Box<dyn std::error::Error>> {
        let server = ReplayServer::start(small_events(1)?).await?;
        let response = get(&server, "/api/v1/namespaces").await?;
        assert!(response.starts_with("HTTP/1.1 404"));
        assert!(response.contains(r#""reason":"NotFound""#));
        Ok(())
    }
}
