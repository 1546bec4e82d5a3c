//! The provider call log: a [`Transport`] decorator that records every outbound call (redacted
//! request, raw response, latency, outcome) against the payment it was made for.
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
        format!(
            "{} {}\n{}\n\n{}",
            req.method,
            redact_url(&req.url),
            redact_headers(&req.headers),
            redact_text(&String::from_utf8_lossy(&req.body))
        )
    }

    /// Records one exchange: `answer` is the status and what to keep of the body.
    async fn record(
        &self,
        ctx: CallContext,
        request: String,
        started: Instant,
        answer: Result<(u16, String), &TransportError>,
    ) {
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
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
        let answer = result
            .as_ref()
            .map(|r| (r.status, redact_text(&String::from_utf8_lossy(&r.body))));
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
                redact_text(&String::from_utf8_lossy(&r.body))
            };
            (r.status, body)
        });
        self.record(ctx, request, started, answer).await;
        result
    }
}

/// Field names whose values are secrets or personal data, in any of the three wire formats.
const SENSITIVE: &[&str] = &[
    "sign",
    "signature",
    "paysign",
    "app_cert_sn",
    "alipay_root_cert_sn",
    "app_auth_token",
    "auth_code",
    "buyer_id",
    "buyer_open_id",
    "buyer_logon_id",
    "buyer_user_id",
    "openid",
    "sub_openid",
    "payer",
    "phone",
    "mobile",
    "name",
    "id_card",
    "cert_no",
    "user_name",
    "ciphertext",
    "req_info",
    "card_no",
    "bank_account",
];

fn is_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE.iter().any(|s| *s == lower)
}

const MASK: &str = "[REDACTED]";

fn redact_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            if lower == "authorization" || lower.contains("signature") || lower == "cookie" {
                format!("{k}: {MASK}")
            } else {
                format!("{k}: {v}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{base}?{}", redact_form(query)),
        None => url.to_string(),
    }
}

/// Redacts a body whatever its format: JSON, XML or form-urlencoded; anything else is kept.
pub fn redact_text(text: &str) -> String {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
            redact_json(&mut v);
            return v.to_string();
        }
        return text.to_string();
    }
    if trimmed.starts_with('<') {
        return redact_xml(text);
    }
    if text.contains('=') && !text.contains(char::is_whitespace) {
        return redact_form(text);
    }
    text.to_string()
}

fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_sensitive(k) {
                    *val = serde_json::Value::String(MASK.into());
                } else if let serde_json::Value::String(s) = val {
                    // Alipay's biz_content is JSON inside a string.
                    if s.trim_start().starts_with('{') {
                        if let Ok(mut inner) = serde_json::from_str::<serde_json::Value>(s) {
                            redact_json(&mut inner);
                            *s = inner.to_string();
                        }
                    }
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn redact_form(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_sensitive(k) => format!("{k}={MASK}"),
            Some((k, v)) if k == "biz_content" => {
                let decoded: String = form_decode(v);
                format!("{k}={}", redact_text(&decoded))
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn form_decode(v: &str) -> String {
    url::form_urlencoded::parse(format!("x={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Masks `<tag>value</tag>` (with or without CDATA) for sensitive tags. Simple by design: it only
/// has to handle the flat XML of WeChat v2, and never fails.
fn redact_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[1..close];
        out.push_str(&rest[..=close]);
        rest = &rest[close + 1..];
        if !tag.starts_with('/') && is_sensitive(tag) {
            let end_tag = format!("</{tag}>");
            if let Some(end) = rest.find(&end_tag) {
                out.push_str(MASK);
                rest = &rest[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn redacts_every_format() {
        let j = redact_text(r#"{"mchid":"1","payer":{"openid":"o-123"},"amount":{"total":1}}"#);
        assert!(!j.contains("o-123") && j.contains("\"mchid\":\"1\""), "{j}");
        let x = redact_text(
            "<xml><openid><![CDATA[o-9]]></openid><sign>AB</sign><total_fee>1</total_fee></xml>",
        );
        assert!(
            !x.contains("o-9") && !x.contains(">AB<") && x.contains("<total_fee>1</total_fee>"),
            "{x}"
        );
        let f = redact_text("app_id=1&sign=abc%2B&biz_content=%7B%22buyer_id%22%3A%22208%22%2C%22total_amount%22%3A%221.00%22%7D");
        assert!(
            !f.contains("abc") && !f.contains("208") && f.contains("total_amount"),
            "{f}"
        );
        assert_eq!(redact_text("<unterminated"), "<unterminated");
        assert_eq!(redact_text("plain text"), "plain text");
    }

    #[test]
    fn headers_masked() {
        let h = redact_headers(&[
            ("Authorization".into(), "WECHATPAY2 x".into()),
            ("Wechatpay-Serial".into(), "ABC".into()),
        ]);
        assert!(!h.contains("WECHATPAY2") && h.contains("ABC"));
    }
}
