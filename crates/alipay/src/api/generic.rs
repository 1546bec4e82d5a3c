//! Any other gateway method: a signed call with a free-form `biz_content`, answered as JSON.

use serde_json::Value;

use super::AlipayApi;
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq)]
pub struct GenericRequest {
    pub method: String,
    /// `None` for methods without `biz_content`.
    pub biz_content: Option<Value>,
    /// Only mark true when repeating the call cannot act twice.
    pub idempotent: bool,
}

impl GenericRequest {
    pub fn new(method: impl Into<String>, biz_content: Value) -> Self {
        GenericRequest {
            method: method.into(),
            biz_content: Some(biz_content),
            idempotent: false,
        }
    }
}

impl AlipayApi for GenericRequest {
    type Response = Value;

    fn method(&self) -> &str {
        &self.method
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        match &self.biz_content {
            Some(v) => super::to_biz_content(v),
            None => Ok(String::new()),
        }
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, assert_signed, golden, respond, test_config, wire, NOW};
    use crate::api::{parse, prepare};
    use crate::request::CallOptions;
    use crate::AesKey;

    #[test]
    fn wire_form_and_response() {
        let biz = serde_json::json!({"trade_no":"1","out_request_no":"2","biz_type":"CREDIT_AUTH"});
        let req = GenericRequest::new("alipay.trade.orderinfo.sync", biz);
        let golden_biz = r#"{"trade_no":"1","out_request_no":"2","biz_type":"CREDIT_AUTH"}"#;
        let expected = golden("alipay.trade.orderinfo.sync", golden_biz, "", "");
        let (config, alipay, _) = wire(&req, &CallOptions::default(), &expected);
        let resp = answer(
            &config,
            &alipay,
            &req,
            r#"{"code":"10000","msg":"Success","trade_no":"1"}"#,
        );
        assert_eq!(resp.unwrap()["trade_no"], "1");
    }

    #[test]
    fn aes_mode_encrypts_then_signs_and_decrypts_responses() {
        let (config, alipay) = test_config();
        let aes = AesKey::from_base64("aYA0GP8JEW+D7/UFaskCWA==").unwrap();
        let config = config.with_aes_key(aes.clone());
        let req = GenericRequest::new(
            "alipay.trade.query",
            serde_json::json!({"out_trade_no":"20150320010101001"}),
        );
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        let cipher =
            crate::sign::encrypt_content(&aes, r#"{"out_trade_no":"20150320010101001"}"#).unwrap();
        assert_eq!(signed.param("encrypt_type"), Some("AES"));
        assert_eq!(signed.param("biz_content"), Some(cipher.as_str()));
        assert_signed(
            &config,
            &signed,
            &format!(
                "app_id=2021000000000001&biz_content={cipher}&charset=utf-8&encrypt_type=AES&format=JSON\
                 &method=alipay.trade.query&sign_type=RSA2&timestamp=2026-11-26 20:00:00&version=1.0"
            ),
        );
        let node = crate::provider::encrypt_node(
            &aes,
            r#"{"code":"10000","msg":"Success","trade_no":"9"}"#,
        )
        .unwrap();
        let raw = respond(&alipay, "alipay.trade.query", &node);
        assert_eq!(parse(&config, &req, &raw).unwrap()["trade_no"], "9");
    }
}
