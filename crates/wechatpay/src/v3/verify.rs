//! Verification of WeChat Pay's signatures on responses and notifications, and the key set
//! (platform certificates and/or WeChat Pay public keys) it verifies against.

use std::collections::BTreeMap;

use paybridge_crypto::{Certificate, RsaPublicKey};

/// Signatures older or newer than this (seconds) are refused: replay protection.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;
/// WeChat Pay sends probe requests with signatures starting with this; they must fail.
pub const SIGNTEST_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// Serial prefix of the WeChat Pay public-key mode.
pub const PUBLIC_KEY_ID_PREFIX: &str = "PUB_KEY_ID_";

/// `TIMESTAMP\nNONCE\nBODY\n` over the raw body bytes.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(timestamp.len() + nonce.len() + body.len() + 3);
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The `Wechatpay-*` headers of a response or notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub serial: String,
}

impl SignatureHeaders {
    /// Reads the four headers through a case-insensitive lookup.
    pub fn from_lookup<'a>(
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<SignatureHeaders, VerifyError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or(VerifyError::MissingHeader(name))
        };
        Ok(SignatureHeaders {
            timestamp: get("Wechatpay-Timestamp")?,
            nonce: get("Wechatpay-Nonce")?,
            signature: get("Wechatpay-Signature")?,
            serial: get("Wechatpay-Serial")?,
        })
    }

    pub fn from_pairs(headers: &[(String, String)]) -> Result<SignatureHeaders, VerifyError> {
        Self::from_lookup(|name| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("Wechatpay-Timestamp {0:?} is not a Unix time")]
    BadTimestamp(String),
    #[error(
        "Wechatpay-Timestamp {timestamp} is more than {MAX_CLOCK_SKEW_SECS}s from now ({now})"
    )]
    Stale { timestamp: i64, now: i64 },
    #[error("signature probe (WECHATPAY/SIGNTEST/)")]
    SignTest,
    #[error("no key for serial {0}")]
    UnknownSerial(String),
    #[error("signature does not verify with key {0}")]
    BadSignature(String),
}

/// Where a verifying key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A platform certificate (downloaded from `/v3/certificates` or configured).
    PlatformCertificate { not_before: i64, not_after: i64 },
    /// A WeChat Pay public key (`PUB_KEY_ID_...`), configured from the merchant console.
    PublicKey,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VerifierKey {
    pub serial: String,
    pub key: RsaPublicKey,
    pub source: KeySource,
}

/// The keys WeChat Pay may sign with, by serial. Holds platform certificates and public keys
/// side by side: during a migration responses may come signed by either.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    keys: BTreeMap<String, VerifierKey>,
}

fn normalize(serial: &str) -> String {
    serial.trim().to_ascii_uppercase()
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add_certificate(
        &mut self,
        cert: &Certificate,
    ) -> Result<String, paybridge_crypto::CryptoError> {
        let serial = cert.serial_hex();
        self.keys.insert(
            normalize(&serial),
            VerifierKey {
                serial: serial.clone(),
                key: cert.public_key()?,
                source: KeySource::PlatformCertificate {
                    not_before: cert.not_before_unix(),
                    not_after: cert.not_after_unix(),
                },
            },
        );
        Ok(serial)
    }

    /// A WeChat Pay public key under its id (`PUB_KEY_ID_...`), or any key under a given serial.
    pub fn add_public_key(&mut self, id: &str, key: RsaPublicKey) {
        self.keys.insert(
            normalize(id),
            VerifierKey {
                serial: id.trim().to_string(),
                key,
                source: KeySource::PublicKey,
            },
        );
    }

    pub fn remove(&mut self, serial: &str) -> Option<VerifierKey> {
        self.keys.remove(&normalize(serial))
    }

    pub fn get(&self, serial: &str) -> Option<&VerifierKey> {
        self.keys.get(&normalize(serial))
    }

    pub fn contains(&self, serial: &str) -> bool {
        self.keys.contains_key(&normalize(serial))
    }

    pub fn serials(&self) -> impl Iterator<Item = &str> {
        self.keys.values().map(|k| k.serial.as_str())
    }

    pub fn has_platform_certificates(&self) -> bool {
        self.keys
            .values()
            .any(|k| matches!(k.source, KeySource::PlatformCertificate { .. }))
    }

    /// Drops platform certificates that expired before `now`.
    pub fn prune_expired(&mut self, now: i64) {
        self.keys.retain(|_, k| match k.source {
            KeySource::PlatformCertificate { not_after, .. } => not_after >= now,
            KeySource::PublicKey => true,
        });
    }

    /// The serial to send as `Wechatpay-Serial` with a request that encrypts nothing: the
    /// public key when one is held (WeChat Pay signs a migrating merchant's answers with its
    /// public key only for requests that name it), else the newest valid platform certificate.
    pub fn preferred_serial(&self, now: i64) -> Option<&str> {
        self.keys
            .values()
            .find(|k| matches!(k.source, KeySource::PublicKey))
            .or_else(|| self.encryption_key(now))
            .map(|k| k.serial.as_str())
    }

    /// The platform certificate to encrypt sensitive fields with: the newest valid one (by
    /// `not_before`), or a public key when no certificate is held.
    pub fn encryption_key(&self, now: i64) -> Option<&VerifierKey> {
        let newest_cert = self
            .keys
            .values()
            .filter_map(|k| match k.source {
                KeySource::PlatformCertificate {
                    not_before,
                    not_after,
                } if not_before <= now && now <= not_after => Some((not_before, k)),
                _ => None,
            })
            .max_by_key(|(nb, _)| *nb)
            .map(|(_, k)| k);
        newest_cert.or_else(|| {
            self.keys
                .values()
                .find(|k| matches!(k.source, KeySource::PublicKey))
        })
    }

    /// Verifies a raw signature over `message` with the key for `serial`.
    pub fn verify_message(
        &self,
        serial: &str,
        message: &[u8],
        signature: &str,
    ) -> Result<(), VerifyError> {
        if signature.starts_with(SIGNTEST_PREFIX) {
            return Err(VerifyError::SignTest);
        }
        let key = self
            .get(serial)
            .ok_or_else(|| VerifyError::UnknownSerial(serial.to_string()))?;
        if key.key.verify_sha256_base64(message, signature) {
            Ok(())
        } else {
            Err(VerifyError::BadSignature(key.serial.clone()))
        }
    }

    /// Verifies a response or notification: freshness first, then the signature over the raw
    /// body. `now` is Unix seconds from the caller's clock.
    pub fn verify(
        &self,
        headers: &SignatureHeaders,
        body: &[u8],
        now: i64,
    ) -> Result<(), VerifyError> {
        check_fresh(&headers.timestamp, now)?;
        let message = response_message(&headers.timestamp, &headers.nonce, body);
        self.verify_message(&headers.serial, &message, &headers.signature)
    }
}

