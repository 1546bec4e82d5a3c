//! Merchant configuration: app id, gateway, keys in either key mode, optional AES key.

use std::fmt;

use paybridge_crypto::{b64_decode, Certificate, RsaPrivateKey, RsaPublicKey, Secret};

use crate::cert_mode::{cert_sn, root_cert_sn, AlipayCertSet};
use crate::AlipayError;

pub const DEFAULT_GATEWAY: &str = "https://openapi.alipay.com/gateway.do";
pub const SANDBOX_GATEWAY: &str = "https://openapi-sandbox.dl.alipaydev.com/gateway.do";

/// The `encrypt_type=AES` content key (console base64; 16 bytes = AES-128).
#[derive(Clone)]
pub struct AesKey(Secret<Vec<u8>>);

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey([REDACTED])")
    }
}

impl AesKey {
    pub fn from_base64(text: &str) -> Result<Self, AlipayError> {
        let bytes =
            b64_decode(text.trim()).map_err(|e| AlipayError::Key(format!("AES key: {e}")))?;
        if ![16, 24, 32].contains(&bytes.len()) {
            return Err(AlipayError::Key(format!(
                "AES key decodes to {} bytes, expected 16, 24 or 32",
                bytes.len()
            )));
        }
        Ok(AesKey(Secret::new(bytes)))
    }

    pub fn bytes(&self) -> &[u8] {
        self.0.expose()
    }
}

/// How Alipay's signatures are checked.
#[derive(Debug)]
pub enum VerifyKeys {
    /// Public-key mode: the console's Alipay public key.
    PublicKey(RsaPublicKey),
    /// Certificate mode: the Alipay public certificates, chosen by `alipay_cert_sn`.
    Certificates(AlipayCertSet),
}

/// The app's signing key and the keys that verify Alipay, in one of the two key modes.
#[derive(Debug)]
pub struct AlipayKeys {
    pub app_key: RsaPrivateKey,
    pub verify: VerifyKeys,
    /// Certificate mode only: sent (and signed) with every request.
    pub app_cert_sn: Option<String>,
    pub alipay_root_cert_sn: Option<String>,
}

impl AlipayKeys {
    /// Public-key mode. Both keys may be PEM or the console's bare base64.
    pub fn public_key_mode(
        app_private_key: &str,
        alipay_public_key: &str,
    ) -> Result<Self, AlipayError> {
        let app_key = RsaPrivateKey::from_text(app_private_key)
            .map_err(|e| AlipayError::Key(format!("app private key: {e}")))?;
        let alipay = RsaPublicKey::from_text(alipay_public_key)
            .map_err(|e| AlipayError::Key(format!("Alipay public key: {e}")))?;
        Ok(AlipayKeys {
            app_key,
            verify: VerifyKeys::PublicKey(alipay),
            app_cert_sn: None,
            alipay_root_cert_sn: None,
        })
    }

    /// Certificate mode: the app certificate (must hold the app key's public half), one or more
    /// Alipay public certificates, and Alipay's root bundle.
    pub fn cert_mode(
        app_private_key: &str,
        app_cert_pem: &str,
        alipay_cert_pems: &[&str],
        root_bundle_pem: &str,
    ) -> Result<Self, AlipayError> {
        let app_key = RsaPrivateKey::from_text(app_private_key)
            .map_err(|e| AlipayError::Key(format!("app private key: {e}")))?;
        let app_cert = Certificate::from_pem(app_cert_pem)
            .map_err(|e| AlipayError::Key(format!("app certificate: {e}")))?;
        let cert_key = app_cert
            .public_key()
            .map_err(|e| AlipayError::Key(format!("app certificate key: {e}")))?;
        if app_key.public_key().ok().as_ref() != Some(&cert_key) {
            return Err(AlipayError::Key(
                "the app certificate does not hold the app private key's public key".into(),
            ));
        }
        let mut set = AlipayCertSet::new();
        for pem in alipay_cert_pems {
            set.add_pem(pem)?;
        }
        set.set_roots(root_bundle_pem)?;
        if set.is_empty() {
            return Err(AlipayError::Key(
                "no Alipay public certificate given".into(),
            ));
        }
        Ok(AlipayKeys {
            app_key,
            verify: VerifyKeys::Certificates(set),
            app_cert_sn: Some(cert_sn(&app_cert)),
            alipay_root_cert_sn: Some(root_cert_sn(root_bundle_pem)?),
        })
    }

    /// The key for a message that names `cert_sn` (responses in certificate mode). Without an
    /// SN the newest certificate is used; an SN we do not hold is an error (fetch the new
    /// certificate, do not guess).
    pub fn verifying_key(&self, cert_sn: Option<&str>) -> Result<RsaPublicKey, String> {
        match (&self.verify, cert_sn) {
            (VerifyKeys::PublicKey(k), _) => Ok(k.clone()),
            (VerifyKeys::Certificates(set), Some(sn)) if !sn.is_empty() => {
                set.get(sn).ok_or_else(|| sn.to_string())
            }
            (VerifyKeys::Certificates(set), _) => set.newest().ok_or_else(String::new),
        }
    }

    /// Every key Alipay may currently sign with (notifications name no certificate).
    pub fn all_verifying_keys(&self) -> Vec<RsaPublicKey> {
        match &self.verify {
            VerifyKeys::PublicKey(k) => vec![k.clone()],
            VerifyKeys::Certificates(set) => set.keys(),
        }
    }

    /// Certificate mode: the set that grows when Alipay rotates its certificate.
    pub fn certificates(&self) -> Option<&AlipayCertSet> {
        match &self.verify {
            VerifyKeys::PublicKey(_) => None,
            VerifyKeys::Certificates(set) => Some(set),
        }
    }
}

/// One merchant app at Alipay.
#[derive(Debug)]
pub struct AlipayConfig {
    pub app_id: String,
    /// `https://openapi.alipay.com/gateway.do` unless pointed at the sandbox or an emulator.
    pub gateway_url: String,
    pub keys: AlipayKeys,
    /// When set, `biz_content` is sent AES-encrypted (`encrypt_type=AES`).
    pub aes_key: Option<AesKey>,
    /// Checked against notifications when set.
    pub seller_id: Option<String>,
}

impl AlipayConfig {
    pub fn new(app_id: impl Into<String>, keys: AlipayKeys) -> Self {
        AlipayConfig {
            app_id: app_id.into(),
            gateway_url: DEFAULT_GATEWAY.to_string(),
            keys,
            aes_key: None,
            seller_id: None,
        }
    }

    pub fn with_gateway(mut self, url: impl Into<String>) -> Self {
        self.gateway_url = url.into();
        self
    }

    pub fn with_aes_key(mut self, key: AesKey) -> Self {
        self.aes_key = Some(key);
        self
    }
}
