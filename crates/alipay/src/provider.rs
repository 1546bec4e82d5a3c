//! Alipay's side of the wire, as pure functions: verify a merchant's request, sign a response
//! body, sign and encode a notification, write a bill. The sandbox emulator builds on these;
//! they follow the same rules the client side checks, so each side tests the other.

use encoding_rs::Encoding;
use paybridge_crypto::{RsaPrivateKey, RsaPublicKey};

use crate::notify::NotifyRule;
use crate::sign::{encrypt_content, rsa2_sign, string_to_sign, verify_params};
use crate::{AesKey, AlipayError};

pub use crate::bill::{write_trade_bill_zip, BillKind, BillRecord, DETAIL_COLUMNS};
pub use crate::response::{method_node, ERROR_NODE};
pub use crate::sign::{sign_params, NOTIFY_V1_EXCLUDED, REQUEST_EXCLUDED};

/// Checks a merchant request's `sign` (every parameter but `sign`, whether it came in the query
/// string or the form body) with the app's public key.
pub fn verify_request<'a, I>(params: I, app_public_key: &RsaPublicKey) -> bool
where
    I: IntoIterator<Item = (&'a str, &'a str)> + Clone,
{
    verify_params(params, REQUEST_EXCLUDED, app_public_key)
}

/// The request string-to-sign (for error messages such as `isv.invalid-signature` details).
pub fn request_string_to_sign<'a, I>(params: I) -> String
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    string_to_sign(params, REQUEST_EXCLUDED)
}

/// A signed response body: `{"<node>":<content>,"sign":"..."[,"alipay_cert_sn":"..."]}`, with
/// `sign` after the node. `content` is the node's JSON text (an object, or a quoted ciphertext
/// from [`encrypt_node`]) and is signed exactly as written.
pub fn signed_response_body(
    node: &str,
    content: &str,
    alipay_key: &RsaPrivateKey,
    alipay_cert_sn: Option<&str>,
) -> Result<String, AlipayError> {
    let sign = rsa2_sign(alipay_key, content)?;
    let mut body = String::with_capacity(content.len() + sign.len() + node.len() + 64);
    body.push_str("{\"");
    body.push_str(node);
    body.push_str("\":");
    body.push_str(content);
    body.push_str(",\"sign\":\"");
    body.push_str(&sign);
    body.push('"');
    if let Some(sn) = alipay_cert_sn {
        body.push_str(",\"alipay_cert_sn\":\"");
        body.push_str(sn);
        body.push('"');
    }
    body.push('}');
    Ok(body)
}

/// [`signed_response_body`] for a method (`alipay.trade.query` → `alipay_trade_query_response`).
pub fn signed_method_response(
    method: &str,
    content: &str,
    alipay_key: &RsaPrivateKey,
    alipay_cert_sn: Option<&str>,
) -> Result<String, AlipayError> {
    signed_response_body(&method_node(method), content, alipay_key, alipay_cert_sn)
}

/// An encrypted node value: the AES ciphertext of `content` as a JSON string (quotes included).
pub fn encrypt_node(aes_key: &AesKey, content: &str) -> Result<String, AlipayError> {
    Ok(format!("\"{}\"", encrypt_content(aes_key, content)?))
}

/// Adds `sign` to notification fields under `rule` (`sign_type` is left in the fields either
/// way; V1 merely leaves it out of the signed string).
pub fn sign_notify(
    mut fields: Vec<(String, String)>,
    rule: NotifyRule,
    alipay_key: &RsaPrivateKey,
) -> Result<Vec<(String, String)>, AlipayError> {
    fields.retain(|(k, _)| k != "sign");
    let excluded = match rule {
        NotifyRule::V1 => NOTIFY_V1_EXCLUDED,
        NotifyRule::V2 => REQUEST_EXCLUDED,
    };
    let content = string_to_sign(
        fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        excluded,
    );
    let sign = rsa2_sign(alipay_key, &content)?;
    fields.push(("sign".to_string(), sign));
    Ok(fields)
}

/// `application/x-www-form-urlencoded` in `charset` (the label written in the `charset` field,
/// e.g. `utf-8` or `gbk`). Characters the charset cannot hold are an error.
pub fn encode_form(fields: &[(String, String)], charset: &str) -> Result<Vec<u8>, AlipayError> {
    let encoding = Encoding::for_label(charset.as_bytes())
        .ok_or_else(|| AlipayError::InvalidRequest(format!("unknown charset {charset:?}")))?;
    let mut out = String::new();
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        for (j, part) in [k, v].into_iter().enumerate() {
            if j == 1 {
                out.push('=');
            }
            let (bytes, _, unmappable) = encoding.encode(part);
            if unmappable {
                return Err(AlipayError::InvalidRequest(format!(
                    "{part:?} cannot be written in {charset}"
                )));
            }
            out.extend(form_urlencoded::byte_serialize(&bytes));
        }
    }
    Ok(out.into_bytes())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::notify::NotifyForm;
    use crate::response::{extract_node, split_response, verify_content};

    fn key() -> RsaPrivateKey {
        RsaPrivateKey::from_der(&paybridge_crypto::generate_rsa_private_key_pkcs8().unwrap())
            .unwrap()
    }

    #[test]
    fn response_round_trip() {
        let k = key();
        let content = r#"{"code":"10000","msg":"Success","trade_no":"1"}"#;
        let body = signed_method_response("alipay.trade.query", content, &k, Some("abc")).unwrap();
        let parts = split_response(&body, "alipay.trade.query").unwrap();
        assert_eq!(parts.content, content);
        assert_eq!(parts.alipay_cert_sn.as_deref(), Some("abc"));
        let pk = k.public_key().unwrap();
        assert!(verify_content(
            &pk,
            parts.content,
            parts.sign.as_deref().unwrap()
        ));
        assert_eq!(
            extract_node(&body, "alipay_trade_query_response"),
            Some(content)
        );
    }

    #[test]
    fn notify_round_trip_gbk_both_rules() {
        let k = key();
        let pk = k.public_key().unwrap();
        for rule in [NotifyRule::V1, NotifyRule::V2] {
            let fields = vec![
                ("charset".to_string(), "gbk".to_string()),
                ("subject".to_string(), "测试 a+b=c%d".to_string()),
                ("sign_type".to_string(), "RSA2".to_string()),
            ];
            let signed = sign_notify(fields, rule, &k).unwrap();
            let body = encode_form(&signed, "gbk").unwrap();
            let form = NotifyForm::parse(&body).unwrap();
            assert_eq!(form.get("subject"), Some("测试 a+b=c%d"));
            assert_eq!(form.verify(&[&pk]), Some(rule));
        }
        // A raw `&` in a value could re-split the signed string: never verified.
        let signed =
            sign_notify(vec![("subject".into(), "a&b=c".into())], NotifyRule::V1, &k).unwrap();
        let form = NotifyForm::parse(&encode_form(&signed, "utf-8").unwrap()).unwrap();
        assert_eq!(form.verify(&[&pk]), None);
        assert!(encode_form(&[("a".into(), "🙂".into())], "gbk").is_err());
    }
}
