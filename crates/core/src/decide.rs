//! THE decision functions: what an observation does to a payment or a refund.
//!
//! `(current state, observation) -> Decision`. Pure and exhaustive; the service asks, the store
//! executes the answer as a conditional update with its audit row and event in one transaction.
//! Nothing else in the code base decides a transition.

use crate::channel::{ProviderPaymentStatus, ProviderRefundStatus};
use crate::{Fen, PaymentStatus, RefundStatus};

/// Something learnt about a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentObservation {
    /// The provider accepted the order and handed back what the buyer needs to pay.
    Accepted,
    /// What the provider says the order is: a verified notification, a query answer, or the
    /// synchronous answer of a barcode payment. `amount` is the order total the provider holds.
    Provider {
        status: ProviderPaymentStatus,
        amount: Option<Fen>,
    },
    /// The provider definitively refused to create the order, and a query found no order.
    CreateRefused,
    /// The order can no longer be paid: the provider confirmed our close, or the provider never
    /// had it and it expired.
    Closed,
}

/// The webhook event a decision emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentEvent {
    Paid,
    Closed,
    Failed,
}

impl PaymentEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentEvent::Paid => "payment.paid",
            PaymentEvent::Closed => "payment.closed",
            PaymentEvent::Failed => "payment.failed",
        }
    }
}

/// What to do with a payment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentDecision {
    /// The new state; `None` changes no state (a duplicate, stale or contradicting observation).
    pub to: Option<PaymentStatus>,
    /// A state passed through on the way to `to` and audited as its own step: a payment the
    /// provider reports paid before we saw its create answer was pending at the provider first.
    pub via: Option<PaymentStatus>,
    pub event: Option<PaymentEvent>,
    /// Money arrived for an order we had closed or failed: kept, flagged, and handed to the late
    /// payment policy.
    pub late: bool,
    /// The observation contradicts the order (amount): nothing changes, a person looks at it and
    /// an active query asks the provider again.
    pub mismatch: Option<String>,
}

impl PaymentDecision {
    fn none() -> Self {
        PaymentDecision::default()
    }

    fn to(to: PaymentStatus, event: Option<PaymentEvent>) -> Self {
        PaymentDecision {
            to: Some(to),
            event,
            ..PaymentDecision::default()
        }
    }

    pub fn changes(&self) -> bool {
        self.to.is_some()
    }
}

/// Decides what `obs` does to a payment in `current` whose order total is `order_amount`.
pub fn decide_payment(
    current: PaymentStatus,
    order_amount: Fen,
    obs: PaymentObservation,
) -> PaymentDecision {
    use PaymentStatus as S;
    match obs {
        PaymentObservation::Accepted => match current {
            S::Created => PaymentDecision::to(S::Pending, None),
            S::Pending | S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed => {
                PaymentDecision::none()
            }
        },
        PaymentObservation::CreateRefused => match current {
            S::Created => PaymentDecision::to(S::Failed, Some(PaymentEvent::Failed)),
            S::Pending | S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed => {
                PaymentDecision::none()
            }
        },
        PaymentObservation::Closed => match current {
            S::Created | S::Pending => PaymentDecision::to(S::Closed, Some(PaymentEvent::Closed)),
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed => {
                PaymentDecision::none()
            }
        },
        PaymentObservation::Provider { status, amount } => {
            decide_provider(current, order_amount, status, amount)
        }
    }
}

fn decide_provider(
    current: PaymentStatus,
    order_amount: Fen,
    status: ProviderPaymentStatus,
    amount: Option<Fen>,
) -> PaymentDecision {
    use PaymentStatus as S;
    use ProviderPaymentStatus as P;
    match status {
        // Refunded at the provider means it was paid first.
        P::Paid | P::Refunded => {
            if let Some(a) = amount.filter(|a| *a != order_amount) {
                return PaymentDecision {
                    mismatch: Some(format!(
                        "provider amount {} fen, order amount {} fen",
                        a.0, order_amount.0
                    )),
                    ..PaymentDecision::default()
                };
            }
            match current {
                S::Created => PaymentDecision {
                    via: Some(S::Pending),
                    ..PaymentDecision::to(S::Paid, Some(PaymentEvent::Paid))
                },
                S::Pending => PaymentDecision::to(S::Paid, Some(PaymentEvent::Paid)),
                S::Closed | S::Failed => PaymentDecision {
                    late: true,
                    ..PaymentDecision::to(S::Paid, Some(PaymentEvent::Paid))
                },
                S::Paid | S::PartiallyRefunded | S::Refunded => PaymentDecision::none(),
            }
        }
        // Alipay's TRADE_CLOSED also means "paid, then fully refunded": a paid payment stays.
        P::Closed => match current {
            S::Created | S::Pending => PaymentDecision::to(S::Closed, Some(PaymentEvent::Closed)),
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed => {
                PaymentDecision::none()
            }
        },
        P::Failed => match current {
            S::Created | S::Pending => PaymentDecision::to(S::Failed, Some(PaymentEvent::Failed)),
            S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed => {
                PaymentDecision::none()
            }
        },
        P::Pending | P::UserPaying => match current {
            S::Created => PaymentDecision::to(S::Pending, None),
            S::Pending | S::Paid | S::PartiallyRefunded | S::Refunded | S::Closed | S::Failed => {
                PaymentDecision::none()
            }
        },
        // Not (yet) known to the provider: proves nothing either way.
        P::NotFound => PaymentDecision::none(),
    }
}

