//! Who is using the console and what they may do.
//!
//! - Login with a password (argon2id, checked off the async threads) or a one-time link; both
//!   end in a server-side session whose random token is the HttpOnly, SameSite=Strict cookie
//!   (`Secure` behind https) and whose SHA-256 alone is stored.
//! - Throttling: after [`USER_FAILURES`] failed logins of a username, or [`ADDR_FAILURES`]
//!   from one address, within [`THROTTLE_WINDOW_MS`], logins are refused without even checking
//!   the password, until the window has passed.
//! - [`Action`] and [`Action::allowed`]: the one table of what each role may do; a handler asks
//!   [`Session::act`] once per action and gets the service's caller only when allowed.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use paybridge_core::Mode;
use paybridge_crypto::Secret;
use paybridge_server::service::OperatorCaller;
use paybridge_store::{Audit, Operator, OperatorRole};
use serde::Deserialize;

use super::csrf::{self, LOGIN_CSRF_COOKIE};
use super::{layout, Console, ConsoleError};
use crate::i18n::{Lang, LANG_COOKIE};

pub const SESSION_COOKIE: &str = "pb_session";
/// A login link works once, within this time.
pub const LOGIN_LINK_TTL_MS: i64 = 15 * 60_000;
pub const USER_FAILURES: i64 = 5;
pub const ADDR_FAILURES: i64 = 20;
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60_000;

/// Everything an operator can do in the console.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    Refund,
    Close,
    Redeliver,
    /// Start reconciliation runs, resolve discrepancies.
    Reconcile,
    ManageApiKeys,
    ManageOperators,
}

