//! The APIv2 operations as pure request builders and response parsers.
//!
//! Every request is a flat field list signed with the API key; every reply is checked in the
//! same order: `return_code` (transport layer), the signature (present only on SUCCESS), then
//! `result_code`/`err_code` (business layer).

use paybridge_core::Fen;

use super::error::{BusinessError, V2Error};
use super::sign::{sign, verify_fields, SignType};
use super::xml::{parse_xml, write_xml, XmlDoc};
use super::{opt, parse_fen, parse_opt_fen};

/// The calling merchant; `sub_*` set in service-provider mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Merchant {
    pub appid: String,
    pub mch_id: String,
    pub sub_appid: Option<String>,
    pub sub_mch_id: Option<String>,
}

/// A signed request ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2Request {
    pub path: &'static str,
    pub body: String,
    /// Needs the merchant's client certificate (`/secapi/...`).
    pub secure: bool,
    pub idempotent: bool,
}

/// Builds and signs: merchant identity + `nonce_str` + `sign_type` (when not MD5) + `fields`,
/// empty values dropped (several SDKs sign `k=` for empty fields; never send any).
pub fn build(
    merchant: &V2Merchant,
    path: &'static str,
    fields: &[(&str, String)],
    api_key: &str,
    sign_type: SignType,
    nonce: &str,
) -> V2Request {
    let mut all: Vec<(&str, &str)> = vec![
        ("appid", &merchant.appid),
        ("mch_id", &merchant.mch_id),
        ("nonce_str", nonce),
    ];
    if let Some(a) = &merchant.sub_appid {
        all.push(("sub_appid", a));
    }
    if let Some(m) = &merchant.sub_mch_id {
        all.push(("sub_mch_id", m));
    }
    if sign_type != SignType::Md5 {
        all.push(("sign_type", sign_type.as_str()));
    }
    all.extend(fields.iter().map(|(k, v)| (*k, v.as_str())));
    all.retain(|(_, v)| !v.is_empty());
    let s = sign(all.iter().copied(), api_key, sign_type);
    all.push(("sign", &s));
    V2Request {
        path,
        body: write_xml(all.iter().copied()),
        secure: path.starts_with("/secapi/"),
        idempotent: matches!(
            path,
            "/pay/orderquery"
                | "/pay/refundquery"
                | "/pay/downloadbill"
                | "/pay/closeorder"
                | "/secapi/pay/refund"
                | "/secapi/pay/reverse"
        ),
    }
}

