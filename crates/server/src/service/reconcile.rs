//! Reconciliation and late payments, wired into the gateway.
//!
//! Each account with a bill source gets a daily `reconcile.daily` job (10:00 Beijing, for the
//! previous Beijing day, when the providers' bills are out). The API queues a run of a day on
//! demand (`queued`, answered at once) for a `reconcile.run` job of the reconciliation pool;
//! the CLI queues one and does its work itself while following it. Healing goes through the gateway's own active query, so a healed payment takes the
//! same conditional transition, event and webhook as a notified one. A payment found paid after
//! it was closed keeps its money and its `late_payment` flag, and with the `refund` policy is
//! refunded in full automatically.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use paybridge_core::{PaymentStatus, RefundStatus};
use paybridge_reconcile::{
    parse_bill_date, AlipayBills, BillFile, BillSource, Engine, Healer, Progress, ReconcileError,
    RunReport, SavedBill, WechatV2Bills, WechatV3Bills,
};
use paybridge_store::{
    Audit, DiscrepancyRecord, Job, KeyClaim, NewJob, NewRefund, Payment, ReconciliationRun,
};
use serde_json::{json, Value};
use time::Date;

use super::caller::Caller;
use super::error::ServiceError;
use super::idempotency::{Answer, KEY_LOCK_MS};
use super::jobs::JobKind;
use super::Gateway;
use crate::channels;
use crate::config::{AccountConfig, ProviderConfig};

/// What happens to money that arrives after its order was closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LatePaymentPolicy {
    /// Keep it: the payment is paid, flagged `late_payment`, the merchant decides.
    #[default]
    Keep,
    /// Refund it in full at once.
    Refund,
}

impl std::str::FromStr for LatePaymentPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "keep" => Ok(LatePaymentPolicy::Keep),
            "refund" => Ok(LatePaymentPolicy::Refund),
            other => Err(format!(
                "late payment policy {other:?}: expected keep or refund"
            )),
        }
    }
}

/// The gateway's reconciliation settings: bill sources per account and the late policy, both
/// fixed when the gateway is composed.
pub struct ReconcileState {
    pub(crate) sources: BTreeMap<String, Arc<dyn BillSource>>,
    pub(crate) late_payment: LatePaymentPolicy,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const BEIJING_OFFSET_MS: i64 = 8 * HOUR_MS;
/// Bills of a day are published early the next morning; run at 10:00 Beijing.
const DAILY_AT_MS: i64 = 10 * HOUR_MS;
/// A failed daily run (bill not ready, provider down) is tried again this much later.
const DAILY_RETRY_MS: i64 = HOUR_MS;

/// The first 10:00 Beijing strictly after `now`.
pub fn next_daily_run(now: i64) -> i64 {
    let local = now + BEIJING_OFFSET_MS;
    let run = local - local.rem_euclid(DAY_MS) + DAILY_AT_MS - BEIJING_OFFSET_MS;
    if run > now {
        run
    } else {
        run + DAY_MS
    }
}

/// The Beijing calendar day containing `ms`.
pub fn beijing_date(ms: i64) -> Option<Date> {
    let t = time::OffsetDateTime::from_unix_timestamp((ms + BEIJING_OFFSET_MS).div_euclid(1000))
        .ok()?;
    Some(t.date())
}

/// How far back a merchant may ask for a bill: the providers keep downloadable bills for a
/// limited time (WeChat Pay three months, Alipay about a year), so older days can only fail
/// after a provider round trip; the margin leaves room for a provider that keeps them longer.
const OLDEST_BILL_DAYS: i64 = 3 * 366;

/// Refuses a bill day that cannot have a bill: one after today in Beijing (the providers' day)
/// or older than [`OLDEST_BILL_DAYS`]. Without it `9999-12-31` or `0000-01-01` went to the
/// provider and stored a failed run.
fn check_bill_day(day: Date, now_ms: i64) -> Result<(), ServiceError> {
    let today = beijing_date(now_ms).ok_or_else(|| ServiceError::internal("clock out of range"))?;
    let oldest = today
        .checked_sub(time::Duration::days(OLDEST_BILL_DAYS))
        .unwrap_or(Date::MIN);
    if day > today || day < oldest {
        return Err(ServiceError::Validation(format!(
            "date must be a Beijing day from {oldest} to {today}"
        )));
    }
    Ok(())
}

/// The idempotency scope of the late payment policy's refunds.
const LATE_REFUND_SCOPE: &str = "system:late-payment";

/// The deterministic merchant refund number of a late payment's automatic refund: a retried
/// policy run finds the refund it already made instead of making another.
fn late_refund_no(payment_id: &str) -> String {
    format!("late_{}", payment_id.trim_start_matches("pay_"))
}

/// Heals through the gateway's active queries.
struct GatewayHealer<'a>(&'a Gateway);

