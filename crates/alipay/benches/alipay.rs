//! Signing and verification cost: the gateway's CPU floor per Alipay call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use paybridge_alipay::notify::{NotifyForm, NotifyRule};
use paybridge_alipay::provider::{encode_form, sign_notify, signed_method_response};
use paybridge_alipay::response::{split_response, verify_content};
use paybridge_alipay::sign::sign_params;
use paybridge_crypto::{generate_rsa_private_key_pkcs8, RsaPrivateKey};

fn request_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("app_id", "2021000000000000"),
        ("method", "alipay.trade.precreate"),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2026-11-26 12:00:00"),
        ("version", "1.0"),
        ("notify_url", "https://pay.example.com/notify/alipay"),
        (
            "biz_content",
            r#"{"out_trade_no":"20261126000000000001","total_amount":"88.88","subject":"Order 1"}"#,
        ),
    ]
}

fn benches(c: &mut Criterion) {
    let key = RsaPrivateKey::from_der(&generate_rsa_private_key_pkcs8().unwrap()).unwrap();
    let public = key.public_key().unwrap();

    c.bench_function("alipay/request_sign_rsa2", |b| {
        b.iter(|| sign_params(black_box(request_params()), &key).unwrap())
    });

    let fields: Vec<(String, String)> = [
        ("notify_id", "2026112600222000000000000000000000"),
        ("notify_type", "trade_status_sync"),
        ("notify_time", "2026-11-26 12:00:05"),
        ("app_id", "2021000000000000"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("trade_no", "2026112622001400000000000001"),
        ("out_trade_no", "20261126000000000001"),
        ("trade_status", "TRADE_SUCCESS"),
        ("total_amount", "88.88"),
        ("receipt_amount", "88.88"),
        ("gmt_payment", "2026-11-26 12:00:04"),
        (
            "fund_bill_list",
            r#"[{"amount":"88.88","fundChannel":"ALIPAYACCOUNT"}]"#,
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let body = encode_form(&sign_notify(fields, NotifyRule::V1, &key).unwrap(), "utf-8").unwrap();
    c.bench_function("alipay/notify_parse_verify", |b| {
        b.iter(|| {
            let form = NotifyForm::parse(black_box(&body)).unwrap();
            assert_eq!(form.verify(&[&public]), Some(NotifyRule::V1));
        })
    });

    let content = r#"{"code":"10000","msg":"Success","out_trade_no":"20261126000000000001","trade_no":"2026112622001400000000000001","trade_status":"TRADE_SUCCESS","total_amount":"88.88","buyer_logon_id":"abc***@example.com"}"#;
    let raw = signed_method_response("alipay.trade.query", content, &key, None).unwrap();
    c.bench_function("alipay/response_extract_verify", |b| {
        b.iter(|| {
            let parts = split_response(black_box(&raw), "alipay.trade.query").unwrap();
            assert!(verify_content(
                &public,
                parts.content,
                parts.sign.as_deref().unwrap()
            ));
        })
    });
}

criterion_group!(alipay, benches);
criterion_main!(alipay);
