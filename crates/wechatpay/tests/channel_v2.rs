//! The APIv2 client and channel against an in-process WeChat Pay built from this crate's
//! provider functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

mod support;

use async_trait::async_trait;
use paybridge_core::channel::*;
use paybridge_core::{Fen, Scene};
use paybridge_http::{HttpRequest, HttpResponse, Transport, TransportError};
use paybridge_wechatpay::v2::api::V2Merchant;
use paybridge_wechatpay::v2::channel::V2Channel;
use paybridge_wechatpay::v2::client::{V2Client, V2Config};
use paybridge_wechatpay::v2::notify::REPLY_SUCCESS;
use paybridge_wechatpay::v2::provider::{fail_xml, refund_notify_xml, signed_xml, verify_request};
use paybridge_wechatpay::v2::sign::{verify, SignType};
use support::create;

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

struct FakeV2 {
    log: Mutex<Vec<String>>,
}

#[async_trait]
impl Transport for FakeV2 {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let path = req
            .url
            .trim_start_matches("https://api.mch.weixin.qq.com")
            .to_string();
        self.log.lock().unwrap().push(path.clone());
        let reply = |fields: &[(&str, &str)], st: SignType| {
            let mut all = vec![
                ("return_code", "SUCCESS"),
                ("appid", "wx1"),
                ("mch_id", "100"),
                ("nonce_str", "n"),
            ];
            all.extend_from_slice(fields);
            signed_xml(&all, KEY, st)
        };
        let body = match verify_request(&req.body, KEY) {
            Err(e) => fail_xml(&e.to_string()),
            Ok((doc, st)) => {
                let g = |k: &str| doc.get(k).unwrap_or("").to_string();
                match path.as_str() {
                    "/pay/unifiedorder" => match g("trade_type").as_str() {
                        "NATIVE" => reply(&[("result_code", "SUCCESS"), ("prepay_id", "wx2"), ("code_url", "weixin://wxpay/bizpayurl?pr=x")], st),
                        "MWEB" => reply(&[("result_code", "SUCCESS"), ("prepay_id", "wx2"), ("mweb_url", "https://wx.tenpay.com/m?p=1")], st),
                        _ => reply(&[("result_code", "SUCCESS"), ("prepay_id", "wx2")], st),
                    },
                    "/pay/micropay" => reply(&[("result_code", "FAIL"), ("err_code", "USERPAYING"), ("err_code_des", "需要用户输入支付密码")], st),
                    "/pay/orderquery" if g("out_trade_no") == "o1" => reply(
                        &[("result_code", "SUCCESS"), ("trade_state", "REFUND"), ("out_trade_no", "o1"), ("transaction_id", "42"), ("total_fee", "101"), ("cash_fee", "101"), ("openid", "op")],
                        st,
                    ),
                    "/pay/orderquery" => reply(&[("result_code", "FAIL"), ("err_code", "ORDERNOTEXIST")], st),
                    "/pay/closeorder" => reply(&[("result_code", "FAIL"), ("err_code", "ORDERPAID"), ("err_code_des", "订单已支付")], st),
                    "/secapi/pay/refund" => reply(&[("result_code", "SUCCESS"), ("out_refund_no", &g("out_refund_no")), ("refund_id", "50"), ("refund_fee", &g("refund_fee"))], st),
                    "/pay/refundquery" => reply(
                        &[("result_code", "SUCCESS"), ("refund_count", "1"), ("out_refund_no_0", "r1"), ("refund_fee_0", "50"), ("refund_status_0", "SUCCESS"), ("refund_success_time_0", "2023-11-15 06:13:20")],
                        st,
                    ),
                    "/pay/downloadbill" => "\u{feff}交易时间,商户订单号,订单金额\r\n`2023-11-15 06:13:20,`o1,`1.01\r\n总交易单数,订单总金额\r\n`1,`1.01\r\n".to_string(),
                    _ => fail_xml("unknown path"),
                }
            }
        };
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        })
    }
}

fn channel(secure: bool) -> (V2Channel, Arc<FakeV2>) {
    channel_for("100", secure)
}

fn channel_for(mch_id: &str, secure: bool) -> (V2Channel, Arc<FakeV2>) {
    let fake = Arc::new(FakeV2 {
        log: Mutex::new(vec![]),
    });
    let merchant = V2Merchant {
        appid: "wx1".into(),
        mch_id: mch_id.into(),
        sub_appid: None,
        sub_mch_id: None,
    };
    let mut config = V2Config::new(merchant, KEY.into());
    config.backup_base_url = None;
    let t: Arc<dyn Transport> = fake.clone();
    let client = V2Client::new(config, t.clone(), secure.then_some(t));
    (V2Channel::new(client, Arc::new(|| 1_700_000_000)), fake)
}

