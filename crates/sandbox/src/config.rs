//! Sandbox configuration: one TOML file with both sides' keys (the providers' private keys the
//! sandbox signs with, and the merchants' public keys / API keys it verifies with), or a fresh
//! set generated on first start into the data directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use paybridge_alipay::cert_mode::{cert_sn, root_cert_sn};
use paybridge_alipay::AesKey;
use paybridge_crypto::{
    b64_encode, encode_pem, generate_rsa_private_key_pkcs8, issue_rsa_cert, random_string,
    self_signed_rsa_cert, CertSpec, Certificate, RsaPrivateKey, RsaPublicKey, Secret,
};
use serde::{Deserialize, Serialize};

use crate::notifier::TimeScale;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("invalid TOML: {0}")]
    Toml(String),
    #[error("{what}: {reason}")]
    Key { what: String, reason: String },
    #[error("{0}")]
    Invalid(String),
}

fn key_err(what: impl Into<String>, reason: impl ToString) -> ConfigError {
    ConfigError::Key {
        what: what.into(),
        reason: reason.to_string(),
    }
}

/// What a barcode payment does when the merchant scans the buyer's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BarcodeMode {
    #[default]
    Succeed,
    Fail,
    /// USERPAYING / Alipay 10003 until the buyer pays through the control API or page.
    WaitPassword,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlipayKeyMode {
    /// The merchant configured the console's bare public keys.
    #[default]
    PublicKey,
    /// Certificate mode: `app_cert_sn` + `alipay_root_cert_sn` in requests, `alipay_cert_sn` in
    /// responses.
    Cert,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlipayApp {
    pub app_id: String,
    #[serde(default)]
    pub mode: AlipayKeyMode,
    /// The app's public key (PEM or the console's bare base64); public-key mode.
    #[serde(default)]
    pub app_public_key: Option<String>,
    /// The app certificate (PEM); certificate mode.
    #[serde(default)]
    pub app_cert: Option<String>,
    /// AES content-encryption key (base64), when the app uses `encrypt_type=AES`.
    #[serde(default)]
    pub aes_key: Option<String>,
    /// The merchant's own private key. The sandbox never uses it; it is kept so a generated
    /// setup can be handed to a merchant (and to tests) in one file.
    #[serde(default)]
    pub app_private_key: Option<String>,
    #[serde(default)]
    pub barcode: BarcodeMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlipaySection {
    /// Alipay's signing key (the sandbox plays Alipay).
    pub private_key: String,
    /// Certificate mode material: the root bundle and Alipay's public-key certificate.
    #[serde(default)]
    pub root_cert: Option<String>,
    #[serde(default)]
    pub alipay_cert: Option<String>,
    /// The sandbox root's own key, kept so [`SandboxConfig::rotate_alipay_cert`] can issue
    /// Alipay a new certificate under the same root.
    #[serde(default)]
    pub root_private_key: Option<String>,
    #[serde(default)]
    pub apps: Vec<AlipayApp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WechatKeyMode {
    /// WeChat Pay public key (`PUB_KEY_ID_...`), the only mode for new merchants.
    #[default]
    PublicKey,
    /// Platform certificates, served at `/v3/certificates`.
    Certificate,
    /// Moving from platform certificates to the public key, as WeChat Pay runs a migration:
    /// certificates are still served and sign notifications and answers, except the answer to
    /// a request that carries `Wechatpay-Serial: <public_key_id>`, which is signed with the
    /// public key (`public_key_private_key`). A merchant that does not send the header never
    /// sees a public-key signature.
    Migrating,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WechatMerchant {
    pub mchid: String,
    pub appid: String,
    pub api_v2_key: String,
    pub api_v3_key: String,
    /// Serial of the merchant's API certificate (the `serial_no` of its Authorization header).
    pub merchant_serial: String,
    /// The merchant's public key or API certificate (PEM or bare base64).
    pub merchant_public_key: String,
    #[serde(default)]
    pub merchant_private_key: Option<String>,
    /// The official account's AppSecret, for web authorization (the buyer's openid); without
    /// one every code exchange is refused.
    #[serde(default)]
    pub app_secret: Option<String>,
    #[serde(default)]
    pub barcode: BarcodeMode,
    /// Service-provider mode: the sub-merchants this merchant may act for
    /// (`/v3/pay/partner/...`, `sub_mchid` on refunds and bills).
    #[serde(default)]
    pub sub_merchants: Vec<SubMerchant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubMerchant {
    pub sub_mchid: String,
    /// The sub-merchant's own app, when its buyers pay inside it.
    #[serde(default)]
    pub sub_appid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WechatSection {
    #[serde(default)]
    pub mode: WechatKeyMode,
    /// WeChat Pay's signing key.
    pub private_key: String,
    /// Public-key mode: the id sent as `Wechatpay-Serial`.
    #[serde(default)]
    pub public_key_id: Option<String>,
    /// Certificate mode: the platform certificate of `private_key` (PEM).
    #[serde(default)]
    pub platform_cert: Option<String>,
    /// Migrating mode: the key behind `public_key_id` (WeChat Pay's public key pair is not the
    /// platform certificate's).
    #[serde(default)]
    pub public_key_private_key: Option<String>,
    #[serde(default)]
    pub merchants: Vec<WechatMerchant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Base URL written into QR codes, pay pages and bill links; defaults to the bound address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Notification retry time scale, `N` or `N/D` (e.g. `1/10000`).
    #[serde(default = "default_scale")]
    pub time_scale: String,
    /// How long WeChat refunds stay PROCESSING, in sandbox milliseconds.
    #[serde(default)]
    pub wechat_refund_delay_ms: i64,
    /// Alipay's quirk: responses written with `/` escaped as `\/` while the signature covers
    /// the unescaped text (the official SDKs retry verification without the escapes).
    #[serde(default)]
    pub alipay_escaped_slashes: bool,
    pub alipay: AlipaySection,
    pub wechat: WechatSection,
}

fn default_listen() -> String {
    "127.0.0.1:8930".to_string()
}

fn default_scale() -> String {
    "1".to_string()
}

fn new_key() -> Result<RsaPrivateKey, ConfigError> {
    let der = generate_rsa_private_key_pkcs8().map_err(|e| key_err("key generation", e))?;
    RsaPrivateKey::from_der(&der).map_err(|e| key_err("key generation", e))
}

fn private_pem(key: &RsaPrivateKey) -> String {
    encode_pem("PRIVATE KEY", key.to_pkcs8_der())
}

fn spec(cn: &str, org: &str, serial: Vec<u8>, now: i64, ca: bool) -> CertSpec {
    CertSpec {
        common_name: cn.to_string(),
        organization: Some(org.to_string()),
        organizational_unit: Some("Certification Authority".to_string()),
        country: Some("CN".to_string()),
        serial,
        not_before_unix: now - 86_400,
        not_after_unix: now + 5 * 365 * 86_400,
        is_ca: ca,
    }
}

/// The sandbox CA (its name and serial are what certificates issued by it refer to).
fn root_spec(now_unix: i64) -> CertSpec {
    spec(
        "Sandbox Root CA",
        "paybridge sandbox",
        vec![0x01],
        now_unix,
        true,
    )
}

fn serial_bytes() -> Vec<u8> {
    // 20 random bytes with the top bit cleared: a positive serial, as the providers issue.
    let mut b = paybridge_crypto::random_bytes::<20>().to_vec();
    if let Some(first) = b.first_mut() {
        *first &= 0x7f;
        *first |= 0x10;
    }
    b
}

impl SandboxConfig {
    /// WeChat Pay starts moving the merchant from platform certificates to a public key (a new
    /// key pair under `public_key_id`): see [`WechatKeyMode::Migrating`].
    pub fn begin_wechat_migration(&mut self) -> Result<(), ConfigError> {
        self.wechat.mode = WechatKeyMode::Migrating;
        self.wechat.public_key_private_key = Some(private_pem(&new_key()?));
        Ok(())
    }

    /// The migration completed: only the public key signs, certificates are gone.
    pub fn finish_wechat_migration(&mut self) -> Result<(), ConfigError> {
        let key = self
            .wechat
            .public_key_private_key
            .take()
            .ok_or_else(|| key_err("wechat", "no migration was begun"))?;
        self.wechat.mode = WechatKeyMode::PublicKey;
        self.wechat.private_key = key;
        Ok(())
    }

    /// Alipay rotates its certificate: a new signing key and a new certificate for it, issued
    /// by the same root. Merchants configured with the old certificate see an unknown
    /// `alipay_cert_sn` in responses and must fetch the new one
    /// (`alipay.open.app.alipaycert.download`).
    pub fn rotate_alipay_cert(&mut self, now_unix: i64) -> Result<(), ConfigError> {
        let root_key =
            self.alipay.root_private_key.as_deref().ok_or_else(|| {
                key_err("alipay.root_private_key", "needed to issue a certificate")
            })?;
        let root_key = RsaPrivateKey::from_text(root_key)
            .map_err(|e| key_err("alipay.root_private_key", e))?;
        let root_spec = root_spec(now_unix);
        let alipay_key = new_key()?;
        let cert = issue_rsa_cert(
            &alipay_key,
            &spec(
                "Alipay Sandbox Public Key",
                "paybridge sandbox",
                serial_bytes(),
                now_unix,
                false,
            ),
            &root_key,
            &root_spec,
        )
        .map_err(|e| key_err("certificate generation", e))?;
        self.alipay.private_key = private_pem(&alipay_key);
        self.alipay.alipay_cert = Some(cert.pem);
        Ok(())
    }

    /// A complete fresh setup: an Alipay app in public-key mode (`2021000000000001`), one in
    /// certificate mode (`2021000000000002`), and a WeChat merchant (`1900000001`), with all
    /// keys and certificates generated. `now_unix` sets the certificates' validity.
    pub fn generate(now_unix: i64) -> Result<SandboxConfig, ConfigError> {
        let root_key = new_key()?;
        let root_spec = root_spec(now_unix);
        let gen = |e: paybridge_crypto::CryptoError| key_err("certificate generation", e);
        let root = self_signed_rsa_cert(&root_key, &root_spec).map_err(gen)?;
        let issue = |key: &RsaPrivateKey, cn: &str| {
            issue_rsa_cert(
                key,
                &spec(cn, "paybridge sandbox", serial_bytes(), now_unix, false),
                &root_key,
                &root_spec,
            )
            .map_err(gen)
        };

        let alipay_key = new_key()?;
        let alipay_cert = issue(&alipay_key, "Alipay Sandbox Public Key")?;
        let app_key = new_key()?;
        let app_public = app_key.public_key().map_err(|e| key_err("app key", e))?;
        let app2_key = new_key()?;
        let app2_cert = issue(&app2_key, "2021000000000002")?;

        let platform_key = new_key()?;
        let platform_cert = issue(&platform_key, "Tenpay.com Root CA")?;
        let merchant_key = new_key()?;
        let merchant_cert = issue(&merchant_key, "1900000001")?;
        let merchant_serial = Certificate::from_der(&merchant_cert.der)
            .map_err(|e| key_err("merchant certificate", e))?
            .serial_hex()
            .to_ascii_uppercase();

        Ok(SandboxConfig {
            listen: default_listen(),
            public_url: None,
            time_scale: default_scale(),
            wechat_refund_delay_ms: 0,
            alipay_escaped_slashes: false,
            alipay: AlipaySection {
                private_key: private_pem(&alipay_key),
                root_cert: Some(root.pem.clone()),
                alipay_cert: Some(alipay_cert.pem),
                root_private_key: Some(private_pem(&root_key)),
                apps: vec![
                    AlipayApp {
                        app_id: "2021000000000001".into(),
                        mode: AlipayKeyMode::PublicKey,
                        app_public_key: Some(app_public.to_base64()),
                        app_cert: None,
                        aes_key: Some(b64_encode(paybridge_crypto::random_bytes::<16>())),
                        app_private_key: Some(private_pem(&app_key)),
                        barcode: BarcodeMode::Succeed,
                    },
                    AlipayApp {
                        app_id: "2021000000000002".into(),
                        mode: AlipayKeyMode::Cert,
                        app_public_key: None,
                        app_cert: Some(app2_cert.pem),
                        aes_key: None,
                        app_private_key: Some(private_pem(&app2_key)),
                        barcode: BarcodeMode::Succeed,
                    },
                ],
            },
            wechat: WechatSection {
                mode: WechatKeyMode::PublicKey,
                private_key: private_pem(&platform_key),
                public_key_id: Some(format!("PUB_KEY_ID_0119000000012026{}", random_digits(8))),
                platform_cert: Some(platform_cert.pem),
                public_key_private_key: None,
                merchants: vec![WechatMerchant {
                    mchid: "1900000001".into(),
                    appid: "wx0000000000000001".into(),
                    api_v2_key: random_string(32),
                    api_v3_key: random_string(32),
                    merchant_serial,
                    merchant_public_key: merchant_cert.pem,
                    merchant_private_key: Some(private_pem(&merchant_key)),
                    app_secret: Some(random_string(32)),
                    barcode: BarcodeMode::Succeed,
                    sub_merchants: vec![SubMerchant {
                        sub_mchid: "1900000109".into(),
                        sub_appid: Some("wx0000000000000109".into()),
                    }],
                }],
            },
        })
    }

    pub fn from_toml(text: &str) -> Result<SandboxConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))
    }

    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::Toml(e.to_string()))
    }

    pub fn load(path: &Path) -> Result<SandboxConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        SandboxConfig::from_toml(&text)
    }

    /// `DIR/sandbox.toml`, generated (with the merchant-side files beside it) when absent.
    /// Returns the config and whether it was generated now.
    pub fn load_or_generate(
        dir: &Path,
        now_unix: i64,
    ) -> Result<(SandboxConfig, bool), ConfigError> {
        let path = dir.join("sandbox.toml");
        if path.is_file() {
            return Ok((SandboxConfig::load(&path)?, false));
        }
        let file_err = |p: &Path, e: std::io::Error| ConfigError::File {
            path: p.to_path_buf(),
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let config = SandboxConfig::generate(now_unix)?;
        for (name, text) in config.merchant_files()? {
            let p = dir.join(name);
            write_private(&p, &text).map_err(|e| file_err(&p, e))?;
        }
        write_private(&path, &config.to_toml()?).map_err(|e| file_err(&path, e))?;
        Ok((config, true))
    }

    /// The files a merchant needs to point an SDK at the sandbox, by file name.
    pub fn merchant_files(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut files = Vec::new();
        let alipay_key = RsaPrivateKey::from_text(&self.alipay.private_key)
            .map_err(|e| key_err("alipay.private_key", e))?;
        let alipay_pub = alipay_key
            .public_key()
            .map_err(|e| key_err("alipay.private_key", e))?;
        files.push(("alipay_public_key.txt".into(), alipay_pub.to_base64()));
        if let Some(root) = &self.alipay.root_cert {
            files.push(("alipayRootCert.crt".into(), root.clone()));
        }
        if let Some(c) = &self.alipay.alipay_cert {
            files.push(("alipayCertPublicKey_RSA2.crt".into(), c.clone()));
        }
        for app in &self.alipay.apps {
            if let Some(k) = &app.app_private_key {
                files.push((
                    format!("alipay_app_{}_private_key.pem", app.app_id),
                    k.clone(),
                ));
            }
            if let Some(c) = &app.app_cert {
                files.push((format!("appCertPublicKey_{}.crt", app.app_id), c.clone()));
            }
        }
        let wx_key = RsaPrivateKey::from_text(&self.wechat.private_key)
            .map_err(|e| key_err("wechat.private_key", e))?;
        let wx_pub = wx_key
            .public_key()
            .map_err(|e| key_err("wechat.private_key", e))?;
        files.push((
            "wechatpay_public_key.pem".into(),
            encode_pem("PUBLIC KEY", wx_pub.spki_der()),
        ));
        if let Some(c) = &self.wechat.platform_cert {
            files.push(("wechatpay_platform_cert.pem".into(), c.clone()));
        }
        for m in &self.wechat.merchants {
            if let Some(k) = &m.merchant_private_key {
                files.push((format!("wechat_{}_apiclient_key.pem", m.mchid), k.clone()));
            }
            files.push((
                format!("wechat_{}_apiclient_cert.pem", m.mchid),
                m.merchant_public_key.clone(),
            ));
        }
        Ok(files)
    }
}

/// Writes a file only its owner can read: the data directory holds private keys.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    std::io::Write::write_all(&mut options.open(path)?, text.as_bytes())
}

