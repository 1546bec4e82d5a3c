//! `AEAD_AES_256_GCM`: the encryption of notification resources and platform certificates.

use paybridge_crypto::{aes_gcm_decrypt, aes_gcm_encrypt, b64_decode, b64_encode};
use serde::{Deserialize, Serialize};

pub const ALGORITHM: &str = "AEAD_AES_256_GCM";
const TAG_LEN: usize = 16;

/// An encrypted resource as it appears in notifications (`resource`) and certificate downloads
/// (`encrypt_certificate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResource {
    pub algorithm: String,
    pub ciphertext: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub associated_data: Option<String>,
    pub nonce: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeadError {
    #[error("unsupported algorithm {0:?}")]
    Algorithm(String),
    #[error("APIv3 key is {0} bytes; expected 32")]
    KeyLength(usize),
    #[error("nonce is {0} bytes; expected 12")]
    NonceLength(usize),
    #[error("ciphertext: {0}")]
    Ciphertext(String),
    #[error("authentication failed (wrong APIv3 key, nonce or associated data)")]
    Authentication,
}

/// Decrypts `base64(ct || tag)` with the APIv3 key's ASCII bytes. Lengths are checked before the
/// cipher runs. The key length picks the cipher (32 bytes in production; the 16-byte keys of
/// some SDK test suites give AES-128-GCM); 16-byte nonces, used by a few SDKs, are accepted.
pub fn decrypt(
    apiv3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext_b64: &str,
) -> Result<Vec<u8>, AeadError> {
    check_lengths(apiv3_key, nonce)?;
    let data = b64_decode(ciphertext_b64).map_err(|e| AeadError::Ciphertext(e.to_string()))?;
    if data.len() < TAG_LEN {
        return Err(AeadError::Ciphertext(format!(
            "{} bytes, shorter than the tag",
            data.len()
        )));
    }
    aes_gcm_decrypt(
        apiv3_key,
        nonce.as_bytes(),
        associated_data.as_bytes(),
        &data,
    )
    .map_err(|_| AeadError::Authentication)
}

pub fn encrypt(
    apiv3_key: &[u8],
    nonce: &str,
    associated_data: &str,
    plaintext: &[u8],
) -> Result<String, AeadError> {
    check_lengths(apiv3_key, nonce)?;
    let ct = aes_gcm_encrypt(
        apiv3_key,
        nonce.as_bytes(),
        associated_data.as_bytes(),
        plaintext,
    )
    .map_err(|e| AeadError::Ciphertext(e.to_string()))?;
    Ok(b64_encode(ct))
}

fn check_lengths(key: &[u8], nonce: &str) -> Result<(), AeadError> {
    if key.len() != 32 && key.len() != 16 {
        return Err(AeadError::KeyLength(key.len()));
    }
    if nonce.len() != 12 && nonce.len() != 16 {
        return Err(AeadError::NonceLength(nonce.len()));
    }
    Ok(())
}

impl EncryptedResource {
    pub fn decrypt(&self, apiv3_key: &[u8]) -> Result<Vec<u8>, AeadError> {
        if self.algorithm != ALGORITHM {
            return Err(AeadError::Algorithm(self.algorithm.clone()));
        }
        decrypt(
            apiv3_key,
            &self.nonce,
            self.associated_data.as_deref().unwrap_or(""),
            &self.ciphertext,
        )
    }

    pub fn encrypt(
        apiv3_key: &[u8],
        nonce: &str,
        associated_data: &str,
        original_type: Option<&str>,
        plaintext: &[u8],
    ) -> Result<EncryptedResource, AeadError> {
        Ok(EncryptedResource {
            algorithm: ALGORITHM.to_string(),
            ciphertext: encrypt(apiv3_key, nonce, associated_data, plaintext)?,
            associated_data: Some(associated_data.to_string()),
            nonce: nonce.to_string(),
            original_type: original_type.map(str::to_string),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn lengths_checked_before_cipher() {
        let key = [b'k'; 32];
        let r = EncryptedResource::encrypt(&key, "123456789012", "aad", Some("transaction"), b"hi")
            .unwrap();
        assert_eq!(r.decrypt(&key).unwrap(), b"hi");
        assert_eq!(
            decrypt(&key, "short", "aad", &r.ciphertext),
            Err(AeadError::NonceLength(5))
        );
        assert_eq!(
            decrypt(&key[..5], "123456789012", "aad", &r.ciphertext),
            Err(AeadError::KeyLength(5))
        );
        assert!(matches!(
            decrypt(&key, "123456789012", "aad", "AAAA"),
            Err(AeadError::Ciphertext(_))
        ));
        assert_eq!(
            decrypt(&key, "123456789012", "x", &r.ciphertext),
            Err(AeadError::Authentication)
        );
        let bad = EncryptedResource {
            algorithm: "RSA".into(),
            ..r
        };
        assert!(matches!(bad.decrypt(&key), Err(AeadError::Algorithm(_))));
    }
}
