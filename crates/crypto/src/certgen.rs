//! X.509 generation for the sandbox's certificate mode: a root CA that issues the provider's
//! public-key certificate (Alipay `alipayCertPublicKey_RSA2.crt`, WeChat platform certificates)
//! and the merchant's app certificate. RSA keys, SHA256withRSA signatures, chosen serials, so
//! Alipay's cert SN rule and WeChat's serial rule can be exercised on certificates we made.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair, SerialNumber,
};

use crate::{CryptoError, RsaPrivateKey};

/// Who a certificate is for and how long it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSpec {
    pub common_name: String,
    pub organization: Option<String>,
    pub organizational_unit: Option<String>,
    pub country: Option<String>,
    /// Big-endian serial number bytes (positive; a leading zero is added by the encoder if needed).
    pub serial: Vec<u8>,
    pub not_before_unix: i64,
    pub not_after_unix: i64,
    pub is_ca: bool,
}

/// A generated certificate, DER and PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCert {
    pub der: Vec<u8>,
    pub pem: String,
}

fn gen_err(reason: impl std::fmt::Display) -> CryptoError {
    CryptoError::Certificate(format!("certificate generation failed: {reason}"))
}

fn key_pair(key: &RsaPrivateKey) -> Result<KeyPair, CryptoError> {
    let der = rustls_pki_types::PrivatePkcs8KeyDer::from(key.to_pkcs8_der().to_vec());
    KeyPair::from_pkcs8_der_and_sign_algo(&der, &rcgen::PKCS_RSA_SHA256).map_err(gen_err)
}

fn params(spec: &CertSpec) -> Result<CertificateParams, CryptoError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    // Pushed in the order a certificate lists them (C first); RFC 2253 prints them reversed.
    if let Some(c) = &spec.country {
        dn.push(DnType::CountryName, c.as_str());
    }
    if let Some(o) = &spec.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &spec.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    dn.push(DnType::CommonName, spec.common_name.as_str());
    p.distinguished_name = dn;
    p.serial_number = Some(SerialNumber::from_slice(&spec.serial));
    p.not_before =
        time::OffsetDateTime::from_unix_timestamp(spec.not_before_unix).map_err(gen_err)?;
    p.not_after =
        time::OffsetDateTime::from_unix_timestamp(spec.not_after_unix).map_err(gen_err)?;
    if spec.is_ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    Ok(p)
}

fn finish(cert: rcgen::Certificate) -> GeneratedCert {
    GeneratedCert {
        der: cert.der().to_vec(),
        pem: cert.pem(),
    }
}

/// A self-signed certificate (a root CA when `spec.is_ca`).
pub fn self_signed_rsa_cert(
    key: &RsaPrivateKey,
    spec: &CertSpec,
) -> Result<GeneratedCert, CryptoError> {
    let kp = key_pair(key)?;
    Ok(finish(params(spec)?.self_signed(&kp).map_err(gen_err)?))
}

