//! WeChat official-account web authorization (网页授权), as WeChat runs it: the authorize page
//! (`/connect/oauth2/authorize`) that sends a WeChat browser back with a single-use code, and
//! the exchange (`/sns/oauth2/access_token`) of that code and the app's secret for the buyer's
//! `openid`. The sandbox plays the buyer inside WeChat, so the hosted cashier can make JSAPI
//! orders. The wire shapes are `paybridge_wechatpay::oauth`'s.

use std::sync::Arc;

use axum::extract::{Query, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use paybridge_wechatpay::oauth;
use serde::Deserialize;

use crate::buyer::error_page;
use crate::server::{json_reply, Inner};

/// A code is good for five minutes and one exchange, as WeChat's are.
const CODE_TTL_MS: i64 = 5 * 60_000;

/// The one buyer the sandbox plays, per app: WeChat's openids are per official account.
pub fn sandbox_openid(appid: &str) -> String {
    let digest = paybridge_crypto::sha256(format!("sandbox buyer of {appid}").as_bytes());
    // 28 characters like WeChat's: `o` and 27 hex digits.
    let mut tail: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    tail.truncate(27);
    format!("o{tail}")
}

/// A code issued by the authorize page and not yet exchanged.
#[derive(Debug, Clone)]
pub(crate) struct IssuedCode {
    pub appid: String,
    pub openid: String,
    pub issued_at: i64,
}

#[derive(Deserialize)]
pub(crate) struct AuthorizeQuery {
    appid: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    scope: Option<String>,
    state: Option<String>,
}

fn known_app(inner: &Inner, appid: &str) -> bool {
    inner.config.wechat.merchants.iter().any(|m| {
        m.appid == appid
            || m.sub_merchants
                .iter()
                .any(|s| s.sub_appid.as_deref() == Some(appid))
    })
}

fn app_secret<'a>(inner: &'a Inner, appid: &str) -> Option<&'a str> {
    inner
        .config
        .wechat
        .merchants
        .iter()
        .find(|m| m.appid == appid)
        .and_then(|m| m.app_secret.as_deref())
}

pub(crate) async fn authorize(
    AxState(inner): AxState<Arc<Inner>>,
    headers: HeaderMap,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let refuse = |m: &str| (StatusCode::BAD_REQUEST, Html(error_page(m))).into_response();
    // WeChat authorizes only inside its own browser.
    let in_wechat = headers
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.contains("MicroMessenger"));
    if !in_wechat {
        return refuse("请在微信客户端打开链接 (open this link in WeChat)");
    }
    let Some(appid) = q.appid.filter(|a| known_app(&inner, a)) else {
        return refuse("appid 参数错误 (unknown appid)");
    };
    let Some(redirect_uri) = q
        .redirect_uri
        .filter(|u| url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
    else {
        return refuse("redirect_uri 参数错误 (redirect_uri)");
    };
    if q.response_type.as_deref() != Some("code") {
        return refuse("response_type 参数错误");
    }
    if !matches!(q.scope.as_deref(), Some("snsapi_base" | "snsapi_userinfo")) {
        return refuse("scope 参数错误或没有 scope 权限");
    }
    let code = paybridge_crypto::random_string(32);
    let issued = IssuedCode {
        openid: sandbox_openid(&appid),
        appid,
        issued_at: inner.now(),
    };
    inner.lock().oauth_codes.insert(code.clone(), issued);
    Redirect::to(&oauth::redirect_back(
        &redirect_uri,
        &code,
        q.state.as_deref().unwrap_or(""),
    ))
    .into_response()
}

#[derive(Deserialize)]
pub(crate) struct TokenQuery {
    appid: Option<String>,
    secret: Option<String>,
    code: Option<String>,
    grant_type: Option<String>,
}

pub(crate) async fn access_token(
    AxState(inner): AxState<Arc<Inner>>,
    Query(q): Query<TokenQuery>,
) -> Response {
    // WeChat answers 200 with an errcode for every refusal.
    let refuse = |code: i64, msg: &str| json_reply(StatusCode::OK, &oauth::error_answer(code, msg));
    if q.grant_type.as_deref() != Some("authorization_code") {
        return refuse(40002, "invalid grant_type");
    }
    let Some(appid) = q.appid else {
        return refuse(41002, "appid missing");
    };
    let Some(secret) = app_secret(&inner, &appid) else {
        return refuse(40013, "invalid appid");
    };
    let given = q.secret.unwrap_or_default();
    if !paybridge_crypto::constant_time_eq(given.as_bytes(), secret.as_bytes()) {
        return refuse(40125, "invalid appsecret");
    }
    let Some(code) = q.code else {
        return refuse(41008, "missing code");
    };
    let now = inner.now();
    let issued = inner.lock().oauth_codes.remove(&code);
    match issued {
        Some(c) if c.appid == appid && now - c.issued_at <= CODE_TTL_MS => json_reply(
            StatusCode::OK,
            &oauth::access_token_answer(&paybridge_crypto::random_string(32), &c.openid),
        ),
        // Used, expired, another app's, or never issued.
        Some(_) | None => refuse(40029, "invalid code"),
    }
}
