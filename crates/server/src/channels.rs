//! Builds each configured account's channels from the loaded configuration: the provider
//! crates' clients over a recording reqwest transport, so every provider call lands in the call
//! log.

use std::collections::BTreeMap;
use std::sync::Arc;

use paybridge_alipay::channel::AlipayChannel;
use paybridge_alipay::client::AlipayClient;
use paybridge_alipay::{AesKey, AlipayConfig as AliConfig, AlipayKeys as AliKeys};
use paybridge_core::channel::PaymentChannel;
use paybridge_core::Channel;
use paybridge_crypto::{Certificate, RsaPrivateKey, RsaPublicKey};
use paybridge_http::{ReqwestTransport, Transport, TransportConfig};
use paybridge_store::Store;
use paybridge_wechatpay::v2::api::V2Merchant;
use paybridge_wechatpay::v2::channel::V2Channel;
use paybridge_wechatpay::v2::client::{V2Client, V2Config};
use paybridge_wechatpay::v2::SignType;
use paybridge_wechatpay::v3::channel::V3Channel;
use paybridge_wechatpay::v3::client::system_clock;
use paybridge_wechatpay::v3::{Merchant, MerchantSigner, V3Client, V3Config, Verifier};

use crate::config::{
    AccountConfig, AlipayConfig, AlipayKeys, Config, ProviderConfig, WechatConfig, WechatV2Config,
    WechatV3Config,
};
use crate::service::calllog::{CallSink, RecordingTransport};
use crate::service::{Account, Protocol, StoreCallSink};

#[derive(Debug, thiserror::Error)]
#[error("account {account}: {reason}")]
pub struct BuildError {
    pub account: String,
    pub reason: String,
}

fn err(account: &str, reason: impl std::fmt::Display) -> BuildError {
    BuildError {
        account: account.to_string(),
        reason: reason.to_string(),
    }
}

fn recording(
    account: &str,
    channel: Channel,
    sink: &Arc<dyn CallSink>,
    config: &TransportConfig,
) -> Result<Arc<dyn Transport>, BuildError> {
    let inner = ReqwestTransport::new(config).map_err(|e| err(account, e))?;
    Ok(Arc::new(RecordingTransport::new(
        Arc::new(inner),
        sink.clone(),
        account,
        channel.as_str(),
    )))
}

pub fn build_accounts(config: &Config, store: &Store) -> Result<Vec<Account>, BuildError> {
    let all: Vec<&AccountConfig> = config.accounts.values().collect();
    refuse_shared_identities(&all)?;
    all.into_iter().map(|a| build_account(a, store)).collect()
}

/// What a notification must name and be verified with to count for `a`: (provider, app id or
/// mch id, verifying key material), once per protocol.
fn verifying_identities(a: &AccountConfig) -> Vec<(Channel, String, String)> {
    match &a.provider {
        ProviderConfig::Alipay(c) => {
            let key = match &c.keys {
                AlipayKeys::PublicKey(k) => k,
                AlipayKeys::Certificate {
                    alipay_cert_pem, ..
                } => alipay_cert_pem,
            };
            vec![(Channel::Alipay, c.app_id.clone(), key.trim().to_string())]
        }
        ProviderConfig::Wechat(c) => {
            let mut out = Vec::new();
            if let Some(v2) = &c.v2 {
                out.push(format!("v2 {}", v2.api_key.expose()));
            }
            if let Some(v3) = &c.v3 {
                if let Some((id, pem)) = &v3.public_key {
                    out.push(format!("v3 {id} {}", pem.trim()));
                }
                if let Some(pem) = &v3.platform_certificates_pem {
                    out.push(format!("v3 certificates {}", pem.trim()));
                }
            }
            out.into_iter()
                .map(|k| (Channel::Wechat, c.mchid.clone(), k))
                .collect()
        }
    }
}

