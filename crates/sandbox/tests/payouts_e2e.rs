//! Payouts end to end: paybridge-wechatpay's transfer-bills client and paybridge-alipay's fund
//! APIs against the sandbox over real HTTP: the payee confirms, refuses or lets it time out,
//! notifications verified and decrypted by the protocol crates, failures on demand, and one
//! transfer per merchant number whatever happens to the answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use paybridge_alipay::api::{
    AlipayApi, FundAccountQuery, FundTransCommonQuery, FundTransStatus, FundTransUniTransfer,
    GenericRequest, Payee,
};
use paybridge_alipay::channel::AlipayChannel;
use paybridge_alipay::client::AlipayClient;
use paybridge_alipay::convert::is_payout_not_found;
use paybridge_alipay::fund_notify::verify_fund_notify;
use paybridge_alipay::notify::NotifyForm;
use paybridge_alipay::request::CallOptions;
use paybridge_alipay::{AlipayConfig, AlipayError, AlipayKeys};
use paybridge_core::channel::{ChannelError, InboundRequest};
use paybridge_core::{CreatePayout, Fen, PayoutPayee, ProviderPayoutStatus, SceneReport};
use paybridge_crypto::{RsaPrivateKey, RsaPublicKey, Secret};
use paybridge_http::ReqwestTransport;
use paybridge_sandbox::notifier::{
    DeliveryState, ALIPAY_MESSAGE_RETRY_SECS, WECHAT_TRANSFER_RETRY_SECS,
};
use paybridge_sandbox::{PayoutFault, PayoutState, Sandbox};
use paybridge_wechatpay::bill::BillReader;
use paybridge_wechatpay::status::TransferBillState;
use paybridge_wechatpay::v3::api;
use paybridge_wechatpay::v3::channel::V3Channel;
use paybridge_wechatpay::v3::client::{V3Client, V3Config};
use paybridge_wechatpay::v3::error::V3Error;
use paybridge_wechatpay::v3::transfer::{
    is_not_found, parse_transfer_notify, BillRef, ConfirmParams, CreateTransferBill, ReceiptState,
    SceneReportInfo,
};
use paybridge_wechatpay::v3::{Merchant, MerchantSigner, SignatureHeaders, Verifier};
use reqwest::Method;
use serde_json::json;

const MCHID: &str = "1900000001";
const CERT_APP: &str = "2021000000000002";

