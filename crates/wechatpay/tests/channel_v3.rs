//! The APIv3 client and channel against an in-process WeChat Pay built from this crate's
//! provider functions: requests must carry a valid merchant signature, responses are signed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

mod support;

use async_trait::async_trait;
use paybridge_core::channel::*;
use paybridge_core::{Fen, Scene};
use paybridge_crypto::{
    generate_rsa_private_key_pkcs8, self_signed_rsa_cert, CertSpec, RsaPrivateKey, RsaPublicKey,
};
use paybridge_http::{HttpRequest, HttpResponse, Transport, TransportError};
use paybridge_wechatpay::v3::channel::V3Channel;
use paybridge_wechatpay::v3::client::{Clock, V3Client, V3Config};
use paybridge_wechatpay::v3::{
    client_params, provider, Merchant, MerchantSigner, V3Error, Verifier,
};
use serde_json::json;
use support::create;

const NOW: i64 = 1_700_000_000;
const APIV3_KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const MCHID: &str = "1900000109";

fn key() -> RsaPrivateKey {
    RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap()
}

struct FakeWechat {
    merchant_pub: RsaPublicKey,
    platform: RsaPrivateKey,
    /// Serial the responses are signed under (certificate serial or PUB_KEY_ID_...).
    serial: String,
    cert_pem: String,
    /// Hosts that refuse connections.
    down_host: Option<String>,
    log: Mutex<Vec<String>>,
}

impl FakeWechat {
    fn new(serial_bytes: &[u8], pub_key_id: Option<&str>, merchant_pub: RsaPublicKey) -> Self {
        let platform = key();
        let spec = CertSpec {
            common_name: "Tenpay.com Root CA".into(),
            organization: None,
            organizational_unit: None,
            country: None,
            serial: serial_bytes.to_vec(),
            not_before_unix: NOW - 86_400,
            not_after_unix: NOW + 365 * 86_400,
            is_ca: false,
        };
        let cert = self_signed_rsa_cert(&platform, &spec).unwrap();
        let serial = match pub_key_id {
            Some(id) => id.to_string(),
            None => serial_bytes.iter().map(|b| format!("{b:02X}")).collect(),
        };
        FakeWechat {
            merchant_pub,
            platform,
            serial,
            cert_pem: cert.pem,
            down_host: None,
            log: Mutex::new(Vec::new()),
        }
    }

    fn reply(&self, status: u16, body: String) -> HttpResponse {
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        if (200..300).contains(&status) {
            for (k, v) in provider::sign_response(
                &self.platform,
                &self.serial,
                NOW,
                "fake-nonce-123456",
                body.as_bytes(),
            )
            .unwrap()
            {
                headers.push((k.to_ascii_lowercase(), v));
            }
        }
        HttpResponse {
            status,
            headers,
            body: body.into_bytes(),
        }
    }
}

