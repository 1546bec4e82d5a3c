//! Gateway responses: find the signed node in the raw text exactly as the official SDKs do,
//! verify it, decrypt it, and turn `code`/`sub_code` into a typed result.

use serde_json::Value;

use crate::config::AlipayConfig;
use crate::error::GatewayError;
use crate::sign::{decrypt_content, rsa2_verify};
use crate::{AlipayError, AlipayKeys};

pub const ERROR_NODE: &str = "error_response";

/// `alipay.trade.query` → `alipay_trade_query_response`.
pub fn method_node(method: &str) -> String {
    let mut node = method.replace('.', "_");
    node.push_str("_response");
    node
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// The raw text of the value of `"node"`: an object (brace matching that ignores braces inside
/// strings and honours backslash escapes) or a string (an encrypted node, quotes included).
/// `None` when the node is absent or its value is cut short.
pub fn extract_node<'a>(raw: &'a str, node: &str) -> Option<&'a str> {
    let bytes = raw.as_bytes();
    let key = format!("\"{node}\"");
    let mut i = raw.find(&key)? + key.len();
    i = skip_ws(bytes, i);
    if bytes.get(i) != Some(&b':') {
        return None;
    }
    let start = skip_ws(bytes, i + 1);
    let end = match bytes.get(start)? {
        b'"' => end_of_string(bytes, start + 1)?,
        b'{' | b'[' => end_of_container(bytes, start)?,
        _ => return None,
    };
    raw.get(start..=end)
}

/// Index of the closing quote of a string whose content starts at `i`.
fn end_of_string(bytes: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
}

/// Index of the bracket closing the container opened at `start`.
fn end_of_container(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth: usize = 0;
    let mut i = start;
    loop {
        match bytes.get(i)? {
            b'"' => i = end_of_string(bytes, i + 1)?,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// The parts of a raw response that matter for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// `<method>_response` or `error_response`.
    pub node: String,
    /// The signed text, exactly as received.
    pub content: &'a str,
    pub sign: Option<String>,
    /// Certificate mode: which Alipay certificate signed.
    pub alipay_cert_sn: Option<String>,
}

impl SignedParts<'_> {
    /// An encrypted node is a JSON string rather than an object.
    pub fn is_encrypted(&self) -> bool {
        self.content.starts_with('"')
    }
}

/// Splits a raw response into its signed node, `sign` and `alipay_cert_sn`.
pub fn split_response<'a>(raw: &'a str, method: &str) -> Result<SignedParts<'a>, AlipayError> {
    let malformed = |reason: &str| AlipayError::MalformedResponse {
        method: method.to_string(),
        reason: reason.to_string(),
    };
    let doc: Value = serde_json::from_str(raw).map_err(|e| malformed(&e.to_string()))?;
    let top_str = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_string);
    let method_node = method_node(method);
    let (node, content) = match extract_node(raw, &method_node) {
        Some(c) => (method_node, c),
        None => match extract_node(raw, ERROR_NODE) {
            Some(c) => (ERROR_NODE.to_string(), c),
            None => {
                return Err(malformed(
                    "neither the method node nor error_response found",
                ))
            }
        },
    };
    Ok(SignedParts {
        node,
        content,
        sign: top_str("sign"),
        alipay_cert_sn: top_str("alipay_cert_sn"),
    })
}

/// Verifies signed content, retrying with `\/` unescaped as the Java SDK does.
pub fn verify_content(key: &paybridge_crypto::RsaPublicKey, content: &str, sign: &str) -> bool {
    rsa2_verify(key, content, sign)
        || (content.contains("\\/") && rsa2_verify(key, &content.replace("\\/", "/"), sign))
}

