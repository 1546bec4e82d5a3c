//! APIv3 notifications: verify the `Wechatpay-*` headers over the raw body, then decrypt the
//! resource.

use serde::{Deserialize, Serialize};

use super::aead::{AeadError, EncryptedResource};
use super::model::{Refund, Transaction};
use super::verify::{SignatureHeaders, Verifier, VerifyError};

/// Notifications are small; anything bigger is not WeChat Pay.
pub const MAX_NOTIFY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEnvelope {
    pub id: String,
    #[serde(default)]
    pub create_time: Option<String>,
    pub event_type: String,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    pub resource: EncryptedResource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub envelope: NotifyEnvelope,
    /// The decrypted resource, UTF-8 JSON.
    pub plaintext: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    #[error("notification body is {0} bytes, over the limit")]
    TooLarge(usize),
    #[error("signature: {0}")]
    Verify(#[from] VerifyError),
    #[error("envelope: {0}")]
    Envelope(String),
    #[error("resource: {0}")]
    Decrypt(#[from] AeadError),
    #[error("resource is not UTF-8 JSON of the expected shape: {0}")]
    Resource(String),
}

/// Verifies then decrypts. `now` is Unix seconds; the verifier refuses stale timestamps.
pub fn parse_notify(
    verifier: &Verifier,
    headers: &SignatureHeaders,
    body: &[u8],
    apiv3_key: &[u8],
    now: i64,
) -> Result<Notification, NotifyError> {
    if body.len() > MAX_NOTIFY_BYTES {
        return Err(NotifyError::TooLarge(body.len()));
    }
    verifier.verify(headers, body, now)?;
    decrypt_notify(body, apiv3_key)
}

/// Decryption alone (for a body whose signature was checked elsewhere).
pub fn decrypt_notify(body: &[u8], apiv3_key: &[u8]) -> Result<Notification, NotifyError> {
    if body.len() > MAX_NOTIFY_BYTES {
        return Err(NotifyError::TooLarge(body.len()));
    }
    let envelope: NotifyEnvelope =
        serde_json::from_slice(body).map_err(|e| NotifyError::Envelope(e.to_string()))?;
    let plain = envelope.resource.decrypt(apiv3_key)?;
    let plaintext =
        String::from_utf8(plain).map_err(|_| NotifyError::Resource("not UTF-8".into()))?;
    Ok(Notification {
        envelope,
        plaintext,
    })
}

/// What a notification reports, typed by `event_type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// `TRANSACTION.SUCCESS`
    Transaction(Transaction),
    /// `REFUND.SUCCESS`, `REFUND.ABNORMAL`, `REFUND.CLOSED`
    Refund(Refund),
    /// Anything else (PAYSCORE..., complaints): the raw plaintext is in the notification.
    Other(String),
}

impl Notification {
    pub fn event(&self) -> Result<NotifyEvent, NotifyError> {
        let et = self.envelope.event_type.as_str();
        let bad = |e: serde_json::Error| NotifyError::Resource(e.to_string());
        if et.starts_with("TRANSACTION.") {
            serde_json::from_str(&self.plaintext)
                .map(NotifyEvent::Transaction)
                .map_err(bad)
        } else if et.starts_with("REFUND.") {
            serde_json::from_str(&self.plaintext)
                .map(NotifyEvent::Refund)
                .map_err(bad)
        } else {
            Ok(NotifyEvent::Other(et.to_string()))
        }
    }
}

/// The success reply: 204, no body.
pub const SUCCESS_STATUS: u16 = 204;

/// The failure body WeChat Pay expects with a 4xx/5xx status.
pub fn failure_body(message: &str) -> String {
    serde_json::json!({"code": "FAIL", "message": message}).to_string()
}
