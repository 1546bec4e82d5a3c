//! Alipay gateway responses: finding the signed node in the raw text (the SDKs' extraction),
//! splitting off `sign`/`alipay_cert_sn`, the full open (verify, decrypt, decode) and the typed
//! answers read from a node.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use paybridge_alipay::api::{
    BillDownloadUrlResponse, RefundQueryResponse, TradeCancelResponse, TradeCloseResponse,
    TradeCreateResponse, TradePayResponse, TradePrecreateResponse, TradeQueryResponse,
    TradeRefundResponse,
};
use paybridge_alipay::response::{
    check_code, extract_node, method_node, open_response, split_response, ERROR_NODE,
};
use paybridge_alipay::sign::decrypt_content;
use paybridge_alipay::{AesKey, AlipayConfig, AlipayKeys, VerifyKeys};
use paybridge_crypto::RsaPrivateKey;
use serde_json::Value;

fn config() -> &'static AlipayConfig {
    static CONFIG: OnceLock<AlipayConfig> = OnceLock::new();
    CONFIG.get_or_init(|| {
        let (private, public) = paybridge_fuzz::rsa();
        let keys = AlipayKeys {
            app_key: RsaPrivateKey::from_der(private.to_pkcs8_der()).expect("copy the key"),
            verify: VerifyKeys::PublicKey(public.clone()),
            app_cert_sn: None,
            alipay_root_cert_sn: None,
        };
        let aes = AesKey::from_base64("ZnV6emZ1enpmdXp6ZnV6eg==").expect("16-byte AES key");
        AlipayConfig::new("2021000000000000", keys).with_aes_key(aes)
    })
}

/// The extracted node is a slice of the raw text, a whole JSON string or container.
fn check_extracted(raw: &str, node: &str) {
    let Some(content) = extract_node(raw, node) else {
        return;
    };
    let start = content.as_ptr() as usize - raw.as_ptr() as usize;
    assert!(start + content.len() <= raw.len());
    let (first, last) = (content.as_bytes()[0], content.as_bytes()[content.len() - 1]);
    match first {
        b'"' => assert!(content.len() >= 2 && last == b'"', "{content:?}"),
        b'{' | b'[' => assert!(matches!(last, b'}' | b']'), "{content:?}"),
        _ => panic!("node value {content:?} is neither a string nor a container"),
    }
}

fn typed(node: &Value) {
    let _ = serde_json::from_value::<TradeQueryResponse>(node.clone());
    let _ = serde_json::from_value::<TradePayResponse>(node.clone());
    let _ = serde_json::from_value::<TradeRefundResponse>(node.clone());
    let _ = serde_json::from_value::<RefundQueryResponse>(node.clone());
    let _ = serde_json::from_value::<TradePrecreateResponse>(node.clone());
    let _ = serde_json::from_value::<TradeCreateResponse>(node.clone());
    let _ = serde_json::from_value::<TradeCloseResponse>(node.clone());
    let _ = serde_json::from_value::<TradeCancelResponse>(node.clone());
    let _ = serde_json::from_value::<BillDownloadUrlResponse>(node.clone());
    let _ = check_code("alipay.trade.pay", node.clone(), &["10000", "10003"]);
}

fuzz_target!(|data: &[u8]| {
    // First line: the method (`alipay.trade.query`); the rest: the raw response text.
    let (method, raw) = paybridge_fuzz::split_line(data);
    let (Ok(method), Ok(raw)) = (std::str::from_utf8(method), std::str::from_utf8(raw)) else {
        return;
    };
    let node = method_node(method);
    check_extracted(raw, &node);
    check_extracted(raw, ERROR_NODE);
    if let Ok(parts) = split_response(raw, method) {
        assert!(parts.node == node || parts.node == ERROR_NODE);
        // What a verified response goes through next, without the signature we cannot forge.
        let text = if parts.is_encrypted() {
            serde_json::from_str::<String>(parts.content)
                .ok()
                .and_then(|c| decrypt_content(config().aes_key.as_ref()?, &c).ok())
        } else {
            Some(parts.content.to_string())
        };
        if let Some(v) = text.and_then(|t| serde_json::from_str::<Value>(&t).ok()) {
            typed(&v);
        }
    }
    if let Ok(v) = open_response(config(), method, raw) {
        panic!("a response no key signed was opened: {v}");
    }
});
