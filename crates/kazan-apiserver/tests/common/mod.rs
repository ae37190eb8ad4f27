//! A byte-level HTTP/1.1 client for the protocol tests: it sends exactly what a test says, and
//! exposes the status, headers, chunked framing and every watch line as received. What every
//! crate's tests share (the wait bound, `TestResult`) comes from `kazan-test-support`.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub use kazan_test_support::{TestResult, WAIT};

/// A complete answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub chunked: bool,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> TestResult<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn request_bytes(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    close: bool,
) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    if close {
        out.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if let Some(body) = body {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// Reads the status line and headers.
async fn read_head(reader: &mut BufReader<TcpStream>) -> TestResult<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| format!("bad status line {line:?}"))?
        .parse()?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err("connection closed in headers".into());
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// Sends one request on a fresh connection and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> TestResult<HttpResponse> {
    tokio::time::timeout(WAIT, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream
            .write_all(&request_bytes(method, path, headers, body, true))
            .await?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader).await?;
        let chunked = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked"));
        let mut body = Vec::new();
        if chunked {
            loop {
                match read_chunk(&mut reader).await? {
                    Chunk::Data(d) => body.extend_from_slice(&d),
                    Chunk::End => break,
                    Chunk::Eof => return Err("connection closed inside a chunked body".into()),
                }
            }
        } else {
            reader.read_to_end(&mut body).await?;
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
            chunked,
        })
    })
    .await?
}

pub async fn get(addr: SocketAddr, path: &str) -> TestResult<HttpResponse> {
    request(addr, "GET", path, &[("Accept", "application/json")], None).await
}

pub async fn get_json(addr: SocketAddr, path: &str) -> TestResult<Value> {
    let response = get(addr, path).await?;
    if response.status != 200 {
        return Err(format!("GET {path}: {} {}", response.status, response.text()).into());
    }
    response.json()
}

pub async fn send_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> TestResult<HttpResponse> {
    let bytes = serde_json::to_vec(body)?;
    request(
        addr,
        method,
        path,
        &[("Content-Type", content_type), ("Accept", "application/json")],
        Some(&bytes),
    )
    .await
}

pub async fn post(addr: SocketAddr, path: &str, body: &Value) -> TestResult<HttpResponse> {
    send_json(addr, "POST", path, "application/json", body).await
}

enum Chunk {
    Data(Vec<u8>),
    End,
    Eof,
}

async fn read_chunk(reader: &mut BufReader<TcpStream>) -> TestResult<Chunk> {
    let mut size_line = String::new();
    if reader.read_line(&mut size_line).await? == 0 {
        return Ok(Chunk::Eof);
    }
    let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or_default(), 16)
        .map_err(|_| format!("bad chunk size line {size_line:?}"))?;
    if size == 0 {
        let mut trailer = String::new();
        reader.read_line(&mut trailer).await?;
        return Ok(Chunk::End);
    }
    let mut data = vec![0; size];
    if reader.read_exact(&mut data).await.is_err() {
        return Ok(Chunk::Eof);
    }
    let mut crlf = [0u8; 2];
    if reader.read_exact(&mut crlf).await.is_err() {
        return Ok(Chunk::Eof);
    }
    Ok(Chunk::Data(data))
}

/// What a watch stream yields next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// One event line, parsed.
    Event(Value),
    /// The body ended cleanly (terminating chunk).
    End,
    /// The connection closed without the terminating chunk; carries the unterminated bytes.
    Cut(Vec<u8>),
}

/// An open watch, read at the byte level.
pub struct WatchStream {
    reader: BufReader<TcpStream>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pending: Vec<u8>,
    /// Bytes of `pending` already returned as events.
    consumed: usize,
    /// The raw chunks as received (sizes), for framing checks.
    pub chunks: Vec<usize>,
    chunked: bool,
    done: bool,
}

impl WatchStream {
    /// Opens a watch (`path` includes the query).
    pub async fn open(addr: SocketAddr, path: &str) -> TestResult<WatchStream> {
        Self::open_with(addr, path, &[("Accept", "application/json")]).await
    }

