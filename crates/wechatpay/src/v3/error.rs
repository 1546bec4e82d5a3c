use paybridge_http::TransportError;
use serde::Deserialize;

use super::aead::AeadError;
use super::certs::CertError;
use super::transfer::TransferBillError;
use super::verify::VerifyError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V3Error {
    /// WeChat Pay answered `{code, message, detail}` with a 4xx/5xx status.
    #[error("HTTP {status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        detail: Option<String>,
    },
    #[error("HTTP {status} without an error body")]
    Status { status: u16 },
    #[error("response signature: {0}")]
    Verify(#[from] VerifyError),
    #[error("platform certificates: {0}")]
    Cert(#[from] CertError),
    #[error("response JSON: {0}")]
    Json(String),
    #[error("decryption: {0}")]
    Aead(#[from] AeadError),
    #[error("signing: {0}")]
    Crypto(String),
    #[error("bill: {0}")]
    Bill(String),
    #[error("configuration: {0}")]
    Config(String),
    /// A transfer bill WeChat Pay would refuse, caught before sending.
    #[error("transfer bill: {0}")]
    Transfer(#[from] TransferBillError),
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

impl V3Error {
    /// The typed error for a non-2xx response.
    pub fn from_response(status: u16, body: &[u8]) -> V3Error {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => V3Error::Api {
                status,
                code: e.code,
                message: e.message,
                detail: e.detail.map(|d| d.to_string()),
            },
            Err(_) => V3Error::Status { status },
        }
    }

    pub fn code(&self) -> Option<&str> {
        match self {
            V3Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the same request may be sent again (same `out_trade_no`/`out_refund_no`).
    pub fn retryable(&self) -> bool {
        match self {
            V3Error::Api { status, code, .. } => {
                *status == 429
                    || *status >= 500
                    || matches!(
                        code.as_str(),
                        "SYSTEM_ERROR" | "FREQUENCY_LIMITED" | "BANK_ERROR"
                    )
            }
            V3Error::Status { status } => *status == 429 || *status >= 500,
            V3Error::Transport(t) => t.not_sent(),
            V3Error::Verify(_)
            | V3Error::Cert(_)
            | V3Error::Json(_)
            | V3Error::Aead(_)
            | V3Error::Crypto(_)
            | V3Error::Bill(_)
            | V3Error::Config(_)
            | V3Error::Transfer(_) => false,
        }
    }

    /// Whether WeChat Pay may have acted although we have no trustworthy answer.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            V3Error::Api { status, .. } | V3Error::Status { status } => *status >= 500,
            V3Error::Transport(t) => !t.not_sent(),
            V3Error::Verify(_) | V3Error::Json(_) | V3Error::Aead(_) => true,
            V3Error::Cert(_)
            | V3Error::Crypto(_)
            | V3Error::Bill(_)
            | V3Error::Config(_)
            | V3Error::Transfer(_) => false,
        }
    }
}
