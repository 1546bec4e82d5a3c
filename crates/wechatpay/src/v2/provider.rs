//! The provider side of APIv2, for the sandbox: verify merchants' requests, sign replies and
//! notifications, encrypt refund notifications.

use super::error::V2Error;
use super::notify::encrypt_req_info;
use super::sign::{sign, verify_fields, SignType};
use super::xml::{parse_xml, write_xml, write_xml_root, XmlDoc};

/// Parses a merchant request and verifies its signature (algorithm from `sign_type`, default
/// MD5). Returns the document and the algorithm, so the reply can be signed the same way.
pub fn verify_request(body: &[u8], api_key: &str) -> Result<(XmlDoc, SignType), V2Error> {
    let doc = parse_xml(body)?;
    let t = verify_fields(&doc.fields, api_key)?;
    Ok((doc, t))
}

/// Appends `sign` (and nothing else) to `fields` and writes the XML: replies and payment
/// notifications. `fields` should include `return_code`, `nonce_str` etc. as the reply needs.
pub fn signed_xml(fields: &[(&str, &str)], api_key: &str, sign_type: SignType) -> String {
    let s = sign(fields.iter().copied(), api_key, sign_type);
    write_xml(
        fields
            .iter()
            .copied()
            .chain(std::iter::once(("sign", s.as_str()))),
    )
}

/// `return_code=FAIL` reply (unsigned, as WeChat Pay sends it).
pub fn fail_xml(message: &str) -> String {
    write_xml([("return_code", "FAIL"), ("return_msg", message)])
}

/// A refund notification body: the `<root>` info fields encrypted into `req_info`.
pub fn refund_notify_xml(
    appid: &str,
    mch_id: &str,
    nonce_str: &str,
    info: &[(&str, &str)],
    api_key: &str,
) -> Result<String, V2Error> {
    let plaintext = write_xml_root("root", info.iter().copied());
    let req_info = encrypt_req_info(&plaintext, api_key)?;
    Ok(write_xml([
        ("return_code", "SUCCESS"),
        ("appid", appid),
        ("mch_id", mch_id),
        ("nonce_str", nonce_str),
        ("req_info", req_info.as_str()),
    ]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn signed_reply_verifies_as_request() {
        let xml = signed_xml(
            &[("return_code", "SUCCESS"), ("sign_type", "HMAC-SHA256")],
            "k",
            SignType::HmacSha256,
        );
        let (doc, t) = verify_request(xml.as_bytes(), "k").unwrap();
        assert_eq!(t, SignType::HmacSha256);
        assert_eq!(doc.get("return_code"), Some("SUCCESS"));
        assert!(verify_request(xml.as_bytes(), "x").is_err());
        let body = refund_notify_xml("wx", "1", "n", &[("out_refund_no", "r")], "k").unwrap();
        let info = crate::v2::notify::decrypt_req_info(
            parse_xml(body.as_bytes()).unwrap().get("req_info").unwrap(),
            "k",
        )
        .unwrap();
        assert_eq!(
            info,
            "<root><out_refund_no><![CDATA[r]]></out_refund_no></root>"
        );
    }
}
