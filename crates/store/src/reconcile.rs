//! Reconciliation runs, their discrepancies, and the batch lookups the matcher needs: local
//! payments and refunds by merchant number, a batch at a time, and the day's local rows no bill
//! row matched (keyset pages), so a bill of any size is reconciled in bounded memory.

use paybridge_core::{Fen, PaymentStatus, RefundStatus};
use serde_json::Value;
use sqlx::types::Json;

use crate::db::{in_list, with_pool};
use crate::error::{Result, StoreError};
use crate::model::{clamp_limit, parse};
use crate::payments::{payment_select, PaymentRow};
use crate::{Payment, Store};

/// Statuses of a payment whose money arrived (what a bill's payment row confirms).
const SETTLED_PAYMENT: [PaymentStatus; 3] = [
    PaymentStatus::Paid,
    PaymentStatus::PartiallyRefunded,
    PaymentStatus::Refunded,
];

/// One reconciliation of an account's bill for a provider day.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconciliationRun {
    pub id: String,
    pub account: String,
    /// `YYYY-MM-DD` (the provider's day, Beijing time).
    pub bill_date: String,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// Counts and fen sums written by the engine.
    pub totals: Value,
    pub error: Option<String>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    account: String,
    bill_date: String,
    state: String,
    totals: Json<Value>,
    error: Option<String>,
    started_at: i64,
    finished_at: Option<i64>,
}

impl From<RunRow> for ReconciliationRun {
    fn from(r: RunRow) -> Self {
        ReconciliationRun {
            id: r.id,
            account: r.account,
            bill_date: r.bill_date,
            state: r.state,
            totals: r.totals.0,
            error: r.error,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

const RUN_COLS: &str = "id, account, bill_date, state, totals, error, started_at, finished_at";

/// A discrepancy to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDiscrepancy {
    /// `missing_locally`, `missing_at_provider`, `amount_mismatch`, `status_mismatch`.
    pub kind: String,
    /// `payment` or `refund`.
    pub entity: String,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub provider_trade_no: Option<String>,
    pub bill_amount: Option<Fen>,
    pub local_amount: Option<Fen>,
    pub bill_status: Option<String>,
    pub local_status: Option<String>,
    /// The engine may fix it itself (a query through the gateway).
    pub healable: bool,
}

/// A recorded discrepancy.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscrepancyRecord {
    pub id: String,
    pub run_id: String,
    pub account: String,
    pub bill_date: String,
    pub discrepancy: NewDiscrepancy,
    /// `open` (for a person), `healed`, or `heal_failed` (for a person, with `detail`).
    pub resolution: String,
    pub detail: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(sqlx::FromRow)]
struct DiscrepancyRow {
    id: String,
    run_id: String,
    account: String,
    bill_date: String,
    kind: String,
    entity: String,
    out_trade_no: String,
    out_refund_no: Option<String>,
    payment_id: Option<String>,
    refund_id: Option<String>,
    provider_trade_no: Option<String>,
    bill_amount: Option<i64>,
    local_amount: Option<i64>,
    bill_status: Option<String>,
    local_status: Option<String>,
    healable: bool,
    resolution: String,
    detail: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl From<DiscrepancyRow> for DiscrepancyRecord {
    fn from(r: DiscrepancyRow) -> Self {
        DiscrepancyRecord {
            id: r.id,
            run_id: r.run_id,
            account: r.account,
            bill_date: r.bill_date,
            discrepancy: NewDiscrepancy {
                kind: r.kind,
                entity: r.entity,
                out_trade_no: r.out_trade_no,
                out_refund_no: r.out_refund_no,
                payment_id: r.payment_id,
                refund_id: r.refund_id,
                provider_trade_no: r.provider_trade_no,
                bill_amount: r.bill_amount.map(Fen),
                local_amount: r.local_amount.map(Fen),
                bill_status: r.bill_status,
                local_status: r.local_status,
                healable: r.healable,
            },
            resolution: r.resolution,
            detail: r.detail,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

const DISCREPANCY_COLS: &str = "id, run_id, account, bill_date, kind, entity, out_trade_no, \
    out_refund_no, payment_id, refund_id, provider_trade_no, bill_amount, local_amount, \
    bill_status, local_status, healable, resolution, detail, created_at, updated_at";

/// The fields of a local refund reconciliation compares, with its payment's merchant number.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconRefund {
    pub id: String,
    pub payment_id: String,
    pub out_trade_no: String,
    pub out_refund_no: String,
    pub amount: Fen,
    pub status: RefundStatus,
    pub provider_refund_no: Option<String>,
    pub succeeded_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct ReconRefundRow {
    id: String,
    payment_id: String,
    out_trade_no: String,
    out_refund_no: String,
    amount: i64,
    status: String,
    provider_refund_no: Option<String>,
    succeeded_at: Option<i64>,
}

impl TryFrom<ReconRefundRow> for ReconRefund {
    type Error = StoreError;
    fn try_from(r: ReconRefundRow) -> Result<Self> {
        Ok(ReconRefund {
            status: parse("refund status", &r.status)?,
            id: r.id,
            payment_id: r.payment_id,
            out_trade_no: r.out_trade_no,
            out_refund_no: r.out_refund_no,
            amount: Fen(r.amount),
            provider_refund_no: r.provider_refund_no,
            succeeded_at: r.succeeded_at,
        })
    }
}

const RECON_REFUND_SELECT: &str = "SELECT r.id, r.payment_id, p.out_trade_no, r.out_refund_no, \
    r.amount, r.status, r.provider_refund_no, r.succeeded_at \
    FROM refunds r JOIN payments p ON p.id = r.payment_id";

/// Local counts and fen sums of one account's day (payments by `paid_at`, refunds by
/// `succeeded_at`), the local side of a run's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalDayTotals {
    pub payment_count: i64,
    pub payment_amount: Fen,
    pub refund_count: i64,
    pub refund_amount: Fen,
}

/// `$first, $first+1, ...` for `n` values.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Batches stay under every engine's bound-parameter limit.
const MAX_BATCH: usize = 1000;

fn check_batch(n: usize) -> Result<()> {
    if n > MAX_BATCH {
        return Err(StoreError::Invalid(format!(
            "batch of {n} exceeds {MAX_BATCH} rows"
        )));
    }
    Ok(())
}

impl Store {
    /// Opens a run in state `running`.
    pub async fn start_reconciliation(
        &self,
        account: &str,
        bill_date: &str,
    ) -> Result<ReconciliationRun> {
        let id = crate::new_id("rec");
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO reconciliation_runs (id, account, bill_date, state, totals, started_at, \
             updated_at) VALUES ($1, $2, $3, 'running', $4, $5, $5) RETURNING {RUN_COLS}"
        );
        let row: RunRow = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(&id)
                .bind(account)
                .bind(bill_date)
                .bind(Json(serde_json::json!({})))
                .bind(now)
                .fetch_one(pool)
                .await?
        });
        Ok(row.into())
    }

