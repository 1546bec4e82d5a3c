//! Gateway configuration: one TOML file plus `PAYBRIDGE__SECTION__KEY` environment overrides.
//!
//! Secrets are never written in the file itself: every secret field is a pair `<name>_file` (a
//! path, relative to the config file) or `<name>_env` (the name of an environment variable).
//! [`Config::load`] reads and parses all key material once, so a missing or malformed key stops
//! start-up with a message naming the account and the field, never at the first payment.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use paybridge_core::{Channel, Mode};
use paybridge_crypto::{Certificate, RsaPrivateKey, RsaPublicKey, Secret};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config: {0}")]
    Parse(String),
    #[error("environment override {var}: {reason}")]
    Override { var: String, reason: String },
    #[error("account {account}: {field}: {reason}")]
    Account {
        account: String,
        field: String,
        reason: String,
    },
    #[error("{field}: {reason}")]
    Field { field: String, reason: String },
    #[error("invalid limit: {0}")]
    Limits(#[from] crate::listener::LimitsError),
}

fn field_err(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        field: field.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file as written.

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub database: RawDatabase,
    #[serde(default)]
    pub webhooks: RawWebhooks,
    #[serde(default)]
    pub ip_allowlist: RawIpAllowlist,
    #[serde(default)]
    pub accounts: Vec<RawAccount>,
    #[serde(default)]
    pub jobs: RawJobs,
    #[serde(default)]
    pub inbox: RawInbox,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub idempotency: RawIdempotency,
    #[serde(default)]
    pub notifications: RawNotifications,
    #[serde(default)]
    pub log: RawLog,
}

/// `[log]`: the line format (the level is `RUST_LOG`'s).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// `json` or `text`; default JSON unless stdout is a terminal.
    pub format: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    /// Base URL providers reach this gateway at (for `notify_url`).
    pub public_base_url: Option<String>,
    pub data_dir: Option<String>,
    pub max_body_bytes: Option<usize>,
    /// A separate `ip:port` serving only `/metrics`; without it, `/metrics` is on the main port
    /// and needs the metrics token.
    pub metrics_listen: Option<String>,
    /// The bearer token `/metrics` requires (on the main port: without it, no `/metrics`).
    pub metrics_token_file: Option<String>,
    pub metrics_token_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDatabase {
    pub url: Option<String>,
    pub url_env: Option<String>,
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    #[serde(default)]
    pub endpoints: Vec<RawEndpoint>,
    pub tolerance_seconds: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub id: String,
    pub url: String,
    /// Only events of this mode go to this endpoint; both when absent.
    pub mode: Option<String>,
    pub signing_secret_file: Option<String>,
    pub signing_secret_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawIpAllowlist {
    /// Proxies whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    #[serde(default)]
    pub alipay: Vec<String>,
    #[serde(default)]
    pub wechat: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawJobs {
    /// Run the webhook and job workers in this process (several instances may all run them).
    pub enabled: Option<bool>,
    /// How often the workers look for due jobs when nothing wakes them (default 1000).
    pub poll_interval_ms: Option<u64>,
    /// How long a claimed job is leased to this instance; a crashed instance's jobs are taken
    /// over by another once it lapses (default 60000). Keep it well above the slowest provider
    /// call: a job outliving its lease may run again elsewhere (handlers are idempotent).
    pub lease_ms: Option<u64>,
    /// Money arriving after its order was closed: `keep` (default) or `refund`.
    pub late_payment: Option<String>,
}

/// What the notification inbox keeps of notifications that change nothing (defaults in
/// [`crate::service::inbox::InboxPolicy`]).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawInbox {
    /// Copies of unverified notifications stored per account and sender address a minute.
    pub unverified_per_address_per_minute: Option<u32>,
    /// Copies of unverified notifications stored per account a minute.
    pub unverified_per_account_per_minute: Option<u32>,
    /// The longest body prefix kept of an unverified notification.
    pub unverified_body_bytes: Option<usize>,
    /// Samples kept per account a minute of senders outside the IP allowlist.
    pub refused_samples_per_minute: Option<u32>,
    pub unverified_retention_hours: Option<u32>,
    pub verified_retention_days: Option<u32>,
}

/// Connection and request limits; every field defaults to [`crate::listener::Limits::default`].
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub header_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub body_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_in_flight_requests: Option<usize>,
}

