//! `alipay.trade.fastpay.refund.query`: one refund's state by `out_request_no`. A refund Alipay
//! has not made comes back as code 10000 without `refund_amount`.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{alipay_api, TradeRef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeFastpayRefundQuery {
    #[serde(flatten)]
    pub trade: TradeRef,
    pub out_request_no: String,
    /// e.g. `["gmt_refund_pay"]` to get the refund time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_options: Vec<String>,
}

impl TradeFastpayRefundQuery {
    pub fn new(trade: TradeRef, out_request_no: impl Into<String>) -> Self {
        TradeFastpayRefundQuery {
            trade,
            out_request_no: out_request_no.into(),
            query_options: vec!["gmt_refund_pay".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RefundQueryResponse {
    #[serde(default)]
    pub trade_no: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
    #[serde(default)]
    pub out_request_no: Option<String>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub refund_amount: Option<Fen>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub total_amount: Option<Fen>,
    /// `REFUND_SUCCESS` when present.
    #[serde(default)]
    pub refund_status: Option<String>,
    #[serde(default)]
    pub gmt_refund_pay: Option<String>,
}

alipay_api!(
    TradeFastpayRefundQuery,
    "alipay.trade.fastpay.refund.query",
    RefundQueryResponse,
    idempotent = true
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_responses() {
        let req = TradeFastpayRefundQuery::new(TradeRef::out_trade_no("R1"), "R1-refund-1");
        let biz = r#"{"out_trade_no":"R1","out_request_no":"R1-refund-1","query_options":["gmt_refund_pay"]}"#;
        let expected = golden("alipay.trade.fastpay.refund.query", biz, "", "");
        let (config, alipay, _) = wire(&req, &CallOptions::default(), &expected);
        let done = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","gmt_refund_pay":"2026-11-26 20:05:00","out_request_no":"R1-refund-1","out_trade_no":"R1","refund_amount":"2.50","refund_status":"REFUND_SUCCESS","total_amount":"10.00","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert_eq!(done.refund_amount, Some(Fen(250)));
        assert_eq!(done.refund_status.as_deref(), Some("REFUND_SUCCESS"));
        let none = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","out_request_no":"R1-refund-1","out_trade_no":"R1","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert_eq!(none.refund_amount, None);
    }
}
