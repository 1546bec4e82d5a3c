//! The buyer and the control API. Every QR code, page-pay form, H5 URL and JSAPI prepay leads
//! to `/_sandbox/pay/{id}`, where a person pays, cancels or lets the order expire; tests do the
//! same through `POST /_sandbox/trades/{id}/...`. Faults, barcode behaviour, bill
//! discrepancies, and the record of everything sent and received are under `/_sandbox/`.

use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::bills::Discrepancy;
use crate::config::BarcodeMode;
use crate::ledger::{LedgerError, Provider, RefundState, Trade};
use crate::notifier::Faults;
use crate::server::{json_reply, text, Inner};

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/_sandbox/pay/:id", get(page))
        .route("/_sandbox/pay/:id/:action", post(page_action))
        .route("/_sandbox/trades", get(list_trades))
        .route("/_sandbox/trades/:id", get(get_trade))
        .route("/_sandbox/trades/:id/:action", post(trade_action))
        .route("/_sandbox/trades/:id/refunds/:no/state", post(refund_state))
        .route("/_sandbox/faults", put(set_faults).delete(clear_faults))
        .route("/_sandbox/barcode", put(set_barcode))
        .route(
            "/_sandbox/discrepancies",
            post(add_discrepancy).delete(clear_discrepancies),
        )
        .route("/_sandbox/notifications", get(notifications))
        .route("/_sandbox/notifications/release", post(release))
        .route("/_sandbox/tick", post(tick))
        .route("/_sandbox/requests", get(requests))
        .route("/_sandbox/download/:token", get(download))
        .route("/_sandbox/keys", get(keys))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub(crate) fn error_page(message: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>paybridge sandbox</title></head>\
         <body><h1>Payment error</h1><p id=\"error\">{}</p></body></html>",
        esc(message)
    )
}

/// Resolves a trade id or a WeChat prepay id.
fn resolve(inner: &Inner, id: &str) -> Option<String> {
    let st = inner.lock();
    if st.ledger.get(id).is_some() {
        return Some(id.to_string());
    }
    st.prepay.get(id).cloned()
}

fn status_of(t: &Trade) -> &'static str {
    match t.provider {
        Provider::Alipay => t.alipay_status(),
        Provider::WechatV2 | Provider::WechatV3 => t.wechat_state(),
    }
}

async fn page(AxState(inner): AxState<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let Some(id) = resolve(&inner, &id) else {
        return (StatusCode::NOT_FOUND, Html(error_page("no such order"))).into_response();
    };
    let trade = {
        let mut st = inner.lock();
        // Opening the page is the scan: an Alipay precreate trade now exists for queries.
        let _ = st.ledger.mark_scanned(&id);
        st.ledger.get(&id).cloned()
    };
    let Some(t) = trade else {
        return (StatusCode::NOT_FOUND, Html(error_page("no such order"))).into_response();
    };
    let provider = match t.provider {
        Provider::Alipay => "Alipay",
        Provider::WechatV2 => "WeChat Pay (APIv2)",
        Provider::WechatV3 => "WeChat Pay (APIv3)",
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>paybridge sandbox: pay</title></head><body>\
         <h1>{provider} sandbox</h1>\
         <dl><dt>Merchant</dt><dd id=\"account\">{account}</dd>\
         <dt>Order</dt><dd id=\"out_trade_no\">{out}</dd>\
         <dt>Subject</dt><dd id=\"subject\">{subject}</dd>\
         <dt>Amount</dt><dd id=\"amount\">¥{amount}</dd>\
         <dt>Status</dt><dd id=\"status\">{status}</dd></dl>\
         <form method=\"post\" action=\"/_sandbox/pay/{id}/pay\"><button id=\"pay\">Pay ¥{amount}</button></form>\
         <form method=\"post\" action=\"/_sandbox/pay/{id}/cancel\"><button id=\"cancel\">Cancel</button></form>\
         <form method=\"post\" action=\"/_sandbox/pay/{id}/expire\"><button id=\"expire\">Let it expire</button></form>\
         </body></html>",
        account = esc(&t.account),
        out = esc(&t.out_trade_no),
        subject = esc(&t.subject),
        amount = t.amount.to_yuan(),
        status = status_of(&t),
        id = esc(&t.id),
    ))
    .into_response()
}

/// The buyer pays: the ledger moves, the notification is queued.
pub(crate) fn pay(inner: &Inner, id: &str, buyer: Option<&str>) -> Result<(), LedgerError> {
    let now = inner.now();
    let mut st = inner.lock();
    st.ledger.mark_scanned(id)?;
    let ev = st.ledger.pay(id, buyer, now)?;
    inner.notify_events(&mut st, vec![ev], now);
    Ok(())
}

