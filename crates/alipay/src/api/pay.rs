//! `alipay.trade.pay`: the merchant scans the buyer's barcode. Code 10003 means the buyer is
//! confirming on the phone: poll with `alipay.trade.query`, cancel if it never completes.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi, OrderInfo};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradePay {
    #[serde(flatten)]
    pub order: OrderInfo,
    /// `bar_code` (or `security_code` for sound-wave and similar).
    pub scene: String,
    pub auth_code: String,
}

impl TradePay {
    pub fn new(order: OrderInfo, auth_code: impl Into<String>) -> Self {
        TradePay {
            order,
            scene: "bar_code".into(),
            auth_code: auth_code.into(),
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
    use crate::api::testutil::{answer, golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_responses() {
        let req = TradePay::new(
            OrderInfo::new("B1", Fen(500), "Bread"),
            "287654321012345678",
        );
        let biz = r#"{"out_trade_no":"B1","total_amount":"5.00","subject":"Bread","scene":"bar_code","auth_code":"287654321012345678"}"#;
        let expected = golden("alipay.trade.pay", biz, "", "");
        let (config, alipay, _) = wire(&req, &CallOptions::default(), &expected);

        let paid = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","buyer_logon_id":"159****5620","buyer_pay_amount":"5.00","buyer_user_id":"2088101117955611","fund_bill_list":[{"amount":"5.00","fund_channel":"ALIPAYACCOUNT"}],"gmt_payment":"2026-11-26 20:00:03","invoice_amount":"5.00","out_trade_no":"B1","point_amount":"0.00","receipt_amount":"5.00","total_amount":"5.00","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert!(!paid.waiting_for_buyer());
        assert_eq!(paid.total_amount, Some(Fen(500)));
        assert_eq!(paid.gmt_payment.as_deref(), Some("2026-11-26 20:00:03"));

        let waiting = answer(&config, &alipay, &req, r#"{"code":"10003","msg":" order success pay inprocess","buyer_logon_id":"159****5620","out_trade_no":"B1","total_amount":"5.00","trade_no":"2026112622001411111111111111"}"#).unwrap();
        assert!(waiting.waiting_for_buyer());

        let system_error = answer(
            &config,
            &alipay,
            &req,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.SYSTEM_ERROR","sub_msg":"系统错误"}"#,
        );
        match system_error {
            Err(AlipayError::Gateway(e)) => assert!(e.retry_safe()),
            other => panic!("{other:?}"),
        }
    }
}
