//! Gateway accounts wired to a running sandbox: what `paybridge demo` and `paybridge bench` run
//! on, and the server's end-to-end tests too (they include this file, so the gateway crate
//! never links the sandbox outside its tests). Every key comes from the sandbox's generated
//! configuration, so nothing needs setting up.

use paybridge_core::{Channel, Mode};
use paybridge_crypto::Secret;
use paybridge_sandbox::Sandbox;

use paybridge_server::config::{
    AccountConfig, AlipayConfig, AlipayKeys, ProviderConfig, WechatConfig, WechatOauthConfig,
    WechatV2Config, WechatV3Config,
};

pub const ALIPAY: &str = "alipay-sandbox";
pub const ALIPAY_CERT: &str = "alipay-cert";
pub const WECHAT_V3: &str = "wechat-sandbox";
pub const WECHAT_V2: &str = "wechat-v2";

fn missing(what: &str) -> String {
    format!("the sandbox configuration has no {what}")
}

/// Four accounts: Alipay in public-key mode (with AES content encryption) and in certificate
/// mode, WeChat Pay over APIv3 (public-key mode) and over APIv2.
pub fn sandbox_accounts(sb: &Sandbox, mode: Mode) -> Result<Vec<AccountConfig>, String> {
    let cfg = sb.config();
    let app = |i: usize| cfg.alipay.apps.get(i).ok_or_else(|| missing("Alipay app"));
    let (a1, a2) = (app(0)?, app(1)?);
    let key = |k: &Option<String>| {
        k.clone()
            .map(Secret::new)
            .ok_or_else(|| missing("app private key"))
    };
    let alipay = AccountConfig {
        id: ALIPAY.into(),
        mode,
        channel: Channel::Alipay,
        provider: ProviderConfig::Alipay(AlipayConfig {
            app_id: a1.app_id.clone(),
            gateway_url: sb.gateway_url(),
            seller_id: None,
            app_private_key: key(&a1.app_private_key)?,
            keys: AlipayKeys::PublicKey(sb.alipay_public_key()),
            aes_key: a1.aes_key.clone().map(Secret::new),
        }),
    };
    let alipay_cert = AccountConfig {
        id: ALIPAY_CERT.into(),
        mode,
        channel: Channel::Alipay,
        provider: ProviderConfig::Alipay(AlipayConfig {
            app_id: a2.app_id.clone(),
            gateway_url: sb.gateway_url(),
            seller_id: None,
            app_private_key: key(&a2.app_private_key)?,
            keys: AlipayKeys::Certificate {
                app_cert_pem: a2
                    .app_cert
                    .clone()
                    .ok_or_else(|| missing("app certificate"))?,
                alipay_cert_pem: cfg
                    .alipay
                    .alipay_cert
                    .clone()
                    .ok_or_else(|| missing("Alipay certificate"))?,
                root_bundle_pem: cfg
                    .alipay
                    .root_cert
                    .clone()
                    .ok_or_else(|| missing("Alipay root certificate"))?,
            },
            aes_key: None,
        }),
    };
    let m = cfg
        .wechat
        .merchants
        .first()
        .ok_or_else(|| missing("WeChat merchant"))?;
    let public_key_id = cfg
        .wechat
        .public_key_id
        .clone()
        .unwrap_or_else(|| sb.wechat_serial().to_string());
    let wechat = |id: &str, v2: bool, v3: bool| -> Result<AccountConfig, String> {
        Ok(AccountConfig {
            id: id.into(),
            mode,
            channel: Channel::Wechat,
            provider: ProviderConfig::Wechat(WechatConfig {
                mchid: m.mchid.clone(),
                appid: m.appid.clone(),
                base_url: sb.base_url().to_string(),
                sub_mchid: None,
                sub_appid: None,
                v2: v2.then(|| WechatV2Config {
                    api_key: Secret::new(m.api_v2_key.clone()),
                    hmac_sha256: false,
                    client_identity_pem: None,
                }),
                // The sandbox plays WeChat's web authorization too (the cashier's JSAPI).
                oauth: m.app_secret.clone().map(|secret| WechatOauthConfig {
                    app_secret: Secret::new(secret),
                    open_base_url: sb.base_url().to_string(),
                    api_base_url: sb.base_url().to_string(),
                }),
                v3: match v3 {
                    false => None,
                    true => Some(WechatV3Config {
                        apiv3_key: Secret::new(m.api_v3_key.clone()),
                        merchant_serial: m.merchant_serial.clone(),
                        merchant_private_key: key(&m.merchant_private_key)?,
                        platform_certificates_pem: None,
                        public_key: Some((public_key_id.clone(), sb.wechat_public_key_pem())),
                    }),
                },
            }),
        })
    };
    Ok(vec![
        alipay,
        alipay_cert,
        wechat(WECHAT_V3, false, true)?,
        wechat(WECHAT_V2, true, false)?,
    ])
}
