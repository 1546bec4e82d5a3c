//! paybridge-alipay's client against the sandbox over real HTTP: every API and scene, the
//! buyer, notifications verified with the protocol crate, key modes, bills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use paybridge_alipay::api::*;
use paybridge_alipay::bill::{BillArchive, BillKind};
use paybridge_alipay::client::AlipayClient;
use paybridge_alipay::notify::{NotifyForm, NotifyRule, TradeNotify, TradeStatus};
use paybridge_alipay::request::CallOptions;
use paybridge_alipay::{AesKey, AlipayConfig, AlipayError, AlipayKeys};
use paybridge_core::Fen;
use paybridge_crypto::RsaPublicKey;
use paybridge_sandbox::{BarcodeMode, Clock as _, Sandbox, SystemClock};

// Request builders: one place to follow the protocol crate's constructors.
fn req_precreate(no: &str, fen: Fen, subject: &str) -> TradePrecreate {
    TradePrecreate {
        order: OrderInfo::new(no, fen, subject),
    }
}

fn req_query(no: &str) -> TradeQuery {
    TradeQuery {
        trade: TradeRef::out_trade_no(no),
    }
}

fn req_refund(no: &str, request_no: &str, fen: Fen) -> TradeRefund {
    TradeRefund::new(TradeRef::out_trade_no(no), request_no, fen)
}

fn req_refund_query(no: &str, request_no: &str) -> TradeFastpayRefundQuery {
    TradeFastpayRefundQuery::new(TradeRef::out_trade_no(no), request_no)
}

fn req_close(no: &str) -> TradeClose {
    TradeClose {
        trade: TradeRef::out_trade_no(no),
    }
}

fn req_cancel(no: &str) -> TradeCancel {
    TradeCancel {
        trade: TradeRef::out_trade_no(no),
    }
}

fn req_barcode(no: &str, auth_code: &str, fen: Fen, subject: &str) -> TradePay {
    TradePay::new(OrderInfo::new(no, fen, subject), auth_code)
}

fn req_create(no: &str, fen: Fen, subject: &str, payer: &str) -> TradeCreate {
    TradeCreate::new(OrderInfo::new(no, fen, subject), payer)
}

const APP: &str = "2021000000000001";
const CERT_APP: &str = "2021000000000002";

fn client(sb: &Sandbox) -> AlipayClient {
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
    .with_retry(1, std::time::Duration::ZERO)
}

fn opts(r: &Receiver) -> CallOptions {
    CallOptions {
        notify_url: Some(r.url.clone()),
        return_url: None,
        app_auth_token: None,
    }
}

fn sub_code(e: AlipayError) -> String {
    match e {
        AlipayError::Gateway(g) => g.sub_code,
        other => panic!("expected a gateway error, got {other:?}"),
    }
}

/// Verifies a received notification with the protocol crate and returns its typed view.
fn verified(sb: &Sandbox, body: &[u8]) -> TradeNotify {
    let form = NotifyForm::parse(body).unwrap();
    let key = RsaPublicKey::from_text(&sb.alipay_public_key()).unwrap();
    assert_eq!(form.verify(&[&key]), Some(NotifyRule::V1));
    TradeNotify::from_form(&form).unwrap()
}

fn is_valid(sb: &Sandbox, body: &[u8]) -> bool {
    let form = NotifyForm::parse(body).unwrap();
    let key = RsaPublicKey::from_text(&sb.alipay_public_key()).unwrap();
    form.verify(&[&key]).is_some()
}

