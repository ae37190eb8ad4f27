//! The HTTP client: one connection pool per [`Client`], requests built from [`Request`], answers
//! checked and decoded, credentials attached and refreshed once on a 401.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client as HyperClient, rt::TokioExecutor};
use serde::de::DeserializeOwned;

use crate::{
    auth::Authenticator,
    config::Config,
    error::{ApiError, Error},
    request::Request,
    resource::ObjectList,
};

/// A client for one API server. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    http: HyperClient<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    auth: Authenticator,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("cluster_url", &self.inner.config.cluster_url)
            .finish()
    }
}

/// The body of a streaming response, read chunk by chunk.
pub struct BodyStream {
    body: Incoming,
    url: String,
}

impl BodyStream {
    /// The next chunk; `None` at the end of the body.
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            match self.body.frame().await? {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        return Some(Ok(data));
                    }
                }
                Err(e) => {
                    return Some(Err(Error::Http {
                        url: self.url.clone(),
                        source: Box::new(e),
                    }));
                }
            }
        }
    }
}

impl Client {
    /// Builds a client from a configuration.
    pub fn new(config: Config) -> Result<Self, Error> {
        let http = HyperClient::builder(TokioExecutor::new()).build_http();
        let auth = Authenticator::new(&config.auth)?;
        Ok(Client {
            inner: Arc::new(Inner { config, http, auth }),
        })
    }

    /// Builds a client from [`Config::infer`].
    pub async fn try_default() -> Result<Self, Error> {
        Self::new(Config::infer()?)
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The namespace single-object requests use when they name none.
    pub fn default_namespace(&self) -> &str {
        &self.inner.config.default_namespace
    }

    fn url_of<T>(&self, req: &Request<T>) -> String {
        let base = self.inner.config.cluster_url.to_string();
        format!("{}{}", base.trim_end_matches('/'), req.path_and_query())
    }

    async fn send<T>(&self, req: &Request<T>) -> Result<(String, http::Response<Incoming>), Error> {
        let url = self.url_of(req);
        let mut builder = http::Request::builder().method(req.method()).uri(&url);
        builder = builder.header(http::header::ACCEPT, "application/json");
        if let Some(ct) = req.content_type() {
            builder = builder.header(http::header::CONTENT_TYPE, ct);
        }
        if let Some(h) = self.inner.auth.header().await? {
            builder = builder.header(http::header::AUTHORIZATION, h);
        }
        let body = Full::new(req.body().cloned().unwrap_or_default());
        let http_req = builder
            .body(body)
            .map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let resp = self
            .inner
            .http
            .request(http_req)
            .await
            .map_err(|e| Error::Connect {
                url: url.clone(),
                source: Box::new(e),
            })?;
        if !resp.status().is_success() {
            let code = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let status = serde_json::from_slice(&bytes).ok();
            let body = if status.is_none() {
                Some(String::from_utf8_lossy(&bytes).into_owned())
            } else {
                None
            };
            return Err(Error::Api(Box::new(ApiError {
                method: req.method().to_string(),
                url,
                code,
                status,
                body,
                retry_after: None,
            })));
        }
        Ok((url, resp))
    }

    /// Runs a request and decodes the answer.
    pub async fn run<T: DeserializeOwned>(&self, req: &Request<T>) -> Result<T, Error> {
        let (url, bytes) = self.run_raw_inner(req).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            url,
            what: std::any::type_name::<T>(),
            source,
        })
    }

    /// Runs a request and returns the raw body.
    pub async fn run_raw<T>(&self, req: &Request<T>) -> Result<Bytes, Error> {
        Ok(self.run_raw_inner(req).await?.1)
    }

    async fn run_raw_inner<T>(&self, req: &Request<T>) -> Result<(String, Bytes), Error> {
        let (url, resp) = self.send(req).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Http {
                url: url.clone(),
                source: Box::new(e),
            })?
            .to_bytes();
        Ok((url, bytes))
    }

    /// Lists every page, following `continue` to the end.
    pub async fn list_all<K: DeserializeOwned>(
        &self,
        req: &Request<ObjectList<K>>,
    ) -> Result<ObjectList<K>, Error> {
        let mut all = self.run(req).await?;
        while let Some(token) = all.metadata.continue_.take().filter(|t| !t.is_empty()) {
            let mut next_req = req.clone().continue_token(&token);
            next_req.params_mut().resource_version = None;
            next_req.params_mut().resource_version_match = None;
            let page = self.run(&next_req).await?;
            all.items.extend(page.items);
            all.metadata.continue_ = page.metadata.continue_;
        }
        Ok(all)
    }

    /// Sends a request whose answer is a stream (a watch), after checking its status.
    pub async fn stream<T>(&self, req: &Request<T>) -> Result<BodyStream, Error> {
        let (url, resp) = self.send(req).await?;
        Ok(BodyStream {
            body: resp.into_body(),
            url,
        })
    }
}
