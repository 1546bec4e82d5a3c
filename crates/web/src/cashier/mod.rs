//! The hosted cashier (收银台) under `/cashier/{token}`.
//!
//! One URL for both wallets (聚合码): a desktop shows it as a QR code; opened inside WeChat it
//! pays with JSAPI (the buyer's openid through WeChat's web authorization), inside Alipay with
//! wap pay, in any other phone browser with WeChat H5 or Alipay wap as the buyer picks. Each
//! pick is a wallet order made by the gateway's money path ([`Gateway::cashier_pay`]).
//!
//! The page never decides that anything is paid: it shows the status the gateway derives from
//! its payments (which notifications and queries move), polled from `/cashier/{token}/status`,
//! and goes to the merchant's `return_url` once that says paid.

mod page;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use paybridge_core::channel::ClientAction;
use paybridge_core::{Channel, Scene};
use paybridge_server::service::{CashierChoice, CashierState, CashierStatus, ServiceError};
use paybridge_server::Gateway;
use serde::Deserialize;

use crate::i18n::Lang;
use page::{Notice, View};

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/cashier/:token", get(show))
        .route("/cashier/:token/pay", post(pay))
        .route("/cashier/:token/status", get(status))
        .with_state(gw)
}

/// Where the buyer opened the cashier, from its User-Agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// WeChat's in-app browser (`MicroMessenger`): JSAPI.
    Wechat,
    /// Alipay's in-app browser (`AlipayClient`): wap pay.
    Alipay,
    /// Another phone browser: WeChat H5 or Alipay wap, as the buyer picks.
    Mobile,
    /// A computer: the QR code to scan with either wallet.
    Desktop,
}

impl Client {
    pub fn from_user_agent(ua: &str) -> Client {
        if ua.contains("MicroMessenger") {
            Client::Wechat
        } else if ua.contains("AlipayClient") {
            Client::Alipay
        } else if ["Mobile", "Android", "iPhone", "iPad", "HarmonyOS"]
            .iter()
            .any(|m| ua.contains(m))
        {
            Client::Mobile
        } else {
            Client::Desktop
        }
    }

    fn from_headers(headers: &HeaderMap) -> Client {
        Client::from_user_agent(
            headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
    }
}

/// What WeChat's web authorization sends back.
#[derive(Debug, Deserialize)]
struct ShowQuery {
    code: Option<String>,
    state: Option<String>,
}

/// The `state` of a first authorization and of the one retry after a code that did not work
/// (a reload sends the used code again): a second failure is shown, never looped on.
const AUTH_FIRST: &str = "cashier";
const AUTH_RETRY: &str = "cashier-retry";

/// The buyer's pick on a phone.
#[derive(Debug, Deserialize)]
struct PayForm {
    channel: String,
}

/// Cashier pages carry a capability in their URL: no referrer leaves them (the wallets' pages
/// would otherwise see it), no caching, no framing.
fn page_response(status: StatusCode, html: String) -> Response {
    let mut r = (status, Html(html)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}

fn not_found(lang: Lang) -> Response {
    page_response(StatusCode::NOT_FOUND, page::missing(lang).into_string())
}

fn render(lang: Lang, state: &CashierState, client: Client, notice: Option<Notice>) -> Response {
    let view = View {
        lang,
        state,
        client,
        notice,
        wechat_params: None,
    };
    page_response(StatusCode::OK, page::cashier(&view).into_string())
}

fn client_ip(peer: Option<ConnectInfo<SocketAddr>>) -> Option<String> {
    peer.map(|ConnectInfo(a)| a.ip().to_string())
}

async fn show(
    State(gw): State<Arc<Gateway>>,
    Path(token): Path<String>,
    Query(q): Query<ShowQuery>,
    headers: HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let state = match gw.cashier_by_token(&token).await {
        Ok(s) => s,
        Err(ServiceError::NotFound(_)) => return not_found(lang),
        Err(e) => return failure(lang, &e),
    };
    let client = Client::from_headers(&headers);
    let offers_wechat = state.cashier.wechat_account.is_some();
    if client != Client::Wechat || state.status != CashierStatus::Open || !offers_wechat {
        return render(lang, &state, client, None);
    }
    // Inside WeChat: a JSAPI order needs the buyer's openid, from WeChat's web authorization.
    let Some(code) = q.code.filter(|c| !c.is_empty() && c.len() <= 128) else {
        return match gw.wechat_authorize_url(&state.cashier, &state.url, AUTH_FIRST) {
            Some(url) => Redirect::to(&url).into_response(),
            None => render(lang, &state, client, Some(Notice::WechatUnavailable)),
        };
    };
    let openid = match gw.wechat_openid(&state.cashier, &code).await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(cashier = %state.cashier.id, error = %e, "WeChat web authorization failed");
            if q.state.as_deref() != Some(AUTH_RETRY) {
                if let Some(url) = gw.wechat_authorize_url(&state.cashier, &state.url, AUTH_RETRY) {
                    return Redirect::to(&url).into_response();
                }
            }
            return render(lang, &state, client, Some(Notice::WechatAuthFailed));
        }
    };
    let choice = CashierChoice {
        channel: Channel::Wechat,
        scene: Scene::Jsapi,
        payer_id: Some(openid),
        client_ip: client_ip(peer),
    };
    let payment = match gw.cashier_pay(&token, choice).await {
        Ok(p) => p,
        Err(e) => return failure_on(lang, &state, client, &e),
    };
    let params = payment
        .client_action
        .and_then(|a| serde_json::from_value::<ClientAction>(a).ok())
        .and_then(|a| match a {
            ClientAction::ClientParams { params } => Some(params),
            ClientAction::Redirect { .. }
            | ClientAction::Form { .. }
            | ClientAction::QrCode { .. }
            | ClientAction::AppOrderString { .. }
            | ClientAction::TradeNo { .. }
            | ClientAction::Barcode { .. } => None,
        });
    let Some(params) = params else {
        // Created but not (yet) accepted by WeChat: the page says so and keeps polling.
        return render(lang, &state, client, Some(Notice::WalletPending));
    };
    let view = View {
        lang,
        state: &state,
        client,
        notice: None,
        wechat_params: Some(params),
    };
    page_response(StatusCode::OK, page::cashier(&view).into_string())
}