#[async_trait]
impl Healer for GatewayHealer<'_> {
    async fn heal_payment(&self, payment_id: &str) -> Result<PaymentStatus, String> {
        self.0
            .query_and_apply(payment_id, "reconciliation")
            .await
            .map(|p| p.status)
            .map_err(|e| e.to_string())
    }

    async fn heal_refund(&self, refund_id: &str) -> Result<RefundStatus, String> {
        self.0
            .query_refund_and_apply(refund_id, "reconciliation")
            .await
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    }
}

fn reconcile_error(e: ReconcileError) -> ServiceError {
    match e {
        ReconcileError::Date(d) => {
            ServiceError::Validation(format!("date {d:?}: expected YYYY-MM-DD"))
        }
        other => ServiceError::internal(other),
    }
}

/// A run with the discrepancies it found, as `GET /v1/reconciliations/{id}` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reconciliation {
    pub run: ReconciliationRun,
    pub discrepancies: Vec<DiscrepancyRecord>,
}

impl Gateway {
    /// Schedules the daily reconciliation of every account with a bill source, unless one is
    /// live (every instance that runs workers asks at start).
    pub(crate) async fn ensure_daily_reconciliations(&self) -> Result<(), ServiceError> {
        for account in self.reconcile.sources.keys() {
            self.store
                .schedule_job(&NewJob {
                    kind: JobKind::Reconcile.as_str().to_string(),
                    key: account.clone(),
                    payment_id: None,
                    refund_id: None,
                    payload: json!({ "account": account }),
                    run_at: next_daily_run(self.now_ms()),
                })
                .await?;
        }
        Ok(())
    }

    pub fn late_payment_policy(&self) -> LatePaymentPolicy {
        self.reconcile.late_payment
    }

    fn bill_source(&self, account: &str) -> Result<Arc<dyn BillSource>, ServiceError> {
        self.account(account)?;
        self.reconcile.sources.get(account).cloned().ok_or_else(|| {
            ServiceError::Validation(format!("account {account} has no bill source configured"))
        })
    }

    /// Downloads and reconciles one account's bill of `date`; healable discrepancies are
    /// healed by active queries. The run is recorded either way.
    pub async fn reconcile_day(
        &self,
        account: &str,
        date: Date,
        progress: &dyn Progress,
    ) -> Result<RunReport, ServiceError> {
        let source = self.bill_source(account)?;
        let healer = GatewayHealer(self);
        Engine::new(self.store.clone())
            .with_healer(&healer)
            .reconcile(account, date, source.as_ref(), progress)
            .await
            .map_err(reconcile_error)
    }

    /// The daily job: reconciles yesterday (Beijing) and returns when to run next.
    pub(super) async fn run_reconcile_job(&self, job: &Job) -> i64 {
        let now = self.now_ms();
        let Some(date) = beijing_date(now - DAY_MS) else {
            return now + DAILY_RETRY_MS;
        };
        let heartbeat = self.keep_lease(job);
        let result = self.reconcile_day(&job.key, date, &()).await;
        heartbeat.abort();
        match result {
            Ok(report) => {
                tracing::info!(run = %report.run.id, account = %job.key, open = report.totals.open,
                    healed = report.totals.healed, "daily reconciliation");
                next_daily_run(now)
            }
            Err(e) => {
                tracing::warn!(account = %job.key, error = %e, "daily reconciliation failed");
                now + DAILY_RETRY_MS
            }
        }
    }