#[async_trait]
impl Transport for FakeWechat {
    async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
        let rest = req.url.strip_prefix("https://").unwrap();
        let (host, path) = rest.split_at(rest.find('/').unwrap());
        self.log
            .lock()
            .unwrap()
            .push(format!("{host} {} {path}", req.method));
        if self.down_host.as_deref() == Some(host) {
            return Err(TransportError::Connect {
                url: req.url.clone(),
                reason: "refused".into(),
            });
        }
        let auth = req
            .headers
            .iter()
            .find(|(k, _)| k == "Authorization")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        if let Err(e) = provider::verify_request(
            auth,
            req.method,
            path,
            &req.body,
            Some(MCHID),
            &self.merchant_pub,
            NOW,
        ) {
            return Ok(self.reply(401, provider::error_body("SIGN_ERROR", &e.to_string())));
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or(json!({}));
        Ok(match (req.method, path) {
            ("GET", "/v3/certificates") => {
                let out = provider::CertificateOut {
                    serial_no: &self.serial,
                    effective_time: "2023-11-14T00:00:00+08:00",
                    expire_time: "2024-11-14T00:00:00+08:00",
                    pem: &self.cert_pem,
                    nonce: "abcdefghijkl",
                };
                self.reply(200, provider::certificates_body(APIV3_KEY, &[out]).unwrap())
            }
            ("POST", "/v3/pay/transactions/native") => self.reply(200, json!({"code_url": "weixin://wxpay/bizpayurl?pr=abc"}).to_string()),
            ("POST", "/v3/pay/transactions/jsapi") | ("POST", "/v3/pay/transactions/app") => {
                assert_eq!(body["amount"]["total"], 101);
                self.reply(200, json!({"prepay_id": "wx201410272009395522657a690389285100"}).to_string())
            }
            ("POST", "/v3/pay/transactions/h5") => self.reply(200, json!({"h5_url": "https://wx.tenpay.com/checkmweb?prepay_id=wx1"}).to_string()),
            ("GET", "/v3/pay/transactions/out-trade-no/o1?mchid=1900000109") => self.reply(
                200,
                json!({"appid": "wxA", "mchid": MCHID, "out_trade_no": "o1", "transaction_id": "4200001", "trade_state": "SUCCESS",
                       "success_time": "2023-11-15T06:13:20+08:00", "payer": {"openid": "op"}, "amount": {"total": 101, "payer_total": 100}})
                .to_string(),
            ),
            ("GET", p) if p.starts_with("/v3/pay/transactions/out-trade-no/") => {
                self.reply(404, provider::error_body("ORDER_NOT_EXIST", "订单不存在"))
            }
            ("POST", "/v3/pay/transactions/out-trade-no/o1/close") => {
                assert_eq!(body, json!({"mchid": MCHID}));
                self.reply(204, String::new())
            }
            ("POST", "/v3/refund/domestic/refunds") => self.reply(
                200,
                json!({"refund_id": "5030", "out_refund_no": body["out_refund_no"], "out_trade_no": "o1", "status": "PROCESSING", "amount": {"refund": 50, "total": 101}}).to_string(),
            ),
            ("GET", "/v3/bill/tradebill?bill_date=2023-11-14&bill_type=ALL&tar_type=GZIP") => {
                let link = json!({"hash_type": "SHA1", "hash_value": paybridge_crypto::sha1_hex(&bill_text()),
                                  "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=t1"});
                self.reply(200, link.to_string())
            }
            // The download itself is not signed.
            ("GET", "/v3/billdownload/file?token=t1") => {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                gz.write_all(&bill_text()).unwrap();
                HttpResponse { status: 200, headers: vec![], body: gz.finish().unwrap() }
            }
            ("GET", "/v3/refund/domestic/refunds/r1") => self.reply(500, provider::error_body("SYSTEM_ERROR", "busy")),
            _ => self.reply(404, provider::error_body("NOT_FOUND", path)),
        })
    }
}

fn bill_text() -> Vec<u8> {
    paybridge_wechatpay::bill::write_bill(
        &["交易时间", "商户订单号", "交易状态", "订单金额"],
        &[vec![
            "2023-11-14 10:00:00".into(),
            "o1".into(),
            "SUCCESS".into(),
            "1.01".into(),
        ]],
        &["总交易单数", "订单总金额"],
        &["1".into(), "1.01".into()],
    )
    .into_bytes()
}

fn clock() -> Clock {
    Arc::new(|| NOW)
}

fn channel(
    fake: Arc<FakeWechat>,
    mkey: RsaPrivateKey,
    verifier: Verifier,
    certs: bool,
) -> V3Channel<Arc<FakeWechat>> {
    let mut config = V3Config::new(
        Merchant::Direct {
            mchid: MCHID.into(),
            appid: "wxA".into(),
        },
        APIV3_KEY.to_vec(),
    );
    config.base_url = "https://api.mch.weixin.qq.com".into();
    config.backup_base_url = Some("https://api2.mch.weixin.qq.com".into());
    config.platform_certificates = certs;
    let signer = MerchantSigner::new(MCHID, "MERCHANTSERIAL", mkey);
    V3Channel::new(V3Client::new(config, signer, verifier, fake, clock()))
}