async fn pay(
    State(gw): State<Arc<Gateway>>,
    Path(token): Path<String>,
    headers: HeaderMap,
    peer: Option<ConnectInfo<SocketAddr>>,
    Form(form): Form<PayForm>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let client = Client::from_headers(&headers);
    let channel = match form.channel.parse::<Channel>() {
        Ok(c) => c,
        Err(_) => return (StatusCode::BAD_REQUEST, "unknown wallet").into_response(),
    };
    // Outside WeChat both wallets pay from the phone's browser: Alipay wap, WeChat H5.
    let choice = CashierChoice {
        channel,
        scene: Scene::Wap,
        payer_id: None,
        client_ip: client_ip(peer),
    };
    match gw.cashier_pay(&token, choice).await {
        Ok(p) => {
            let url = p
                .client_action
                .and_then(|a| serde_json::from_value::<ClientAction>(a).ok())
                .and_then(|a| match a {
                    ClientAction::Redirect { url } | ClientAction::Form { url, .. } => Some(url),
                    ClientAction::QrCode { .. }
                    | ClientAction::AppOrderString { .. }
                    | ClientAction::ClientParams { .. }
                    | ClientAction::TradeNo { .. }
                    | ClientAction::Barcode { .. } => None,
                });
            match url {
                Some(url) => Redirect::to(&url).into_response(),
                None => match gw.cashier_by_token(&token).await {
                    Ok(state) => render(lang, &state, client, Some(Notice::WalletPending)),
                    Err(e) => failure(lang, &e),
                },
            }
        }
        Err(ServiceError::NotFound(_)) => not_found(lang),
        Err(e) => match gw.cashier_by_token(&token).await {
            Ok(state) => failure_on(lang, &state, client, &e),
            Err(_) => failure(lang, &e),
        },
    }
}

/// The page with why the wallet order could not be started (paid or expired meanwhile, the
/// provider refused).
fn failure_on(lang: Lang, state: &CashierState, client: Client, e: &ServiceError) -> Response {
    if e.is_fault() {
        tracing::error!(cashier = %state.cashier.id, error = %e, "cashier wallet order failed");
    } else {
        tracing::info!(cashier = %state.cashier.id, error = %e, "cashier wallet order refused");
    }
    render(lang, state, client, Some(Notice::WalletFailed))
}

fn failure(lang: Lang, e: &ServiceError) -> Response {
    tracing::error!(error = %e, "cashier page failed");
    page_response(
        StatusCode::SERVICE_UNAVAILABLE,
        page::unavailable(lang).into_string(),
    )
}

/// What the page polls: the status as the gateway knows it.
#[derive(Debug, serde::Serialize)]
struct StatusView {
    status: &'static str,
    /// Set once paid: where the page sends the buyer.
    return_url: Option<String>,
    expires_at: i64,
    now: i64,
}

async fn status(State(gw): State<Arc<Gateway>>, Path(token): Path<String>) -> Response {
    match gw.cashier_by_token(&token).await {
        Ok(s) => {
            let paid = matches!(s.status, CashierStatus::Paid { .. });
            let mut r = Json(StatusView {
                status: s.status.as_str(),
                return_url: s.cashier.return_url.clone().filter(|_| paid),
                expires_at: s.cashier.expires_at,
                now: s.now_ms,
            })
            .into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(ServiceError::NotFound(_)) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cashier status failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_route_to_their_wallet() {
        let wechat = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN";
        let alipay = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 AlipayClient/10.6.0.6000 Language/zh-Hans";
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";
        let desktop = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        assert_eq!(Client::from_user_agent(wechat), Client::Wechat);
        assert_eq!(Client::from_user_agent(alipay), Client::Alipay);
        assert_eq!(Client::from_user_agent(android), Client::Mobile);
        assert_eq!(Client::from_user_agent(desktop), Client::Desktop);
        assert_eq!(Client::from_user_agent(""), Client::Desktop);
    }
}
