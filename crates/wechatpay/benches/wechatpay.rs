//! Hot paths of a WeChat Pay integration: v2 sign/verify, v3 request signing, v3 notification
//! verification + decryption. Keys are generated per run (no test material needed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey};
use paybridge_wechatpay::v2::notify::parse_pay_notify;
use paybridge_wechatpay::v2::provider::signed_xml;
use paybridge_wechatpay::v2::sign::{sign, SignType};
use paybridge_wechatpay::v3::notify::parse_notify;
use paybridge_wechatpay::v3::{provider, MerchantSigner, SignatureHeaders, Verifier};

const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

fn pay_notify_fields() -> Vec<(&'static str, &'static str)> {
    vec![
        ("appid", "wx2421b1c4370ec43b"),
        ("attach", "支付测试"),
        ("bank_type", "CFT"),
        ("fee_type", "CNY"),
        ("is_subscribe", "Y"),
        ("mch_id", "10000100"),
        ("nonce_str", "5d2b6c2a8db53831f7eda20af46e531c"),
        ("openid", "oUpF8uMEb4qRXf22hE3X68TekukE"),
        ("out_trade_no", "1409811653"),
        ("result_code", "SUCCESS"),
        ("return_code", "SUCCESS"),
        ("time_end", "20140903131540"),
        ("total_fee", "1"),
        ("cash_fee", "1"),
        ("trade_type", "JSAPI"),
        ("transaction_id", "1004400740201409030005092168"),
    ]
}

fn v2(c: &mut Criterion) {
    let fields = pay_notify_fields();
    c.bench_function("v2_sign_md5", |b| {
        b.iter(|| sign(black_box(fields.iter().copied()), KEY, SignType::Md5))
    });
    c.bench_function("v2_sign_hmac_sha256", |b| {
        b.iter(|| sign(black_box(fields.iter().copied()), KEY, SignType::HmacSha256))
    });
    let xml = signed_xml(&fields, KEY, SignType::HmacSha256);
    c.bench_function("v2_pay_notify_parse_verify", |b| {
        b.iter(|| parse_pay_notify(black_box(xml.as_bytes()), KEY).unwrap())
    });
}

fn v3(c: &mut Criterion) {
    let key = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
    let signer = MerchantSigner::new(
        "1900000109",
        "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        key,
    );
    let body = r#"{"appid":"wxd678efh567hg6787","mchid":"1900000109","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"},"payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}"#;
    c.bench_function("v3_request_sign", |b| {
        b.iter(|| {
            signer
                .sign_request(
                    "POST",
                    "/v3/pay/transactions/jsapi",
                    black_box(body),
                    "1554208460",
                    "593BEC0C930BF1AFEB40B4A08C8FB242",
                )
                .unwrap()
        })
    });

    let platform = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
    let apiv3 = b"0123456789abcdef0123456789abcdef";
    let plaintext = r#"{"appid":"wxd678efh567hg6787","mchid":"1230000109","out_trade_no":"1217752501201407033233368018","transaction_id":"1217752501201407033233368018","trade_type":"JSAPI","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"CMC","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}"#;
    let body = provider::notify_body(
        apiv3,
        "EV-018",
        "2015-05-20T13:29:35+08:00",
        "TRANSACTION.SUCCESS",
        "支付成功",
        "transaction",
        "fdasflkja484",
        plaintext,
    )
    .unwrap();
    let headers = SignatureHeaders::from_pairs(
        &provider::sign_response(
            &platform,
            "PUB_KEY_ID_0114232134912410000000000000",
            1_700_000_000,
            "nonce",
            body.as_bytes(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut verifier = Verifier::new();
    verifier.add_public_key(
        "PUB_KEY_ID_0114232134912410000000000000",
        platform.public_key().unwrap(),
    );
    c.bench_function("v3_notify_verify_decrypt", |b| {
        b.iter(|| {
            parse_notify(
                &verifier,
                &headers,
                black_box(body.as_bytes()),
                apiv3,
                1_700_000_000,
            )
            .unwrap()
        })
    });
}

criterion_group!(benches, v2, v3);
criterion_main!(benches);
