//! Jobs: rows in the store's jobs table, claimed with leases, each run by [`Gateway::run_jobs_once`]
//! at an explicit `now` so tests drive time instead of sleeping.
//!
//! The seam for convergence work (issue 6): a job kind is a string; adding one means a variant
//! here and an arm in [`Gateway::run_job`]. Handlers must be idempotent: a job whose lease
//! expired may run again elsewhere, and every state change goes through the store's
//! conditional transitions anyway.

use paybridge_core::decide::PaymentObservation;
use paybridge_core::PaymentStatus;
use paybridge_store::{Audit, Job, KindFilter};
use serde_json::Value;

use super::close::CLOSE_WATCH_EVERY_MS;
use super::error::ServiceError;
use super::payments::Recovery;
use super::Gateway;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Ask the provider about a payment whose state we do not know (unknown create/close
    /// outcome, barcode waiting for a password, contradicting notification).
    Query,
    /// The payment's expiry: query first, close only if unpaid.
    Expire,
    /// Poll a refund the provider is still processing.
    RefundQuery,
    /// An account's daily reconciliation (see `service::reconcile`); keyed by account.
    Reconcile,
    /// A reconciliation run asked for through the API; keyed by the run's id.
    ReconcileRun,
    /// The recovery point of a create: scheduled with the payment, before the provider call;
    /// resends the create if nothing settled it (the process died, the answer was lost).
    Recover,
    /// Watches an order closed here that the provider did not know yet, until it expires there.
    CloseWatch,
    /// The late payment policy for money that arrived after close.
    LateRefund,
    /// Purges what is kept only for a while (idempotency keys).
    Retention,
    /// A payment of a hosted cashier was paid: keep it if it is the first, else refund it;
    /// close the cashier's other open orders.
    CashierSettle,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Query => "payment.query",
            JobKind::Expire => "payment.expire",
            JobKind::RefundQuery => "refund.query",
            JobKind::Reconcile => "reconcile.daily",
            JobKind::ReconcileRun => "reconcile.run",
            JobKind::Recover => "payment.recover",
            JobKind::CloseWatch => "payment.close_watch",
            JobKind::LateRefund => "payment.late_refund",
            JobKind::Retention => "retention.purge",
            JobKind::CashierSettle => "cashier.settle",
        }
    }

    /// Every kind this build runs.
    pub const ALL: [JobKind; 10] = [
        JobKind::Query,
        JobKind::Expire,
        JobKind::RefundQuery,
        JobKind::Reconcile,
        JobKind::ReconcileRun,
        JobKind::Recover,
        JobKind::CloseWatch,
        JobKind::LateRefund,
        JobKind::Retention,
        JobKind::CashierSettle,
    ];

    fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A stored kind as a metric label: one of ours, or `other` (a newer instance's kind).
    pub fn label(s: &str) -> &'static str {
        JobKind::parse(s).map_or("other", JobKind::as_str)
    }
}

/// The reconciliation pool's queue: the daily runs and the runs asked for (each walks a whole
/// bill, so they do not hold the slots of queries and expiries).
pub const RECONCILE_QUEUE: KindFilter<'static> = KindFilter::Family("reconcile.");
/// Everything else.
pub const GENERAL_QUEUE: KindFilter<'static> = KindFilter::ExceptFamily("reconcile.");

