//! The edge's extractors: who is calling with which scope (`Bearer` API keys), and the request
//! body within the size limit. A handler names what it needs in its signature; a request that
//! lacks it is refused before the handler runs (and before its body is read).

use std::marker::PhantomData;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use paybridge_store::{ApiKey, ApiScope};

use super::AppState;
use crate::error::ApiError;

/// A scope a route requires.
pub trait Scope: Send + Sync + 'static {
    const SCOPE: ApiScope;
}

pub struct ReadScope;
pub struct WriteScope;
pub struct RefundScope;

impl Scope for ReadScope {
    const SCOPE: ApiScope = ApiScope::Read;
}
impl Scope for WriteScope {
    const SCOPE: ApiScope = ApiScope::Write;
}
impl Scope for RefundScope {
    const SCOPE: ApiScope = ApiScope::Refund;
}

/// The caller's API key, known to hold scope `S`.
pub struct Authed<S: Scope> {
    pub key: ApiKey,
    _scope: PhantomData<S>,
}

pub type ReadKey = Authed<ReadScope>;
pub type WriteKey = Authed<WriteScope>;
pub type RefundKey = Authed<RefundScope>;

/// The API key of an `Authorization: Bearer <key>` value: the scheme case-insensitive
/// (RFC 9110 §11.1), the key non-empty and no longer than any key we issue (so a huge header is
/// never hashed and looked up).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.len() <= 256)
        .then_some(token)
}

fn header_token(headers: &HeaderMap) -> Option<&str> {
    bearer_token(
        headers
            .get(axum::http::header::AUTHORIZATION)?
            .to_str()
            .ok()?,
    )
}

#[async_trait]
impl<S: Scope> FromRequestParts<AppState> for Authed<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, ApiError> {
        let token = header_token(&parts.headers).ok_or(ApiError::Unauthenticated)?;
        let key =
            s.gw.store
                .authenticate(token)
                .await?
                .ok_or(ApiError::InvalidApiKey)?;
        if !key.allows(S::SCOPE) {
            return Err(ApiError::Forbidden(S::SCOPE.as_str()));
        }
        Ok(Authed {
            key,
            _scope: PhantomData,
        })
    }
}

/// The request body, at most the configured `max_body_bytes`.
pub struct LimitedBody(pub Bytes);

#[async_trait]
impl FromRequest<AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, ApiError> {
        super::read_body(req.into_body(), s.max_body_bytes)
            .await
            .map(LimitedBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            axum::http::HeaderValue::from_str(v).unwrap_or_else(|_| unreachable!()),
        );
        h
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(header_token(&auth("Bearer pb_1")), Some("pb_1"));
        assert_eq!(header_token(&auth("bearer pb_1")), Some("pb_1"));
        assert_eq!(header_token(&auth("BEARER  pb_1 ")), Some("pb_1"));
        assert_eq!(header_token(&auth("Basic cGI6")), None);
        assert_eq!(header_token(&auth("Bearer ")), None);
        assert_eq!(header_token(&auth("Bearer")), None);
        assert_eq!(
            header_token(&auth(&format!("Bearer {}", "x".repeat(257)))),
            None
        );
        assert_eq!(header_token(&HeaderMap::new()), None);
    }
}
