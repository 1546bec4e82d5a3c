//! The provider call log: a [`Transport`] decorator that records every outbound call (redacted
//! request and response, latency, outcome) against the payment it was made for. It is the one
//! choke point every provider call of every channel passes, so it also counts them
//! (`paybridge_provider_calls_total`) and logs each one at debug, redacted by the same function
//! ([`paybridge_http::redact`]) as what it stores.
//!
//! Channels know nothing about payments, so the payment/refund the call belongs to travels in a
//! task-local [`CallContext`] set by the service around each channel call.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use paybridge_http::{HttpRequest, HttpResponse, Transport, TransportError};
use paybridge_store::NewProviderCall;

#[derive(Debug, Clone, Default)]
pub struct CallContext {
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub operation: &'static str,
    /// Set: the calls are kept here for the caller to log in the unit of work that applies
    /// their answer, instead of in a transaction of their own.
    pub deferred: Option<DeferredCalls>,
}

/// Calls made under a [`CallContext`] with `deferred` set.
#[derive(Debug, Clone, Default)]
pub struct DeferredCalls(Arc<std::sync::Mutex<Vec<ProviderCall>>>);

impl DeferredCalls {
    /// The calls kept so far, as rows for `channel`'s log (emptying the buffer).
    pub fn take(&self, channel: paybridge_core::Channel) -> Vec<NewProviderCall> {
        let calls = match self.0.lock() {
            Ok(mut calls) => std::mem::take(&mut *calls),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        calls.into_iter().map(|c| c.into_row(channel)).collect()
    }

    fn push(&self, call: ProviderCall) {
        match self.0.lock() {
            Ok(mut calls) => calls.push(call),
            Err(poisoned) => poisoned.into_inner().push(call),
        }
    }
}

tokio::task_local! {
    static CONTEXT: CallContext;
}

/// Runs `fut` with `ctx` visible to the recording transport.
pub async fn with_context<F: std::future::Future>(ctx: CallContext, fut: F) -> F::Output {
    CONTEXT.scope(ctx, fut).await
}

/// One recorded call, already redacted.
#[derive(Debug, Clone)]
pub struct ProviderCall {
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub account: String,
    pub channel: String,
    pub operation: String,
    pub request: String,
    pub response: Option<String>,
    pub http_status: Option<u16>,
    pub latency_ms: i64,
    pub outcome: String,
}

impl ProviderCall {
    pub fn into_row(self, channel: paybridge_core::Channel) -> NewProviderCall {
        NewProviderCall {
            payment_id: self.payment_id,
            refund_id: self.refund_id,
            channel,
            account: self.account,
            operation: self.operation,
            request: self.request,
            response: self.response,
            http_status: self.http_status,
            latency_ms: self.latency_ms,
            outcome: self.outcome,
        }
    }
}

#[async_trait]
pub trait CallSink: Send + Sync {
    async fn record(&self, call: ProviderCall);
}

pub struct RecordingTransport {
    inner: Arc<dyn Transport>,
    sink: Arc<dyn CallSink>,
    account: String,
    channel: String,
}

impl RecordingTransport {
    pub fn new(
        inner: Arc<dyn Transport>,
        sink: Arc<dyn CallSink>,
        account: &str,
        channel: &str,
    ) -> Self {
        RecordingTransport {
            inner,
            sink,
            account: account.to_string(),
            channel: channel.to_string(),
        }
    }
}

impl RecordingTransport {
    fn describe(req: &HttpRequest) -> String {
        paybridge_http::redact::request(req)
    }

    /// Records one exchange: `answer` is the status and what to keep of the body.
    async fn record(
        &self,
        ctx: CallContext,
        request: String,
        started: Instant,
        answer: Result<(u16, String), &TransportError>,
    ) {
        let elapsed = started.elapsed();
        let latency_ms = i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX);
        let (response, http_status, outcome) = match answer {
            Ok((status, body)) => (
                Some(body),
                Some(status),
                if (200..300).contains(&status) {
                    "ok".to_string()
                } else {
                    format!("http_{status}")
                },
            ),
            Err(e) => (
                Some(e.to_string()),
                None,
                if e.not_sent() { "not_sent" } else { "unknown" }.to_string(),
            ),
        };
        let operation = if ctx.operation.is_empty() {
            "call"
        } else {
            ctx.operation
        };
        crate::observe::provider_call(&self.account, &self.channel, operation, &outcome, elapsed);
        tracing::debug!(
            account = %self.account,
            channel = %self.channel,
            api = operation,
            outcome = %outcome,
            http_status,
            latency_ms,
            request = %request,
            response = response.as_deref().unwrap_or(""),
            "provider call"
        );
        let call = ProviderCall {
            payment_id: ctx.payment_id,
            refund_id: ctx.refund_id,
            account: self.account.clone(),
            channel: self.channel.clone(),
            operation: operation.to_string(),
            request,
            response,
            http_status,
            latency_ms,
            outcome,
        };
        match &ctx.deferred {
            Some(deferred) => deferred.push(call),
            None => self.sink.record(call).await,
        }
    }
}

#[async_trait]
impl Transport for RecordingTransport {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let ctx = CONTEXT.try_with(|c| c.clone()).unwrap_or_default();
        let request = Self::describe(&req);
        let started = Instant::now();
        let result = self.inner.send(req).await;
        let answer = result.as_ref().map(|r| {
            (
                r.status,
                paybridge_http::redact::redact_text(&String::from_utf8_lossy(&r.body)),
            )
        });
        self.record(ctx, request, started, answer).await;
        result
    }

    /// A streamed body (a bill) is not kept in the call log: only its size.
    async fn send_streaming(
        &self,
        req: HttpRequest,
        sink: &mut (dyn std::io::Write + Send),
        max_bytes: u64,
    ) -> Result<(HttpResponse, u64), TransportError> {
        let ctx = CONTEXT.try_with(|c| c.clone()).unwrap_or_default();
        let request = Self::describe(&req);
        let started = Instant::now();
        let result = self.inner.send_streaming(req, sink, max_bytes).await;
        let answer = result.as_ref().map(|(r, streamed)| {
            let body = if (200..300).contains(&r.status) {
                format!("({streamed} bytes streamed)")
            } else {
                paybridge_http::redact::redact_text(&String::from_utf8_lossy(&r.body))
            };
            (r.status, body)
        });
        self.record(ctx, request, started, answer).await;
        result
    }
}