fn cancel(inner: &Inner, id: &str) -> Result<(), LedgerError> {
    let now = inner.now();
    inner.lock().ledger.fail(id, now)
}

fn finish(inner: &Inner, id: &str) -> Result<(), LedgerError> {
    let now = inner.now();
    let mut st = inner.lock();
    let ev = st.ledger.finish(id)?;
    inner.notify_events(&mut st, vec![ev], now);
    Ok(())
}

fn expire(inner: &Inner, id: &str) -> Result<(), LedgerError> {
    let now = inner.now();
    let mut st = inner.lock();
    if let Some(ev) = st.ledger.expire(id, now)? {
        inner.notify_events(&mut st, vec![ev], now);
    }
    Ok(())
}

async fn page_action(
    AxState(inner): AxState<Arc<Inner>>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let Some(id) = resolve(&inner, &id) else {
        return (StatusCode::NOT_FOUND, Html(error_page("no such order"))).into_response();
    };
    let result = match action.as_str() {
        "pay" => pay(&inner, &id, None),
        "cancel" => cancel(&inner, &id),
        "expire" => expire(&inner, &id),
        _ => return text(StatusCode::NOT_FOUND, "unknown action"),
    };
    if let Err(e) = result {
        return Html(error_page(&e.to_string())).into_response();
    }
    let st = inner.lock();
    let Some(t) = st.ledger.get(&id).cloned() else {
        return text(StatusCode::NOT_FOUND, "no such order");
    };
    if action == "pay" && t.provider == Provider::Alipay {
        if let Some(url) = crate::alipay::return_url(&inner, &st, &t) {
            return Redirect::to(&url).into_response();
        }
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>paybridge sandbox</title></head>\
         <body><h1>Order {}</h1><p id=\"status\">{}</p></body></html>",
        esc(&t.out_trade_no),
        status_of(&t)
    ))
    .into_response()
}

fn trade_json(t: &Trade) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    v["status"] = json!(status_of(t));
    v
}

#[derive(Deserialize)]
struct TradeFilter {
    out_trade_no: Option<String>,
    account: Option<String>,
}

async fn list_trades(
    AxState(inner): AxState<Arc<Inner>>,
    Query(f): Query<TradeFilter>,
) -> Response {
    let st = inner.lock();
    let list: Vec<_> = st
        .ledger
        .trades()
        .filter(|t| f.out_trade_no.as_ref().is_none_or(|o| &t.out_trade_no == o))
        .filter(|t| f.account.as_ref().is_none_or(|a| &t.account == a))
        .map(trade_json)
        .collect();
    json_reply(StatusCode::OK, &json!(list))
}

async fn get_trade(AxState(inner): AxState<Arc<Inner>>, Path(id): Path<String>) -> Response {
    let Some(id) = resolve(&inner, &id) else {
        return json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such trade"}));
    };
    match inner.lock().ledger.get(&id) {
        Some(t) => json_reply(StatusCode::OK, &trade_json(t)),
        None => json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such trade"})),
    }
}

#[derive(Deserialize, Default)]
struct PayBody {
    buyer_id: Option<String>,
}

async fn trade_action(
    AxState(inner): AxState<Arc<Inner>>,
    Path((id, action)): Path<(String, String)>,
    body: Option<Json<PayBody>>,
) -> Response {
    let Some(id) = resolve(&inner, &id) else {
        return json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such trade"}));
    };
    let buyer = body.and_then(|Json(b)| b.buyer_id);
    let result = match action.as_str() {
        "pay" => pay(&inner, &id, buyer.as_deref()),
        "cancel" => cancel(&inner, &id),
        "expire" => expire(&inner, &id),
        "finish" => finish(&inner, &id),
        _ => return json_reply(StatusCode::NOT_FOUND, &json!({"error": "unknown action"})),
    };
    match result {
        Ok(()) => match inner.lock().ledger.get(&id) {
            Some(t) => json_reply(StatusCode::OK, &trade_json(t)),
            None => json_reply(StatusCode::NOT_FOUND, &json!({"error": "no such trade"})),
        },
        Err(e) => json_reply(
            StatusCode::CONFLICT,
            &json!({"error": e.to_string(), "alipay_sub_code": e.alipay().sub_code,
                    "wechat_err_code": e.wechat_v2().0}),
        ),
    }
}

#[derive(Deserialize)]
struct RefundStateBody {
    state: RefundState,
}

