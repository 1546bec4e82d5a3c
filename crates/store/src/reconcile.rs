//! Reconciliation runs (queued, running with progress, finished) and their discrepancies. The
//! matching itself is set-based, in [`crate::recon_stage`].

use paybridge_core::{Fen, PaymentStatus, RefundStatus};
use serde_json::Value;
use sqlx::types::Json;

use crate::db::{in_list, with_pool};
use crate::error::Result;
use crate::model::clamp_limit;
use crate::Store;

/// Statuses of a payment whose money arrived (what a bill's payment row confirms).
pub(crate) const SETTLED_PAYMENT: [PaymentStatus; 3] = [
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
    /// `queued`, `running`, `completed` or `failed`.
    pub state: String,
    /// Counts and fen sums written by the engine.
    pub totals: Value,
    pub error: Option<String>,
    /// When the run was asked for.
    pub created_at: i64,
    /// When its work began (the creation time until then).
    pub started_at: i64,
    pub finished_at: Option<i64>,
    /// Bill rows read so far.
    pub rows_read: i64,
    /// Bill rows that found their local payment or refund (with or without a difference).
    pub rows_matched: i64,
    /// SHA-256 (hex) of the bill as read.
    pub bill_sha256: Option<String>,
    /// When the discrepancies were recorded; healing follows.
    pub matched_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    id: String,
    account: String,
    bill_date: String,
    state: String,
    totals: Json<Value>,
    error: Option<String>,
    created_at: i64,
    started_at: i64,
    finished_at: Option<i64>,
    rows_read: i64,
    rows_matched: i64,
    bill_sha256: Option<String>,
    matched_at: Option<i64>,
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
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            rows_read: r.rows_read,
            rows_matched: r.rows_matched,
            bill_sha256: r.bill_sha256,
            matched_at: r.matched_at,
        }
    }
}

pub(crate) const RUN_COLS: &str = "id, account, bill_date, state, totals, error, created_at, \
    started_at, finished_at, rows_read, rows_matched, bill_sha256, matched_at";

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

pub(crate) const DISCREPANCY_COLS: &str =
    "id, run_id, account, bill_date, kind, entity, out_trade_no, \
    out_refund_no, payment_id, refund_id, provider_trade_no, bill_amount, local_amount, \
    bill_status, local_status, healable, resolution, detail, created_at, updated_at";

/// Local counts and fen sums of one account's day (payments by `paid_at`, refunds by
/// `succeeded_at`), the local side of a run's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalDayTotals {
    pub payment_count: i64,
    pub payment_amount: Fen,
    pub refund_count: i64,
    pub refund_amount: Fen,
}

impl Store {
    /// Opens a run in state `running` (the CLI and direct callers, which do the work at once).
    pub async fn start_reconciliation(
        &self,
        account: &str,
        bill_date: &str,
    ) -> Result<ReconciliationRun> {
        self.insert_run(account, bill_date, "running").await
    }

    /// Records a run asked for through the API, in state `queued`: a job does the work.
    pub async fn queue_reconciliation(
        &self,
        account: &str,
        bill_date: &str,
    ) -> Result<ReconciliationRun> {
        self.insert_run(account, bill_date, "queued").await
    }

    async fn insert_run(
        &self,
        account: &str,
        bill_date: &str,
        state: &str,
    ) -> Result<ReconciliationRun> {
        let id = crate::new_id("rec");
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO reconciliation_runs (id, account, bill_date, state, totals, created_at, \
             started_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6) RETURNING {RUN_COLS}"
        );
        let row: RunRow = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(&id)
                .bind(account)
                .bind(bill_date)
                .bind(state)
                .bind(Json(serde_json::json!({})))
                .bind(now)
                .fetch_one(pool)
                .await?
        });
        Ok(row.into())
    }

    /// Moves a queued run to `running` and stamps `started_at`: its job begins. A run already
    /// `running` (its previous job's lease lapsed) is handed over as it is, so the new job
    /// resumes it (healing, when its discrepancies were recorded). `None` when the run is
    /// finished or unknown.
    pub async fn begin_reconciliation(&self, id: &str) -> Result<Option<ReconciliationRun>> {
        let now = self.now_ms();
        let sql = format!(
            "UPDATE reconciliation_runs SET state = 'running', \
             started_at = CASE WHEN state = 'queued' THEN $1 ELSE started_at END, updated_at = $1 \
             WHERE id = $2 AND state IN ('queued', 'running') RETURNING {RUN_COLS}"
        );
        let row: Option<RunRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Into::into))
    }

    /// Records how many bill rows a running run has read (its progress while the bill loads).
    pub async fn record_reconciliation_progress(&self, id: &str, rows_read: i64) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE reconciliation_runs SET rows_read = $1, updated_at = $2 \
                 WHERE id = $3 AND state = 'running'",
            )
            .bind(rows_read)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await?;
        });
        Ok(())
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

    /// An account's newest runs, newest first (the console's reconciliation page).
    pub async fn list_account_reconciliations(
        &self,
        account: &str,
        limit: u32,
    ) -> Result<Vec<ReconciliationRun>> {
        let sql = format!(
            "SELECT {RUN_COLS} FROM reconciliation_runs WHERE account = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<RunRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(account)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn get_discrepancy(&self, id: &str) -> Result<Option<DiscrepancyRecord>> {
        let sql =
            format!("SELECT {DISCREPANCY_COLS} FROM reconciliation_discrepancies WHERE id = $1");
        let row: Option<DiscrepancyRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(Into::into))
    }

    /// Sets a discrepancy's resolution (`healed`, `heal_failed`, `open`, or `resolved` by an
    /// operator) and its explanation.
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

    /// A run's healable discrepancies still `open`, by id after `after`: what healing has
    /// left to do (all of them on a first pass, the rest when a job resumes the run).
    pub async fn list_open_healable_discrepancies(
        &self,
        run_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<DiscrepancyRecord>> {
        let sql = format!(
            "SELECT {DISCREPANCY_COLS} FROM reconciliation_discrepancies \
             WHERE run_id = $1 AND healable AND resolution = 'open' \
             AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3"
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

    /// A run's discrepancies counted by kind and by resolution.
    pub async fn count_discrepancies(&self, run_id: &str) -> Result<Vec<(String, String, i64)>> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT kind, resolution, COUNT(*) FROM reconciliation_discrepancies \
                 WHERE run_id = $1 GROUP BY kind, resolution ORDER BY kind, resolution",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
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
