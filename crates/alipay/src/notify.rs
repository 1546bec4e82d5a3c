//! Asynchronous notifications: the form is decoded exactly once in its own `charset`, verified
//! over every received field (V1 and V2 rules), then read through a typed view.

use encoding_rs::Encoding;
use paybridge_core::Fen;
use paybridge_crypto::RsaPublicKey;

use crate::sign::{
    rsa2_verify, string_to_sign, string_to_sign_keeping_empty, NOTIFY_V1_EXCLUDED, REQUEST_EXCLUDED,
};
use crate::time_fmt::AlipayTime;
use crate::AlipayError;

/// The reply Alipay expects when a notification was processed; anything else makes it retry.
pub const REPLY_SUCCESS: &str = "success";
pub const REPLY_FAILURE: &str = "failure";

/// Which string-to-sign rule a notification verified under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyRule {
    /// Trade notifications: `sign` and `sign_type` are left out.
    V1,
    /// Gateway-style notifications (service market...): only `sign` is left out.
    V2,
}

impl NotifyRule {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyRule::V1 => "v1",
            NotifyRule::V2 => "v2",
        }
    }

    fn excluded(self) -> &'static [&'static str] {
        match self {
            NotifyRule::V1 => NOTIFY_V1_EXCLUDED,
            NotifyRule::V2 => REQUEST_EXCLUDED,
        }
    }
}

/// Every field of a notification, decoded, in the order received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyForm {
    fields: Vec<(String, String)>,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` unescaping to raw bytes (`+` is a space; a malformed
/// `%` escape stays literal, as browsers and `form_urlencoded` treat it).
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while let Some(&b) = input.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = input.get(i + 1).copied().and_then(hex_val);
                let lo = input.get(i + 2).copied().and_then(hex_val);
                if let (Some(h), Some(l)) = (hi, lo) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// The `charset` parameter of a `Content-Type` value (`application/x-www-form-urlencoded;
/// charset=GBK`), quotes removed: the fallback when the form names no charset itself.
pub fn content_type_charset(content_type: &str) -> Option<&str> {
    content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"'))
}

impl NotifyForm {
    /// Decodes a form body. The text encoding is the body's own `charset` field (UTF-8 when
    /// absent); bytes invalid in that encoding are an error, never replaced.
    pub fn parse(body: &[u8]) -> Result<NotifyForm, AlipayError> {
        NotifyForm::parse_with_fallback(body, None)
    }

    /// As [`NotifyForm::parse`], with the charset of the `Content-Type` header (if any) used when
    /// the body names none.
    pub fn parse_with_fallback(
        body: &[u8],
        fallback_charset: Option<&str>,
    ) -> Result<NotifyForm, AlipayError> {
        let raw: Vec<(Vec<u8>, Vec<u8>)> = body
            .split(|b| *b == b'&')
            .filter(|seg| !seg.is_empty())
            .map(|seg| {
                let mut it = seg.splitn(2, |b| *b == b'=');
                let k = it.next().unwrap_or_default();
                let v = it.next().unwrap_or_default();
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let label = raw
            .iter()
            .find(|(k, _)| k == b"charset")
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
            .or_else(|| fallback_charset.map(|c| c.trim().to_string()));
        let encoding = match label.as_deref() {
            None | Some("") => encoding_rs::UTF_8,
            Some(l) => Encoding::for_label(l.as_bytes())
                .ok_or_else(|| AlipayError::MalformedNotify(format!("unknown charset {l:?}")))?,
        };
        let decode = |bytes: &[u8]| -> Result<String, AlipayError> {
            encoding
                .decode_without_bom_handling_and_without_replacement(bytes)
                .map(|c| c.into_owned())
                .ok_or_else(|| {
                    AlipayError::MalformedNotify(format!("bytes invalid in {}", encoding.name()))
                })
        };
        let mut fields: Vec<(String, String)> = Vec::with_capacity(raw.len());
        for (k, v) in &raw {
            let key = decode(k)?;
            if fields.iter().any(|(seen, _)| *seen == key) {
                return Err(AlipayError::MalformedNotify(format!(
                    "field {key:?} appears twice"
                )));
            }
            fields.push((key, decode(v)?));
        }
        if fields.is_empty() {
            return Err(AlipayError::MalformedNotify("empty form".into()));
        }
        Ok(NotifyForm { fields })
    }

    /// From fields already decoded (a framework's form extractor, or the vectors).
    pub fn from_pairs(fields: Vec<(String, String)>) -> NotifyForm {
        NotifyForm { fields }
    }

    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A field whose key holds `&` or `=`, or whose value holds `&`. The string-to-sign joins
    /// `k=v` with `&` and escapes nothing, so such a field lets the same signed bytes be split
    /// into other fields: a genuine notification whose subject carries
    /// `&out_trade_no=<victim>&total_amount=...` re-split to name the victim. Alipay's own fields
    /// never hold a raw `&` (merchant text must not, `passback_params` is URL-encoded), so a
    /// form with one is never verified.
    pub fn ambiguous_field(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, v)| k.contains(['&', '=']) || v.contains('&'))
            .map(|(k, _)| k.as_str())
    }