#[tokio::test]
async fn certificate_bootstrap_then_every_operation() {
    let mkey = key();
    let fake = Arc::new(FakeWechat::new(
        &[0x5D, 0xEA, 0x10],
        None,
        mkey.public_key().unwrap(),
    ));
    let mpub = mkey.public_key().unwrap();
    let ch = channel(fake.clone(), mkey, Verifier::new(), true);

    // First call: unknown serial → one certificate download (self-verified at bootstrap).
    let action = ch.create_payment(&create(Scene::Qr)).await.unwrap();
    assert_eq!(
        action,
        ClientAction::QrCode {
            code_url: "weixin://wxpay/bizpayurl?pr=abc".into()
        }
    );
    assert!(ch.client.with_verifier(|v| v.contains("5dea10")));
    let certs_calls = |f: &FakeWechat| {
        f.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with("/v3/certificates"))
            .count()
    };
    assert_eq!(certs_calls(&fake), 1);

    let ClientAction::ClientParams { params } =
        ch.create_payment(&create(Scene::Jsapi)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(params["signType"], "RSA");
    assert_eq!(
        params["package"],
        "prepay_id=wx201410272009395522657a690389285100"
    );
    let msg = client_params::jsapi_message(
        "wxA",
        &params["timeStamp"],
        &params["nonceStr"],
        &params["package"],
    );
    assert!(mpub.verify_sha256_base64(msg.as_bytes(), &params["paySign"]));
    let ClientAction::ClientParams { params } =
        ch.create_payment(&create(Scene::App)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(
        (params["partnerid"].as_str(), params["package"].as_str()),
        (MCHID, "Sign=WXPay")
    );
    let ClientAction::Redirect { url } = ch.create_payment(&create(Scene::Wap)).await.unwrap()
    else {
        panic!()
    };
    assert_eq!(url, "https://wx.tenpay.com/checkmweb?prepay_id=wx1&redirect_url=https%3A%2F%2Fmerchant.example%2Fdone%3Fx%3D1");
    assert!(matches!(
        ch.create_payment(&create(Scene::Barcode)).await,
        Err(ChannelError::Unsupported(_))
    ));

    let order = OrderRef {
        out_trade_no: "o1".into(),
        provider_trade_no: None,
    };
    let snap = ch.query_payment(&order).await.unwrap();
    assert_eq!(
        (
            snap.status,
            snap.amount,
            snap.paid_amount,
            snap.payer_id.as_deref()
        ),
        (
            ProviderPaymentStatus::Paid,
            Some(Fen(101)),
            Some(Fen(100)),
            Some("op")
        )
    );
    let missing = ch
        .query_payment(&OrderRef {
            out_trade_no: "nope".into(),
            provider_trade_no: None,
        })
        .await
        .unwrap();
    assert_eq!(missing.status, ProviderPaymentStatus::NotFound);
    ch.close_payment(&order).await.unwrap();
    assert!(matches!(
        ch.cancel_payment(&order).await,
        Err(ChannelError::Unsupported(_))
    ));

    let refund = ch
        .refund(&CreateRefund {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
            out_refund_no: "r9".into(),
            refund_amount: Fen(50),
            total_amount: Fen(101),
            reason: None,
            notify_url: None,
        })
        .await
        .unwrap();
    assert_eq!(
        (refund.status, refund.amount),
        (ProviderRefundStatus::Processing, Some(Fen(50)))
    );
    // A 500 SYSTEM_ERROR: WeChat may have acted; the caller must query.
    let r = ch
        .query_refund(&RefundRef {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
            out_refund_no: "r1".into(),
        })
        .await;
    assert!(matches!(r, Err(ChannelError::Unknown { .. })), "{r:?}");
    assert_eq!(certs_calls(&fake), 1);
    // Trade bill: signed link request, unsigned gzip download, SHA-1 checked, then streamed.
    let link = paybridge_wechatpay::v3::api::trade_bill(
        &ch.client.config.merchant,
        "2023-11-14",
        "ALL",
        true,
    );
    let text = ch.client.download_bill(&link, true).await.unwrap();
    let mut reader = paybridge_wechatpay::bill::BillReader::new(&text[..]).unwrap();
    let row =
        paybridge_wechatpay::bill::TradeBillRecord::from_row(&reader.next().unwrap().unwrap())
            .unwrap();
    assert_eq!(
        (row.out_trade_no.as_deref(), row.order_total),
        (Some("o1"), Some(Fen(101)))
    );
    // Periodic refresh: not due right after the bootstrap.
    assert!(!ch.client.refresh_if_due().await.unwrap());
}

#[tokio::test]
async fn notification_verify_decrypt_and_replies() {
    let mkey = key();
    let fake = FakeWechat::new(
        &[1, 2, 3],
        Some("PUB_KEY_ID_0119000001"),
        mkey.public_key().unwrap(),
    );
    let mut verifier = Verifier::new();
    verifier.add_public_key("PUB_KEY_ID_0119000001", fake.platform.public_key().unwrap());
    let ch = channel(
        Arc::new(FakeWechat::new(&[9], None, mkey.public_key().unwrap())),
        mkey,
        verifier,
        false,
    );

    let plaintext = json!({"appid": "wxA", "mchid": MCHID, "out_trade_no": "o1", "transaction_id": "42", "trade_state": "SUCCESS",
                            "amount": {"total": 101, "payer_total": 101}, "payer": {"openid": "op"}}).to_string();
    let body = provider::notify_body(
        APIV3_KEY,
        "EV-1",
        "2023-11-15T06:13:20+08:00",
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        "nonce1234567",
        &plaintext,
    )
    .unwrap();
    let headers = provider::sign_response(
        &fake.platform,
        &fake.serial,
        NOW,
        "n-123456789012345",
        body.as_bytes(),
    )
    .unwrap();
    let req = InboundRequest {
        method: "POST".into(),
        path: "/notify".into(),
        query: None,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect(),
        body: body.into_bytes(),
    };
    let n = ch.decode_notification(&req, NOW + 10).unwrap();
    assert_eq!(n.notify_id.as_deref(), Some("EV-1"));
    let ChannelEvent::Payment { snapshot } = n.event else {
        panic!()
    };
    assert_eq!(
        (snapshot.status, snapshot.amount),
        (ProviderPaymentStatus::Paid, Some(Fen(101)))
    );
    // Stale, tampered and probe notifications are refused.
    assert!(matches!(
        ch.decode_notification(&req, NOW + 301),
        Err(ChannelError::BadNotification(_))
    ));
    let mut tampered = req.clone();
    tampered.body[10] ^= 1;
    assert!(ch.decode_notification(&tampered, NOW).is_err());
    let mut probe = req.clone();
    for (k, v) in probe.headers.iter_mut() {
        if k == "wechatpay-signature" {
            *v = format!("WECHATPAY/SIGNTEST/{v}");
        }
    }
    assert!(ch.decode_notification(&probe, NOW).is_err());

    let refund_plain = json!({"mchid": MCHID, "out_trade_no": "o1", "out_refund_no": "r1", "refund_id": "50", "refund_status": "SUCCESS", "amount": {"total": 101, "refund": 50}}).to_string();
    let body = provider::notify_body(
        APIV3_KEY,
        "EV-2",
        "t",
        "REFUND.SUCCESS",
        "退款成功",
        "refund",
        "nonce1234567",
        &refund_plain,
    )
    .unwrap();
    let headers =
        provider::sign_response(&fake.platform, &fake.serial, NOW, "n", body.as_bytes()).unwrap();
    let req = InboundRequest {
        headers,
        body: body.into_bytes(),
        ..InboundRequest::default()
    };
    let ChannelEvent::Refund {
        out_trade_no,
        snapshot,
    } = ch.decode_notification(&req, NOW).unwrap().event
    else {
        panic!()
    };
    assert_eq!(
        (out_trade_no.as_str(), snapshot.status, snapshot.amount),
        ("o1", ProviderRefundStatus::Succeeded, Some(Fen(50)))
    );

    assert_eq!(ch.acknowledge(&NotifyOutcome::Accepted).status, 204);
    let fail = ch.acknowledge(&NotifyOutcome::Rejected {
        retry: true,
        reason: "refused".into(),
    });
    assert_eq!(
        (fail.status, fail.body),
        (400, br#"{"code":"FAIL","message":"refused"}"#.to_vec())
    );
    let ours = ch.acknowledge(&NotifyOutcome::Failed);
    assert_eq!(ours.status, 500);
}

#[tokio::test]
async fn public_key_mode_backup_host_and_untrusted_download() {
    let mkey = key();
    let mut fake = FakeWechat::new(&[7], Some("PUB_KEY_ID_01"), mkey.public_key().unwrap());
    fake.down_host = Some("api.mch.weixin.qq.com".into());
    let mut verifier = Verifier::new();
    verifier.add_public_key("PUB_KEY_ID_01", fake.platform.public_key().unwrap());
    let fake = Arc::new(fake);
    let ch = channel(fake.clone(), mkey, verifier, false);
    // Connection refused on the primary: the backup host serves the (idempotent) query.
    let snap = ch
        .query_payment(&OrderRef {
            out_trade_no: "o1".into(),
            provider_trade_no: None,
        })
        .await
        .unwrap();
    assert_eq!(snap.status, ProviderPaymentStatus::Paid);
    assert!(fake
        .log
        .lock()
        .unwrap()
        .iter()
        .any(|l| l.starts_with("api2.mch.weixin.qq.com GET")));

    // A response signed by a key nobody trusts is refused when certificate download is off.
    let other_key = key();
    let other = Arc::new(FakeWechat::new(&[8], None, other_key.public_key().unwrap()));
    let mut trusted = Verifier::new();
    trusted.add_public_key("PUB_KEY_ID_01", fake.platform.public_key().unwrap());
    let ch2 = channel(other.clone(), other_key, trusted, true);
    // Certificate mode on, but the download itself is signed by an untrusted certificate:
    // outside bootstrap it must not be accepted.
    let err = ch2.client.refresh_certificates().await.unwrap_err();
    assert!(matches!(err, V3Error::Cert(_)), "{err:?}");
    assert!(!ch2.client.with_verifier(|v| v.contains("08")));
}

#[tokio::test]
async fn refresh_keys_is_due_based_and_rate_limits_urgent_refreshes() {
    use std::sync::atomic::{AtomicI64, Ordering};
    let mkey = key();
    let fake = Arc::new(FakeWechat::new(
        &[0x7A, 0x01],
        None,
        mkey.public_key().unwrap(),
    ));
    let now = Arc::new(AtomicI64::new(NOW));
    let t = now.clone();
    let mut config = V3Config::new(
        Merchant::Direct {
            mchid: MCHID.into(),
            appid: "wxA".into(),
        },
        APIV3_KEY.to_vec(),
    );
    config.base_url = "https://api.mch.weixin.qq.com".into();
    config.platform_certificates = true;
    let signer = MerchantSigner::new(MCHID, "MERCHANTSERIAL", mkey);
    let clock: Clock = Arc::new(move || t.load(Ordering::SeqCst));
    let ch = V3Channel::new(V3Client::new(
        config,
        signer,
        Verifier::new(),
        fake.clone(),
        clock,
    ));
    let downloads = || {
        fake.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.ends_with("/v3/certificates"))
            .count()
    };

    // Never refreshed: due at once.
    assert!(ch.refresh_keys(false).await.unwrap());
    assert_eq!(downloads(), 1);
    assert!(ch.client.with_verifier(|v| v.contains("7a01")));
    // An unverifiable notification right after: rate-limited, no download.
    now.store(NOW + 10, Ordering::SeqCst);
    assert!(!ch.refresh_keys(true).await.unwrap());
    assert_eq!(downloads(), 1);
    // A minute on, an urgent refresh goes out; the periodic one is still not due.
    now.store(NOW + 70, Ordering::SeqCst);
    assert!(!ch.refresh_keys(false).await.unwrap());
    assert!(ch.refresh_keys(true).await.unwrap());
    assert_eq!(downloads(), 2);

    // Public-key mode has nothing to refresh.
    let pk = channel(fake.clone(), key(), Verifier::new(), false);
    assert!(!pk.refresh_keys(true).await.unwrap());
    assert_eq!(downloads(), 2);
}
