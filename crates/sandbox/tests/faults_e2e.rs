//! Notification faults and retry schedules over real HTTP, time driven explicitly: the
//! recorded attempt offsets equal each provider's schedule under the 1/10000 time scale, and
//! dropped, duplicated, delayed, reordered, forged and tampered notifications behave as
//! advertised against the protocol crates' verifiers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use paybridge_alipay::api::{OrderInfo, TradePay, TradePrecreate};
use paybridge_alipay::client::AlipayClient;
use paybridge_alipay::notify::NotifyForm;
use paybridge_alipay::request::CallOptions;
use paybridge_alipay::{AlipayConfig, AlipayKeys};
use paybridge_core::Fen;
use paybridge_crypto::RsaPublicKey;
use paybridge_sandbox::notifier::{
    AttemptOutcome, DeliveryState, ALIPAY_RETRY_SECS, WECHAT_RETRY_SECS,
};
use paybridge_sandbox::{BodyFault, DropFault, Faults, Sandbox, TimeScale};
use paybridge_wechatpay::v3::notify::parse_notify;
use paybridge_wechatpay::v3::{SignatureHeaders, Verifier};
use serde_json::json;

// Request builders: one place to follow the protocol crate's constructors.
fn req_precreate(no: &str, fen: Fen, subject: &str) -> TradePrecreate {
    TradePrecreate {
        order: OrderInfo::new(no, fen, subject),
    }
}

fn req_barcode(no: &str, auth_code: &str, fen: Fen, subject: &str) -> TradePay {
    TradePay::new(OrderInfo::new(no, fen, subject), auth_code)
}

const APP: &str = "2021000000000001";

fn alipay(sb: &Sandbox) -> AlipayClient {
    let app = &sb.config().alipay.apps[0];
    let keys = AlipayKeys::public_key_mode(
        app.app_private_key.as_deref().unwrap(),
        &sb.alipay_public_key(),
    )
    .unwrap();
    AlipayClient::new(
        AlipayConfig::new(APP, keys).with_gateway(sb.gateway_url()),
        transport(),
    )
}

/// Opens and pays an Alipay trade whose notification goes to `rx`.
async fn paid_trade(sb: &Sandbox, rx: &Receiver, no: &str, fen: i64) -> String {
    let opts = CallOptions {
        notify_url: Some(rx.url.clone()),
        ..CallOptions::default()
    };
    alipay(sb)
        .execute(&req_precreate(no, Fen(fen), "faults"), &opts)
        .await
        .unwrap();
    let id = trade_id(sb, no);
    assert_eq!(control(sb, &id, "pay").await.0, 200);
    id
}

fn alipay_valid(sb: &Sandbox, body: &[u8]) -> bool {
    let key = RsaPublicKey::from_text(&sb.alipay_public_key()).unwrap();
    NotifyForm::parse(body).unwrap().verify(&[&key]).is_some()
}

fn expected_offsets(intervals: &[i64]) -> Vec<i64> {
    let scale = TimeScale::new(1, 10_000);
    let mut acc = 0;
    std::iter::once(0)
        .chain(intervals.iter().map(|s| {
            acc += scale.apply(s * 1000);
            acc
        }))
        .collect()
}

#[tokio::test]
async fn alipay_retry_schedule_is_alipays_and_stops_on_success() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "fail").await;
    paid_trade(&sb, &rx, "F-SCHED-A", 100).await;
    let start = sb.now();
    drain(&sb).await;
    let n = &sb.notifications()[0];
    let offsets: Vec<i64> = n.attempts.iter().map(|a| a.offset_ms).collect();
    assert_eq!(offsets, expected_offsets(ALIPAY_RETRY_SECS));
    assert_eq!(
        rx.received().len(),
        8,
        "the first attempt and seven retries"
    );
    assert_eq!(n.state, DeliveryState::GaveUp);
    // About 24.4 hours of Alipay retries took under 9 s of sandbox time.
    assert!(sb.now() - start < 9_000);

    // A merchant that answers `success` on the third attempt stops the schedule there.
    let rx2 = Receiver::start(200, "SUCCESS").await;
    paid_trade(&sb, &rx2, "F-SCHED-B", 100).await;
    sb.run_due().await;
    sb.run_next().await;
    rx2.set_reply(200, "success");
    drain(&sb).await;
    let n = sb
        .notifications()
        .into_iter()
        .find(|n| n.request.url == rx2.url)
        .unwrap();
    assert_eq!(
        n.attempts.len(),
        3,
        "upper-case SUCCESS is not Alipay's success reply"
    );
    assert_eq!(n.state, DeliveryState::Delivered);
}

