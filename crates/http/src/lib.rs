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

/// How long a streamed download (a bill) may take in all; `TransportConfig::timeout` is for
/// API calls.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(15 * 60);

#[async_trait]
pub trait Transport: Send + Sync {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError>;

    /// [`Transport::send`] for large answers (bills): the body of a 2xx answer goes to `sink`
    /// as it arrives, never held whole, and more than `max_bytes` fails the download. Other
    /// answers (small errors) come back whole in the response. Returns the response (its body
    /// empty when streamed) and the bytes streamed. A sink that fails, or a body cut short,
    /// is [`TransportError::Unknown`]: the download may be tried again.
    ///
    /// The default buffers and then writes; transports that can stream override it.
    async fn send_streaming(
        &self,
        req: HttpRequest,
        sink: &mut (dyn std::io::Write + Send),
        max_bytes: u64,
    ) -> Result<(HttpResponse, u64), TransportError> {
        let url = req.url.clone();
        let mut resp = self.send(req).await?;
        if !(200..300).contains(&resp.status) {
            return Ok((resp, 0));
        }
        let body = std::mem::take(&mut resp.body);
        let mut counter = Counted::new(sink, max_bytes, &url);
        counter.write(&body)?;
        Ok((resp, counter.written))
    }
}

/// A sink with a byte budget; its failures are the download's.
pub struct Counted<'a> {
    sink: &'a mut (dyn std::io::Write + Send),
    max_bytes: u64,
    url: &'a str,
    pub written: u64,
}

impl<'a> Counted<'a> {
    pub fn new(sink: &'a mut (dyn std::io::Write + Send), max_bytes: u64, url: &'a str) -> Self {
        Counted {
            sink,
            max_bytes,
            url,
            written: 0,
        }
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<(), TransportError> {
        let failed = |reason: String| TransportError::Unknown {
            url: self.url.to_string(),
            reason,
        };
        self.written += chunk.len() as u64;
        if self.written > self.max_bytes {
            return Err(failed(format!("the body exceeds {} bytes", self.max_bytes)));
        }
        self.sink
            .write_all(chunk)
            .map_err(|e| failed(format!("writing the body: {e}")))
    }

    pub fn finish(&mut self) -> Result<(), TransportError> {
        self.sink.flush().map_err(|e| TransportError::Unknown {
            url: self.url.to_string(),
            reason: format!("writing the body: {e}"),
        })
    }
}

#[async_trait]
impl<T: Transport + ?Sized> Transport for Arc<T> {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        (**self).send(req).await
    }