#[tokio::test]
async fn precreate_scan_pay_notify_query_refund_close() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = client(&sb);
    let pre = c
        .execute(&req_precreate("A-PRE-1", Fen(1000), "QR order"), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(pre.out_trade_no, "A-PRE-1");
    // Like Alipay, a QR trade does not exist for queries until the buyer scans it.
    let e = c
        .execute(&req_query("A-PRE-1"), &CallOptions::default())
        .await;
    assert_eq!(sub_code(e.unwrap_err()), "ACQ.TRADE_NOT_EXIST");
    let page = reqwest::get(&pre.qr_code)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("A-PRE-1") && page.contains("10.00"));
    let q = c
        .execute(&req_query("A-PRE-1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(q.trade_status, "WAIT_BUYER_PAY");

    let id = trade_id(&sb, "A-PRE-1");
    assert_eq!(control(&sb, &id, "pay").await.0, 200);
    sb.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let n = verified(&sb, &got[0].body);
    assert_eq!(n.trade_status, TradeStatus::TradeSuccess);
    assert_eq!(n.total_amount, Fen(1000));
    assert_eq!(n.out_trade_no, "A-PRE-1");
    assert_eq!(n.app_id, APP);
    assert_eq!(
        sb.notifications()[0].attempts.len(),
        1,
        "success reply stops retries"
    );

    let q = c
        .execute(&req_query("A-PRE-1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (q.trade_status.as_str(), q.total_amount),
        ("TRADE_SUCCESS", Fen(1000))
    );

    // Partial refunds, idempotent by out_request_no; over-refund refused.
    let r1 = c
        .execute(&req_refund("A-PRE-1", "R1", Fen(300)), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(
        (r1.refund_fee, r1.fund_change.as_deref()),
        (Fen(300), Some("Y"))
    );
    let again = c
        .execute(&req_refund("A-PRE-1", "R1", Fen(300)), &opts(&rx))
        .await
        .unwrap();
    assert_eq!(
        (again.refund_fee, again.fund_change.as_deref()),
        (Fen(300), Some("N"))
    );
    let over = c
        .execute(&req_refund("A-PRE-1", "R2", Fen(701)), &opts(&rx))
        .await;
    assert_eq!(
        sub_code(over.unwrap_err()),
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    );
    let rq = c
        .execute(&req_refund_query("A-PRE-1", "R1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(rq.refund_amount, Some(Fen(300)));
    assert_eq!(rq.refund_status.as_deref(), Some("REFUND_SUCCESS"));
    let none = c
        .execute(
            &req_refund_query("A-PRE-1", "NOPE"),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        none.refund_amount, None,
        "an unknown refund is an empty answer"
    );
    // The refund notification carries out_biz_no and the cumulative refund_fee.
    sb.run_due().await;
    let refund_note = verified(&sb, &rx.received()[1].body);
    assert_eq!(refund_note.out_biz_no.as_deref(), Some("R1"));
    assert_eq!(refund_note.refund_fee, Some(Fen(300)));

    // The refund period ends: TRADE_FINISHED, notified, and no more refunds.
    assert_eq!(control(&sb, &id, "finish").await.0, 200);
    sb.run_due().await;
    let finished = verified(&sb, &rx.received().last().unwrap().body);
    assert_eq!(finished.trade_status, TradeStatus::TradeFinished);
    let late = c
        .execute(&req_refund("A-PRE-1", "R9", Fen(1)), &opts(&rx))
        .await;
    assert_eq!(sub_code(late.unwrap_err()), "ACQ.TRADE_HAS_FINISHED");

    let close = c
        .execute(&req_close("A-PRE-1"), &CallOptions::default())
        .await;
    assert_eq!(sub_code(close.unwrap_err()), "ACQ.TRADE_STATUS_ERROR");
}

#[tokio::test]
async fn page_and_wap_pay_lead_the_buyer_to_the_sandbox_page() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = client(&sb);
    let mut o = opts(&rx);
    o.return_url = Some(format!("{}/return", rx.url));
    // Page pay by GET URL: the buyer's browser lands on the pay page.
    let signed = c
        .sign(
            &TradePagePay::new(OrderInfo::new("A-PAGE-1", Fen(1), "page")),
            &o,
        )
        .unwrap();
    let page = reqwest::get(signed.get_url()).await.unwrap();
    assert!(page.url().path().starts_with("/_sandbox/pay/"));
    assert!(page.text().await.unwrap().contains("A-PAGE-1"));
    // The pay button returns the buyer to return_url with signed parameters.
    let id = trade_id(&sb, "A-PAGE-1");
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = no_redirect
        .post(format!("{}/_sandbox/pay/{id}/pay", sb.base_url()))
        .send()
        .await
        .unwrap();
    let location = paid.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/return?", rx.url)));
    let query = location.split_once('?').unwrap().1;
    assert!(
        is_valid(&sb, query.as_bytes()),
        "the return parameters are signed by Alipay"
    );
    sb.run_due().await;
    assert_eq!(
        verified(&sb, &rx.received()[0].body).trade_status,
        TradeStatus::TradeSuccess
    );

    // Wap pay by POSTed form (parameters in the body, charset in the query): same page.
    let signed = c
        .sign(
            &TradeWapPay::new(OrderInfo::new("A-WAP-1", Fen(250), "wap")),
            &o,
        )
        .unwrap();
    let req = signed.to_http_request();
    let landed = reqwest::Client::new()
        .post(&req.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(req.body.clone())
        .send()
        .await
        .unwrap();
    assert!(landed.url().path().starts_with("/_sandbox/pay/"));
    assert_eq!(
        sb.trade_by_out_no("A-WAP-1").unwrap().scene,
        "QUICK_WAP_WAY"
    );

    // The App SDK's order string, as the app would hand it to Alipay.
    let signed = c
        .sign(
            &TradeAppPay::new(OrderInfo::new("A-APP-1", Fen(3), "app")),
            &o,
        )
        .unwrap();
    let landed = reqwest::Client::new()
        .post(sb.gateway_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(signed.order_string())
        .send()
        .await
        .unwrap();
    assert!(landed.url().path().starts_with("/_sandbox/pay/"));
    assert_eq!(
        sb.trade_by_out_no("A-APP-1").unwrap().scene,
        "QUICK_MSECURITY_PAY"
    );

    // Any API by GET with every parameter in the query string (some SDKs do that).
    let signed = c
        .sign(&req_query("A-PAGE-1"), &CallOptions::default())
        .unwrap();
    let body = reqwest::get(signed.get_url())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let parts = paybridge_alipay::response::split_response(&body, "alipay.trade.query").unwrap();
    let key = RsaPublicKey::from_text(&sb.alipay_public_key()).unwrap();
    assert!(paybridge_alipay::response::verify_content(
        &key,
        parts.content,
        parts.sign.as_deref().unwrap()
    ));
    assert!(parts.content.contains("\"trade_status\":\"TRADE_SUCCESS\""));
}

#[tokio::test]
async fn create_close_and_closed_trade_cannot_be_paid() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = client(&sb);
    let created = c
        .execute(
            &req_create("A-JS-1", Fen(500), "jsapi", "2088102177846880"),
            &opts(&rx),
        )
        .await
        .unwrap();
    assert!(!created.trade_no.is_empty());
    // Same number, other amount: refused as Alipay refuses it.
    let dup = c
        .execute(
            &req_create("A-JS-1", Fen(501), "jsapi", "2088102177846880"),
            &opts(&rx),
        )
        .await;
    assert_eq!(sub_code(dup.unwrap_err()), "ACQ.CONTEXT_INCONSISTENT");
    c.execute(&req_close("A-JS-1"), &CallOptions::default())
        .await
        .unwrap();
    let q = c
        .execute(&req_query("A-JS-1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(q.trade_status, "TRADE_CLOSED");
    let (status, body) = control(&sb, &created.trade_no_id(&sb), "pay").await;
    assert_eq!(status, 409);
    assert_eq!(body["alipay_sub_code"], "ACQ.TRADE_HAS_CLOSE");
    sb.run_due().await;
    assert_eq!(
        verified(&sb, &rx.received()[0].body).trade_status,
        TradeStatus::TradeClosed
    );
}

trait TradeIdOf {
    fn trade_no_id(&self, sb: &Sandbox) -> String;
}

impl TradeIdOf for TradeCreateResponse {
    fn trade_no_id(&self, sb: &Sandbox) -> String {
        trade_id(sb, &self.out_trade_no)
    }
}

#[tokio::test]
async fn barcode_succeeds_waits_fails_and_cancels() {
    let sb = sandbox().await;
    let c = client(&sb);
    let o = CallOptions::default();
    let paid = c
        .execute(&req_barcode("A-BAR-1", "281234567890", Fen(100), "bar"), &o)
        .await
        .unwrap();
    assert_eq!(
        (paid.code.as_str(), paid.total_amount),
        ("10000", Some(Fen(100)))
    );
    // Cancelling a paid barcode trade refunds it.
    let cancel = c.execute(&req_cancel("A-BAR-1"), &o).await.unwrap();
    assert_eq!(cancel.action.as_deref(), Some("refund"));

    sb.set_barcode_mode(APP, BarcodeMode::WaitPassword);
    let waiting = c
        .execute(&req_barcode("A-BAR-2", "281234567891", Fen(100), "bar"), &o)
        .await
        .unwrap();
    assert_eq!(waiting.code, "10003");
    let q = c.execute(&req_query("A-BAR-2"), &o).await.unwrap();
    assert_eq!(q.trade_status, "WAIT_BUYER_PAY");
    control(&sb, &trade_id(&sb, "A-BAR-2"), "pay").await;
    let q = c.execute(&req_query("A-BAR-2"), &o).await.unwrap();
    assert_eq!(q.trade_status, "TRADE_SUCCESS");

    sb.set_barcode_mode(APP, BarcodeMode::Fail);
    let failed = c
        .execute(&req_barcode("A-BAR-3", "281234567892", Fen(100), "bar"), &o)
        .await;
    assert_eq!(
        sub_code(failed.unwrap_err()),
        "ACQ.PAYMENT_AUTH_CODE_INVALID"
    );
    let cancel = c.execute(&req_cancel("A-BAR-3"), &o).await.unwrap();
    assert_eq!(cancel.action.as_deref(), Some("close"));
}

#[tokio::test]
async fn bad_signature_is_refused_with_isv_invalid_signature() {
    let sb = sandbox().await;
    let other = paybridge_crypto::encode_pem(
        "PRIVATE KEY",
        &paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap(),
    );
    let keys = AlipayKeys::public_key_mode(&other, &sb.alipay_public_key()).unwrap();
    let c = AlipayClient::new(
        AlipayConfig::new(APP, keys).with_gateway(sb.gateway_url()),
        transport(),
    );
    let e = c.execute(&req_query("x"), &CallOptions::default()).await;
    match e.unwrap_err() {
        AlipayError::Gateway(g) => {
            assert_eq!(
                (g.code.as_str(), g.sub_code.as_str()),
                ("40002", "isv.invalid-signature")
            );
            assert!(g.signed);
        }
        other => panic!("{other:?}"),
    }
    // The request was recorded with its outcome.
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.uri.starts_with("/gateway.do")
            && r.response_body.contains("isv.invalid-signature")));
}

#[tokio::test]
async fn certificate_mode_and_aes_content_encryption() {
    let sb = sandbox().await;
    let cfg = sb.config();
    let app = &cfg.alipay.apps[1];
    let keys = AlipayKeys::cert_mode(
        app.app_private_key.as_deref().unwrap(),
        app.app_cert.as_deref().unwrap(),
        &[cfg.alipay.alipay_cert.as_deref().unwrap()],
        cfg.alipay.root_cert.as_deref().unwrap(),
    )
    .unwrap();
    let c = AlipayClient::new(
        AlipayConfig::new(CERT_APP, keys).with_gateway(sb.gateway_url()),
        transport(),
    );
    let created = c
        .execute(
            &req_create("A-CERT-1", Fen(10), "cert", "2088102177846880"),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(created.out_trade_no, "A-CERT-1");
    // The response carried alipay_cert_sn and was verified with the certificate it names.
    let last = sb.requests().pop().unwrap();
    assert!(last.response_body.contains("\"alipay_cert_sn\""));

    let app = &cfg.alipay.apps[0];
    let keys = AlipayKeys::public_key_mode(
        app.app_private_key.as_deref().unwrap(),
        &sb.alipay_public_key(),
    )
    .unwrap();
    let aes = AesKey::from_base64(app.aes_key.as_deref().unwrap()).unwrap();
    let c = AlipayClient::new(
        AlipayConfig::new(APP, keys)
            .with_gateway(sb.gateway_url())
            .with_aes_key(aes),
        transport(),
    );
    let pre = c
        .execute(
            &req_precreate("A-AES-1", Fen(10), "aes"),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(pre.out_trade_no, "A-AES-1");
    let last = sb.requests().pop().unwrap();
    assert!(last.body.contains("encrypt_type=AES"));
    assert!(
        !last.response_body.contains("A-AES-1"),
        "the response node is encrypted"
    );
}

/// Alipay rotated its certificate after the merchant configured the old one: the first
/// answer names an unknown `alipay_cert_sn`; the client downloads that certificate once,
/// trusts it because it chains to the configured root, and reads the same answer (the
/// request is not sent again).
#[tokio::test]
async fn a_rotated_alipay_certificate_is_fetched_once_and_trusted_through_the_root() {
    let now = SystemClock.now_ms() / 1000;
    let mut config = paybridge_sandbox::SandboxConfig::generate(now).unwrap();
    config.time_scale = "1/10000".into();
    let old_cert = config.alipay.alipay_cert.clone().unwrap();
    config.rotate_alipay_cert(now).unwrap();
    assert_ne!(
        config.alipay.alipay_cert.as_deref(),
        Some(old_cert.as_str())
    );
    let sb = Sandbox::start_with(
        config,
        paybridge_sandbox::StartOptions {
            manual_clock: Some(paybridge_sandbox::ManualClock::new(SystemClock.now_ms())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let cfg = sb.config();
    let app = &cfg.alipay.apps[1];
    let keys = AlipayKeys::cert_mode(
        app.app_private_key.as_deref().unwrap(),
        app.app_cert.as_deref().unwrap(),
        &[&old_cert],
        cfg.alipay.root_cert.as_deref().unwrap(),
    )
    .unwrap();
    let c = AlipayClient::new(
        AlipayConfig::new(CERT_APP, keys).with_gateway(sb.gateway_url()),
        transport(),
    );
    let sent = |method: &str| {
        sb.requests()
            .iter()
            .filter(|r| {
                r.body.contains(&format!("method={method}"))
                    || r.uri.contains(&format!("method={method}"))
            })
            .count()
    };
    let created = c
        .execute(
            &req_create("A-ROT-1", Fen(10), "rotated", "2088102177846880"),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(created.out_trade_no, "A-ROT-1");
    assert_eq!(sent("alipay.trade.create"), 1);
    assert_eq!(sent("alipay.open.app.alipaycert.download"), 1);
    assert_eq!(c.config().keys.certificates().unwrap().sns().len(), 2);
    // Known from now on: no second download.
    c.execute(&req_query("A-ROT-1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(sent("alipay.open.app.alipaycert.download"), 1);
}

#[tokio::test]
async fn order_expiry_follows_the_clock() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = client(&sb);
    let mut req = req_create("A-EXP-1", Fen(10), "expiring", "2088102177846880");
    let expire_at = sb.now() / 1000 + 600;
    req.order.time_expire = Some(paybridge_alipay::time_fmt::format_beijing(expire_at));
    c.execute(&req, &opts(&rx)).await.unwrap();
    sb.advance(599_000);
    sb.run_due().await;
    assert_eq!(
        sb.trade_by_out_no("A-EXP-1").unwrap().alipay_status(),
        "WAIT_BUYER_PAY"
    );
    sb.advance(1_000);
    sb.run_due().await;
    let q = c
        .execute(&req_query("A-EXP-1"), &CallOptions::default())
        .await
        .unwrap();
    assert_eq!(q.trade_status, "TRADE_CLOSED");
    assert_eq!(
        verified(&sb, &rx.received()[0].body).trade_status,
        TradeStatus::TradeClosed
    );
}

#[tokio::test]
async fn daily_bill_zip_reads_back_with_the_protocol_reader() {
    let sb = sandbox().await;
    let c = client(&sb);
    let o = CallOptions::default();
    c.execute(&req_barcode("A-BILL-1", "28001", Fen(1234), "bill"), &o)
        .await
        .unwrap();
    c.execute(&req_barcode("A-BILL-2", "28002", Fen(66), "bill"), &o)
        .await
        .unwrap();
    c.execute(&req_refund("A-BILL-1", "RB1", Fen(34)), &o)
        .await
        .unwrap();
    sb.add_discrepancy(paybridge_sandbox::Discrepancy {
        account: APP.into(),
        kind: paybridge_sandbox::DiscrepancyKind::AmountMismatch {
            out_trade_no: "A-BILL-2".into(),
            delta: Fen(1),
        },
    });
    let date = paybridge_sandbox::clock::beijing_date(sb.now());
    let url = c
        .execute(&BillDownloadUrlQuery::trade(date), &o)
        .await
        .unwrap();
    let zip = reqwest::get(&url.bill_download_url)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    let mut archive = BillArchive::new(zip).unwrap();
    let records: Vec<_> = archive.detail().unwrap().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 3);
    let pay1 = records
        .iter()
        .find(|r| r.out_trade_no == "A-BILL-1" && r.kind == BillKind::Payment)
        .unwrap();
    assert_eq!(pay1.order_amount, Fen(1234));
    let refund = records.iter().find(|r| r.kind == BillKind::Refund).unwrap();
    assert_eq!(
        (refund.order_amount, refund.refund_request_no.as_str()),
        (Fen(-34), "RB1")
    );
    let pay2 = records
        .iter()
        .find(|r| r.out_trade_no == "A-BILL-2")
        .unwrap();
    assert_eq!(
        pay2.order_amount,
        Fen(67),
        "the injected discrepancy shows in the bill"
    );
    let _ = Arc::new(());
}

#[tokio::test]
async fn raw_biz_content_text_of_any_sdk_is_verified_as_received() {
    // An SDK that escapes non-ASCII as \uXXXX, adds `alipay_sdk` and sends everything in the
    // body without `format`: the signature covers the raw text, which is then parsed.
    let sb = sandbox().await;
    let app = &sb.config().alipay.apps[0];
    let key = paybridge_crypto::RsaPrivateKey::from_text(app.app_private_key.as_deref().unwrap())
        .unwrap();
    let biz = r#"{"subject":"\u4e2d\u6587","out_trade_no":"A-RAW-1","total_amount":"1.00"}"#;
    let ts = paybridge_alipay::time_fmt::format_beijing(sb.now() / 1000);
    let mut params: Vec<(&str, &str)> = vec![
        ("app_id", APP),
        ("method", "alipay.trade.precreate"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", &ts),
        ("version", "1.0"),
        ("alipay_sdk", "alipay-sdk-java-4.38.0.ALL"),
        ("biz_content", biz),
    ];
    let (_, sign) = paybridge_alipay::sign::sign_params(params.iter().copied(), &key).unwrap();
    params.push(("sign", &sign));
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let raw = reqwest::Client::new()
        .post(sb.gateway_url())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("\"code\":\"10000\""), "{raw}");
    assert_eq!(sb.trade_by_out_no("A-RAW-1").unwrap().subject, "中文");
}

#[tokio::test]
async fn escaped_slashes_quirk_is_verified_by_the_client() {
    use paybridge_sandbox::{Clock, ManualClock, SandboxConfig, StartOptions, SystemClock};
    let mut config = SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap();
    config.alipay_escaped_slashes = true;
    let sb = Sandbox::start_with(
        config,
        StartOptions {
            manual_clock: Some(ManualClock::new(SystemClock.now_ms())),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let pre = client(&sb)
        .execute(
            &req_precreate("A-ESC-1", Fen(1), "escaped"),
            &CallOptions::default(),
        )
        .await
        .unwrap();
    assert!(
        pre.qr_code.starts_with("http://"),
        "the client read the unescaped URL"
    );
    let raw = sb.requests().pop().unwrap().response_body;
    assert!(raw.contains("http:\\/\\/"), "{raw}");
}

#[tokio::test]
async fn notify_ids_are_unique_per_trade_event_at_the_same_instant() {
    // A manual clock that does not move: ids must not be derived from time alone.
    let sb = sandbox().await;
    let rx = Receiver::start(200, "success").await;
    let c = client(&sb);
    for no in ["A-NID-1", "A-NID-2"] {
        c.execute(
            &req_create(no, Fen(100), "same instant", "2088000000000001"),
            &opts(&rx),
        )
        .await
        .unwrap();
        sb.pay(&trade_id(&sb, no)).unwrap();
    }
    sb.run_due().await;
    let ids: Vec<String> = rx
        .received()
        .iter()
        .map(|n| verified(&sb, &n.body).notify_id)
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "two trades share a notify_id");
}
