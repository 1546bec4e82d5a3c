#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("invalid base64: {0}")]
    Base64(String),
    #[error("invalid PEM: {0}")]
    Pem(String),
    #[error("unsupported or malformed {kind} key: {reason}")]
    Key { kind: &'static str, reason: String },
    #[error("malformed certificate: {0}")]
    Certificate(String),
    #[error("{cipher}: {reason}")]
    Cipher {
        cipher: &'static str,
        reason: String,
    },
    #[error("password hashing: {0}")]
    Password(String),
    #[error("RSA signing failed")]
    Sign,
    #[error("RSA encryption/decryption failed: {0}")]
    Rsa(String),
}

impl CryptoError {
    pub(crate) fn cipher(cipher: &'static str, reason: impl Into<String>) -> Self {
        CryptoError::Cipher {
            cipher,
            reason: reason.into(),
        }
    }
}
