//! The matching rules, pure: no I/O, no clock. [`classify_payment`] and [`classify_refund`] are
//! the one definition of what differs; the engine hands them to the store as a table
//! ([`match_rules`]) which the store's set-based matching turns into SQL, and
//! [`reconcile_all`] applies them to rows at hand (tests, tools).
//!
//! A payment row that says paid while the local payment is not (pending, or closed: a late
//! payment) is healable: an active query shows the provider's state and the gateway applies it.
//! Every other difference is for a person.

use std::collections::HashMap;

use paybridge_core::{Fen, PaymentStatus, RefundStatus};
use paybridge_store::MatchRule;
use serde::{Deserialize, Serialize};

use crate::line::{BillLine, BillStatus, LineKind};

/// The local fields a payment row is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPayment {
    pub id: String,
    pub out_trade_no: String,
    pub amount: Fen,
    pub status: PaymentStatus,
}

/// The local fields a refund row is compared with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRefund {
    pub id: String,
    pub payment_id: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: Fen,
    pub status: RefundStatus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscrepancyKind {
    /// The bill has it, we do not.
    MissingLocally,
    /// We have it settled in the day, the bill does not.
    MissingAtProvider,
    AmountMismatch,
    StatusMismatch,
}

impl DiscrepancyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscrepancyKind::MissingLocally => "missing_locally",
            DiscrepancyKind::MissingAtProvider => "missing_at_provider",
            DiscrepancyKind::AmountMismatch => "amount_mismatch",
            DiscrepancyKind::StatusMismatch => "status_mismatch",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entity {
    Payment,
    Refund,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Payment => "payment",
            Entity::Refund => "refund",
        }
    }
}

/// How a discrepancy can fix itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heal {
    /// Query the payment at the provider and apply the answer.
    QueryPayment(String),
    /// Query the refund at the provider and apply the answer.
    QueryRefund(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discrepancy {
    pub kind: DiscrepancyKind,
    pub entity: Entity,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub provider_trade_no: Option<String>,
    pub bill_amount: Option<Fen>,
    pub local_amount: Option<Fen>,
    pub bill_status: Option<String>,
    pub local_status: Option<String>,
    pub heal: Option<Heal>,
}

impl Discrepancy {
    fn from_line(kind: DiscrepancyKind, line: &BillLine) -> Discrepancy {
        Discrepancy {
            kind,
            entity: match line.kind {
                LineKind::Payment => Entity::Payment,
                LineKind::Refund => Entity::Refund,
            },
            out_trade_no: line.out_trade_no.clone(),
            out_refund_no: line.out_refund_no.clone(),
            payment_id: None,
            refund_id: None,
            provider_trade_no: Some(line.provider_trade_no.clone()).filter(|s| !s.is_empty()),
            bill_amount: Some(line.amount),
            local_amount: None,
            bill_status: Some(line.status.as_str().to_string()),
            local_status: None,
            heal: None,
        }
    }

    fn with_payment(mut self, p: &LocalPayment) -> Discrepancy {
        self.payment_id = Some(p.id.clone());
        self.local_amount = Some(p.amount);
        self.local_status = Some(p.status.as_str().to_string());
        self
    }

    fn with_refund(mut self, r: &LocalRefund) -> Discrepancy {
        self.payment_id = Some(r.payment_id.clone());
        self.refund_id = Some(r.id.clone());
        self.local_amount = Some(r.amount);
        self.local_status = Some(r.status.as_str().to_string());
        self
    }
}

/// What one batch produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Local ids a bill row accounted for (also those with a discrepancy: they are not missing
    /// at the provider).
    pub matched: Vec<String>,
    pub discrepancies: Vec<Discrepancy>,
}

fn settled(s: PaymentStatus) -> bool {
    matches!(
        s,
        PaymentStatus::Paid | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
    )
}