    /// Closes a run as `completed` (no `error`) or `failed`, with its totals.
    pub async fn finish_reconciliation(
        &self,
        id: &str,
        totals: &Value,
        error: Option<&str>,
    ) -> Result<Option<ReconciliationRun>> {
        let now = self.now_ms();
        let state = if error.is_some() {
            "failed"
        } else {
            "completed"
        };
        let sql = format!(
            "UPDATE reconciliation_runs SET state = $1, totals = $2, error = $3, \
             finished_at = $4, updated_at = $4 WHERE id = $5 RETURNING {RUN_COLS}"
        );
        let row: Option<RunRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(state)
                .bind(Json(totals))
                .bind(error)
                .bind(now)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Into::into))
    }

    pub async fn get_reconciliation(&self, id: &str) -> Result<Option<ReconciliationRun>> {
        let sql = format!("SELECT {RUN_COLS} FROM reconciliation_runs WHERE id = $1");
        let row: Option<RunRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(Into::into))
    }

    /// The runs of an account's day, newest first.
    pub async fn list_reconciliations(
        &self,
        account: &str,
        bill_date: &str,
    ) -> Result<Vec<ReconciliationRun>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM reconciliation_runs WHERE account = $1 AND bill_date = $2 \
             ORDER BY started_at DESC, id DESC"
        );
        let rows: Vec<RunRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(account)
                .bind(bill_date)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The account's payments with these merchant order numbers (at most 1000 per call).
    pub async fn find_payments_by_out_trade_nos(
        &self,
        account: &str,
        out_trade_nos: &[String],
    ) -> Result<Vec<Payment>> {
        check_batch(out_trade_nos.len())?;
        if out_trade_nos.is_empty() {
            return Ok(Vec::new());
        }
        let sql = payment_select(&format!(
            "account = $1 AND out_trade_no IN ({})",
            placeholders(2, out_trade_nos.len())
        ));
        let rows: Vec<PaymentRow> = with_pool!(self, |pool, d| {
            let mut q = sqlx::query_as(&sql).bind(account);
            for no in out_trade_nos {
                q = q.bind(no);
            }
            q.fetch_all(pool).await?
        });
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// The account's refunds with these merchant refund numbers (at most 1000 per call), with
    /// their payment's merchant order number.
    pub async fn find_refunds_by_out_refund_nos(
        &self,
        account: &str,
        out_refund_nos: &[String],
    ) -> Result<Vec<ReconRefund>> {
        check_batch(out_refund_nos.len())?;
        if out_refund_nos.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "{RECON_REFUND_SELECT} WHERE r.account = $1 AND r.out_refund_no IN ({})",
            placeholders(2, out_refund_nos.len())
        );
        let rows: Vec<ReconRefundRow> = with_pool!(self, |pool, d| {
            let mut q = sqlx::query_as(&sql).bind(account);
            for no in out_refund_nos {
                q = q.bind(no);
            }
            q.fetch_all(pool).await?
        });
        rows.into_iter().map(ReconRefund::try_from).collect()
    }

    /// Records one batch of a run in one transaction: the local rows its bill rows matched and
    /// its discrepancies (resolution `open`). Returns the discrepancies' ids, in order.
    pub async fn record_reconciliation_batch(
        &self,
        run: &ReconciliationRun,
        matched_ids: &[String],
        discrepancies: &[NewDiscrepancy],
    ) -> Result<Vec<String>> {
        check_batch(matched_ids.len())?;
        let now = self.now_ms();
        let ids: Vec<String> = discrepancies.iter().map(|_| crate::new_id("dsc")).collect();
        let insert_discrepancy = format!(
            "INSERT INTO reconciliation_discrepancies ({DISCREPANCY_COLS}) VALUES ($1, $2, $3, \
             $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'open', NULL, $17, $17)"
        );
        let pairs: Vec<String> = (0..matched_ids.len())
            .map(|i| format!("(${}, $1)", i + 2))
            .collect();
        let insert_matches = format!(
            "INSERT INTO reconciliation_matches (entity_id, run_id) VALUES {} \
             ON CONFLICT DO NOTHING",
            pairs.join(", ")
        );
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            if !matched_ids.is_empty() {
                let mut q = sqlx::query(&insert_matches).bind(&run.id);
                for id in matched_ids {
                    q = q.bind(id);
                }
                q.execute(&mut *tx).await?;
            }
            for (id, x) in ids.iter().zip(discrepancies) {
                sqlx::query(&insert_discrepancy)
                    .bind(id)
                    .bind(&run.id)
                    .bind(&run.account)
                    .bind(&run.bill_date)
                    .bind(&x.kind)
                    .bind(&x.entity)
                    .bind(&x.out_trade_no)
                    .bind(&x.out_refund_no)
                    .bind(&x.payment_id)
                    .bind(&x.refund_id)
                    .bind(&x.provider_trade_no)
                    .bind(x.bill_amount.map(|f| f.0))
                    .bind(x.local_amount.map(|f| f.0))
                    .bind(&x.bill_status)
                    .bind(&x.local_status)
                    .bind(x.healable)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(ids)
    }

    /// Sets a discrepancy's resolution (`healed`, `heal_failed`, `open`) and its explanation.
    pub async fn resolve_discrepancy(
        &self,
        id: &str,
        resolution: &str,
        detail: Option<&str>,
    ) -> Result<bool> {
        let now = self.now_ms();
        let n = with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE reconciliation_discrepancies SET resolution = $1, detail = $2, \
                 updated_at = $3 WHERE id = $4",
            )
            .bind(resolution)
            .bind(detail)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// A run's discrepancies in recording order, keyset-paginated by id (pass the last id seen).
    pub async fn list_discrepancies(
        &self,
        run_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DiscrepancyRecord>> {
        let sql = format!(
            "SELECT {DISCREPANCY_COLS} FROM reconciliation_discrepancies \
             WHERE run_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
        );
        let rows: Vec<DiscrepancyRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(run_id)
                .bind(after)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The account's settled payments paid in `[from, to)` that no bill row of any run matched,
    /// by id after `after`: what is missing at the provider once a day's bill is through.
    pub async fn list_unreconciled_payments(
        &self,
        account: &str,
        from: i64,
        to: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Payment>> {
        let sql = format!(
            "{} ORDER BY id LIMIT $5",
            payment_select(&format!(
                "account = $1 AND paid_at >= $2 AND paid_at < $3 AND status IN ({}) \
                 AND ($4 IS NULL OR id > $4) AND NOT EXISTS \
                 (SELECT 1 FROM reconciliation_matches m WHERE m.entity_id = payments.id)",
                in_list(SETTLED_PAYMENT.iter().map(|s| s.as_str()))
            ))
        );
        let rows: Vec<PaymentRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(account)
                .bind(from)
                .bind(to)
                .bind(after)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// The account's succeeded refunds of `[from, to)` no bill row matched (see
    /// [`Store::list_unreconciled_payments`]).
    pub async fn list_unreconciled_refunds(
        &self,
        account: &str,
        from: i64,
        to: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ReconRefund>> {
        let sql = format!(
            "{RECON_REFUND_SELECT} WHERE r.account = $1 AND r.succeeded_at >= $2 \
             AND r.succeeded_at < $3 AND r.status = '{}' AND ($4 IS NULL OR r.id > $4) \
             AND NOT EXISTS (SELECT 1 FROM reconciliation_matches m WHERE m.entity_id = r.id) \
             ORDER BY r.id LIMIT $5",
            RefundStatus::Succeeded.as_str()
        );
        let rows: Vec<ReconRefundRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(account)
                .bind(from)
                .bind(to)
                .bind(after)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ReconRefund::try_from).collect()
    }

    /// Moves the lease of a job `owner` is running to `until`: a reconciliation of a large bill
    /// outlives one lease, and a lapsed lease would hand the same day to another instance while
    /// this one is still on it. `false` when `owner` no longer holds the job.
    pub async fn extend_job_lease(&self, id: &str, owner: &str, until: i64) -> Result<bool> {
        let now = self.now_ms();
        let n = with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE jobs SET lease_until = $1, updated_at = $2 \
                 WHERE id = $3 AND state = 'running' AND lease_owner = $4",
            )
            .bind(until)
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Counts and sums of the account's day on the local side.
    pub async fn local_day_totals(
        &self,
        account: &str,
        from: i64,
        to: i64,
    ) -> Result<LocalDayTotals> {
        let pay_sql = format!(
            "SELECT COUNT(*), CAST(SUM(COALESCE(paid_amount, amount)) AS BIGINT) FROM payments WHERE account = $1 \
             AND paid_at >= $2 AND paid_at < $3 AND status IN ({})",
            in_list(SETTLED_PAYMENT.iter().map(|s| s.as_str()))
        );
        let refund_sql = format!(
            "SELECT COUNT(*), CAST(SUM(amount) AS BIGINT) FROM refunds WHERE account = $1 AND succeeded_at >= $2 \
             AND succeeded_at < $3 AND status = '{}'",
            RefundStatus::Succeeded.as_str()
        );
        let ((pc, pa), (rc, ra)): ((i64, Option<i64>), (i64, Option<i64>)) =
            with_pool!(self, |pool, d| {
                let p = sqlx::query_as(&pay_sql)
                    .bind(account)
                    .bind(from)
                    .bind(to)
                    .fetch_one(pool)
                    .await?;
                let r = sqlx::query_as(&refund_sql)
                    .bind(account)
                    .bind(from)
                    .bind(to)
                    .fetch_one(pool)
                    .await?;
                (p, r)
            });
        Ok(LocalDayTotals {
            payment_count: pc,
            payment_amount: Fen(pa.unwrap_or(0)),
            refund_count: rc,
            refund_amount: Fen(ra.unwrap_or(0)),
        })
    }
}
