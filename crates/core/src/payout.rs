//! The provider-neutral vocabulary of payouts (WeChat Pay 商家转账, Alipay 单笔转账): what a
//! provider says about a transfer, mapped here by the provider crates with exhaustive matches.
//! The gateway's own payout state machine builds on [`ProviderPayoutStatus`].

use serde::{Deserialize, Serialize};

use crate::Fen;

/// A transfer as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderPayoutStatus {
    /// The provider has no transfer under this number: it was never created (a refused or
    /// lost request), so the same number may be sent again.
    NotFound,
    /// Accepted, the outcome not yet known (WeChat ACCEPTED/PROCESSING, Alipay DEALING).
    Processing,
    /// Waiting for the payee to collect it (WeChat WAIT_USER_CONFIRM/TRANSFERING).
    AwaitingConfirmation,
    /// The merchant's cancel was accepted and is being processed (WeChat CANCELING).
    Cancelling,
    Succeeded,
    /// Definitely not paid: the money is back with the payer.
    Failed,
    /// Cancelled by the merchant before the payee collected it.
    Cancelled,
}

impl ProviderPayoutStatus {
    /// Whether the provider will never change this answer.
    pub fn is_final(self) -> bool {
        match self {
            ProviderPayoutStatus::Succeeded
            | ProviderPayoutStatus::Failed
            | ProviderPayoutStatus::Cancelled => true,
            ProviderPayoutStatus::NotFound
            | ProviderPayoutStatus::Processing
            | ProviderPayoutStatus::AwaitingConfirmation
            | ProviderPayoutStatus::Cancelling => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderPayoutStatus::NotFound => "not_found",
            ProviderPayoutStatus::Processing => "processing",
            ProviderPayoutStatus::AwaitingConfirmation => "awaiting_confirmation",
            ProviderPayoutStatus::Cancelling => "cancelling",
            ProviderPayoutStatus::Succeeded => "succeeded",
            ProviderPayoutStatus::Failed => "failed",
            ProviderPayoutStatus::Cancelled => "cancelled",
        }
    }
}

/// The provider's view of one transfer, in our vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutSnapshot {
    /// The merchant's number (`out_bill_no` / `out_biz_no`): the payout's own id.
    pub out_no: String,
    /// WeChat `transfer_bill_no`, Alipay `order_id`.
    pub provider_no: Option<String>,
    pub status: ProviderPayoutStatus,
    /// The provider's own word (`WAIT_USER_CONFIRM`, `DEALING`...), for people reading logs.
    pub provider_status: String,
    pub amount: Option<Fen>,
    /// WeChat `fail_reason`, Alipay `error_code`/`sub_code`, when it failed.
    pub fail_reason: Option<String>,
    /// WeChat `package_info` for `wx.requestMerchantTransfer`, while awaiting confirmation.
    pub package_info: Option<String>,
    /// The provider's last-update or payment time, as the provider wrote it.
    pub updated_at: Option<String>,
}

/// Whom a payout goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PayoutPayee {
    /// WeChat Pay: the payee's openid under `app_id` (the account's own app when `None`).
    WechatOpenId {
        openid: String,
        app_id: Option<String>,
    },
    /// Alipay `ALIPAY_USER_ID` (`2088…`).
    AlipayUserId { user_id: String },
    /// Alipay `ALIPAY_LOGON_ID` (e-mail or mobile); needs `payee_name`.
    AlipayLogonId { logon_id: String },
    /// Alipay `ALIPAY_OPEN_ID`.
    AlipayOpenId { open_id: String },
}

/// One `{info_type, info_content}` the provider wants reported for the transfer scene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneReport {
    pub info_type: String,
    pub info_content: String,
}

/// Everything needed to pay money out at a provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayout {
    /// The payout's own id, sent as `out_bill_no` / `out_biz_no`: the same number is never a
    /// second transfer.
    pub out_no: String,
    pub amount: Fen,
    pub payee: PayoutPayee,
    /// The payee's real name, checked by the provider. Personal data: redacted from `Debug`.
    pub payee_name: Option<String>,
    /// Shown to the payee (WeChat `transfer_remark`, Alipay `remark`).
    pub remark: String,
    /// Alipay `order_title`, the line in the payee's bill.
    pub title: Option<String>,
    pub notify_url: Option<String>,
    /// WeChat `transfer_scene_id` (required there), Alipay `transfer_scene_name`.
    pub scene: Option<String>,
    pub scene_report: Vec<SceneReport>,
    /// WeChat `user_recv_perception`.
    pub recv_perception: Option<String>,
}

impl std::fmt::Debug for CreatePayout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatePayout")
            .field("out_no", &self.out_no)
            .field("amount", &self.amount)
            .field("payee", &self.payee)
            .field(
                "payee_name",
                &self.payee_name.as_ref().map(|_| "[REDACTED]"),
            )
            .field("remark", &self.remark)
            .field("title", &self.title)
            .field("notify_url", &self.notify_url)
            .field("scene", &self.scene)
            .field("scene_report", &self.scene_report)
            .field("recv_perception", &self.recv_perception)
            .finish()
    }
}

/// A verified payout notification: its dedup id, the merchant it names, what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayoutNotification {
    /// WeChat envelope `id`, Alipay `notify_id`.
    pub notify_id: Option<String>,
    /// WeChat `mch_id`, Alipay `app_id`.
    pub merchant_id: Option<String>,
    pub snapshot: PayoutSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finality() {
        use ProviderPayoutStatus::*;
        let finals: Vec<_> = [
            NotFound,
            Processing,
            AwaitingConfirmation,
            Cancelling,
            Succeeded,
            Failed,
            Cancelled,
        ]
        .into_iter()
        .filter(|s| s.is_final())
        .collect();
        assert_eq!(finals, vec![Succeeded, Failed, Cancelled]);
        assert_eq!(AwaitingConfirmation.as_str(), "awaiting_confirmation");
    }

    #[test]
    fn the_payee_name_never_reaches_debug() {
        let p = CreatePayout {
            out_no: "P1".into(),
            amount: Fen(100),
            payee: PayoutPayee::AlipayLogonId {
                logon_id: "a@b.c".into(),
            },
            payee_name: Some("王五".into()),
            remark: "r".into(),
            title: None,
            notify_url: None,
            scene: None,
            scene_report: vec![],
            recv_perception: None,
        };
        let shown = format!("{p:?}");
        assert!(
            !shown.contains("王五") && shown.contains("[REDACTED]"),
            "{shown}"
        );
    }
}