fn random_digits(n: usize) -> String {
    paybridge_crypto::random_bytes::<32>()
        .iter()
        .take(n)
        .map(|b| char::from(b'0' + b % 10))
        .collect()
}

/// An Alipay app as the sandbox verifies it.
pub struct AppKeys {
    pub app_id: String,
    pub public_key: RsaPublicKey,
    /// Certificate mode: the SN the app's requests must carry as `app_cert_sn`.
    pub app_cert_sn: Option<String>,
    pub aes_key: Option<AesKey>,
}

pub struct MerchantKeys {
    pub mchid: String,
    pub appid: String,
    pub api_v2_key: Secret<String>,
    pub api_v3_key: Secret<Vec<u8>>,
    pub serial: String,
    pub public_key: RsaPublicKey,
    pub sub_merchants: Vec<SubMerchant>,
}

/// Everything parsed once at start: a bad key fails start-up with a message naming it.
pub struct Keys {
    pub alipay_key: RsaPrivateKey,
    pub alipay_public_key: RsaPublicKey,
    /// Certificate mode: `alipay_cert_sn` added to responses, and the root SN apps must send.
    pub alipay_cert_sn: Option<String>,
    pub alipay_root_cert_sn: Option<String>,
    pub apps: HashMap<String, AppKeys>,
    pub wechat_key: RsaPrivateKey,
    pub wechat_public_key: RsaPublicKey,
    pub wechat_mode: WechatKeyMode,
    /// `Wechatpay-Serial` of our signatures (upper-case hex, or the exact PUB_KEY_ID_...).
    pub wechat_serial: String,
    pub wechat_cert: Option<Certificate>,
    /// Migrating mode: the public key's private half and its `PUB_KEY_ID_...`, signing answers
    /// to requests that name that id in `Wechatpay-Serial`.
    pub wechat_migration: Option<(RsaPrivateKey, String)>,
    pub merchants: HashMap<String, MerchantKeys>,
    /// Signs forged notifications: a key nobody trusts.
    pub forger: RsaPrivateKey,
}