/// Refuses timestamps more than [`MAX_CLOCK_SKEW_SECS`] away from `now`.
pub fn check_fresh(timestamp: &str, now: i64) -> Result<i64, VerifyError> {
    let ts: i64 = timestamp
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_string()))?;
    if ts.abs_diff(now) > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(VerifyError::Stale { timestamp: ts, now });
    }
    Ok(ts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey};

    #[test]
    fn migration_holds_certificate_and_public_key_at_once() {
        use paybridge_crypto::{self_signed_rsa_cert, CertSpec};
        let cert_key = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
        let pub_key = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
        let spec = CertSpec {
            common_name: "Tenpay.com".into(),
            organization: None,
            organizational_unit: None,
            country: None,
            serial: vec![0x5D, 0xEA],
            not_before_unix: 0,
            not_after_unix: 2_000_000_000,
            is_ca: false,
        };
        let cert =
            Certificate::from_pem(&self_signed_rsa_cert(&cert_key, &spec).unwrap().pem).unwrap();
        let mut v = Verifier::new();
        assert_eq!(v.add_certificate(&cert).unwrap(), "5DEA");
        v.add_public_key(
            "PUB_KEY_ID_0114232134912410000000000000",
            pub_key.public_key().unwrap(),
        );
        for (key, serial) in [
            (&cert_key, "5dea"),
            (&pub_key, "PUB_KEY_ID_0114232134912410000000000000"),
        ] {
            let sig = key
                .sign_sha256_base64(&response_message("100", "n", b"{}"))
                .unwrap();
            let h = SignatureHeaders {
                timestamp: "100".into(),
                nonce: "n".into(),
                signature: sig,
                serial: serial.into(),
            };
            assert_eq!(v.verify(&h, b"{}", 100), Ok(()), "{serial}");
        }
        // Sensitive fields go to the platform certificate while one is valid, else the public key.
        assert_eq!(
            v.encryption_key(100).map(|k| k.serial.as_str()),
            Some("5DEA")
        );
        v.prune_expired(2_000_000_001);
        assert!(!v.has_platform_certificates());
        assert_eq!(
            v.encryption_key(2_000_000_001).map(|k| k.serial.as_str()),
            Some("PUB_KEY_ID_0114232134912410000000000000")
        );
    }

    #[test]
    fn window_probe_and_serials() {
        let sk = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
        let mut v = Verifier::new();
        v.add_public_key("PUB_KEY_ID_0001", sk.public_key().unwrap());
        let body = b"{}";
        let sig = sk
            .sign_sha256_base64(&response_message("1000", "n", body))
            .unwrap();
        let h = SignatureHeaders {
            timestamp: "1000".into(),
            nonce: "n".into(),
            signature: sig,
            serial: "pub_key_id_0001".into(),
        };
        assert_eq!(v.verify(&h, body, 1300), Ok(()));
        assert!(matches!(
            v.verify(&h, body, 1301),
            Err(VerifyError::Stale { .. })
        ));
        assert!(matches!(
            v.verify(&h, b"{ }", 1000),
            Err(VerifyError::BadSignature(_))
        ));
        let probe = SignatureHeaders {
            signature: format!("{SIGNTEST_PREFIX}abc"),
            ..h.clone()
        };
        assert_eq!(v.verify(&probe, body, 1000), Err(VerifyError::SignTest));
        let other = SignatureHeaders {
            serial: "ABC".into(),
            ..h.clone()
        };
        assert!(matches!(
            v.verify(&other, body, 1000),
            Err(VerifyError::UnknownSerial(_))
        ));
        assert!(matches!(
            check_fresh("x", 0),
            Err(VerifyError::BadTimestamp(_))
        ));
        assert!(v.encryption_key(0).is_some());
    }
}