/// Something learnt about a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundObservation {
    Provider {
        status: ProviderRefundStatus,
        amount: Option<Fen>,
    },
    /// The provider definitively refused the refund request.
    Refused,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundEvent {
    Succeeded,
    Failed,
}

impl RefundEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundEvent::Succeeded => "refund.succeeded",
            RefundEvent::Failed => "refund.failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RefundDecision {
    pub to: Option<RefundStatus>,
    pub event: Option<RefundEvent>,
    pub mismatch: Option<String>,
}

/// Decides what `obs` does to a refund in `current` of `refund_amount`.
pub fn decide_refund(
    current: RefundStatus,
    refund_amount: Fen,
    obs: RefundObservation,
) -> RefundDecision {
    use ProviderRefundStatus as P;
    use RefundStatus as S;
    let to = |to, event| RefundDecision {
        to: Some(to),
        event: Some(event),
        mismatch: None,
    };
    match obs {
        RefundObservation::Refused => match current {
            S::Pending => to(S::Failed, RefundEvent::Failed),
            S::Succeeded | S::Failed => RefundDecision::default(),
        },
        RefundObservation::Provider { status, amount } => match status {
            P::Succeeded => {
                if let Some(a) = amount.filter(|a| *a != refund_amount) {
                    return RefundDecision {
                        mismatch: Some(format!(
                            "provider refund amount {} fen, ours {} fen",
                            a.0, refund_amount.0
                        )),
                        ..RefundDecision::default()
                    };
                }
                match current {
                    S::Pending => to(S::Succeeded, RefundEvent::Succeeded),
                    S::Succeeded | S::Failed => RefundDecision::default(),
                }
            }
            P::Failed => match current {
                S::Pending => to(S::Failed, RefundEvent::Failed),
                S::Succeeded | S::Failed => RefundDecision::default(),
            },
            P::Processing | P::NotFound => RefundDecision::default(),
        },
    }
}