/// Two accounts that name the same app / merchant and verify with the same key accept each
/// other's notifications: a sandbox one would pay a live order. Such a configuration is refused
/// (the message names the accounts, never the key).
pub fn refuse_shared_identities(accounts: &[&AccountConfig]) -> Result<(), BuildError> {
    let mut seen: std::collections::HashMap<(Channel, String, String), &str> =
        std::collections::HashMap::new();
    for a in accounts {
        for identity in verifying_identities(a) {
            let provider_id = identity.1.clone();
            if let Some(other) = seen.insert(identity, &a.id) {
                if other != a.id {
                    return Err(err(
                        &a.id,
                        format!(
                            "shares provider identity {provider_id} and its verifying key with \
                             account {other}: each would accept the other's notifications"
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The recorder every provider call of an account goes through.
pub(crate) fn call_sink(a: &AccountConfig, store: &Store) -> Arc<dyn CallSink> {
    Arc::new(StoreCallSink {
        store: store.clone(),
        channel: a.channel,
    })
}

pub fn build_account(a: &AccountConfig, store: &Store) -> Result<Account, BuildError> {
    let sink = call_sink(a, store);
    match &a.provider {
        ProviderConfig::Alipay(c) => alipay(a, c, &sink),
        ProviderConfig::Wechat(c) => wechat(a, c, &sink),
    }
}

/// The Alipay client of an account (keys parsed here, once); the channel and the bill source
/// both use it.
pub(crate) fn alipay_client(
    a: &AccountConfig,
    c: &AlipayConfig,
    sink: &Arc<dyn CallSink>,
) -> Result<AlipayClient, BuildError> {
    let keys = match &c.keys {
        AlipayKeys::PublicKey(public) => {
            AliKeys::public_key_mode(c.app_private_key.expose(), public)
        }
        AlipayKeys::Certificate {
            app_cert_pem,
            alipay_cert_pem,
            root_bundle_pem,
        } => AliKeys::cert_mode(
            c.app_private_key.expose(),
            app_cert_pem,
            &[alipay_cert_pem.as_str()],
            root_bundle_pem,
        ),
    }
    .map_err(|e| err(&a.id, e))?;
    let mut cfg = AliConfig::new(c.app_id.clone(), keys).with_gateway(c.gateway_url.clone());
    cfg.seller_id = c.seller_id.clone();
    if let Some(k) = &c.aes_key {
        cfg = cfg.with_aes_key(AesKey::from_base64(k.expose()).map_err(|e| err(&a.id, e))?);
    }
    let transport = recording(&a.id, Channel::Alipay, sink, &TransportConfig::default())?;
    Ok(AlipayClient::new(cfg, transport))
}

fn alipay(
    a: &AccountConfig,
    c: &AlipayConfig,
    sink: &Arc<dyn CallSink>,
) -> Result<Account, BuildError> {
    let channel: Arc<dyn PaymentChannel> = Arc::new(AlipayChannel::new(alipay_client(a, c, sink)?));
    let mut channels = BTreeMap::new();
    channels.insert(Protocol::Alipay, channel);
    Ok(Account {
        id: a.id.clone(),
        mode: a.mode,
        channel: Channel::Alipay,
        app_id: c.app_id.clone(),
        merchant_id: c.seller_id.clone(),
        primary: Protocol::Alipay,
        channels,
    })
}

/// The backup host is used only against the real WeChat Pay hosts, never a custom base URL.
fn wechat_backup(c: &WechatConfig, default: &str) -> Option<String> {
    (c.base_url == paybridge_wechatpay::v3::BASE_URL).then(|| default.to_string())
}

/// The APIv2 client of an account; `/secapi` goes through a transport with the client
/// certificate.
pub(crate) fn wechat_v2_client(
    a: &AccountConfig,
    c: &WechatConfig,
    v2: &WechatV2Config,
    sink: &Arc<dyn CallSink>,
) -> Result<V2Client, BuildError> {
    let transport = recording(&a.id, Channel::Wechat, sink, &TransportConfig::default())?;
    let cfg = V2Config {
        merchant: V2Merchant {
            appid: c.appid.clone(),
            mch_id: c.mchid.clone(),
            sub_appid: c.sub_appid.clone(),
            sub_mch_id: c.sub_mchid.clone(),
        },
        api_key: v2.api_key.clone(),
        sign_type: if v2.hmac_sha256 {
            SignType::HmacSha256
        } else {
            SignType::Md5
        },
        base_url: c.base_url.clone(),
        backup_base_url: wechat_backup(c, paybridge_wechatpay::v2::BACKUP_BASE_URL),
    };
    let secure = match &v2.client_identity_pem {
        Some(pem) => Some(recording(
            &a.id,
            Channel::Wechat,
            sink,
            &TransportConfig {
                identity_pem: Some(pem.clone()),
                ..TransportConfig::default()
            },
        )?),
        // A plain-HTTP emulator (the sandbox) cannot ask for a client certificate.
        None if c.base_url.starts_with("http://") => Some(transport.clone()),
        None => None,
    };
    Ok(V2Client::new(cfg, transport, secure))
}

/// The APIv3 client of an account: merchant signer and the verifier holding the configured
/// platform certificates and/or WeChat Pay public key.
pub(crate) fn wechat_v3_client(
    a: &AccountConfig,
    c: &WechatConfig,
    v3: &WechatV3Config,
    sink: &Arc<dyn CallSink>,
) -> Result<V3Client<Arc<dyn Transport>>, BuildError> {
    let transport = recording(&a.id, Channel::Wechat, sink, &TransportConfig::default())?;
    let merchant = match &c.sub_mchid {
        Some(sub) => Merchant::Partner {
            sp_mchid: c.mchid.clone(),
            sp_appid: c.appid.clone(),
            sub_mchid: sub.clone(),
            sub_appid: c.sub_appid.clone(),
        },
        None => Merchant::Direct {
            mchid: c.mchid.clone(),
            appid: c.appid.clone(),
        },
    };
    let key = RsaPrivateKey::from_text(v3.merchant_private_key.expose())
        .map_err(|e| err(&a.id, format!("merchant private key: {e}")))?;
    let signer = MerchantSigner::new(c.mchid.clone(), v3.merchant_serial.clone(), key);
    let mut verifier = Verifier::new();
    if let Some(pem) = &v3.platform_certificates_pem {
        for cert in Certificate::bundle_from_pem(pem).map_err(|e| err(&a.id, e))? {
            let cert = cert.map_err(|e| err(&a.id, e))?;
            verifier.add_certificate(&cert).map_err(|e| err(&a.id, e))?;
        }
    }
    if let Some((id, text)) = &v3.public_key {
        let key = RsaPublicKey::from_text(text).map_err(|e| err(&a.id, e))?;
        verifier.add_public_key(id, key);
    }
    let mut cfg = V3Config::new(merchant, v3.apiv3_key.expose().as_bytes().to_vec());
    cfg.base_url = c.base_url.clone();
    cfg.backup_base_url = wechat_backup(c, paybridge_wechatpay::v3::BACKUP_BASE_URL);
    cfg.platform_certificates = v3.platform_certificates_pem.is_some();
    Ok(V3Client::new(
        cfg,
        signer,
        verifier,
        transport,
        system_clock(),
    ))
}

fn wechat(
    a: &AccountConfig,
    c: &WechatConfig,
    sink: &Arc<dyn CallSink>,
) -> Result<Account, BuildError> {
    let mut channels: BTreeMap<Protocol, Arc<dyn PaymentChannel>> = BTreeMap::new();
    if let Some(v2) = &c.v2 {
        let client = wechat_v2_client(a, c, v2, sink)?;
        channels.insert(
            Protocol::WechatV2,
            Arc::new(V2Channel::new(client, system_clock())),
        );
    }
    if let Some(v3) = &c.v3 {
        let client = wechat_v3_client(a, c, v3, sink)?;
        channels.insert(Protocol::WechatV3, Arc::new(V3Channel::new(client)));
    }
    let primary = if channels.contains_key(&Protocol::WechatV3) {
        Protocol::WechatV3
    } else {
        Protocol::WechatV2
    };
    Ok(Account {
        id: a.id.clone(),
        mode: a.mode,
        channel: Channel::Wechat,
        app_id: c.appid.clone(),
        merchant_id: Some(c.mchid.clone()),
        primary,
        channels,
    })
}