    /// Renews the job's lease every third of a lease while a long run goes on, so no other
    /// instance takes the same day meanwhile; a crash stops the renewals and the lease lapses.
    fn keep_lease(&self, job: &Job) -> tokio::task::JoinHandle<()> {
        let store = self.store.clone();
        let id = job.id.clone();
        let owner = self.instance.clone();
        let lease_ms = self.job_lease_ms;
        tokio::spawn(async move {
            let period = std::time::Duration::from_millis((lease_ms / 3).max(1).unsigned_abs());
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let until = store.now_ms() + lease_ms;
                match store.extend_job_lease(&id, &owner, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %id, "reconciliation lease lost to another instance");
                        break;
                    }
                    Err(e) => tracing::warn!(job = %id, error = %e, "cannot renew lease"),
                }
            }
        })
    }

    /// The job a late payment leaves behind, in the same transaction that marks it paid: the
    /// policy runs as a retried job, never inline in the notification that brought the money.
    pub(super) fn late_payment_job(&self, p: &Payment) -> NewJob {
        JobKind::LateRefund.job(&p.id, None, Value::Null, self.now_ms())
    }

    /// The late payment policy for one payment: keep (recorded) or refund in full, under the
    /// policy's own idempotency key so a retried job finds the refund it already began.
    pub(super) async fn run_late_payment_policy(&self, job: &Job) -> Result<(), ServiceError> {
        let Some(payment_id) = &job.payment_id else {
            return Ok(());
        };
        let p = self.load_payment(payment_id).await?;
        if self.late_payment_policy() != LatePaymentPolicy::Refund {
            self.timeline(&p.id, "late_payment_policy", "kept (policy keep)")
                .await;
            return Ok(());
        }
        // A retryable refusal (the provider busy, the balance short) failed the refund it was
        // sent as: the next attempt is a new refund, numbered by how many failed before it, so
        // a crash inside an attempt resumes that same attempt.
        let base = late_refund_no(&p.id);
        let failed = self
            .store
            .list_refunds(&p.id)
            .await?
            .iter()
            .filter(|r| r.out_refund_no.starts_with(&base) && r.status == RefundStatus::Failed)
            .count();
        let no = match failed {
            0 => base,
            n => format!("{base}_{n}"),
        };
        let claim = KeyClaim {
            scope: LATE_REFUND_SCOPE,
            key: &no,
            request_hash: "late-payment-refund",
            lock_ms: KEY_LOCK_MS,
        };
        let new = NewRefund {
            payment_id: p.id.clone(),
            out_refund_no: no.clone(),
            amount: p.refundable(),
            reason: Some("paid after the order was closed".into()),
        };
        let audit = Audit::new(format!("job:{}", job.id), "late payment policy: refund");
        let detail = match self.begin_and_send_refund(&claim, new, &audit).await {
            Ok(answer) => match answer {
                Answer::Done(r) | Answer::Replayed(r) | Answer::Unsettled(r) => {
                    format!(
                        "refunded in full (policy refund): refund {} is {}",
                        r.id, r.status
                    )
                }
                Answer::Stored { .. } => "refund refused earlier by the provider".to_string(),
            },
            Err(
                e @ ServiceError::ProviderRefused {
                    retryable: true, ..
                },
            ) => {
                self.timeline(
                    &p.id,
                    "late_payment_policy",
                    &format!("automatic refund refused, will retry: {e}"),
                )
                .await;
                return Err(e);
            }
            // Refused by the provider, or nothing left to refund: final, say so.
            Err(
                e @ (ServiceError::ProviderRefused { .. }
                | ServiceError::RefundExceedsPayment { .. }
                | ServiceError::InvalidState { .. }),
            ) => {
                tracing::warn!(payment = %p.id, error = %e, "late payment refund failed");
                format!("automatic refund failed: {e}")
            }
            Err(e) => return Err(e),
        };
        self.timeline(&p.id, "late_payment_policy", &detail).await;
        Ok(())
    }

    /// `POST /v1/reconciliations`: queues a run of the day and answers with it at once (state
    /// `queued`); a job of the reconciliation pool does the work, recording its progress.
    pub async fn create_reconciliation(
        &self,
        key: &dyn Caller,
        account: &str,
        date: &str,
    ) -> Result<Reconciliation, ServiceError> {
        let acc = self.account(account)?;
        if acc.mode != key.mode() {
            return Err(ServiceError::UnknownAccount(account.to_string()));
        }
        let day = parse_bill_date(date).map_err(reconcile_error)?;
        check_bill_day(day, self.now_ms())?;
        self.bill_source(account)?;
        let run = self.queue_reconciliation(account, day).await?;
        let job = JobKind::ReconcileRun.job(&run.id, None, Value::Null, self.now_ms());
        if let Err(e) = self.store.schedule_job(&job).await {
            // A queued run nobody will take would wait forever: close it with the reason.
            let reason = format!("the run could not be scheduled: {e}");
            if let Err(e) = self
                .store
                .finish_reconciliation(&run.id, &json!({}), Some(&reason))
                .await
            {
                tracing::error!(run = %run.id, error = %e, "cannot fail an unscheduled run");
            }
            return Err(e.into());
        }
        self.reconciliation_view(&run).await
    }

    /// Records a run of an account's day in state `queued`, for [`Gateway::run_reconciliation`]
    /// (the API's job, or the CLI, which follows the run while it works).
    pub async fn queue_reconciliation(
        &self,
        account: &str,
        date: Date,
    ) -> Result<ReconciliationRun, ServiceError> {
        self.account(account)?;
        let day = date.to_string();
        Ok(self.store.queue_reconciliation(account, &day).await?)
    }

    /// Does the work of a queued run (or resumes one a crashed job left running): the bill
    /// downloaded through the account's source, or `bill` when one is at hand (a saved
    /// download). `None` when the run was already finished.
    pub async fn run_reconciliation(
        &self,
        run_id: &str,
        bill: Option<BillFile>,
        progress: &dyn Progress,
    ) -> Result<Option<RunReport>, ServiceError> {
        let run = self
            .store
            .get_reconciliation(run_id)
            .await?
            .ok_or(ServiceError::NotFound("reconciliation"))?;
        let source: Arc<dyn BillSource> = match bill {
            Some(file) => Arc::new(SavedBill(file)),
            None => self.bill_source(&run.account)?,
        };
        let healer = GatewayHealer(self);
        Engine::new(self.store.clone())
            .with_healer(&healer)
            .resume(run_id, source.as_ref(), progress)
            .await
            .map_err(reconcile_error)
    }

    /// The `reconcile.run` job: `true` once the run is finished (completed, or failed with its
    /// reason recorded), `false` when it must be tried again (the database failed under it).
    pub(super) async fn run_queued_reconciliation(
        &self,
        run_id: &str,
    ) -> Result<bool, ServiceError> {
        let result = self.run_reconciliation(run_id, None, &()).await;
        if let Err(ServiceError::Validation(reason)) = &result {
            // The account lost its bill source since the run was queued: nothing to retry.
            self.store
                .finish_reconciliation(run_id, &json!({}), Some(reason))
                .await?;
            return Ok(true);
        }
        if let Err(e) = &result {
            tracing::warn!(run = %run_id, error = %e, "reconciliation run failed");
        }
        let run = self.store.get_reconciliation(run_id).await?;
        Ok(run.is_none_or(|r| r.state == "completed" || r.state == "failed"))
    }

    /// `GET /v1/reconciliations/{id}`: the run with its discrepancies.
    pub async fn get_reconciliation(
        &self,
        key: &dyn Caller,
        id: &str,
    ) -> Result<Reconciliation, ServiceError> {
        let run = self
            .store
            .get_reconciliation(id)
            .await?
            .ok_or(ServiceError::NotFound("reconciliation"))?;
        match self.accounts.get(&run.account) {
            Some(a) if a.mode == key.mode() => self.reconciliation_view(&run).await,
            _ => Err(ServiceError::NotFound("reconciliation")),
        }
    }

    pub async fn reconciliation_view(
        &self,
        run: &ReconciliationRun,
    ) -> Result<Reconciliation, ServiceError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        // Discrepancies are few next to bill rows; a run with more than this many is read
        // page by page through the store rather than in one response.
        const MAX_LISTED: usize = 1000;
        while items.len() < MAX_LISTED {
            let page = self
                .store
                .list_discrepancies(&run.id, after.as_deref(), 200)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            items.extend(page);
        }
        Ok(Reconciliation {
            run: run.clone(),
            discrepancies: items,
        })
    }
}