/// Verifies a raw response against `keys` (choosing the certificate by `alipay_cert_sn`) and
/// returns the decoded node object. An unsigned response is accepted only as an error answer
/// (`GatewayError { signed: false }`); an unsigned success is a bad signature.
pub fn open_response(config: &AlipayConfig, method: &str, raw: &str) -> Result<Value, AlipayError> {
    let parts = split_response(raw, method)?;
    verify_parts(&config.keys, method, &parts)?;
    let text = if parts.is_encrypted() {
        let cipher: String =
            serde_json::from_str(parts.content).map_err(|e| AlipayError::MalformedResponse {
                method: method.to_string(),
                reason: format!("encrypted node: {e}"),
            })?;
        let key = config
            .aes_key
            .as_ref()
            .ok_or_else(|| AlipayError::MalformedResponse {
                method: method.to_string(),
                reason: "encrypted response but no AES key configured".into(),
            })?;
        decrypt_content(key, &cipher)?
    } else {
        parts.content.to_string()
    };
    let node: Value = serde_json::from_str(&text).map_err(|e| AlipayError::MalformedResponse {
        method: method.to_string(),
        reason: format!("response node: {e}"),
    })?;
    if !node.is_object() {
        return Err(AlipayError::MalformedResponse {
            method: method.to_string(),
            reason: "response node is not an object".into(),
        });
    }
    if parts.sign.is_none() {
        // Reached only for error answers (see verify_parts).
        return Err(gateway_error(method, &node, false).into());
    }
    Ok(node)
}

fn verify_parts(
    keys: &AlipayKeys,
    method: &str,
    parts: &SignedParts<'_>,
) -> Result<(), AlipayError> {
    let Some(sign) = parts.sign.as_deref() else {
        let code = serde_json::from_str::<Value>(parts.content)
            .ok()
            .and_then(|v| v.get("code").and_then(Value::as_str).map(str::to_string));
        return match code.as_deref() {
            Some(c) if c != "10000" && c != "10003" => Ok(()),
            _ => Err(AlipayError::BadResponseSignature {
                method: method.to_string(),
            }),
        };
    };
    let key = keys
        .verifying_key(parts.alipay_cert_sn.as_deref())
        .map_err(|sn| AlipayError::UnknownCertSn {
            method: method.to_string(),
            sn,
        })?;
    if verify_content(&key, parts.content, sign) {
        Ok(())
    } else {
        Err(AlipayError::BadResponseSignature {
            method: method.to_string(),
        })
    }
}

fn field(node: &Value, k: &str) -> String {
    node.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The gateway error carried by a node (whatever its code).
pub fn gateway_error(method: &str, node: &Value, signed: bool) -> GatewayError {
    GatewayError {
        method: method.to_string(),
        code: field(node, "code"),
        msg: field(node, "msg"),
        sub_code: field(node, "sub_code"),
        sub_msg: field(node, "sub_msg"),
        signed,
    }
}

/// Accepts the node when its `code` is one of `accepted` (10000, and 10003 for barcode pay).
pub fn check_code(method: &str, node: Value, accepted: &[&str]) -> Result<Value, AlipayError> {
    let code = node.get("code").and_then(Value::as_str).unwrap_or_default();
    if accepted.contains(&code) {
        Ok(node)
    } else {
        Err(gateway_error(method, &node, true).into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn node_name() {
        assert_eq!(
            method_node("alipay.trade.query"),
            "alipay_trade_query_response"
        );
    }

    #[test]
    fn truncated_or_odd_input_is_none() {
        for raw in [
            "",
            "{",
            "{\"a_response\"",
            "{\"a_response\":",
            "{\"a_response\":{\"x\":\"}",
            "{\"a_response\":\"abc",
            "{\"a_response\":\"abc\\",
            "{\"a_response\":12}",
            "{\"a_response\":{\"x\":1}}}",
        ] {
            let got = extract_node(raw, "a_response");
            if raw.ends_with("}}}") {
                assert_eq!(got, Some("{\"x\":1}"));
            } else {
                assert_eq!(got, None, "{raw}");
            }
        }
    }

    #[test]
    fn unbalanced_close_is_none() {
        assert_eq!(extract_node("{\"a_response\":]", "a_response"), None);
    }
}
