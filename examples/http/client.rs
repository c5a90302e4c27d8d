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
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST path` with `body` as `application/json` (sent as is, valid or not).
    pub async fn post(&self, path: &str, body: &str) -> Result<Reply, ClientError> {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    /// `POST` with extra headers (a `traceparent`, say).
    #[cfg_attr(not(test), allow(dead_code))]
    pub async fn post_with(
        &self,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        self.send(Method::POST, path, Some(body), headers).await
    }

    /// `GET` of a text answer (`/metrics`): its status and body.
    pub async fn get_text(&self, path: &str) -> Result<(StatusCode, String), ClientError> {
        let request = self.request(Method::GET, path, None, &[])?;
        let (status, bytes) = self.exchange(request).await?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Request<Full<Bytes>>, ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Ok(request.body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))?)
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
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
        tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let request = self.request(method, path, body, headers)?;
        let (status, bytes) = self.exchange(request).await?;
        let body = serde_json::from_slice(&bytes).map_err(|source| ClientError::NotJson {
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            source,
        })?;
        Ok(Reply { status, body })
    }
}
