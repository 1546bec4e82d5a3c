use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeyPair, KeySize, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};

use crate::pem::pem_or_bare;
use crate::x509::Certificate;
use crate::{b64_decode, b64_encode, CryptoError};

fn key_err(kind: &'static str, reason: impl Into<String>) -> CryptoError {
    CryptoError::Key {
        kind,
        reason: reason.into(),
    }
}

/// An RSA private key (merchant app key, WeChat merchant key, or a sandbox platform key).
///
/// Parsed once; signing is SHA256withRSA (PKCS#1 v1.5), the algorithm of Alipay RSA2 and
/// WeChat Pay APIv3.
pub struct RsaPrivateKey {
    pair: KeyPair,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaPrivateKey({} bits, [REDACTED])",
            self.pair.public_modulus_len() * 8
        )
    }
}

impl RsaPrivateKey {
    /// Accepts PKCS#8 or PKCS#1, as PEM (any label, e.g. wechatpay-go's `TESTING KEY`) or the
    /// bare base64 an Alipay console hands out.
    pub fn from_text(text: &str) -> Result<Self, CryptoError> {
        let blocks = pem_or_bare(text)?;
        let (_, der) = blocks
            .into_iter()
            .find(|(label, _)| {
                label
                    .as_deref()
                    .is_none_or(|l| l.contains("PRIVATE KEY") || l.contains("TESTING KEY"))
            })
            .ok_or_else(|| key_err("RSA private", "no PRIVATE KEY block"))?;
        Self::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let pair = KeyPair::from_pkcs8(der)
            .or_else(|_| KeyPair::from_der(der))
            .map_err(|e| key_err("RSA private", format!("neither PKCS#8 nor PKCS#1 RSA: {e}")))?;
        let pkcs8 = pair
            .as_der()
            .map_err(|_| key_err("RSA private", "cannot re-encode as PKCS#8"))?
            .as_ref()
            .to_vec();
        Ok(RsaPrivateKey { pair, pkcs8 })
    }

    /// SHA256withRSA (RSASSA-PKCS1-v1_5), raw signature bytes.
    pub fn sign_sha256(&self, message: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .map_err(|_| CryptoError::Sign)?;
        Ok(sig)
    }

    /// SHA256withRSA, base64 as both providers transmit it.
    pub fn sign_sha256_base64(&self, message: &[u8]) -> Result<String, CryptoError> {
        Ok(b64_encode(self.sign_sha256(message)?))
    }

    pub fn public_key(&self) -> Result<RsaPublicKey, CryptoError> {
        RsaPublicKey::from_der(self.pair.public_key().as_ref())
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1) decryption: WeChat Pay APIv3 sensitive fields.
    pub fn decrypt_oaep_sha1(&self, ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = PrivateDecryptingKey::from_pkcs8(&self.pkcs8)
            .map_err(|e| CryptoError::Rsa(e.to_string()))?;
        let key = OaepPrivateDecryptingKey::new(key).map_err(|_| CryptoError::Rsa("key".into()))?;
        let mut out = vec![0u8; key.min_output_size()];
        let plain = key
            .decrypt(&OAEP_SHA1_MGF1SHA1, ciphertext, &mut out, None)
            .map_err(|_| CryptoError::Rsa("OAEP decryption failed".into()))?;
        Ok(plain.to_vec())
    }

    /// The key as PKCS#8 DER. Secret material: callers write it only to key files.
    pub fn to_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }
}

/// Generates a new RSA-2048 key as PKCS#8 DER (sandbox platform keys, demo and test keys).
pub fn generate_rsa_private_key_pkcs8() -> Result<Vec<u8>, CryptoError> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| key_err("RSA private", "generation failed"))?;
    Ok(pair
        .as_der()
        .map_err(|_| key_err("RSA private", "cannot encode"))?
        .as_ref()
        .to_vec())
}

/// An RSA public key for verifying SHA256withRSA signatures, parsed once.
#[derive(Clone)]
pub struct RsaPublicKey {
    parsed: ParsedPublicKey,
    spki: Vec<u8>,
}

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaPublicKey(spki sha256 {})",
            &hex::encode(crate::sha256(&self.spki))[..16]
        )
    }
}

