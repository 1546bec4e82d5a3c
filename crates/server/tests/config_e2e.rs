//! `paybridge serve`'s path from a TOML file to working channels: keys written to files and
//! environment variables exactly as an operator would, loaded by `Config`, composed into a
//! gateway by `Gateway::from_config` (the one composition root), and a payment made through each
//! account against the sandbox. Also: every setting of the file reaches the composed gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sandbox_accounts::sandbox_accounts;
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{
    Clock as _, ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock,
};
use paybridge_server::channels::refuse_shared_identities;
use paybridge_server::config::{AccountConfig, Config, Resolver};
use paybridge_server::service::inbox::InboxPolicy;
use paybridge_server::service::reconcile::LatePaymentPolicy;
use paybridge_server::{ComposeError, Gateway};
use paybridge_store::{Store, StoreOptions};
use serde_json::json;

#[tokio::test]
async fn toml_config_with_key_files_and_env_drives_real_channels() {
    let now = SystemClock.now_ms();
    let sb = Sandbox::start_with(
        SandboxConfig::generate(now / 1000).unwrap(),
        StartOptions {
            manual_clock: Some(ManualClock::new(now)),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let cfg = sb.config().clone();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let write = |name: &str, text: &str| std::fs::write(keys.join(name), text).unwrap();
    let cert_app = &cfg.alipay.apps[1];
    write("app2.key", cert_app.app_private_key.as_deref().unwrap());
    write("app2.crt", cert_app.app_cert.as_deref().unwrap());
    write("alipay.crt", cfg.alipay.alipay_cert.as_deref().unwrap());
    write("root.crt", cfg.alipay.root_cert.as_deref().unwrap());
    let m = &cfg.wechat.merchants[0];
    write(
        "apiclient_key.pem",
        m.merchant_private_key.as_deref().unwrap(),
    );
    write("pub_key.pem", &sb.wechat_public_key_pem());
    write("whsec", "whsec_from_a_file_0123456789");
    let toml = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        public_base_url = "http://127.0.0.1:1"
        data_dir = "data"

        [webhooks]
        endpoints = [{{ id = "main", url = "http://127.0.0.1:9/hook", signing_secret_file = "keys/whsec" }}]

        [[accounts]]
        id = "ali-cert"
        mode = "sandbox"
        channel = "alipay"
        [accounts.alipay]
        app_id = "{app_id}"
        gateway_url = "{gateway}"
        key_mode = "certificate"
        app_private_key_file = "keys/app2.key"
        app_cert_file = "keys/app2.crt"
        alipay_cert_file = "keys/alipay.crt"
        alipay_root_cert_file = "keys/root.crt"

        [[accounts]]
        id = "wx"
        mode = "live"
        channel = "wechat"
        [accounts.wechat]
        mchid = "{mchid}"
        appid = "{appid}"
        base_url = "{base}"
        [accounts.wechat.v3]
        apiv3_key_env = "TEST_APIV3"
        merchant_serial = "{serial}"
        merchant_private_key_file = "keys/apiclient_key.pem"
        public_key_id = "{pkid}"
        public_key_file = "keys/pub_key.pem"
        "#,
        app_id = cert_app.app_id,
        gateway = sb.gateway_url(),
        mchid = m.mchid,
        appid = m.appid,
        base = sb.base_url(),
        serial = m.merchant_serial,
        pkid = cfg.wechat.public_key_id.clone().unwrap(),
    );
    let apiv3 = m.api_v3_key.clone();
    let env = move |k: &str| (k == "TEST_APIV3").then(|| apiv3.clone());
    // The environment switches the WeChat account to sandbox mode, as an operator would.
    let overrides = vec![(
        "PAYBRIDGE__ACCOUNTS__WX__MODE".to_string(),
        "sandbox".to_string(),
    )];
    let config = Config::from_toml(
        &toml,
        overrides,
        &Resolver {
            base_dir: dir.path(),
            env: &env,
        },
    )
    .unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains(&m.api_v3_key) && !debug.contains("whsec_from_a_file"));

    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let keys = make_keys(&store).await;
    let (hook, hooks) = start_receiver().await;
    // The receiver of this test instead of the file's endpoint, which nobody listens at.
    let mut config = config;
    config.webhook_endpoints = test_config(&hook).webhook_endpoints;
    let inst = start_from_config(store, config, None).await;
    for (account, channel, no) in [
        ("ali-cert", "alipay", "CFGALI01"),
        ("wx", "wechat", "CFGWX001"),
    ] {
        let (s, p, _) = post(
            &inst.base,
            "/v1/payments",
            &keys.sandbox_all,
            Some(no),
            &json!({"account": account, "channel": channel, "scene": "qr", "amount": 42,
                    "out_trade_no": no, "subject": "config"}),
        )
        .await;
        assert_eq!(s, 201, "{account}: {p}");
        let trade = sb.trade_by_out_no(no).unwrap();
        sb.pay(&trade.id).unwrap();
        sb.advance(1000);
        sb.run_due().await;
        let (_, paid) = get(
            &inst.base,
            &format!("/v1/payments/{}", p["id"].as_str().unwrap()),
            &keys.sandbox_read,
        )
        .await;
        assert_eq!(paid["status"], "paid", "{account}");
    }
    inst.gw
        .deliver_webhooks_once(inst.gw.now_ms(), 10)
        .await
        .unwrap();
    assert_eq!(hooks.len(), 2);
    hooks.verify_all(inst.gw.now_ms() / 1000);
}

