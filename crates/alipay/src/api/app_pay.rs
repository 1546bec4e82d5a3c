//! `alipay.trade.app.pay`: the signed order string handed to the Alipay App SDK.

use paybridge_core::Fen;
use serde::Serialize;

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeAppPay {
    pub out_trade_no: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    /// `QUICK_MSECURITY_PAY`.
    pub product_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
}

impl TradeAppPay {
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
    ) -> Self {
        TradeAppPay {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            product_code: "QUICK_MSECURITY_PAY".into(),
            body: None,
            time_expire: None,
            passback_params: None,
        }
    }
}

/// App pay has no server response: the App SDK sends the order string itself.
impl AlipayApi for TradeAppPay {
    type Response = serde_json::Value;

    fn method(&self) -> &str {
        "alipay.trade.app.pay"
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
        let req = TradeAppPay::new("A1", Fen(100), "Coffee & cake");
        let opts = CallOptions {
            notify_url: Some("https://m.example/notify".into()),
            ..CallOptions::default()
        };
        let signed = prepare(&config, &req, &opts, NOW).unwrap();
        let biz = r#"{"out_trade_no":"A1","total_amount":"1.00","subject":"Coffee & cake","product_code":"QUICK_MSECURITY_PAY"}"#;
        assert_signed(
            &config,
            &signed,
            &golden(
                "alipay.trade.app.pay",
                biz,
                "&notify_url=https://m.example/notify",
                "",
            ),
        );
        let order = signed.order_string();
        // Sorted, URL-encoded values, sign included.
        assert!(order
            .starts_with("app_id=2021000000000001&biz_content=%7B%22out_trade_no%22%3A%22A1%22"));
        assert!(order.contains("Coffee+%26+cake"));
        assert!(order.contains(
            "&method=alipay.trade.app.pay&notify_url=https%3A%2F%2Fm.example%2Fnotify&sign="
        ));
        assert!(order.ends_with("&sign_type=RSA2&timestamp=2026-11-26+20%3A00%3A00&version=1.0"));
    }
}