/// The payment's state once a refund of `amount` succeeded, given what was paid and refunded
/// before; `None` when the payment cannot take a refund (the store refuses such a settlement).
pub fn settle_refund(
    current: PaymentStatus,
    paid: Fen,
    refunded_before: Fen,
    amount: Fen,
) -> Option<PaymentStatus> {
    use PaymentStatus as S;
    match current {
        S::Paid | S::PartiallyRefunded => {
            if refunded_before.0.saturating_add(amount.0) >= paid.0 {
                Some(S::Refunded)
            } else {
                Some(S::PartiallyRefunded)
            }
        }
        S::Created | S::Pending | S::Refunded | S::Closed | S::Failed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderPaymentStatus as P;

    const AMOUNT: Fen = Fen(1000);

    fn observations() -> Vec<PaymentObservation> {
        let mut v = vec![
            PaymentObservation::Accepted,
            PaymentObservation::CreateRefused,
            PaymentObservation::Closed,
        ];
        for status in [
            P::NotFound,
            P::Pending,
            P::UserPaying,
            P::Paid,
            P::Refunded,
            P::Closed,
            P::Failed,
        ] {
            for amount in [None, Some(AMOUNT), Some(Fen(999))] {
                v.push(PaymentObservation::Provider { status, amount });
            }
        }
        v
    }

    /// Every state x observation: only legal moves, events exactly on the states that have one,
    /// late only for money after close/fail, and contradicting amounts never change anything.
    #[test]
    fn payment_decisions_are_legal_everywhere() {
        for &current in PaymentStatus::ALL {
            for obs in observations() {
                let d = decide_payment(current, AMOUNT, obs);
                if let Some(to) = d.to {
                    match d.via {
                        Some(via) => {
                            assert!(current.can_transition(via), "{current} -> {via} ({obs:?})");
                            assert!(via.can_transition(to), "{via} -> {to} ({obs:?})");
                        }
                        None => assert!(current.can_transition(to), "{current} -> {to} ({obs:?})"),
                    }
                    let expected_event = match to {
                        PaymentStatus::Paid => Some(PaymentEvent::Paid),
                        PaymentStatus::Closed => Some(PaymentEvent::Closed),
                        PaymentStatus::Failed => Some(PaymentEvent::Failed),
                        _ => None,
                    };
                    assert_eq!(d.event, expected_event, "{current} {obs:?}");
                } else {
                    assert_eq!(d.event, None);
                    assert!(!d.late);
                }
                assert_eq!(
                    d.late,
                    d.to == Some(PaymentStatus::Paid)
                        && matches!(current, PaymentStatus::Closed | PaymentStatus::Failed)
                );
                if let PaymentObservation::Provider {
                    status: P::Paid | P::Refunded,
                    amount: Some(a),
                } = obs
                {
                    if a != AMOUNT {
                        assert_eq!(d.to, None);
                        assert!(d.mismatch.is_some());
                    }
                }
                if d.mismatch.is_some() {
                    assert_eq!(d.to, None);
                }
            }
        }
    }

    #[test]
    fn the_paths_that_matter() {
        use PaymentStatus::*;
        let paid = PaymentObservation::Provider {
            status: P::Paid,
            amount: Some(AMOUNT),
        };
        // Barcode race: the notification beats the create answer, yet the path has pending.
        let d = decide_payment(Created, AMOUNT, paid);
        assert_eq!((d.via, d.to), (Some(Pending), Some(Paid)));
        assert_eq!(decide_payment(Pending, AMOUNT, paid).to, Some(Paid));
        assert!(decide_payment(Closed, AMOUNT, paid).late);
        // Duplicates change nothing.
        assert_eq!(
            decide_payment(Paid, AMOUNT, paid),
            PaymentDecision::default()
        );
        // A paid order that Alipay calls TRADE_CLOSED (fully refunded there) stays paid.
        let closed = PaymentObservation::Provider {
            status: P::Closed,
            amount: None,
        };
        assert_eq!(decide_payment(Paid, AMOUNT, closed).to, None);
        assert_eq!(decide_payment(Pending, AMOUNT, closed).to, Some(Closed));
        // The provider not knowing an order proves nothing.
        let missing = PaymentObservation::Provider {
            status: P::NotFound,
            amount: None,
        };
        assert_eq!(decide_payment(Created, AMOUNT, missing).to, None);
        assert_eq!(
            decide_payment(Created, AMOUNT, PaymentObservation::Accepted).to,
            Some(Pending)
        );
        assert_eq!(
            decide_payment(Paid, AMOUNT, PaymentObservation::Accepted).to,
            None
        );
    }

    #[test]
    fn refund_decisions() {
        use ProviderRefundStatus as R;
        for &current in RefundStatus::ALL {
            for status in [R::NotFound, R::Processing, R::Succeeded, R::Failed] {
                for amount in [None, Some(AMOUNT), Some(Fen(1))] {
                    let d = decide_refund(
                        current,
                        AMOUNT,
                        RefundObservation::Provider { status, amount },
                    );
                    if let Some(to) = d.to {
                        assert!(current.check_transition(to).is_ok());
                        assert_eq!(
                            d.event,
                            Some(match to {
                                RefundStatus::Succeeded => RefundEvent::Succeeded,
                                _ => RefundEvent::Failed,
                            })
                        );
                    }
                    if status == R::Succeeded && amount == Some(Fen(1)) {
                        assert!(d.mismatch.is_some() && d.to.is_none());
                    }
                    if matches!(status, R::NotFound | R::Processing) {
                        assert_eq!(d, RefundDecision::default());
                    }
                }
            }
            let refused = decide_refund(current, AMOUNT, RefundObservation::Refused);
            assert_eq!(
                refused.to,
                (current == RefundStatus::Pending).then_some(RefundStatus::Failed)
            );
        }
    }

    #[test]
    fn refund_settlement() {
        use PaymentStatus::*;
        assert_eq!(
            settle_refund(Paid, Fen(100), Fen(0), Fen(40)),
            Some(PartiallyRefunded)
        );
        assert_eq!(
            settle_refund(PartiallyRefunded, Fen(100), Fen(40), Fen(60)),
            Some(Refunded)
        );
        for s in [Created, Pending, Refunded, Closed, Failed] {
            assert_eq!(settle_refund(s, Fen(100), Fen(0), Fen(1)), None);
        }
    }
}
