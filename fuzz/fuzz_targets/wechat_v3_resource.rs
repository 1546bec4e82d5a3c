//! WeChat Pay APIv3 bodies: notification envelopes and their AES-256-GCM resources, the
//! decrypted transaction/refund JSON, platform-certificate downloads (the decrypted PEM is
//! parsed as X.509), API answers and error bodies. Random ciphertext never authenticates, so
//! the input is also encrypted with the test key and fed through as a genuine resource.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_fuzz::APIV3_KEY;
use paybridge_wechatpay::v3::api::{
    parse_bill_link, parse_prepay, parse_refund, parse_transaction, PrepayKind,
};
use paybridge_wechatpay::v3::certs::decrypt_certificates;
use paybridge_wechatpay::v3::notify::{decrypt_notify, NotifyEnvelope, NotifyError, NotifyEvent};
use paybridge_wechatpay::v3::{EncryptedResource, V3Error};

const NONCE: &str = "fuzznonce012";

fn raw(data: &[u8]) {
    let _ = decrypt_notify(data, APIV3_KEY);
    let _ = decrypt_certificates(data, APIV3_KEY);
    let _ = parse_transaction(data);
    let _ = parse_refund(data);
    let _ = parse_bill_link(data);
    for kind in [
        PrepayKind::Jsapi { openid: "o".into() },
        PrepayKind::App,
        PrepayKind::H5,
        PrepayKind::Native,
    ] {
        let _ = parse_prepay(&kind, data);
    }
    let _ = V3Error::from_response(400, data);
}

fn encrypt(plaintext: &[u8]) -> EncryptedResource {
    EncryptedResource::encrypt(APIV3_KEY, NONCE, "transaction", None, plaintext)
        .expect("encrypt with a valid key and nonce")
}

fn wrapped(event_type: &str, plaintext: &[u8]) {
    let resource = encrypt(plaintext);
    let envelope = NotifyEnvelope {
        id: "EV-fuzz".into(),
        create_time: None,
        event_type: event_type.into(),
        resource_type: Some("encrypt-resource".into()),
        summary: None,
        resource: resource.clone(),
    };
    let body = serde_json::to_vec(&envelope).expect("serialize the envelope");
    match decrypt_notify(&body, APIV3_KEY) {
        Ok(n) => {
            assert_eq!(n.plaintext.as_bytes(), plaintext);
            assert_eq!(n.envelope, envelope);
            match n.event() {
                Ok(NotifyEvent::Other(et)) => assert_eq!(et, event_type),
                Ok(_) | Err(_) => {}
            }
        }
        Err(NotifyError::Resource(_)) => assert!(std::str::from_utf8(plaintext).is_err()),
        Err(NotifyError::TooLarge(_)) => {}
        Err(e) => panic!("a genuine resource failed: {e}"),
    }
}

/// The bytes as the PEM of a downloaded platform certificate.
fn certificate(plaintext: &[u8]) {
    let resource = encrypt(plaintext);
    let certs = serde_json::json!({"data": [{
        "serial_no": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        "effective_time": "2020-01-01T00:00:00+08:00",
        "expire_time": "2030-01-01T00:00:00+08:00",
        "encrypt_certificate": resource,
    }]});
    let _ = decrypt_certificates(certs.to_string().as_bytes(), APIV3_KEY);
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    // First byte: what the rest is encrypted as (one path per input: the cipher is the
    // costly part of a run).
    let Some((&selector, plaintext)) = data.split_first() else {
        return;
    };
    match selector % 8 {
        0 => wrapped("TRANSACTION.SUCCESS", plaintext),
        1 => wrapped("REFUND.SUCCESS", plaintext),
        2 => wrapped("REFUND.ABNORMAL", plaintext),
        3 => wrapped("PAYSCORE.USER_CONFIRM", plaintext),
        4 | 5 => certificate(plaintext),
        _ => {}
    }
});