    pub async fn open_with(
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> TestResult<WatchStream> {
        tokio::time::timeout(WAIT, async {
            let mut stream = TcpStream::connect(addr).await?;
            stream
                .write_all(&request_bytes("GET", path, headers, None, false))
                .await?;
            let mut reader = BufReader::new(stream);
            let (status, headers) = read_head(&mut reader).await?;
            let chunked = headers.iter().any(|(k, v)| {
                k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
            });
            Ok(WatchStream {
                reader,
                status,
                headers,
                pending: Vec::new(),
                consumed: 0,
                chunks: Vec::new(),
                chunked,
                done: false,
            })
        })
        .await?
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next event, the end, or a cut; fails if nothing arrives within `WAIT`.
    pub async fn next(&mut self) -> TestResult<Next> {
        self.next_within(WAIT)
            .await?
            .ok_or_else(|| "no watch event within the wait".into())
    }

    /// The next item, or None if nothing arrived within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> TestResult<Option<Next>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(pos) = self.pending[self.consumed..].iter().position(|b| *b == b'\n') {
                let line = &self.pending[self.consumed..self.consumed + pos];
                let value: Value = serde_json::from_slice(line)
                    .map_err(|e| format!("bad event line {:?}: {e}", String::from_utf8_lossy(line)))?;
                self.consumed += pos + 1;
                if self.consumed == self.pending.len() {
                    self.pending.clear();
                    self.consumed = 0;
                }
                return Ok(Some(Next::Event(value)));
            }
            if self.consumed > 0 {
                self.pending.drain(..self.consumed);
                self.consumed = 0;
            }
            if self.done {
                return Ok(Some(Next::End));
            }
            let read = tokio::time::timeout_at(deadline, self.read_more()).await;
            match read {
                Err(_) => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(Some(end))) => {
                    if let Next::End = end
                        && !self.pending.is_empty()
                    {
                        return Err(format!(
                            "body ended inside a line: {:?}",
                            String::from_utf8_lossy(&self.pending)
                        )
                        .into());
                    }
                    return Ok(Some(end));
                }
                Ok(Ok(None)) => {}
            }
        }
    }

    /// Reads one chunk into `pending`; Some(End/Cut) when the body is over.
    async fn read_more(&mut self) -> TestResult<Option<Next>> {
        if !self.chunked {
            let mut buf = vec![0; 8192];
            let n = self.reader.read(&mut buf).await?;
            if n == 0 {
                self.done = true;
                return Ok(Some(Next::End));
            }
            self.pending.extend_from_slice(&buf[..n]);
            return Ok(None);
        }
        match read_chunk(&mut self.reader).await? {
            Chunk::Data(d) => {
                self.chunks.push(d.len());
                self.pending.extend_from_slice(&d);
                Ok(None)
            }
            Chunk::End => {
                self.done = true;
                Ok(Some(Next::End))
            }
            Chunk::Eof => Ok(Some(Next::Cut(std::mem::take(&mut self.pending)))),
        }
    }

    /// The next item, which must be an event; returns (type, object).
    pub async fn event(&mut self) -> TestResult<(String, Value)> {
        match self.next().await? {
            Next::Event(e) => Ok((
                e["type"].as_str().unwrap_or_default().to_string(),
                e["object"].clone(),
            )),
            other => Err(format!("expected an event, got {other:?}").into()),
        }
    }

    /// The next event that is not a BOOKMARK.
    pub async fn change(&mut self) -> TestResult<(String, Value)> {
        loop {
            let (kind, object) = self.event().await?;
            if kind != "BOOKMARK" {
                return Ok((kind, object));
            }
        }
    }

    /// Asserts the body ends cleanly next.
    pub async fn expect_end(&mut self) -> TestResult {
        match self.next().await? {
            Next::End => Ok(()),
            other => Err(format!("expected the end of the body, got {other:?}").into()),
        }
    }
}

/// `metadata.name` of an object.
pub fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.resourceVersion` of an object, as a number.
pub fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_default()
}

pub fn configmap(ns: &str, name: &str, data: Value) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data})
}

pub fn pod(ns: &str, name: &str, labels: Value, phase: &str) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": phase}})
}
