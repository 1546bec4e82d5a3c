//! The reconciliation loop. Memory is bounded by the batch size, whatever the bill's size:
//!
//! 1. a blocking thread streams the bill's rows into batches sent over a channel of capacity 2;
//! 2. per batch: one lookup of local payments by `out_trade_no`, one of refunds by
//!    `out_refund_no`, the pure [`match_batch`], one transaction recording matched ids and
//!    discrepancies, then healing (an active query through the gateway) of the healable ones;
//! 3. the day's local settled rows no bill row matched come back in keyset pages as
//!    "missing at the provider".

use async_trait::async_trait;
use paybridge_core::{PaymentStatus, RefundStatus};
use paybridge_store::{NewDiscrepancy, Payment, ReconRefund, ReconciliationRun, Store};
use std::collections::HashSet;
use time::Date;

use crate::line::{BillLine, LineKind};
use crate::matcher::{
    match_batch, missing_payment, missing_refund, Discrepancy, Heal, LocalIndex, LocalPayment,
    LocalRefund, Totals,
};
use crate::source::{BillFile, BillSource};
use crate::ReconcileError;

/// Rows per batch: one lookup round trip per batch, well under bind-parameter limits.
pub const DEFAULT_BATCH: usize = 500;
const SWEEP_PAGE: u32 = 500;

/// Fixes a healable discrepancy by asking the provider (the gateway's active query, which
/// applies the answer through the usual conditional transitions).
#[async_trait]
pub trait Healer: Send + Sync {
    /// Queries and applies; returns the payment's status afterwards.
    async fn heal_payment(&self, payment_id: &str) -> Result<PaymentStatus, String>;
    /// Queries and applies; returns the refund's status afterwards.
    async fn heal_refund(&self, refund_id: &str) -> Result<RefundStatus, String>;
}

/// Progress callbacks (the CLI's progress bar).
pub trait Progress: Send + Sync {
    /// Bill rows processed so far.
    fn rows(&self, _done: u64) {}
    /// A new phase: `download`, `match`, `local`, `done`.
    fn phase(&self, _name: &str) {}
}

impl Progress for () {}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub run: ReconciliationRun,
    pub totals: Totals,
}

/// `YYYY-MM-DD`.
pub fn parse_bill_date(s: &str) -> Result<Date, ReconcileError> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| ReconcileError::Date(s.to_string()))
}

pub(crate) fn dashed(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Bills cover a Beijing (UTC+8) calendar day: `[start, end)` in unix milliseconds.
pub fn beijing_day_bounds(date: Date) -> (i64, i64) {
    let start = date
        .midnight()
        .assume_offset(time::macros::offset!(+8))
        .unix_timestamp()
        * 1000;
    (start, start + 86_400_000)
}

fn local_payment(p: Payment) -> LocalPayment {
    LocalPayment {
        id: p.id,
        out_trade_no: p.out_trade_no,
        amount: p.amount,
        status: p.status,
    }
}

fn local_refund(r: ReconRefund) -> LocalRefund {
    LocalRefund {
        id: r.id,
        payment_id: r.payment_id,
        out_trade_no: r.out_trade_no,
        out_refund_no: r.out_refund_no,
        amount: r.amount,
        status: r.status,
    }
}

fn to_row(d: &Discrepancy) -> NewDiscrepancy {
    NewDiscrepancy {
        kind: d.kind.as_str().to_string(),
        entity: d.entity.as_str().to_string(),
        out_trade_no: d.out_trade_no.clone(),
        out_refund_no: d.out_refund_no.clone(),
        payment_id: d.payment_id.clone(),
        refund_id: d.refund_id.clone(),
        provider_trade_no: d.provider_trade_no.clone(),
        bill_amount: d.bill_amount,
        local_amount: d.local_amount,
        bill_status: d.bill_status.clone(),
        local_status: d.local_status.clone(),
        healable: d.heal.is_some(),
    }
}

pub struct Engine<'h> {
    store: Store,
    healer: Option<&'h dyn Healer>,
    batch: usize,
}