    /// The string-to-sign under `rule` with empty values dropped (the Java SDK's and gopay's
    /// form; also how we sign, since we never send empty fields).
    pub fn string_to_sign(&self, rule: NotifyRule) -> String {
        string_to_sign(self.pairs(), rule.excluded())
    }

    /// The string-to-sign under `rule` with empty values kept as `k=` (the form of the
    /// python, npm and PHP SDKs).
    pub fn string_to_sign_keeping_empty(&self, rule: NotifyRule) -> String {
        string_to_sign_keeping_empty(self.pairs(), rule.excluded())
    }

    /// The rule under which one of `keys` verifies the `sign`, trying V1 then V2.
    pub fn verify(&self, keys: &[&RsaPublicKey]) -> Option<NotifyRule> {
        self.verified_content(keys).map(|(rule, _)| rule)
    }

    /// The rule and the exact string that verified. The SDKs disagree on empty values (dropped
    /// or kept as `k=`), so a genuine notification may be signed over either string: both are
    /// tried, and an empty field carries no value, so accepting it unsigned changes nothing.
    pub fn verified_content(&self, keys: &[&RsaPublicKey]) -> Option<(NotifyRule, String)> {
        if self.ambiguous_field().is_some() {
            return None;
        }
        let sign = self.get("sign")?;
        let has_empty = self.fields.iter().any(|(_, v)| v.is_empty());
        for rule in [NotifyRule::V1, NotifyRule::V2] {
            let dropped = self.string_to_sign(rule);
            let kept = has_empty.then(|| self.string_to_sign_keeping_empty(rule));
            for content in std::iter::once(dropped).chain(kept) {
                if keys.iter().any(|k| rsa2_verify(k, &content, sign)) {
                    return Some((rule, content));
                }
            }
        }
        None
    }
}

/// `trade_status` of a trade notification or query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeStatus {
    WaitBuyerPay,
    TradeClosed,
    TradeSuccess,
    TradeFinished,
}

