//! WeChat Pay status words, parsed into closed enums and mapped to the core vocabulary with
//! exhaustive matches: a new word is a parse error someone must look at, never a silent default.

use paybridge_core::channel::{ProviderPaymentStatus, ProviderRefundStatus};
use paybridge_core::ProviderPayoutStatus;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown WeChat Pay {0}")]
pub struct UnknownStatus(pub &'static str);

/// `trade_state` (both API versions use the same words).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TradeState {
    Success,
    Refund,
    NotPay,
    Closed,
    Revoked,
    UserPaying,
    PayError,
}

impl TradeState {
    pub fn parse(s: &str) -> Result<TradeState, UnknownStatus> {
        Ok(match s {
            "SUCCESS" => TradeState::Success,
            "REFUND" => TradeState::Refund,
            "NOTPAY" => TradeState::NotPay,
            "CLOSED" => TradeState::Closed,
            "REVOKED" => TradeState::Revoked,
            "USERPAYING" => TradeState::UserPaying,
            "PAYERROR" => TradeState::PayError,
            _ => return Err(UnknownStatus("trade_state")),
        })
    }

    pub fn to_core(self) -> ProviderPaymentStatus {
        match self {
            TradeState::Success => ProviderPaymentStatus::Paid,
            TradeState::Refund => ProviderPaymentStatus::Refunded,
            TradeState::NotPay => ProviderPaymentStatus::Pending,
            TradeState::Closed => ProviderPaymentStatus::Closed,
            TradeState::Revoked => ProviderPaymentStatus::Closed,
            TradeState::UserPaying => ProviderPaymentStatus::UserPaying,
            TradeState::PayError => ProviderPaymentStatus::Failed,
        }
    }
}

/// APIv3 refund `status` / `refund_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V3RefundStatus {
    Success,
    Closed,
    Processing,
    Abnormal,
}

impl V3RefundStatus {
    pub fn parse(s: &str) -> Result<Self, UnknownStatus> {
        Ok(match s {
            "SUCCESS" => V3RefundStatus::Success,
            "CLOSED" => V3RefundStatus::Closed,
            "PROCESSING" => V3RefundStatus::Processing,
            "ABNORMAL" => V3RefundStatus::Abnormal,
            _ => return Err(UnknownStatus("refund status")),
        })
    }

    pub fn to_core(self) -> ProviderRefundStatus {
        match self {
            V3RefundStatus::Success => ProviderRefundStatus::Succeeded,
            V3RefundStatus::Processing => ProviderRefundStatus::Processing,
            // Abnormal: the buyer's card was cancelled etc.; the money did not go back by this refund.
            V3RefundStatus::Closed | V3RefundStatus::Abnormal => ProviderRefundStatus::Failed,
        }
    }
}

/// APIv2 `refund_status` (query `refund_status_$n`, notify `refund_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2RefundStatus {
    Success,
    RefundClose,
    Processing,
    Change,
}

impl V2RefundStatus {
    pub fn parse(s: &str) -> Result<Self, UnknownStatus> {
        Ok(match s {
            "SUCCESS" => V2RefundStatus::Success,
            "REFUNDCLOSE" => V2RefundStatus::RefundClose,
            "PROCESSING" => V2RefundStatus::Processing,
            "CHANGE" => V2RefundStatus::Change,
            _ => return Err(UnknownStatus("refund_status")),
        })
    }

    pub fn to_core(self) -> ProviderRefundStatus {
        match self {
            V2RefundStatus::Success => ProviderRefundStatus::Succeeded,
            V2RefundStatus::Processing => ProviderRefundStatus::Processing,
            V2RefundStatus::RefundClose | V2RefundStatus::Change => ProviderRefundStatus::Failed,
        }
    }
}

/// The `state` of an APIv3 transfer bill (商家转账). Deserialised directly: an unknown word is
/// a parse error (the answer is then treated as unknown and the bill queried again), never a
/// default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferBillState {
    /// 转账已受理: the bill exists; the confirmation page cannot be opened yet.
    Accepted,
    /// 转账处理中: funds being locked (it stays here while the balance is short).
    Processing,
    /// 待收款用户确认: `package_info` can be handed to the payee now.
    WaitUserConfirm,
    /// 转账中: the payee confirmed; the result is not known yet.
    Transfering,
    Success,
    /// See `fail_reason`; an expired bill ends here too.
    Fail,
    /// The merchant's cancel was accepted; the refund to the funding account is running.
    Canceling,
    Cancelled,
}

