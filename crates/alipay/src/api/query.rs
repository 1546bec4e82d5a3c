//! `alipay.trade.query`: the trade's current state. Safe to repeat.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
}

impl TradeQuery {
    pub fn by_out_trade_no(out_trade_no: impl Into<String>) -> Self {
        TradeQuery {
            out_trade_no: Some(out_trade_no.into()),
            trade_no: None,
        }
    }
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
    /// Payment time.
    #[serde(default)]
    pub send_pay_date: Option<String>,
}

impl AlipayApi for TradeQuery {
    type Response = TradeQueryResponse;

    fn method(&self) -> &str {
        "alipay.trade.query"
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
        let req = TradeQuery::by_out_trade_no("Q1");
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        assert_signed(
            &config,
            &signed,
            &golden("alipay.trade.query", r#"{"out_trade_no":"Q1"}"#, "", ""),
        );
        assert!(signed.idempotent && signed.to_http_request().idempotent);
        let raw = respond(
            &alipay,
            "alipay.trade.query",
            r#"{"code":"10000","msg":"Success","buyer_logon_id":"854***@qq.com","buyer_pay_amount":"0.01","buyer_user_id":"2088102363632794","fund_bill_list":[{"amount":"0.01","fund_channel":"PCREDIT"}],"invoice_amount":"0.01","out_trade_no":"Q1","point_amount":"0.00","receipt_amount":"0.01","send_pay_date":"2026-11-26 20:14:05","total_amount":"0.01","trade_no":"2026112622001432791000072461","trade_status":"TRADE_SUCCESS"}"#,
        );
        let resp = parse(&config, &req, &raw).unwrap();
        assert_eq!(resp.trade_status, "TRADE_SUCCESS");
        assert_eq!(resp.total_amount, Fen(1));
        assert_eq!(resp.send_pay_date.as_deref(), Some("2026-11-26 20:14:05"));
        let missing = respond(
            &alipay,
            "alipay.trade.query",
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_NOT_EXIST","sub_msg":"交易不存在","out_trade_no":"Q1"}"#,
        );
        match parse(&config, &req, &missing) {
            Err(AlipayError::Gateway(e)) => assert_eq!(e.sub_code, "ACQ.TRADE_NOT_EXIST"),
            other => panic!("{other:?}"),
        }
        // A tampered body fails verification.
        let tampered = raw.replace("0.01\",\"trade_no", "9.99\",\"trade_no");
        assert!(matches!(
            parse(&config, &req, &tampered),
            Err(AlipayError::BadResponseSignature { .. })
        ));
    }
}