impl TradeStatus {
    pub fn parse(s: &str) -> Option<TradeStatus> {
        Some(match s {
            "WAIT_BUYER_PAY" => TradeStatus::WaitBuyerPay,
            "TRADE_CLOSED" => TradeStatus::TradeClosed,
            "TRADE_SUCCESS" => TradeStatus::TradeSuccess,
            "TRADE_FINISHED" => TradeStatus::TradeFinished,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TradeStatus::WaitBuyerPay => "WAIT_BUYER_PAY",
            TradeStatus::TradeClosed => "TRADE_CLOSED",
            TradeStatus::TradeSuccess => "TRADE_SUCCESS",
            TradeStatus::TradeFinished => "TRADE_FINISHED",
        }
    }
}

/// The typed view of a verified trade notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeNotify {
    pub notify_id: String,
    pub notify_time: Option<AlipayTime>,
    pub notify_type: String,
    pub app_id: String,
    pub auth_app_id: Option<String>,
    pub seller_id: Option<String>,
    pub trade_no: String,
    pub out_trade_no: String,
    /// Refund request number (`out_biz_no`) on refund notifications.
    pub out_biz_no: Option<String>,
    pub buyer_id: Option<String>,
    pub buyer_open_id: Option<String>,
    pub buyer_logon_id: Option<String>,
    pub trade_status: TradeStatus,
    pub total_amount: Fen,
    pub receipt_amount: Option<Fen>,
    pub buyer_pay_amount: Option<Fen>,
    pub invoice_amount: Option<Fen>,
    /// Total refunded so far on this trade.
    pub refund_fee: Option<Fen>,
    pub gmt_create: Option<AlipayTime>,
    pub gmt_payment: Option<AlipayTime>,
    pub gmt_refund: Option<AlipayTime>,
    pub gmt_close: Option<AlipayTime>,
    pub subject: Option<String>,
    /// JSON text, verbatim.
    pub fund_bill_list: Option<String>,
    pub passback_params: Option<String>,
}