impl Keys {
    pub fn from_config(c: &SandboxConfig) -> Result<Keys, ConfigError> {
        let alipay_key = RsaPrivateKey::from_text(&c.alipay.private_key)
            .map_err(|e| key_err("alipay.private_key", e))?;
        let alipay_public_key = alipay_key
            .public_key()
            .map_err(|e| key_err("alipay.private_key", e))?;
        let alipay_cert_sn = match &c.alipay.alipay_cert {
            Some(pem) => Some(
                Certificate::from_pem(pem)
                    .map(|cert| cert_sn(&cert))
                    .map_err(|e| key_err("alipay.alipay_cert", e))?,
            ),
            None => None,
        };
        let alipay_root_cert_sn = match &c.alipay.root_cert {
            Some(pem) => Some(root_cert_sn(pem).map_err(|e| key_err("alipay.root_cert", e))?),
            None => None,
        };
        let mut apps = HashMap::new();
        for a in &c.alipay.apps {
            let what = format!("alipay app {}", a.app_id);
            let (public_key, app_cert_sn) = match a.mode {
                AlipayKeyMode::PublicKey => {
                    let text = a
                        .app_public_key
                        .as_deref()
                        .ok_or_else(|| key_err(&what, "app_public_key is required"))?;
                    (
                        RsaPublicKey::from_text(text).map_err(|e| key_err(&what, e))?,
                        None,
                    )
                }
                AlipayKeyMode::Cert => {
                    if alipay_cert_sn.is_none() || alipay_root_cert_sn.is_none() {
                        return Err(key_err(
                            &what,
                            "certificate mode needs alipay.root_cert and alipay.alipay_cert",
                        ));
                    }
                    let pem = a
                        .app_cert
                        .as_deref()
                        .ok_or_else(|| key_err(&what, "app_cert is required in cert mode"))?;
                    let cert = Certificate::from_pem(pem).map_err(|e| key_err(&what, e))?;
                    (
                        cert.public_key().map_err(|e| key_err(&what, e))?,
                        Some(cert_sn(&cert)),
                    )
                }
            };
            let aes_key = match &a.aes_key {
                Some(k) => Some(AesKey::from_base64(k).map_err(|e| key_err(&what, e))?),
                None => None,
            };
            apps.insert(
                a.app_id.clone(),
                AppKeys {
                    app_id: a.app_id.clone(),
                    public_key,
                    app_cert_sn,
                    aes_key,
                },
            );
        }
        let wechat_key = RsaPrivateKey::from_text(&c.wechat.private_key)
            .map_err(|e| key_err("wechat.private_key", e))?;
        let wechat_public_key = wechat_key
            .public_key()
            .map_err(|e| key_err("wechat.private_key", e))?;
        let wechat_cert = match &c.wechat.platform_cert {
            Some(pem) => {
                Some(Certificate::from_pem(pem).map_err(|e| key_err("wechat.platform_cert", e))?)
            }
            None => None,
        };
        let public_key_id = || {
            c.wechat.public_key_id.clone().ok_or_else(|| {
                key_err(
                    "wechat",
                    "public_key and migrating modes need public_key_id",
                )
            })
        };
        let cert_serial = || {
            wechat_cert
                .as_ref()
                .map(|cert| cert.serial_hex().to_ascii_uppercase())
                .ok_or_else(|| {
                    key_err(
                        "wechat",
                        "certificate and migrating modes need platform_cert",
                    )
                })
        };
        let (wechat_serial, wechat_migration) = match c.wechat.mode {
            WechatKeyMode::PublicKey => (public_key_id()?, None),
            WechatKeyMode::Certificate => (cert_serial()?, None),
            WechatKeyMode::Migrating => {
                let text = c.wechat.public_key_private_key.as_deref().ok_or_else(|| {
                    key_err("wechat", "migrating mode needs public_key_private_key")
                })?;
                let key = RsaPrivateKey::from_text(text)
                    .map_err(|e| key_err("wechat.public_key_private_key", e))?;
                (cert_serial()?, Some((key, public_key_id()?)))
            }
        };
        let mut merchants = HashMap::new();
        for m in &c.wechat.merchants {
            let what = format!("wechat merchant {}", m.mchid);
            if m.api_v3_key.len() != 32 {
                return Err(key_err(&what, "api_v3_key must be 32 characters"));
            }
            merchants.insert(
                m.mchid.clone(),
                MerchantKeys {
                    mchid: m.mchid.clone(),
                    appid: m.appid.clone(),
                    api_v2_key: Secret::new(m.api_v2_key.clone()),
                    api_v3_key: Secret::new(m.api_v3_key.as_bytes().to_vec()),
                    serial: m.merchant_serial.clone(),
                    public_key: RsaPublicKey::from_text(&m.merchant_public_key)
                        .map_err(|e| key_err(&what, e))?,
                    sub_merchants: m.sub_merchants.clone(),
                },
            );
        }
        Ok(Keys {
            alipay_key,
            alipay_public_key,
            alipay_cert_sn,
            alipay_root_cert_sn,
            apps,
            wechat_key,
            wechat_public_key,
            wechat_mode: c.wechat.mode.clone(),
            wechat_migration,
            wechat_serial,
            wechat_cert,
            merchants,
            forger: new_key()?,
        })
    }
}

