//! `alipay.trade.precreate`: a QR code the buyer scans.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradePrecreate {
    pub out_trade_no: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
}

impl TradePrecreate {
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
    ) -> Self {
        TradePrecreate {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            body: None,
            time_expire: None,
            passback_params: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradePrecreateResponse {
    pub out_trade_no: String,
    pub qr_code: String,
}

impl AlipayApi for TradePrecreate {
    type Response = TradePrecreateResponse;

    fn method(&self) -> &str {
        "alipay.trade.precreate"
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        to_biz_content(self)
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
        let req = TradePrecreate::new("Q1", Fen(880), "Scan me");
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        let biz = r#"{"out_trade_no":"Q1","total_amount":"8.80","subject":"Scan me"}"#;
        assert_signed(
            &config,
            &signed,
            &golden("alipay.trade.precreate", biz, "", ""),
        );
        assert!(!signed.idempotent);
        let raw = respond(
            &alipay,
            "alipay.trade.precreate",
            r#"{"code":"10000","msg":"Success","out_trade_no":"Q1","qr_code":"https:\/\/qr.alipay.com\/bax01234"}"#,
        );
        let resp = parse(&config, &req, &raw).unwrap();
        assert_eq!(resp.qr_code, "https://qr.alipay.com/bax01234");
        let refused = respond(
            &alipay,
            "alipay.trade.precreate",
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TOTAL_FEE_EXCEED","sub_msg":"订单金额超过限额"}"#,
        );
        match parse(&config, &req, &refused) {
            Err(AlipayError::Gateway(e)) => {
                assert_eq!(e.sub_code, "ACQ.TOTAL_FEE_EXCEED");
                assert_eq!(e.kind(), crate::GatewayErrorKind::Refused);
            }
            other => panic!("{other:?}"),
        }
    }
}