#[tokio::test]
async fn wechat_retry_schedule_is_wechats() {
    let sb = sandbox().await;
    let rx = Receiver::start(500, "{\"code\":\"FAIL\",\"message\":\"busy\"}").await;
    // Open the order through the signed API, as a merchant would.
    let c = wechat_client(&sb);
    c.prepay(&paybridge_wechatpay::v3::api::PrepayRequest {
        kind: paybridge_wechatpay::v3::api::PrepayKind::Native,
        out_trade_no: "F-SCHED-W".into(),
        description: "d".into(),
        amount: Fen(1),
        notify_url: rx.url.clone(),
        time_expire: None,
        attach: None,
        payer_client_ip: None,
    })
    .await
    .unwrap();
    control(&sb, &trade_id(&sb, "F-SCHED-W"), "pay").await;
    drain(&sb).await;
    let n = &sb.notifications()[0];
    let offsets: Vec<i64> = n.attempts.iter().map(|a| a.offset_ms).collect();
    assert_eq!(offsets, expected_offsets(WECHAT_RETRY_SECS));
    assert_eq!(rx.received().len(), 16);
}

fn wechat_client(
    sb: &Sandbox,
) -> paybridge_wechatpay::v3::client::V3Client<std::sync::Arc<paybridge_http::ReqwestTransport>> {
    use paybridge_wechatpay::v3::api::Merchant;
    use paybridge_wechatpay::v3::client::{V3Client, V3Config};
    let m = &sb.config().wechat.merchants[0];
    let mut cfg = V3Config::new(
        Merchant::Direct {
            mchid: m.mchid.clone(),
            appid: m.appid.clone(),
        },
        m.api_v3_key.as_bytes().to_vec(),
    );
    cfg.base_url = sb.base_url().to_string();
    cfg.backup_base_url = None;
    cfg.platform_certificates = false;
    let key =
        paybridge_crypto::RsaPrivateKey::from_text(m.merchant_private_key.as_deref().unwrap())
            .unwrap();
    let signer = paybridge_wechatpay::v3::MerchantSigner::new(
        m.mchid.clone(),
        m.merchant_serial.clone(),
        key,
    );
    let clock = sb.clock();
    V3Client::new(
        cfg,
        signer,
        platform_verifier(sb),
        transport(),
        std::sync::Arc::new(move || clock.now_ms() / 1000),
    )
}

fn platform_verifier(sb: &Sandbox) -> Verifier {
    let mut v = Verifier::new();
    v.add_public_key(
        sb.wechat_serial(),
        RsaPublicKey::from_text(&sb.wechat_public_key_pem()).unwrap(),
    );
    v
}

#[tokio::test]
async fn dropped_notifications_never_arrive_but_follow_the_schedule() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    sb.set_faults(
        Some(APP),
        None,
        Faults {
            drop: DropFault::All,
            ..Faults::default()
        },
    );
    paid_trade(&sb, &rx, "F-DROP-1", 100).await;
    drain(&sb).await;
    assert!(rx.received().is_empty());
    let n = &sb.notifications()[0];
    assert_eq!(n.attempts.len(), 8);
    assert!(n
        .attempts
        .iter()
        .all(|a| a.outcome == AttemptOutcome::Dropped));

    // Dropping half: some attempts are lost, the notification still gets through.
    sb.set_faults(
        Some(APP),
        None,
        Faults {
            drop: DropFault::Percent(50),
            ..Faults::default()
        },
    );
    let rx2 = Receiver::start(200, "success").await;
    paid_trade(&sb, &rx2, "F-DROP-2", 100).await;
    drain(&sb).await;
    let n = sb
        .notifications()
        .into_iter()
        .find(|n| n.request.url == rx2.url)
        .unwrap();
    assert_eq!(n.state, DeliveryState::Delivered);
    assert_eq!(rx2.received().len(), 1);
    assert!(n.attempts.len() <= 2);
}

