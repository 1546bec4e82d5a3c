//! The one redaction of provider traffic, shared by the gateway's provider call log, its logs
//! and the provider crates' own traces: signatures, tokens, credentials and personal data are
//! masked in JSON, XML and form bodies, URLs and headers alike, so what is safe to store is
//! exactly what is safe to log.

use crate::HttpRequest;

/// A request as it may be stored or logged: method, redacted URL, headers and body.
pub fn request(req: &HttpRequest) -> String {
    format!(
        "{} {}\n{}\n\n{}",
        req.method,
        redact_url(&req.url),
        redact_headers(&req.headers),
        redact_text(&String::from_utf8_lossy(&req.body))
    )
}

/// Field names whose values are secrets or personal data, in any of the three wire formats.
const SENSITIVE: &[&str] = &[
    "sign",
    "signature",
    "paysign",
    "app_cert_sn",
    "alipay_root_cert_sn",
    "app_auth_token",
    "auth_code",
    "buyer_id",
    "buyer_open_id",
    "buyer_logon_id",
    "buyer_user_id",
    "openid",
    "sub_openid",
    "payer",
    "phone",
    "mobile",
    "name",
    // Payout payees (Alipay `payee_info.identity`).
    "identity",
    "id_card",
    "cert_no",
    "user_name",
    "ciphertext",
    "req_info",
    "card_no",
    "bank_account",
    "open_id",
    "buyer_email",
    "buyer_name",
];

pub fn is_sensitive(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SENSITIVE.iter().any(|s| *s == lower)
}

pub const MASK: &str = "[REDACTED]";

pub fn redact_headers(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            if lower == "authorization" || lower.contains("signature") || lower == "cookie" {
                format!("{k}: {MASK}")
            } else {
                format!("{k}: {v}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        Some((base, query)) => format!("{base}?{}", redact_form(query)),
        None => url.to_string(),
    }
}

/// Redacts a body whatever its format: JSON, XML or form-urlencoded; anything else is kept.
pub fn redact_text(text: &str) -> String {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
            redact_json(&mut v);
            return v.to_string();
        }
        return text.to_string();
    }
    if trimmed.starts_with('<') {
        return redact_xml(text);
    }
    if text.contains('=') && !text.contains(char::is_whitespace) {
        return redact_form(text);
    }
    text.to_string()
}

pub fn redact_json(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if is_sensitive(k) {
                    *val = serde_json::Value::String(MASK.into());
                } else if let serde_json::Value::String(s) = val {
                    // Alipay's biz_content is JSON inside a string.
                    if s.trim_start().starts_with('{') {
                        if let Ok(mut inner) = serde_json::from_str::<serde_json::Value>(s) {
                            redact_json(&mut inner);
                            *s = inner.to_string();
                        }
                    }
                } else {
                    redact_json(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn redact_form(text: &str) -> String {
    text.split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_sensitive(k) => format!("{k}={MASK}"),
            Some((k, v)) if k == "biz_content" => {
                let decoded: String = form_decode(v);
                format!("{k}={}", redact_text(&decoded))
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn form_decode(v: &str) -> String {
    url::form_urlencoded::parse(format!("x={v}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Masks `<tag>value</tag>` (with or without CDATA) for sensitive tags. Simple by design: it only
/// has to handle the flat XML of WeChat v2, and never fails.
fn redact_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[1..close];
        out.push_str(&rest[..=close]);
        rest = &rest[close + 1..];
        if !tag.starts_with('/') && is_sensitive(tag) {
            let end_tag = format!("</{tag}>");
            if let Some(end) = rest.find(&end_tag) {
                out.push_str(MASK);
                rest = &rest[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn redacts_every_format() {
        let j = redact_text(r#"{"mchid":"1","payer":{"openid":"o-123"},"amount":{"total":1}}"#);
        assert!(!j.contains("o-123") && j.contains("\"mchid\":\"1\""), "{j}");
        let x = redact_text(
            "<xml><openid><![CDATA[o-9]]></openid><sign>AB</sign><total_fee>1</total_fee></xml>",
        );
        assert!(
            !x.contains("o-9") && !x.contains(">AB<") && x.contains("<total_fee>1</total_fee>"),
            "{x}"
        );
        let f = redact_text("app_id=1&sign=abc%2B&biz_content=%7B%22buyer_id%22%3A%22208%22%2C%22total_amount%22%3A%221.00%22%7D");
        assert!(
            !f.contains("abc") && !f.contains("208") && f.contains("total_amount"),
            "{f}"
        );
        assert_eq!(redact_text("<unterminated"), "<unterminated");
        assert_eq!(redact_text("plain text"), "plain text");
    }

    #[test]
    fn headers_masked() {
        let h = redact_headers(&[
            ("Authorization".into(), "WECHATPAY2 x".into()),
            ("Wechatpay-Serial".into(), "ABC".into()),
        ]);
        assert!(!h.contains("WECHATPAY2") && h.contains("ABC"));
    }
}
