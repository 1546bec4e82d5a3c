//! paybridge-wechatpay's APIv2 and APIv3 clients against the sandbox over real HTTP: every API
//! and scene, the buyer, signed (and encrypted) notifications verified with the protocol crate,
//! public-key and certificate modes, bills.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use paybridge_core::Fen;
use paybridge_crypto::{RsaPrivateKey, RsaPublicKey};
use paybridge_http::ReqwestTransport;
use paybridge_sandbox::config::WechatKeyMode;
use paybridge_sandbox::{
    BarcodeMode, Clock, ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock,
};
use paybridge_wechatpay::bill::{BillReader, TradeBillRecord};
use paybridge_wechatpay::v2::api::{
    Micropay, OrderId, RefundRequest as V2Refund, TradeType, UnifiedOrder, V2Merchant,
};
use paybridge_wechatpay::v2::client::{V2Client, V2Config};
use paybridge_wechatpay::v2::notify::{parse_pay_notify, parse_refund_notify};
use paybridge_wechatpay::v2::V2Error;
use paybridge_wechatpay::v3::api::{
    self, Merchant, PrepayKind, PrepayRequest, PrepayResponse, RefundRequest,
};
use paybridge_wechatpay::v3::client::{V3Client, V3Config};
use paybridge_wechatpay::v3::error::V3Error;
use paybridge_wechatpay::v3::notify::{parse_notify, NotifyEvent};
use paybridge_wechatpay::v3::{MerchantSigner, SignatureHeaders, Verifier};

const MCHID: &str = "1900000001";

fn v3_client(sb: &Sandbox, trust_configured_key: bool) -> V3Client<Arc<ReqwestTransport>> {
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
    cfg.platform_certificates = !trust_configured_key;
    let key = RsaPrivateKey::from_text(m.merchant_private_key.as_deref().unwrap()).unwrap();
    let signer = MerchantSigner::new(m.mchid.clone(), m.merchant_serial.clone(), key);
    let mut verifier = Verifier::new();
    if trust_configured_key {
        verifier.add_public_key(
            sb.wechat_serial(),
            RsaPublicKey::from_text(&sb.wechat_public_key_pem()).unwrap(),
        );
    }
    let clock = sb.clock();
    V3Client::new(
        cfg,
        signer,
        verifier,
        transport(),
        Arc::new(move || clock.now_ms() / 1000),
    )
}

fn v2_client(sb: &Sandbox, api_key: &str) -> V2Client {
    let m = &sb.config().wechat.merchants[0];
    let mut cfg = V2Config::new(
        V2Merchant {
            appid: m.appid.clone(),
            mch_id: m.mchid.clone(),
            sub_appid: None,
            sub_mch_id: None,
        },
        api_key.to_string(),
    );
    cfg.base_url = sb.base_url().to_string();
    cfg.backup_base_url = None;
    // The sandbox serves /secapi over plain HTTP: the same transport stands in for mTLS.
    V2Client::new(cfg, transport(), Some(transport()))
}

fn platform_verifier(sb: &Sandbox) -> Verifier {
    let mut v = Verifier::new();
    v.add_public_key(
        sb.wechat_serial(),
        RsaPublicKey::from_text(&sb.wechat_public_key_pem()).unwrap(),
    );
    v
}

fn v3_event(sb: &Sandbox, r: &Received) -> Result<NotifyEvent, String> {
    let headers = SignatureHeaders::from_pairs(&r.headers).map_err(|e| e.to_string())?;
    let key = sb.config().wechat.merchants[0].api_v3_key.clone();
    let n = parse_notify(
        &platform_verifier(sb),
        &headers,
        &r.body,
        key.as_bytes(),
        sb.now() / 1000,
    )
    .map_err(|e| e.to_string())?;
    n.event().map_err(|e| e.to_string())
}

fn prepay(kind: PrepayKind, no: &str, fen: i64, rx: &Receiver) -> PrepayRequest {
    PrepayRequest {
        kind,
        out_trade_no: no.into(),
        description: "sandbox".into(),
        amount: Fen(fen),
        notify_url: rx.url.clone(),
        time_expire: None,
        attach: Some("att".into()),
        payer_client_ip: Some("127.0.0.1".into()),
    }
}

