//! `paybridge reconcile` as a user runs it: a config file pointing at an in-process sandbox, a
//! payment paid at the provider whose notification never came, and the command heals it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use paybridge_core::{Channel, Mode, Scene};
use paybridge_sandbox::{DropFault, Faults, Sandbox, SandboxConfig};
use paybridge_server::config::Config;
use paybridge_server::service::reconcile::beijing_date;
use paybridge_server::service::CreatePaymentInput;
use paybridge_server::Gateway;
use paybridge_store::{ApiScope, NewApiKey, Store};

use common::{scratch, write};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_command_heals_a_payment_whose_notification_was_lost() {
    use paybridge_sandbox::Clock as _;
    let now = paybridge_sandbox::SystemClock.now_ms();
    let sb = Sandbox::start(SandboxConfig::generate(now / 1000).unwrap())
        .await
        .unwrap();
    let dir = scratch("reconcile-cli");
    let app = &sb.config().alipay.apps[0];
    let private = write(&dir, "app.key", app.app_private_key.as_deref().unwrap());
    let public = write(&dir, "alipay.pub", &sb.alipay_public_key());
    let aes = app
        .aes_key
        .as_deref()
        .map(|k| format!("aes_key_file = \"{}\"\n", write(&dir, "aes.key", k)))
        .unwrap_or_default();
    let db = dir.join("paybridge.db");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_base_url = \"http://127.0.0.1:9\"\n\
         data_dir = \"{dir}\"\n\n[database]\nurl = \"sqlite://{db}\"\n\n\
         [jobs]\nlate_payment = \"refund\"\n\n\
         [[accounts]]\nid = \"shop\"\nmode = \"sandbox\"\nchannel = \"alipay\"\n\
         [accounts.alipay]\napp_id = \"{app_id}\"\ngateway_url = \"{gateway}\"\n\
         app_private_key_file = \"{private}\"\nalipay_public_key_file = \"{public}\"\n{aes}",
        dir = dir.display(),
        db = db.display(),
        app_id = app.app_id,
        gateway = sb.gateway_url(),
    );
    let config_path = write(&dir, "paybridge.toml", &config);

    // A gateway on the same configuration takes the order; the buyer pays; the notification
    // is lost.
    let loaded = Config::load(Path::new(&config_path)).unwrap();
    assert_eq!(
        loaded.late_payment,
        paybridge_server::service::reconcile::LatePaymentPolicy::Refund
    );
    let store = Store::open(loaded.database_url.expose()).await.unwrap();
    let gw = Arc::new(Gateway::from_config(&loaded, store.clone()).unwrap());
    let (key, _) = store
        .create_api_key(&NewApiKey {
            mode: Mode::Sandbox,
            merchant: "test".into(),
            scopes: vec![ApiScope::Write],
        })
        .await
        .unwrap();
    let input = CreatePaymentInput {
        account: Some("shop".into()),
        channel: Channel::Alipay,
        scene: Scene::Qr,
        amount: 1234,
        out_trade_no: "CLI000001".into(),
        subject: "cli".into(),
        description: None,
        expires_in: None,
        return_url: None,
        client_ip: None,
        payer_id: None,
        auth_code: None,
        metadata: None,
    };
    let idem = paybridge_server::service::IdempotencyKey {
        key: "cli-create-1".into(),
        request_hash: "cli".into(),
    };
    let created = gw.create_payment(&key, &idem, input).await.unwrap();
    let paybridge_server::service::Answer::Done(created) = created else {
        panic!("the sandbox answers at once: {created:?}");
    };
    assert_eq!(created.status.as_str(), "pending");
    sb.set_faults(
        Some(&app.app_id),
        None,
        Faults {
            drop: DropFault::All,
            ..Faults::default()
        },
    );
    let trade = sb.trade_by_out_no("CLI000001").unwrap();
    sb.pay(&trade.id).unwrap();
    sb.run_due().await;
    let date = beijing_date(sb.now()).unwrap().to_string();

    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_paybridge"))
            .args(["reconcile", "--config", &config_path, "--account", "shop"])
            .args(["--date", &date, "--quiet"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["state"], "completed", "{run}");
    assert_eq!(run["totals"]["bill_rows"], 1, "{run}");
    assert_eq!(run["totals"]["healed"], 1, "{run}");
    assert_eq!(run["discrepancies"][0]["out_trade_no"], "CLI000001");
    assert_eq!(run["discrepancies"][0]["resolution"], "healed");
    assert!(stderr.contains("1 healed, 0 left open"), "{stderr}");
    let p = store
        .get_payment_by_out_trade_no("shop", "CLI000001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.status.as_str(), "paid");

    // Unknown account or a bad date: configuration errors, exit code 2.
    let bad = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["reconcile", "--config"])
        .arg(dir.join("paybridge.toml"))
        .args(["--account", "nope", "--date", "2026-01-01"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
