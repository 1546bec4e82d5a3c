//! Certificate mode: the SNs Alipay uses to name certificates, and the set of Alipay public
//! certificates a response may be signed with (several at once while Alipay rotates them).

use std::sync::RwLock;

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

/// The Alipay public certificates currently trusted, looked up by `alipay_cert_sn`, and the
/// roots a certificate Alipay hands out later (after a rotation) must chain to.
///
/// The set grows at run time ([`AlipayCertSet::trust_downloaded`]), so it is shared behind a
/// lock: every client and channel of the account sees a new certificate at once.
#[derive(Debug, Default)]
pub struct AlipayCertSet {
    certs: RwLock<Vec<AlipayCert>>,
    roots: Vec<Certificate>,
}

/// Why a certificate handed out by Alipay is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertTrustError {
    #[error("the downloaded certificate does not parse: {0}")]
    Malformed(String),
    #[error("no root certificate is configured to check a downloaded certificate against")]
    NoRoots,
    #[error("certificate {subject} is not valid now (valid {not_before}..{not_after} unix)")]
    Expired {
        subject: String,
        not_before: i64,
        not_after: i64,
    },
    #[error("certificate {subject} does not chain to the configured Alipay root: {reason}")]
    Untrusted { subject: String, reason: String },
    #[error("asked for certificate {asked}, got {got}")]
    WrongCertificate { asked: String, got: String },
}

/// The longest chain walked from a downloaded leaf to a root (leaf, intermediates, root).
const MAX_CHAIN: usize = 5;

impl AlipayCertSet {
    pub fn new() -> Self {
        AlipayCertSet::default()
    }

    /// Adds the first certificate of `pem` (`alipayCertPublicKey_RSA2.crt`, possibly followed by
    /// its chain). Returns its SN.
    pub fn add_pem(&mut self, pem: &str) -> Result<String, AlipayError> {
        let cert = Certificate::from_pem(pem)
            .map_err(|e| AlipayError::Key(format!("Alipay public certificate: {e}")))?;
        self.insert(&cert)
            .map_err(|e| AlipayError::Key(format!("Alipay public certificate key: {e}")))
    }

    /// The roots (Alipay's root bundle) that certificates downloaded later must chain to.
    /// Members that do not parse (SM2) or are not RSA-signed are skipped.
    pub fn set_roots(&mut self, bundle_pem: &str) -> Result<(), AlipayError> {
        let members = Certificate::bundle_from_pem(bundle_pem)
            .map_err(|e| AlipayError::Key(format!("root certificate bundle: {e}")))?;
        self.roots = members
            .into_iter()
            .filter_map(Result::ok)
            .filter(Certificate::is_rsa_signed)
            .collect();
        Ok(())
    }

    fn insert(&self, cert: &Certificate) -> Result<String, paybridge_crypto::CryptoError> {
        let key = cert.public_key()?;
        let sn = cert_sn(cert);
        let mut certs = self.certs.write().unwrap_or_else(|e| e.into_inner());
        certs.retain(|c| c.sn != sn);
        certs.push(AlipayCert {
            sn: sn.clone(),
            key,
            not_after: cert.not_after_unix(),
        });
        Ok(sn)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<AlipayCert>> {
        self.certs.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sns(&self) -> Vec<String> {
        self.read().iter().map(|c| c.sn.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    pub fn get(&self, sn: &str) -> Option<RsaPublicKey> {
        self.read()
            .iter()
            .find(|c| c.sn == sn)
            .map(|c| c.key.clone())
    }

    /// The certificate valid the longest: used when a message names no SN.
    pub fn newest(&self) -> Option<RsaPublicKey> {
        self.read()
            .iter()
            .max_by_key(|c| c.not_after)
            .map(|c| c.key.clone())
    }

    pub fn keys(&self) -> Vec<RsaPublicKey> {
        self.read().iter().map(|c| c.key.clone()).collect()
    }

    /// Checks a certificate chain Alipay handed out (`alipay.open.app.alipaycert.download`):
    /// its first certificate must be `asked_sn`, valid at `now`, and chain through the
    /// certificates that follow it (each valid at `now`) to one of the configured roots.
    /// Returns the leaf, not yet trusted: [`AlipayCertSet::trust`] adds it.
    pub fn check_chain(
        &self,
        chain_pem: &str,
        asked_sn: &str,
        now: i64,
    ) -> Result<Certificate, CertTrustError> {
        if self.roots.is_empty() {
            return Err(CertTrustError::NoRoots);
        }
        let chain: Vec<Certificate> = Certificate::bundle_from_pem(chain_pem)
            .map_err(|e| CertTrustError::Malformed(e.to_string()))?
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|e| CertTrustError::Malformed(e.to_string()))?;
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| CertTrustError::Malformed("no certificate".into()))?;
        let got = cert_sn(&leaf);
        if got != asked_sn {
            return Err(CertTrustError::WrongCertificate {
                asked: asked_sn.to_string(),
                got,
            });
        }
        let mut current = &leaf;
        for step in 0..MAX_CHAIN {
            if !current.is_valid_at(now) {
                return Err(CertTrustError::Expired {
                    subject: current.subject_rfc2253().to_string(),
                    not_before: current.not_before_unix(),
                    not_after: current.not_after_unix(),
                });
            }
            if self
                .roots
                .iter()
                .any(|root| root.is_valid_at(now) && current.verify_issued_by(root).is_ok())
            {
                return Ok(leaf);
            }
            // Not a root's child: the next certificate of the file must be its issuer.
            let issuer = chain.get(step + 1).filter(|next| {
                next.subject_rfc2253() == current.issuer_rfc2253()
                    && current.verify_issued_by(next).is_ok()
            });
            match issuer {
                Some(next) => current = next,
                None => break,
            }
        }
        Err(CertTrustError::Untrusted {
            subject: leaf.subject_rfc2253().to_string(),
            reason: format!("no configured root issued {}", current.issuer_rfc2253()),
        })
    }

    /// Trusts a certificate that passed [`AlipayCertSet::check_chain`]. Returns its SN.
    pub fn trust(&self, leaf: &Certificate) -> Result<String, CertTrustError> {
        self.insert(leaf)
            .map_err(|e| CertTrustError::Malformed(e.to_string()))
    }
}
