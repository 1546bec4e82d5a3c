//! `alipay.trade.app.pay`: the signed order string handed to the Alipay App SDK.
//! No server response: the App SDK sends the order string itself.

use serde::Serialize;

use super::{alipay_api, OrderInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeAppPay {
    #[serde(flatten)]
    pub order: OrderInfo,
    /// `QUICK_MSECURITY_PAY`.
    pub product_code: String,
}

impl TradeAppPay {
    pub fn new(order: OrderInfo) -> Self {
        TradeAppPay {
            order,
            product_code: "QUICK_MSECURITY_PAY".into(),
        }
    }
}

alipay_api!(TradeAppPay, "alipay.trade.app.pay", serde_json::Value);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use paybridge_core::Fen;

    use super::*;
    use crate::api::testutil::{golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form() {
        let req = TradeAppPay::new(OrderInfo::new("A1", Fen(100), "Coffee & cake"));
        let opts = CallOptions {
            notify_url: Some("https://m.example/notify".into()),
            ..CallOptions::default()
        };
        let biz = r#"{"out_trade_no":"A1","total_amount":"1.00","subject":"Coffee & cake","product_code":"QUICK_MSECURITY_PAY"}"#;
        let expected = golden(
            "alipay.trade.app.pay",
            biz,
            "&notify_url=https://m.example/notify",
            "",
        );
        let (_, _, signed) = wire(&req, &opts, &expected);
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
