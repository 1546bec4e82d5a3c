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
}
