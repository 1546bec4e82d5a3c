//! `alipay.trade.create`: JSAPI / mini-program; the app calls `my.tradePay` with the `trade_no`.

use serde::{Deserialize, Serialize};

use super::{alipay_api, OrderInfo};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeCreate {
    #[serde(flatten)]
    pub order: OrderInfo,
    /// `JSAPI_PAY`.
    pub product_code: String,
    /// The buyer's `2088...` user id, or...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_id: Option<String>,
    /// ...the per-app `buyer_open_id` that replaces it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_open_id: Option<String>,
    /// The mini-program's app id when it differs from the calling app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op_app_id: Option<String>,
}

impl TradeCreate {
    /// A `payer_id` of 16 digits starting with `2088` is a `buyer_id`, anything else an open id.
    pub fn new(order: OrderInfo, payer_id: &str) -> Self {
        let is_user_id = payer_id.len() == 16
            && payer_id.starts_with("2088")
            && payer_id.bytes().all(|b| b.is_ascii_digit());
        TradeCreate {
            order,
            product_code: "JSAPI_PAY".into(),
            buyer_id: is_user_id.then(|| payer_id.to_string()),
            buyer_open_id: (!is_user_id).then(|| payer_id.to_string()),
            op_app_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeCreateResponse {
    pub out_trade_no: String,
    pub trade_no: String,
}

alipay_api!(TradeCreate, "alipay.trade.create", TradeCreateResponse);

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use paybridge_core::Fen;

    use super::*;
    use crate::api::testutil::{answer, golden, wire};
    use crate::request::CallOptions;

    #[test]
    fn payer_kind() {
        let a = TradeCreate::new(OrderInfo::new("C", Fen(1), "s"), "2088102534368455");
        assert_eq!(a.buyer_id.as_deref(), Some("2088102534368455"));
        assert_eq!(a.buyer_open_id, None);
        let open_id = "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5";
        let b = TradeCreate::new(OrderInfo::new("C", Fen(1), "s"), open_id);
        assert_eq!(b.buyer_id, None);
        assert_eq!(b.buyer_open_id.as_deref(), Some(open_id));
    }

    #[test]
    fn wire_form_isv_and_response() {
        let req = TradeCreate::new(OrderInfo::new("C1", Fen(1999), "Mini"), "2088102534368455");
        let opts = CallOptions {
            app_auth_token: Some("202611BBxxx".into()),
            ..CallOptions::default()
        };
        let biz = r#"{"out_trade_no":"C1","total_amount":"19.99","subject":"Mini","product_code":"JSAPI_PAY","buyer_id":"2088102534368455"}"#;
        let expected = format!(
            "app_auth_token=202611BBxxx&{}",
            golden("alipay.trade.create", biz, "", "")
        );
        let (config, alipay, _) = wire(&req, &opts, &expected);
        let resp = answer(&config, &alipay, &req, r#"{"code":"10000","msg":"Success","out_trade_no":"C1","trade_no":"2026112622001446881000041395"}"#).unwrap();
        assert_eq!(resp.trade_no, "2026112622001446881000041395");
    }
}
