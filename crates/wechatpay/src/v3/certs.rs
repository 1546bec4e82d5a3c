//! Platform certificates: `GET /v3/certificates`, each certificate AEAD-encrypted like a
//! notification resource.
//!
//! Trust: a download is accepted only when its own response signature verifies with a key we
//! already trust. The one exception is the first bootstrap (no platform certificate and no
//! public key held yet), where the response must verify with one of the certificates it
//! delivers: that proves the download is intact and was made with the APIv3 key, which is the
//! most any first contact can prove.

use paybridge_crypto::Certificate;
use serde::{Deserialize, Serialize};

use super::aead::{AeadError, EncryptedResource};
use super::verify::{SignatureHeaders, Verifier, VerifyError};

pub const CERTIFICATES_PATH: &str = "/v3/certificates";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificatesResponse {
    pub data: Vec<CertificateEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEntry {
    pub serial_no: String,
    #[serde(default)]
    pub effective_time: Option<String>,
    #[serde(default)]
    pub expire_time: Option<String>,
    pub encrypt_certificate: EncryptedResource,
}

/// A decrypted platform certificate.
#[derive(Debug, Clone)]
pub struct PlatformCertificate {
    pub serial_no: String,
    /// The decrypted bytes exactly as delivered.
    pub pem: String,
    pub certificate: Certificate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate list: {0}")]
    Json(String),
    #[error("certificate {serial}: {source}")]
    Decrypt { serial: String, source: AeadError },
    #[error("certificate {serial}: {reason}")]
    Certificate { serial: String, reason: String },
    #[error("certificate {listed} decrypts to a certificate with serial {actual}")]
    SerialMismatch { listed: String, actual: String },
    #[error("download signature: {0}")]
    Verify(#[from] VerifyError),
    #[error("no certificates in the download")]
    Empty,
}

/// Decrypts every certificate of a `/v3/certificates` body, checking each serial.
pub fn decrypt_certificates(
    body: &[u8],
    apiv3_key: &[u8],
) -> Result<Vec<PlatformCertificate>, CertError> {
    let resp: CertificatesResponse =
        serde_json::from_slice(body).map_err(|e| CertError::Json(e.to_string()))?;
    resp.data
        .iter()
        .map(|e| decrypt_entry(e, apiv3_key))
        .collect()
}

pub fn decrypt_entry(
    entry: &CertificateEntry,
    apiv3_key: &[u8],
) -> Result<PlatformCertificate, CertError> {
    let serial = entry.serial_no.clone();
    let plain = entry
        .encrypt_certificate
        .decrypt(apiv3_key)
        .map_err(|source| CertError::Decrypt {
            serial: serial.clone(),
            source,
        })?;
    let pem = String::from_utf8(plain).map_err(|_| CertError::Certificate {
        serial: serial.clone(),
        reason: "not UTF-8 PEM".into(),
    })?;
    let certificate = Certificate::from_pem(&pem).map_err(|e| CertError::Certificate {
        serial: serial.clone(),
        reason: e.to_string(),
    })?;
    if !certificate.serial_hex().eq_ignore_ascii_case(serial.trim()) {
        return Err(CertError::SerialMismatch {
            listed: serial,
            actual: certificate.serial_hex(),
        });
    }
    Ok(PlatformCertificate {
        serial_no: serial,
        pem,
        certificate,
    })
}

/// Checks a download and, when it is trustworthy, adds its certificates to `verifier`.
/// Returns the serials added. See the module comment for the trust rule.
pub fn accept_download(
    verifier: &mut Verifier,
    headers: &SignatureHeaders,
    body: &[u8],
    apiv3_key: &[u8],
    now: i64,
) -> Result<Vec<String>, CertError> {
    let certs = decrypt_certificates(body, apiv3_key)?;
    if certs.is_empty() {
        return Err(CertError::Empty);
    }
    let bootstrap = verifier.serials().next().is_none();
    if bootstrap {
        let mut fresh = Verifier::new();
        for c in &certs {
            fresh
                .add_certificate(&c.certificate)
                .map_err(|e| CertError::Certificate {
                    serial: c.serial_no.clone(),
                    reason: e.to_string(),
                })?;
        }
        fresh.verify(headers, body, now)?;
    } else {
        verifier.verify(headers, body, now)?;
    }
    let mut added = Vec::new();
    for c in &certs {
        let serial =
            verifier
                .add_certificate(&c.certificate)
                .map_err(|e| CertError::Certificate {
                    serial: c.serial_no.clone(),
                    reason: e.to_string(),
                })?;
        added.push(serial);
    }
    verifier.prune_expired(now);
    Ok(added)
}
