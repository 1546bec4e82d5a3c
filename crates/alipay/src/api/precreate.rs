//! `alipay.trade.precreate`: a QR code the buyer scans.

use serde::{Deserialize, Serialize};

use super::{alipay_api, OrderInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradePrecreate {
    #[serde(flatten)]
    pub order: OrderInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradePrecreateResponse {
    pub out_trade_no: String,
    pub qr_code: String,
}

alipay_api!(
    TradePrecreate,
    "alipay.trade.precreate",
    TradePrecreateResponse
);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use paybridge_core::Fen;

    use super::*;
    use crate::api::testutil::{answer, golden, sub_code, wire};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_and_response() {
        let req = TradePrecreate {
            order: OrderInfo::new("Q1", Fen(880), "Scan me"),
        };
        let biz = r#"{"out_trade_no":"Q1","total_amount":"8.80","subject":"Scan me"}"#;
        let expected = golden("alipay.trade.precreate", biz, "", "");
        let (config, alipay, signed) = wire(&req, &CallOptions::default(), &expected);
        assert!(!signed.idempotent);
        let resp = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","out_trade_no":"Q1","qr_code":"https:\/\/qr.alipay.com\/bax01234"}"#).unwrap();
        assert_eq!(resp.qr_code, "https://qr.alipay.com/bax01234");
        let refused = answer(
            &config,
            &alipay,
            &req,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ACQ.TOTAL_FEE_EXCEED","sub_msg":"订单金额超过限额"}"#,
        );
        assert_eq!(sub_code(refused), "ACQ.TOTAL_FEE_EXCEED");
    }
}
