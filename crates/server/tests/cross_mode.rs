//! Issue 10 item 7, end to end from a TOML file: a live and a sandbox account that name the same
//! Alipay app and verify with the same key would accept each other's notifications, so the
//! configuration is refused at start-up; with the live account's own key, a genuine sandbox
//! notification replayed to the live account's notify URL pays nothing there.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use paybridge_sandbox::{Sandbox, SandboxConfig};
use paybridge_server::channels::build_accounts;
use paybridge_server::config::{Config, Resolver};
use paybridge_store::{Store, StoreOptions};
use serde_json::json;

/// Two Alipay accounts, sandbox and live, on one app id; the live one verifies with
/// `keys/live_alipay.pub`.
fn two_modes(gateway: &str, app_id: &str) -> String {
    let account = |id: &str, mode: &str, public_key: &str| {
        format!(
            r#"
            [[accounts]]
            id = "{id}"
            mode = "{mode}"
            channel = "alipay"
            [accounts.alipay]
            app_id = "{app_id}"
            gateway_url = "{gateway}"
            app_private_key_file = "keys/app.key"
            alipay_public_key_file = "keys/{public_key}"
            "#
        )
    };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_base_url = \"http://127.0.0.1:1\"\n{}{}",
        account("ali-test", "sandbox", "alipay.pub"),
        account("ali-live", "live", "live_alipay.pub"),
    )
}

fn load(dir: &std::path::Path, toml: &str) -> Config {
    let env = |_: &str| None;
    Config::from_toml(
        toml,
        Vec::new(),
        &Resolver {
            base_dir: dir,
            env: &env,
        },
    )
    .unwrap()
}

#[tokio::test]
async fn a_sandbox_notification_never_pays_a_live_order() {
    let sb = Sandbox::start(SandboxConfig::generate(1_790_000_000).unwrap())
        .await
        .unwrap();
    let app = &sb.config().alipay.apps[0];
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        keys.join("app.key"),
        app.app_private_key.as_deref().unwrap(),
    )
    .unwrap();
    std::fs::write(keys.join("alipay.pub"), sb.alipay_public_key()).unwrap();
    let toml = two_modes(&sb.gateway_url(), &app.app_id);
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();

    // The same verifying key on both: refused, naming both accounts (never the key).
    std::fs::write(keys.join("live_alipay.pub"), sb.alipay_public_key()).unwrap();
    let refused = match build_accounts(&load(dir.path(), &toml), &store) {
        Ok(_) => panic!("a live account sharing the sandbox's identity and key was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        refused.contains("ali-test") && refused.contains("ali-live"),
        "{refused}"
    );
    assert!(
        !refused.contains(&sb.alipay_public_key()[..40]),
        "{refused}"
    );

    // The live account with the live key (another provider's, here): accepted.
    let other = SandboxConfig::generate(1_790_000_000).unwrap();
    let live_key = paybridge_sandbox::config::Keys::from_config(&other)
        .unwrap()
        .alipay_public_key
        .to_base64();
    std::fs::write(keys.join("live_alipay.pub"), live_key).unwrap();
    let accounts = build_accounts(&load(dir.path(), &toml), &store).unwrap();
    let api_keys = make_keys(&store).await;
    let (hook, _hooks) = start_receiver().await;
    let inst = start_gateway(store, accounts, &hook).await;

    // One order number in both modes; only the sandbox one is paid at the sandbox.
    let order = |account: &str| {
        json!({"account": account, "channel": "alipay", "scene": "qr", "amount": 500,
               "out_trade_no": "XMODE-1", "subject": "cross mode"})
    };
    let (s, sandbox_order, _) = post(
        &inst.base,
        "/v1/payments",
        &api_keys.sandbox_all,
        Some("xs"),
        &order("ali-test"),
    )
    .await;
    assert_eq!(s, 201, "{sandbox_order}");
    let live_order = {
        let (s, p, _) = post(
            &inst.base,
            "/v1/payments",
            &api_keys.live_all,
            Some("xl"),
            &order("ali-live"),
        )
        .await;
        // The live account talks to the sandbox's gateway here; what matters is the order row.
        assert!(matches!(s, 201 | 202 | 502), "{s} {p}");
        let (_, page) = get(
            &inst.base,
            "/v1/payments?out_trade_no=XMODE-1",
            &api_keys.live_all,
        )
        .await;
        page["data"][0].clone()
    };
    assert_eq!(live_order["account"], "ali-live", "{live_order}");

    let trade = sb.trade_by_out_no("XMODE-1").unwrap();
    sb.pay(&trade.id).unwrap();
    sb.advance(1000);
    sb.run_due().await;
    let genuine = sb
        .notifications()
        .into_iter()
        .rfind(|n| n.trade_id == trade.id)
        .unwrap();
    let (_, paid) = get(
        &inst.base,
        &format!("/v1/payments/{}", sandbox_order["id"].as_str().unwrap()),
        &api_keys.sandbox_read,
    )
    .await;
    assert_eq!(paid["status"], "paid", "{paid}");

    // The same signed bytes, replayed to the live account's notify URL.
    let replay = client()
        .post(format!("{}/notify/alipay/ali-live", inst.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(genuine.request.body.clone())
        .send()
        .await
        .unwrap();
    assert_ne!(replay.text().await.unwrap(), "success");
    let live_id = live_order["id"].as_str().unwrap();
    let (_, live_now) = get(
        &inst.base,
        &format!("/v1/payments/{live_id}"),
        &api_keys.live_all,
    )
    .await;
    assert_ne!(live_now["status"], "paid", "{live_now}");
    let inbox = inst
        .gw
        .store
        .list_payment_notifications(live_id)
        .await
        .unwrap();
    assert_eq!(
        inbox.len(),
        1,
        "the replay is kept, linked to the order it names"
    );
    assert_eq!(inbox[0].outcome.as_deref(), Some("unverified"));
}
