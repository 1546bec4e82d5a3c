//! `alipay.trade.page.pay`: desktop browser checkout, sent as an auto-submitting form or GET URL.

use paybridge_core::Fen;
use serde::Serialize;

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradePagePay {
    pub out_trade_no: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    /// `FAST_INSTANT_TRADE_PAY`.
    pub product_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Beijing `yyyy-MM-dd HH:mm:ss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
    /// Show the QR inline (`qr_pay_mode` 0-4) instead of the cashier page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_pay_mode: Option<String>,
}

impl TradePagePay {
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
    ) -> Self {
        TradePagePay {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            product_code: "FAST_INSTANT_TRADE_PAY".into(),
            body: None,
            time_expire: None,
            passback_params: None,
            qr_pay_mode: None,
        }
    }
}

/// Page pay has no server response: the buyer's browser carries the request to Alipay.
impl AlipayApi for TradePagePay {
    type Response = serde_json::Value;

    fn method(&self) -> &str {
        "alipay.trade.page.pay"
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
        let mut req = TradePagePay::new("P1", Fen(12_345), "Desk lamp");
        req.time_expire = Some("2026-11-26 20:30:00".into());
        let opts = CallOptions {
            notify_url: Some("https://m.example/notify".into()),
            return_url: Some("https://m.example/return".into()),
            app_auth_token: None,
        };
        let signed = prepare(&config, &req, &opts, NOW).unwrap();
        let biz = r#"{"out_trade_no":"P1","total_amount":"123.45","subject":"Desk lamp","product_code":"FAST_INSTANT_TRADE_PAY","time_expire":"2026-11-26 20:30:00"}"#;
        assert_signed(
            &config,
            &signed,
            &golden(
                "alipay.trade.page.pay",
                biz,
                "&notify_url=https://m.example/notify&return_url=https://m.example/return",
                "",
            ),
        );
        let html = signed.form_html();
        assert!(html.starts_with(
            "<form name=\"punchout_form\" method=\"post\" action=\"https://gw.example/gateway.do?charset=utf-8\">"
        ));
        assert!(html.contains("name=\"method\" value=\"alipay.trade.page.pay\""));
        let url = signed.get_url();
        assert!(url.contains("&method=alipay.trade.page.pay&"));
        assert!(url.contains("return_url=https%3A%2F%2Fm.example%2Freturn"));
    }
}
