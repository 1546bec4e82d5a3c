//! `alipay.trade.fastpay.refund.query`: one refund's state by `out_request_no`. A refund Alipay
//! has not made comes back as code 10000 without `refund_amount`.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeFastpayRefundQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
    pub out_request_no: String,
    /// e.g. `["gmt_refund_pay"]` to get the refund time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_options: Vec<String>,
}

impl TradeFastpayRefundQuery {
    pub fn new(out_trade_no: impl Into<String>, out_request_no: impl Into<String>) -> Self {
        TradeFastpayRefundQuery {
            out_trade_no: Some(out_trade_no.into()),
            trade_no: None,
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

impl AlipayApi for TradeFastpayRefundQuery {
    type Response = RefundQueryResponse;

    fn method(&self) -> &str {
        "alipay.trade.fastpay.refund.query"
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        to_biz_content(self)
    }

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
    fn wire_form_and_responses() {
        let (config, alipay) = test_config();
        let req = TradeFastpayRefundQuery::new("R1", "R1-refund-1");
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        let biz = r#"{"out_trade_no":"R1","out_request_no":"R1-refund-1","query_options":["gmt_refund_pay"]}"#;
        assert_signed(
            &config,
            &signed,
            &golden("alipay.trade.fastpay.refund.query", biz, "", ""),
        );
        let done = respond(
            &alipay,
            "alipay.trade.fastpay.refund.query",
            r#"{"code":"10000","msg":"Success","gmt_refund_pay":"2026-11-26 20:05:00","out_request_no":"R1-refund-1","out_trade_no":"R1","refund_amount":"2.50","refund_status":"REFUND_SUCCESS","total_amount":"10.00","trade_no":"2026112622001411111111111111"}"#,
        );
        let resp = parse(&config, &req, &done).unwrap();
        assert_eq!(resp.refund_amount, Some(Fen(250)));
        assert_eq!(resp.refund_status.as_deref(), Some("REFUND_SUCCESS"));
        let none = respond(
            &alipay,
            "alipay.trade.fastpay.refund.query",
            r#"{"code":"10000","msg":"Success","out_request_no":"R1-refund-1","out_trade_no":"R1","trade_no":"2026112622001411111111111111"}"#,
        );
        let resp = parse(&config, &req, &none).unwrap();
        assert_eq!(resp.refund_amount, None);
    }
}
