//! The payee's side of payouts and their control API. `/_sandbox/wallet/{key}` is WeChat's
//! confirmation page (the key is the bill's `package_info`, its `transfer_bill_no` or the
//! sandbox id): the payee collects, refuses, or lets it time out. Tests do the same through
//! `POST /_sandbox/payouts/{key}/{confirm|refuse|expire}`; failures on demand and balances are
//! set under `/_sandbox/payout-faults` and `/_sandbox/balances`.

use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use paybridge_core::Fen;
use serde::Deserialize;
use serde_json::json;

use crate::ledger::Family;
use crate::payouts::{Payout, PayoutError, PayoutFault, PayoutFaultBook};
use crate::server::{json_reply, text, Inner};

pub(crate) fn routes() -> Router<Arc<Inner>> {
    Router::new()
        .route("/_sandbox/wallet/:key", get(page))
        .route("/_sandbox/wallet/:key/:action", post(page_action))
        .route("/_sandbox/payouts", get(list))
        .route("/_sandbox/payouts/:key", get(one))
        .route("/_sandbox/payouts/:key/:action", post(action))
        .route(
            "/_sandbox/payout-faults",
            put(set_fault).delete(clear_faults),
        )
        .route("/_sandbox/balances", put(set_balance))
        .route("/_sandbox/balances/:account", get(balance))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn status_word(p: &Payout) -> &'static str {
    match p.family {
        Family::Wechat => p.state.wechat(),
        Family::Alipay => p.state.alipay(),
    }
}

fn payout_json(inner: &Inner, p: &Payout) -> serde_json::Value {
    let mut v = serde_json::to_value(p).unwrap_or_default();
    v["status"] = json!(status_word(p));
    v["wallet_url"] = json!(format!("{}/_sandbox/wallet/{}", inner.base_url, p.id));
    v
}

fn resolve(inner: &Inner, key: &str) -> Option<Payout> {
    inner.lock().payouts.resolve(key).cloned()
}

/// Runs a payee action and queues the notification of the final state it reaches.
fn apply(inner: &Inner, key: &str, action: &str) -> Result<Payout, (StatusCode, String)> {
    let now = inner.now();
    let mut st = inner.lock();
    let Some(id) = st.payouts.resolve(key).map(|p| p.id.clone()) else {
        return Err((StatusCode::NOT_FOUND, "no such payout".into()));
    };
    let done = match action {
        "confirm" => st.payouts.confirm(&id, now),
        "refuse" => st.payouts.refuse(&id, now),
        "expire" => st.payouts.expire(&id, now),
        _ => return Err((StatusCode::NOT_FOUND, "unknown action".into())),
    };
    match done {
        Ok(f) => inner.notify_payouts(&mut st, vec![f], now),
        Err(e @ PayoutError::State(_)) => return Err((StatusCode::CONFLICT, e.to_string())),
        Err(e) => return Err((StatusCode::BAD_REQUEST, e.to_string())),
    }
    st.payouts
        .get(&id)
        .cloned()
        .ok_or((StatusCode::NOT_FOUND, "no such payout".into()))
}

async fn page(AxState(inner): AxState<Arc<Inner>>, Path(key): Path<String>) -> Response {
    let Some(p) = resolve(&inner, &key) else {
        return (
            StatusCode::NOT_FOUND,
            Html(crate::buyer::error_page("no such transfer")),
        )
            .into_response();
    };
    let provider = match p.family {
        Family::Wechat => "WeChat Pay",
        Family::Alipay => "Alipay",
    };
    let key = esc(&p.id);
    let buttons = if p.state.is_final() {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"/_sandbox/wallet/{key}/confirm\"><button id=\"confirm\">Collect ¥{amount}</button></form>\
             <form method=\"post\" action=\"/_sandbox/wallet/{key}/refuse\"><button id=\"refuse\">Refuse</button></form>\
             <form method=\"post\" action=\"/_sandbox/wallet/{key}/expire\"><button id=\"expire\">Let it time out</button></form>",
            amount = p.amount.to_yuan()
        )
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>paybridge sandbox: collect a transfer</title></head><body>\
         <h1>{provider} sandbox: a transfer for you</h1>\
         <dl><dt>From merchant</dt><dd id=\"account\">{account}</dd>\
         <dt>Transfer</dt><dd id=\"out_no\">{out}</dd>\
         <dt>Remark</dt><dd id=\"remark\">{remark}</dd>\
         <dt>Amount</dt><dd id=\"amount\">¥{amount}</dd>\
         <dt>Status</dt><dd id=\"status\">{status}</dd></dl>{buttons}</body></html>",
        account = esc(&p.account),
        out = esc(&p.out_no),
        remark = esc(&p.remark),
        amount = p.amount.to_yuan(),
        status = status_word(&p),
    ))
    .into_response()
}