impl RawLimits {
    fn load(&self, max_body_bytes: Option<usize>) -> Result<crate::listener::Limits, ConfigError> {
        let d = crate::listener::Limits::default();
        let ms = |v: Option<u64>, default: std::time::Duration| {
            v.map(std::time::Duration::from_millis).unwrap_or(default)
        };
        let limits = crate::listener::Limits {
            max_body_bytes: max_body_bytes.unwrap_or(d.max_body_bytes),
            header_timeout: ms(self.header_timeout_ms, d.header_timeout),
            idle_timeout: ms(self.idle_timeout_ms, d.idle_timeout),
            request_timeout: ms(self.request_timeout_ms, d.request_timeout),
            body_timeout: ms(self.body_timeout_ms, d.body_timeout),
            max_connections: self.max_connections.unwrap_or(d.max_connections),
            max_connections_per_ip: self
                .max_connections_per_ip
                .unwrap_or(d.max_connections_per_ip),
            max_in_flight: self.max_in_flight_requests.unwrap_or(d.max_in_flight),
        };
        limits.validate()?;
        Ok(limits)
    }
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawIdempotency {
    /// How long an `Idempotency-Key` is answered with its first result before the retention
    /// job purges it and the key may be used afresh (default 24).
    pub retention_hours: Option<u32>,
}

/// How verified notifications are committed: in groups (see `paybridge_store::GroupCommit`);
/// absent fields take the database's defaults (`GroupPolicy::for_dialect`).
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// Group-commit writers, each using one connection while it commits (1-64).
    pub writers: Option<usize>,
    /// Most notifications sharing one transaction (1-1000; 1 turns grouping off).
    pub max_batch: Option<usize>,
    /// How long a writer waits for more notifications before committing a partial batch
    /// (0-100 ms; 0: commit what has queued, at once).
    pub max_wait_ms: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub id: String,
    pub mode: String,
    pub channel: String,
    pub alipay: Option<RawAlipay>,
    pub wechat: Option<RawWechat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlipay {
    pub app_id: String,
    pub gateway_url: Option<String>,
    /// `public_key` (default) or `certificate`.
    pub key_mode: Option<String>,
    pub seller_id: Option<String>,
    pub app_private_key_file: Option<String>,
    pub app_private_key_env: Option<String>,
    pub alipay_public_key_file: Option<String>,
    pub alipay_public_key_env: Option<String>,
    pub app_cert_file: Option<String>,
    pub alipay_cert_file: Option<String>,
    pub alipay_root_cert_file: Option<String>,
    pub aes_key_file: Option<String>,
    pub aes_key_env: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWechat {
    pub mchid: String,
    pub appid: String,
    pub base_url: Option<String>,
    /// Service-provider (partner) mode: the sub-merchant paid on behalf of.
    pub sub_mchid: Option<String>,
    pub sub_appid: Option<String>,
    pub v2: Option<RawWechatV2>,
    pub v3: Option<RawWechatV3>,
    /// Web authorization of the official account `appid` (the hosted cashier's JSAPI openid).
    pub oauth: Option<RawWechatOauth>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWechatOauth {
    /// The official account's AppSecret.
    pub app_secret_file: Option<String>,
    pub app_secret_env: Option<String>,
    /// `https://open.weixin.qq.com` unless set (the sandbox's URL in tests).
    pub open_base_url: Option<String>,
    /// `https://api.weixin.qq.com` unless set.
    pub api_base_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWechatV2 {
    pub api_key_file: Option<String>,
    pub api_key_env: Option<String>,
    /// `MD5` (default) or `HMAC-SHA256`.
    pub sign_type: Option<String>,
    /// PEM certificate + key for `/secapi` (refunds, reverse).
    pub client_identity_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWechatV3 {
    pub apiv3_key_file: Option<String>,
    pub apiv3_key_env: Option<String>,
    pub merchant_serial: String,
    pub merchant_private_key_file: Option<String>,
    pub merchant_private_key_env: Option<String>,
    /// PEM bundle of platform certificates.
    pub platform_certificates_file: Option<String>,
    /// WeChat Pay public-key mode: `PUB_KEY_ID_...` and the key.
    pub public_key_id: Option<String>,
    pub public_key_file: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The loaded configuration: validated, secrets read and parsed.

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_base_url: String,
    pub data_dir: PathBuf,
    /// Connection and request limits (`[limits]`, and `server.max_body_bytes`).
    pub limits: crate::listener::Limits,
    pub database_url: Secret<String>,
    pub database_max_connections: u32,
    pub webhook_endpoints: Vec<WebhookEndpoint>,
    pub webhook_tolerance_seconds: i64,
    pub ip_allowlist: IpAllowlist,
    pub accounts: BTreeMap<String, AccountConfig>,
    pub jobs_enabled: bool,
    pub poll_interval_ms: u64,
    pub job_lease_ms: i64,
    pub late_payment: crate::service::reconcile::LatePaymentPolicy,
    pub inbox: crate::service::inbox::InboxPolicy,
    pub idempotency_retention_ms: i64,
    /// `[notifications]`: group-commit settings given in the file (the rest default by database).
    pub notifications: NotificationsConfig,
    /// `[server] metrics_listen` and `metrics_token_*`.
    pub metrics: crate::observe::MetricsConfig,
    /// `[log] format`; `None`: JSON unless stdout is a terminal.
    pub log_format: Option<crate::observe::logging::LogFormat>,
}

/// The group-commit settings a file may override; see [`RawNotifications`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationsConfig {
    pub writers: Option<usize>,
    pub max_batch: Option<usize>,
    pub max_wait: Option<std::time::Duration>,
}

impl NotificationsConfig {
    /// The policy for a store of `dialect` with a pool of `pool` connections, with what the
    /// file set. Unless set, writers take at most half the pool: the API and the workers
    /// need connections while notifications pour in.
    pub fn policy(
        &self,
        dialect: paybridge_store::Dialect,
        pool: u32,
    ) -> paybridge_store::GroupPolicy {
        let mut p = paybridge_store::GroupPolicy::for_dialect(dialect);
        p.writers = match self.writers {
            Some(w) => w,
            None => p.writers.min((pool as usize / 2).max(1)),
        };
        if let Some(b) = self.max_batch {
            p.max_batch = b;
        }
        if let Some(w) = self.max_wait {
            p.max_wait = w;
        }
        p
    }
}

#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    pub url: String,
    pub mode: Option<Mode>,
    pub secret: Secret<String>,
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub id: String,
    pub mode: Mode,
    pub channel: Channel,
    pub provider: ProviderConfig,
}

#[derive(Debug, Clone)]
pub enum ProviderConfig {
    Alipay(AlipayConfig),
    Wechat(WechatConfig),
}

#[derive(Debug, Clone)]
pub struct AlipayConfig {
    pub app_id: String,
    pub gateway_url: String,
    pub seller_id: Option<String>,
    /// Validated at load; kept as text because the provider crates parse their own keys.
    pub app_private_key: Secret<String>,
    pub keys: AlipayKeys,
    pub aes_key: Option<Secret<String>>,
}

#[derive(Debug, Clone)]
pub enum AlipayKeys {
    PublicKey(String),
    Certificate {
        app_cert_pem: String,
        alipay_cert_pem: String,
        root_bundle_pem: String,
    },
}

#[derive(Debug, Clone)]
pub struct WechatConfig {
    pub mchid: String,
    pub appid: String,
    pub base_url: String,
    pub sub_mchid: Option<String>,
    pub sub_appid: Option<String>,
    pub v2: Option<WechatV2Config>,
    pub v3: Option<WechatV3Config>,
    pub oauth: Option<WechatOauthConfig>,
}

/// How the hosted cashier learns a WeChat buyer's `openid` (official-account web
/// authorization, `snsapi_base`).
#[derive(Debug, Clone)]
pub struct WechatOauthConfig {
    pub app_secret: Secret<String>,
    pub open_base_url: String,
    pub api_base_url: String,
}

#[derive(Debug, Clone)]
pub struct WechatV2Config {
    pub api_key: Secret<String>,
    pub hmac_sha256: bool,
    pub client_identity_pem: Option<Secret<Vec<u8>>>,
}

#[derive(Debug, Clone)]
pub struct WechatV3Config {
    pub apiv3_key: Secret<String>,
    pub merchant_serial: String,
    pub merchant_private_key: Secret<String>,
    /// PEM bundle, validated at load.
    pub platform_certificates_pem: Option<String>,
    /// `PUB_KEY_ID_...` and the key text.
    pub public_key: Option<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct IpAllowlist {
    pub trusted_proxies: Vec<IpNet>,
    pub alipay: Vec<IpNet>,
    pub wechat: Vec<IpNet>,
}

impl IpAllowlist {
    /// The client address as far as it can be trusted: the peer, or — when the peer is a trusted
    /// proxy — the right-most `X-Forwarded-For` entry not itself a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.is_trusted_proxy(peer) {
            return peer;
        }
        let Some(chain) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in chain.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.is_trusted_proxy(ip) {
                        return ip;
                    }
                }
                // A malformed hop means the chain beyond it is attacker-controlled.
                Err(_) => return client,
            }
        }
        client
    }

    fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// True when `ip` may deliver notifications for `channel` (an empty list allows all).
    pub fn allows(&self, channel: Channel, ip: IpAddr) -> bool {
        let list = match channel {
            Channel::Alipay => &self.alipay,
            Channel::Wechat => &self.wechat,
        };
        list.is_empty() || list.iter().any(|n| n.contains(&ip))
    }
}

