use paybridge_http::TransportError;

use super::sign::SignError;
use super::xml::{MissingField, XmlError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    #[error("XML: {0}")]
    Xml(#[from] XmlError),
    #[error("signature: {0}")]
    Sign(#[from] SignError),
    #[error("{0}")]
    Missing(#[from] MissingField),
    #[error("field {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// `return_code=FAIL`: the request itself was refused (format, signature, permissions).
    #[error("request refused: {message}")]
    Return { message: String },
    #[error("{0}")]
    Business(#[from] BusinessError),
    #[error("decryption failed: {0}")]
    Crypto(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    #[error("HTTP {status} from WeChat Pay")]
    Http { status: u16 },
}

impl V2Error {
    /// Whether sending the same request again is safe and may succeed.
    pub fn retryable(&self) -> bool {
        match self {
            V2Error::Business(b) => b.retryable(),
            V2Error::Transport(t) => t.not_sent(),
            V2Error::Http { status } => *status >= 500,
            V2Error::Xml(_)
            | V2Error::Sign(_)
            | V2Error::Missing(_)
            | V2Error::Invalid { .. }
            | V2Error::Return { .. }
            | V2Error::Crypto(_)
            | V2Error::Config(_) => false,
        }
    }

    /// Whether the provider may have acted although we saw no valid answer (query first).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            V2Error::Transport(t) => !t.not_sent(),
            V2Error::Http { status } => *status >= 500,
            V2Error::Xml(_) | V2Error::Sign(_) | V2Error::Missing(_) | V2Error::Invalid { .. } => {
                true
            }
            V2Error::Business(b) => b.retryable(),
            V2Error::Return { .. } | V2Error::Crypto(_) | V2Error::Config(_) => false,
        }
    }
}

/// `result_code=FAIL` with its `err_code`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct BusinessError {
    pub code: String,
    pub description: String,
}

impl BusinessError {
    /// Retry advice per the APIv2 error tables: transient conditions may be retried with the same
    /// request (same `out_trade_no` / `out_refund_no`); everything else is a definite answer.
    pub fn retryable(&self) -> bool {
        is_retryable_err_code(&self.code)
    }
}

pub fn is_retryable_err_code(code: &str) -> bool {
    matches!(
        code,
        "SYSTEMERROR" | "USERPAYING" | "BANKERROR" | "FREQUENCY_LIMITED"
    )
}