impl Action {
    /// The role table: admin everything, support reads and the money-adjacent fixes, viewer
    /// reads only.
    pub fn allowed(self, role: OperatorRole) -> bool {
        match role {
            OperatorRole::Admin => true,
            OperatorRole::Support => matches!(
                self,
                Action::Read | Action::Refund | Action::Close | Action::Redeliver
            ),
            OperatorRole::Viewer => matches!(self, Action::Read),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Refund => "refund",
            Action::Close => "close payments",
            Action::Redeliver => "redeliver webhooks",
            Action::Reconcile => "reconcile",
            Action::ManageApiKeys => "manage API keys",
            Action::ManageOperators => "manage operators",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A logged-in operator's request: who, in which mode, in which language.
pub struct Session {
    pub operator: Operator,
    pub mode: Mode,
    pub lang: Lang,
    token: Secret<String>,
}

impl Session {
    /// The CSRF token this session's forms carry.
    pub fn csrf(&self) -> String {
        csrf::token_for(self.token.expose())
    }

    /// The one authorization decision of an action: the service's caller for it (scoped to the
    /// session's mode, signing the audit with the operator and `reason`), or `Forbidden`.
    pub fn act(
        &self,
        action: Action,
        reason: Option<&str>,
    ) -> Result<OperatorCaller, ConsoleError> {
        if !action.allowed(self.operator.role) {
            return Err(ConsoleError::Forbidden(action));
        }
        Ok(OperatorCaller {
            operator_id: self.operator.id.clone(),
            username: self.operator.username.clone(),
            mode: self.mode,
            reason: reason.map(str::to_string),
        })
    }

    pub fn may(&self, action: Action) -> bool {
        action.allowed(self.operator.role)
    }

    pub fn text(&self, en: &'static str, zh: &'static str) -> &'static str {
        self.lang.text(en, zh)
    }
}

#[async_trait]
impl FromRequestParts<Arc<Console>> for Session {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, c: &Arc<Console>) -> Result<Self, ConsoleError> {
        let token =
            csrf::cookie(&parts.headers, SESSION_COOKIE).ok_or(ConsoleError::LoginRequired)?;
        if token.len() > 128 {
            return Err(ConsoleError::LoginRequired);
        }
        let session =
            c.gw.store
                .session(&token, c.sessions)
                .await?
                .ok_or(ConsoleError::LoginRequired)?;
        Ok(Session {
            operator: session.operator,
            mode: session.mode,
            lang: Lang::from_headers(&parts.headers),
            token: Secret::new(token),
        })
    }
}

fn cookie_header(c: &Console, name: &str, value: &str, max_age_s: i64) -> HeaderValue {
    let secure = if c.secure_cookies { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The double-submit value of the login forms: the browser's, or a new one to set.
fn login_csrf(headers: &HeaderMap) -> (String, bool) {
    match csrf::cookie(headers, LOGIN_CSRF_COOKIE) {
        Some(v) if v.len() <= 128 => (v, false),
        _ => (paybridge_crypto::random_string(32), true),
    }
}

fn login_form(lang: Lang, token: &str, error: Option<&str>) -> Markup {
    html! {
        main.narrow {
            h1 { "paybridge " (lang.text("console", "控制台")) }
            @if let Some(e) = error { p.error role="alert" { (e) } }
            form.card method="post" action="/console/login" {
                input type="hidden" name=(csrf::FIELD) value=(token);
                label { (lang.text("Username", "用户名"))
                    input name="username" autocomplete="username" required autofocus; }
                label { (lang.text("Password", "密码"))
                    input name="password" type="password" autocomplete="current-password" required; }
                button type="submit" { (lang.text("Log in", "登录")) }
            }
            (layout::lang_links(lang))
        }
    }
}

fn login_response(
    c: &Console,
    headers: &HeaderMap,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let lang = Lang::from_headers(headers);
    let (token, new) = login_csrf(headers);
    let page = layout::bare(
        lang,
        lang.text("Log in", "登录"),
        login_form(lang, &token, error),
    );
    let mut resp = (status, page).into_response();
    if new {
        resp.headers_mut().append(
            header::SET_COOKIE,
            cookie_header(c, LOGIN_CSRF_COOKIE, &token, 3600),
        );
    }
    resp
}

pub async fn login_page(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    login_response(&c, &headers, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

/// A PHC string no password matches in practice, verified for unknown usernames so that the
/// answer takes as long as for a known one.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        paybridge_crypto::hash_password(&paybridge_crypto::random_string(32)).unwrap_or_default()
    })
}

pub async fn login(
    State(c): State<Arc<Console>>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Result<Response, ConsoleError> {
    let lang = Lang::from_headers(&headers);
    let store = &c.gw.store;
    let user_subject = format!("user:{}", form.username);
    let addr_subject = format!(
        "addr:{}",
        peer.map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string())
    );
    let throttled = store
        .login_failures(&user_subject, THROTTLE_WINDOW_MS)
        .await?
        >= USER_FAILURES
        || store
            .login_failures(&addr_subject, THROTTLE_WINDOW_MS)
            .await?
            >= ADDR_FAILURES;
    if throttled {
        let msg = lang.text(
            "Too many failed logins. Try again in 15 minutes.",
            "登录失败次数过多，请 15 分钟后再试。",
        );
        return Ok(login_response(
            &c,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(msg),
        ));
    }
    let found = if form.username.len() <= 64 && form.password.len() <= 1024 {
        store.operator_credentials(&form.username).await?
    } else {
        None
    };
    let (operator, hash) = match found {
        Some((op, hash)) if !op.disabled => (Some(op), hash.expose().clone()),
        _ => (None, decoy_hash().to_string()),
    };
    let password = form.password;
    let matches =
        tokio::task::spawn_blocking(move || paybridge_crypto::verify_password(&password, &hash))
            .await
            .unwrap_or(false);
    let Some(operator) = operator.filter(|_| matches) else {
        store
            .record_login_failure(&[&user_subject, &addr_subject], THROTTLE_WINDOW_MS)
            .await?;
        let msg = lang.text("Wrong username or password.", "用户名或密码错误。");
        return Ok(login_response(
            &c,
            &headers,
            StatusCode::UNAUTHORIZED,
            Some(msg),
        ));
    };
    store.clear_login_failures(&user_subject).await?;
    start_session(&c, &operator, "password").await
}

/// The session after a successful login: a fresh token (a session is never carried over from
/// before the login), the cookie, and the login in the audit log.
async fn start_session(
    c: &Console,
    operator: &Operator,
    how: &str,
) -> Result<Response, ConsoleError> {
    // Operators land in live mode when the gateway has live accounts, else in sandbox.
    let mode = if c.gw.accounts().values().any(|a| a.mode == Mode::Live) {
        Mode::Live
    } else {
        Mode::Sandbox
    };
    let token =
        c.gw.store
            .create_session(&operator.id, mode, c.sessions)
            .await?;
    c.gw.store
        .record_action(
            &Audit::new(
                format!("operator:{}", operator.username),
                format!("login ({how})"),
            ),
            "operator",
            &operator.id,
            "logged_in",
        )
        .await?;
    let mut resp = Redirect::to("/console").into_response();
    let max_age = c.sessions.absolute_ms / 1000;
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(c, SESSION_COOKIE, token.expose(), max_age),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(c, LOGIN_CSRF_COOKIE, "", 0),
    );
    Ok(resp)
}

#[derive(Deserialize)]
pub struct LinkQuery {
    token: Option<String>,
}

/// The one-time link's landing page. It does not log in by itself (a link preview or a
/// prefetch must not use the link up): its button posts the token.
pub async fn link_page(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Query(q): Query<LinkQuery>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let (csrf_token, new) = login_csrf(&headers);
    let body = html! {
        main.narrow {
            h1 { "paybridge " (lang.text("console", "控制台")) }
            form.card method="post" action="/console/login/link" {
                input type="hidden" name=(csrf::FIELD) value=(csrf_token);
                input type="hidden" name="token" value=(q.token.unwrap_or_default());
                p { (lang.text("This one-time link logs you in once.", "此一次性链接只能登录一次。")) }
                button type="submit" { (lang.text("Continue to the console", "进入控制台")) }
            }
        }
    };
    let mut resp = layout::bare(lang, lang.text("Log in", "登录"), body).into_response();
    if new {
        resp.headers_mut().append(
            header::SET_COOKIE,
            cookie_header(&c, LOGIN_CSRF_COOKIE, &csrf_token, 3600),
        );
    }
    resp
}

#[derive(Deserialize)]
pub struct LinkForm {
    token: String,
}

pub async fn link_login(
    State(c): State<Arc<Console>>,
    headers: HeaderMap,
    Form(form): Form<LinkForm>,
) -> Result<Response, ConsoleError> {
    let operator = if form.token.len() <= 128 {
        c.gw.store.redeem_login_token(&form.token).await?
    } else {
        None
    };
    match operator {
        Some(op) => start_session(&c, &op, "one-time link").await,
        None => {
            let lang = Lang::from_headers(&headers);
            let msg = lang.text(
                "This login link was used already or has expired.",
                "此登录链接已使用或已过期。",
            );
            Ok(login_response(
                &c,
                &headers,
                StatusCode::UNAUTHORIZED,
                Some(msg),
            ))
        }
    }
}

pub async fn logout(
    State(c): State<Arc<Console>>,
    session: Session,
) -> Result<Response, ConsoleError> {
    c.gw.store.delete_session(session.token.expose()).await?;
    let mut resp = Redirect::to("/console/login").into_response();
    resp.headers_mut()
        .append(header::SET_COOKIE, cookie_header(&c, SESSION_COOKIE, "", 0));
    Ok(resp)
}

#[derive(Deserialize)]
pub struct ModeForm {
    mode: String,
}

/// Switches the session's mode. It lands on the dashboard: a page of the other mode's ids would
/// not exist in this one.
pub async fn switch_mode(
    State(c): State<Arc<Console>>,
    session: Session,
    Form(form): Form<ModeForm>,
) -> Result<Response, ConsoleError> {
    let mode: Mode = form
        .mode
        .parse()
        .map_err(|_| ConsoleError::BadRequest("mode: live or sandbox".into()))?;
    c.gw.store
        .set_session_mode(session.token.expose(), mode)
        .await?;
    Ok(Redirect::to("/console").into_response())
}

/// Sets the language cookie (a preference, not an action: a plain link).
pub async fn switch_lang(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console").map(|i| r[i..].to_string()))
        .filter(|p| !p.starts_with("/console/lang") && !p.contains("//"))
        .unwrap_or_else(|| "/console".to_string());
    let mut resp = Redirect::to(&back).into_response();
    let value = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Lax; Max-Age=31536000",
        match lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    );
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_role_table() {
        let support = [
            Action::Read,
            Action::Refund,
            Action::Close,
            Action::Redeliver,
        ];
        let admin_only = [
            Action::Reconcile,
            Action::ManageApiKeys,
            Action::ManageOperators,
        ];
        for a in support.into_iter().chain(admin_only) {
            assert!(a.allowed(OperatorRole::Admin));
            assert_eq!(a.allowed(OperatorRole::Support), support.contains(&a));
            assert_eq!(a.allowed(OperatorRole::Viewer), a == Action::Read);
        }
    }
}