/// Builds the bill source of a configured account with the same client builders as its
/// channels: the Alipay trade bill, or WeChat's APIv3 trade bill (SHA-1 checked) when v3 keys
/// are configured, else APIv2's.
pub fn bill_source(
    a: &AccountConfig,
    store: &paybridge_store::Store,
) -> Result<Arc<dyn BillSource>, String> {
    let sink = channels::call_sink(a, store);
    let source: Arc<dyn BillSource> = match &a.provider {
        ProviderConfig::Alipay(c) => Arc::new(AlipayBills {
            client: channels::alipay_client(a, c, &sink).map_err(|e| e.to_string())?,
            options: Default::default(),
        }),
        ProviderConfig::Wechat(c) => match (&c.v3, &c.v2) {
            (Some(v3), _) => Arc::new(WechatV3Bills {
                client: channels::wechat_v3_client(a, c, v3, &sink).map_err(|e| e.to_string())?,
            }),
            (None, Some(v2)) => Arc::new(WechatV2Bills {
                client: channels::wechat_v2_client(a, c, v2, &sink).map_err(|e| e.to_string())?,
            }),
            (None, None) => {
                return Err(format!("account {}: neither APIv2 nor APIv3 keys", a.id));
            }
        },
    };
    Ok(source)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn daily_runs_are_at_ten_beijing() {
        // 2027-01-15 08:00 UTC = 16:00 Beijing -> next run 2027-01-16 10:00 Beijing.
        let t0 = 1_800_000_000_000;
        let next = next_daily_run(t0);
        assert_eq!(next, t0 + 18 * HOUR_MS);
        assert_eq!(next_daily_run(next), next + DAY_MS);
        assert_eq!(next_daily_run(next - 1), next);
        assert_eq!(beijing_date(t0).unwrap().to_string(), "2027-01-15");
        assert_eq!(
            beijing_date(next - DAY_MS).unwrap().to_string(),
            "2027-01-15"
        );
        assert_eq!("refund".parse(), Ok(LatePaymentPolicy::Refund));
        assert!("burn".parse::<LatePaymentPolicy>().is_err());
        assert_eq!(late_refund_no("pay_0192ab"), "late_0192ab");
    }
}
