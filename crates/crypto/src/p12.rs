//! PKCS#12 (`apiclient_cert.p12`, WeChat Pay's merchant API certificate; password = mch_id),
//! turned into the PEM key + certificate chain a TLS client identity needs.

use crate::{encode_pem, CryptoError, Secret};

/// A private key with its certificate chain (leaf first).
pub struct Pkcs12Identity {
    pub key_pkcs8_der: Secret<Vec<u8>>,
    pub chain_der: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Pkcs12Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pkcs12Identity({} certificates, key redacted)",
            self.chain_der.len()
        )
    }
}

/// Decrypts a PKCS#12 file (legacy RC2/3DES or PBES2) and returns its first key entry.
pub fn pkcs12_identity(data: &[u8], password: &str) -> Result<Pkcs12Identity, CryptoError> {
    let store =
        p12_keystore::KeyStore::from_pkcs12(data, password).map_err(|e| CryptoError::Key {
            kind: "PKCS#12",
            reason: e.to_string(),
        })?;
    let (_, chain) = store.private_key_chain().ok_or_else(|| CryptoError::Key {
        kind: "PKCS#12",
        reason: "no private key entry".into(),
    })?;
    Ok(Pkcs12Identity {
        key_pkcs8_der: Secret::new(chain.key().to_vec()),
        chain_der: chain.chain().iter().map(|c| c.as_der().to_vec()).collect(),
    })
}

impl Pkcs12Identity {
    /// Certificates then the PKCS#8 key, PEM concatenated (what rustls/reqwest identities read).
    pub fn to_pem(&self) -> Secret<Vec<u8>> {
        let mut pem = String::new();
        for der in &self.chain_der {
            pem.push_str(&encode_pem("CERTIFICATE", der));
        }
        pem.push_str(&encode_pem("PRIVATE KEY", self.key_pkcs8_der.expose()));
        Secret::new(pem.into_bytes())
    }
}

/// Writes a PKCS#12 file with the legacy algorithms WeChat Pay's own files use (for tests and
/// the sandbox).
pub fn write_pkcs12(
    key_pkcs8_der: &[u8],
    cert_der: &[u8],
    password: &str,
) -> Result<Vec<u8>, CryptoError> {
    let err = |e: p12_keystore::error::Error| CryptoError::Key {
        kind: "PKCS#12",
        reason: e.to_string(),
    };
    let cert = p12_keystore::Certificate::from_der(cert_der).map_err(err)?;
    let chain = p12_keystore::PrivateKeyChain::new(key_pkcs8_der, [1u8; 20], [cert]);
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "apiclient",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store
        .writer(password)
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc)
        .write()
        .map_err(err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{
        generate_rsa_private_key_pkcs8, self_signed_rsa_cert, CertSpec, Certificate, RsaPrivateKey,
    };

    #[test]
    fn roundtrip_and_wrong_password() {
        let der = generate_rsa_private_key_pkcs8().unwrap();
        let key = RsaPrivateKey::from_der(&der).unwrap();
        let spec = CertSpec {
            common_name: "1900000109".into(),
            organization: None,
            organizational_unit: None,
            country: None,
            serial: vec![0x5D, 0xEA],
            not_before_unix: 1_700_000_000,
            not_after_unix: 1_900_000_000,
            is_ca: false,
        };
        let cert = self_signed_rsa_cert(&key, &spec).unwrap();
        let p12 = write_pkcs12(&der, &cert.der, "1900000109").unwrap();
        let id = pkcs12_identity(&p12, "1900000109").unwrap();
        assert_eq!(id.key_pkcs8_der.expose(), &der);
        assert_eq!(id.chain_der, vec![cert.der.clone()]);
        let pem = String::from_utf8(id.to_pem().expose().clone()).unwrap();
        assert_eq!(Certificate::from_pem(&pem).unwrap().serial_hex(), "5DEA");
        assert!(
            RsaPrivateKey::from_text(&pem[pem.find("-----BEGIN PRIVATE KEY").unwrap()..]).is_ok()
        );
        assert!(pkcs12_identity(&p12, "wrong").is_err());
        assert!(pkcs12_identity(b"junk", "x").is_err());
    }
}
