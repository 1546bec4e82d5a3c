//! `paybridge doctor --online` against the sandbox: the demo's accounts (Alipay in both key
//! modes, WeChat Pay APIv3 and APIv2) pass; given keys the sandbox does not hold, each account's
//! finding names the wrong key pair (ours refused) or the wrong provider key (theirs
//! unverifiable).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, ALIPAY_CERT, WECHAT_V2, WECHAT_V3};
use paybridge_core::Mode;
use paybridge_crypto::{encode_pem, generate_rsa_private_key_pkcs8, RsaPrivateKey, Secret};
use paybridge_sandbox::{Clock as _, Sandbox, SandboxConfig, SystemClock};
use paybridge_server::config::{AlipayKeys, Config, ProviderConfig};
use paybridge_server::doctor::{diagnose_online, Report, Severity};

async fn setup() -> (Sandbox, Config) {
    let sb = Sandbox::start(SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap())
        .await
        .unwrap();
    let mut config = Config::minimal("http://127.0.0.1:1").unwrap();
    config.accounts = sandbox_accounts(&sb, Mode::Sandbox)
        .unwrap()
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    (sb, config)
}

fn now() -> i64 {
    SystemClock.now_ms() / 1000
}

fn stranger_pem() -> String {
    encode_pem("PRIVATE KEY", &generate_rsa_private_key_pkcs8().unwrap())
}

fn error<'a>(r: &'a Report, account: &str, field: &str) -> &'a str {
    let scope = format!("accounts.{account}");
    let f = r
        .about(&scope, field)
        .into_iter()
        .find(|f| f.severity == Severity::Error)
        .unwrap_or_else(|| panic!("no error for {scope} {field}:\n{}", r.render_text()));
    &f.problem
}

#[tokio::test]
async fn the_demos_accounts_prove_their_keys_with_the_sandbox() {
    let (_sb, config) = setup().await;
    assert_eq!(config.accounts.len(), 4);
    let r = diagnose_online(&config, now()).await;
    assert!(r.findings.is_empty(), "{}", r.render_text());
}

#[tokio::test]
async fn keys_the_sandbox_does_not_hold_are_named_per_account() {
    let (_sb, mut config) = setup().await;
    for account in config.accounts.values_mut() {
        match (&mut account.provider, account.id.as_str()) {
            // Our signing keys replaced: the provider refuses our signatures.
            (ProviderConfig::Alipay(c), ALIPAY) => c.app_private_key = Secret::new(stranger_pem()),
            (ProviderConfig::Wechat(c), WECHAT_V3) => {
                c.v3.as_mut().unwrap().merchant_private_key = Secret::new(stranger_pem());
            }
            (ProviderConfig::Wechat(c), WECHAT_V2) => {
                c.v2.as_mut().unwrap().api_key = Secret::new("k".repeat(32));
            }
            // Alipay's certificate replaced by another app's view of Alipay: the answer does
            // not verify (its SN is then unknown and no certificate of that SN chains here).
            (ProviderConfig::Alipay(c), ALIPAY_CERT) => {
                let other = RsaPrivateKey::from_text(&stranger_pem()).unwrap();
                c.keys = AlipayKeys::PublicKey(other.public_key().unwrap().to_base64());
            }
            _ => unreachable!(),
        }
    }
    let r = diagnose_online(&config, now()).await;
    assert!(error(&r, ALIPAY, "app_private_key").contains("refused our request signature"));
    assert!(
        error(&r, WECHAT_V3, "v3.merchant_private_key").contains("refused our request signature")
    );
    assert!(error(&r, WECHAT_V2, "v2.api_key").contains("APIv2"));
    let problem = error(&r, ALIPAY_CERT, "alipay_public_key");
    assert!(problem.contains("does not verify"), "{problem}");
    assert_eq!(r.errors().count(), 4, "{}", r.render_text());
}

#[tokio::test]
async fn an_unreachable_provider_is_named_with_its_url() {
    let (sb, config) = setup().await;
    drop(sb);
    let r = diagnose_online(&config, now()).await;
    assert!(error(&r, ALIPAY, "gateway_url").contains("cannot reach"));
    assert!(error(&r, WECHAT_V3, "base_url").contains("cannot reach"));
}
