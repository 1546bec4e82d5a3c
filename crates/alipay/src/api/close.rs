//! `alipay.trade.close`: close an unpaid trade.

use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeClose {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trade_no: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeCloseResponse {
    #[serde(default)]
    pub trade_no: Option<String>,
    #[serde(default)]
    pub out_trade_no: Option<String>,
}

impl AlipayApi for TradeClose {
    type Response = TradeCloseResponse;

    fn method(&self) -> &str {
        "alipay.trade.close"
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
    fn wire_form_and_responses() {
        let (config, alipay) = test_config();
        let req = TradeClose {
            out_trade_no: Some("X1".into()),
            trade_no: None,
        };
        let signed = prepare(&config, &req, &CallOptions::default(), NOW).unwrap();
        assert_signed(
            &config,
            &signed,
            &golden("alipay.trade.close", r#"{"out_trade_no":"X1"}"#, "", ""),
        );
        let ok = respond(
            &alipay,
            "alipay.trade.close",
            r#"{"code":"10000","msg":"Success","out_trade_no":"X1","trade_no":"2026112622001411111111111111"}"#,
        );
        assert_eq!(
            parse(&config, &req, &ok).unwrap().out_trade_no.as_deref(),
            Some("X1")
        );
        let paid = respond(
            &alipay,
            "alipay.trade.close",
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TRADE_STATUS_ERROR","sub_msg":"交易状态不合法"}"#,
        );
        match parse(&config, &req, &paid) {
            Err(AlipayError::Gateway(e)) => assert_eq!(e.kind(), crate::GatewayErrorKind::Refused),
            other => panic!("{other:?}"),
        }
    }
}
