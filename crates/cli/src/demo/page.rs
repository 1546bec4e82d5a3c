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
    pub api_key: String,
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

async fn page(State(d): State<Arc<Demo>>) -> Html<String> {
    let accounts: Vec<Value> =
        d.gw.accounts()
            .values()
            .map(|a| json!({"id": a.id, "channel": a.channel}))
            .collect();
    Html(
        PAGE.replace("__API_KEY__", &d.api_key)
            .replace("__ACCOUNTS__", &Value::Array(accounts).to_string()),
    )
}

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>paybridge demo</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
fieldset{border:1px solid #ccc;border-radius:6px;margin-bottom:1em}
label{display:inline-block;margin:.3em 1em .3em 0}
pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:18em;font-size:12px;white-space:pre-wrap;word-break:break-all}
.status{font-size:1.6em;font-weight:bold}
.ok{color:#0a7a2f}.bad{color:#b00020}
code{background:#f0f0f0;padding:0 .2em;word-break:break-all}
input,select{max-width:100%}
</style></head><body>
<h1>paybridge demo</h1>
<p>This gateway runs against the built-in sandbox (an emulator of Alipay and WeChat Pay). Create an
order, pay it as the buyer, and watch the provider's notification change its state and a signed
webhook arrive at the demo receiver. API key (sandbox mode): <code id="key"></code></p>
<fieldset><legend>1. Create a payment</legend>
<label>Account <select id="account"></select></label>
<label>Scene <select id="scene">
<option>pc</option><option>wap</option><option>app</option><option>qr</option><option>jsapi</option><option>barcode</option>
</select></label>
<label>Amount (yuan) <input id="amount" value="0.01" size="8"></label>
<label>Subject <input id="subject" value="Demo order"></label>
<button id="create">Create</button>
</fieldset>
<fieldset><legend>2. Pay as the buyer</legend>
<p id="paylink">Create a payment first.</p>
</fieldset>
<fieldset><legend>3. Watch</legend>
<div>Status: <span class="status" id="status">-</span></div>
<h3>State changes and notifications</h3><pre id="timeline"></pre>
<h3>Webhooks received by the demo receiver</h3><pre id="hooks"></pre>
<h3>Payment</h3><pre id="payment"></pre>
</fieldset>
<script>
const KEY = "__API_KEY__";
const ACCOUNTS = __ACCOUNTS__;
document.getElementById('key').textContent = KEY;
const sel = document.getElementById('account');
for (const a of ACCOUNTS) { const o = document.createElement('option'); o.value = a.id; o.textContent = a.id + ' (' + a.channel + ')'; sel.appendChild(o); }
let current = null;
const api = (path, opts={}) => fetch(path, {...opts, headers: {'Authorization': 'Bearer ' + KEY, 'Content-Type': 'application/json', ...(opts.headers||{})}}).then(r => r.json());
function toFen(y) { const m = /^(\d+)(?:\.(\d{1,2}))?$/.exec(y.trim()); if (!m) return null; return parseInt(m[1],10)*100 + parseInt(((m[2]||'')+'00').slice(0,2),10); }
document.getElementById('create').onclick = async () => {
  const acc = ACCOUNTS.find(a => a.id === sel.value);
  const scene = document.getElementById('scene').value;
  const fen = toFen(document.getElementById('amount').value);
  if (!fen) { alert('amount: yuan with at most two decimals'); return; }
  const body = {account: acc.id, channel: acc.channel, scene, amount: fen,
    out_trade_no: 'DEMO' + Date.now(), subject: document.getElementById('subject').value,
    client_ip: '127.0.0.1', return_url: location.origin + '/demo'};
  if (scene === 'jsapi') body.payer_id = 'demo-buyer-openid';
  if (scene === 'barcode') body.auth_code = '287000000000000001';
  const idem = 'demo-' + Date.now() + '-' + Math.random().toString(36).slice(2);
  const p = await api('/v1/payments', {method: 'POST', body: JSON.stringify(body), headers: {'Idempotency-Key': idem}});
  if (!p.id) { document.getElementById('payment').textContent = JSON.stringify(p, null, 2); return; }
  current = p.id;
  const link = document.getElementById('paylink');
  link.innerHTML = p.status === 'paid' ? 'Barcode payments are answered at once: nothing to do.'
    : '<a target="_blank" href="/demo/buyer/' + p.id + '">Open the sandbox pay page</a> and press Pay.';
  refresh();
};
async function refresh() {
  const hooks = await fetch('/demo/webhooks').then(r => r.json());
  document.getElementById('hooks').textContent = hooks.data.map(h =>
    (h.signature_valid ? 'signature OK  ' : 'BAD SIGNATURE ') + h.event.type + '  ' + h.event.id + '  ' + (h.event.data && h.event.data.id || '')).join('\n') || '(none yet)';
  if (!current) return;
  const p = await api('/v1/payments/' + current);
  const st = document.getElementById('status'); st.textContent = p.status; st.className = 'status ' + (p.status === 'paid' ? 'ok' : '');
  document.getElementById('payment').textContent = JSON.stringify(p, null, 2);
  const t = await api('/v1/payments/' + current + '/timeline');
  const lines = [];
  for (const c of (t.state_changes||[])) lines.push('state  ' + (c.from||'-') + ' -> ' + c.to + '  by ' + c.actor + ' (' + c.reason + ')');
  for (const n of (t.notifications||[])) lines.push('notify ' + n.id + '  verified=' + n.verified + '  outcome=' + n.outcome + (n.reason ? '  ' + n.reason : ''));
  for (const e of (t.data||[])) lines.push('event  ' + e.kind + '  ' + JSON.stringify(e.detail));
  document.getElementById('timeline').textContent = lines.join('\n');
}
setInterval(refresh, 1000);
</script></body></html>"#;