    async fn send_streaming(
        &self,
        req: HttpRequest,
        sink: &mut (dyn std::io::Write + Send),
        max_bytes: u64,
    ) -> Result<(HttpResponse, u64), TransportError> {
        (**self).send_streaming(req, sink, max_bytes).await
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

impl ReqwestTransport {
    /// Sends; the answer's head is read, its body left to the caller.
    async fn start(
        &self,
        req: HttpRequest,
        timeout: Option<Duration>,
    ) -> Result<(reqwest::Response, u16, Vec<(String, String)>, String), TransportError> {
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|e| TransportError::Build(e.to_string()))?;
        let mut builder = self.client.request(method, &req.url);
        for (k, v) in &req.headers {
            builder = builder.header(k, v);
        }
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let resp = match builder.body(req.body).send().await {
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
        Ok((resp, status, headers, req.url))
    }
}

#[async_trait]
impl Transport for ReqwestTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let started = std::time::Instant::now();
        let (resp, status, headers, url) = self.start(req, None).await?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| TransportError::Unknown {
                url: url.clone(),
                reason: e.to_string(),
            })?
            .to_vec();
        tracing::debug!(url = %url, status, bytes = body.len(), ms = started.elapsed().as_millis() as u64, "provider response");
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }

    async fn send_streaming(
        &self,
        req: HttpRequest,
        sink: &mut (dyn std::io::Write + Send),
        max_bytes: u64,
    ) -> Result<(HttpResponse, u64), TransportError> {
        let started = std::time::Instant::now();
        let (mut resp, status, headers, url) = self.start(req, Some(STREAM_TIMEOUT)).await?;
        let cut = |e: reqwest::Error| TransportError::Unknown {
            url: url.clone(),
            reason: e.to_string(),
        };
        if !(200..300).contains(&status) {
            let body = resp.bytes().await.map_err(cut)?.to_vec();
            return Ok((
                HttpResponse {
                    status,
                    headers,
                    body,
                },
                0,
            ));
        }
        let mut counter = Counted::new(sink, max_bytes, &url);
        while let Some(chunk) = resp.chunk().await.map_err(cut)? {
            counter.write(&chunk)?;
        }
        counter.finish()?;
        let written = counter.written;
        tracing::debug!(url = %url, status, bytes = written, ms = started.elapsed().as_millis() as u64, "provider response streamed");
        Ok((
            HttpResponse {
                status,
                headers,
                body: Vec::new(),
            },
            written,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Answers every connection once with `status` and `body` in 64 KiB chunks (chunked
    /// encoding, so the client cannot know the length in advance).
    async fn server(status: u16, body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut head = vec![0u8; 4096];
                    let _ = socket.read(&mut head).await;
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    )
                    .into_bytes();
                    for chunk in body.chunks(64 * 1024) {
                        out.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend(chunk);
                        out.extend(b"\r\n");
                    }
                    out.extend(b"0\r\n\r\n");
                    let _ = socket.write_all(&out).await;
                });
            }
        });
        format!("http://{addr}/bill")
    }

    fn transport() -> ReqwestTransport {
        ReqwestTransport::new(&TransportConfig::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_streamed_body_reaches_the_sink_and_is_not_returned() {
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let url = server(200, body.clone()).await;
        let mut sink = Vec::new();
        let (resp, n) = transport()
            .send_streaming(HttpRequest::new("GET", url), &mut sink, 10_000_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((resp.status, n), (200, body.len() as u64));
        assert!(resp.body.is_empty());
        assert_eq!(sink, body);
    }

    #[tokio::test]
    async fn a_body_past_the_budget_fails_as_unknown() {
        let url = server(200, vec![7u8; 300_000]).await;
        let mut sink = Vec::new();
        let err = transport()
            .send_streaming(HttpRequest::new("GET", url), &mut sink, 100_000)
            .await
            .err()
            .unwrap_or_else(|| panic!("expected an error"));
        assert!(matches!(err, TransportError::Unknown { .. }), "{err:?}");
        assert!(sink.len() <= 100_000 + 64 * 1024);
    }

    #[tokio::test]
    async fn an_error_answer_comes_back_whole_and_the_sink_stays_empty() {
        let url = server(404, br#"{"code":"NO_STATEMENT_EXIST"}"#.to_vec()).await;
        let mut sink = Vec::new();
        let (resp, n) = transport()
            .send_streaming(HttpRequest::new("GET", url), &mut sink, 1_000)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((resp.status, n), (404, 0));
        assert_eq!(resp.body, br#"{"code":"NO_STATEMENT_EXIST"}"#);
        assert!(sink.is_empty());
    }

    /// The default (buffered) implementation keeps the same contract.
    #[tokio::test]
    async fn the_default_implementation_honours_the_budget() {
        struct Fixed;
        #[async_trait]
        impl Transport for Fixed {
            async fn send(&self, _req: HttpRequest) -> Result<HttpResponse, TransportError> {
                Ok(HttpResponse {
                    status: 200,
                    headers: Vec::new(),
                    body: vec![1; 10],
                })
            }
        }
        let mut sink = Vec::new();
        let (resp, n) = Fixed
            .send_streaming(HttpRequest::new("GET", "http://x/"), &mut sink, 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((resp.status, n, sink.len()), (200, 10, 10));
        assert!(Fixed
            .send_streaming(HttpRequest::new("GET", "http://x/"), &mut Vec::new(), 9)
            .await
            .is_err());
    }

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
