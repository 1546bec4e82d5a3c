//! `alipay.trade.cancel`: revoke a barcode payment (closes it, or refunds it when already paid).
//! Alipay documents it as safe to repeat until `retry_flag` is `N`.

use serde::{Deserialize, Serialize};

use super::{alipay_api, TradeRef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeCancel {
    #[serde(flatten)]
    pub trade: TradeRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeCancelResponse {
    #[serde(default)]
    pub trade_no: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    /// `Y`: call cancel again.
    #[serde(default)]
    pub retry_flag: Option<String>,
    /// `close` or `refund`.
    #[serde(default)]
    pub action: Option<String>,
}

impl TradeCancelResponse {
    pub fn should_retry(&self) -> bool {
        self.retry_flag.as_deref() == Some("Y")
    }
}

alipay_api!(
    TradeCancel,
    "alipay.trade.cancel",
    TradeCancelResponse,
    idempotent = true
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_response() {
        let req = TradeCancel {
            trade: TradeRef::trade_no("2026112622001411111111111111"),
        };
        let biz = r#"{"trade_no":"2026112622001411111111111111"}"#;
        let expected = golden("alipay.trade.cancel", biz, "", "");
        let (config, alipay, _) = wire(&req, &CallOptions::default(), &expected);
        let resp = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","action":"close","out_trade_no":"B1","retry_flag":"N","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert!(!resp.should_retry());
        assert_eq!(resp.action.as_deref(), Some("close"));
    }
}
