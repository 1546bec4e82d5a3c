//! The transport seam: provider crates build [`HttpRequest`]s and parse [`HttpResponse`]s as pure
//! functions; a [`Transport`] executes them. Production uses [`ReqwestTransport`] (rustls); tests
//! and the sandbox plug in their own; the gateway wraps one to record every provider call.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use paybridge_crypto::Secret;

pub mod redact;

#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether sending this twice is harmless (queries; refunds with the same request number).
    /// Only idempotent requests are retried after they may have reached the provider.
    pub idempotent: bool,
}

impl fmt::Debug for HttpRequest {
    // Bodies and headers can carry signatures and personal data: callers log redacted views.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HttpRequest({} {}, {} body bytes)",
            self.method,
            self.url,
            self.body.len()
        )
    }
}

impl HttpRequest {
    pub fn new(method: &'static str, url: impl Into<String>) -> Self {
        HttpRequest {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
            idempotent: false,
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    pub fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HttpResponse({}, {} body bytes)",
            self.status,
            self.body.len()
        )
    }
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request never left: safe to send again, to the same or a backup host.
    #[error("could not connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The request may have reached the provider: the outcome is unknown.
    #[error("no complete answer from {url}: {reason}")]
    Unknown { url: String, reason: String },
    #[error("invalid request: {0}")]
    Build(String),
}

impl TransportError {
    /// True when the request certainly did not reach the provider.
    pub fn not_sent(&self) -> bool {
        matches!(
            self,
            TransportError::Connect { .. } | TransportError::Build(_)
        )
    }
}

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError>;
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(req).await
    }
}

#[derive(Clone, Debug)]
pub struct TransportConfig {
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Client certificate and key, PEM concatenated (WeChat v2 `/secapi`).
    pub identity_pem: Option<Secret<Vec<u8>>>,
    /// Extra root certificates (PEM), e.g. a private CA in front of the providers.
    pub extra_roots_pem: Vec<Vec<u8>>,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(20),
            identity_pem: None,
            extra_roots_pem: Vec::new(),
        }
    }
}

/// reqwest with rustls: the production transport.
#[derive(Clone, Debug)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("paybridge/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &config.identity_pem {
            let identity = reqwest::Identity::from_pem(pem.expose())
                .map_err(|e| TransportError::Build(format!("client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        for pem in &config.extra_roots_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| TransportError::Build(format!("root certificate: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .build()
            .map_err(|e| TransportError::Build(e.to_string()))?;
        Ok(ReqwestTransport { client })
    }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| TransportError::Build(e.to_string()))?;
        let mut builder = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        let started = std::time::Instant::now();
        let result = builder.body(req.body).send().await;
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(url = %req.url, error = %reason, "provider request failed");
                return Err(if e.is_connect() || e.is_builder() {
                    TransportError::Connect {
                        url: req.url,
                        reason,
                    }
                } else {
                    TransportError::Unknown {
                        url: req.url,
                        reason,
                    }
                });
            }
        };
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Unknown {
                url: req.url.clone(),
                reason: e.to_string(),
            })?
            .to_vec();
        tracing::debug!(url = %req.url, status, bytes = body.len(), ms = started.elapsed().as_millis() as u64, "provider response");
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_refused_is_not_sent() {
        // Bind then drop a listener to get a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let t =
            ReqwestTransport::new(&TransportConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        let err = t
            .send(HttpRequest::new("GET", format!("http://127.0.0.1:{port}/")))
            .await
            .err()
            .unwrap_or_else(|| panic!("expected an error"));
        assert!(err.not_sent(), "{err:?}");
    }
}
