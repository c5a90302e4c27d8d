//! A small HTTP client for the service, used by the demo and the tests: it sends JSON and
//! reads JSON back, over a real TCP connection.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// The longest a request may take before the client gives up on it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A client of one service.
pub struct Client {
    base: String,
    http: Pool<HttpConnector, Full<Bytes>>,
}

/// A response: its status and its JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

/// Why a request got no JSON answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the request: {0}")]
    Request(#[from] axum::http::Error),
    #[error("the request failed: {0}")]
    Send(#[from] hyper_util::client::legacy::Error),
    #[error("the response body could not be read: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("no answer within {TIMEOUT:?}")]
    Timeout,
    #[error("the answer ({status}) is not JSON: {source}: {text}")]
    NotJson {
        status: StatusCode,
        text: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Client {
    /// A client of the service at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            base: format!("http://{addr}"),
            http: Pool::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Reply, ClientError> {
        self.send(Method::GET, path, None).await
    }

    /// `POST path` with `body` as `application/json` (sent as is, valid or not).
    pub async fn post(&self, path: &str, body: &str) -> Result<Reply, ClientError> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
    ) -> Result<Reply, ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))?;
        let exchange = async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| ClientError::Body(e.into()))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout)??;
        let body = serde_json::from_slice(&bytes).map_err(|source| ClientError::NotJson {
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            source,
        })?;
        Ok(Reply { status, body })
    }
}