#[tokio::test]
async fn operations_map_to_core_outcomes() {
    let (ch, fake) = channel(false);
    assert_eq!(
        ch.create_payment(&create(Scene::Pc)).await.unwrap(),
        ClientAction::QrCode {
            code_url: "weixin://wxpay/bizpayurl?pr=x".into()
        }
    );
    assert_eq!(
        ch.create_payment(&create(Scene::Wap)).await.unwrap(),
        ClientAction::Redirect {
            url: "https://wx.tenpay.com/m?p=1&redirect_url=https%3A%2F%2Fmerchant.example%2Fdone%3Fx%3D1".into()
        }
    );
    let ClientAction::ClientParams { params } =
        ch.create_payment(&create(Scene::Jsapi)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (params["package"].as_str(), params["signType"].as_str()),
        ("prepay_id=wx2", "HMAC-SHA256")
    );
    let signed: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| *k != "paySign")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert!(verify(
        signed,
        KEY,
        SignType::HmacSha256,
        &params["paySign"]
    ));
    let ClientAction::ClientParams { params } =
        ch.create_payment(&create(Scene::App)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (params["partnerid"].as_str(), params["package"].as_str()),
        ("100", "Sign=WXPay")
    );
    // Barcode: the buyer is typing a password — in flight, not an error.
    let ClientAction::Barcode { snapshot } =
        ch.create_payment(&create(Scene::Barcode)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(snapshot.status, ProviderPaymentStatus::UserPaying);

    let snap = ch
        .query_payment(&OrderRef {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (snap.status, snap.amount),
        (ProviderPaymentStatus::Refunded, Some(Fen(101)))
    );
    let gone = ch
        .query_payment(&OrderRef {
            out_trade_no: "zz".into(),
            provider_trade_no: None,
        })
        .await
        .unwrap();
    assert_eq!(gone.status, ProviderPaymentStatus::NotFound);
    let closed = ch
        .close_payment(&OrderRef {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
        })
        .await;
    assert!(
        matches!(closed, Err(ChannelError::Refused { ref code, retryable: false, .. }) if code == "ORDERPAID"),
        "{closed:?}"
    );

    let refund_req = CreateRefund {
        out_trade_no: "o1".into(),
        provider_trade_no: None,
        out_refund_no: "r1".into(),
        refund_amount: Fen(50),
        total_amount: Fen(101),
        reason: None,
        notify_url: None,
    };
    // No client certificate configured: /secapi is refused before anything is sent.
    assert!(matches!(
        ch.refund(&refund_req).await,
        Err(ChannelError::Config(_))
    ));
    assert!(!fake
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|p| p.starts_with("/secapi")));
    let (secure, _) = channel(true);
    let r = secure.refund(&refund_req).await.unwrap();
    assert_eq!(
        (r.status, r.amount),
        (ProviderRefundStatus::Processing, Some(Fen(50)))
    );
    let q = secure
        .query_refund(&RefundRef {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
            out_refund_no: "r1".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        (q.status, q.amount),
        (ProviderRefundStatus::Succeeded, Some(Fen(50)))
    );

    // A validly signed reply naming another merchant is not an answer to our request.
    let (other, _) = channel_for("999", true);
    let r = other
        .query_payment(&OrderRef {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
        })
        .await;
    assert!(matches!(r, Err(ChannelError::Unknown { .. })), "{r:?}");

    let bill = secure
        .client
        .download_bill("20231115", "ALL")
        .await
        .unwrap();
    let mut reader = paybridge_wechatpay::bill::BillReader::new(&bill[..]).unwrap();
    let row = reader.next().unwrap().unwrap();
    assert_eq!(row.amount("订单金额").unwrap(), Some(Fen(101)));
}

#[tokio::test]
async fn notifications_and_exact_replies() {
    let (ch, _) = channel(false);
    let pay = signed_xml(
        &[
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("appid", "wx1"),
            ("mch_id", "100"),
            ("out_trade_no", "o1"),
            ("transaction_id", "42"),
            ("total_fee", "101"),
            ("cash_fee", "100"),
            ("time_end", "20231115061320"),
            ("coupon_fee", "1"),
        ],
        KEY,
        SignType::Md5,
    );
    let req = InboundRequest {
        method: "POST".into(),
        body: pay.clone().into_bytes(),
        ..InboundRequest::default()
    };
    let n = ch.decode_notification(&req, 0).unwrap();
    let ChannelEvent::Payment { snapshot } = n.event else {
        panic!()
    };
    assert_eq!(
        (snapshot.status, snapshot.amount, snapshot.paid_amount),
        (ProviderPaymentStatus::Paid, Some(Fen(101)), Some(Fen(100)))
    );
    let forged = pay.replace("101", "1");
    assert!(matches!(
        ch.decode_notification(
            &InboundRequest {
                body: forged.into_bytes(),
                ..req.clone()
            },
            0
        ),
        Err(ChannelError::BadNotification(_))
    ));

    let refund = refund_notify_xml(
        "wx1",
        "100",
        "n",
        &[
            ("out_trade_no", "o1"),
            ("out_refund_no", "r1"),
            ("total_fee", "101"),
            ("refund_fee", "50"),
            ("refund_status", "CHANGE"),
        ],
        KEY,
    )
    .unwrap();
    let ChannelEvent::Refund { snapshot, .. } = ch
        .decode_notification(
            &InboundRequest {
                body: refund.into_bytes(),
                ..req.clone()
            },
            0,
        )
        .unwrap()
        .event
    else {
        panic!()
    };
    assert_eq!(snapshot.status, ProviderRefundStatus::Failed);
    assert!(ch
        .decode_notification(
            &InboundRequest {
                body: b"<!DOCTYPE x><xml/>".to_vec(),
                ..req
            },
            0
        )
        .is_err());

    let ok = ch.acknowledge(&NotifyOutcome::Accepted);
    assert_eq!(
        (ok.status, ok.body.as_slice()),
        (200, REPLY_SUCCESS.as_bytes())
    );
    let fail = ch.acknowledge(&NotifyOutcome::Rejected {
        retry: true,
        reason: "later".into(),
    });
    assert_eq!(String::from_utf8(fail.body).unwrap(), "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[later]]></return_msg></xml>");
}
