//! Every console form carries a CSRF token, checked by [`guard`] before any POST handler runs:
//! a POST without the right token is answered 403 and reaches nothing.
//!
//! With a session the token is derived from the session token (a keyed digest), so it needs
//! no storage, changes with every login, and cannot be computed by a page that does not hold
//! the HttpOnly session cookie. The login forms, before any session exists, use a random
//! value in a SameSite=Strict cookie that the form must repeat (double submit).

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::SESSION_COOKIE;
use super::ConsoleError;

/// The login forms' double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "pb_login_csrf";
/// The form field holding the token.
pub const FIELD: &str = "csrf";
/// Console forms are a few fields; anything bigger is not one of ours.
const FORM_LIMIT: usize = 64 * 1024;

/// The token of the forms a session renders.
pub fn token_for(session_token: &str) -> String {
    let mut material = b"paybridge console csrf\0".to_vec();
    material.extend_from_slice(session_token.as_bytes());
    hex::encode(paybridge_crypto::sha256(&material))
}

/// A cookie's value from the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty())
}

/// What a POST to `path` must carry: the login cookie's value on the login forms, the session's
/// token everywhere else. `None`: nothing could be right.
fn expected(headers: &HeaderMap, path: &str) -> Option<String> {
    if path == "/console/login" || path == "/console/login/link" {
        cookie(headers, LOGIN_CSRF_COOKIE)
    } else {
        cookie(headers, SESSION_COOKIE).map(|t| token_for(&t))
    }
}

/// The middleware: reads a POST's (bounded) form body, refuses it unless its `csrf` field is
/// the expected token, and hands the body on unchanged.
pub async fn guard(req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return ConsoleError::BadRequest("form too large".into()).into_response();
    };
    let given = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == FIELD)
        .map(|(_, v)| v.into_owned());
    let ok = match (expected(&parts.headers, parts.uri.path()), given) {
        (Some(want), Some(got)) => {
            paybridge_crypto::constant_time_eq(want.as_bytes(), got.as_bytes())
        }
        _ => false,
    };
    if !ok {
        return ConsoleError::Csrf.into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn tokens_follow_the_session_and_the_login_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(expected(&h, "/console/payments/x/refund"), None);
        h.insert(
            header::COOKIE,
            "pb_session=abc; pb_login_csrf=xyz".parse().unwrap(),
        );
        assert_eq!(
            expected(&h, "/console/mode").as_deref(),
            Some(token_for("abc").as_str())
        );
        assert_eq!(expected(&h, "/console/login").as_deref(), Some("xyz"));
        assert_ne!(token_for("abc"), token_for("abd"));
    }
}
