//! `alipay.trade.wap.pay`: mobile browser checkout, sent as an auto-submitting form or GET URL.
//! No server response: the buyer's browser carries the request to Alipay.

use serde::Serialize;

use super::{alipay_api, OrderInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeWapPay {
    #[serde(flatten)]
    pub order: OrderInfo,
    /// `QUICK_WAP_WAY`.
    pub product_code: String,
    /// Where the buyer goes when abandoning the payment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quit_url: Option<String>,
}

impl TradeWapPay {
    pub fn new(order: OrderInfo) -> Self {
        TradeWapPay {
            order,
            product_code: "QUICK_WAP_WAY".into(),
            quit_url: None,
        }
    }
}

alipay_api!(TradeWapPay, "alipay.trade.wap.pay", serde_json::Value);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use paybridge_core::Fen;

    use super::*;
    use crate::api::testutil::{golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form() {
        let mut req = TradeWapPay::new(OrderInfo::new("W1", Fen(1), "Tea"));
        req.quit_url = Some("https://m.example/quit".into());
        let opts = CallOptions {
            notify_url: Some("https://m.example/notify".into()),
            ..CallOptions::default()
        };
        let biz = r#"{"out_trade_no":"W1","total_amount":"0.01","subject":"Tea","product_code":"QUICK_WAP_WAY","quit_url":"https://m.example/quit"}"#;
        let expected = golden(
            "alipay.trade.wap.pay",
            biz,
            "&notify_url=https://m.example/notify",
            "",
        );
        let (_, _, signed) = wire(&req, &opts, &expected);
        assert!(signed.form_html().contains("name=\"sign\" value=\""));
        assert!(signed
            .get_url()
            .starts_with("https://gw.example/gateway.do?app_id=2021000000000001&biz_content=%7B"));
    }
}
