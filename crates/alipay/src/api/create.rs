//! `alipay.trade.create`: JSAPI / mini-program; the app calls `my.tradePay` with the `trade_no`.

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::{to_biz_content, AlipayApi};
use crate::AlipayError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TradeCreate {
    pub out_trade_no: String,
    #[serde(with = "super::yuan")]
    pub total_amount: Fen,
    pub subject: String,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_expire: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passback_params: Option<String>,
}

impl TradeCreate {
    /// `payer_id` starting with `2088` (16 digits) is a `buyer_id`, anything else an open id.
    pub fn new(
        out_trade_no: impl Into<String>,
        total_amount: Fen,
        subject: impl Into<String>,
        payer_id: &str,
    ) -> Self {
        let is_user_id = payer_id.len() == 16
            && payer_id.starts_with("2088")
            && payer_id.bytes().all(|b| b.is_ascii_digit());
        TradeCreate {
            out_trade_no: out_trade_no.into(),
            total_amount,
            subject: subject.into(),
            product_code: "JSAPI_PAY".into(),
            buyer_id: is_user_id.then(|| payer_id.to_string()),
            buyer_open_id: (!is_user_id).then(|| payer_id.to_string()),
            op_app_id: None,
            body: None,
            time_expire: None,
            passback_params: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TradeCreateResponse {
    pub out_trade_no: String,
    pub trade_no: String,
}

impl AlipayApi for TradeCreate {
    type Response = TradeCreateResponse;

    fn method(&self) -> &str {
        "alipay.trade.create"
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
    fn payer_kind() {
        let a = TradeCreate::new("C", Fen(1), "s", "2088102534368455");
        assert_eq!(a.buyer_id.as_deref(), Some("2088102534368455"));
        assert_eq!(a.buyer_open_id, None);
        let b = TradeCreate::new(
            "C",
            Fen(1),
            "s",
            "074a1CcTG1LelxKe4xQC0zgNdId0nxi95b5lsNpazWYoCo5",
        );
        assert_eq!(b.buyer_id, None);
        assert!(b.buyer_open_id.is_some());
    }

    #[test]
    fn wire_form_and_response() {
        let (config, alipay) = test_config();
        let req = TradeCreate::new("C1", Fen(1999), "Mini", "2088102534368455");
        let opts = CallOptions {
            app_auth_token: Some("202611BBxxx".into()),
            ..CallOptions::default()
        };
        let signed = prepare(&config, &req, &opts, NOW).unwrap();
        let biz = r#"{"out_trade_no":"C1","total_amount":"19.99","subject":"Mini","product_code":"JSAPI_PAY","buyer_id":"2088102534368455"}"#;
        assert_signed(
            &config,
            &signed,
            &format!(
                "app_auth_token=202611BBxxx&{}",
                golden("alipay.trade.create", biz, "", "")
            ),
        );
        let raw = respond(
            &alipay,
            "alipay.trade.create",
            r#"{"code":"10000","msg":"Success","out_trade_no":"C1","trade_no":"2026112622001446881000041395"}"#,
        );
        let resp = parse(&config, &req, &raw).unwrap();
        assert_eq!(resp.trade_no, "2026112622001446881000041395");
    }
}
