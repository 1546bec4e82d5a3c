//! The reconciliation run, set-based: the Rust side parses and streams, the database joins.
//!
//! 1. a blocking thread parses the bill (digesting it on the way) into batches sent over a
//!    channel of capacity 2, so memory is bounded by the batch whatever the bill's size;
//! 2. each batch is appended to the run's staging table ([`BillStage`]: `COPY` on PostgreSQL,
//!    large prepared batches on SQLite), the run's `rows_read` kept current;
//! 3. a handful of statements match the whole bill against the local books (a join for the
//!    bill's rows, anti-joins for local rows missing from it) under [`match_rules`], and one
//!    transaction records the discrepancies with the run's counts: nothing per matched row;
//! 4. healable discrepancies are healed (an active query through the gateway), one by one.
//!
//! A run whose discrepancies are recorded resumes at step 4 (a job taken over after a crash).

use std::borrow::Cow;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use paybridge_core::{PaymentStatus, RefundStatus};
use paybridge_store::{BillRow, BillStage, DayWindow, ReconciliationRun, RunMatched, Store};
use time::Date;

use crate::line::{BillLine, BillStatus, LineKind};
use crate::matcher::{match_rules, DiscrepancyKind, Entity, Heal, Totals};
use crate::source::{BillFile, BillRead, BillSource};
use crate::ReconcileError;

/// Bill rows per staging batch: one `COPY` (or one SQLite transaction) each.
pub const DEFAULT_BATCH: usize = 10_000;
/// How often a running run's `rows_read` is written while its bill loads.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
const HEAL_PAGE: u32 = 200;

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
    /// Bill rows read so far.
    fn rows(&self, _done: u64) {}
    /// A new phase: `download`, `match`, `heal`, `done`.
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

/// The run's window: its day, cut at the run's start (a bill cannot hold what settled after
/// it was fetched: a same-day run, or a refund the late payment policy made while a previous
/// run healed).
fn window(run: &ReconciliationRun, date: Date) -> DayWindow {
    let (from, day_end) = beijing_day_bounds(date);
    DayWindow {
        from,
        to: day_end.min(run.started_at),
        day_end,
    }
}

fn bill_row(line: BillLine) -> BillRow {
    BillRow {
        refund: line.kind == LineKind::Refund,
        out_trade_no: line.out_trade_no,
        out_refund_no: line.out_refund_no,
        provider_trade_no: line.provider_trade_no,
        amount: line.amount,
        status: match line.status {
            BillStatus::Success => Cow::Borrowed(paybridge_store::BILL_SUCCESS),
            BillStatus::Other(s) => Cow::Owned(s),
        },
    }
}