/// Seconds between active queries: fast while a buyer is likely at the till, then backing off.
const QUERY_BACKOFF: &[i64] = &[3, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/// Refunds may sit in processing for days.
const REFUND_BACKOFF: &[i64] = &[10, 30, 60, 300, 900, 3600];
const REFUND_MAX_ATTEMPTS: i64 = 24 * 7 + 6;
const EXPIRE_RETRY_SECONDS: i64 = 60;
const EXPIRE_MAX_ATTEMPTS: i64 = 60;
const LATE_REFUND_MAX_ATTEMPTS: i64 = 100;
/// How often idempotency keys and notifications past their retention are purged.
pub(crate) const RETENTION_EVERY_MS: i64 = 3_600_000;
pub const JOB_LEASE_MS: i64 = 60_000;

fn backoff(schedule: &[i64], attempts: i64) -> i64 {
    let idx = usize::try_from(attempts.saturating_sub(1)).unwrap_or(0);
    schedule.get(idx).or(schedule.last()).copied().unwrap_or(60) * 1000
}

/// What a job run decided.
enum Next {
    Done,
    RetryIn(i64, Option<String>),
    GiveUp(String),
}

impl Gateway {
    pub(crate) async fn schedule(
        &self,
        kind: JobKind,
        subject_id: &str,
        payment_id: Option<&str>,
        run_at: i64,
    ) -> Result<(), ServiceError> {
        self.store
            .schedule_job(&kind.job(subject_id, payment_id, Value::Null, run_at))
            .await?;
        Ok(())
    }

    /// Schedules the periodic jobs unless they are live (every instance that runs workers
    /// asks at start): retention, and the daily reconciliation of each account with a bill
    /// source.
    pub async fn ensure_recurring_jobs(&self) -> Result<(), ServiceError> {
        self.schedule(JobKind::Retention, "idempotency", None, self.now_ms())
            .await?;
        self.ensure_daily_reconciliations().await
    }

    /// Claims and runs the jobs due at `now`; returns how many ran.
    pub async fn run_jobs_once(&self, now: i64, limit: u32) -> Result<usize, ServiceError> {
        self.run_jobs_of_once(now, limit, KindFilter::All).await
    }

    /// [`Gateway::run_jobs_once`] for the kinds `filter` admits (a worker pool's queue, e.g.
    /// [`RECONCILE_QUEUE`]).
    pub async fn run_jobs_of_once(
        &self,
        now: i64,
        limit: u32,
        filter: KindFilter<'_>,
    ) -> Result<usize, ServiceError> {
        let jobs = self
            .store
            .claim_jobs_of(&self.instance, now, limit, self.job_lease_ms, filter)
            .await?;
        let count = jobs.len();
        for job in jobs {
            self.run_claimed_job(job).await;
        }
        Ok(count)
    }

    /// Runs one job this instance has claimed and records how it ended. While it runs, its
    /// lease is renewed (every third of the lease), so a long provider call or bill never
    /// lets another instance take the same job; a renewal that finds the job taken means the
    /// lease had lapsed (a stalled process) and only this run's bookkeeping is lost, since
    /// every job is idempotent.
    pub async fn run_claimed_job(&self, job: Job) {
        let span = crate::observe::job_span(&job);
        tracing::Instrument::instrument(self.run_claimed_job_in_span(job), span).await
    }

    async fn run_claimed_job_in_span(&self, job: Job) {
        let started = std::time::Instant::now();
        let renew_every = std::time::Duration::from_millis(
            u64::try_from(self.job_lease_ms / 3).unwrap_or(1).max(1),
        );
        let work = self.run_job(&job);
        tokio::pin!(work);
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        let next = loop {
            tokio::select! {
                next = &mut work => break next,
                _ = ticker.tick() => {
                    let until = self.now_ms() + self.job_lease_ms;
                    match self.store.extend_job_lease(&job.id, &self.instance, until).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!("job lease lost while running"),
                        Err(e) => tracing::warn!(error = %e, "cannot renew job lease"),
                    }
                }
            }
        };
        let next = match next {
            Ok(next) => next,
            Err(e) => Next::RetryIn(backoff(QUERY_BACKOFF, job.attempts), Some(e.to_string())),
        };
        let now = self.now_ms();
        let (outcome, result) = match next {
            Next::Done => {
                tracing::debug!("job done");
                (
                    "done",
                    self.store.complete_job(&job.id, &self.instance, now).await,
                )
            }
            Next::RetryIn(ms, err) => {
                match &err {
                    Some(e) => tracing::info!(retry_in_ms = ms, error = %e, "job will retry"),
                    None => tracing::debug!(retry_in_ms = ms, "job will run again"),
                }
                let r = self
                    .store
                    .reschedule_job(&job.id, &self.instance, now + ms, err.as_deref(), now)
                    .await;
                ("retry", r)
            }
            Next::GiveUp(err) => {
                tracing::warn!(%err, "job gave up");
                (
                    "gave_up",
                    self.store
                        .fail_job(&job.id, &self.instance, &err, now)
                        .await,
                )
            }
        };
        let outcome = match result {
            Ok(true) => outcome,
            // Another instance holds the job now: this run's bookkeeping is lost.
            Ok(false) => "lost",
            Err(e) => {
                tracing::error!(error = %e, "cannot finish job");
                "lost"
            }
        };
        crate::observe::job_run(&job.kind, outcome, started.elapsed());
    }

    async fn run_job(&self, job: &Job) -> Result<Next, ServiceError> {
        let Some(kind) = JobKind::parse(&job.kind) else {
            // Another (newer) instance's job kind: leave it for that instance.
            return Ok(Next::RetryIn(
                60_000,
                Some(format!("unknown kind {}", job.kind)),
            ));
        };
        match kind {
            JobKind::Query => self.run_query(job).await,
            JobKind::Expire => self.run_expire(job).await,
            JobKind::RefundQuery => self.run_refund_query(job).await,
            JobKind::Reconcile => {
                let next = self.run_reconcile_job(job).await;
                Ok(Next::RetryIn(next - self.now_ms(), None))
            }
            JobKind::ReconcileRun => match self.run_queued_reconciliation(&job.key).await {
                Ok(true) => Ok(Next::Done),
                // Not finished (the database failed under it): the next attempt resumes it.
                Ok(false) => Ok(Next::RetryIn(backoff(QUERY_BACKOFF, job.attempts), None)),
                Err(e) => Ok(Next::RetryIn(
                    backoff(QUERY_BACKOFF, job.attempts),
                    Some(e.to_string()),
                )),
            },
            JobKind::Recover => self.run_recover(job).await,
            JobKind::CloseWatch => {
                let Some(id) = &job.payment_id else {
                    return Ok(Next::GiveUp("close watch without payment".into()));
                };
                match self.watch_closed(&job.id, id, &job.payload).await {
                    Ok(true) => Ok(Next::Done),
                    Ok(false) => Ok(Next::RetryIn(CLOSE_WATCH_EVERY_MS, None)),
                    Err(e) => Ok(Next::RetryIn(CLOSE_WATCH_EVERY_MS, Some(e.to_string()))),
                }
            }
            JobKind::LateRefund => match self.run_late_payment_policy(job).await {
                Ok(()) => Ok(Next::Done),
                Err(e) if job.attempts >= LATE_REFUND_MAX_ATTEMPTS => {
                    Ok(Next::GiveUp(e.to_string()))
                }
                Err(e) => Ok(Next::RetryIn(
                    backoff(REFUND_BACKOFF, job.attempts),
                    Some(e.to_string()),
                )),
            },
            JobKind::CashierSettle => match self.settle_cashier_payment(job).await {
                Ok(true) => Ok(Next::Done),
                // A sibling order is still being created: look again shortly.
                Ok(false) => Ok(Next::RetryIn(backoff(QUERY_BACKOFF, job.attempts), None)),
                Err(e) if job.attempts >= LATE_REFUND_MAX_ATTEMPTS => {
                    Ok(Next::GiveUp(e.to_string()))
                }
                Err(e) => Ok(Next::RetryIn(
                    backoff(REFUND_BACKOFF, job.attempts),
                    Some(e.to_string()),
                )),
            },
            JobKind::Retention => {
                let before = self.now_ms() - self.idempotency_retention_ms;
                let purged = self.store.purge_idempotency_keys(before).await?;
                if purged > 0 {
                    tracing::info!(purged, "idempotency keys past retention purged");
                }
                let policy = &self.inbox.policy;
                let now = self.now_ms();
                let purged = self
                    .store
                    .purge_notifications(
                        now - policy.unverified_retention_ms,
                        now - policy.verified_retention_ms,
                    )
                    .await?;
                if purged > 0 {
                    tracing::info!(purged, "notifications past retention purged");
                }
                Ok(Next::RetryIn(RETENTION_EVERY_MS, None))
            }
        }
    }

    async fn run_recover(&self, job: &Job) -> Result<Next, ServiceError> {
        let Some(id) = &job.payment_id else {
            return Ok(Next::GiveUp("recovery job without payment".into()));
        };
        let recovery: Option<Recovery> = serde_json::from_value(job.payload.clone()).ok();
        match self.recover_create(&job.id, id, recovery).await {
            Ok(true) => Ok(Next::Done),
            Ok(false) => Ok(Next::RetryIn(backoff(QUERY_BACKOFF, job.attempts), None)),
            Err(e) => Ok(Next::RetryIn(
                backoff(QUERY_BACKOFF, job.attempts),
                Some(e.to_string()),
            )),
        }
    }

    async fn run_query(&self, job: &Job) -> Result<Next, ServiceError> {
        let Some(id) = &job.payment_id else {
            return Ok(Next::GiveUp("query job without payment".into()));
        };
        let p = self.load_payment(id).await?;
        if !matches!(p.status, PaymentStatus::Created | PaymentStatus::Pending) {
            return Ok(Next::Done);
        }
        let p = self.query_and_apply(id, "active query").await?;
        if matches!(p.status, PaymentStatus::Created | PaymentStatus::Pending) {
            let past_expiry = p.expires_at.is_some_and(|e| self.now_ms() > e);
            if past_expiry {
                // The expiry job takes over from here.
                return Ok(Next::Done);
            }
            return Ok(Next::RetryIn(backoff(QUERY_BACKOFF, job.attempts), None));
        }
        Ok(Next::Done)
    }

    async fn run_expire(&self, job: &Job) -> Result<Next, ServiceError> {
        let Some(id) = &job.payment_id else {
            return Ok(Next::GiveUp("expire job without payment".into()));
        };
        let p = self.load_payment(id).await?;
        if !matches!(p.status, PaymentStatus::Created | PaymentStatus::Pending) {
            return Ok(Next::Done);
        }
        // Query first: the buyer may have paid a moment ago.
        let p = match self.query_and_apply(id, "expiry").await {
            Ok(p) => p,
            Err(e) if job.attempts < EXPIRE_MAX_ATTEMPTS => {
                return Ok(Next::RetryIn(
                    EXPIRE_RETRY_SECONDS * 1000,
                    Some(e.to_string()),
                ))
            }
            Err(e) => return Ok(Next::GiveUp(e.to_string())),
        };
        if !matches!(p.status, PaymentStatus::Created | PaymentStatus::Pending) {
            return Ok(Next::Done);
        }
        let audit = Audit::new(format!("job:{}", job.id), "expired unpaid");
        match self.close_at_provider(p.clone(), &audit).await {
            Ok(_) => Ok(Next::Done),
            Err(_) if p.status == PaymentStatus::Created && p.client_action.is_none() => {
                // The provider never accepted the order (create refused or never arrived, and
                // the query did not find it): nobody can pay it, close it here.
                let audit = Audit::new(audit.actor, "expired; unknown to the provider");
                self.apply_observation(&p.id, PaymentObservation::Closed, &audit, |_, _| {})
                    .await?;
                Ok(Next::Done)
            }
            Err(e) if job.attempts < EXPIRE_MAX_ATTEMPTS => Ok(Next::RetryIn(
                EXPIRE_RETRY_SECONDS * 1000,
                Some(e.to_string()),
            )),
            Err(e) => Ok(Next::GiveUp(e.to_string())),
        }
    }

    async fn run_refund_query(&self, job: &Job) -> Result<Next, ServiceError> {
        let Some(id) = &job.refund_id else {
            return Ok(Next::GiveUp("refund job without refund".into()));
        };
        match self.query_refund_and_apply(id, &job.id).await {
            Ok(r) if r.status == paybridge_core::RefundStatus::Pending => {
                if job.attempts >= REFUND_MAX_ATTEMPTS {
                    Ok(Next::GiveUp("refund still processing after a week".into()))
                } else {
                    Ok(Next::RetryIn(backoff(REFUND_BACKOFF, job.attempts), None))
                }
            }
            Ok(_) => Ok(Next::Done),
            Err(e) => Ok(Next::RetryIn(
                backoff(REFUND_BACKOFF, job.attempts),
                Some(e.to_string()),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_holds() {
        assert_eq!(backoff(QUERY_BACKOFF, 1), 3000);
        assert_eq!(backoff(QUERY_BACKOFF, 2), 5000);
        assert_eq!(backoff(QUERY_BACKOFF, 100), 3_600_000);
        assert_eq!(backoff(QUERY_BACKOFF, 0), 3000);
        for k in [
            JobKind::Query,
            JobKind::Expire,
            JobKind::RefundQuery,
            JobKind::ReconcileRun,
        ] {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
        }
    }
}