/// Every setting of the file reaches the gateway through the composition root, environment
/// overrides included, and none keeps its default by being forgotten.
#[tokio::test]
async fn every_setting_of_the_file_reaches_the_composed_gateway() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("whsec"), "whsec_settings_0123456789").unwrap();
    let toml = r#"
        [server]
        public_base_url = "https://pay.example.com/"

        [webhooks]
        endpoints = [{ id = "live-only", url = "https://shop.example/hook", mode = "live", signing_secret_file = "whsec" }]

        [ip_allowlist]
        trusted_proxies = ["10.0.0.0/8"]
        alipay = ["203.0.113.0/24"]

        [jobs]
        lease_ms = 4000
        late_payment = "refund"

        [inbox]
        unverified_per_address_per_minute = 3
        unverified_per_account_per_minute = 7
        unverified_body_bytes = 512
        refused_samples_per_minute = 2
        unverified_retention_hours = 5
        verified_retention_days = 30

        [idempotency]
        retention_hours = 48
        "#;
    let overrides = vec![("PAYBRIDGE__JOBS__LEASE_MS".to_string(), "9000".to_string())];
    let config = Config::from_toml(
        toml,
        overrides,
        &Resolver {
            base_dir: dir.path(),
            env: &|_: &str| None,
        },
    )
    .unwrap();
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let gw = Gateway::from_config(&config, store).unwrap();

    assert_eq!(gw.public_base_url(), "https://pay.example.com");
    assert_eq!(gw.job_lease_ms(), 9000, "the override wins over the file");
    assert_eq!(gw.idempotency_retention_ms(), 48 * 3_600_000);
    assert_eq!(gw.late_payment_policy(), LatePaymentPolicy::Refund);
    let defaults = InboxPolicy::default();
    assert_eq!(
        gw.inbox_policy(),
        &InboxPolicy {
            unverified_per_address_per_minute: 3,
            unverified_per_account_per_minute: 7,
            unverified_body_bytes: 512,
            refused_samples_per_minute: 2,
            unverified_retention_ms: 5 * 3_600_000,
            verified_retention_ms: 30 * 86_400_000,
            ..defaults
        }
    );
    assert_eq!(gw.endpoints_for(Mode::Live), vec!["live-only".to_string()]);
    assert!(gw.endpoints_for(Mode::Sandbox).is_empty());
    let allow = gw.ip_allowlist();
    assert!(allow.allows(
        paybridge_core::Channel::Alipay,
        "203.0.113.9".parse().unwrap()
    ));
    assert!(!allow.allows(
        paybridge_core::Channel::Alipay,
        "198.51.100.1".parse().unwrap()
    ));
    assert_eq!(
        allow.client_ip("10.1.1.1".parse().unwrap(), Some("198.51.100.1")),
        "198.51.100.1".parse::<std::net::IpAddr>().unwrap(),
        "the trusted proxy's forwarded-for is believed"
    );
    assert!(gw.accounts().is_empty());
}

/// A live account sharing a sandbox identity and key would accept its notifications: the
/// composition root refuses it, as it refuses a configured account given no channels.
#[tokio::test]
async fn a_live_account_sharing_a_sandbox_identity_and_key_is_refused() {
    let sb = Sandbox::start(SandboxConfig::generate(1_790_000_000).unwrap())
        .await
        .unwrap();
    let sandbox = sandbox_accounts(&sb, Mode::Sandbox).unwrap();
    // The sandbox's own accounts share a mch id but not a key (v2 and v3): fine.
    refuse_shared_identities(&sandbox.iter().collect::<Vec<_>>()).unwrap();
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    for copied in &sandbox {
        let mut live = copied.clone();
        live.id = format!("live-{}", copied.id);
        live.mode = Mode::Live;
        let mut all: Vec<&AccountConfig> = sandbox.iter().collect();
        all.push(&live);
        let e = refuse_shared_identities(&all).unwrap_err();
        assert_eq!(e.account, live.id);
        assert!(e.reason.contains(&copied.id), "{e}");

        let mut config = Config::minimal("http://127.0.0.1:1").unwrap();
        config.accounts = all.into_iter().map(|a| (a.id.clone(), a.clone())).collect();
        match Gateway::from_config(&config, store.clone()) {
            Err(ComposeError::Account(e)) => assert!(e.reason.contains("shares"), "{e}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{} was accepted", live.id),
        }
    }
    let mut config = Config::minimal("http://127.0.0.1:1").unwrap();
    config.accounts = sandbox.iter().map(|a| (a.id.clone(), a.clone())).collect();
    assert!(matches!(
        Gateway::from_config_with_accounts(&config, store, Vec::new()),
        Err(ComposeError::MissingAccount(_))
    ));
}