#[tokio::test]
async fn duplicated_delayed_and_reordered() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    // Set through the control API, per trade: the trade must exist first, so use the account.
    let set = control_json(
        &sb,
        reqwest::Method::PUT,
        "/_sandbox/faults",
        json!({"account": APP, "faults": {"duplicate": 3}}),
    )
    .await;
    assert_eq!(set["by_account"][APP]["duplicate"], 3);
    paid_trade(&sb, &rx, "F-DUP-1", 100).await;
    sb.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 3);
    assert!(
        got.iter().all(|g| g.body == got[0].body),
        "identical copies"
    );
    assert!(alipay_valid(&sb, &got[0].body));

    // Delay: nothing until the delay has passed.
    sb.set_faults(
        Some(APP),
        None,
        Faults {
            delay_ms: 60_000,
            ..Faults::default()
        },
    );
    let rx2 = Receiver::start(200, "success").await;
    paid_trade(&sb, &rx2, "F-DELAY-1", 100).await;
    sb.run_due().await;
    assert!(rx2.received().is_empty());
    sb.advance(59_999);
    sb.run_due().await;
    assert!(rx2.received().is_empty());
    sb.advance(1);
    sb.run_due().await;
    assert_eq!(rx2.received().len(), 1);

    // Reorder: two notifications held, then sent newest first.
    sb.set_faults(
        Some(APP),
        None,
        Faults {
            reorder: 2,
            ..Faults::default()
        },
    );
    let rx3 = Receiver::start(200, "success").await;
    paid_trade(&sb, &rx3, "F-ORD-1", 100).await;
    sb.run_due().await;
    assert!(rx3.received().is_empty(), "held for the reorder window");
    paid_trade(&sb, &rx3, "F-ORD-2", 200).await;
    sb.run_due().await;
    let order: Vec<String> = rx3
        .received()
        .iter()
        .map(|r| {
            NotifyForm::parse(&r.body)
                .unwrap()
                .get("out_trade_no")
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(order, vec!["F-ORD-2", "F-ORD-1"]);
}

#[tokio::test]
async fn forged_and_tampered_notifications_fail_verification() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = alipay(&sb);
    let opts = CallOptions {
        notify_url: Some(rx.url.clone()),
        ..CallOptions::default()
    };
    let cases = [
        ("F-FORGED", BodyFault::Forged),
        ("F-AMOUNT", BodyFault::TamperedAmount),
        ("F-APPID", BodyFault::TamperedAppId),
    ];
    for (no, fault) in cases {
        c.execute(&req_precreate(no, Fen(1000), "f"), &opts)
            .await
            .unwrap();
        let id = trade_id(&sb, no);
        sb.set_faults(
            None,
            Some(&id),
            Faults {
                body: fault,
                ..Faults::default()
            },
        );
        control(&sb, &id, "pay").await;
    }
    // A clean one for contrast.
    c.execute(&req_barcode("F-CLEAN", "28", Fen(5), "f"), &opts)
        .await
        .unwrap();
    sb.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 4);
    let by_no = |no: &str| {
        got.iter()
            .find(|g| NotifyForm::parse(&g.body).unwrap().get("out_trade_no") == Some(no))
            .unwrap()
    };
    for (no, _) in cases {
        assert!(!alipay_valid(&sb, &by_no(no).body), "{no} must not verify");
    }
    assert!(alipay_valid(&sb, &by_no("F-CLEAN").body));
    assert_eq!(
        NotifyForm::parse(&by_no("F-AMOUNT").body)
            .unwrap()
            .get("total_amount"),
        Some("11.00")
    );
    assert_eq!(
        NotifyForm::parse(&by_no("F-APPID").body)
            .unwrap()
            .get("app_id"),
        Some("2021009999999999")
    );

    // WeChat APIv3: a tampered resource under the honest signature, and a forged signature.
    let wrx = Receiver::start(204, "").await;
    let w = wechat_client(&sb);
    for (no, fault) in [
        ("F-W-TAMPER", BodyFault::TamperedAmount),
        ("F-W-FORGED", BodyFault::Forged),
        ("F-W-PROBE", BodyFault::SignTestProbe),
        ("F-W-CLEAN", BodyFault::None),
    ] {
        w.prepay(&paybridge_wechatpay::v3::api::PrepayRequest {
            kind: paybridge_wechatpay::v3::api::PrepayKind::Native,
            out_trade_no: no.into(),
            description: "d".into(),
            amount: Fen(10),
            notify_url: wrx.url.clone(),
            time_expire: None,
            attach: None,
            payer_client_ip: None,
        })
        .await
        .unwrap();
        let id = trade_id(&sb, no);
        sb.set_faults(
            None,
            Some(&id),
            Faults {
                body: fault,
                ..Faults::default()
            },
        );
        control(&sb, &id, "pay").await;
        sb.run_due().await;
    }
    let key = sb.config().wechat.merchants[0].api_v3_key.clone();
    let results: Vec<bool> = wrx
        .received()
        .iter()
        .map(|r| {
            let h = SignatureHeaders::from_pairs(&r.headers).unwrap();
            parse_notify(
                &platform_verifier(&sb),
                &h,
                &r.body,
                key.as_bytes(),
                sb.now() / 1000,
            )
            .is_ok()
        })
        .collect();
    assert_eq!(results, vec![false, false, false, true]);
    let probe = &wrx.received()[2];
    assert!(probe
        .header("wechatpay-signature")
        .unwrap()
        .starts_with("WECHATPAY/SIGNTEST/"));
}

