//! `paybridge serve`'s path from a TOML file to working channels: keys written to files and
//! environment variables exactly as an operator would, loaded by `Config`, built into channels,
//! and a payment made through each against the sandbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use paybridge_sandbox::{
    Clock as _, ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock,
};
use paybridge_server::channels::build_accounts;
use paybridge_server::config::{Config, Resolver};
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
    let accounts = build_accounts(&config, &store).unwrap();
    let (hook, hooks) = start_receiver().await;
    let inst = start_gateway(store, accounts, &hook).await;
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