impl TransferBillState {
    pub const ALL: [TransferBillState; 8] = [
        TransferBillState::Accepted,
        TransferBillState::Processing,
        TransferBillState::WaitUserConfirm,
        TransferBillState::Transfering,
        TransferBillState::Success,
        TransferBillState::Fail,
        TransferBillState::Canceling,
        TransferBillState::Cancelled,
    ];

    pub fn parse(s: &str) -> Result<Self, UnknownStatus> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(UnknownStatus("transfer bill state"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransferBillState::Accepted => "ACCEPTED",
            TransferBillState::Processing => "PROCESSING",
            TransferBillState::WaitUserConfirm => "WAIT_USER_CONFIRM",
            TransferBillState::Transfering => "TRANSFERING",
            TransferBillState::Success => "SUCCESS",
            TransferBillState::Fail => "FAIL",
            TransferBillState::Canceling => "CANCELING",
            TransferBillState::Cancelled => "CANCELLED",
        }
    }

    pub fn to_core(self) -> ProviderPayoutStatus {
        match self {
            TransferBillState::Accepted | TransferBillState::Processing => {
                ProviderPayoutStatus::Processing
            }
            // TRANSFERING: the payee may open the confirmation page again to retry, so it is
            // still in the payee's hands.
            TransferBillState::WaitUserConfirm | TransferBillState::Transfering => {
                ProviderPayoutStatus::AwaitingConfirmation
            }
            TransferBillState::Success => ProviderPayoutStatus::Succeeded,
            TransferBillState::Fail => ProviderPayoutStatus::Failed,
            TransferBillState::Canceling => ProviderPayoutStatus::Cancelling,
            TransferBillState::Cancelled => ProviderPayoutStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_maps() {
        let words = [
            "SUCCESS",
            "REFUND",
            "NOTPAY",
            "CLOSED",
            "REVOKED",
            "USERPAYING",
            "PAYERROR",
        ];
        let mapped: Vec<_> = words
            .iter()
            .map(|w| TradeState::parse(w).map(TradeState::to_core))
            .collect();
        use ProviderPaymentStatus::*;
        assert_eq!(
            mapped,
            vec![
                Ok(Paid),
                Ok(Refunded),
                Ok(Pending),
                Ok(Closed),
                Ok(Closed),
                Ok(UserPaying),
                Ok(Failed)
            ]
        );
        assert!(TradeState::parse("success").is_err());
        assert_eq!(
            V3RefundStatus::parse("ABNORMAL").map(V3RefundStatus::to_core),
            Ok(ProviderRefundStatus::Failed)
        );
        assert_eq!(
            V2RefundStatus::parse("PROCESSING").map(V2RefundStatus::to_core),
            Ok(ProviderRefundStatus::Processing)
        );
        assert!(V2RefundStatus::parse("X").is_err());
    }

    #[test]
    fn every_transfer_bill_state_maps_and_round_trips() {
        use ProviderPayoutStatus::*;
        let mapped: Vec<_> = TransferBillState::ALL
            .iter()
            .map(|s| {
                let word = serde_json::to_string(s).unwrap_or_default();
                assert_eq!(word, format!("\"{}\"", s.as_str()));
                assert_eq!(TransferBillState::parse(s.as_str()), Ok(*s));
                (s.as_str(), s.to_core())
            })
            .collect();
        assert_eq!(
            mapped,
            vec![
                ("ACCEPTED", Processing),
                ("PROCESSING", Processing),
                ("WAIT_USER_CONFIRM", AwaitingConfirmation),
                ("TRANSFERING", AwaitingConfirmation),
                ("SUCCESS", Succeeded),
                ("FAIL", Failed),
                ("CANCELING", Cancelling),
                ("CANCELLED", Cancelled),
            ]
        );
        assert!(TransferBillState::parse("CANCELED").is_err());
        assert!(serde_json::from_str::<TransferBillState>("\"TRANSFERRING\"").is_err());
    }
}