/// Checks a reply: `return_code`, signature (all fields, algorithm as detected), `result_code`.
/// A FAIL `result_code` becomes [`V2Error::Business`] with its retry advice.
pub fn check_reply(body: &[u8], api_key: &str) -> Result<XmlDoc, V2Error> {
    let doc = parse_xml(body)?;
    if doc.get("return_code") != Some("SUCCESS") {
        return Err(V2Error::Return {
            message: doc.get("return_msg").unwrap_or("no return_msg").to_string(),
        });
    }
    verify_fields(&doc.fields, api_key)?;
    if doc.get("result_code") != Some("SUCCESS") {
        return Err(BusinessError {
            code: doc.get("err_code").unwrap_or("UNKNOWN").to_string(),
            description: doc.get("err_code_des").unwrap_or("").to_string(),
        }
        .into());
    }
    Ok(doc)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeType {
    Jsapi {
        openid: String,
    },
    Native {
        product_id: String,
    },
    App,
    /// H5; `scene_info` is the JSON WeChat asks for (`{"h5_info":{"type":"Wap",...}}`).
    Mweb {
        scene_info: String,
    },
}

impl TradeType {
    pub fn as_str(&self) -> &'static str {
        match self {
            TradeType::Jsapi { .. } => "JSAPI",
            TradeType::Native { .. } => "NATIVE",
            TradeType::App => "APP",
            TradeType::Mweb { .. } => "MWEB",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrder {
    pub trade_type: TradeType,
    pub body: String,
    pub out_trade_no: String,
    pub total_fee: Fen,
    pub spbill_create_ip: String,
    pub notify_url: String,
    /// Unix seconds.
    pub time_expire: Option<i64>,
    pub attach: Option<String>,
}

pub fn unified_order_fields(
    o: &UnifiedOrder,
    sub_appid: bool,
) -> Result<Vec<(&'static str, String)>, V2Error> {
    if o.out_trade_no.is_empty() || o.out_trade_no.len() > 32 {
        return Err(V2Error::Invalid {
            field: "out_trade_no",
            reason: "must be 1..=32 characters".into(),
        });
    }
    let mut f = vec![
        ("body", o.body.clone()),
        ("out_trade_no", o.out_trade_no.clone()),
        ("total_fee", o.total_fee.0.to_string()),
        ("spbill_create_ip", o.spbill_create_ip.clone()),
        ("notify_url", o.notify_url.clone()),
        ("trade_type", o.trade_type.as_str().to_string()),
        ("fee_type", "CNY".to_string()),
    ];
    if let Some(t) = o.time_expire {
        f.push(("time_expire", crate::time::v2_time(t)));
    }
    if let Some(a) = &o.attach {
        f.push(("attach", a.clone()));
    }
    match &o.trade_type {
        TradeType::Jsapi { openid } => f.push((
            if sub_appid { "sub_openid" } else { "openid" },
            openid.clone(),
        )),
        TradeType::Native { product_id } => f.push(("product_id", product_id.clone())),
        TradeType::Mweb { scene_info } => f.push(("scene_info", scene_info.clone())),
        TradeType::App => {}
    }
    Ok(f)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnifiedOrderResponse {
    pub prepay_id: String,
    pub code_url: Option<String>,
    pub mweb_url: Option<String>,
    pub doc: XmlDoc,
}

pub fn parse_unified_order(doc: XmlDoc) -> Result<UnifiedOrderResponse, V2Error> {
    Ok(UnifiedOrderResponse {
        prepay_id: doc.require("prepay_id")?.to_string(),
        code_url: opt(&doc, "code_url"),
        mweb_url: opt(&doc, "mweb_url"),
        doc,
    })
}

/// An order by our number or WeChat's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderId {
    OutTradeNo(String),
    TransactionId(String),
}

impl OrderId {
    pub fn field(&self) -> (&'static str, String) {
        match self {
            OrderId::OutTradeNo(n) => ("out_trade_no", n.clone()),
            OrderId::TransactionId(t) => ("transaction_id", t.clone()),
        }
    }
}

/// `orderquery` (also the shape of a successful `micropay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderQueryResponse {
    /// SUCCESS, REFUND, NOTPAY, CLOSED, REVOKED, USERPAYING, PAYERROR (micropay success has none
    /// and is reported as SUCCESS).
    pub trade_state: String,
    pub out_trade_no: String,
    pub transaction_id: Option<String>,
    pub total_fee: Option<Fen>,
    pub cash_fee: Option<Fen>,
    pub openid: Option<String>,
    pub time_end: Option<String>,
    pub trade_state_desc: Option<String>,
    pub doc: XmlDoc,
}

pub fn parse_order_query(doc: XmlDoc) -> Result<OrderQueryResponse, V2Error> {
    Ok(OrderQueryResponse {
        trade_state: doc
            .get("trade_state")
            .filter(|s| !s.is_empty())
            .unwrap_or("SUCCESS")
            .to_string(),
        out_trade_no: doc.require("out_trade_no")?.to_string(),
        transaction_id: opt(&doc, "transaction_id"),
        total_fee: parse_opt_fen(&doc, "total_fee")?,
        cash_fee: parse_opt_fen(&doc, "cash_fee")?,
        openid: opt(&doc, "openid"),
        time_end: opt(&doc, "time_end"),
        trade_state_desc: opt(&doc, "trade_state_desc"),
        doc,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Micropay {
    pub auth_code: String,
    pub body: String,
    pub out_trade_no: String,
    pub total_fee: Fen,
    pub spbill_create_ip: String,
    pub attach: Option<String>,
}

pub fn micropay_fields(m: &Micropay) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("auth_code", m.auth_code.clone()),
        ("body", m.body.clone()),
        ("out_trade_no", m.out_trade_no.clone()),
        ("total_fee", m.total_fee.0.to_string()),
        ("spbill_create_ip", m.spbill_create_ip.clone()),
        ("fee_type", "CNY".to_string()),
    ];
    if let Some(a) = &m.attach {
        f.push(("attach", a.clone()));
    }
    f
}

/// `reverse`: whether WeChat asks to call it again (`recall=Y`).
pub fn parse_reverse(doc: &XmlDoc) -> bool {
    doc.get("recall") == Some("Y")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub order: OrderId,
    pub out_refund_no: String,
    pub total_fee: Fen,
    pub refund_fee: Fen,
    pub refund_desc: Option<String>,
    pub notify_url: Option<String>,
}

pub fn refund_fields(r: &RefundRequest) -> Vec<(&'static str, String)> {
    let mut f = vec![
        r.order.field(),
        ("out_refund_no", r.out_refund_no.clone()),
        ("total_fee", r.total_fee.0.to_string()),
        ("refund_fee", r.refund_fee.0.to_string()),
        ("refund_fee_type", "CNY".to_string()),
    ];
    if let Some(d) = &r.refund_desc {
        f.push(("refund_desc", d.clone()));
    }
    if let Some(u) = &r.notify_url {
        f.push(("notify_url", u.clone()));
    }
    f
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundResponse {
    pub out_refund_no: String,
    pub refund_id: Option<String>,
    pub refund_fee: Fen,
    pub doc: XmlDoc,
}

pub fn parse_refund(doc: XmlDoc) -> Result<RefundResponse, V2Error> {
    Ok(RefundResponse {
        out_refund_no: doc.require("out_refund_no")?.to_string(),
        refund_id: opt(&doc, "refund_id"),
        refund_fee: parse_fen(&doc, "refund_fee")?,
        doc,
    })
}

/// One refund of a `refundquery` reply (fields suffixed `_$n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundQueryItem {
    pub out_refund_no: String,
    pub refund_id: Option<String>,
    pub refund_fee: Fen,
    /// SUCCESS, REFUNDCLOSE, PROCESSING, CHANGE
    pub refund_status: String,
    pub refund_success_time: Option<String>,
}

pub fn parse_refund_query(doc: &XmlDoc, out_refund_no: &str) -> Result<RefundQueryItem, V2Error> {
    let count: usize =
        doc.get("refund_count")
            .and_then(|c| c.parse().ok())
            .ok_or(V2Error::Invalid {
                field: "refund_count",
                reason: "missing or not a number".into(),
            })?;
    for n in 0..count.min(50) {
        if doc.get(&format!("out_refund_no_{n}")) != Some(out_refund_no) {
            continue;
        }
        let g = |k: &str| {
            doc.get(&format!("{k}_{n}"))
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let fee = g("refund_fee").ok_or(V2Error::Invalid {
            field: "refund_fee_$n",
            reason: "missing".into(),
        })?;
        return Ok(RefundQueryItem {
            out_refund_no: out_refund_no.to_string(),
            refund_id: g("refund_id"),
            refund_fee: super::parse_fen_str(&fee, "refund_fee_$n")?,
            refund_status: g("refund_status").ok_or(V2Error::Invalid {
                field: "refund_status_$n",
                reason: "missing".into(),
            })?,
            refund_success_time: g("refund_success_time"),
        });
    }
    Err(BusinessError {
        code: "REFUNDNOTEXIST".into(),
        description: format!("{out_refund_no} not in reply"),
    }
    .into())
}

/// `downloadbill`: `bill_date` is `yyyyMMdd`; `bill_type` ALL, SUCCESS, REFUND.
pub fn download_bill_fields(bill_date: &str, bill_type: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bill_date", bill_date.to_string()),
        ("bill_type", bill_type.to_string()),
    ]
}

/// A bill download answers the text table, or an (unsigned) XML error.
pub fn parse_download_bill(body: &[u8]) -> Result<Vec<u8>, V2Error> {
    if body.starts_with(b"<xml>") {
        let doc = parse_xml(body)?;
        return Err(match doc.get("error_code").or(doc.get("err_code")) {
            Some(code) => BusinessError {
                code: code.to_string(),
                description: doc.get("return_msg").unwrap_or("").to_string(),
            }
            .into(),
            None => V2Error::Return {
                message: doc
                    .get("return_msg")
                    .unwrap_or("bill download failed")
                    .to_string(),
            },
        });
    }
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::v2::provider::signed_xml;

    fn merchant() -> V2Merchant {
        V2Merchant {
            appid: "wx1".into(),
            mch_id: "100".into(),
            sub_appid: None,
            sub_mch_id: Some("200".into()),
        }
    }

    #[test]
    fn request_wire_form_is_signed_and_drops_empty() {
        let o = UnifiedOrder {
            trade_type: TradeType::Native {
                product_id: "p".into(),
            },
            body: "b".into(),
            out_trade_no: "o1".into(),
            total_fee: Fen(101),
            spbill_create_ip: "1.1.1.1".into(),
            notify_url: "https://n".into(),
            time_expire: Some(1_624_523_846),
            attach: Some(String::new()),
        };
        let req = build(
            &merchant(),
            "/pay/unifiedorder",
            &unified_order_fields(&o, false).unwrap(),
            "k",
            SignType::HmacSha256,
            "n1",
        );
        let (doc, t) = crate::v2::provider::verify_request(req.body.as_bytes(), "k").unwrap();
        assert_eq!(t, SignType::HmacSha256);
        assert_eq!(doc.get("total_fee"), Some("101"));
        assert_eq!(doc.get("sub_mch_id"), Some("200"));
        assert_eq!(doc.get("time_expire"), Some("20210624163726"));
        assert_eq!(doc.get("attach"), None);
        assert!(!req.secure && !req.idempotent);
        let r = build(
            &merchant(),
            "/secapi/pay/refund",
            &[],
            "k",
            SignType::Md5,
            "n",
        );
        assert!(r.secure && r.idempotent);
    }

    #[test]
    fn reply_layers_map_to_errors() {
        let fail = crate::v2::provider::fail_xml("签名错误");
        assert!(matches!(
            check_reply(fail.as_bytes(), "k"),
            Err(V2Error::Return { .. })
        ));
        let unsigned = write_xml([("return_code", "SUCCESS"), ("result_code", "SUCCESS")]);
        assert!(matches!(
            check_reply(unsigned.as_bytes(), "k"),
            Err(V2Error::Sign(_))
        ));
        let paying = signed_xml(
            &[
                ("return_code", "SUCCESS"),
                ("result_code", "FAIL"),
                ("err_code", "USERPAYING"),
            ],
            "k",
            SignType::Md5,
        );
        let e = check_reply(paying.as_bytes(), "k").unwrap_err();
        assert!(e.retryable());
        let paid = signed_xml(
            &[
                ("return_code", "SUCCESS"),
                ("result_code", "FAIL"),
                ("err_code", "ORDERPAID"),
            ],
            "k",
            SignType::Md5,
        );
        let e = check_reply(paid.as_bytes(), "k").unwrap_err();
        assert!(!e.retryable() && !e.outcome_unknown());
        let ok = signed_xml(
            &[
                ("return_code", "SUCCESS"),
                ("result_code", "SUCCESS"),
                ("prepay_id", "wx1"),
                ("code_url", "weixin://q"),
            ],
            "k",
            SignType::Md5,
        );
        let r = parse_unified_order(check_reply(ok.as_bytes(), "k").unwrap()).unwrap();
        assert_eq!(r.code_url.as_deref(), Some("weixin://q"));
    }

    #[test]
    fn refund_query_and_bill_replies() {
        let doc = parse_xml(
            write_xml([
                ("refund_count", "2"),
                ("out_refund_no_0", "a"),
                ("refund_fee_0", "1"),
                ("refund_status_0", "SUCCESS"),
                ("out_refund_no_1", "b"),
                ("refund_fee_1", "2"),
                ("refund_status_1", "PROCESSING"),
            ])
            .as_bytes(),
        )
        .unwrap();
        let item = parse_refund_query(&doc, "b").unwrap();
        assert_eq!(
            (item.refund_fee, item.refund_status.as_str()),
            (Fen(2), "PROCESSING")
        );
        assert!(parse_refund_query(&doc, "c").is_err());
        let q = parse_order_query(
            parse_xml(
                write_xml([
                    ("out_trade_no", "o"),
                    ("trade_state", "USERPAYING"),
                    ("total_fee", "5"),
                ])
                .as_bytes(),
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (q.trade_state.as_str(), q.total_fee),
            ("USERPAYING", Some(Fen(5)))
        );
        assert!(parse_download_bill(b"<xml><return_code>FAIL</return_code><return_msg>No Bill Exist</return_msg><error_code>20002</error_code></xml>").is_err());
        assert_eq!(parse_download_bill(b"a,b\r\n").unwrap(), b"a,b\r\n");
    }
}
