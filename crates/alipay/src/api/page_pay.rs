//! `alipay.trade.page.pay`: desktop browser checkout, sent as an auto-submitting form or GET URL.
//! No server response: the buyer's browser carries the request to Alipay.

use serde::Serialize;

use super::{alipay_api, OrderInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradePagePay {
    #[serde(flatten)]
    pub order: OrderInfo,
    /// `FAST_INSTANT_TRADE_PAY`.
    pub product_code: String,
    /// Show the QR inline (`qr_pay_mode` 0-4) instead of the cashier page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr_pay_mode: Option<String>,
}

impl TradePagePay {
    pub fn new(order: OrderInfo) -> Self {
        TradePagePay {
            order,
            product_code: "FAST_INSTANT_TRADE_PAY".into(),
            qr_pay_mode: None,
        }
    }
}

alipay_api!(TradePagePay, "alipay.trade.page.pay", serde_json::Value);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use paybridge_core::Fen;

    use super::*;
    use crate::api::testutil::{golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form() {
        let mut order = OrderInfo::new("P1", Fen(12_345), "Desk lamp");
        order.time_expire = Some("2026-11-26 20:30:00".into());
        let opts = CallOptions {
            notify_url: Some("https://m.example/notify".into()),
            return_url: Some("https://m.example/return".into()),
            app_auth_token: None,
        };
        let biz = r#"{"out_trade_no":"P1","total_amount":"123.45","subject":"Desk lamp","time_expire":"2026-11-26 20:30:00","product_code":"FAST_INSTANT_TRADE_PAY"}"#;
        let urls = "&notify_url=https://m.example/notify&return_url=https://m.example/return";
        let expected = golden("alipay.trade.page.pay", biz, urls, "");
        let (_, _, signed) = wire(&TradePagePay::new(order), &opts, &expected);
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
