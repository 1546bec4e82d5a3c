//! Demo mode: a page where a newcomer creates an order, pays it as the buyer in the sandbox, and
//! watches the notification, the state change and the signed webhook arrive — plus the webhook
//! receiver the page reads from. Only mounted by `paybridge demo`.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paybridge_sandbox::Sandbox;
use paybridge_server::{webhook, Gateway};
use serde_json::{json, Value};

pub const WEBHOOK_PATH: &str = "/demo/webhook";

pub struct Demo {
    pub gw: Arc<Gateway>,
    pub sandbox: Arc<Sandbox>,
    pub webhook_secret: String,
    pub received: Mutex<Vec<Value>>,
}

pub fn router(demo: Arc<Demo>) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/demo") }))
        .route("/demo", get(page))
        .route(WEBHOOK_PATH, post(receive))
        .route("/demo/webhooks", get(webhooks))
        .route("/demo/buyer/:payment_id", get(buyer))
        .with_state(demo)
}

async fn receive(State(d): State<Arc<Demo>>, headers: HeaderMap, body: Bytes) -> Response {
    let signature = headers
        .get(webhook::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = d.gw.now_ms().div_euclid(1000);
    let verdict = webhook::verify(d.webhook_secret.as_bytes(), signature, &body, now, 300);
    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Ok(mut list) = d.received.lock() {
        list.push(json!({
            "received_at": d.gw.now_ms(),
            "signature_valid": verdict.is_ok(),
            "signature_error": verdict.as_ref().err().map(|e| e.to_string()),
            "event": event,
        }));
    }
    match verdict {
        Ok(()) => StatusCode::OK.into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn webhooks(State(d): State<Arc<Demo>>) -> Json<Value> {
    let list = d.received.lock().map(|l| l.clone()).unwrap_or_default();
    Json(json!({ "data": list }))
}

/// Where the buyer goes: the sandbox's pay page once the provider knows the order; before that
/// (Alipay page, wap and App orders are signed locally) the client action itself, as the
/// buyer's browser or App would open it.
async fn buyer(State(d): State<Arc<Demo>>, Path(id): Path<String>) -> Response {
    let Ok(Some(p)) = d.gw.store.get_payment(&id).await else {
        return (StatusCode::NOT_FOUND, "no such payment").into_response();
    };
    if let Some(trade) = d.sandbox.trade_by_out_no(&p.out_trade_no) {
        return Redirect::to(&format!(
            "{}/_sandbox/pay/{}",
            d.sandbox.base_url(),
            trade.id
        ))
        .into_response();
    }
    let action = p.client_action.unwrap_or(Value::Null);
    if let Some(url) = action.get("url").and_then(Value::as_str) {
        return Redirect::to(url).into_response();
    }
    if let Some(order) = action.get("order_string").and_then(Value::as_str) {
        return Redirect::to(&format!("{}?{order}", d.sandbox.gateway_url())).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        "the sandbox has no order for this payment yet",
    )
        .into_response()
}

/// The demo's landing page: where to go, and what the demo's webhook receiver got. It holds no
/// key and offers no action: everything an operator does happens in the console, behind its
/// login.
async fn page() -> Html<&'static str> {
    Html(PAGE)
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>paybridge demo</title>
<link rel="stylesheet" href="/assets/base.css">
<style>
main{max-width:860px;margin:0 auto;padding:1em}
pre{background:#fff;border:1px solid #d0d7de;padding:.6em;max-height:24em;overflow:auto;font-size:12px}
ol li{margin-bottom:.4em}
</style></head><body><main>
<h1>paybridge demo</h1>
<p>This gateway runs against the built-in sandbox, an emulator of Alipay and WeChat Pay: no real
money moves.</p>
<ol>
<li>Open the <b>console</b> with the one-time login link printed in the terminal (or log in at
<a href="/console/login">/console/login</a> as <code>demo</code>; the password is in
<code>demo.json</code> in the demo's data directory).</li>
<li>Create a payment with the <code>curl</code> command printed in the terminal.</li>
<li>Find it under <a href="/console/payments">Payments</a>, pay it as the buyer in the sandbox
(<code>/demo/buyer/&lt;payment id&gt;</code>), and watch its page turn paid with the provider's
notification, the state change and the webhook.</li>
<li>Refund half of it from the payment page.</li>
</ol>
<h2>Webhooks received by the demo receiver</h2>
<pre id="hooks">(none yet)</pre>
<script>
async function refresh() {
  const hooks = await fetch('/demo/webhooks').then(r => r.json());
  const lines = hooks.data.slice().reverse().map(h =>
    (h.signature_valid ? 'signature OK  ' : 'BAD SIGNATURE ') + h.event.type + '  ' + h.event.id + '  ' + (h.event.data && h.event.data.id || ''));
  document.getElementById('hooks').textContent = lines.join('\n') || '(none yet)';
}
refresh(); setInterval(refresh, 2000);
</script></main></body></html>"#;