impl<'h> Engine<'h> {
    /// An engine that records discrepancies without healing any.
    pub fn new(store: Store) -> Engine<'h> {
        Engine {
            store,
            healer: None,
            batch: DEFAULT_BATCH,
        }
    }

    pub fn with_healer(mut self, healer: &'h dyn Healer) -> Engine<'h> {
        self.healer = Some(healer);
        self
    }

    /// Rows per batch (1..=1000).
    pub fn with_batch_size(mut self, batch: usize) -> Engine<'h> {
        self.batch = batch.clamp(1, 1000);
        self
    }

    /// Downloads the account's bill of `date` and reconciles it. The run is recorded (failed,
    /// with the error, when the download or the bill is bad).
    pub async fn reconcile(
        &self,
        account: &str,
        date: Date,
        source: &dyn BillSource,
        progress: &dyn Progress,
    ) -> Result<RunReport, ReconcileError> {
        let run = self
            .store
            .start_reconciliation(account, &dashed(date))
            .await?;
        progress.phase("download");
        let result = match source.download(date).await {
            Ok(file) => self.run(&run, date, file, progress).await,
            Err(e) => Err(e),
        };
        self.finish(run, result, progress).await
    }

    /// Reconciles a bill already at hand (a saved download, a generated benchmark bill).
    pub async fn reconcile_file(
        &self,
        account: &str,
        date: Date,
        file: BillFile,
        progress: &dyn Progress,
    ) -> Result<RunReport, ReconcileError> {
        let run = self
            .store
            .start_reconciliation(account, &dashed(date))
            .await?;
        let result = self.run(&run, date, file, progress).await;
        self.finish(run, result, progress).await
    }

    async fn finish(
        &self,
        run: ReconciliationRun,
        result: Result<Totals, ReconcileError>,
        progress: &dyn Progress,
    ) -> Result<RunReport, ReconcileError> {
        let (totals, error) = match result {
            Ok(t) => (t, None),
            Err(e) => (Totals::default(), Some(e)),
        };
        let json = serde_json::to_value(&totals).unwrap_or_default();
        let message = error.as_ref().map(ToString::to_string);
        let finished = self
            .store
            .finish_reconciliation(&run.id, &json, message.as_deref())
            .await?;
        progress.phase("done");
        match error {
            Some(e) => {
                tracing::warn!(run = %run.id, account = %run.account, error = %e, "reconciliation failed");
                Err(e)
            }
            None => Ok(RunReport {
                run: finished.unwrap_or(run),
                totals,
            }),
        }
    }

    async fn run(
        &self,
        run: &ReconciliationRun,
        date: Date,
        file: BillFile,
        progress: &dyn Progress,
    ) -> Result<Totals, ReconcileError> {
        progress.phase("match");
        let batch = self.batch;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<BillLine>>(2);
        let parser = tokio::task::spawn_blocking(move || {
            let mut chunk = Vec::with_capacity(batch);
            let stopped = || ReconcileError::Parser("the matcher stopped".into());
            file.for_each_line(|line| {
                chunk.push(line);
                if chunk.len() >= batch {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(batch));
                    tx.blocking_send(full).map_err(|_| stopped())?;
                }
                Ok(())
            })?;
            if !chunk.is_empty() {
                tx.blocking_send(chunk).map_err(|_| stopped())?;
            }
            Ok::<(), ReconcileError>(())
        });
        let mut totals = Totals::default();
        let mut failure = None;
        while let Some(lines) = rx.recv().await {
            if let Err(e) = self.match_lines(run, &lines, &mut totals).await {
                failure = Some(e);
                break;
            }
            progress.rows(totals.bill_rows);
        }
        // Dropping the receiver stops a parser that is still sending.
        drop(rx);
        let parsed = parser
            .await
            .map_err(|e| ReconcileError::Parser(e.to_string()))?;
        if let Some(e) = failure {
            return Err(e);
        }
        parsed?;
        progress.phase("local");
        self.sweep_unmatched(run, date, &mut totals).await?;
        Ok(totals)
    }

    async fn match_lines(
        &self,
        run: &ReconciliationRun,
        lines: &[BillLine],
        totals: &mut Totals,
    ) -> Result<(), ReconcileError> {
        let mut trade_nos = HashSet::new();
        let mut refund_nos = HashSet::new();
        for line in lines {
            totals.add_line(line);
            match (line.kind, &line.out_refund_no) {
                (LineKind::Refund, Some(no)) => refund_nos.insert(no.clone()),
                _ => trade_nos.insert(line.out_trade_no.clone()),
            };
        }
        let trade_nos: Vec<String> = trade_nos.into_iter().collect();
        let refund_nos: Vec<String> = refund_nos.into_iter().collect();
        let payments = self
            .store
            .find_payments_by_out_trade_nos(&run.account, &trade_nos)
            .await?;
        let refunds = self
            .store
            .find_refunds_by_out_refund_nos(&run.account, &refund_nos)
            .await?;
        let index = LocalIndex::new(
            payments.into_iter().map(local_payment),
            refunds.into_iter().map(local_refund),
        );
        let out = match_batch(lines, &index);
        totals.matched += out.matched.len() as u64;
        self.record(run, &out.matched, out.discrepancies, totals)
            .await
    }

    /// Records a batch's matches and discrepancies, then heals what can heal.
    async fn record(
        &self,
        run: &ReconciliationRun,
        matched: &[String],
        found: Vec<Discrepancy>,
        totals: &mut Totals,
    ) -> Result<(), ReconcileError> {
        let rows: Vec<NewDiscrepancy> = found.iter().map(to_row).collect();
        let ids = self
            .store
            .record_reconciliation_batch(run, matched, &rows)
            .await?;
        for (id, d) in ids.iter().zip(&found) {
            totals.add_discrepancy(d);
            let (Some(heal), Some(healer)) = (&d.heal, &self.healer) else {
                totals.open += 1;
                continue;
            };
            let (healed, detail) = heal_one(*healer, heal, d).await;
            let resolution = if healed { "healed" } else { "heal_failed" };
            self.store
                .resolve_discrepancy(id, resolution, Some(&detail))
                .await?;
            if healed {
                totals.healed += 1;
            } else {
                totals.heal_failed += 1;
                totals.open += 1;
            }
        }
        Ok(())
    }

    async fn sweep_unmatched(
        &self,
        run: &ReconciliationRun,
        date: Date,
        totals: &mut Totals,
    ) -> Result<(), ReconcileError> {
        let (from, day_end) = beijing_day_bounds(date);
        // A bill cannot hold what settled after it was fetched (a same-day run, or a refund
        // the late payment policy made while healing this very run).
        let to = day_end.min(run.started_at);
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_unreconciled_payments(&run.account, from, to, after.as_deref(), SWEEP_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            let found: Vec<Discrepancy> = page
                .into_iter()
                .map(|p| {
                    let provider_no = p.provider_trade_no.clone();
                    missing_payment(&local_payment(p), provider_no)
                })
                .collect();
            self.record(run, &[], found, totals).await?;
        }
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_unreconciled_refunds(&run.account, from, to, after.as_deref(), SWEEP_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            let found: Vec<Discrepancy> = page
                .into_iter()
                .map(|r| missing_refund(&local_refund(r)))
                .collect();
            self.record(run, &[], found, totals).await?;
        }
        let local = self.store.local_day_totals(&run.account, from, to).await?;
        totals.local_payments = local.payment_count;
        totals.local_payment_amount = local.payment_amount.0;
        totals.local_refunds = local.refund_count;
        totals.local_refund_amount = local.refund_amount.0;
        Ok(())
    }
}

/// A heal succeeded when, after the query, the local row agrees with the bill.
async fn heal_one(healer: &dyn Healer, heal: &Heal, d: &Discrepancy) -> (bool, String) {
    let bill_paid = d.bill_status.as_deref() == Some("SUCCESS");
    match heal {
        Heal::QueryPayment(id) => match healer.heal_payment(id).await {
            Ok(s) => {
                let agrees = match s {
                    PaymentStatus::Paid
                    | PaymentStatus::PartiallyRefunded
                    | PaymentStatus::Refunded => bill_paid,
                    PaymentStatus::Closed | PaymentStatus::Failed => !bill_paid,
                    PaymentStatus::Created | PaymentStatus::Pending => false,
                };
                (agrees, format!("after an active query the payment is {s}"))
            }
            Err(e) => (false, format!("active query failed: {e}")),
        },
        Heal::QueryRefund(id) => match healer.heal_refund(id).await {
            Ok(s) => (
                s == RefundStatus::Succeeded && bill_paid,
                format!("after a refund query the refund is {s}"),
            ),
            Err(e) => (false, format!("refund query failed: {e}")),
        },
    }
}