impl RsaPublicKey {
    /// Accepts an SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`) PEM, the bare base64 SPKI of
    /// the Alipay console, or a certificate (its subject key is used).
    pub fn from_text(text: &str) -> Result<Self, CryptoError> {
        let blocks = pem_or_bare(text)?;
        for (label, der) in &blocks {
            match label.as_deref() {
                Some("CERTIFICATE") => return Certificate::from_der(der)?.public_key(),
                Some(l) if l.contains("PUBLIC KEY") => return Self::from_der(der),
                Some(_) => continue,
                None => {
                    return Self::from_der(der)
                        .or_else(|_| Certificate::from_der(der)?.public_key());
                }
            }
        }
        Err(key_err("RSA public", "no PUBLIC KEY or CERTIFICATE block"))
    }

    /// SPKI or PKCS#1 DER.
    pub fn from_der(der: &[u8]) -> Result<Self, CryptoError> {
        let pk = aws_lc_rs::rsa::PublicKey::from_der(der)
            .map_err(|e| key_err("RSA public", e.to_string()))?;
        let spki = pk
            .as_der()
            .map_err(|_| key_err("RSA public", "cannot encode SPKI"))?
            .as_ref()
            .to_vec();
        let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki)
            .map_err(|e| key_err("RSA public", e.to_string()))?;
        Ok(RsaPublicKey { parsed, spki })
    }

    pub fn verify_sha256(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }

    /// Verifies a base64 signature; malformed base64 is simply "not valid".
    pub fn verify_sha256_base64(&self, message: &[u8], signature_b64: &str) -> bool {
        match b64_decode(signature_b64) {
            Ok(sig) => self.verify_sha256(message, &sig),
            Err(_) => false,
        }
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1) encryption: WeChat Pay APIv3 sensitive fields.
    pub fn encrypt_oaep_sha1(&self, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key = PublicEncryptingKey::from_der(&self.spki)
            .map_err(|e| CryptoError::Rsa(e.to_string()))?;
        let key = OaepPublicEncryptingKey::new(key).map_err(|_| CryptoError::Rsa("key".into()))?;
        let mut out = vec![0u8; key.ciphertext_size()];
        let ct = key
            .encrypt(&OAEP_SHA1_MGF1SHA1, plaintext, &mut out, None)
            .map_err(|_| CryptoError::Rsa("plaintext too long for OAEP".into()))?;
        Ok(ct.to_vec())
    }

    /// SubjectPublicKeyInfo DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki
    }

    /// Bare base64 SPKI, the form the Alipay console shows.
    pub fn to_base64(&self) -> String {
        b64_encode(&self.spki)
    }
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.spki == other.spki
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_pem;

    #[test]
    fn sign_verify_oaep_roundtrip_in_all_encodings() {
        let der = generate_rsa_private_key_pkcs8().unwrap_or_default();
        let key = RsaPrivateKey::from_text(&encode_pem("PRIVATE KEY", &der))
            .unwrap_or_else(|e| panic!("{e}"));
        let bare = RsaPrivateKey::from_text(&b64_encode(&der)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(key.to_pkcs8_der(), bare.to_pkcs8_der());
        let public = key.public_key().unwrap_or_else(|e| panic!("{e}"));
        let again = RsaPublicKey::from_text(&public.to_base64()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(public, again);

        let sig = key.sign_sha256_base64(b"hello").unwrap_or_default();
        assert!(public.verify_sha256_base64(b"hello", &sig));
        assert!(!public.verify_sha256_base64(b"hellO", &sig));
        assert!(!public.verify_sha256_base64(b"hello", "!!not base64"));

        let ct = public.encrypt_oaep_sha1(b"13800138000").unwrap_or_default();
        assert_eq!(
            key.decrypt_oaep_sha1(&ct).ok().as_deref(),
            Some(&b"13800138000"[..])
        );
        assert!(key.decrypt_oaep_sha1(&ct[1..]).is_err());
        assert!(format!("{key:?}").contains("REDACTED"));
    }

    #[test]
    fn rejects_garbage_keys() {
        assert!(RsaPrivateKey::from_text("MIIE").is_err());
        assert!(RsaPublicKey::from_text(
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
        )
        .is_err());
        assert!(RsaPublicKey::from_text("").is_err());
    }
}
