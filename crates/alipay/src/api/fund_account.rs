//! `alipay.fund.account.query`: the balance a payout is paid from (`ACCTRANS_ACCOUNT`).

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use super::AlipayApi;
use crate::AlipayError;

pub const METHOD: &str = "alipay.fund.account.query";
/// The balance account transfers draw on.
pub const ACCOUNT_TYPE_ACCTRANS: &str = "ACCTRANS_ACCOUNT";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FundAccountQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alipay_user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alipay_open_id: Option<String>,
    pub account_type: String,
}

impl FundAccountQuery {
    /// The merchant's own `2088…` user id.
    pub fn user_id(id: impl Into<String>) -> Self {
        FundAccountQuery {
            alipay_user_id: Some(id.into()),
            alipay_open_id: None,
            account_type: ACCOUNT_TYPE_ACCTRANS.into(),
        }
    }

    pub fn open_id(id: impl Into<String>) -> Self {
        FundAccountQuery {
            alipay_user_id: None,
            alipay_open_id: Some(id.into()),
            account_type: ACCOUNT_TYPE_ACCTRANS.into(),
        }
    }
}

impl AlipayApi for FundAccountQuery {
    type Response = FundAccountQueryResponse;

    fn method(&self) -> &str {
        METHOD
    }

    fn biz_content(&self) -> Result<String, AlipayError> {
        if self.alipay_user_id.is_none() && self.alipay_open_id.is_none() {
            return Err(AlipayError::InvalidRequest(
                "alipay_user_id or alipay_open_id is required".into(),
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
pub struct FundAccountQueryResponse {
    #[serde(with = "super::yuan")]
    pub available_amount: Fen,
    #[serde(default, deserialize_with = "super::opt_yuan::deserialize")]
    pub freeze_amount: Option<Fen>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::{answer, cert_config, test_config, NOW};
    use crate::request::CallOptions;

    #[test]
    fn wire_form_answer_and_cert_mode() {
        let q = FundAccountQuery::user_id("2088301409188095");
        assert_eq!(
            q.biz_content().unwrap(),
            r#"{"alipay_user_id":"2088301409188095","account_type":"ACCTRANS_ACCOUNT"}"#
        );
        let (config, alipay) = cert_config();
        let r = answer(&config, &alipay, &q, r#"{"code":"10000","msg":"Success","available_amount":"1234.56","freeze_amount":"0.01"}"#).unwrap();
        assert_eq!(
            (r.available_amount, r.freeze_amount),
            (Fen(123_456), Some(Fen(1)))
        );
        // Never through a float: 0.29 yuan is 29 fen exactly.
        let r = answer(
            &config,
            &alipay,
            &q,
            r#"{"code":"10000","msg":"Success","available_amount":"0.29"}"#,
        )
        .unwrap();
        assert_eq!(r.available_amount, Fen(29));
        let (pk_mode, _) = test_config();
        assert!(matches!(
            crate::api::prepare(&pk_mode, &q, &CallOptions::default(), NOW),
            Err(AlipayError::CertModeRequired { .. })
        ));
    }
}
