//! The one payment state machine and the one refund state machine.
//!
//! The store checks every planned move against these tables on the row as locked by its unit of
//! work, so they are the single source of which moves are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::types::ParseEnumError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Stored locally, not yet accepted by the provider.
    Created,
    /// The provider has the order; the buyer has not paid (or is typing a password).
    Pending,
    Paid,
    PartiallyRefunded,
    Refunded,
    /// Closed unpaid (expired, cancelled, or closed at the provider).
    Closed,
    /// The provider refused the order or the payment failed definitively.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {machine} transition {from} -> {to}")]
pub struct TransitionError {
    pub machine: &'static str,
    pub from: String,
    pub to: String,
}

impl PaymentStatus {
    pub const ALL: &'static [PaymentStatus] = &[
        PaymentStatus::Created,
        PaymentStatus::Pending,
        PaymentStatus::Paid,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Refunded,
        PaymentStatus::Closed,
        PaymentStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Created => "created",
            PaymentStatus::Pending => "pending",
            PaymentStatus::Paid => "paid",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
            PaymentStatus::Closed => "closed",
            PaymentStatus::Failed => "failed",
        }
    }

    /// The states from which `to` may be entered.
    pub fn allowed_from(to: PaymentStatus) -> &'static [PaymentStatus] {
        use PaymentStatus::*;
        match to {
            Created => &[],
            Pending => &[Created],
            // A late payment after close is still money received: Closed -> Paid is legal and is
            // flagged by the service, never silently dropped.
            Paid => &[Created, Pending, Closed, Failed],
            PartiallyRefunded => &[Paid, PartiallyRefunded],
            Refunded => &[Paid, PartiallyRefunded],
            Closed => &[Created, Pending],
            Failed => &[Created, Pending],
        }
    }

    pub fn can_transition(self, to: PaymentStatus) -> bool {
        PaymentStatus::allowed_from(to).contains(&self)
    }

    pub fn check_transition(self, to: PaymentStatus) -> Result<(), TransitionError> {
        if self.can_transition(to) {
            Ok(())
        } else {
            Err(TransitionError {
                machine: "payment",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }

    /// Paid at some point (refunds are possible from here).
    pub fn is_paid(self) -> bool {
        matches!(self, PaymentStatus::Paid | PaymentStatus::PartiallyRefunded)
    }

    /// No provider event can move it any more, except the late-payment case of `Closed`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            PaymentStatus::Refunded | PaymentStatus::Closed | PaymentStatus::Failed
        )
    }
}

impl RefundStatus {
    pub const ALL: &'static [RefundStatus] = &[
        RefundStatus::Pending,
        RefundStatus::Succeeded,
        RefundStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
        }
    }

    pub fn allowed_from(to: RefundStatus) -> &'static [RefundStatus] {
        match to {
            RefundStatus::Pending => &[],
            RefundStatus::Succeeded | RefundStatus::Failed => &[RefundStatus::Pending],
        }
    }

    pub fn check_transition(self, to: RefundStatus) -> Result<(), TransitionError> {
        if RefundStatus::allowed_from(to).contains(&self) {
            Ok(())
        } else {
            Err(TransitionError {
                machine: "refund",
                from: self.to_string(),
                to: to.to_string(),
            })
        }
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RefundStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PaymentStatus {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentStatus::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "payment status",
                value: s.to_string(),
            })
    }
}

impl FromStr for RefundStatus {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RefundStatus::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ParseEnumError {
                kind: "refund status",
                value: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::PaymentStatus::*;
    use super::*;

    #[test]
    fn payment_machine() {
        assert!(Created.can_transition(Pending));
        assert!(Pending.can_transition(Paid));
        assert!(
            Closed.can_transition(Paid),
            "late payment must be representable"
        );
        assert!(!Paid.can_transition(Pending));
        assert!(!Paid.can_transition(Closed));
        assert!(!Refunded.can_transition(Paid));
        assert!(!Refunded.can_transition(PartiallyRefunded));
        assert!(Pending.check_transition(Refunded).is_err());
    }

    #[test]
    fn refund_machine() {
        assert!(RefundStatus::Pending
            .check_transition(RefundStatus::Succeeded)
            .is_ok());
        assert!(RefundStatus::Succeeded
            .check_transition(RefundStatus::Failed)
            .is_err());
    }

    #[test]
    fn status_strings_roundtrip() {
        for s in PaymentStatus::ALL {
            assert_eq!(s.as_str().parse::<PaymentStatus>(), Ok(*s));
        }
        for s in RefundStatus::ALL {
            assert_eq!(s.as_str().parse::<RefundStatus>(), Ok(*s));
        }
    }
}
