//! `alipay.trade.query`: the trade's current state. Safe to repeat.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{alipay_api, TradeRef};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeQuery {
    #[serde(flatten)]
    pub trade: TradeRef,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeQueryResponse {
    pub trade_no: String,
    pub out_trade_no: String,
    /// `WAIT_BUYER_PAY`, `TRADE_CLOSED`, `TRADE_SUCCESS`, `TRADE_FINISHED`.
    pub trade_status: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub receipt_amount: Option<Fen>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub buyer_pay_amount: Option<Fen>,
    #[serde(default)]
    pub buyer_logon_id: Option<String>,
    #[serde(default)]
    pub buyer_user_id: Option<String>,
    #[serde(default)]
    pub buyer_open_id: Option<String>,
    /// Payment time; present only on trades that were paid.
    #[serde(default)]
    pub send_pay_date: Option<String>,
}

alipay_api!(
    TradeQuery,
    "alipay.trade.query",
    TradeQueryResponse,
    idempotent = true
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, golden, respond, sub_code, wire};
    use crate::request::CallOptions;
    use crate::AlipayError;

    #[test]
    fn wire_form_and_responses() {
        let req = TradeQuery {
            trade: TradeRef::out_trade_no("Q1"),
        };
        let expected = golden("alipay.trade.query", r#"{"out_trade_no":"Q1"}"#, "", "");
        let (config, alipay, signed) = wire(&req, &CallOptions::default(), &expected);
        assert!(signed.idempotent && signed.to_http_request().idempotent);
        let content = r#"{"code":"10000","msg":"Success","buyer_logon_id":"854***@qq.com","buyer_pay_amount":"0.01","buyer_user_id":"2088102363632794","fund_bill_list":[{"amount":"0.01","fund_channel":"PCREDIT"}],"invoice_amount":"0.01","out_trade_no":"Q1","point_amount":"0.00","receipt_amount":"0.01","send_pay_date":"2026-11-26 20:14:05","total_amount":"0.01","trade_no":"2026112622001432791000072461","trade_status":"TRADE_SUCCESS"}"#;
        let resp = answer(&config, &alipay, &req, content).unwrap();
        assert_eq!(resp.trade_status, "TRADE_SUCCESS");
        assert_eq!(resp.total_amount, Fen(1));
        assert_eq!(resp.send_pay_date.as_deref(), Some("2026-11-26 20:14:05"));
        let missing = answer(
            &config,
            &alipay,
            &req,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"Q1"}"#,
        );
        assert_eq!(sub_code(missing), "ACQ.TRADE_NOT_EXIST");
        // A tampered body fails verification.
        let raw = respond(&alipay, "alipay.trade.query", content);
        let tampered = raw.replace("0.01\",\"trade_no", "9.99\",\"trade_no");
        assert!(matches!(
            crate::api::parse(&config, &req, &tampered),
            Err(AlipayError::BadResponseSignature { .. })
        ));
    }
}