impl SandboxConfig {
    pub fn scale(&self) -> Result<TimeScale, ConfigError> {
        TimeScale::parse(&self.time_scale)
            .ok_or_else(|| ConfigError::Invalid(format!("time_scale {:?}", self.time_scale)))
    }

    pub fn barcode_mode(&self, account: &str) -> BarcodeMode {
        self.alipay
            .apps
            .iter()
            .find(|a| a.app_id == account)
            .map(|a| a.barcode)
            .or_else(|| {
                self.wechat
                    .merchants
                    .iter()
                    .find(|m| m.mchid == account)
                    .map(|m| m.barcode)
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn generated_config_round_trips_and_parses() {
        let c = SandboxConfig::generate(1_760_000_000).unwrap();
        let text = c.to_toml().unwrap();
        let back = SandboxConfig::from_toml(&text).unwrap();
        assert_eq!(back, c);
        let keys = Keys::from_config(&back).unwrap();
        let cert_app = keys.apps.get("2021000000000002").unwrap();
        // The cert-mode app's SN is Alipay's rule applied to our generated certificate.
        let cert = Certificate::from_pem(c.alipay.apps[1].app_cert.as_deref().unwrap()).unwrap();
        assert_eq!(
            cert_app.app_cert_sn.as_deref(),
            Some(paybridge_crypto::md5_hex(
                format!("{}{}", cert.issuer_rfc2253(), cert.serial_decimal()).as_bytes()
            ))
            .as_deref()
        );
        assert!(keys.alipay_root_cert_sn.is_some());
        assert!(keys.wechat_serial.starts_with("PUB_KEY_ID_"));
        let m = keys.merchants.get("1900000001").unwrap();
        assert_eq!(m.serial, c.wechat.merchants[0].merchant_serial);
        assert!(c.merchant_files().unwrap().len() >= 8);
    }

    #[test]
    fn data_directory_is_generated_once_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("pb-sandbox-{}", random_string(8)));
        let (first, generated) = SandboxConfig::load_or_generate(&dir, 1_760_000_000).unwrap();
        assert!(generated);
        assert!(dir.join("alipay_public_key.txt").is_file());
        assert!(dir.join("wechat_1900000001_apiclient_key.pem").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("sandbox.toml"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private keys are not world-readable");
        }
        let (again, generated) = SandboxConfig::load_or_generate(&dir, 1_770_000_000).unwrap();
        assert!(!generated);
        assert_eq!(again, first);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
