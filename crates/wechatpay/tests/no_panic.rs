//! Untrusted input never panics: arbitrary bytes and near-valid documents through every parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use paybridge_wechatpay::bill::BillReader;
use paybridge_wechatpay::v2::{notify, xml};
use paybridge_wechatpay::v3::{notify as v3notify, sign, transfer, SignatureHeaders, Verifier};
use proptest::prelude::*;

fn xmlish() -> impl Strategy<Value = String> {
    // Fragments that steer the generator into the reader's interesting paths.
    let piece = prop_oneof![
        Just("<xml>".to_string()),
        Just("</xml>".to_string()),
        Just("<a>".to_string()),
        Just("</a>".to_string()),
        Just("<![CDATA[".to_string()),
        Just("]]>".to_string()),
        Just("<!DOCTYPE x [<!ENTITY e \"v\">]>".to_string()),
        Just("&amp;".to_string()),
        Just("&e;".to_string()),
        Just("<req_info>".to_string()),
        Just("<b/>".to_string()),
        Just("<return_code>SUCCESS</return_code>".to_string()),
        Just("<sign>00</sign>".to_string()),
        "[ -~]{0,8}",
    ];
    prop::collection::vec(piece, 0..24).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn xml_reader_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512), text in xmlish()) {
        let _ = xml::parse_xml(&bytes);
        let _ = xml::parse_xml(text.as_bytes());
    }

    #[test]
    fn v2_notify_parsers_never_panic(text in xmlish(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = notify::parse_pay_notify(text.as_bytes(), "k");
        let _ = notify::parse_refund_notify(text.as_bytes(), "k");
        let _ = notify::parse_pay_notify(&bytes, "k");
        let _ = notify::decrypt_req_info(&String::from_utf8_lossy(&bytes), "k");
    }

    #[test]
    fn v3_notify_parser_never_panics(
        body in prop::collection::vec(any::<u8>(), 0..512),
        nonce in "[ -~]{0,20}",
        ciphertext in "[A-Za-z0-9+/=]{0,64}",
        ts in "[0-9a-z-]{0,12}",
        sig in "[ -~]{0,40}",
    ) {
        let headers = SignatureHeaders { timestamp: ts, nonce: nonce.clone(), signature: sig, serial: "S".into() };
        let _ = v3notify::parse_notify(&Verifier::new(), &headers, &body, b"0123456789abcdef0123456789abcdef", 0);
        let _ = v3notify::decrypt_notify(&body, b"0123456789abcdef0123456789abcdef");
        let envelope = format!(
            r#"{{"id":"1","event_type":"TRANSACTION.SUCCESS","resource":{{"algorithm":"AEAD_AES_256_GCM","ciphertext":"{ciphertext}","nonce":{},"associated_data":""}}}}"#,
            serde_json::Value::String(nonce)
        );
        let _ = v3notify::decrypt_notify(envelope.as_bytes(), b"0123456789abcdef0123456789abcdef");
    }

    #[test]
    fn transfer_bill_parsers_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        state in "[A-Z_]{0,20}",
        amount in "[-0-9.e\"]{0,24}",
    ) {
        let doc = format!(
            r#"{{"out_bill_no":"a","transfer_bill_no":"t","state":"{state}","transfer_amount":{amount},"package_info":"p"}}"#
        );
        for body in [&bytes[..], doc.as_bytes()] {
            let _ = transfer::parse_created(body);
            let _ = transfer::parse_transfer_bill(body);
            let _ = transfer::parse_cancel(body);
            let _ = transfer::parse_receipt(body);
            let _ = transfer::parse_receipt_applied(body);
        }
        if let Ok(r) = transfer::parse_receipt(doc.as_bytes()) {
            let _ = transfer::check_receipt(&r, &bytes);
        }
    }

    #[test]
    fn authorization_and_bill_parsers_never_panic(text in "[ -~]{0,120}", bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = sign::parse_authorization(&text);
        let _ = sign::parse_authorization(&format!("WECHATPAY2-SHA256-RSA2048 {text}"));
        if let Ok(reader) = BillReader::new(&bytes[..]) {
            for _ in reader {}
        }
    }
}