#[tokio::test]
async fn everything_sent_and_received_is_visible_through_the_control_api() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    paid_trade(&sb, &rx, "F-VIS-1", 100).await;
    sb.run_due().await;
    let notes: serde_json::Value =
        reqwest::get(format!("{}/_sandbox/notifications", sb.base_url()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(notes[0]["state"], "delivered");
    assert_eq!(notes[0]["attempts"][0]["outcome"]["body"], "success");
    assert!(notes[0]["request"]["body"]
        .as_str()
        .unwrap()
        .contains("F-VIS-1"));
    let reqs: serde_json::Value = reqwest::get(format!("{}/_sandbox/requests", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(reqs.as_array().unwrap().iter().any(|r| r["uri"]
        .as_str()
        .unwrap()
        .starts_with("/gateway.do")
        && r["response_body"]
            .as_str()
            .unwrap()
            .contains("alipay_trade_precreate_response")));
    let trades: serde_json::Value = reqwest::get(format!(
        "{}/_sandbox/trades?out_trade_no=F-VIS-1",
        sb.base_url()
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(trades[0]["status"], "TRADE_SUCCESS");
}

#[tokio::test]
async fn standalone_mode_runs_on_the_system_clock_and_ticks_on_demand() {
    use paybridge_sandbox::{Clock, SandboxConfig, StartOptions, SystemClock};
    let config = SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap();
    // A ticker period far longer than the test: delivery happens only through the tick call.
    let sb = Sandbox::start_with(
        config,
        StartOptions {
            tick: Some(std::time::Duration::from_secs(3_600)),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let rx = Receiver::start(200, "success").await;
    paid_trade(&sb, &rx, "F-SYS-1", 100).await;
    let ticked = control_json(&sb, reqwest::Method::POST, "/_sandbox/tick", json!({})).await;
    assert!(ticked["sent"].as_u64().unwrap() >= 1);
    assert_eq!(rx.received().len(), 1);
    assert!(alipay_valid(&sb, &rx.received()[0].body));
}