/// Compares one bill line with the local row of the same merchant number.
pub fn classify_payment(line: &BillLine, local: Option<&LocalPayment>) -> Option<Discrepancy> {
    let Some(p) = local else {
        return Some(Discrepancy::from_line(
            DiscrepancyKind::MissingLocally,
            line,
        ));
    };
    let d = |kind| Discrepancy::from_line(kind, line).with_payment(p);
    if line.status == BillStatus::Success && line.amount != p.amount {
        return Some(d(DiscrepancyKind::AmountMismatch));
    }
    match (&line.status, p.status) {
        (
            BillStatus::Success,
            PaymentStatus::Paid | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded,
        ) => None,
        // Pending: the notification was lost. Closed or failed: a late payment.
        (
            BillStatus::Success,
            PaymentStatus::Created
            | PaymentStatus::Pending
            | PaymentStatus::Closed
            | PaymentStatus::Failed,
        ) => {
            let mut x = d(DiscrepancyKind::StatusMismatch);
            x.heal = Some(Heal::QueryPayment(p.id.clone()));
            Some(x)
        }
        // The provider says not paid; a pending local order is settled by a query too.
        (BillStatus::Other(_), PaymentStatus::Created | PaymentStatus::Pending) => {
            let mut x = d(DiscrepancyKind::StatusMismatch);
            x.heal = Some(Heal::QueryPayment(p.id.clone()));
            Some(x)
        }
        (BillStatus::Other(_), PaymentStatus::Closed | PaymentStatus::Failed) => None,
        (BillStatus::Other(_), _) => Some(d(DiscrepancyKind::StatusMismatch)),
    }
}

pub fn classify_refund(line: &BillLine, local: Option<&LocalRefund>) -> Option<Discrepancy> {
    let Some(r) = local else {
        return Some(Discrepancy::from_line(
            DiscrepancyKind::MissingLocally,
            line,
        ));
    };
    let d = |kind| Discrepancy::from_line(kind, line).with_refund(r);
    if line.amount != r.amount {
        return Some(d(DiscrepancyKind::AmountMismatch));
    }
    match (&line.status, r.status) {
        (BillStatus::Success, RefundStatus::Succeeded) => None,
        (BillStatus::Success, RefundStatus::Pending) => {
            let mut x = d(DiscrepancyKind::StatusMismatch);
            x.heal = Some(Heal::QueryRefund(r.id.clone()));
            Some(x)
        }
        (BillStatus::Success, RefundStatus::Failed) => Some(d(DiscrepancyKind::StatusMismatch)),
        (BillStatus::Other(_), RefundStatus::Pending | RefundStatus::Failed) => None,
        (BillStatus::Other(_), RefundStatus::Succeeded) => Some(d(DiscrepancyKind::StatusMismatch)),
    }
}

/// Local rows of one batch, keyed as bill lines name them.
#[derive(Debug, Default)]
pub struct LocalIndex {
    pub payments: HashMap<String, LocalPayment>,
    /// Keyed by `(out_trade_no, out_refund_no)`: refund numbers are unique per payment only.
    pub refunds: HashMap<(String, String), LocalRefund>,
}

impl LocalIndex {
    pub fn new(
        payments: impl IntoIterator<Item = LocalPayment>,
        refunds: impl IntoIterator<Item = LocalRefund>,
    ) -> LocalIndex {
        LocalIndex {
            payments: payments
                .into_iter()
                .map(|p| (p.out_trade_no.clone(), p))
                .collect(),
            refunds: refunds
                .into_iter()
                .map(|r| ((r.out_trade_no.clone(), r.out_refund_no.clone()), r))
                .collect(),
        }
    }
}

/// Matches one batch of bill lines against the local rows looked up for it.
pub fn match_batch(lines: &[BillLine], local: &LocalIndex) -> BatchOutcome {
    let mut out = BatchOutcome::default();
    for line in lines {
        match line.kind {
            LineKind::Payment => {
                let p = local.payments.get(&line.out_trade_no);
                if let Some(p) = p {
                    out.matched.push(p.id.clone());
                }
                out.discrepancies.extend(classify_payment(line, p));
            }
            LineKind::Refund => {
                let key = (
                    line.out_trade_no.clone(),
                    line.out_refund_no.clone().unwrap_or_default(),
                );
                let r = local.refunds.get(&key);
                if let Some(r) = r {
                    out.matched.push(r.id.clone());
                }
                out.discrepancies.extend(classify_refund(line, r));
            }
        }
    }
    out
}

/// A local payment settled in the day that no bill line matched.
pub fn missing_payment(p: &LocalPayment, provider_trade_no: Option<String>) -> Discrepancy {
    Discrepancy {
        kind: DiscrepancyKind::MissingAtProvider,
        entity: Entity::Payment,
        out_trade_no: p.out_trade_no.clone(),
        out_refund_no: None,
        payment_id: Some(p.id.clone()),
        refund_id: None,
        provider_trade_no,
        bill_amount: None,
        local_amount: Some(p.amount),
        bill_status: None,
        local_status: Some(p.status.as_str().to_string()),
        heal: None,
    }
}