async fn page_action(
    AxState(inner): AxState<Arc<Inner>>,
    Path((key, action)): Path<(String, String)>,
) -> Response {
    match apply(&inner, &key, &action) {
        Ok(p) => Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>paybridge sandbox</title></head>\
             <body><h1>Transfer {}</h1><p id=\"status\">{}</p></body></html>",
            esc(&p.out_no),
            status_word(&p)
        ))
        .into_response(),
        Err((status, e)) => (status, Html(crate::buyer::error_page(&e))).into_response(),
    }
}

#[derive(Deserialize)]
struct Filter {
    out_no: Option<String>,
    account: Option<String>,
}

async fn list(AxState(inner): AxState<Arc<Inner>>, Query(f): Query<Filter>) -> Response {
    let st = inner.lock();
    let items: Vec<_> = st
        .payouts
        .all()
        .iter()
        .filter(|p| f.out_no.as_ref().is_none_or(|o| &p.out_no == o))
        .filter(|p| f.account.as_ref().is_none_or(|a| &p.account == a))
        .map(|p| payout_json(&inner, p))
        .collect();
    json_reply(StatusCode::OK, &json!(items))
}

async fn one(AxState(inner): AxState<Arc<Inner>>, Path(key): Path<String>) -> Response {
    match resolve(&inner, &key) {
        Some(p) => json_reply(StatusCode::OK, &payout_json(&inner, &p)),
        None => text(StatusCode::NOT_FOUND, "no such payout"),
    }
}

async fn action(
    AxState(inner): AxState<Arc<Inner>>,
    Path((key, action)): Path<(String, String)>,
) -> Response {
    match apply(&inner, &key, &action) {
        Ok(p) => json_reply(StatusCode::OK, &payout_json(&inner, &p)),
        Err((status, e)) => json_reply(status, &json!({ "error": e })),
    }
}

#[derive(Deserialize)]
struct FaultBody {
    account: Option<String>,
    out_no: Option<String>,
    fault: PayoutFault,
}

async fn set_fault(AxState(inner): AxState<Arc<Inner>>, Json(b): Json<FaultBody>) -> Response {
    let mut st = inner.lock();
    match (b.out_no, b.account) {
        (Some(no), _) => {
            st.payout_faults.by_out_no.insert(no, b.fault);
        }
        (None, Some(a)) => {
            st.payout_faults.by_account.insert(a, b.fault);
        }
        (None, None) => return text(StatusCode::BAD_REQUEST, "account or out_no is required"),
    }
    json_reply(StatusCode::OK, &json!(st.payout_faults))
}

async fn clear_faults(AxState(inner): AxState<Arc<Inner>>) -> Response {
    inner.lock().payout_faults = PayoutFaultBook::default();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct BalanceBody {
    account: String,
    /// Fen.
    available: i64,
}

async fn set_balance(AxState(inner): AxState<Arc<Inner>>, Json(b): Json<BalanceBody>) -> Response {
    if b.available < 0 {
        return text(StatusCode::BAD_REQUEST, "available must not be negative");
    }
    inner
        .lock()
        .payouts
        .set_balance(&b.account, Fen(b.available));
    json_reply(
        StatusCode::OK,
        &json!({"account": b.account, "available": b.available}),
    )
}

async fn balance(AxState(inner): AxState<Arc<Inner>>, Path(account): Path<String>) -> Response {
    let fen = inner.lock().payouts.balance(&account);
    json_reply(
        StatusCode::OK,
        &json!({"account": account, "available": fen.as_i64(), "available_yuan": fen.to_yuan()}),
    )
}
