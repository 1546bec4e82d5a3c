//! Background jobs (active queries, expiry, refund polling, reconciliation) as leased rows, and
//! the per-payment timeline those jobs write.

use serde_json::Value;
use sqlx::types::Json;

use crate::db::with_pool;
use crate::error::{Result, StoreError};
use crate::model::{parse, AuditEntry, AuditRow, AUDIT_COLS};
use crate::Store;

/// Lifecycle of a job row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for `run_at`.
    Scheduled,
    /// Leased by `lease_owner` until `lease_until`; claimable again once the lease expires.
    Running,
    Done,
    /// Given up (see `last_error`).
    Failed,
    /// Cancelled before it ran (e.g. the payment got paid before its expiry job).
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for JobState {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        [
            JobState::Scheduled,
            JobState::Running,
            JobState::Done,
            JobState::Failed,
            JobState::Cancelled,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
        .ok_or(())
    }
}

/// A job to schedule. At most one scheduled-or-running job exists per `(kind, key)`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// `query_payment`, `expire_payment`, `poll_refund`, `reconcile`...
    pub kind: String,
    /// Deduplication key within the kind (usually the payment or refund id).
    pub key: String,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub payload: Value,
    pub run_at: i64,
}

/// What [`Store::schedule_job`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    Created(String),
    /// A live job with the same kind and key already existed (its id). If it was waiting for a
    /// later time, it was moved up to the new `run_at`.
    Existing(String),
}

impl Scheduled {
    pub fn id(&self) -> &str {
        match self {
            Scheduled::Created(id) | Scheduled::Existing(id) => id,
        }
    }
}

/// A job row.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub kind: String,
    pub key: String,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub payload: Value,
    pub state: JobState,
    pub run_at: i64,
    /// Claims so far (including the current one).
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One entry of a payment's timeline (queries, their outcomes, decisions).
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineEntry {
    pub seq: i64,
    pub payment_id: String,
    pub kind: String,
    pub detail: Value,
    pub created_at: i64,
}