/// A local refund succeeded in the day that no bill line matched.
pub fn missing_refund(r: &LocalRefund) -> Discrepancy {
    Discrepancy {
        kind: DiscrepancyKind::MissingAtProvider,
        entity: Entity::Refund,
        out_trade_no: r.out_trade_no.clone(),
        out_refund_no: Some(r.out_refund_no.clone()),
        payment_id: Some(r.payment_id.clone()),
        refund_id: Some(r.id.clone()),
        provider_trade_no: None,
        bill_amount: None,
        local_amount: Some(r.amount),
        bill_status: None,
        local_status: Some(r.status.as_str().to_string()),
        heal: None,
    }
}

/// [`classify_payment`] and [`classify_refund`] as a table: for each bill status (success or
/// not), local status and amount comparison, the discrepancy it makes, if any. A bill row with
/// no local row is always `missing_locally`.
pub fn match_rules() -> Vec<MatchRule> {
    let mut rules = Vec::new();
    let line = |refund: bool, success: bool| BillLine {
        kind: if refund {
            LineKind::Refund
        } else {
            LineKind::Payment
        },
        out_trade_no: "o".into(),
        provider_trade_no: String::new(),
        out_refund_no: refund.then(|| "r".to_string()),
        amount: Fen(100),
        fee: Fen(0),
        status: if success {
            BillStatus::Success
        } else {
            BillStatus::Other("OTHER".into())
        },
    };
    let mut push = |refund, bill_success, amounts_equal, local_status, d: Option<Discrepancy>| {
        if let Some(d) = d {
            rules.push(MatchRule {
                refund,
                bill_success,
                amounts_equal,
                local_status,
                kind: d.kind.as_str(),
                healable: d.heal.is_some(),
            });
        }
    };
    for success in [true, false] {
        for equal in [true, false] {
            let amount = Fen(if equal { 100 } else { 101 });
            for status in PaymentStatus::ALL {
                let local = LocalPayment {
                    id: "p".into(),
                    out_trade_no: "o".into(),
                    amount,
                    status: *status,
                };
                let d = classify_payment(&line(false, success), Some(&local));
                push(false, success, equal, status.as_str(), d);
            }
            for status in RefundStatus::ALL {
                let local = LocalRefund {
                    id: "r".into(),
                    payment_id: "p".into(),
                    out_trade_no: "o".into(),
                    out_refund_no: "r".into(),
                    amount,
                    status: *status,
                };
                let d = classify_refund(&line(true, success), Some(&local));
                push(true, success, equal, status.as_str(), d);
            }
        }
    }
    rules
}

/// Counts and fen sums of a run; serialized into the run's `totals`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub bill_rows: u64,
    pub bill_payments: u64,
    pub bill_payment_amount: i64,
    pub bill_refunds: u64,
    pub bill_refund_amount: i64,
    /// Sum of the service fee column (net of fees returned on refunds).
    pub bill_fees: i64,
    pub local_payments: i64,
    pub local_payment_amount: i64,
    pub local_refunds: i64,
    pub local_refund_amount: i64,
    pub matched: u64,
    pub missing_locally: u64,
    pub missing_at_provider: u64,
    pub amount_mismatch: u64,
    pub status_mismatch: u64,
    pub healed: u64,
    pub heal_failed: u64,
    /// Left for a person.
    pub open: u64,
}

impl Totals {
    pub fn add_line(&mut self, line: &BillLine) {
        self.bill_rows += 1;
        self.bill_fees = self.bill_fees.saturating_add(line.fee.0);
        if line.status != BillStatus::Success {
            return;
        }
        match line.kind {
            LineKind::Payment => {
                self.bill_payments += 1;
                self.bill_payment_amount = self.bill_payment_amount.saturating_add(line.amount.0);
            }
            LineKind::Refund => {
                self.bill_refunds += 1;
                self.bill_refund_amount = self.bill_refund_amount.saturating_add(line.amount.0);
            }
        }
    }

    pub fn add_discrepancy(&mut self, d: &Discrepancy) {
        self.add_discrepancies(d.kind, 1);
    }

    pub fn add_discrepancies(&mut self, kind: DiscrepancyKind, n: u64) {
        match kind {
            DiscrepancyKind::MissingLocally => self.missing_locally += n,
            DiscrepancyKind::MissingAtProvider => self.missing_at_provider += n,
            DiscrepancyKind::AmountMismatch => self.amount_mismatch += n,
            DiscrepancyKind::StatusMismatch => self.status_mismatch += n,
        }
    }

    pub fn discrepancies(&self) -> u64 {
        self.missing_locally
            + self.missing_at_provider
            + self.amount_mismatch
            + self.status_mismatch
    }
}