fn parse_nets(field: &str, items: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| field_err(field, format!("{s:?} is not an IP address or CIDR")))
        })
        .collect()
}

/// Applies `PAYBRIDGE__A__B__C=value` overrides to a parsed TOML tree. Segments are lower-cased;
/// inside an array of tables (`accounts`, `webhooks.endpoints`) a segment selects the element
/// whose `id` equals it. Values are read as TOML (`8080`, `true`, `["a"]`) and fall back to a
/// plain string.
pub fn apply_env_overrides(
    root: &mut toml::Value,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, raw) in vars {
        let Some(rest) = var.strip_prefix("PAYBRIDGE__") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        if path.iter().any(|s| s.is_empty()) {
            return Err(ConfigError::Override {
                var,
                reason: "empty path segment".into(),
            });
        }
        let value = parse_override_value(&raw);
        set_path(root, &path, value).map_err(|reason| ConfigError::Override {
            var: var.clone(),
            reason,
        })?;
    }
    Ok(())
}

fn parse_override_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    toml::from_str::<toml::Table>(&doc)
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(node: &mut toml::Value, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((head, tail)) = path.split_first() else {
        *node = value;
        return Ok(());
    };
    match node {
        toml::Value::Table(t) => {
            if tail.is_empty() {
                t.insert(head.clone(), value);
                return Ok(());
            }
            let child = t
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            set_path(child, tail, value)
        }
        toml::Value::Array(items) => {
            let child = items
                .iter_mut()
                .find(|item| {
                    item.get("id")
                        .and_then(|v| v.as_str())
                        .is_some_and(|id| id.eq_ignore_ascii_case(head))
                })
                .ok_or_else(|| format!("no element with id {head:?}"))?;
            if tail.is_empty() {
                return Err("cannot replace a whole array element".into());
            }
            set_path(child, tail, value)
        }
        _ => Err(format!("{head:?} is below a scalar value")),
    }
}

/// Where secret and file references are resolved from.
pub struct Resolver<'a> {
    pub base_dir: &'a Path,
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

impl Resolver<'_> {
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        let path = Path::new(p);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    pub(crate) fn read_file(&self, field: &str, p: &str) -> Result<String, String> {
        let path = self.path(p);
        std::fs::read_to_string(&path)
            .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))
    }

    /// Reads a secret given as `<name>_file` or `<name>_env`; exactly one must be set when
    /// `required`.
    pub(crate) fn secret(
        &self,
        name: &str,
        file: Option<&String>,
        env: Option<&String>,
        required: bool,
    ) -> Result<Option<Secret<String>>, String> {
        match (file, env) {
            (Some(_), Some(_)) => Err(format!("set only one of {name}_file and {name}_env")),
            (Some(f), None) => Ok(Some(Secret::new(
                self.read_file(&format!("{name}_file"), f)?
                    .trim()
                    .to_string(),
            ))),
            (None, Some(var)) => match (self.env)(var) {
                Some(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim().to_string()))),
                _ => Err(format!("{name}_env: environment variable {var} is not set")),
            },
            (None, None) if required => Err(format!("{name}_file or {name}_env is required")),
            (None, None) => Ok(None),
        }
    }
}