/// Which job kinds a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KindFilter<'a> {
    All,
    Only(&'a str),
    Except(&'a str),
    /// Kinds starting with this prefix (`reconcile.`: a queue's family of kinds).
    Family(&'a str),
    ExceptFamily(&'a str),
}

const JOB_COLS: &str = "id, kind, dedup_key, payment_id, refund_id, payload, state, run_at, \
    attempts, lease_owner, lease_until, last_error, created_at, updated_at";
const LIVE: &str = "state IN ('scheduled', 'running')";

#[derive(sqlx::FromRow)]
struct JobRow {
    id: String,
    kind: String,
    dedup_key: String,
    payment_id: Option<String>,
    refund_id: Option<String>,
    payload: Json<Value>,
    state: String,
    run_at: i64,
    attempts: i64,
    lease_owner: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;
    fn try_from(r: JobRow) -> Result<Job> {
        Ok(Job {
            state: parse("job state", &r.state)?,
            id: r.id,
            kind: r.kind,
            key: r.dedup_key,
            payment_id: r.payment_id,
            refund_id: r.refund_id,
            payload: r.payload.0,
            run_at: r.run_at,
            attempts: r.attempts,
            lease_owner: r.lease_owner,
            lease_until: r.lease_until,
            last_error: r.last_error,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TimelineRow {
    seq: i64,
    payment_id: String,
    kind: String,
    detail: Json<Value>,
    created_at: i64,
}

impl Store {
    /// Schedules a job unless a live one with the same `(kind, key)` exists; in that case an
    /// earlier `run_at` moves the waiting job up.
    pub async fn schedule_job(&self, job: &NewJob) -> Result<Scheduled> {
        let now = self.now_ms();
        let insert = format!(
            "INSERT INTO jobs (id, kind, dedup_key, payment_id, refund_id, payload, state, \
             run_at, attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
             'scheduled', $7, 0, $8, $8) ON CONFLICT (kind, dedup_key) WHERE {LIVE} DO NOTHING"
        );
        let existing = format!("SELECT id FROM jobs WHERE kind = $1 AND dedup_key = $2 AND {LIVE}");
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let id = crate::new_id("job");
            let inserted = sqlx::query(&insert)
                .bind(&id)
                .bind(&job.kind)
                .bind(&job.key)
                .bind(&job.payment_id)
                .bind(&job.refund_id)
                .bind(Json(&job.payload))
                .bind(job.run_at)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
                return Ok(Scheduled::Created(id));
            }
            // The insert waited for (PostgreSQL) or ran after (SQLite) the conflicting live row,
            // which is therefore visible here unless it finished in between.
            let row: Option<(String,)> = sqlx::query_as(&existing)
                .bind(&job.kind)
                .bind(&job.key)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((existing_id,)) = row else {
                tx.rollback().await?;
                return Err(StoreError::Conflict {
                    what: "job",
                    key: format!("{}/{}", job.kind, job.key),
                });
            };
            sqlx::query(
                "UPDATE jobs SET run_at = $1, updated_at = $2 \
                 WHERE id = $3 AND state = 'scheduled' AND run_at > $1",
            )
            .bind(job.run_at)
            .bind(now)
            .bind(&existing_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Scheduled::Existing(existing_id))
        })
    }

    /// Claims up to `limit` jobs due at `now` for `owner`, leased until `now + lease_ms`:
    /// scheduled jobs whose `run_at` has come, and running jobs whose lease expired (their
    /// instance crashed). A job is never handed to two claimers with overlapping leases:
    /// PostgreSQL claims with `FOR UPDATE SKIP LOCKED`, SQLite under its write lock.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        now: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Job>> {
        self.claim_jobs_of(owner, now, limit, lease_ms, KindFilter::All)
            .await
    }

    /// [`Store::claim_jobs`] of the kinds `filter` admits: each worker pool claims its own.
    pub async fn claim_jobs_of(
        &self,
        owner: &str,
        now: i64,
        limit: u32,
        lease_ms: i64,
        filter: KindFilter<'_>,
    ) -> Result<Vec<Job>> {
        let (kind, equal, exact) = match filter {
            KindFilter::All => (None, true, true),
            KindFilter::Only(k) => (Some(k), true, true),
            KindFilter::Except(k) => (Some(k), false, true),
            KindFilter::Family(k) => (Some(k), true, false),
            KindFilter::ExceptFamily(k) => (Some(k), false, false),
        };
        let rows: Vec<JobRow> = with_pool!(self, |pool, d| {
            let sql = format!(
                "WITH picked AS MATERIALIZED (SELECT id AS picked_id FROM jobs WHERE \
                   ((state = 'scheduled' AND run_at <= $2) OR \
                   (state = 'running' AND lease_until <= $2)) \
                   AND ($5 IS NULL OR (CASE WHEN $7 THEN kind = $5 \
                     ELSE substr(kind, 1, length($5)) = $5 END) = $6) \
                   ORDER BY run_at, id LIMIT $4{}) \
                 UPDATE jobs SET state = 'running', lease_owner = $1, lease_until = $2 + $3, \
                 attempts = attempts + 1, updated_at = $2 \
                 FROM picked WHERE jobs.id = picked.picked_id \
                 RETURNING {JOB_COLS}",
                d.skip_locked()
            );
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            // Running jobs whose lease lapsed: claiming one takes it over from an instance that
            // died or stalled (counted below; there are few such rows, found by `jobs_due`).
            let lapsed: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM jobs WHERE state = 'running' AND lease_until <= $1 \
                 AND ($2 IS NULL OR (CASE WHEN $4 THEN kind = $2 \
                   ELSE substr(kind, 1, length($2)) = $2 END) = $3)",
            )
            .bind(now)
            .bind(kind)
            .bind(equal)
            .bind(exact)
            .fetch_all(&mut *tx)
            .await?;
            let rows: Vec<JobRow> = sqlx::query_as(&sql)
                .bind(owner)
                .bind(now)
                .bind(lease_ms)
                .bind(crate::model::clamp_limit(limit))
                .bind(kind)
                .bind(equal)
                .bind(exact)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            for row in rows.iter().filter(|r| lapsed.contains(&r.id)) {
                metrics::counter!("paybridge_job_lease_takeovers_total", "kind" => row.kind.clone())
                    .increment(1);
            }
            rows
        });
        let mut jobs = rows
            .into_iter()
            .map(Job::try_from)
            .collect::<Result<Vec<_>>>()?;
        jobs.sort_by(|a, b| (a.run_at, &a.id).cmp(&(b.run_at, &b.id)));
        Ok(jobs)
    }

    /// Marks a claimed job done. Returns `false` if `owner` no longer holds it (the lease
    /// expired and another instance claimed it): the caller's work may have been duplicated and
    /// must have been idempotent.
    pub async fn complete_job(&self, id: &str, owner: &str, now: i64) -> Result<bool> {
        self.finish_job(id, owner, JobState::Done, None, None, now)
            .await
    }

    /// Puts a claimed job back to wait until `run_at` (backoff), recording `error` if given.
    pub async fn reschedule_job(
        &self,
        id: &str,
        owner: &str,
        run_at: i64,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        self.finish_job(id, owner, JobState::Scheduled, Some(run_at), error, now)
            .await
    }

    /// Gives up on a claimed job.
    pub async fn fail_job(&self, id: &str, owner: &str, error: &str, now: i64) -> Result<bool> {
        self.finish_job(id, owner, JobState::Failed, None, Some(error), now)
            .await
    }

    async fn finish_job(
        &self,
        id: &str,
        owner: &str,
        state: JobState,
        run_at: Option<i64>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE jobs SET state = $1, run_at = COALESCE($2, run_at), \
                 last_error = COALESCE($3, last_error), lease_owner = NULL, lease_until = NULL, \
                 updated_at = $4 WHERE id = $5 AND state = 'running' AND lease_owner = $6",
            )
            .bind(state.as_str())
            .bind(run_at)
            .bind(error)
            .bind(now)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        }))
    }

    /// Cancels the waiting (not running) job of `(kind, key)`; returns whether one was cancelled.
    pub async fn cancel_job(&self, kind: &str, key: &str) -> Result<bool> {
        let now = self.now_ms();
        Ok(with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', updated_at = $1 \
                 WHERE kind = $2 AND dedup_key = $3 AND state = 'scheduled'",
            )
            .bind(now)
            .bind(kind)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
                > 0
        }))
    }

    /// The job with this id, in whatever state.
    pub async fn get_job(&self, id: &str) -> Result<Option<Job>> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1");
        let row: Option<JobRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Job::try_from).transpose()
    }

    /// Every job (any state) of a payment, oldest first.
    pub async fn list_payment_jobs(&self, payment_id: &str) -> Result<Vec<Job>> {
        let sql =
            format!("SELECT {JOB_COLS} FROM jobs WHERE payment_id = $1 ORDER BY created_at, id");
        let rows: Vec<JobRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(payment_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Job::try_from).collect()
    }

    /// Appends to a payment's timeline (`kind`: `query`, `query_result`, `close`, `expired`...).
    pub async fn record_timeline(
        &self,
        payment_id: &str,
        kind: &str,
        detail: &Value,
    ) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(
                "INSERT INTO payment_timeline (payment_id, kind, detail, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(payment_id)
            .bind(kind)
            .bind(Json(detail))
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// A payment's timeline in order of recording.
    pub async fn list_timeline(&self, payment_id: &str) -> Result<Vec<TimelineEntry>> {
        let rows: Vec<TimelineRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT seq, payment_id, kind, detail, created_at FROM payment_timeline \
                 WHERE payment_id = $1 ORDER BY seq",
            )
            .bind(payment_id)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| TimelineEntry {
                seq: r.seq,
                payment_id: r.payment_id,
                kind: r.kind,
                detail: r.detail.0,
                created_at: r.created_at,
            })
            .collect())
    }

    /// The audit trail of a payment or refund, oldest first.
    pub async fn list_audit(&self, entity_id: &str) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE entity_id = $1 ORDER BY version, created_at"
        );
        let rows: Vec<AuditRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(entity_id).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}