async fn refund_state(
    AxState(inner): AxState<Arc<Inner>>,
    Path((id, no)): Path<(String, String)>,
    Json(body): Json<RefundStateBody>,
) -> Response {
    let now = inner.now();
    let mut st = inner.lock();
    match st.ledger.set_refund_state(&id, &no, body.state, now) {
        Ok(ev) => {
            inner.notify_events(&mut st, vec![ev], now);
            json_reply(StatusCode::OK, &json!({"ok": true}))
        }
        Err(e) => json_reply(StatusCode::CONFLICT, &json!({"error": e.to_string()})),
    }
}

#[derive(Deserialize)]
struct FaultBody {
    account: Option<String>,
    trade_id: Option<String>,
    #[serde(default)]
    faults: Faults,
}

async fn set_faults(AxState(inner): AxState<Arc<Inner>>, Json(b): Json<FaultBody>) -> Response {
    let mut st = inner.lock();
    match (b.trade_id, b.account) {
        (Some(t), _) => {
            st.faults.by_trade.insert(t, b.faults);
        }
        (None, Some(a)) => {
            st.faults.by_account.insert(a, b.faults);
        }
        (None, None) => {
            return json_reply(
                StatusCode::BAD_REQUEST,
                &json!({"error": "give account or trade_id"}),
            )
        }
    }
    json_reply(StatusCode::OK, &json!(st.faults))
}

async fn clear_faults(AxState(inner): AxState<Arc<Inner>>) -> Response {
    inner.lock().faults = Default::default();
    json_reply(StatusCode::OK, &json!({"ok": true}))
}

#[derive(Deserialize)]
struct BarcodeBody {
    account: String,
    mode: BarcodeMode,
}

async fn set_barcode(AxState(inner): AxState<Arc<Inner>>, Json(b): Json<BarcodeBody>) -> Response {
    inner.lock().barcode.insert(b.account, b.mode);
    json_reply(StatusCode::OK, &json!({"ok": true}))
}

async fn add_discrepancy(
    AxState(inner): AxState<Arc<Inner>>,
    Json(d): Json<Discrepancy>,
) -> Response {
    inner.lock().discrepancies.push(d);
    json_reply(StatusCode::OK, &json!({"ok": true}))
}

async fn clear_discrepancies(AxState(inner): AxState<Arc<Inner>>) -> Response {
    inner.lock().discrepancies.clear();
    json_reply(StatusCode::OK, &json!({"ok": true}))
}

async fn notifications(AxState(inner): AxState<Arc<Inner>>) -> Response {
    json_reply(StatusCode::OK, &json!(inner.lock().notifier.records()))
}

async fn release(AxState(inner): AxState<Arc<Inner>>) -> Response {
    let now = inner.now();
    let n = inner.lock().notifier.release_held(now);
    json_reply(StatusCode::OK, &json!({"released": n}))
}

async fn tick(AxState(inner): AxState<Arc<Inner>>) -> Response {
    let n = inner.run_due().await;
    json_reply(StatusCode::OK, &json!({"sent": n}))
}

async fn requests(AxState(inner): AxState<Arc<Inner>>) -> Response {
    json_reply(StatusCode::OK, &json!(inner.lock().requests))
}

async fn download(AxState(inner): AxState<Arc<Inner>>, Path(token): Path<String>) -> Response {
    let now = inner.now();
    let st = inner.lock();
    match st.bill_files.get(&token) {
        Some(f) if f.expires_at > now && f.mchid.is_none() => (
            StatusCode::OK,
            [("content-type", f.content_type)],
            f.bytes.clone(),
        )
            .into_response(),
        _ => text(StatusCode::NOT_FOUND, "the download link has expired"),
    }
}

/// Public key material a merchant configures in its SDK (no private keys).
async fn keys(AxState(inner): AxState<Arc<Inner>>) -> Response {
    let k = &inner.keys;
    json_reply(
        StatusCode::OK,
        &json!({
            "alipay": {
                "gateway": format!("{}/gateway.do", inner.base_url),
                "alipay_public_key": k.alipay_public_key.to_base64(),
                "alipay_cert": inner.config.alipay.alipay_cert,
                "alipay_root_cert": inner.config.alipay.root_cert,
                "app_ids": inner.config.alipay.apps.iter().map(|a| a.app_id.clone()).collect::<Vec<_>>(),
            },
            "wechat": {
                "base_url": inner.base_url,
                "serial": k.wechat_serial,
                "public_key": paybridge_crypto::encode_pem("PUBLIC KEY", k.wechat_public_key.spki_der()),
                "platform_cert": inner.config.wechat.platform_cert,
                "mchids": inner.config.wechat.merchants.iter().map(|m| m.mchid.clone()).collect::<Vec<_>>(),
            }
        }),
    )
}
