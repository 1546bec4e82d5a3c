//! `alipay.trade.refund`: full or partial refund. `out_request_no` makes it idempotent: the same
//! number with the same amount returns the earlier result instead of refunding twice.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{alipay_api, TradeRef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeRefund {
    #[serde(flatten)]
    pub trade: TradeRef,
    #[serde(with = "super::yuan")]
    pub refund_amount: Fen,
    /// Always sent: it is what makes a repeat harmless.
    pub out_request_no: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_reason: Option<String>,
}

impl TradeRefund {
    pub fn new(trade: TradeRef, out_request_no: impl Into<String>, refund_amount: Fen) -> Self {
        TradeRefund {
            trade,
            refund_amount,
            out_request_no: out_request_no.into(),
            refund_reason: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeRefundResponse {
    pub trade_no: String,
    pub out_trade_no: String,
    /// Total refunded on the trade so far (not just this request).
    #[serde(with = "super::yuan")]
    pub refund_fee: Fen,
    /// `Y` when this call moved money; `N` on a repeated `out_request_no`.
    #[serde(default)]
    pub fund_change: Option<String>,
    #[serde(default)]
    pub gmt_refund_pay: Option<String>,
    #[serde(default)]
    pub buyer_logon_id: Option<String>,
}

alipay_api!(
    TradeRefund,
    "alipay.trade.refund",
    TradeRefundResponse,
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
        let mut req = TradeRefund::new(TradeRef::out_trade_no("R1"), "R1-refund-1", Fen(250));
        req.refund_reason = Some("broken".into());
        let biz = r#"{"out_trade_no":"R1","refund_amount":"2.50","out_request_no":"R1-refund-1","refund_reason":"broken"}"#;
        let expected = golden("alipay.trade.refund", biz, "", "");
        let (config, alipay, signed) = wire(&req, &CallOptions::default(), &expected);
        assert!(signed.idempotent);
        let resp = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","fund_change":"Y","gmt_refund_pay":"2026-11-26 20:05:00","out_trade_no":"R1","refund_fee":"2.50","send_back_fee":"2.50","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert_eq!(resp.refund_fee, Fen(250));
        assert_eq!(resp.fund_change.as_deref(), Some("Y"));
    }
}