impl Config {
    /// Reads the file, applies the process environment overrides and loads every secret.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let env = |k: &str| std::env::var(k).ok();
        Config::from_toml(
            &text,
            std::env::vars(),
            &Resolver {
                base_dir: base,
                env: &env,
            },
        )
    }

    pub fn from_toml(
        text: &str,
        overrides: impl IntoIterator<Item = (String, String)>,
        resolver: &Resolver<'_>,
    ) -> Result<Config, ConfigError> {
        let mut tree: toml::Value =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        apply_env_overrides(&mut tree, overrides)?;
        let raw: RawConfig = tree
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        Config::from_raw(raw, resolver)
    }

    pub fn from_raw(raw: RawConfig, r: &Resolver<'_>) -> Result<Config, ConfigError> {
        let listen_text = raw.server.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen_text
            .parse()
            .map_err(|_| field_err("server.listen", format!("{listen_text:?} is not ip:port")))?;
        let data_dir = r.path(raw.server.data_dir.as_deref().unwrap_or("data"));
        let public_base_url = raw
            .server
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"));
        let parsed = url::Url::parse(&public_base_url)
            .map_err(|e| field_err("server.public_base_url", e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(field_err("server.public_base_url", "must be http(s)"));
        }
        let public_base_url = public_base_url.trim_end_matches('/').to_string();

        let database_url = match (&raw.database.url, &raw.database.url_env) {
            (Some(_), Some(_)) => {
                return Err(field_err("database", "set only one of url and url_env"))
            }
            (Some(u), None) => u.clone(),
            (None, Some(var)) => (r.env)(var).ok_or_else(|| {
                field_err(
                    "database.url_env",
                    format!("environment variable {var} is not set"),
                )
            })?,
            (None, None) => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("paybridge.db").display()
            ),
        };
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(field_err(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }

        let mut webhook_endpoints = Vec::new();
        for e in &raw.webhooks.endpoints {
            let field = format!("webhooks.endpoints[{}]", e.id);
            url::Url::parse(&e.url).map_err(|err| field_err(&field, format!("url: {err}")))?;
            let secret = r
                .secret(
                    "signing_secret",
                    e.signing_secret_file.as_ref(),
                    e.signing_secret_env.as_ref(),
                    true,
                )
                .map_err(|reason| field_err(&field, reason))?
                .ok_or_else(|| field_err(&field, "signing secret missing"))?;
            if secret.expose().len() < 16 {
                return Err(field_err(
                    &field,
                    "signing secret shorter than 16 characters",
                ));
            }
            let mode = e
                .mode
                .as_deref()
                .map(|m| m.parse::<Mode>())
                .transpose()
                .map_err(|err| field_err(&field, err.to_string()))?;
            webhook_endpoints.push(WebhookEndpoint {
                id: e.id.clone(),
                url: e.url.clone(),
                mode,
                secret,
            });
        }

        let ip_allowlist = IpAllowlist {
            trusted_proxies: parse_nets(
                "ip_allowlist.trusted_proxies",
                &raw.ip_allowlist.trusted_proxies,
            )?,
            alipay: parse_nets("ip_allowlist.alipay", &raw.ip_allowlist.alipay)?,
            wechat: parse_nets("ip_allowlist.wechat", &raw.ip_allowlist.wechat)?,
        };

        let metrics = crate::observe::MetricsConfig {
            listen: raw
                .server
                .metrics_listen
                .as_deref()
                .map(|l| {
                    l.parse::<SocketAddr>().map_err(|_| {
                        field_err("server.metrics_listen", format!("{l:?} is not ip:port"))
                    })
                })
                .transpose()?,
            token: r
                .secret(
                    "metrics_token",
                    raw.server.metrics_token_file.as_ref(),
                    raw.server.metrics_token_env.as_ref(),
                    false,
                )
                .map_err(|reason| field_err("server", reason))?,
        };
        if metrics
            .token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            return Err(field_err(
                "server.metrics_token",
                "shorter than 16 characters",
            ));
        }
        let log_format = raw
            .log
            .format
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e: String| field_err("log.format", e))?;

        let mut accounts = BTreeMap::new();
        for a in raw.accounts {
            let account = load_account(&a, r).map_err(|(field, reason)| ConfigError::Account {
                account: a.id.clone(),
                field,
                reason,
            })?;
            if accounts.insert(a.id.clone(), account).is_some() {
                return Err(field_err(
                    "accounts",
                    format!("duplicate account id {:?}", a.id),
                ));
            }
        }

        Ok(Config {
            listen,
            public_base_url,
            data_dir,
            limits: raw.limits.load(raw.server.max_body_bytes)?,
            database_url: Secret::new(database_url),
            database_max_connections: raw.database.max_connections.unwrap_or(10),
            webhook_endpoints,
            webhook_tolerance_seconds: raw.webhooks.tolerance_seconds.unwrap_or(300),
            ip_allowlist,
            accounts,
            jobs_enabled: raw.jobs.enabled.unwrap_or(true),
            poll_interval_ms: raw.jobs.poll_interval_ms.unwrap_or(1000),
            job_lease_ms: match raw.jobs.lease_ms {
                None => crate::service::jobs::JOB_LEASE_MS,
                Some(ms) => i64::try_from(ms)
                    .ok()
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| field_err("jobs.lease_ms", "must be a positive number"))?,
            },
            late_payment: match raw.jobs.late_payment.as_deref() {
                None => Default::default(),
                Some(p) => p.parse().map_err(|e| field_err("jobs.late_payment", e))?,
            },
            inbox: inbox_policy(&raw.inbox)?,
            idempotency_retention_ms: match raw.idempotency.retention_hours {
                None => crate::service::DEFAULT_IDEMPOTENCY_RETENTION_MS,
                Some(0) => {
                    return Err(field_err(
                        "idempotency.retention_hours",
                        "must be at least 1",
                    ))
                }
                Some(h) => i64::from(h) * 3_600_000,
            },
            notifications: notifications_config(&raw.notifications)?,
            metrics,
            log_format,
        })
    }

    /// Every default, as an empty file gives them, with this public base URL: the starting
    /// point of the demo, the bench and the tests, which then set what they need.
    pub fn minimal(public_base_url: &str) -> Result<Config, ConfigError> {
        let mut raw = RawConfig::default();
        raw.server.public_base_url = Some(public_base_url.to_string());
        Config::from_raw(
            raw,
            &Resolver {
                base_dir: Path::new("."),
                env: &|_: &str| None,
            },
        )
    }
}

fn notifications_config(raw: &RawNotifications) -> Result<NotificationsConfig, ConfigError> {
    let within = |field: &str, v: Option<u64>, lo: u64, hi: u64| match v {
        Some(n) if n < lo || n > hi => Err(field_err(
            &format!("notifications.{field}"),
            format!("must be between {lo} and {hi}"),
        )),
        _ => Ok(v),
    };
    let as_u64 = |v: Option<usize>| v.map(|n| n as u64);
    Ok(NotificationsConfig {
        writers: within("writers", as_u64(raw.writers), 1, 64)?.map(|n| n as usize),
        max_batch: within("max_batch", as_u64(raw.max_batch), 1, 1000)?.map(|n| n as usize),
        max_wait: within("max_wait_ms", raw.max_wait_ms, 0, 100)?
            .map(std::time::Duration::from_millis),
    })
}

fn inbox_policy(raw: &RawInbox) -> Result<crate::service::inbox::InboxPolicy, ConfigError> {
    let mut p = crate::service::inbox::InboxPolicy::default();
    let positive = |field: &str, v: Option<u32>, default: u32| match v {
        None => Ok(default),
        Some(0) => Err(field_err(&format!("inbox.{field}"), "must be at least 1")),
        Some(n) => Ok(n),
    };
    p.unverified_per_address_per_minute = positive(
        "unverified_per_address_per_minute",
        raw.unverified_per_address_per_minute,
        p.unverified_per_address_per_minute,
    )?;
    p.unverified_per_account_per_minute = positive(
        "unverified_per_account_per_minute",
        raw.unverified_per_account_per_minute,
        p.unverified_per_account_per_minute,
    )?;
    p.refused_samples_per_minute = positive(
        "refused_samples_per_minute",
        raw.refused_samples_per_minute,
        p.refused_samples_per_minute,
    )?;
    if let Some(bytes) = raw.unverified_body_bytes {
        p.unverified_body_bytes = bytes;
    }
    if let Some(h) = raw.unverified_retention_hours {
        p.unverified_retention_ms =
            i64::from(positive("unverified_retention_hours", Some(h), 1)?) * 3_600_000;
    }
    if let Some(d) = raw.verified_retention_days {
        p.verified_retention_ms =
            i64::from(positive("verified_retention_days", Some(d), 1)?) * 86_400_000;
    }
    Ok(p)
}

