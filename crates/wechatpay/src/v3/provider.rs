//! The provider side of APIv3, for the sandbox: check merchants' `Authorization` headers, sign
//! responses and notifications, encrypt resources and certificate downloads.

use paybridge_crypto::{CryptoError, RsaPrivateKey, RsaPublicKey};
use serde_json::json;

use super::aead::{AeadError, EncryptedResource};
use super::sign::{
    parse_authorization, request_message_bytes, AuthorizationError, AuthorizationParts,
};
use super::verify::{check_fresh, response_message, VerifyError, PUBLIC_KEY_ID_PREFIX};

pub const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestAuthError {
    #[error("{0}")]
    Header(#[from] AuthorizationError),
    #[error("{0}")]
    Time(#[from] VerifyError),
    #[error("mchid {0} is not this merchant")]
    Merchant(String),
    #[error("signature does not verify (serial {0})")]
    Signature(String),
}

/// Verifies a merchant request: header syntax (fields in any order), timestamp within 300 s of
/// `now`, and SHA256withRSA over `METHOD\nURL\nTS\nNONCE\nBODY\n` with the merchant's key.
/// `url` is the path with query exactly as requested. Returns the header fields (the caller
/// checks `serial_no` against the merchant's certificate if it cares).
pub fn verify_request(
    authorization: &str,
    method: &str,
    url: &str,
    body: &[u8],
    expected_mchid: Option<&str>,
    merchant_key: &RsaPublicKey,
    now: i64,
) -> Result<AuthorizationParts, RequestAuthError> {
    let parts = parse_authorization(authorization)?;
    if let Some(m) = expected_mchid {
        if parts.mchid != m {
            return Err(RequestAuthError::Merchant(parts.mchid));
        }
    }
    check_fresh(&parts.timestamp, now)?;
    let message = request_message_bytes(method, url, &parts.timestamp, &parts.nonce_str, body);
    if merchant_key.verify_sha256_base64(&message, &parts.signature) {
        Ok(parts)
    } else {
        Err(RequestAuthError::Signature(parts.serial_no))
    }
}

/// The serial as SDKs compare it: certificate serials upper-case, `PUB_KEY_ID_...` verbatim.
pub fn wire_serial(serial: &str) -> String {
    if serial.starts_with(PUBLIC_KEY_ID_PREFIX) {
        serial.to_string()
    } else {
        serial.to_ascii_uppercase()
    }
}

/// The `Wechatpay-*` headers for a response or notification body (every 2xx, the empty body
/// of a 204 included).
pub fn sign_response(
    platform_key: &RsaPrivateKey,
    serial: &str,
    timestamp: i64,
    nonce: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, CryptoError> {
    let ts = timestamp.to_string();
    let signature = platform_key.sign_sha256_base64(&response_message(&ts, nonce, body))?;
    Ok(vec![
        ("Wechatpay-Timestamp".into(), ts),
        ("Wechatpay-Nonce".into(), nonce.to_string()),
        ("Wechatpay-Signature".into(), signature),
        ("Wechatpay-Serial".into(), wire_serial(serial)),
        ("Wechatpay-Signature-Type".into(), SIGNATURE_TYPE.into()),
    ])
}

/// A notification body: `resource` is `plaintext` encrypted with the APIv3 key.
#[allow(clippy::too_many_arguments)]
pub fn notify_body(
    apiv3_key: &[u8],
    id: &str,
    create_time: &str,
    event_type: &str,
    summary: &str,
    original_type: &str,
    nonce: &str,
    plaintext: &str,
) -> Result<String, AeadError> {
    let resource = EncryptedResource::encrypt(
        apiv3_key,
        nonce,
        original_type,
        Some(original_type),
        plaintext.as_bytes(),
    )?;
    Ok(json!({
        "id": id,
        "create_time": create_time,
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": summary,
        "resource": resource,
    })
    .to_string())
}

/// One certificate for [`certificates_body`].
pub struct CertificateOut<'a> {
    pub serial_no: &'a str,
    pub effective_time: &'a str,
    pub expire_time: &'a str,
    pub pem: &'a str,
    /// 12 characters, fresh per certificate.
    pub nonce: &'a str,
}

/// The `GET /v3/certificates` body.
pub fn certificates_body(
    apiv3_key: &[u8],
    certs: &[CertificateOut<'_>],
) -> Result<String, AeadError> {
    let mut data = Vec::with_capacity(certs.len());
    for c in certs {
        let enc =
            EncryptedResource::encrypt(apiv3_key, c.nonce, "certificate", None, c.pem.as_bytes())?;
        data.push(json!({
            "serial_no": wire_serial(c.serial_no),
            "effective_time": c.effective_time,
            "expire_time": c.expire_time,
            "encrypt_certificate": enc,
        }));
    }
    Ok(json!({ "data": data }).to_string())
}

/// An API error body `{"code","message"}` (sent with a 4xx/5xx status).
pub fn error_body(code: &str, message: &str) -> String {
    json!({"code": code, "message": message}).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::v3::sign::MerchantSigner;
    use crate::v3::verify::{SignatureHeaders, Verifier};
    use paybridge_crypto::generate_rsa_private_key_pkcs8;

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap()
    }

    #[test]
    fn merchant_request_and_signed_response_roundtrip() {
        let mk = key();
        let pk = mk.public_key().unwrap();
        let signer = MerchantSigner::new("1900", "ABC", mk);
        let body = "{\"a\":1}";
        let s = signer
            .sign_request("POST", "/v3/x?y=1", body, "1000", "nonce123456789a")
            .unwrap();
        let p = verify_request(
            &s.authorization,
            "POST",
            "/v3/x?y=1",
            body.as_bytes(),
            Some("1900"),
            &pk,
            1100,
        )
        .unwrap();
        assert_eq!(p.serial_no, "ABC");
        assert!(matches!(
            verify_request(
                &s.authorization,
                "POST",
                "/v3/x",
                body.as_bytes(),
                None,
                &pk,
                1100
            ),
            Err(RequestAuthError::Signature(_))
        ));
        assert!(matches!(
            verify_request(
                &s.authorization,
                "POST",
                "/v3/x?y=1",
                body.as_bytes(),
                Some("1"),
                &pk,
                1100
            ),
            Err(RequestAuthError::Merchant(_))
        ));
        assert!(matches!(
            verify_request(
                &s.authorization,
                "POST",
                "/v3/x?y=1",
                body.as_bytes(),
                None,
                &pk,
                2000
            ),
            Err(RequestAuthError::Time(_))
        ));

        let platform = key();
        let headers = sign_response(&platform, "PUB_KEY_ID_01", 1000, "n", b"").unwrap();
        let mut v = Verifier::new();
        v.add_public_key("PUB_KEY_ID_01", platform.public_key().unwrap());
        let h = SignatureHeaders::from_pairs(&headers).unwrap();
        assert_eq!(v.verify(&h, b"", 1000), Ok(()));
        assert_eq!(wire_serial("5dea10"), "5DEA10");
    }
}
