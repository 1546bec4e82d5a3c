//! The API's error type: every failure a merchant can see, with a stable problem code.
//!
//! Bodies follow RFC 9457 (`application/problem+json`) plus a `code` member that client code
//! switches on. Internal failures are logged with their detail and answered with a bare
//! `internal` problem, so database or provider internals never leak to callers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::service::ServiceError;

/// What a 503 answers in `Retry-After`: overload passes within a second or two.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// Every answer other than success the API gives: the edge's own refusals (authentication,
/// scopes, headers, body size) and whatever a gateway operation failed with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or malformed Authorization header")]
    Unauthenticated,
    #[error("API key is unknown or revoked")]
    InvalidApiKey,
    #[error("this API key lacks the {0} scope")]
    Forbidden(&'static str),
    #[error("the Idempotency-Key header is required on POST")]
    IdempotencyKeyMissing,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("the request body arrived too slowly")]
    BodyTimeout,
    #[error("the request did not complete in time; retry later")]
    Timeout,
    #[error("the gateway is at capacity; retry later")]
    Overloaded,
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl From<paybridge_store::StoreError> for ApiError {
    fn from(e: paybridge_store::StoreError) -> Self {
        ApiError::Service(e.into())
    }
}

impl ApiError {
    pub fn not_found(what: &'static str) -> ApiError {
        ApiError::Service(ServiceError::NotFound(what))
    }

    pub fn validation(detail: impl Into<String>) -> ApiError {
        ApiError::Service(ServiceError::Validation(detail.into()))
    }

    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Service(ServiceError::internal(e))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::IdempotencyKeyMissing => "idempotency_key_missing",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::BodyTimeout => "request_timeout",
            ApiError::Timeout => "timeout",
            ApiError::Overloaded => "overloaded",
            ApiError::Service(e) => match e {
                ServiceError::NotFound(_) => "not_found",
                ServiceError::Validation(_) => "validation_failed",
                ServiceError::UnknownAccount(_) => "unknown_account",
                ServiceError::IdempotencyKeyReused => "idempotency_key_reused",
                ServiceError::IdempotencyInProgress => "idempotency_in_progress",
                ServiceError::Conflict(_) => "conflict",
                ServiceError::InvalidState { .. } => "invalid_state",
                ServiceError::RefundExceedsPayment { .. } => "refund_exceeds_payment",
                ServiceError::ProviderRefused { .. } => "provider_refused",
                ServiceError::ProviderUnknown => "provider_outcome_unknown",
                ServiceError::Storage(_) | ServiceError::Channel(_) | ServiceError::Internal(_) => {
                    "internal"
                }
            },
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::InvalidApiKey => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::IdempotencyKeyMissing => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Timeout | ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Service(e) => match e {
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::Validation(_) | ServiceError::UnknownAccount(_) => {
                    StatusCode::BAD_REQUEST
                }
                ServiceError::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
                ServiceError::IdempotencyInProgress
                | ServiceError::Conflict(_)
                | ServiceError::InvalidState { .. }
                | ServiceError::RefundExceedsPayment { .. } => StatusCode::CONFLICT,
                ServiceError::ProviderRefused { .. } => StatusCode::BAD_GATEWAY,
                ServiceError::ProviderUnknown => StatusCode::ACCEPTED,
                ServiceError::Storage(_) | ServiceError::Channel(_) | ServiceError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    fn is_fault(&self) -> bool {
        matches!(self, ApiError::Service(e) if e.is_fault())
    }

    pub fn body(&self) -> serde_json::Value {
        let detail = if self.is_fault() {
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let mut v = json!({
            "type": format!("https://paybridge.dev/problems/{}", self.code()),
            "title": self.code(),
            "status": self.status().as_u16(),
            "code": self.code(),
            "detail": detail,
        });
        if let ApiError::Service(ServiceError::RefundExceedsPayment { refundable }) = self {
            v["refundable"] = json!(refundable.0);
        }
        v
    }

    /// The answer as stored against an Idempotency-Key, replayed byte for byte.
    pub fn stored_answer(&self) -> (u16, Vec<u8>) {
        (self.status().as_u16(), self.body().to_string().into_bytes())
    }

    /// Logs a fault of ours with its cause (each layer's message includes the one below),
    /// once: where the error becomes a response, and nowhere else.
    pub(crate) fn log_fault(&self) {
        if self.is_fault() {
            let chain = crate::observe::cause_chain(self);
            tracing::error!(error = %chain, code = self.code(), "internal error");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_fault();
        let status = self.status();
        let body = self.body().to_string();
        let mut resp = (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response();
        resp.extensions_mut()
            .insert(crate::observe::ProblemCode(self.code()));
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
        assert_eq!(e.code(), "internal");
        let body = e.body().to_string();
        assert!(!body.contains("hunter2"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn codes_are_stable() {
        let reused = ApiError::Service(ServiceError::IdempotencyKeyReused);
        assert_eq!(reused.code(), "idempotency_key_reused");
        assert_eq!(reused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            ApiError::Forbidden("refund").status(),
            StatusCode::FORBIDDEN
        );
    }
}