type FieldResult<T> = Result<T, (String, String)>;

fn at<T>(field: &str, r: Result<T, String>) -> FieldResult<T> {
    r.map_err(|reason| (field.to_string(), reason))
}

fn load_account(a: &RawAccount, r: &Resolver<'_>) -> FieldResult<AccountConfig> {
    if a.id.is_empty()
        || !a
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(("id".into(), "use letters, digits, '-' and '_'".into()));
    }
    let mode: Mode = at("mode", a.mode.parse().map_err(|e| format!("{e}")))?;
    let channel: Channel = at("channel", a.channel.parse().map_err(|e| format!("{e}")))?;
    let provider = match channel {
        Channel::Alipay => {
            let raw = a
                .alipay
                .as_ref()
                .ok_or_else(|| ("alipay".to_string(), "section missing".to_string()))?;
            ProviderConfig::Alipay(load_alipay(raw, mode, r)?)
        }
        Channel::Wechat => {
            let raw = a
                .wechat
                .as_ref()
                .ok_or_else(|| ("wechat".to_string(), "section missing".to_string()))?;
            ProviderConfig::Wechat(load_wechat(raw, mode, r)?)
        }
    };
    Ok(AccountConfig {
        id: a.id.clone(),
        mode,
        channel,
        provider,
    })
}

fn private_key(
    field: &str,
    file: Option<&String>,
    env: Option<&String>,
    r: &Resolver<'_>,
) -> FieldResult<Secret<String>> {
    let text = at(field, r.secret(field, file, env, true))?
        .ok_or_else(|| (field.to_string(), "missing".to_string()))?;
    RsaPrivateKey::from_text(text.expose()).map_err(|e| {
        (
            field.to_string(),
            format!("not a usable RSA private key: {e}"),
        )
    })?;
    Ok(text)
}

fn certificate(field: &str, path: Option<&String>, r: &Resolver<'_>) -> FieldResult<String> {
    let p = path.ok_or_else(|| (field.to_string(), "required".to_string()))?;
    let text = at(field, r.read_file(field, p))?;
    Certificate::from_pem(&text)
        .map_err(|e| (field.to_string(), format!("not a certificate: {e}")))?;
    Ok(text)
}

fn load_alipay(raw: &RawAlipay, mode: Mode, r: &Resolver<'_>) -> FieldResult<AlipayConfig> {
    let gateway_url = raw.gateway_url.clone().unwrap_or_else(|| {
        match mode {
            Mode::Live => "https://openapi.alipay.com/gateway.do",
            Mode::Sandbox => "https://openapi-sandbox.dl.alipaydev.com/gateway.do",
        }
        .to_string()
    });
    at(
        "gateway_url",
        url::Url::parse(&gateway_url).map_err(|e| e.to_string()),
    )?;
    let app_private_key = private_key(
        "app_private_key",
        raw.app_private_key_file.as_ref(),
        raw.app_private_key_env.as_ref(),
        r,
    )?;
    let keys = match raw.key_mode.as_deref().unwrap_or("public_key") {
        "public_key" => {
            let text = at(
                "alipay_public_key",
                r.secret(
                    "alipay_public_key",
                    raw.alipay_public_key_file.as_ref(),
                    raw.alipay_public_key_env.as_ref(),
                    true,
                ),
            )?
            .ok_or_else(|| ("alipay_public_key".to_string(), "missing".to_string()))?;
            RsaPublicKey::from_text(text.expose()).map_err(|e| {
                (
                    "alipay_public_key".to_string(),
                    format!("not an RSA public key: {e}"),
                )
            })?;
            AlipayKeys::PublicKey(text.expose().clone())
        }
        "certificate" => {
            let root_path = raw
                .alipay_root_cert_file
                .as_ref()
                .ok_or_else(|| ("alipay_root_cert_file".to_string(), "required".to_string()))?;
            let root_text = at(
                "alipay_root_cert_file",
                r.read_file("alipay_root_cert_file", root_path),
            )?;
            Certificate::bundle_from_pem(&root_text).map_err(|e| {
                (
                    "alipay_root_cert_file".to_string(),
                    format!("bad bundle: {e}"),
                )
            })?;
            AlipayKeys::Certificate {
                app_cert_pem: certificate("app_cert_file", raw.app_cert_file.as_ref(), r)?,
                alipay_cert_pem: certificate("alipay_cert_file", raw.alipay_cert_file.as_ref(), r)?,
                root_bundle_pem: root_text,
            }
        }
        other => {
            return Err((
                "key_mode".into(),
                format!("{other:?}: use public_key or certificate"),
            ))
        }
    };
    let aes_key = at(
        "aes_key",
        r.secret(
            "aes_key",
            raw.aes_key_file.as_ref(),
            raw.aes_key_env.as_ref(),
            false,
        ),
    )?;
    Ok(AlipayConfig {
        app_id: raw.app_id.clone(),
        gateway_url,
        seller_id: raw.seller_id.clone(),
        app_private_key,
        keys,
        aes_key,
    })
}

