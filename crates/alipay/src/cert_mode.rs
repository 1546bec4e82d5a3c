//! Certificate mode: the SNs Alipay uses to name certificates, and the set of Alipay public
//! certificates a response may be signed with (several at once while Alipay rotates them).

use paybridge_crypto::{md5_hex, Certificate, RsaPublicKey};

use crate::AlipayError;

/// `md5_hex(issuer DN in RFC 2253 order + decimal serial)`, as the official SDKs compute it.
pub fn cert_sn(cert: &Certificate) -> String {
    let mut input = String::from(cert.issuer_rfc2253());
    input.push_str(&cert.serial_decimal());
    md5_hex(input.as_bytes())
}

/// The SN of the first certificate in a PEM text (app or Alipay public certificate).
pub fn cert_sn_from_pem(pem: &str) -> Result<String, AlipayError> {
    let cert = Certificate::from_pem(pem).map_err(|e| AlipayError::Key(e.to_string()))?;
    Ok(cert_sn(&cert))
}

/// `alipay_root_cert_sn`: the SNs of the RSA-signed members of the root bundle joined by `_`.
/// Members that do not parse (SM2) or are not RSA-signed are skipped, as the SDKs do.
pub fn root_cert_sn(bundle_pem: &str) -> Result<String, AlipayError> {
    let members = Certificate::bundle_from_pem(bundle_pem)
        .map_err(|e| AlipayError::Key(format!("root certificate bundle: {e}")))?;
    let sns: Vec<String> = members
        .iter()
        .filter_map(|m| m.as_ref().ok())
        .filter(|c| c.is_rsa_signed())
        .map(cert_sn)
        .collect();
    if sns.is_empty() {
        return Err(AlipayError::Key(
            "root certificate bundle holds no RSA-signed certificate".into(),
        ));
    }
    Ok(sns.join("_"))
}

#[derive(Debug, Clone)]
struct AlipayCert {
    sn: String,
    key: RsaPublicKey,
    not_after: i64,
}

/// The Alipay public certificates currently trusted, looked up by `alipay_cert_sn`.
#[derive(Debug, Clone, Default)]
pub struct AlipayCertSet {
    certs: Vec<AlipayCert>,
}

impl AlipayCertSet {
    pub fn new() -> Self {
        AlipayCertSet::default()
    }

    /// Adds the first certificate of `pem` (`alipayCertPublicKey_RSA2.crt`, possibly followed by
    /// its chain). Returns its SN.
    pub fn add_pem(&mut self, pem: &str) -> Result<String, AlipayError> {
        let cert = Certificate::from_pem(pem)
            .map_err(|e| AlipayError::Key(format!("Alipay public certificate: {e}")))?;
        let key = cert
            .public_key()
            .map_err(|e| AlipayError::Key(format!("Alipay public certificate key: {e}")))?;
        let sn = cert_sn(&cert);
        self.certs.retain(|c| c.sn != sn);
        self.certs.push(AlipayCert {
            sn: sn.clone(),
            key,
            not_after: cert.not_after_unix(),
        });
        Ok(sn)
    }

    pub fn sns(&self) -> Vec<&str> {
        self.certs.iter().map(|c| c.sn.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    pub fn get(&self, sn: &str) -> Option<&RsaPublicKey> {
        self.certs.iter().find(|c| c.sn == sn).map(|c| &c.key)
    }

    /// The certificate valid the longest: used when a message names no SN.
    pub fn newest(&self) -> Option<&RsaPublicKey> {
        self.certs
            .iter()
            .max_by_key(|c| c.not_after)
            .map(|c| &c.key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &RsaPublicKey> {
        self.certs.iter().map(|c| &c.key)
    }
}