fn wechat(sb: &Sandbox) -> V3Client<Arc<ReqwestTransport>> {
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
    let key = RsaPrivateKey::from_text(m.merchant_private_key.as_deref().unwrap()).unwrap();
    let signer = MerchantSigner::new(m.mchid.clone(), m.merchant_serial.clone(), key);
    let clock = sb.clock();
    V3Client::new(
        cfg,
        signer,
        platform_verifier(sb),
        transport(),
        Arc::new(move || clock.now_ms() / 1000),
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

fn bill(no: &str, fen: i64, rx: &Receiver) -> CreateTransferBill {
    CreateTransferBill {
        appid: None,
        out_bill_no: no.into(),
        transfer_scene_id: "1000".into(),
        openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
        user_name: None,
        transfer_amount: Fen(fen),
        transfer_remark: "推广奖励".into(),
        notify_url: Some(rx.url.clone()),
        user_recv_perception: Some("现金奖励".into()),
        transfer_scene_report_infos: vec![
            SceneReportInfo::new("活动名称", "双十一推广"),
            SceneReportInfo::new("奖励说明", "邀请三位好友"),
        ],
        user_recv_style: None,
    }
}

fn api_code(e: &V3Error) -> (u16, String) {
    match e {
        V3Error::Api { status, code, .. } => (*status, code.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A received transfer notification, verified and decrypted by the protocol crate.
fn transfer_event(
    sb: &Sandbox,
    r: &Received,
) -> paybridge_wechatpay::v3::transfer::TransferBillNotify {
    let headers = SignatureHeaders::from_pairs(&r.headers).unwrap();
    let key = sb.config().wechat.merchants[0].api_v3_key.clone();
    parse_transfer_notify(
        &platform_verifier(sb),
        &headers,
        &r.body,
        key.as_bytes(),
        sb.now() / 1000,
    )
    .unwrap()
}

async fn payout_action(sb: &Sandbox, key: &str, action: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/payouts/{key}/{action}", sb.base_url()))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn wechat_create_confirm_notification_query_receipt() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "").await;
    let c = wechat(&sb);
    let before = sb.payout_balance(MCHID);
    let mut b = bill("WXP0001", 300_000, &rx);
    b.user_name = Some(Secret::new("张三".into()));
    let created = c.create_transfer_bill(&b).await.unwrap();
    assert_eq!(created.state, TransferBillState::WaitUserConfirm);
    let snap = created.snapshot();
    assert_eq!(snap.status, ProviderPayoutStatus::AwaitingConfirmation);
    let package = snap.package_info.clone().unwrap();
    // The name travelled encrypted under the key the request named.
    let sent = sb
        .requests()
        .into_iter()
        .find(|r| r.uri == "/v3/fund-app/mch-transfer/transfer-bills")
        .unwrap();
    assert!(!sent.body.contains("张三"));
    assert!(sent
        .headers
        .iter()
        .any(|(k, v)| k == "wechatpay-serial" && v == sb.wechat_serial()));
    assert_eq!(sb.payout_balance(MCHID), Fen(before.as_i64() - 300_000));

    // The payee's client opens WeChat's page with the package; the sandbox's wallet is it.
    let params = ConfirmParams::new(MCHID, &sb.config().wechat.merchants[0].appid, &package);
    let page = reqwest::get(format!(
        "{}/_sandbox/wallet/{}",
        sb.base_url(),
        url::form_urlencoded::byte_serialize(params.jsapi()["package"].as_bytes())
            .collect::<String>()
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(page.contains("WXP0001") && page.contains("3000.00") && page.contains("confirm"));
    assert!(rx.received().is_empty(), "nothing is final yet");

    let (status, body) = payout_action(&sb, &created.transfer_bill_no, "confirm").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("SUCCESS")));
    sb.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let n = transfer_event(&sb, &got[0]);
    assert_eq!(
        (
            n.out_bill_no.as_str(),
            n.state,
            n.transfer_amount,
            n.mch_id.as_deref()
        ),
        (
            "WXP0001",
            TransferBillState::Success,
            Some(Fen(300_000)),
            Some(MCHID)
        )
    );
    let q = c.query_transfer_bill("WXP0001").await.unwrap();
    assert_eq!(q.snapshot().status, ProviderPayoutStatus::Succeeded);
    let name = q
        .decrypt_user_name(c.signer().private_key())
        .unwrap()
        .unwrap();
    assert_eq!(name.expose(), "张三");
    let q2 = c
        .query_transfer_bill_by_no(&created.transfer_bill_no)
        .await
        .unwrap();
    assert_eq!(
        (q2.out_bill_no.as_str(), q2.state, q2.transfer_amount),
        ("WXP0001", TransferBillState::Success, Some(Fen(300_000)))
    );
    // Confirming twice changes nothing.
    assert_eq!(
        payout_action(&sb, &created.transfer_bill_no, "confirm")
            .await
            .0,
        409
    );
    assert_eq!(sb.payout_balance(MCHID), Fen(before.as_i64() - 300_000));

    // The payout is an expense in the day's fund-flow bill (and no trade).
    let date = paybridge_sandbox::clock::beijing_date(sb.now());
    let flow = c
        .download_bill(&api::fundflow_bill(&date, "BASIC", false), false)
        .await
        .unwrap();
    assert_eq!(BillReader::new(flow.as_slice()).unwrap().count(), 1);
    let text = String::from_utf8(flow).unwrap();
    assert!(
        text.contains("商家转账") && text.contains("WXP0001") && text.contains("3000.00"),
        "{text}"
    );
    assert!(
        c.download_bill(
            &api::trade_bill(&c.config.merchant, &date, "ALL", false),
            false
        )
        .await
        .is_err(),
        "no trade bill: a payout is not a trade"
    );

    // 电子回单: apply, query, download; the PDF matches its hash.
    let by = BillRef::OutBillNo("WXP0001".into());
    assert_eq!(
        c.apply_transfer_receipt(&by).await.unwrap().state,
        ReceiptState::Generating
    );
    let receipt = c.query_transfer_receipt(&by).await.unwrap();
    assert_eq!(receipt.state, ReceiptState::Finished);
    let pdf = c.download_transfer_receipt(&receipt).await.unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let missing = c
        .query_transfer_receipt(&BillRef::OutBillNo("WXNOPE".into()))
        .await
        .unwrap_err();
    assert!(is_not_found(&missing));
}

#[tokio::test]
async fn wechat_refuse_timeout_and_cancel() {
    let sb = sandbox().await;
    let rx = Receiver::start(204, "").await;
    let c = wechat(&sb);
    let before = sb.payout_balance(MCHID);
    let refused = c
        .create_transfer_bill(&bill("WXREFUSE1", 500, &rx))
        .await
        .unwrap();
    let expired = c
        .create_transfer_bill(&bill("WXEXPIRE1", 600, &rx))
        .await
        .unwrap();
    // The payee refuses on the wallet page itself.
    let page = reqwest::Client::new()
        .post(format!(
            "{}/_sandbox/wallet/{}/refuse",
            sb.base_url(),
            refused.transfer_bill_no
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("FAIL"));
    // Each notification is verified as it arrives (its signature carries its own time).
    let mut seen = Vec::new();
    let mut take = |sb: &Sandbox| {
        for r in rx.received().iter().skip(seen.len()) {
            let n = transfer_event(sb, r);
            seen.push((n.out_bill_no, n.state, n.fail_reason.unwrap_or_default()));
        }
    };
    sb.run_due().await;
    take(&sb);
    // Nobody collects the second within 24 hours.
    sb.advance(24 * 3_600_000);
    sb.run_due().await;
    take(&sb);
    let cancelled = c
        .create_transfer_bill(&bill("WXCANCEL1", 700, &rx))
        .await
        .unwrap();
    let x = c.cancel_transfer_bill("WXCANCEL1").await.unwrap();
    assert_eq!(x.snapshot().status, ProviderPayoutStatus::Cancelled);
    assert_eq!(
        c.cancel_transfer_bill("WXCANCEL1").await.unwrap().state,
        TransferBillState::Cancelled,
        "cancelling twice answers the same"
    );
    assert_eq!(
        api_code(&c.cancel_transfer_bill("WXREFUSE1").await.unwrap_err()),
        (400, "INVALID_REQUEST".into())
    );
    sb.run_due().await;
    take(&sb);
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        seen,
        vec![
            (
                "WXCANCEL1".to_string(),
                TransferBillState::Cancelled,
                "MCH_CANCEL".to_string()
            ),
            (
                "WXEXPIRE1".to_string(),
                TransferBillState::Fail,
                "OVERDUE_CLOSE".to_string()
            ),
            (
                "WXREFUSE1".to_string(),
                TransferBillState::Fail,
                "OTHER_FAIL_REASON_TYPE".to_string()
            ),
        ]
    );
    for (no, status) in [
        (&refused.out_bill_no, ProviderPayoutStatus::Failed),
        (&expired.out_bill_no, ProviderPayoutStatus::Failed),
        (&cancelled.out_bill_no, ProviderPayoutStatus::Cancelled),
    ] {
        let q = c.query_transfer_bill(no).await.unwrap();
        assert_eq!(q.snapshot().status, status, "{no}");
    }
    assert_eq!(sb.payout_balance(MCHID), before, "every lock was released");
}

#[tokio::test]
async fn wechat_failures_on_demand() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "").await;
    let c = wechat(&sb);
    control_json(
        &sb,
        Method::PUT,
        "/_sandbox/balances",
        json!({"account": MCHID, "available": 499}),
    )
    .await;
    let e = c
        .create_transfer_bill(&bill("WXPOOR1", 500, &rx))
        .await
        .unwrap_err();
    assert_eq!(api_code(&e), (403, "NOT_ENOUGH".into()));
    // Nothing was made: the query says so, and after a top-up the same number goes through.
    assert!(is_not_found(
        &c.query_transfer_bill("WXPOOR1").await.unwrap_err()
    ));
    sb.set_payout_balance(MCHID, Fen(10_000));
    assert_eq!(
        c.create_transfer_bill(&bill("WXPOOR1", 500, &rx))
            .await
            .unwrap()
            .state,
        TransferBillState::WaitUserConfirm
    );

    let set = |out_no: &str, kind: &str| {
        control_json(
            &sb,
            Method::PUT,
            "/_sandbox/payout-faults",
            json!({"out_no": out_no, "fault": {"kind": kind}}),
        )
    };
    set("WXNOPAYEE1", "payee_not_found").await;
    set("WXNAME1", "name_mismatch").await;
    set("WXDAY1", "daily_limit").await;
    set("WXFORCED1", "insufficient_balance").await;
    assert_eq!(
        api_code(
            &c.create_transfer_bill(&bill("WXNOPAYEE1", 500, &rx))
                .await
                .unwrap_err()
        ),
        (400, "PARAM_ERROR".into())
    );
    assert_eq!(
        api_code(
            &c.create_transfer_bill(&bill("WXFORCED1", 500, &rx))
                .await
                .unwrap_err()
        ),
        (403, "NOT_ENOUGH".into())
    );
    let mut named = bill("WXNAME1", 500, &rx);
    named.user_name = Some(Secret::new("李四".into()));
    let n = c.create_transfer_bill(&named).await.unwrap();
    assert_eq!(
        (n.state, n.fail_reason.as_deref()),
        (TransferBillState::Fail, Some("NAME_NOT_CORRECT"))
    );
    let d = c
        .create_transfer_bill(&bill("WXDAY1", 500, &rx))
        .await
        .unwrap();
    assert_eq!(
        d.snapshot().fail_reason.as_deref(),
        Some("DAY_RECEIVED_QUOTA_EXCEED")
    );
    sb.run_due().await;
    let reasons: Vec<_> = rx
        .received()
        .iter()
        .map(|r| transfer_event(&sb, r).fail_reason.unwrap_or_default())
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(reasons.contains(&"NAME_NOT_CORRECT".to_string()));
    // Bills that failed at once moved no money.
    assert_eq!(sb.payout_balance(MCHID), Fen(10_000 - 500));
}

#[tokio::test]
async fn wechat_same_out_bill_no_is_one_transfer_even_after_a_lost_answer() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "").await;
    let c = wechat(&sb);
    sb.set_payout_fault(
        MCHID,
        Some("WXLOST1"),
        PayoutFault::Timeout { delay_ms: 50 },
    );
    let lost = c
        .create_transfer_bill(&bill("WXLOST1", 800, &rx))
        .await
        .unwrap_err();
    assert!(lost.outcome_unknown(), "{lost:?}");
    // The answer was lost, not the bill: the same request again answers with it.
    let again = c
        .create_transfer_bill(&bill("WXLOST1", 800, &rx))
        .await
        .unwrap();
    let third = c
        .create_transfer_bill(&bill("WXLOST1", 800, &rx))
        .await
        .unwrap();
    assert_eq!(again.transfer_bill_no, third.transfer_bill_no);
    assert_eq!(again.package_info, third.package_info);
    let in_ledger: Vec<_> = sb
        .payouts()
        .into_iter()
        .filter(|p| p.out_no == "WXLOST1")
        .collect();
    assert_eq!(in_ledger.len(), 1);
    assert_eq!(in_ledger[0].provider_no, again.transfer_bill_no);
    // Other parameters under the same number are refused.
    assert_eq!(
        api_code(
            &c.create_transfer_bill(&bill("WXLOST1", 801, &rx))
                .await
                .unwrap_err()
        ),
        (400, "INVALID_REQUEST".into())
    );
    payout_action(&sb, "WXLOST1", "confirm").await;
    sb.run_due().await;
    assert_eq!(rx.received().len(), 1, "one transfer, one notification");
    assert_eq!(
        sb.payout_by_out_no("WXLOST1").unwrap().state,
        PayoutState::Succeeded
    );
}

#[tokio::test]
async fn wechat_transfer_notifications_follow_the_transfer_schedule() {
    let sb = sandbox().await;
    let rx = Receiver::start(500, r#"{"code":"FAIL","message":"busy"}"#).await;
    let c = wechat(&sb);
    c.create_transfer_bill(&bill("WXRETRY1", 100, &rx))
        .await
        .unwrap();
    payout_action(&sb, "WXRETRY1", "confirm").await;
    drain(&sb).await;
    let record = sb
        .notifications()
        .into_iter()
        .find(|n| n.kind == "MCHTRANSFER.BILL.FINISHED")
        .unwrap();
    assert_eq!(record.state, DeliveryState::GaveUp);
    assert_eq!(record.attempts.len(), 1 + WECHAT_TRANSFER_RETRY_SECS.len());
    assert_eq!(rx.received().len(), 65);
}

fn alipay(sb: &Sandbox) -> AlipayClient {
    let cfg = sb.config();
    let app = &cfg.alipay.apps[1];
    let keys = AlipayKeys::cert_mode(
        app.app_private_key.as_deref().unwrap(),
        app.app_cert.as_deref().unwrap(),
        &[cfg.alipay.alipay_cert.as_deref().unwrap()],
        cfg.alipay.root_cert.as_deref().unwrap(),
    )
    .unwrap();
    AlipayClient::new(
        AlipayConfig::new(CERT_APP, keys).with_gateway(sb.gateway_url()),
        transport(),
    )
    .with_retry(1, std::time::Duration::ZERO)
}

fn opts(rx: &Receiver) -> CallOptions {
    CallOptions {
        notify_url: Some(rx.url.clone()),
        ..CallOptions::default()
    }
}

fn sub_code<T: std::fmt::Debug>(r: Result<T, AlipayError>) -> String {
    match r {
        Err(AlipayError::Gateway(e)) => e.sub_code,
        other => panic!("expected a gateway error, got {other:?}"),
    }
}

fn transfer(no: &str, fen: i64) -> FundTransUniTransfer {
    let mut t =
        FundTransUniTransfer::new(no, Fen(fen), Payee::logon_id("payee@example.com", "王五"));
    t.order_title = Some("十一月佣金".into());
    t
}

#[tokio::test]
async fn alipay_transfer_notification_query_balance() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = alipay(&sb);
    let balance = c
        .execute(&FundAccountQuery::user_id("2088102177800000"), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(balance.available_amount, sb.payout_balance(CERT_APP));
    let r = c
        .execute(&transfer("AP-0001", 2_345), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(r.status, FundTransStatus::Success);
    let snap = r.snapshot(Fen(2_345));
    assert_eq!(snap.status, ProviderPayoutStatus::Succeeded);
    sb.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let form = NotifyForm::parse(&got[0].body).unwrap();
    let n = verify_fund_notify(c.config(), &form).unwrap();
    assert_eq!(
        (n.biz.out_biz_no.as_str(), n.biz.status, n.biz.trans_amount),
        ("AP-0001", FundTransStatus::Success, Some(Fen(2_345)))
    );
    assert_eq!(n.biz.order_id, r.order_id);
    let q = c
        .execute(&FundTransCommonQuery::out_biz_no("AP-0001"), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(
        (q.status, q.trans_amount, q.order_id.clone()),
        (
            FundTransStatus::Success,
            Some(Fen(2_345)),
            r.order_id.clone()
        )
    );
    let by_id = c
        .execute(
            &FundTransCommonQuery::order_id(r.order_id.clone().unwrap()),
            &opts(&rx),
        )
        .await
        .unwrap();
    assert_eq!(by_id.out_biz_no.as_deref(), Some("AP-0001"));
    let after = c
        .execute(&FundAccountQuery::user_id("2088102177800000"), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(
        after.available_amount,
        Fen(balance.available_amount.as_i64() - 2_345)
    );
    // The same out_biz_no again: the same transfer, no second payment or message.
    let again = c
        .execute(&transfer("AP-0001", 2_345), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(again.order_id, r.order_id);
    assert_eq!(
        sub_code(c.execute(&transfer("AP-0001", 2_346), &opts(&rx)).await),
        "PAYMENT_INFO_INCONSISTENCY"
    );
    sb.run_due().await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(
        sb.payouts()
            .iter()
            .filter(|p| p.out_no == "AP-0001")
            .count(),
        1
    );
}

#[tokio::test]
async fn alipay_failures_on_demand_and_certificate_mode() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = alipay(&sb);
    sb.set_payout_balance(CERT_APP, Fen(1_000));
    assert_eq!(
        sub_code(c.execute(&transfer("AP-POOR-1", 1_001), &opts(&rx)).await),
        "PAYER_BALANCE_NOT_ENOUGH"
    );
    let missing = c
        .execute(&FundTransCommonQuery::out_biz_no("AP-POOR-1"), &opts(&rx))
        .await
        .unwrap_err();
    assert!(is_payout_not_found(&missing), "{missing:?}");
    for (no, fault, code) in [
        ("AP-NOPAYEE", PayoutFault::PayeeNotFound, "PAYEE_NOT_EXIST"),
        (
            "AP-NAME",
            PayoutFault::NameMismatch,
            "PAYEE_USER_INFO_ERROR",
        ),
        ("AP-DAY", PayoutFault::DailyLimit, "EXCEED_LIMIT_DM_AMOUNT"),
    ] {
        sb.set_payout_fault(CERT_APP, Some(no), fault);
        assert_eq!(
            sub_code(c.execute(&transfer(no, 100), &opts(&rx)).await),
            code
        );
    }
    assert!(sb.payouts().is_empty(), "refusals make no transfer");

    // A lost answer: the transfer happened; the same request again answers with it.
    sb.set_payout_fault(
        CERT_APP,
        Some("AP-LOST"),
        PayoutFault::Timeout { delay_ms: 50 },
    );
    let lost = c
        .execute(&transfer("AP-LOST", 100), &opts(&rx))
        .await
        .unwrap_err();
    assert!(
        matches!(lost, AlipayError::HttpStatus { status: 504, .. }),
        "{lost:?}"
    );
    let again = c
        .execute(&transfer("AP-LOST", 100), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(again.status, FundTransStatus::Success);
    assert_eq!(sb.payouts().len(), 1);
    assert_eq!(sb.payout_balance(CERT_APP), Fen(900));

    // Public-key mode: refused locally with a configuration error, and by the sandbox too.
    let app = &sb.config().alipay.apps[0];
    let keys = AlipayKeys::public_key_mode(
        app.app_private_key.as_deref().unwrap(),
        &sb.alipay_public_key(),
    )
    .unwrap();
    let pk = AlipayClient::new(
        AlipayConfig::new(app.app_id.clone(), keys).with_gateway(sb.gateway_url()),
        transport(),
    );
    assert!(matches!(
        pk.execute(&transfer("AP-PK-1", 100), &opts(&rx)).await,
        Err(AlipayError::CertModeRequired { .. })
    ));
    let raw = GenericRequest::new(
        "alipay.fund.trans.uni.transfer",
        serde_json::from_str(&transfer("AP-PK-1", 100).biz_content().unwrap()).unwrap(),
    );
    assert_eq!(
        sub_code(pk.execute(&raw, &opts(&rx)).await),
        "isv.missing-app-cert-sn"
    );
}

#[tokio::test]
async fn alipay_messages_follow_the_message_schedule() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "fail").await;
    let c = alipay(&sb);
    c.execute(&transfer("AP-RETRY", 100), &opts(&rx))
        .await
        .unwrap();
    drain(&sb).await;
    let record = sb
        .notifications()
        .into_iter()
        .find(|n| n.kind == "alipay.fund.trans.order.changed")
        .unwrap();
    assert_eq!(record.state, DeliveryState::GaveUp);
    assert_eq!(record.attempts.len(), 1 + ALIPAY_MESSAGE_RETRY_SECS.len());
    let offsets: Vec<i64> = record.attempts.iter().map(|a| a.offset_ms).collect();
    // 2 minutes, scaled 1/10000, is 12 ms.
    assert_eq!(offsets[1], 12);
}

fn inbound(r: &Received) -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        path: r.path.clone(),
        query: None,
        headers: r
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        body: r.body.clone(),
    }
}

fn payout(out_no: &str, fen: i64, payee: PayoutPayee, rx: &Receiver) -> CreatePayout {
    CreatePayout {
        out_no: out_no.into(),
        amount: Fen(fen),
        payee,
        payee_name: None,
        remark: "推广奖励".into(),
        title: Some("十一月佣金".into()),
        notify_url: Some(rx.url.clone()),
        scene: None,
        scene_report: vec![],
        recv_perception: None,
    }
}

#[tokio::test]
async fn the_channels_payout_calls_in_the_gateways_vocabulary() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let wx = V3Channel::new(wechat(&sb));
    let mut p = payout(
        "WXCHAN1",
        300,
        PayoutPayee::WechatOpenId {
            openid: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into(),
            app_id: None,
        },
        &rx,
    );
    // The scene is required at WeChat: refused before anything is sent.
    assert!(matches!(
        wx.create_payout(&p).await,
        Err(ChannelError::Invalid(_))
    ));
    p.scene = Some("1000".into());
    p.scene_report = vec![
        SceneReport {
            info_type: "活动名称".into(),
            info_content: "双十一推广".into(),
        },
        SceneReport {
            info_type: "奖励说明".into(),
            info_content: "邀请三位好友".into(),
        },
    ];
    let created = wx.create_payout(&p).await.unwrap();
    assert_eq!(created.status, ProviderPayoutStatus::AwaitingConfirmation);
    assert!(created.package_info.is_some());
    assert_eq!(
        wx.query_payout("WXCHAN1").await.unwrap().status,
        ProviderPayoutStatus::AwaitingConfirmation
    );
    assert_eq!(
        wx.query_payout("WXNEVER1").await.unwrap().status,
        ProviderPayoutStatus::NotFound
    );
    payout_action(&sb, "WXCHAN1", "confirm").await;
    sb.run_due().await;
    let n = wx
        .decode_payout_notification(&inbound(&rx.received()[0]), sb.now() / 1000)
        .unwrap();
    assert_eq!(
        (
            n.snapshot.out_no.as_str(),
            n.snapshot.status,
            n.merchant_id.as_deref()
        ),
        ("WXCHAN1", ProviderPayoutStatus::Succeeded, Some(MCHID))
    );
    let mut other = p.clone();
    other.out_no = "WXCHAN2".into();
    let c2 = wx.create_payout(&other).await.unwrap();
    assert_eq!(c2.status, ProviderPayoutStatus::AwaitingConfirmation);
    assert_eq!(
        wx.cancel_payout("WXCHAN2").await.unwrap().status,
        ProviderPayoutStatus::Cancelled
    );
    sb.set_payout_fault(MCHID, Some("WXCHAN3"), PayoutFault::InsufficientBalance);
    other.out_no = "WXCHAN3".into();
    match wx.create_payout(&other).await {
        Err(ChannelError::Refused { code, .. }) => assert_eq!(code, "NOT_ENOUGH"),
        r => panic!("{r:?}"),
    }
    sb.set_payout_fault(
        MCHID,
        Some("WXCHAN4"),
        PayoutFault::Timeout { delay_ms: 20 },
    );
    other.out_no = "WXCHAN4".into();
    assert!(matches!(
        wx.create_payout(&other).await,
        Err(ChannelError::Unknown { .. })
    ));
    assert_eq!(
        wx.query_payout("WXCHAN4").await.unwrap().status,
        ProviderPayoutStatus::AwaitingConfirmation,
        "the lost create made the bill; the query settles it"
    );

    let ali = AlipayChannel::new(alipay(&sb));
    let arx = Receiver::start(200, "success").await;
    let mut a = payout(
        "AP-CHAN-1",
        250,
        PayoutPayee::AlipayLogonId {
            logon_id: "payee@example.com".into(),
        },
        &arx,
    );
    a.payee_name = Some("王五".into());
    let before = ali.payout_balance("2088102177800000").await.unwrap();
    let s = ali.create_payout(&a).await.unwrap();
    assert_eq!(
        (s.status, s.amount),
        (ProviderPayoutStatus::Succeeded, Some(Fen(250)))
    );
    assert_eq!(
        ali.payout_balance("2088102177800000").await.unwrap(),
        Fen(before.as_i64() - 250)
    );
    assert_eq!(
        ali.query_payout("AP-CHAN-1").await.unwrap().status,
        ProviderPayoutStatus::Succeeded
    );
    assert_eq!(
        ali.query_payout("AP-CHAN-NONE").await.unwrap().status,
        ProviderPayoutStatus::NotFound
    );
    sb.run_due().await;
    let n = ali
        .decode_payout_notification(&inbound(&arx.received()[0]))
        .unwrap();
    assert_eq!(
        (n.snapshot.out_no.as_str(), n.snapshot.status),
        ("AP-CHAN-1", ProviderPayoutStatus::Succeeded)
    );
    sb.set_payout_fault(CERT_APP, Some("AP-CHAN-2"), PayoutFault::NameMismatch);
    a.out_no = "AP-CHAN-2".into();
    match ali.create_payout(&a).await {
        Err(ChannelError::Refused { code, .. }) => assert_eq!(code, "PAYEE_USER_INFO_ERROR"),
        r => panic!("{r:?}"),
    }
    a.payee = PayoutPayee::WechatOpenId {
        openid: "o".into(),
        app_id: None,
    };
    assert!(matches!(
        ali.create_payout(&a).await,
        Err(ChannelError::Invalid(_))
    ));
}
