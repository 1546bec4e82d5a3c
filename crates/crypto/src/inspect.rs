//! What a piece of key material is, for messages that name the mix-up ("this is a certificate,
//! not a private key") instead of a parser's complaint. Loading keys stays in `keys.rs`; this
//! only recognises them.

use der::Decode;

use crate::pem::pem_or_bare;
use crate::Certificate;

/// How the text was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Armor {
    Pem,
    /// Bare base64 DER, as the Alipay console hands keys out.
    BareBase64,
}

/// The first thing a text holds that is key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    Pkcs8PrivateKey,
    Pkcs1PrivateKey,
    /// `ENCRYPTED PRIVATE KEY`: needs a passphrase, which paybridge does not take.
    EncryptedPrivateKey,
    /// SubjectPublicKeyInfo (`PUBLIC KEY`), what Alipay's console and WeChat Pay hand out.
    SpkiPublicKey,
    /// PKCS#1 (`RSA PUBLIC KEY`).
    Pkcs1PublicKey,
    /// One or more certificates (the count).
    Certificate(usize),
    /// A PEM block of another kind (its label).
    OtherPem(String),
    /// Not PEM and not base64 of anything above.
    Unreadable(String),
}

impl KeyMaterial {
    pub fn is_private_key(&self) -> bool {
        matches!(
            self,
            KeyMaterial::Pkcs8PrivateKey
                | KeyMaterial::Pkcs1PrivateKey
                | KeyMaterial::EncryptedPrivateKey
        )
    }

    /// Words for a person: "a certificate", "a PKCS#1 private key"...
    pub fn describe(&self) -> String {
        match self {
            KeyMaterial::Pkcs8PrivateKey => "a PKCS#8 private key".into(),
            KeyMaterial::Pkcs1PrivateKey => "a PKCS#1 private key".into(),
            KeyMaterial::EncryptedPrivateKey => "a passphrase-encrypted private key".into(),
            KeyMaterial::SpkiPublicKey => "a public key (SubjectPublicKeyInfo)".into(),
            KeyMaterial::Pkcs1PublicKey => "a PKCS#1 public key (RSA PUBLIC KEY)".into(),
            KeyMaterial::Certificate(1) => "a certificate".into(),
            KeyMaterial::Certificate(n) => format!("{n} certificates"),
            KeyMaterial::OtherPem(label) => format!("a PEM block labelled {label:?}"),
            KeyMaterial::Unreadable(reason) => format!("nothing readable ({reason})"),
        }
    }
}

/// Recognises `text` (PEM or bare base64).
pub fn inspect_key_text(text: &str) -> (KeyMaterial, Armor) {
    let armor = if text.contains("-----BEGIN ") {
        Armor::Pem
    } else {
        Armor::BareBase64
    };
    let blocks = match pem_or_bare(text) {
        Ok(b) => b,
        Err(e) => return (KeyMaterial::Unreadable(e.to_string()), armor),
    };
    let certificates = blocks
        .iter()
        .filter(|(label, _)| label.as_deref() == Some("CERTIFICATE"))
        .count();
    let Some((label, der)) = blocks.first() else {
        return (KeyMaterial::Unreadable("empty".into()), armor);
    };
    let material = match label.as_deref() {
        Some("CERTIFICATE") => KeyMaterial::Certificate(certificates),
        Some("PRIVATE KEY") => KeyMaterial::Pkcs8PrivateKey,
        Some("RSA PRIVATE KEY") => KeyMaterial::Pkcs1PrivateKey,
        Some("ENCRYPTED PRIVATE KEY") => KeyMaterial::EncryptedPrivateKey,
        Some("PUBLIC KEY") => KeyMaterial::SpkiPublicKey,
        Some("RSA PUBLIC KEY") => KeyMaterial::Pkcs1PublicKey,
        Some(other) => KeyMaterial::OtherPem(other.to_string()),
        None => classify_der(der),
    };
    (material, armor)
}

/// Bare DER: try each form, most specific first.
fn classify_der(der: &[u8]) -> KeyMaterial {
    if aws_lc_rs::rsa::KeyPair::from_pkcs8(der).is_ok() {
        KeyMaterial::Pkcs8PrivateKey
    } else if aws_lc_rs::rsa::KeyPair::from_der(der).is_ok() {
        KeyMaterial::Pkcs1PrivateKey
    } else if spki::SubjectPublicKeyInfoRef::from_der(der).is_ok() {
        KeyMaterial::SpkiPublicKey
    } else if pkcs1::RsaPublicKey::from_der(der).is_ok() {
        KeyMaterial::Pkcs1PublicKey
    } else if Certificate::from_der(der).is_ok() {
        KeyMaterial::Certificate(1)
    } else {
        KeyMaterial::Unreadable("base64 of no key or certificate".into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{
        b64_encode, encode_pem, generate_rsa_private_key_pkcs8, self_signed_rsa_cert, CertSpec,
        RsaPrivateKey,
    };

    #[test]
    fn every_form_is_named() {
        let pkcs8 = generate_rsa_private_key_pkcs8().unwrap();
        let key = RsaPrivateKey::from_der(&pkcs8).unwrap();
        let public = key.public_key().unwrap();
        let cert = self_signed_rsa_cert(
            &key,
            &CertSpec {
                common_name: "x".into(),
                organization: None,
                organizational_unit: None,
                country: None,
                serial: vec![1],
                not_before_unix: 1_700_000_000,
                not_after_unix: 1_800_000_000,
                is_ca: true,
            },
        )
        .unwrap();
        let cases = [
            (
                encode_pem("PRIVATE KEY", &pkcs8),
                KeyMaterial::Pkcs8PrivateKey,
                Armor::Pem,
            ),
            (
                b64_encode(&pkcs8),
                KeyMaterial::Pkcs8PrivateKey,
                Armor::BareBase64,
            ),
            (
                public.to_base64(),
                KeyMaterial::SpkiPublicKey,
                Armor::BareBase64,
            ),
            (
                encode_pem("PUBLIC KEY", public.spki_der()),
                KeyMaterial::SpkiPublicKey,
                Armor::Pem,
            ),
            (cert.pem.clone(), KeyMaterial::Certificate(1), Armor::Pem),
            (
                format!("{}{}", cert.pem, cert.pem),
                KeyMaterial::Certificate(2),
                Armor::Pem,
            ),
            (
                b64_encode(&cert.der),
                KeyMaterial::Certificate(1),
                Armor::BareBase64,
            ),
            (
                encode_pem("ENCRYPTED PRIVATE KEY", &[1, 2, 3]),
                KeyMaterial::EncryptedPrivateKey,
                Armor::Pem,
            ),
        ];
        for (text, material, armor) in cases {
            assert_eq!(inspect_key_text(&text), (material, armor), "{text}");
        }
        assert!(matches!(
            inspect_key_text("not base64 !!").0,
            KeyMaterial::Unreadable(_)
        ));
        assert!(matches!(
            inspect_key_text("AAAA").0,
            KeyMaterial::Unreadable(_)
        ));
        // A PKCS#1 private key in bare base64, as older Alipay tools export it.
        let pkcs1 = {
            let info = pkcs8::PrivateKeyInfo::from_der(&pkcs8).unwrap();
            info.private_key.to_vec()
        };
        assert_eq!(
            inspect_key_text(&b64_encode(&pkcs1)).0,
            KeyMaterial::Pkcs1PrivateKey
        );
    }
}
