//! WeChat Pay status words, parsed into closed enums and mapped to the core vocabulary with
//! exhaustive matches: a new word is a parse error someone must look at, never a silent default.

use paybridge_core::channel::{ProviderPaymentStatus, ProviderRefundStatus};

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
}