fn load_wechat(raw: &RawWechat, _mode: Mode, r: &Resolver<'_>) -> FieldResult<WechatConfig> {
    let base_url = raw
        .base_url
        .clone()
        .unwrap_or_else(|| "https://api.mch.weixin.qq.com".to_string());
    at(
        "base_url",
        url::Url::parse(&base_url).map_err(|e| e.to_string()),
    )?;
    if raw.v2.is_none() && raw.v3.is_none() {
        return Err(("wechat".into(), "configure v2, v3 or both".into()));
    }
    let v2 = match &raw.v2 {
        None => None,
        Some(v2) => {
            let api_key = at(
                "v2.api_key",
                r.secret(
                    "api_key",
                    v2.api_key_file.as_ref(),
                    v2.api_key_env.as_ref(),
                    true,
                ),
            )?
            .ok_or_else(|| ("v2.api_key".to_string(), "missing".to_string()))?;
            if api_key.expose().len() != 32 {
                return Err(("v2.api_key".into(), "must be 32 characters".into()));
            }
            let hmac_sha256 = match v2.sign_type.as_deref().unwrap_or("MD5") {
                "MD5" => false,
                "HMAC-SHA256" => true,
                other => {
                    return Err((
                        "v2.sign_type".into(),
                        format!("{other:?}: use MD5 or HMAC-SHA256"),
                    ))
                }
            };
            let client_identity_pem = match &v2.client_identity_file {
                None => None,
                Some(p) => Some(Secret::new(
                    at(
                        "v2.client_identity_file",
                        r.read_file("client_identity_file", p),
                    )?
                    .into_bytes(),
                )),
            };
            Some(WechatV2Config {
                api_key,
                hmac_sha256,
                client_identity_pem,
            })
        }
    };
    let v3 = match &raw.v3 {
        None => None,
        Some(v3) => {
            let apiv3_key = at(
                "v3.apiv3_key",
                r.secret(
                    "apiv3_key",
                    v3.apiv3_key_file.as_ref(),
                    v3.apiv3_key_env.as_ref(),
                    true,
                ),
            )?
            .ok_or_else(|| ("v3.apiv3_key".to_string(), "missing".to_string()))?;
            if apiv3_key.expose().len() != 32 {
                return Err(("v3.apiv3_key".into(), "must be 32 characters".into()));
            }
            let merchant_private_key = private_key(
                "v3.merchant_private_key",
                v3.merchant_private_key_file.as_ref(),
                v3.merchant_private_key_env.as_ref(),
                r,
            )?;
            let platform_certificates_pem = match &v3.platform_certificates_file {
                None => None,
                Some(p) => {
                    let text = at(
                        "v3.platform_certificates_file",
                        r.read_file("platform_certificates_file", p),
                    )?;
                    Certificate::bundle_from_pem(&text).map_err(|e| {
                        ("v3.platform_certificates_file".to_string(), e.to_string())
                    })?;
                    Some(text)
                }
            };
            let public_key = match (&v3.public_key_id, &v3.public_key_file) {
                (Some(id), Some(p)) => {
                    let text = at("v3.public_key_file", r.read_file("public_key_file", p))?;
                    RsaPublicKey::from_text(&text)
                        .map_err(|e| ("v3.public_key_file".to_string(), e.to_string()))?;
                    Some((id.clone(), text))
                }
                (None, None) => None,
                _ => {
                    return Err((
                        "v3.public_key_id".into(),
                        "public_key_id and public_key_file go together".into(),
                    ))
                }
            };
            if platform_certificates_pem.is_none() && public_key.is_none() {
                return Err((
                    "v3".into(),
                    "needs platform_certificates_file or public_key_id + public_key_file".into(),
                ));
            }
            Some(WechatV3Config {
                apiv3_key,
                merchant_serial: v3.merchant_serial.clone(),
                merchant_private_key,
                platform_certificates_pem,
                public_key,
            })
        }
    };
    let oauth = match &raw.oauth {
        None => None,
        Some(o) => {
            let app_secret = at(
                "oauth.app_secret",
                r.secret(
                    "app_secret",
                    o.app_secret_file.as_ref(),
                    o.app_secret_env.as_ref(),
                    true,
                ),
            )?
            .ok_or_else(|| ("oauth.app_secret".to_string(), "missing".to_string()))?;
            let url = |field: &str, value: &Option<String>, default: &str| {
                let u = value.clone().unwrap_or_else(|| default.to_string());
                at(field, url::Url::parse(&u).map_err(|e| e.to_string()))?;
                Ok::<_, (String, String)>(u)
            };
            Some(WechatOauthConfig {
                app_secret,
                open_base_url: url(
                    "oauth.open_base_url",
                    &o.open_base_url,
                    paybridge_wechatpay::oauth::OPEN_BASE_URL,
                )?,
                api_base_url: url(
                    "oauth.api_base_url",
                    &o.api_base_url,
                    paybridge_wechatpay::oauth::API_BASE_URL,
                )?,
            })
        }
    };
    Ok(WechatConfig {
        mchid: raw.mchid.clone(),
        appid: raw.appid.clone(),
        base_url,
        sub_mchid: raw.sub_mchid.clone(),
        sub_appid: raw.sub_appid.clone(),
        v2,
        v3,
        oauth,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn overrides_reach_tables_and_array_elements() {
        let mut v: toml::Value = toml::from_str(
            "[server]\nlisten = \"127.0.0.1:1\"\n[[accounts]]\nid = \"ali\"\nmode = \"live\"\n",
        )
        .unwrap();
        apply_env_overrides(
            &mut v,
            vec![
                ("PAYBRIDGE__SERVER__LISTEN".into(), "0.0.0.0:9".into()),
                ("PAYBRIDGE__ACCOUNTS__ALI__MODE".into(), "sandbox".into()),
                ("PAYBRIDGE__DATABASE__MAX_CONNECTIONS".into(), "3".into()),
                ("OTHER".into(), "x".into()),
            ],
        )
        .unwrap();
        assert_eq!(v["server"]["listen"].as_str(), Some("0.0.0.0:9"));
        assert_eq!(v["accounts"][0]["mode"].as_str(), Some("sandbox"));
        assert_eq!(v["database"]["max_connections"].as_integer(), Some(3));
        let err = apply_env_overrides(
            &mut v,
            vec![("PAYBRIDGE__ACCOUNTS__NOPE__MODE".into(), "live".into())],
        )
        .unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
    }

    /// The shipped production example stays a valid file (every key known, every value of
    /// the right type); its secrets and key files exist only on a real host.
    #[test]
    fn the_production_example_parses() {
        let raw: RawConfig = toml::from_str(include_str!("../../../ops/gateway.toml")).unwrap();
        assert_eq!(raw.server.metrics_listen.as_deref(), Some("127.0.0.1:9464"));
        assert_eq!(raw.accounts.len(), 2);
    }

    #[test]
    fn metrics_and_log_settings_load_and_are_checked() {
        let env = |k: &str| (k == "METRICS_TOKEN").then(|| "0123456789abcdef-token".to_string());
        let r = Resolver {
            base_dir: Path::new("."),
            env: &env,
        };
        let c = Config::from_toml(
            "[server]\nmetrics_listen = \"127.0.0.1:9464\"\nmetrics_token_env = \"METRICS_TOKEN\"\n[log]\nformat = \"text\"\n",
            Vec::new(),
            &r,
        )
        .unwrap();
        assert_eq!(c.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            c.metrics.token.as_ref().map(|t| t.expose().as_str()),
            Some("0123456789abcdef-token")
        );
        assert_eq!(c.log_format, Some(crate::observe::logging::LogFormat::Text));
        assert!(!format!("{c:?}").contains("0123456789abcdef-token"));
        for (text, field) in [
            ("[log]\nformat = \"xml\"\n", "log.format"),
            (
                "[server]\nmetrics_listen = \"nowhere\"\n",
                "server.metrics_listen",
            ),
            ("[server]\nmetrics_token_env = \"SHORT\"\n", "server"),
        ] {
            let env = |k: &str| (k == "SHORT").then(|| "short".to_string());
            let r = Resolver {
                base_dir: Path::new("."),
                env: &env,
            };
            let e = Config::from_toml(text, Vec::new(), &r)
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(field), "{text}: {e}");
        }
    }

    #[test]
    fn defaults_and_sqlite_in_data_dir() {
        let dir = std::env::temp_dir();
        let c = Config::from_toml(
            "[server]\ndata_dir = \"d\"\n",
            Vec::new(),
            &Resolver {
                base_dir: &dir,
                env: &no_env,
            },
        )
        .unwrap();
        assert!(c.database_url.expose().starts_with("sqlite://"));
        assert!(c.database_url.expose().contains("paybridge.db"));
        assert_eq!(c.public_base_url, "http://127.0.0.1:8080");
        assert!(c.accounts.is_empty());
        assert_eq!(c.job_lease_ms, crate::service::jobs::JOB_LEASE_MS);
        assert_eq!(c.poll_interval_ms, 1000);
        assert_eq!(c.idempotency_retention_ms, 24 * 3_600_000);
    }

    #[test]
    fn idempotency_retention_is_configurable_in_hours() {
        let dir = std::env::temp_dir();
        let load = |section: &str, env: Vec<(String, String)>| {
            Config::from_toml(
                &format!("[server]\ndata_dir = \"d\"\n{section}\n"),
                env,
                &Resolver {
                    base_dir: &dir,
                    env: &no_env,
                },
            )
        };
        let c = load("[idempotency]\nretention_hours = 48", Vec::new()).unwrap();
        assert_eq!(c.idempotency_retention_ms, 48 * 3_600_000);
        let c = load(
            "",
            vec![("PAYBRIDGE__IDEMPOTENCY__RETENTION_HOURS".into(), "2".into())],
        )
        .unwrap();
        assert_eq!(c.idempotency_retention_ms, 2 * 3_600_000);
        let err = load("[idempotency]\nretention_hours = 0", Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains("idempotency.retention_hours"),
            "{err}"
        );
        let err = load("[idempotency]\nretention_days = 1", Vec::new()).unwrap_err();
        assert!(err.to_string().contains("retention_days"), "{err}");
        let m = Config::minimal("http://127.0.0.1:9/").unwrap();
        assert_eq!(m.public_base_url, "http://127.0.0.1:9");
        assert_eq!(m.idempotency_retention_ms, 24 * 3_600_000);
    }

    #[test]
    fn notification_group_commit_is_configurable_within_bounds() {
        use paybridge_store::Dialect;
        let dir = std::env::temp_dir();
        let load = |section: &str| {
            Config::from_toml(
                &format!("[server]\ndata_dir = \"d\"\n{section}\n"),
                Vec::new(),
                &Resolver {
                    base_dir: &dir,
                    env: &no_env,
                },
            )
        };
        let defaults = load("").unwrap().notifications;
        let pg = defaults.policy(Dialect::Postgres, 10);
        assert_eq!((pg.writers, pg.max_batch), (5, 50), "half the pool of 10");
        assert_eq!(defaults.policy(Dialect::Postgres, 64).writers, 8);
        assert_eq!(defaults.policy(Dialect::Sqlite, 64).writers, 1);
        assert_eq!(defaults.policy(Dialect::Postgres, 1).writers, 1);
        let c = load("[notifications]\nwriters = 3\nmax_batch = 1\nmax_wait_ms = 5")
            .unwrap()
            .notifications;
        let p = c.policy(Dialect::Postgres, 10);
        assert_eq!(
            (p.writers, p.max_batch, p.max_wait),
            (3, 1, std::time::Duration::from_millis(5))
        );
        for bad in [
            "writers = 0",
            "max_batch = 1001",
            "max_wait_ms = 101",
            "batch = 2",
        ] {
            let err = load(&format!("[notifications]\n{bad}")).unwrap_err();
            assert!(
                err.to_string().contains("notifications") || err.to_string().contains("batch"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn job_lease_is_configurable_and_positive() {
        let dir = std::env::temp_dir();
        let load = |jobs: &str| {
            Config::from_toml(
                &format!("[server]\ndata_dir = \"d\"\n[jobs]\n{jobs}\n"),
                Vec::new(),
                &Resolver {
                    base_dir: &dir,
                    env: &no_env,
                },
            )
        };
        let c = load("lease_ms = 4000\npoll_interval_ms = 200").unwrap();
        assert_eq!((c.job_lease_ms, c.poll_interval_ms), (4000, 200));
        let err = load("lease_ms = 0").unwrap_err();
        assert!(err.to_string().contains("jobs.lease_ms"), "{err}");
    }

    #[test]
    fn limits_default_override_and_refuse_zero_by_name() {
        let dir = std::env::temp_dir();
        let load = |text: &str, overrides: Vec<(String, String)>| {
            Config::from_toml(
                &format!("[server]\ndata_dir = \"d\"\n{text}"),
                overrides,
                &Resolver {
                    base_dir: &dir,
                    env: &no_env,
                },
            )
        };
        let c = load("", Vec::new()).unwrap();
        assert_eq!(c.limits, crate::listener::Limits::default());
        let c = load(
            "max_body_bytes = 1024\n[limits]\nheader_timeout_ms = 1500\nmax_connections_per_ip = 8\n",
            vec![(
                "PAYBRIDGE__LIMITS__MAX_IN_FLIGHT_REQUESTS".into(),
                "7".into(),
            )],
        )
        .unwrap();
        assert_eq!(c.limits.max_body_bytes, 1024);
        assert_eq!(
            c.limits.header_timeout,
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(c.limits.max_connections_per_ip, 8);
        assert_eq!(c.limits.max_in_flight, 7);
        assert_eq!(c.limits.idle_timeout, std::time::Duration::from_secs(60));
        for (text, field) in [
            ("[limits]\nidle_timeout_ms = 0\n", "limits.idle_timeout_ms"),
            ("[limits]\nmax_connections = 0\n", "limits.max_connections"),
            ("max_body_bytes = 0\n", "server.max_body_bytes"),
        ] {
            match load(text, Vec::new()) {
                Err(ConfigError::Limits(crate::listener::LimitsError::Zero { field: f })) => {
                    assert_eq!(f, field)
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        let err = load("[limits]\nheader_timeout = 5\n", Vec::new()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse(_)), "{err}");
    }

    #[test]
    fn bad_key_fails_with_account_and_field() {
        let dir = std::env::temp_dir().join(format!("pb-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("bad.pem"), "not a key").unwrap();
        let env = |k: &str| (k == "ALI_PUB").then(|| "x".to_string());
        let err = Config::from_toml(
            r#"
            [[accounts]]
            id = "ali"
            mode = "sandbox"
            channel = "alipay"
            [accounts.alipay]
            app_id = "2021"
            app_private_key_file = "bad.pem"
            alipay_public_key_env = "ALI_PUB"
            "#,
            Vec::new(),
            &Resolver {
                base_dir: &dir,
                env: &env,
            },
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("account ali") && msg.contains("app_private_key"),
            "{msg}"
        );
        assert!(
            !msg.contains("not a key"),
            "secret content must not leak: {msg}"
        );
    }

    #[test]
    fn secrets_load_from_env_and_stay_redacted() {
        let dir = std::env::temp_dir();
        let key = paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap();
        let key_pem = paybridge_crypto::encode_pem("PRIVATE KEY", &key);
        let pk = RsaPrivateKey::from_text(&key_pem)
            .unwrap()
            .public_key()
            .unwrap();
        let pub_b64 = pk.to_base64();
        let env = move |k: &str| match k {
            "K" => Some(key_pem.clone()),
            "P" => Some(pub_b64.clone()),
            "W" => Some("whsec_0123456789abcdef".into()),
            _ => None,
        };
        let c = Config::from_toml(
            r#"
            [webhooks]
            endpoints = [{ id = "main", url = "http://127.0.0.1:9/hook", signing_secret_env = "W" }]
            [[accounts]]
            id = "ali"
            mode = "sandbox"
            channel = "alipay"
            [accounts.alipay]
            app_id = "2021"
            app_private_key_env = "K"
            alipay_public_key_env = "P"
            "#,
            Vec::new(),
            &Resolver {
                base_dir: &dir,
                env: &env,
            },
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("whsec_0123456789abcdef"));
        assert!(!debug.contains("PRIVATE KEY"));
        assert_eq!(c.accounts["ali"].mode, Mode::Sandbox);
    }

    #[test]
    fn wechat_web_authorization_loads_with_defaults_and_stays_redacted() {
        let dir = std::env::temp_dir();
        let env = |k: &str| match k {
            "V2" => Some("0123456789abcdef0123456789abcdef".to_string()),
            "SECRET" => Some("app-secret-value-9f3a".to_string()),
            _ => None,
        };
        let toml = |oauth: &str| {
            format!(
                r#"
            [[accounts]]
            id = "wx"
            mode = "sandbox"
            channel = "wechat"
            [accounts.wechat]
            mchid = "1900000001"
            appid = "wx0000000000000001"
            [accounts.wechat.v2]
            api_key_env = "V2"
            {oauth}
            "#
            )
        };
        let resolver = Resolver {
            base_dir: &dir,
            env: &env,
        };
        let c = Config::from_toml(
            &toml("[accounts.wechat.oauth]\napp_secret_env = \"SECRET\""),
            Vec::new(),
            &resolver,
        )
        .unwrap();
        let ProviderConfig::Wechat(w) = &c.accounts["wx"].provider else {
            panic!("a wechat account")
        };
        let oauth = w.oauth.as_ref().unwrap();
        assert_eq!(oauth.app_secret.expose(), "app-secret-value-9f3a");
        assert_eq!(oauth.open_base_url, "https://open.weixin.qq.com");
        assert_eq!(oauth.api_base_url, "https://api.weixin.qq.com");
        assert!(!format!("{c:?}").contains("app-secret-value-9f3a"));
        // Without the section: no web authorization; with it but no secret: refused by name.
        let c = Config::from_toml(&toml(""), Vec::new(), &resolver).unwrap();
        let ProviderConfig::Wechat(w) = &c.accounts["wx"].provider else {
            panic!("a wechat account")
        };
        assert!(w.oauth.is_none());
        let err = Config::from_toml(
            &toml("[accounts.wechat.oauth]\nopen_base_url = \"http://127.0.0.1:9\""),
            Vec::new(),
            &resolver,
        )
        .unwrap_err();
        assert!(err.to_string().contains("oauth.app_secret"), "{err}");
    }

    #[test]
    fn forwarded_for_only_trusted_from_proxies() {
        let list = IpAllowlist {
            trusted_proxies: parse_nets("t", &["10.0.0.0/8".into()]).unwrap(),
            alipay: parse_nets("a", &["203.0.113.0/24".into()]).unwrap(),
            wechat: Vec::new(),
        };
        let proxy: IpAddr = "10.1.1.1".parse().unwrap();
        let outsider: IpAddr = "198.51.100.7".parse().unwrap();
        // From a trusted proxy: the right-most untrusted hop wins, spoofed left entries ignored.
        assert_eq!(
            list.client_ip(proxy, Some("203.0.113.9, 198.51.100.7, 10.2.2.2")),
            outsider
        );
        // From an untrusted peer: the header is ignored entirely.
        assert_eq!(list.client_ip(outsider, Some("203.0.113.9")), outsider);
        assert!(list.allows(Channel::Alipay, "203.0.113.9".parse().unwrap()));
        assert!(!list.allows(Channel::Alipay, outsider));
        assert!(list.allows(Channel::Wechat, outsider));
    }
}
