//! `alipay.fund.trans.order.changed`: the transfer's state change, delivered in the 消息服务
//! (open message) format rather than as a trade notification: `msg_method`, `utc_timestamp`,
//! `version` and the state in a JSON `biz_content`. It is verified as every notification is
//! (over every received field, rules V1 then V2, empty values dropped then kept), and only
//! then read.

use paybridge_core::{Fen, PayoutSnapshot};
use serde::Deserialize;

use crate::api::FundTransStatus;
use crate::config::AlipayConfig;
use crate::notify::{NotifyForm, NotifyRule};
use crate::AlipayError;

pub const ORDER_CHANGED: &str = "alipay.fund.trans.order.changed";

/// The `biz_content` of the message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FundOrderChangedBiz {
    pub out_biz_no: String,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub pay_fund_order_id: Option<String>,
    /// e.g. `alipay.fund.trans.uni.transfer`.
    #[serde(default)]
    pub origin_interface: Option<String>,
    #[serde(default)]
    pub product_code: Option<String>,
    #[serde(default)]
    pub biz_scene: Option<String>,
    pub status: FundTransStatus,
    /// e.g. `FINISH`.
    #[serde(default)]
    pub action_type: Option<String>,
    #[serde(default, deserialize_with = "crate::api::opt_yuan::deserialize")]
    pub trans_amount: Option<Fen>,
    #[serde(default)]
    pub pay_date: Option<String>,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub fail_reason: Option<String>,
    #[serde(default)]
    pub passback_params: Option<String>,
}

/// A verified order-changed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FundOrderChanged {
    pub notify_id: String,
    /// Milliseconds since the epoch, as a string.
    pub utc_timestamp: Option<String>,
    pub app_id: String,
    pub version: Option<String>,
    /// The rule the signature verified under.
    pub rule: NotifyRule,
    /// The `biz_content` text exactly as signed.
    pub biz_content: String,
    pub biz: FundOrderChangedBiz,
}

impl FundOrderChanged {
    pub fn snapshot(&self) -> PayoutSnapshot {
        let reason = self
            .biz
            .error_code
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| self.biz.fail_reason.clone().filter(|r| !r.is_empty()));
        PayoutSnapshot {
            out_no: self.biz.out_biz_no.clone(),
            provider_no: self.biz.order_id.clone(),
            status: crate::convert::payout_status(self.biz.status),
            provider_status: self.biz.status.as_str().to_string(),
            amount: self.biz.trans_amount,
            fail_reason: reason,
            package_info: None,
            updated_at: self.biz.pay_date.clone(),
        }
    }
}

/// Verifies `form` with the app's Alipay keys, checks it is this app's order-changed message,
/// and reads it. Anything unverifiable, for another app, or of another method is an error
/// that changes nothing (query the transfer instead).
pub fn verify_fund_notify(
    config: &AlipayConfig,
    form: &NotifyForm,
) -> Result<FundOrderChanged, AlipayError> {
    let bad = |m: String| AlipayError::MalformedNotify(m);
    let keys = config.keys.all_verifying_keys();
    let keys: Vec<&paybridge_crypto::RsaPublicKey> =
        keys.iter().map(std::borrow::Borrow::borrow).collect();
    let rule = form
        .verify(&keys)
        .ok_or_else(|| bad("signature does not verify (rules V1 and V2)".into()))?;
    let field = |k: &str| form.get(k).filter(|v| !v.is_empty()).map(str::to_string);
    let method = field("msg_method").unwrap_or_default();
    if method != ORDER_CHANGED {
        return Err(bad(format!("msg_method {method:?} is not {ORDER_CHANGED}")));
    }
    let app_id = field("app_id").ok_or_else(|| bad("missing app_id".into()))?;
    if app_id != config.app_id {
        return Err(bad(format!("app_id {app_id} is not this app")));
    }
    let notify_id = field("notify_id").ok_or_else(|| bad("missing notify_id".into()))?;
    let biz_content = field("biz_content").ok_or_else(|| bad("missing biz_content".into()))?;
    let biz: FundOrderChangedBiz =
        serde_json::from_str(&biz_content).map_err(|e| bad(format!("biz_content: {e}")))?;
    Ok(FundOrderChanged {
        notify_id,
        utc_timestamp: field("utc_timestamp"),
        app_id,
        version: field("version"),
        rule,
        biz_content,
        biz,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::testutil::cert_config;
    use crate::provider::{encode_form, sign_notify};
    use paybridge_core::ProviderPayoutStatus;

    const BIZ: &str = r#"{"action_type":"FINISH","biz_scene":"DIRECT_TRANSFER","order_id":"20191115110070000006770064917564","origin_interface":"alipay.fund.trans.uni.transfer","out_biz_no":"201806300001","pay_date":"2019-11-15 10:41:39","pay_fund_order_id":"20191115110070001506770064943911","product_code":"TRANS_ACCOUNT_NO_PWD","status":"SUCCESS","trans_amount":"23.00"}"#;

    fn fields(app_id: &str, method: &str) -> Vec<(String, String)> {
        [
            ("notify_id", "2019111500222104139007361458459551"),
            ("utc_timestamp", "1573785699758"),
            ("msg_method", method),
            ("app_id", app_id),
            ("version", "1.1"),
            ("biz_content", BIZ),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn verified_then_typed() {
        let (config, alipay) = cert_config();
        for rule in [NotifyRule::V1, NotifyRule::V2] {
            let signed =
                sign_notify(fields("2021000000000002", ORDER_CHANGED), rule, &alipay).unwrap();
            let body = encode_form(&signed, "utf-8").unwrap();
            let form = NotifyForm::parse(&body).unwrap();
            let n = verify_fund_notify(&config, &form).unwrap();
            assert_eq!(n.rule, rule);
            assert_eq!(n.biz_content, BIZ);
            let s = n.snapshot();
            assert_eq!(
                (s.status, s.amount, s.out_no.as_str()),
                (
                    ProviderPayoutStatus::Succeeded,
                    Some(Fen(2300)),
                    "201806300001"
                )
            );
        }
        // Tampered, another app, another message: refused.
        let signed = sign_notify(
            fields("2021000000000002", ORDER_CHANGED),
            NotifyRule::V1,
            &alipay,
        )
        .unwrap();
        let tampered: Vec<(String, String)> = signed
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("23.00", "2300.00")))
            .collect();
        assert!(verify_fund_notify(&config, &NotifyForm::from_pairs(tampered)).is_err());
        let other = sign_notify(
            fields("2021000000000009", ORDER_CHANGED),
            NotifyRule::V1,
            &alipay,
        )
        .unwrap();
        assert!(verify_fund_notify(&config, &NotifyForm::from_pairs(other)).is_err());
        let other = sign_notify(
            fields(
                "2021000000000002",
                "alipay.trade.refund.depositback.completed",
            ),
            NotifyRule::V1,
            &alipay,
        )
        .unwrap();
        assert!(verify_fund_notify(&config, &NotifyForm::from_pairs(other)).is_err());
    }
}
