//! `alipay.trade.pay`: the merchant scans the buyer's barcode. Code 10003 means the buyer is
//! confirming on the phone: poll with `alipay.trade.query`, cancel if it never completes.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradePay {
    pub out_trade_no: String,
    /// `bar_code` (or `security_code` for sound-wave and similar).
    pub scene: String,
    pub auth_code: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
}

impl TradePay {
    pub fn new(
        out_trade_no: impl Into<String>,
        auth_code: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
    ) -> Self {
        TradePay {
            out_trade_no: out_trade_no.into(),
            scene: "bar_code".into(),
            auth_code: auth_code.into(),
            total_amount,
            subject: subject.into(),
            body: None,
            time_expire: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradePayResponse {
    /// 10000 paid, 10003 waiting for the buyer.
    pub code: String,
    #[serde(default)]
    pub trade_no: Option<String>,
    pub out_trade_no: String,
    #[serde(default)]
    pub buyer_logon_id: Option<String>,
    #[serde(default)]
    pub buyer_user_id: Option<String>,
    #[serde(default)]
    pub buyer_open_id: Option<String>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub total_amount: Option<Fen>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub receipt_amount: Option<Fen>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub buyer_pay_amount: Option<Fen>,
    #[serde(default)]
    pub gmt_payment: Option<String>,
}

impl TradePayResponse {
    pub fn waiting_for_buyer(&self) -> bool {
        self.code == "10003"
    }
}

impl AlipayApi for TradePay {
    type Response = TradePayResponse;

    fn method(&self) -> &str {
        "alipay.trade.pay"
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        to_biz_content(self)
    }

    fn accepted_codes(&self) -> &'static [&'static str] {
        &["10000", "10003"]
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
        let req = TradePay::new("B1", "287654321012345678", Fen(500), "Bread");
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        let biz = r#"{"out_trade_no":"B1","scene":"bar_code","auth_code":"287654321012345678","total_amount":"5.00","subject":"Bread"}"#;
        assert_signed(&config, &signed, &golden("alipay.trade.pay", biz, "", ""));

        let paid = respond(
            &alipay,
            "alipay.trade.pay",
            r#"{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_pay_amount":"5.00","buyer_user_id":"2088101117955611","fund_bill_list":[{"amount":"5.00","fund_channel":"ALIPAYACCOUNT"}],"gmt_payment":"2026-11-26 20:00:03","invoice_amount":"5.00","out_trade_no":"B1","point_amount":"0.00","receipt_amount":"5.00","total_amount":"5.00","trade_no":"2026112622001411111111111111"}"#,
        );
        let resp = parse(&config, &req, &paid).unwrap();
        assert!(!resp.waiting_for_buyer());
        assert_eq!(resp.total_amount, Some(Fen(500)));
        assert_eq!(resp.gmt_payment.as_deref(), Some("2026-11-26 20:00:03"));

        let waiting = respond(
            &alipay,
            "alipay.trade.pay",
            r#"{"code":"10003","msg":" order success pay inprocess","buyer_logon_id":"159****5620","out_trade_no":"B1","total_amount":"5.00","trade_no":"2026112622001411111111111111"}"#,
        );
        assert!(parse(&config, &req, &waiting).unwrap().waiting_for_buyer());

        let system_error = respond(
            &alipay,
            "alipay.trade.pay",
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}"#,
        );
        match parse(&config, &req, &system_error) {
            Err(AlipayError::Gateway(e)) => assert!(e.retry_safe()),
            other => panic!("{other:?}"),
        }
    }
}