impl TradeNotify {
    /// Reads a (verified) form. Missing ids, an unknown status or a malformed amount is an error.
    pub fn from_form(form: &NotifyForm) -> Result<TradeNotify, AlipayError> {
        let req = |k: &str| {
            form.get(k)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| AlipayError::MalformedNotify(format!("missing {k}")))
        };
        let opt = |k: &str| form.get(k).filter(|v| !v.is_empty()).map(str::to_string);
        let amount = |k: &str| -> Result<Option<Fen>, AlipayError> {
            match form.get(k).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => Fen::parse_yuan(v)
                    .map(Some)
                    .map_err(|e| AlipayError::MalformedNotify(format!("{k}: {e}"))),
            }
        };
        let time = |k: &str| -> Result<Option<AlipayTime>, AlipayError> {
            match form.get(k).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => AlipayTime::parse(v)
                    .map(Some)
                    .ok_or_else(|| AlipayError::MalformedNotify(format!("{k}: bad time {v:?}"))),
            }
        };
        let status_text = req("trade_status")?;
        let trade_status = TradeStatus::parse(&status_text).ok_or_else(|| {
            AlipayError::MalformedNotify(format!("unknown trade_status {status_text:?}"))
        })?;
        let total = req("total_amount")?;
        let total_amount = Fen::parse_trade_amount(&total)
            .map_err(|e| AlipayError::MalformedNotify(format!("total_amount: {e}")))?;
        Ok(TradeNotify {
            notify_id: req("notify_id")?,
            notify_time: time("notify_time")?,
            notify_type: opt("notify_type").unwrap_or_default(),
            app_id: req("app_id")?,
            auth_app_id: opt("auth_app_id"),
            seller_id: opt("seller_id"),
            trade_no: req("trade_no")?,
            out_trade_no: req("out_trade_no")?,
            out_biz_no: opt("out_biz_no"),
            buyer_id: opt("buyer_id"),
            buyer_open_id: opt("buyer_open_id"),
            buyer_logon_id: opt("buyer_logon_id"),
            trade_status,
            total_amount,
            receipt_amount: amount("receipt_amount")?,
            buyer_pay_amount: amount("buyer_pay_amount")?,
            invoice_amount: amount("invoice_amount")?,
            refund_fee: amount("refund_fee")?,
            gmt_create: time("gmt_create")?,
            gmt_payment: time("gmt_payment")?,
            gmt_refund: time("gmt_refund")?,
            gmt_close: time("gmt_close")?,
            subject: opt("subject"),
            fund_bill_list: opt("fund_bill_list"),
            passback_params: opt("passback_params"),
        })
    }

    /// Refund notifications carry the refund's fields on top of the trade's.
    pub fn is_refund(&self) -> bool {
        self.refund_fee.is_some_and(|f| f.as_i64() > 0) || self.gmt_refund.is_some()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_once_in_utf8_by_default() {
        let form = NotifyForm::parse(b"a=1%2B1&b=x+y&c=%25zz&d=%E4%B8%AD").unwrap();
        assert_eq!(form.get("a"), Some("1+1"));
        assert_eq!(form.get("b"), Some("x y"));
        // "%25zz" decodes once to "%zz", not further.
        assert_eq!(form.get("c"), Some("%zz"));
        assert_eq!(form.get("d"), Some("中"));
    }

    #[test]
    fn decodes_in_gbk_when_charset_says_so() {
        // "中文" in GBK is D6 D0 CE C4.
        let form = NotifyForm::parse(b"charset=gbk&subject=%D6%D0%CE%C4").unwrap();
        assert_eq!(form.get("subject"), Some("中文"));
        // The same bytes are not UTF-8: refused rather than replaced.
        assert!(NotifyForm::parse(b"charset=utf-8&subject=%D6%D0%CE%C4").is_err());
        assert!(NotifyForm::parse(b"charset=klingon&a=1").is_err());
    }

    #[test]
    fn header_charset_is_the_fallback() {
        let form = NotifyForm::parse_with_fallback(b"subject=%D6%D0%CE%C4", Some("GBK")).unwrap();
        assert_eq!(form.get("subject"), Some("中文"));
        // The body's own field wins.
        let form =
            NotifyForm::parse_with_fallback(b"charset=utf-8&s=%E4%B8%AD", Some("gbk")).unwrap();
        assert_eq!(form.get("s"), Some("中"));
    }

    #[test]
    fn a_field_that_can_re_split_the_signed_string_is_never_verified() {
        let key = paybridge_crypto::RsaPrivateKey::from_der(
            &paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap(),
        )
        .unwrap();
        let public = key.public_key().unwrap();
        let pairs = |f: &[(&str, &str)]| -> Vec<(String, String)> {
            f.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        // The genuine notification of an order whose subject smuggles fields...
        let genuine = pairs(&[
            ("app_id", "2021"),
            ("notify_type", "trade_status_sync"),
            ("out_trade_no", "A1"),
            ("subject", "x&out_trade_no=V1&total_amount=888.00&zz=w"),
            ("total_amount", "0.01"),
        ]);
        let content = string_to_sign(
            genuine.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            NOTIFY_V1_EXCLUDED,
        );
        let sign = crate::sign::rsa2_sign(&key, &content).unwrap();
        let mut fields = genuine.clone();
        fields.push(("sign".into(), sign.clone()));
        let form = NotifyForm::from_pairs(fields);
        assert_eq!(form.ambiguous_field(), Some("subject"));
        assert!(form.verify(&[&public]).is_none());
        // ...re-split so that the string-to-sign is byte-identical but names the victim.
        let mut fields = pairs(&[
            ("app_id", "2021"),
            ("notify_type", "trade_status_sync&out_trade_no=A1&subject=x"),
            ("out_trade_no", "V1"),
            ("total_amount", "888.00"),
            ("zz", "w&total_amount=0.01"),
        ]);
        fields.push(("sign".into(), sign));
        let forged = NotifyForm::from_pairs(fields);
        assert_eq!(forged.string_to_sign(NotifyRule::V1), content);
        assert_eq!(forged.get("out_trade_no"), Some("V1"));
        assert!(forged.verify(&[&public]).is_none());
    }

    #[test]
    fn duplicates_and_empty_are_errors() {
        assert!(NotifyForm::parse(b"a=1&a=2").is_err());
        assert!(NotifyForm::parse(b"").is_err());
        assert!(NotifyForm::parse(b"&&").is_err());
    }
}