fn api_code(e: V3Error) -> (u16, String) {
    match e {
        V3Error::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn v3_native_pay_notify_query_refund() {
    let sb = sandbox().await;
    let rx = Receiver::start(204, "").await;
    let c = v3_client(&sb, true);
    let PrepayResponse::CodeUrl(code_url) = c
        .prepay(&prepay(PrepayKind::Native, "W3-NAT-1", 888, &rx))
        .await
        .unwrap()
    else {
        panic!("native prepay returns a code_url");
    };
    let page = reqwest::get(&code_url).await.unwrap().text().await.unwrap();
    assert!(page.contains("W3-NAT-1") && page.contains("8.88"));
    let t = c.query_by_out_trade_no("W3-NAT-1").await.unwrap();
    assert_eq!(t.trade_state, "NOTPAY");

    control(&sb, &trade_id(&sb, "W3-NAT-1"), "pay").await;
    sb.run_due().await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let NotifyEvent::Transaction(tx) = v3_event(&sb, &got[0]).unwrap() else {
        panic!()
    };
    assert_eq!(
        (tx.trade_state.as_str(), tx.out_trade_no.as_str()),
        ("SUCCESS", "W3-NAT-1")
    );
    assert_eq!(tx.amount.as_ref().unwrap().total, Some(Fen(888)));
    assert_eq!(tx.attach.as_deref(), Some("att"));
    let by_id = c
        .query_by_transaction_id(tx.transaction_id.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!(by_id.trade_state, "SUCCESS");

    let refund = |no: &str, fen: i64| RefundRequest {
        out_trade_no: "W3-NAT-1".into(),
        transaction_id: None,
        out_refund_no: no.into(),
        refund: Fen(fen),
        total: Fen(888),
        reason: None,
        notify_url: Some(rx.url.clone()),
    };
    let r = c.refund(&refund("W3-R1", 300)).await.unwrap();
    assert_eq!(r.status, "PROCESSING");
    assert_eq!(
        c.refund(&refund("W3-R1", 300)).await.unwrap().refund_id,
        r.refund_id,
        "idempotent"
    );
    assert_eq!(
        api_code(c.refund(&refund("W3-R1", 301)).await.unwrap_err()).1,
        "INVALID_REQUEST"
    );
    assert_eq!(
        api_code(c.refund(&refund("W3-R2", 589)).await.unwrap_err()),
        (403, "NOT_ENOUGH".into())
    );
    assert_eq!(
        c.query_by_out_trade_no("W3-NAT-1")
            .await
            .unwrap()
            .trade_state,
        "REFUND"
    );
    sb.run_due().await; // the refund settles and its notification goes out
    let NotifyEvent::Refund(rf) = v3_event(&sb, &rx.received()[1]).unwrap() else {
        panic!()
    };
    assert_eq!(
        (rf.out_refund_no.as_str(), rf.status.as_str()),
        ("W3-R1", "SUCCESS")
    );
    assert_eq!(c.query_refund("W3-R1").await.unwrap().status, "SUCCESS");
    assert_eq!(api_code(c.query_refund("NOPE").await.unwrap_err()).0, 404);
    assert_eq!(
        api_code(c.close("W3-NAT-1").await.unwrap_err()).1,
        "ORDERPAID"
    );
}

#[tokio::test]
async fn v3_jsapi_app_h5_close_and_duplicates() {
    let sb = sandbox().await;
    let rx = Receiver::start(204, "").await;
    let c = v3_client(&sb, true);
    let PrepayResponse::PrepayId(pid) = c
        .prepay(&prepay(
            PrepayKind::Jsapi {
                openid: "o-buyer".into(),
            },
            "W3-JS-1",
            100,
            &rx,
        ))
        .await
        .unwrap()
    else {
        panic!()
    };
    // The JSAPI prepay id leads to the buyer page too.
    let page = reqwest::get(format!("{}/_sandbox/pay/{pid}", sb.base_url()))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let PrepayResponse::PrepayId(_) = c
        .prepay(&prepay(PrepayKind::App, "W3-APP-1", 100, &rx))
        .await
        .unwrap()
    else {
        panic!()
    };
    let PrepayResponse::H5Url(h5) = c
        .prepay(&prepay(PrepayKind::H5, "W3-H5-1", 100, &rx))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(reqwest::get(&h5)
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .contains("W3-H5-1"));
    // Same number, different amount.
    let dup = c
        .prepay(&prepay(PrepayKind::App, "W3-APP-1", 101, &rx))
        .await
        .unwrap_err();
    assert_eq!(api_code(dup), (400, "INVALID_REQUEST".into()));
    // Close answers 204, signed over the empty body (the client verifies it).
    c.close("W3-JS-1").await.unwrap();
    assert_eq!(
        c.query_by_out_trade_no("W3-JS-1")
            .await
            .unwrap()
            .trade_state,
        "CLOSED"
    );
    let (status, body) = control(&sb, &trade_id(&sb, "W3-JS-1"), "pay").await;
    assert_eq!(
        (status, body["wechat_err_code"].as_str()),
        (409, Some("ORDERCLOSED"))
    );
    let close = sb
        .requests()
        .into_iter()
        .find(|r| r.uri.ends_with("/close"))
        .unwrap();
    assert_eq!(close.status, 204);
    assert!(close
        .response_headers
        .iter()
        .any(|(k, v)| k == "wechatpay-signature-type" && v == "WECHATPAY2-SHA256-RSA2048"));
    assert!(close
        .response_headers
        .iter()
        .any(|(k, v)| k == "wechatpay-serial" && v.starts_with("PUB_KEY_ID_")));
    // Expiry by the buyer's "let it expire".
    control(&sb, &trade_id(&sb, "W3-H5-1"), "expire").await;
    assert_eq!(
        c.query_by_out_trade_no("W3-H5-1")
            .await
            .unwrap()
            .trade_state,
        "CLOSED"
    );
    assert_eq!(
        api_code(c.query_by_out_trade_no("NOPE-1").await.unwrap_err()),
        (404, "ORDER_NOT_EXIST".into())
    );
}

#[tokio::test]
async fn v3_bad_signature_is_401_sign_error() {
    let sb = sandbox().await;
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
    let wrong =
        RsaPrivateKey::from_der(&paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap())
            .unwrap();
    let c = V3Client::new(
        cfg,
        MerchantSigner::new(m.mchid.clone(), m.merchant_serial.clone(), wrong),
        platform_verifier(&sb),
        transport(),
        paybridge_wechatpay::v3::client::system_clock(),
    );
    assert_eq!(
        api_code(c.query_by_out_trade_no("X-1").await.unwrap_err()),
        (401, "SIGN_ERROR".into())
    );
}

#[tokio::test]
async fn v3_certificate_mode_serves_and_signs_with_platform_certificates() {
    let mut config = SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap();
    config.wechat.mode = WechatKeyMode::Certificate;
    let sb = Sandbox::start_with(
        config,
        StartOptions {
            manual_clock: Some(ManualClock::new(SystemClock.now_ms())),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(!sb.wechat_serial().starts_with("PUB_KEY_ID_"));
    assert_eq!(sb.wechat_serial(), sb.wechat_serial().to_ascii_uppercase());
    let rx = Receiver::start(204, "").await;
    // No trusted key yet: the client meets an unknown serial and downloads /v3/certificates.
    let c = v3_client(&sb, false);
    c.prepay(&prepay(PrepayKind::Native, "W3-CERT-1", 1, &rx))
        .await
        .unwrap();
    assert!(c.verifier().contains(sb.wechat_serial()));
    assert!(sb
        .requests()
        .iter()
        .any(|r| r.uri == "/v3/certificates" && r.status == 200));
}

/// WeChat Pay moves a merchant from platform certificates to a public key. While it migrates,
/// its answers are signed with the public key only for requests that name that key in
/// `Wechatpay-Serial`: a client that holds only the public key works because it sends the
/// header on every request, and keeps working once the certificates are gone.
#[tokio::test]
async fn v3_public_key_migration_never_stalls_a_client_that_names_its_key() {
    let mut config = SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap();
    config.wechat.mode = WechatKeyMode::Certificate;
    config.begin_wechat_migration().unwrap();
    let start = |config: SandboxConfig| async move {
        Sandbox::start_with(
            config,
            StartOptions {
                manual_clock: Some(ManualClock::new(SystemClock.now_ms())),
                ..StartOptions::default()
            },
        )
        .await
        .unwrap()
    };
    let sb = start(config.clone()).await;
    let (pub_id, pub_pem) = sb.wechat_migration_public_key().unwrap();
    let cert_serial = sb.wechat_serial().to_string();
    assert_ne!(pub_id, cert_serial);
    let client_with_public_key = |sb: &Sandbox| {
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
        let mut verifier = Verifier::new();
        verifier.add_public_key(&pub_id, RsaPublicKey::from_text(&pub_pem).unwrap());
        let clock = sb.clock();
        V3Client::new(
            cfg,
            MerchantSigner::new(m.mchid.clone(), m.merchant_serial.clone(), key),
            verifier,
            transport(),
            Arc::new(move || clock.now_ms() / 1000),
        )
    };
    let rx = Receiver::start(204, "").await;
    let answered_under = |sb: &Sandbox| {
        let last = sb.requests().pop().unwrap();
        let header = |list: &[(String, String)]| {
            list.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("wechatpay-serial"))
                .map(|(_, v)| v.clone())
        };
        (header(&last.headers), header(&last.response_headers))
    };

    // Holding only the public key: the request names it, the answer is signed with it.
    let c = client_with_public_key(&sb);
    c.prepay(&prepay(PrepayKind::Native, "W3-MIG-1", 1, &rx))
        .await
        .unwrap();
    assert_eq!(
        answered_under(&sb),
        (Some(pub_id.clone()), Some(pub_id.clone()))
    );
    // A client still on certificates downloads them and is answered under the certificate.
    let legacy = v3_client(&sb, false);
    legacy.query_by_out_trade_no("W3-MIG-1").await.unwrap();
    assert_eq!(answered_under(&sb).1, Some(cert_serial.clone()));

    // The migration completes: certificates are gone, the public-key client is unaffected.
    drop(sb);
    config.finish_wechat_migration().unwrap();
    let sb = start(config).await;
    let c = client_with_public_key(&sb);
    c.prepay(&prepay(PrepayKind::Native, "W3-MIG-2", 1, &rx))
        .await
        .unwrap();
    assert_eq!(answered_under(&sb).1, Some(pub_id.clone()));
    assert_eq!(sb.wechat_serial(), pub_id);
}

#[tokio::test]
async fn v3_trade_and_fundflow_bills_with_hash_and_gzip() {
    let sb = sandbox().await;
    let rx = Receiver::start(204, "").await;
    let c = v3_client(&sb, true);
    for (no, fen) in [("W3-B-1", 1000), ("W3-B-2", 20)] {
        c.prepay(&prepay(PrepayKind::Native, no, fen, &rx))
            .await
            .unwrap();
        control(&sb, &trade_id(&sb, no), "pay").await;
    }
    c.refund(&RefundRequest {
        out_trade_no: "W3-B-1".into(),
        transaction_id: None,
        out_refund_no: "W3-BR".into(),
        refund: Fen(100),
        total: Fen(1000),
        reason: None,
        notify_url: None,
    })
    .await
    .unwrap();
    sb.run_due().await;
    let date = paybridge_sandbox::clock::beijing_date(sb.now());
    for gzip in [false, true] {
        let text = c
            .download_bill(
                &api::trade_bill(&c.config.merchant, &date, "ALL", gzip),
                gzip,
            )
            .await
            .unwrap();
        let recs: Vec<TradeBillRecord> = BillReader::new(text.as_slice())
            .unwrap()
            .map(|r| TradeBillRecord::from_row(&r.unwrap()).unwrap())
            .collect();
        assert_eq!(recs.len(), 3, "two payments and a refund");
        assert!(
            recs.iter()
                .any(|r| r.out_refund_no.as_deref() == Some("W3-BR")
                    && r.refund_fee == Some(Fen(100)))
        );
    }
    let flow = c
        .download_bill(&api::fundflow_bill(&date, "BASIC", true), true)
        .await
        .unwrap();
    assert_eq!(BillReader::new(flow.as_slice()).unwrap().count(), 3);
}

#[tokio::test]
async fn v2_native_pay_notify_refund_bill() {
    let sb = sandbox().await;
    let rx = Receiver::start(200, "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>").await;
    let key = sb.config().wechat.merchants[0].api_v2_key.clone();
    let c = v2_client(&sb, &key);
    let order = UnifiedOrder {
        trade_type: TradeType::Native {
            product_id: "p1".into(),
        },
        body: "v2 order".into(),
        out_trade_no: "W2-NAT-1".into(),
        total_fee: Fen(500),
        spbill_create_ip: "127.0.0.1".into(),
        notify_url: rx.url.clone(),
        time_expire: None,
        attach: None,
    };
    let u = c.unified_order(&order).await.unwrap();
    let page = reqwest::get(u.code_url.unwrap())
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("W2-NAT-1"));
    assert_eq!(
        c.order_query(&OrderId::OutTradeNo("W2-NAT-1".into()))
            .await
            .unwrap()
            .trade_state,
        "NOTPAY"
    );
    control(&sb, &trade_id(&sb, "W2-NAT-1"), "pay").await;
    sb.run_due().await;
    let n = parse_pay_notify(&rx.received()[0].body, &key).unwrap();
    // The client orders with HMAC-SHA256; the notification is signed the same way.
    assert_eq!(n.doc.get("sign_type"), Some("HMAC-SHA256"));
    assert_eq!(
        (n.out_trade_no.as_str(), n.total_fee, n.result_code.as_str()),
        ("W2-NAT-1", Fen(500), "SUCCESS")
    );
    assert_eq!(
        sb.notifications()[0].attempts.len(),
        1,
        "the XML success reply stops retries"
    );
    let q = c
        .order_query(&OrderId::TransactionId(n.transaction_id.clone().unwrap()))
        .await
        .unwrap();
    assert_eq!(q.trade_state, "SUCCESS");

    let refund = V2Refund {
        order: OrderId::OutTradeNo("W2-NAT-1".into()),
        out_refund_no: "W2-R1".into(),
        total_fee: Fen(500),
        refund_fee: Fen(200),
        refund_desc: None,
        notify_url: Some(rx.url.clone()),
    };
    c.refund(&refund).await.unwrap();
    assert_eq!(
        c.refund_query("W2-R1").await.unwrap().refund_status,
        "PROCESSING"
    );
    sb.run_due().await;
    let rn = parse_refund_notify(&rx.received()[1].body, &key).unwrap();
    assert_eq!(
        (
            rn.out_refund_no.as_str(),
            rn.refund_fee,
            rn.refund_status.as_str()
        ),
        ("W2-R1", Fen(200), "SUCCESS")
    );
    assert_eq!(
        c.refund_query("W2-R1").await.unwrap().refund_status,
        "SUCCESS"
    );
    let over = c
        .refund(&V2Refund {
            out_refund_no: "W2-R2".into(),
            refund_fee: Fen(301),
            ..refund.clone()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(over, V2Error::Business(ref b) if b.code == "NOT_ENOUGH"),
        "{over:?}"
    );
    let close = c.close_order("W2-NAT-1").await.unwrap_err();
    assert!(
        matches!(close, V2Error::Business(ref b) if b.code == "ORDERPAID"),
        "{close:?}"
    );

    let date = paybridge_sandbox::clock::beijing_date(sb.now()).replace('-', "");
    let bill = c.download_bill(&date, "ALL").await.unwrap();
    let recs: Vec<_> = BillReader::new(bill.as_slice())
        .unwrap()
        .map(|r| TradeBillRecord::from_row(&r.unwrap()).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].order_total, Some(Fen(500)));

    // A request signed with another key is refused.
    let bad = v2_client(&sb, "0123456789abcdef0123456789abcdef");
    let e = bad
        .order_query(&OrderId::OutTradeNo("W2-NAT-1".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(e, V2Error::Return { ref message } if message == "签名错误"),
        "{e:?}"
    );
}

#[tokio::test]
async fn v2_micropay_modes_and_reverse() {
    let sb = sandbox().await;
    let key = sb.config().wechat.merchants[0].api_v2_key.clone();
    let c = v2_client(&sb, &key);
    let mp = |no: &str| Micropay {
        auth_code: "134567890123456789".into(),
        body: "bar".into(),
        out_trade_no: no.into(),
        total_fee: Fen(100),
        spbill_create_ip: "127.0.0.1".into(),
        attach: None,
    };
    assert_eq!(
        c.micropay(&mp("W2-MP-1")).await.unwrap().trade_state,
        "SUCCESS"
    );
    sb.set_barcode_mode(MCHID, BarcodeMode::WaitPassword);
    let e = c.micropay(&mp("W2-MP-2")).await.unwrap_err();
    assert!(
        matches!(e, V2Error::Business(ref b) if b.code == "USERPAYING"),
        "{e:?}"
    );
    assert_eq!(
        c.order_query(&OrderId::OutTradeNo("W2-MP-2".into()))
            .await
            .unwrap()
            .trade_state,
        "USERPAYING"
    );
    control(&sb, &trade_id(&sb, "W2-MP-2"), "pay").await;
    assert_eq!(
        c.order_query(&OrderId::OutTradeNo("W2-MP-2".into()))
            .await
            .unwrap()
            .trade_state,
        "SUCCESS"
    );
    sb.set_barcode_mode(MCHID, BarcodeMode::Fail);
    let e = c.micropay(&mp("W2-MP-3")).await.unwrap_err();
    assert!(
        matches!(e, V2Error::Business(ref b) if b.code == "NOTENOUGH"),
        "{e:?}"
    );
    assert_eq!(
        c.order_query(&OrderId::OutTradeNo("W2-MP-3".into()))
            .await
            .unwrap()
            .trade_state,
        "PAYERROR"
    );
    assert!(!c
        .reverse(&OrderId::OutTradeNo("W2-MP-1".into()))
        .await
        .unwrap());
    assert_eq!(
        c.order_query(&OrderId::OutTradeNo("W2-MP-1".into()))
            .await
            .unwrap()
            .trade_state,
        "REVOKED"
    );
}

#[tokio::test]
async fn v3_accepts_any_sdks_authorization_field_order_and_short_nonces() {
    let sb = sandbox().await;
    let m = &sb.config().wechat.merchants[0];
    let key = RsaPrivateKey::from_text(m.merchant_private_key.as_deref().unwrap()).unwrap();
    let signer = MerchantSigner::new(m.mchid.clone(), m.merchant_serial.clone(), key);
    let path = format!(
        "/v3/pay/transactions/out-trade-no/NOPE-ORDER?mchid={}",
        m.mchid
    );
    let ts = (sb.now() / 1000).to_string();
    let nonce = "abcdefghijklmno"; // 15 characters, as some SDKs send
    let signed = signer.sign_request("GET", &path, "", &ts, nonce).unwrap();
    // Fields in another order, serial in lower case.
    let auth = format!(
        "WECHATPAY2-SHA256-RSA2048 signature=\"{}\",serial_no=\"{}\",timestamp=\"{ts}\",mchid=\"{}\",nonce_str=\"{nonce}\"",
        signed.signature,
        m.merchant_serial.to_ascii_lowercase(),
        m.mchid
    );
    let resp = reqwest::Client::new()
        .get(format!("{}{path}", sb.base_url()))
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    // Verified, then a business answer: the order does not exist.
    assert_eq!(resp.status(), 404);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "ORDER_NOT_EXIST");
}

#[tokio::test]
async fn v3_refund_abnormal_and_closed_outcomes_are_notified() {
    let sb = sandbox().await;
    let rx = Receiver::start(204, "").await;
    let c = v3_client(&sb, true);
    c.prepay(&prepay(PrepayKind::Native, "W3-AB-1", 100, &rx))
        .await
        .unwrap();
    let id = trade_id(&sb, "W3-AB-1");
    control(&sb, &id, "pay").await;
    sb.run_due().await;
    for (no, state) in [("W3-AB-R1", "abnormal"), ("W3-AB-R2", "closed")] {
        c.refund(&RefundRequest {
            out_trade_no: "W3-AB-1".into(),
            transaction_id: None,
            out_refund_no: no.into(),
            refund: Fen(10),
            total: Fen(100),
            reason: None,
            notify_url: Some(rx.url.clone()),
        })
        .await
        .unwrap();
        control_json(
            &sb,
            reqwest::Method::POST,
            &format!("/_sandbox/trades/{id}/refunds/{no}/state"),
            serde_json::json!({ "state": state }),
        )
        .await;
        sb.run_due().await;
    }
    let kinds: Vec<String> = sb.notifications().iter().map(|n| n.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec!["TRANSACTION.SUCCESS", "REFUND.ABNORMAL", "REFUND.CLOSED"]
    );
    let NotifyEvent::Refund(r) = v3_event(&sb, &rx.received()[1]).unwrap() else {
        panic!()
    };
    assert_eq!(r.status, "ABNORMAL");
    assert_eq!(c.query_refund("W3-AB-R2").await.unwrap().status, "CLOSED");
}

#[tokio::test]
async fn v3_service_provider_mode_acts_for_its_sub_merchant() {
    let sb = sandbox().await;
    let rx = Receiver::start(204, "").await;
    let m = &sb.config().wechat.merchants[0];
    let sub = &m.sub_merchants[0];
    let partner = |sub_mchid: &str| {
        let mut cfg = V3Config::new(
            Merchant::Partner {
                sp_mchid: m.mchid.clone(),
                sp_appid: m.appid.clone(),
                sub_mchid: sub_mchid.to_string(),
                sub_appid: sub.sub_appid.clone(),
            },
            m.api_v3_key.as_bytes().to_vec(),
        );
        cfg.base_url = sb.base_url().to_string();
        cfg.backup_base_url = None;
        cfg.platform_certificates = false;
        let key = RsaPrivateKey::from_text(m.merchant_private_key.as_deref().unwrap()).unwrap();
        let clock = sb.clock();
        V3Client::new(
            cfg,
            MerchantSigner::new(m.mchid.clone(), m.merchant_serial.clone(), key),
            platform_verifier(&sb),
            transport(),
            Arc::new(move || clock.now_ms() / 1000),
        )
    };
    let c = partner(&sub.sub_mchid);
    c.prepay(&prepay(
        PrepayKind::Jsapi {
            openid: "o-sub-buyer".into(),
        },
        "W3-SP-1",
        300,
        &rx,
    ))
    .await
    .unwrap();
    let trade = sb.trade_by_out_no("W3-SP-1").unwrap();
    assert_eq!(
        (trade.account.as_str(), trade.sp_mchid.as_deref()),
        (sub.sub_mchid.as_str(), Some(m.mchid.as_str()))
    );
    control(&sb, &trade.id, "pay").await;
    sb.run_due().await;
    let NotifyEvent::Transaction(tx) = v3_event(&sb, &rx.received()[0]).unwrap() else {
        panic!()
    };
    assert_eq!(tx.sub_mchid.as_deref(), Some(sub.sub_mchid.as_str()));
    assert_eq!(tx.sp_mchid.as_deref(), Some(m.mchid.as_str()));
    assert_eq!(
        c.query_by_out_trade_no("W3-SP-1")
            .await
            .unwrap()
            .trade_state,
        "SUCCESS"
    );
    let r = c
        .refund(&RefundRequest {
            out_trade_no: "W3-SP-1".into(),
            transaction_id: None,
            out_refund_no: "W3-SP-R1".into(),
            refund: Fen(100),
            total: Fen(300),
            reason: None,
            notify_url: None,
        })
        .await
        .unwrap();
    assert_eq!(r.out_refund_no, "W3-SP-R1");
    assert_eq!(
        c.query_refund("W3-SP-R1").await.unwrap().out_refund_no,
        "W3-SP-R1"
    );
    // The provider's own (direct) orders are another merchant's numbers.
    assert_eq!(
        api_code(
            v3_client(&sb, true)
                .query_by_out_trade_no("W3-SP-1")
                .await
                .unwrap_err()
        )
        .0,
        404
    );
    // A sub-merchant the provider does not serve.
    let stranger = partner("1999999999");
    assert_eq!(
        api_code(stranger.query_by_out_trade_no("W3-SP-1").await.unwrap_err()),
        (403, "NO_AUTH".into())
    );
}
