//! `alipay.trade.wap.pay`: mobile browser checkout, sent as an auto-submitting form or GET URL.

use paybridge_core::Fen;
use serde::Serialize;

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeWapPay {
    pub out_trade_no: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    /// `QUICK_WAP_WAY`.
    pub product_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
    /// Where the buyer goes when abandoning the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quit_url: Option<String>,
}

impl TradeWapPay {
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
    ) -> Self {
        TradeWapPay {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            product_code: "QUICK_WAP_WAY".into(),
            body: None,
            time_expire: None,
            passback_params: None,
            quit_url: None,
        }
    }
}

/// Wap pay has no server response: the buyer's browser carries the request to Alipay.
impl AlipayApi for TradeWapPay {
    type Response = serde_json::Value;

    fn method(&self) -> &str {
        "alipay.trade.wap.pay"
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        to_biz_content(self)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::prepare;
    use crate::api::testutil::{assert_signed, golden, test_config, NOW};
    use crate::request::CallOptions;

    #[test]
    fn wire_form() {
        let (config, _) = test_config();
        let mut req = TradeWapPay::new("W1", Fen(1), "Tea");
        req.quit_url = Some("https://m.example/quit".into());
        let opts = CallOptions {
            notify_url: Some("https://m.example/notify".into()),
            ..CallOptions::default()
        };
        let signed = prepare(&config, &req, &opts, NOW).unwrap();
        let biz = r#"{"out_trade_no":"W1","total_amount":"0.01","subject":"Tea","product_code":"QUICK_WAP_WAY","quit_url":"https://m.example/quit"}"#;
        assert_signed(
            &config,
            &signed,
            &golden(
                "alipay.trade.wap.pay",
                biz,
                "&notify_url=https://m.example/notify",
                "",
            ),
        );
        assert!(signed.form_html().contains("name=\"sign\" value=\""));
        assert!(signed
            .get_url()
            .starts_with("https://gw.example/gateway.do?app_id=2021000000000001&biz_content=%7B"));
    }
}
