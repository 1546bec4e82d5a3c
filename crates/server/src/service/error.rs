//! What a gateway operation can fail with, in the domain's terms: no HTTP status here. The
//! routes turn it into a problem answer (`crate::error`); the workers decide from it whether a
//! job retries.

use paybridge_core::channel::ChannelError;
use paybridge_core::Fen;
use paybridge_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is malformed or asks for something the account cannot do; nothing was
    /// written.
    #[error("invalid request: {0}")]
    Validation(String),
    #[error("unknown account {0}")]
    UnknownAccount(String),
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
    #[error("refund exceeds the refundable amount ({refundable} left)")]
    RefundExceedsPayment { refundable: Fen },
    /// A definite refusal: the provider did not act. `retryable` refusals (a busy provider,
    /// an empty balance) may succeed when sent again later.
    #[error("the provider refused: {code}: {message}")]
    ProviderRefused {
        code: String,
        message: String,
        retryable: bool,
    },
    #[error("the provider's answer is not known yet; the payment will be queried")]
    ProviderUnknown,
    /// The database failed; the operation had no effect (its transaction rolled back).
    #[error("storage: {0}")]
    Storage(#[source] StoreError),
    /// A channel could not even make the call (configuration, keys, encoding).
    #[error("provider channel: {0}")]
    Channel(#[source] ChannelError),
    /// A rule of ours was broken; the detail says which.
    #[error("internal: {0}")]
    Internal(String),
}

impl ServiceError {
    pub fn internal(e: impl std::fmt::Display) -> ServiceError {
        ServiceError::Internal(e.to_string())
    }

    /// A fault of ours (storage, configuration, a broken rule), not of the request: answered
    /// as a bare `internal` problem, its detail logged once.
    pub fn is_fault(&self) -> bool {
        matches!(
            self,
            ServiceError::Storage(_) | ServiceError::Channel(_) | ServiceError::Internal(_)
        )
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { what, key } => {
                ServiceError::Conflict(format!("{what} {key:?} already exists"))
            }
            StoreError::NotFound { what, .. } => ServiceError::NotFound(what),
            StoreError::RefundExceedsPaid { available, .. } => ServiceError::RefundExceedsPayment {
                refundable: available,
            },
            StoreError::NotRefundable { status, .. } => ServiceError::InvalidState {
                status: status.to_string(),
                action: "refund",
            },
            StoreError::Invalid(m) => ServiceError::Validation(m),
            StoreError::InvalidCursor => ServiceError::Validation("invalid cursor".into()),
            other => ServiceError::Storage(other),
        }
    }
}

/// A provider call's error as the operation's answer: refusals and invalid requests are the
/// caller's to see; an unknown outcome is settled later by a query.
impl From<ChannelError> for ServiceError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Refused {
                code,
                message,
                retryable,
            } => ServiceError::ProviderRefused {
                code,
                message,
                retryable,
            },
            ChannelError::Invalid(m) => ServiceError::Validation(m),
            ChannelError::Unsupported(m) => {
                ServiceError::Validation(format!("{m} is not supported"))
            }
            ChannelError::Unknown { .. } => ServiceError::ProviderUnknown,
            other => ServiceError::Channel(other),
        }
    }
}
