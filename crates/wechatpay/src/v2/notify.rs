//! APIv2 notifications: the signed payment notify, the encrypted refund notify, and the replies.

use paybridge_core::Fen;
use paybridge_crypto::{
    aes_ecb_pkcs7_decrypt, aes_ecb_pkcs7_encrypt, b64_decode, b64_encode, md5_hex,
};

use super::error::V2Error;
use super::sign::{refuse_ambiguous, verify_fields};
use super::xml::{parse_xml, write_xml, XmlDoc};
use super::{opt, parse_fen, parse_opt_fen};

/// The exact success reply WeChat Pay expects.
pub const REPLY_SUCCESS: &str =
    "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>";

/// A failure reply: WeChat Pay retries the notification later.
pub fn reply_fail(message: &str) -> String {
    write_xml([("return_code", "FAIL"), ("return_msg", message)])
}

/// A verified payment notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayNotification {
    pub appid: String,
    pub mch_id: String,
    pub sub_appid: Option<String>,
    pub sub_mch_id: Option<String>,
    /// `SUCCESS`, or `FAIL` with `err_code`.
    pub result_code: String,
    pub err_code: Option<String>,
    pub openid: Option<String>,
    pub trade_type: Option<String>,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub total_fee: Fen,
    pub cash_fee: Option<Fen>,
    pub fee_type: Option<String>,
    pub bank_type: Option<String>,
    pub attach: Option<String>,
    /// `yyyyMMddHHmmss`, Beijing time.
    pub time_end: Option<String>,
    /// Every received field, unknown ones included.
    pub doc: XmlDoc,
}

/// Parses and verifies a payment notification body (`return_code` must be SUCCESS; the sign
/// covers every field).
pub fn parse_pay_notify(body: &[u8], api_key: &str) -> Result<PayNotification, V2Error> {
    let doc = parse_xml(body)?;
    check_return_code(&doc)?;
    refuse_ambiguous(&doc.fields)?;
    verify_fields(&doc.fields, api_key)?;
    pay_notification_from_doc(doc)
}

fn check_return_code(doc: &XmlDoc) -> Result<(), V2Error> {
    match doc.get("return_code") {
        Some("SUCCESS") => Ok(()),
        _ => Err(V2Error::Return {
            message: doc
                .get("return_msg")
                .unwrap_or("return_code is not SUCCESS")
                .to_string(),
        }),
    }
}

/// The typed view of an already verified payment document (also used for orderquery-like replies).
pub fn pay_notification_from_doc(doc: XmlDoc) -> Result<PayNotification, V2Error> {
    Ok(PayNotification {
        appid: doc.require("appid")?.to_string(),
        mch_id: doc.require("mch_id")?.to_string(),
        sub_appid: opt(&doc, "sub_appid"),
        sub_mch_id: opt(&doc, "sub_mch_id"),
        result_code: doc.require("result_code")?.to_string(),
        err_code: opt(&doc, "err_code"),
        openid: opt(&doc, "openid"),
        trade_type: opt(&doc, "trade_type"),
        out_trade_no: doc.require("out_trade_no")?.to_string(),
        transaction_id: opt(&doc, "transaction_id"),
        total_fee: parse_fen(&doc, "total_fee")?,
        cash_fee: parse_opt_fen(&doc, "cash_fee")?,
        fee_type: opt(&doc, "fee_type"),
        bank_type: opt(&doc, "bank_type"),
        attach: opt(&doc, "attach"),
        time_end: opt(&doc, "time_end"),
        doc,
    })
}

/// The `req_info` AES key: the lowercase hex MD5 of the API key, as 32 ASCII bytes.
pub fn req_info_key(api_key: &str) -> String {
    md5_hex(api_key.as_bytes())
}

/// base64 → AES-256-ECB (key = [`req_info_key`]) → PKCS#7 → UTF-8 `<root>` XML.
pub fn decrypt_req_info(req_info: &str, api_key: &str) -> Result<String, V2Error> {
    decrypt_req_info_with_aes_key(req_info, req_info_key(api_key).as_bytes())
}

/// As [`decrypt_req_info`], with the derived AES key given directly.
pub fn decrypt_req_info_with_aes_key(req_info: &str, aes_key: &[u8]) -> Result<String, V2Error> {
    let ct = b64_decode(req_info).map_err(|e| V2Error::Crypto(e.to_string()))?;
    let pt = aes_ecb_pkcs7_decrypt(aes_key, &ct).map_err(|e| V2Error::Crypto(e.to_string()))?;
    String::from_utf8(pt).map_err(|_| V2Error::Crypto("req_info plaintext is not UTF-8".into()))
}

/// The provider side of [`decrypt_req_info`].
pub fn encrypt_req_info(plaintext_xml: &str, api_key: &str) -> Result<String, V2Error> {
    let ct = aes_ecb_pkcs7_encrypt(req_info_key(api_key).as_bytes(), plaintext_xml.as_bytes())
        .map_err(|e| V2Error::Crypto(e.to_string()))?;
    Ok(b64_encode(ct))
}

/// A decrypted refund notification. It carries no `sign`: decrypting `req_info` with the API
/// key is the proof of origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundNotification {
    pub appid: String,
    pub mch_id: String,
    pub sub_mch_id: Option<String>,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub out_refund_no: String,
    pub refund_id: Option<String>,
    pub total_fee: Fen,
    pub refund_fee: Fen,
    pub settlement_refund_fee: Option<Fen>,
    /// SUCCESS, CHANGE (abnormal) or REFUNDCLOSE.
    pub refund_status: String,
    pub success_time: Option<String>,
    pub refund_recv_account: Option<String>,
    /// The decrypted `<root>` fields.
    pub info: XmlDoc,
}

