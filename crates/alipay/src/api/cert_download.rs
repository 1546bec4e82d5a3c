//! `alipay.open.app.alipaycert.download`: the Alipay public certificate an SN names. Alipay
//! rotates its certificate; a response then carries an `alipay_cert_sn` we do not hold, and the
//! client fetches that certificate, checks it chains to the configured root and only then
//! trusts it (as the official SDKs do), so a rotation never stalls the account.

use paybridge_crypto::b64_decode;
use serde::{Deserialize, Serialize};

use super::alipay_api;
use crate::config::AlipayConfig;
use crate::response::{check_code, split_response, verify_content};
use crate::AlipayError;

pub const METHOD: &str = "alipay.open.app.alipaycert.download";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlipayCertDownload {
    pub alipay_cert_sn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AlipayCertDownloadResponse {
    /// Base64 of the certificate file (PEM, the leaf possibly followed by its chain).
    pub alipay_cert_content: String,
}

alipay_api!(
    AlipayCertDownload,
    "alipay.open.app.alipaycert.download",
    AlipayCertDownloadResponse,
    idempotent = true
);

/// The certificate text of `alipay_cert_content`: base64 of a PEM file, or of one DER
/// certificate (turned into PEM).
pub fn decode_cert_content(content: &str) -> Result<String, AlipayError> {
    let malformed = |reason: String| AlipayError::MalformedResponse {
        method: METHOD.into(),
        reason,
    };
    let bytes =
        b64_decode(content.trim()).map_err(|e| malformed(format!("alipay_cert_content: {e}")))?;
    match String::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => Ok(text),
        Ok(text) => Ok(paybridge_crypto::encode_pem("CERTIFICATE", text.as_bytes())),
        Err(e) => Ok(paybridge_crypto::encode_pem("CERTIFICATE", e.as_bytes())),
    }
}

/// Reads the answer to a download of `asked_sn` and, when it holds, trusts the certificate:
/// the certificate must be the one asked for, valid now and chained to a configured root; the
/// answer's own signature must verify with it (or with the trusted certificate its
/// `alipay_cert_sn` names). Returns the SN now trusted.
pub fn accept_download(
    config: &AlipayConfig,
    raw: &str,
    asked_sn: &str,
    now: i64,
) -> Result<String, AlipayError> {
    let set = config
        .keys
        .certificates()
        .ok_or_else(|| AlipayError::Key("a certificate download needs certificate mode".into()))?;
    let parts = split_response(raw, METHOD)?;
    let node: serde_json::Value =
        serde_json::from_str(parts.content).map_err(|e| AlipayError::MalformedResponse {
            method: METHOD.into(),
            reason: format!("response node: {e}"),
        })?;
    let node = check_code(METHOD, node, &["10000"])?;
    let sign = parts
        .sign
        .as_deref()
        .ok_or_else(|| AlipayError::BadResponseSignature {
            method: METHOD.into(),
        })?;
    let answer: AlipayCertDownloadResponse =
        serde_json::from_value(node).map_err(|e| AlipayError::MalformedResponse {
            method: METHOD.into(),
            reason: e.to_string(),
        })?;
    let pem = decode_cert_content(&answer.alipay_cert_content)?;
    let leaf =
        set.check_chain(&pem, asked_sn, now)
            .map_err(|source| AlipayError::CertNotTrusted {
                sn: asked_sn.to_string(),
                source,
            })?;
    let key = match parts.alipay_cert_sn.as_deref() {
        None | Some("") => leaf.public_key()?,
        Some(sn) if sn == asked_sn => leaf.public_key()?,
        Some(sn) => set.get(sn).ok_or_else(|| AlipayError::UnknownCertSn {
            method: METHOD.into(),
            sn: sn.to_string(),
        })?,
    };
    if !verify_content(&key, parts.content, sign) {
        return Err(AlipayError::BadResponseSignature {
            method: METHOD.into(),
        });
    }
    set.trust(&leaf)
        .map_err(|source| AlipayError::CertNotTrusted {
            sn: asked_sn.to_string(),
            source,
        })
}
