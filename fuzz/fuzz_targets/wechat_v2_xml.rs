//! WeChat Pay APIv2 XML: the flat-document reader (DOCTYPE refused, duplicates refused), its
//! round trip through the writer, and everything read from a document: payment and refund
//! notifications, replies, bill download answers. Signing is cheap (MD5/HMAC), so each
//! document is also signed with the test key to reach the code behind verification, and
//! wrapped as an encrypted refund `req_info`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use paybridge_fuzz::V2_API_KEY;
use paybridge_wechatpay::v2::api::{
    check_reply, parse_download_bill, parse_order_query, parse_refund, parse_refund_query,
    parse_reverse, parse_unified_order,
};
use paybridge_wechatpay::v2::notify::{
    encrypt_req_info, is_refund_notify, parse_pay_notify, parse_refund_notify,
    pay_notification_from_doc,
};
use paybridge_wechatpay::v2::provider::{signed_xml, verify_request};
use paybridge_wechatpay::v2::xml::{parse_xml, parse_xml_limited, write_xml, write_xml_root};
use paybridge_wechatpay::v2::{SignType, XmlDoc};

fn read_doc(doc: &XmlDoc) {
    let _ = pay_notification_from_doc(doc.clone());
    let _ = parse_unified_order(doc.clone());
    let _ = parse_order_query(doc.clone());
    let _ = parse_refund(doc.clone());
    let _ = parse_reverse(doc);
    let _ = is_refund_notify(doc);
    if let Some(no) = doc.get("out_refund_no_0") {
        let _ = parse_refund_query(doc, no);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_pay_notify(data, V2_API_KEY);
    let _ = parse_refund_notify(data, V2_API_KEY);
    let _ = check_reply(data, V2_API_KEY);
    let _ = parse_download_bill(data);
    let Ok(doc) = parse_xml(data) else {
        return;
    };
    assert!(!doc.root.is_empty());
    read_doc(&doc);

    // Round trip: what was read, written again (all values in CDATA), reads the same.
    let fields = || doc.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let written = write_xml_root(&doc.root, fields());
    let again = parse_xml_limited(written.as_bytes(), usize::MAX)
        .unwrap_or_else(|e| panic!("re-written document does not parse: {e}\n{written}"));
    assert_eq!(again, doc, "{written}");

    // One costlier path per input (hashing and the cipher dominate a run), chosen by length.
    match data.len() % 3 {
        0 => signed(&doc),
        1 => refund_info(data, &doc),
        _ => {}
    }
});

/// Signed with our key, the same fields get past verification.
fn signed(doc: &XmlDoc) {
    let fields = || doc.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let unsigned: Vec<(&str, &str)> = fields().filter(|(k, _)| *k != "sign").collect();
    for sign_type in [SignType::Md5, SignType::HmacSha256] {
        let mut with_type = unsigned.clone();
        if sign_type == SignType::HmacSha256 && !unsigned.iter().any(|(k, _)| *k == "sign_type") {
            with_type.push(("sign_type", "HMAC-SHA256"));
        }
        let body = signed_xml(&with_type, V2_API_KEY, sign_type);
        let _ = verify_request(body.as_bytes(), V2_API_KEY);
        let _ = parse_pay_notify(body.as_bytes(), V2_API_KEY);
        let _ = check_reply(body.as_bytes(), V2_API_KEY);
    }
}

/// As the encrypted `req_info` of a refund notification.
fn refund_info(data: &[u8], doc: &XmlDoc) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(req_info) = encrypt_req_info(text, V2_API_KEY) {
            let outer = write_xml([
                ("return_code", "SUCCESS"),
                ("appid", "wx0000000000000000"),
                ("mch_id", "1900000000"),
                ("req_info", req_info.as_str()),
            ]);
            let n = parse_refund_notify(outer.as_bytes(), V2_API_KEY);
            if let Ok(n) = n {
                assert_eq!(&n.info, doc);
            }
        }
    }
}
