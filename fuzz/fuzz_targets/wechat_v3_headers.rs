//! WeChat Pay APIv3 headers: the `Authorization` header a merchant request carries (parsed by
//! the provider side, fields in any order), with its round trip through the writer; and the
//! `Wechatpay-*` signature headers of responses and notifications, freshness and verification.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use paybridge_fuzz::NOW;
use paybridge_wechatpay::v3::provider::verify_request;
use paybridge_wechatpay::v3::sign::{authorization_header, parse_authorization};
use paybridge_wechatpay::v3::verify::check_fresh;
use paybridge_wechatpay::v3::{SignatureHeaders, Verifier};

const SERIAL: &str = "PUB_KEY_ID_0000000000000000000000000000";

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        let mut v = Verifier::new();
        v.add_public_key(SERIAL, paybridge_fuzz::rsa().1.clone());
        v
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The whole input as an Authorization value.
    if let Ok(p) = parse_authorization(text) {
        let written = authorization_header(
            &p.schema,
            &p.mchid,
            &p.nonce_str,
            &p.timestamp,
            &p.serial_no,
            &p.signature,
        );
        assert_eq!(parse_authorization(&written).as_ref(), Ok(&p), "{written}");
    }
    let key = &paybridge_fuzz::rsa().1;
    if verify_request(
        text,
        "POST",
        "/v3/pay/transactions/native",
        b"{}",
        None,
        key,
        NOW,
    )
    .is_ok()
    {
        panic!("a request nobody signed verified");
    }

    // Each line `Name: value` as a response header; the rest after a blank line is the body.
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let headers: Vec<(String, String)> = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Ok(h) = SignatureHeaders::from_pairs(&headers) {
        assert!(!h.timestamp.is_empty() && !h.serial.is_empty());
        if let Ok(ts) = check_fresh(&h.timestamp, NOW) {
            assert!(ts.abs_diff(NOW) <= 300);
        }
        if verifier().verify(&h, body.as_bytes(), NOW).is_ok() {
            panic!("a response nobody signed verified");
        }
    }
});
