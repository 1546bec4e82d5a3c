//! The API's error type: every failure a merchant can see, with a stable problem code.
//!
//! Bodies follow RFC 9457 (`application/problem+json`) plus a `code` member that client code
//! switches on. Internal failures are logged with their detail and answered with a bare
//! `internal` problem, so database or provider internals never leak to callers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What a 503 answers in `Retry-After`: overload passes within a second or two.
pub const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or malformed Authorization header")]
    Unauthenticated,
    #[error("API key is unknown or revoked")]
    InvalidApiKey,
    #[error("this API key lacks the {0} scope")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid request: {0}")]
    Validation(String),
    #[error("the Idempotency-Key header is required on POST")]
    IdempotencyKeyMissing,
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still in progress")]
    IdempotencyInProgress,
    #[error("{0}")]
    Conflict(String),
    #[error("payment is {status}; {action} is not possible")]
    InvalidState {
        status: String,
        action: &'static str,
    },
    #[error("refund exceeds the refundable amount ({refundable} fen left)")]
    RefundExceedsPayment { refundable: i64 },
    #[error("the provider refused: {code}: {message}")]
    ProviderRefused { code: String, message: String },
    #[error("the provider's answer is not known yet; the payment will be queried")]
    ProviderUnknown,
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("the request body arrived too slowly")]
    BodyTimeout,
    #[error("the request did not complete in time; retry later")]
    Timeout,
    #[error("the gateway is at capacity; retry later")]
    Overloaded,
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Validation(_) => "validation_failed",
            ApiError::IdempotencyKeyMissing => "idempotency_key_missing",
            ApiError::IdempotencyKeyReused => "idempotency_key_reused",
            ApiError::IdempotencyInProgress => "idempotency_in_progress",
            ApiError::Conflict(_) => "conflict",
            ApiError::InvalidState { .. } => "invalid_state",
            ApiError::RefundExceedsPayment { .. } => "refund_exceeds_payment",
            ApiError::ProviderRefused { .. } => "provider_refused",
            ApiError::ProviderUnknown => "provider_outcome_unknown",
            ApiError::UnknownAccount(_) => "unknown_account",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::BodyTimeout => "request_timeout",
            ApiError::Timeout => "timeout",
            ApiError::Overloaded => "overloaded",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation(_)
            | ApiError::IdempotencyKeyMissing
            | ApiError::UnknownAccount(_) => StatusCode::BAD_REQUEST,
            ApiError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::IdempotencyInProgress
            | ApiError::Conflict(_)
            | ApiError::InvalidState { .. }
            | ApiError::RefundExceedsPayment { .. } => StatusCode::CONFLICT,
            ApiError::ProviderRefused { .. } => StatusCode::BAD_GATEWAY,
            ApiError::ProviderUnknown => StatusCode::ACCEPTED,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Timeout | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }

    pub fn body(&self) -> serde_json::Value {
        let detail = match self {
            ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let mut v = json!({
            "type": format!("https://paybridge.dev/problems/{}", self.code()),
            "title": self.code(),
            "status": self.status().as_u16(),
            "code": self.code(),
            "detail": detail,
        });
        if let ApiError::RefundExceedsPayment { refundable } = self {
            v["refundable"] = json!(refundable);
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "internal error");
        }
        let status = self.status();
        let body = self.body().to_string();
        let mut resp = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        // RFC 6750 section 3: a 401 names the scheme the client must use.
        let challenge = match self {
            ApiError::Unauthenticated => Some("Bearer"),
            ApiError::InvalidApiKey => Some("Bearer error=\"invalid_token\""),
            _ => None,
        };
        if let Some(c) = challenge {
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(c),
            );
        }
        // A 503 is a moment's overload, not a refusal: tell clients when to come back rather
        // than letting them retry at once and deepen it.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_detail_is_not_leaked() {
        let e = ApiError::internal("password=hunter2 at db");
        let body = e.body().to_string();
        assert!(!body.contains("hunter2"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn codes_are_stable() {
        assert_eq!(
            ApiError::IdempotencyKeyReused.code(),
            "idempotency_key_reused"
        );
        assert_eq!(
            ApiError::IdempotencyKeyReused.status(),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            ApiError::Forbidden("refund").status(),
            StatusCode::FORBIDDEN
        );
    }
}
