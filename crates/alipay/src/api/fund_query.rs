//! `alipay.fund.trans.common.query`: a transfer's current state, by the merchant's
//! `out_biz_no` (with its product code and scene) or Alipay's numbers. Safe to repeat.

use paybridge_core::{Fen, PayoutSnapshot};
use serde::{Deserialize, Serialize};

use super::fund_transfer::{
    FundTransStatus, BIZ_SCENE_DIRECT_TRANSFER, PRODUCT_TRANS_ACCOUNT_NO_PWD,
};
use super::AlipayApi;
use crate::AlipayError;

pub const METHOD: &str = "alipay.fund.trans.common.query";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundTransCommonQuery {
    /// Required with `out_biz_no`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product_code: Option<String>,
    /// Required with `out_biz_no`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub biz_scene: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_biz_no: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pay_fund_order_id: Option<String>,
}

impl FundTransCommonQuery {
    /// A uni.transfer payout by its own number.
    pub fn out_biz_no(no: impl Into<String>) -> Self {
        FundTransCommonQuery {
            product_code: Some(PRODUCT_TRANS_ACCOUNT_NO_PWD.into()),
            biz_scene: Some(BIZ_SCENE_DIRECT_TRANSFER.into()),
            out_biz_no: Some(no.into()),
            order_id: None,
            pay_fund_order_id: None,
        }
    }

    pub fn order_id(id: impl Into<String>) -> Self {
        FundTransCommonQuery {
            product_code: None,
            biz_scene: None,
            out_biz_no: None,
            order_id: Some(id.into()),
            pay_fund_order_id: None,
        }
    }
}

impl AlipayApi for FundTransCommonQuery {
    type Response = FundTransCommonQueryResponse;

    fn method(&self) -> &str {
        METHOD
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        if self.out_biz_no.is_none() && self.order_id.is_none() && self.pay_fund_order_id.is_none()
        {
            return Err(AlipayError::InvalidRequest(
                "one of out_biz_no, order_id, pay_fund_order_id is required".into(),
            ));
        }
        if self.out_biz_no.is_some() && (self.product_code.is_none() || self.biz_scene.is_none()) {
            return Err(AlipayError::InvalidRequest(
                "a query by out_biz_no needs product_code and biz_scene".into(),
            ));
        }
        super::to_biz_content(self)
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn requires_cert_mode(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FundTransCommonQueryResponse {
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub pay_fund_order_id: Option<String>,
    #[serde(default)]
    pub out_biz_no: Option<String>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub trans_amount: Option<Fen>,
    pub status: FundTransStatus,
    #[serde(default)]
    pub pay_date: Option<String>,
    #[serde(default)]
    pub arrival_time_end: Option<String>,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub order_fee: Option<Fen>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub sub_status: Option<String>,
    #[serde(default)]
    pub passback_params: Option<String>,
}

impl FundTransCommonQueryResponse {
    /// `out_no` is the number queried (the answer may omit it when queried by order id).
    pub fn snapshot(&self, out_no: &str) -> PayoutSnapshot {
        let reason = self
            .error_code
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| self.fail_reason.clone().filter(|r| !r.is_empty()));
        PayoutSnapshot {
            out_no: self
                .out_biz_no
                .clone()
                .unwrap_or_else(|| out_no.to_string()),
            provider_no: self.order_id.clone(),
            status: crate::convert::payout_status(self.status),
            provider_status: self.status.as_str().to_string(),
            amount: self.trans_amount,
            fail_reason: reason,
            package_info: None,
            updated_at: self.pay_date.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, cert_config, sub_code, NOW};
    use crate::request::CallOptions;
    use paybridge_core::ProviderPayoutStatus;

    #[test]
    fn wire_form_and_answers() {
        let q = FundTransCommonQuery::out_biz_no("201806300001");
        assert_eq!(
            q.biz_content().unwrap(),
            r#"{"product_code":"TRANS_ACCOUNT_NO_PWD","biz_scene":"DIRECT_TRANSFER","out_biz_no":"201806300001"}"#
        );
        assert_eq!(
            FundTransCommonQuery::order_id("2019")
                .biz_content()
                .unwrap(),
            r#"{"order_id":"2019"}"#
        );
        let mut bare = FundTransCommonQuery::out_biz_no("x");
        bare.product_code = None;
        assert!(bare.biz_content().is_err());
        let (config, alipay) = cert_config();
        let signed = crate::api::prepare(&config, &q, &CallOptions::default(), NOW).unwrap();
        assert!(signed.idempotent);
        assert_eq!(signed.param("method"), Some(METHOD));
        let r = answer(&config, &alipay, &q, r#"{"code":"10000","msg":"Success","order_id":"20190801110070000006380000250621","pay_fund_order_id":"20190801110070001506380000251556","out_biz_no":"201806300001","trans_amount":"23.00","status":"FAIL","pay_date":"2019-08-21 00:00:00","error_code":"PAYEE_USER_INFO_ERROR","fail_reason":"支付宝账号和姓名不匹配"}"#).unwrap();
        let s = r.snapshot("201806300001");
        assert_eq!(
            (s.status, s.amount, s.fail_reason.as_deref()),
            (
                ProviderPayoutStatus::Failed,
                Some(Fen(2300)),
                Some("PAYEE_USER_INFO_ERROR")
            )
        );
        let missing = answer(
            &config,
            &alipay,
            &q,
            r#"{"code":"40004","msg":"Business Failed","sub_code":"ORDER_NOT_EXIST","sub_msg":"转账订单不存在"}"#,
        );
        assert!(crate::convert::is_payout_not_found(
            missing.as_ref().unwrap_err()
        ));
        assert_eq!(sub_code(missing), "ORDER_NOT_EXIST");
    }
}