pub fn parse_refund_notify(body: &[u8], api_key: &str) -> Result<RefundNotification, V2Error> {
    let outer = parse_xml(body)?;
    check_return_code(&outer)?;
    let plaintext = decrypt_req_info(outer.require("req_info")?, api_key)?;
    let info = parse_xml(plaintext.as_bytes())?;
    Ok(RefundNotification {
        appid: outer.require("appid")?.to_string(),
        mch_id: outer.require("mch_id")?.to_string(),
        sub_mch_id: opt(&outer, "sub_mch_id"),
        out_trade_no: info.require("out_trade_no")?.to_string(),
        transaction_id: opt(&info, "transaction_id"),
        out_refund_no: info.require("out_refund_no")?.to_string(),
        refund_id: opt(&info, "refund_id"),
        total_fee: parse_fen(&info, "total_fee")?,
        refund_fee: parse_fen(&info, "refund_fee")?,
        settlement_refund_fee: parse_opt_fen(&info, "settlement_refund_fee")?,
        refund_status: info.require("refund_status")?.to_string(),
        success_time: opt(&info, "success_time"),
        // WeChat spells it `refund_recv_accout`.
        refund_recv_account: opt(&info, "refund_recv_accout"),
        info,
    })
}

/// Whether a notify body is a refund notification (it carries `req_info`) rather than a payment.
pub fn is_refund_notify(doc: &XmlDoc) -> bool {
    doc.get("req_info").is_some()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::v2::sign::{sign, SignError, SignType};

    #[test]
    fn pay_notify_verifies_and_types() {
        let key = "192006250b4c09247ec02edce69f6a2d";
        let mut fields = vec![
            ("appid", "wx1"),
            ("mch_id", "100"),
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("out_trade_no", "o1"),
            ("total_fee", "101"),
            ("transaction_id", "t1"),
            ("new_field", "x"),
        ];
        let s = sign(fields.iter().copied(), key, SignType::Md5);
        fields.push(("sign", &s));
        let body = write_xml(fields.iter().copied());
        let n = parse_pay_notify(body.as_bytes(), key).unwrap();
        assert_eq!(n.total_fee, Fen(101));
        assert_eq!(n.doc.get("new_field"), Some("x"));
        assert!(matches!(
            parse_pay_notify(body.as_bytes(), "other"),
            Err(V2Error::Sign(_))
        ));
        let fail = reply_fail("bad");
        assert!(matches!(
            parse_pay_notify(fail.as_bytes(), key),
            Err(V2Error::Return { .. })
        ));
    }

    #[test]
    fn a_re_split_attach_never_verifies() {
        let key = "192006250b4c09247ec02edce69f6a2d";
        let smuggled = "x&mch_id=100&out_trade_no=VICTIM1&result_code=SUCCESS\
                        &return_code=SUCCESS&total_fee=88800&zz=w";
        let genuine = [
            ("appid", "wx1"),
            ("attach", smuggled),
            ("mch_id", "100"),
            ("out_trade_no", "ATTACK1"),
            ("result_code", "SUCCESS"),
            ("return_code", "SUCCESS"),
            ("total_fee", "1"),
        ];
        let s = sign(genuine.iter().copied(), key, SignType::Md5);
        // The genuine notification itself carries a separator in `attach`: refused.
        let mut fields = genuine.to_vec();
        fields.push(("sign", &s));
        let body = write_xml(fields.iter().copied());
        assert!(matches!(
            parse_pay_notify(body.as_bytes(), key),
            Err(V2Error::Sign(SignError::Ambiguous(f))) if f == "attach"
        ));
        // Re-split so that stringA is byte-identical but names the victim: refused too.
        let forged = [
            ("appid", "wx1"),
            ("attach", "x"),
            ("mch_id", "100"),
            ("out_trade_no", "VICTIM1"),
            ("result_code", "SUCCESS"),
            ("return_code", "SUCCESS"),
            ("total_fee", "88800"),
            (
                "zz",
                "w&mch_id=100&out_trade_no=ATTACK1&result_code=SUCCESS&return_code=SUCCESS&total_fee=1",
            ),
        ];
        assert_eq!(
            crate::v2::sign::string_a(forged.iter().copied()),
            crate::v2::sign::string_a(genuine.iter().copied())
        );
        let mut fields = forged.to_vec();
        fields.push(("sign", &s));
        let body = write_xml(fields.iter().copied());
        assert!(matches!(
            parse_pay_notify(body.as_bytes(), key),
            Err(V2Error::Sign(SignError::Ambiguous(f))) if f == "zz"
        ));
    }

    #[test]
    fn refund_notify_roundtrip() {
        let key = "ziR0QKsTUfMOuochC9RfCdmfHECorQAP";
        let inner = crate::v2::xml::write_xml_root(
            "root",
            [
                ("out_trade_no", "o1"),
                ("out_refund_no", "r1"),
                ("total_fee", "6"),
                ("refund_fee", "6"),
                ("refund_status", "SUCCESS"),
            ],
        );
        let req_info = encrypt_req_info(&inner, key).unwrap();
        let body = write_xml([
            ("return_code", "SUCCESS"),
            ("appid", "wx"),
            ("mch_id", "1"),
            ("req_info", req_info.as_str()),
        ]);
        let n = parse_refund_notify(body.as_bytes(), key).unwrap();
        assert_eq!(
            (n.refund_fee, n.refund_status.as_str()),
            (Fen(6), "SUCCESS")
        );
        assert!(parse_refund_notify(body.as_bytes(), "wrong").is_err());
    }
}