/// Where a run's bill comes from.
enum Bill<'a> {
    Download(&'a dyn BillSource),
    File(BillFile),
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

    /// Bill rows per staging batch (1..=100 000).
    pub fn with_batch_size(mut self, batch: usize) -> Engine<'h> {
        self.batch = batch.clamp(1, 100_000);
        self
    }

    /// Downloads the account's bill of `date` and reconciles it in a new run. The run is
    /// recorded (failed, with the error, when the download or the bill is bad).
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
        self.run(run, date, Bill::Download(source), progress).await
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
        self.run(run, date, Bill::File(file), progress).await
    }

    /// Does the work of a recorded run: a queued one (asked for through the API), or one left
    /// `running` by a job whose lease lapsed, which resumes at healing when its discrepancies
    /// were recorded. `None` when the run is already finished (or unknown).
    pub async fn resume(
        &self,
        run_id: &str,
        source: &dyn BillSource,
        progress: &dyn Progress,
    ) -> Result<Option<RunReport>, ReconcileError> {
        let Some(run) = self.store.begin_reconciliation(run_id).await? else {
            return Ok(None);
        };
        let date = match parse_bill_date(&run.bill_date) {
            Ok(d) => d,
            Err(e) => return self.finish(run, Err(e), progress).await.map(Some),
        };
        self.run(run, date, Bill::Download(source), progress)
            .await
            .map(Some)
    }

    async fn run(
        &self,
        run: ReconciliationRun,
        date: Date,
        bill: Bill<'_>,
        progress: &dyn Progress,
    ) -> Result<RunReport, ReconcileError> {
        let result = self.work(&run, date, bill, progress).await;
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

    async fn work(
        &self,
        run: &ReconciliationRun,
        date: Date,
        bill: Bill<'_>,
        progress: &dyn Progress,
    ) -> Result<Totals, ReconcileError> {
        let window = window(run, date);
        let mut totals = match run.matched_at {
            // Recorded by an earlier job on this run: only healing may be left.
            Some(_) => serde_json::from_value(run.totals.clone()).unwrap_or_default(),
            None => {
                let file = match bill {
                    Bill::Download(source) => {
                        progress.phase("download");
                        source.download(date).await?
                    }
                    Bill::File(file) => file,
                };
                progress.phase("match");
                let mut stage = self.store.stage_bill(&run.account).await?;
                let result = self
                    .match_bill(&mut stage, run, window, file, progress)
                    .await;
                // The staging tables go with the connection either way; dropping them now
                // frees their space at once.
                let closed = stage.close().await;
                let totals = result?;
                closed?;
                totals
            }
        };
        progress.phase("heal");
        self.heal(run).await?;
        self.count(run, window, &mut totals).await?;
        Ok(totals)
    }

    /// Stages the bill, matches it and records the discrepancies with the run's counts.
    async fn match_bill(
        &self,
        stage: &mut BillStage,
        run: &ReconciliationRun,
        window: DayWindow,
        file: BillFile,
        progress: &dyn Progress,
    ) -> Result<Totals, ReconcileError> {
        let rules = match_rules();
        stage.match_while_loading(&rules, window)?;
        let (mut totals, read) = self.load(stage, run, file, progress).await?;
        stage.loaded().await?;
        let counts = stage.find_discrepancies(&rules, window).await?;
        totals.matched = u64::try_from(counts.rows_matched).unwrap_or(0);
        let json = serde_json::to_value(&totals).unwrap_or_default();
        stage
            .record(
                &self.store,
                run,
                window,
                &counts,
                RunMatched {
                    rows_read: stage.rows(),
                    bill_sha256: read.sha256.as_deref(),
                    totals: &json,
                },
            )
            .await?;
        Ok(totals)
    }

    /// Parses the bill on a blocking thread (bill-side totals summed there) and stages its
    /// rows as they come.
    async fn load(
        &self,
        stage: &mut BillStage,
        run: &ReconciliationRun,
        file: BillFile,
        progress: &dyn Progress,
    ) -> Result<(Totals, BillRead), ReconcileError> {
        let batch = self.batch;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<BillRow>>(2);
        let parser = tokio::task::spawn_blocking(move || {
            let mut totals = Totals::default();
            let mut chunk = Vec::with_capacity(batch);
            let stopped = || ReconcileError::Parser("the loader stopped".into());
            let read = file.for_each_line(|line| {
                totals.add_line(&line);
                chunk.push(bill_row(line));
                if chunk.len() >= batch {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(batch));
                    tx.blocking_send(full).map_err(|_| stopped())?;
                }
                Ok(())
            })?;
            if !chunk.is_empty() {
                tx.blocking_send(chunk).map_err(|_| stopped())?;
            }
            Ok::<_, ReconcileError>((totals, read))
        });
        let mut failure = None;
        let mut reported = Instant::now();
        while let Some(rows) = rx.recv().await {
            if let Err(e) = stage.load(&rows).await {
                failure = Some(e.into());
                break;
            }
            progress.rows(u64::try_from(stage.rows()).unwrap_or(0));
            if reported.elapsed() >= PROGRESS_EVERY {
                reported = Instant::now();
                if let Err(e) = self
                    .store
                    .record_reconciliation_progress(&run.id, stage.rows())
                    .await
                {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        // Dropping the receiver stops a parser that is still sending.
        drop(rx);
        let parsed = parser
            .await
            .map_err(|e| ReconcileError::Parser(e.to_string()))?;
        if let Some(e) = failure {
            return Err(e);
        }
        parsed
    }

    /// Heals the run's open healable discrepancies, recording each outcome.
    async fn heal(&self, run: &ReconciliationRun) -> Result<(), ReconcileError> {
        let Some(healer) = self.healer else {
            return Ok(());
        };
        let mut after: Option<String> = None;
        loop {
            let page = self
                .store
                .list_open_healable_discrepancies(&run.id, after.as_deref(), HEAL_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            for rec in &page {
                let d = &rec.discrepancy;
                let heal = if d.entity == Entity::Refund.as_str() {
                    d.refund_id.clone().map(Heal::QueryRefund)
                } else {
                    d.payment_id.clone().map(Heal::QueryPayment)
                };
                let Some(heal) = heal else { continue };
                let (healed, detail) = heal_one(healer, &heal, d.bill_status.as_deref()).await;
                let resolution = if healed { "healed" } else { "heal_failed" };
                self.store
                    .resolve_discrepancy(&rec.id, resolution, Some(&detail))
                    .await?;
            }
        }
        Ok(())
    }

    /// The run's discrepancy counts as recorded (by kind, and healed, failed to heal, left
    /// for a person) and the local side of the day.
    async fn count(
        &self,
        run: &ReconciliationRun,
        window: DayWindow,
        totals: &mut Totals,
    ) -> Result<(), ReconcileError> {
        totals.missing_locally = 0;
        totals.missing_at_provider = 0;
        totals.amount_mismatch = 0;
        totals.status_mismatch = 0;
        totals.healed = 0;
        totals.heal_failed = 0;
        totals.open = 0;
        for (kind, resolution, n) in self.store.count_discrepancies(&run.id).await? {
            let n = u64::try_from(n).unwrap_or(0);
            let kinds = [
                DiscrepancyKind::MissingLocally,
                DiscrepancyKind::MissingAtProvider,
                DiscrepancyKind::AmountMismatch,
                DiscrepancyKind::StatusMismatch,
            ];
            if let Some(k) = kinds.into_iter().find(|k| k.as_str() == kind) {
                totals.add_discrepancies(k, n);
            }
            match resolution.as_str() {
                "healed" => totals.healed += n,
                "heal_failed" => {
                    totals.heal_failed += n;
                    totals.open += n;
                }
                _ => totals.open += n,
            }
        }
        let local = self
            .store
            .local_day_totals(&run.account, window.from, window.to)
            .await?;
        totals.local_payments = local.payment_count;
        totals.local_payment_amount = local.payment_amount.0;
        totals.local_refunds = local.refund_count;
        totals.local_refund_amount = local.refund_amount.0;
        Ok(())
    }
}

/// A heal succeeded when, after the query, the local row agrees with the bill.
async fn heal_one(healer: &dyn Healer, heal: &Heal, bill_status: Option<&str>) -> (bool, String) {
    let bill_paid = bill_status == Some(paybridge_store::BILL_SUCCESS);
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
