//! `alipay.trade.close`: close an unpaid trade.

use serde::{Deserialize, Serialize};

use super::{alipay_api, TradeRef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeClose {
    #[serde(flatten)]
    pub trade: TradeRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeCloseResponse {
    #[serde(default)]
    pub trade_no: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
}

alipay_api!(TradeClose, "alipay.trade.close", TradeCloseResponse);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, golden, sub_code, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_responses() {
        let req = TradeClose {
            trade: TradeRef::out_trade_no("X1"),
        };
        let expected = golden("alipay.trade.close", r#"{"out_trade_no":"X1"}"#, "", "");
        let (config, alipay, _) = wire(&req, &CallOptions::default(), &expected);
        let ok = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","out_trade_no":"X1","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert_eq!(ok.out_trade_no.as_deref(), Some("X1"));
        let paid = answer(
            &config,
            &alipay,
            &req,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_STATUS_ERROR","sub_msg":"交易状态不合法"}"#,
        );
        assert_eq!(sub_code(paid), "ACQ.TRADE_STATUS_ERROR");
    }
}
