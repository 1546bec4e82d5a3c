//! `alipay.trade.cancel`: revoke a barcode payment (closes it, or refunds it when already paid).

use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeCancel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
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

impl AlipayApi for TradeCancel {
    type Response = TradeCancelResponse;

    fn method(&self) -> &str {
        "alipay.trade.cancel"
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        to_biz_content(self)
    }

    /// Alipay documents cancel as safe to repeat until `retry_flag` is `N`.
    fn idempotent(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{assert_signed, golden, respond, test_config, NOW};
    use crate::api::{parse, prepare};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_response() {
        let (config, alipay) = test_config();
        let req = TradeCancel {
            out_trade_no: None,
            trade_no: Some("2026112622001411111111111111".into()),
        };
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        assert_signed(
            &config,
            &signed,
            &golden(
                "alipay.trade.cancel",
                r#"{"trade_no":"2026112622001411111111111111"}"#,
                "",
                "",
            ),
        );
        let raw = respond(
            &alipay,
            "alipay.trade.cancel",
            r#"{"code":"10000","msg":"Success","action":"close","out_trade_no":"B1","retry_flag":"N","trade_no":"2026112622001411111111111111"}"#,
        );
        let resp = parse(&config, &req, &raw).unwrap();
        assert!(!resp.should_retry());
        assert_eq!(resp.action.as_deref(), Some("close"));
    }
}