/// A certificate for `subject_key`'s public key, signed by the issuer (whose own certificate
/// was generated from `issuer_spec` and `issuer_key`; regenerating it is deterministic because
/// RSA PKCS#1 v1.5 signatures are).
pub fn issue_rsa_cert(
    subject_key: &RsaPrivateKey,
    spec: &CertSpec,
    issuer_key: &RsaPrivateKey,
    issuer_spec: &CertSpec,
) -> Result<GeneratedCert, CryptoError> {
    let issuer_kp = key_pair(issuer_key)?;
    let issuer = params(issuer_spec)?
        .self_signed(&issuer_kp)
        .map_err(gen_err)?;
    let subject_kp = key_pair(subject_key)?;
    Ok(finish(
        params(spec)?
            .signed_by(&subject_kp, &issuer, &issuer_kp)
            .map_err(gen_err)?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::{generate_rsa_private_key_pkcs8, md5_hex, Certificate};

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap()
    }

    fn spec(cn: &str, serial: &[u8], ca: bool) -> CertSpec {
        CertSpec {
            common_name: cn.into(),
            organization: Some("Ant Financial Certification Authority".into()),
            organizational_unit: Some("Certification Authority".into()),
            country: Some("CN".into()),
            serial: serial.to_vec(),
            not_before_unix: 1_700_000_000,
            not_after_unix: 2_000_000_000,
            is_ca: ca,
        }
    }

    #[test]
    fn root_issues_a_leaf_that_parses_with_the_expected_facts() {
        let (root_key, leaf_key) = (key(), key());
        let root_spec = spec("Sandbox Root CA", &[0x01], true);
        let root = self_signed_rsa_cert(&root_key, &root_spec).unwrap();
        let leaf_spec = spec(
            "Sandbox Alipay Public Key",
            &[0x20, 0x19, 0x08, 0xAB],
            false,
        );
        let leaf = issue_rsa_cert(&leaf_key, &leaf_spec, &root_key, &root_spec).unwrap();

        let parsed = Certificate::from_pem(&leaf.pem).unwrap();
        assert_eq!(parsed.der(), leaf.der.as_slice());
        assert_eq!(parsed.serial_hex().to_uppercase(), "201908AB");
        assert_eq!(
            parsed.serial_decimal(),
            u32::from_str_radix("201908AB", 16).unwrap().to_string()
        );
        assert!(parsed.is_rsa_signed());
        assert_eq!(parsed.not_before_unix(), 1_700_000_000);
        // The issuer is the root's subject, printed in RFC 2253 (reversed) order.
        assert_eq!(
            parsed.issuer_rfc2253(),
            "CN=Sandbox Root CA,OU=Certification Authority,O=Ant Financial Certification Authority,C=CN"
        );
        assert_eq!(parsed.public_key().unwrap(), leaf_key.public_key().unwrap());
        // Alipay's cert SN rule works on the generated certificate.
        let sn =
            md5_hex(format!("{}{}", parsed.issuer_rfc2253(), parsed.serial_decimal()).as_bytes());
        assert_eq!(sn.len(), 32);
        // The leaf verifies under the root: its signature was made by the root key.
        let root_parsed = Certificate::from_der(&root.der).unwrap();
        assert_eq!(root_parsed.subject_rfc2253(), parsed.issuer_rfc2253());
        assert_eq!(root_parsed.issuer_rfc2253(), root_parsed.subject_rfc2253());
    }

    #[test]
    fn a_chain_verifies_only_under_the_key_that_signed_it() {
        let (root_key, other_key, leaf_key) = (key(), key(), key());
        let root_spec = spec("Sandbox Root CA", &[0x01], true);
        let root = Certificate::from_pem(&self_signed_rsa_cert(&root_key, &root_spec).unwrap().pem)
            .unwrap();
        // Same name, another key: what a forger would present as the root.
        let impostor =
            Certificate::from_pem(&self_signed_rsa_cert(&other_key, &root_spec).unwrap().pem)
                .unwrap();
        let leaf_spec = spec("Sandbox Alipay Public Key", &[0x02], false);
        let leaf = Certificate::from_pem(
            &issue_rsa_cert(&leaf_key, &leaf_spec, &root_key, &root_spec)
                .unwrap()
                .pem,
        )
        .unwrap();
        leaf.verify_issued_by(&root).unwrap();
        root.verify_issued_by(&root).unwrap();
        assert!(leaf.verify_issued_by(&impostor).is_err());
        // A certificate whose subject is not the leaf's issuer is refused by name.
        let err = leaf.verify_issued_by(&leaf).unwrap_err().to_string();
        assert!(err.contains("issued by"), "{err}");
        assert!(leaf.is_valid_at(1_800_000_000));
        assert!(!leaf.is_valid_at(2_000_000_001));
        assert!(!leaf.is_valid_at(1_699_999_999));
    }
}