/// The whole matching as a pure function over iterators, for tests and tools that have
/// everything at hand: bill lines in batches of `batch`, local rows indexed once, then the
/// unmatched local rows (`local_day`: payments settled and refunds succeeded in the day).
pub fn reconcile_all(
    lines: impl IntoIterator<Item = BillLine>,
    payments: Vec<LocalPayment>,
    refunds: Vec<LocalRefund>,
    local_day: impl Fn(&str) -> bool,
    batch: usize,
) -> (Vec<Discrepancy>, Totals) {
    let day_payments: Vec<LocalPayment> = payments
        .iter()
        .filter(|p| local_day(&p.id) && settled(p.status))
        .cloned()
        .collect();
    let day_refunds: Vec<LocalRefund> = refunds
        .iter()
        .filter(|r| local_day(&r.id) && r.status == RefundStatus::Succeeded)
        .cloned()
        .collect();
    let index = LocalIndex::new(payments, refunds);
    let mut totals = Totals::default();
    let mut found = Vec::new();
    let mut matched = std::collections::HashSet::new();
    let mut chunk = Vec::with_capacity(batch.max(1));
    let mut flush = |chunk: &mut Vec<BillLine>, totals: &mut Totals, found: &mut Vec<_>| {
        let out = match_batch(chunk, &index);
        totals.matched += out.matched.len() as u64;
        matched.extend(out.matched);
        for d in out.discrepancies {
            totals.add_discrepancy(&d);
            found.push(d);
        }
        chunk.clear();
    };
    for line in lines {
        totals.add_line(&line);
        chunk.push(line);
        if chunk.len() >= batch.max(1) {
            flush(&mut chunk, &mut totals, &mut found);
        }
    }
    flush(&mut chunk, &mut totals, &mut found);
    for p in day_payments.iter().filter(|p| !matched.contains(&p.id)) {
        let d = missing_payment(p, None);
        totals.add_discrepancy(&d);
        found.push(d);
    }
    for r in day_refunds.iter().filter(|r| !matched.contains(&r.id)) {
        let d = missing_refund(r);
        totals.add_discrepancy(&d);
        found.push(d);
    }
    (found, totals)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn pay_line(no: &str, fen: i64) -> BillLine {
        BillLine {
            kind: LineKind::Payment,
            out_trade_no: no.into(),
            provider_trade_no: format!("T{no}"),
            out_refund_no: None,
            amount: Fen(fen),
            fee: Fen(fen * 6 / 1000),
            status: BillStatus::Success,
        }
    }

    fn refund_line(no: &str, rno: &str, fen: i64) -> BillLine {
        BillLine {
            kind: LineKind::Refund,
            out_refund_no: Some(rno.into()),
            fee: Fen(0),
            ..pay_line(no, fen)
        }
    }

    fn local(no: &str, fen: i64, status: PaymentStatus) -> LocalPayment {
        LocalPayment {
            id: format!("pay_{no}"),
            out_trade_no: no.into(),
            amount: Fen(fen),
            status,
        }
    }

    fn local_refund(no: &str, rno: &str, fen: i64, status: RefundStatus) -> LocalRefund {
        LocalRefund {
            id: format!("re_{rno}"),
            payment_id: format!("pay_{no}"),
            out_trade_no: no.into(),
            out_refund_no: rno.into(),
            amount: Fen(fen),
            status,
        }
    }

    #[test]
    fn every_kind_is_found_and_only_safe_ones_heal() {
        use PaymentStatus::*;
        let lines = vec![
            pay_line("ok", 100),
            pay_line("unknown", 300),
            pay_line("amount", 500),
            pay_line("pending", 700),
            pay_line("late", 800),
            BillLine {
                status: BillStatus::Other("REVOKED".into()),
                ..pay_line("revoked", 900)
            },
            pay_line("refunded", 1000),
            refund_line("refunded", "r1", 400),
            refund_line("refunded", "r2", 100),
            refund_line("refunded", "r-unknown", 50),
        ];
        let payments = vec![
            local("ok", 100, Paid),
            local("amount", 501, Paid),
            local("pending", 700, Pending),
            local("late", 800, Closed),
            local("revoked", 900, Paid),
            local("refunded", 1000, PartiallyRefunded),
            local("not-in-bill", 200, Paid),
            local("pending-not-in-bill", 200, Pending),
        ];
        let refunds = vec![
            local_refund("refunded", "r1", 400, RefundStatus::Succeeded),
            local_refund("refunded", "r2", 100, RefundStatus::Pending),
            local_refund("refunded", "r-missing", 10, RefundStatus::Succeeded),
        ];
        let (found, totals) = reconcile_all(lines, payments, refunds, |_| true, 3);
        let summary: Vec<(DiscrepancyKind, &str, Option<&str>, bool)> = found
            .iter()
            .map(|d| {
                (
                    d.kind,
                    d.out_trade_no.as_str(),
                    d.out_refund_no.as_deref(),
                    d.heal.is_some(),
                )
            })
            .collect();
        use DiscrepancyKind::*;
        assert_eq!(
            summary,
            vec![
                (MissingLocally, "unknown", None, false),
                (AmountMismatch, "amount", None, false),
                (StatusMismatch, "pending", None, true),
                (StatusMismatch, "late", None, true),
                (StatusMismatch, "revoked", None, false),
                (StatusMismatch, "refunded", Some("r2"), true),
                (MissingLocally, "refunded", Some("r-unknown"), false),
                (MissingAtProvider, "not-in-bill", None, false),
                (MissingAtProvider, "refunded", Some("r-missing"), false),
            ]
        );
        assert_eq!(
            found[2].heal,
            Some(Heal::QueryPayment("pay_pending".into()))
        );
        assert_eq!(found[5].heal, Some(Heal::QueryRefund("re_r2".into())));
        assert_eq!(found[1].bill_amount, Some(Fen(500)));
        assert_eq!(found[1].local_amount, Some(Fen(501)));
        assert_eq!(totals.bill_rows, 10);
        assert_eq!(totals.bill_payments, 6);
        assert_eq!(
            totals.bill_payment_amount,
            100 + 300 + 500 + 700 + 800 + 1000
        );
        assert_eq!(totals.bill_refunds, 3);
        assert_eq!(totals.bill_refund_amount, 550);
        // Fees are per row (0.6%, truncated by the test's fixture): 0+1+3+4+4+5+6.
        assert_eq!(totals.bill_fees, 23);
        assert_eq!(totals.matched, 8);
        assert_eq!(totals.discrepancies(), 9);
    }

    #[test]
    fn refund_numbers_are_per_payment() {
        let lines = vec![refund_line("a", "1", 10), refund_line("b", "1", 20)];
        let mut refunds = vec![
            local_refund("a", "1", 10, RefundStatus::Succeeded),
            local_refund("b", "1", 20, RefundStatus::Succeeded),
        ];
        refunds[1].id = "re_b1".into();
        let (found, totals) = reconcile_all(lines, vec![], refunds, |_| true, 10);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(totals.matched, 2);
    }

    #[test]
    fn batch_size_does_not_change_the_result() {
        let lines: Vec<BillLine> = (0..50).map(|i| pay_line(&i.to_string(), i + 1)).collect();
        let payments: Vec<LocalPayment> = (0..60)
            .filter(|i| i % 7 != 0)
            .map(|i| {
                let status = if i % 5 == 0 {
                    PaymentStatus::Pending
                } else {
                    PaymentStatus::Paid
                };
                local(&i.to_string(), i + 1 + i64::from(i % 11 == 0), status)
            })
            .collect();
        let reference = reconcile_all(lines.clone(), payments.clone(), vec![], |_| true, 1000);
        for batch in [1, 2, 7, 49, 50] {
            assert_eq!(
                reconcile_all(lines.clone(), payments.clone(), vec![], |_| true, batch),
                reference
            );
        }
        // Bill rows 0, 7, ..., 49 have no local payment; local 51-54 and 57-59 are settled
        // without a bill row (50 and 55 are pending, 56 does not exist).
        assert_eq!(reference.1.missing_locally, 8);
        assert_eq!(reference.1.missing_at_provider, 7);
    }

    #[test]
    fn not_paid_rows_agree_with_closed_orders_and_question_pending_ones() {
        let revoked = BillLine {
            status: BillStatus::Other("REVOKED".into()),
            ..pay_line("x", 10)
        };
        assert_eq!(
            classify_payment(&revoked, Some(&local("x", 10, PaymentStatus::Closed))),
            None
        );
        let d = classify_payment(&revoked, Some(&local("x", 10, PaymentStatus::Pending)));
        assert_eq!(
            d.and_then(|d| d.heal),
            Some(Heal::QueryPayment("pay_x".into()))
        );
        let processing = BillLine {
            status: BillStatus::Other("PROCESSING".into()),
            ..refund_line("x", "1", 10)
        };
        assert_eq!(
            classify_refund(
                &processing,
                Some(&local_refund("x", "1", 10, RefundStatus::Pending))
            ),
            None
        );
        let failed = classify_refund(
            &refund_line("x", "1", 10),
            Some(&local_refund("x", "1", 10, RefundStatus::Failed)),
        );
        assert_eq!(
            failed.map(|d| (d.kind, d.heal)),
            Some((DiscrepancyKind::StatusMismatch, None))
        );
    }
}
