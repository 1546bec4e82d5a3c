//! The money path's units of work: each function is ONE transaction that leaves the database in a
//! state from which a job can finish or undo the operation if the process dies right after it.
//!
//! Lock order, everywhere: the payment row, then its refund rows, then the idempotency row. No
//! unit takes them in another order, so PostgreSQL cannot deadlock between them. (SQLite holds
//! the database write lock from `BEGIN IMMEDIATE`, which orders everything anyway.)
//!
//! The caller decides (with `paybridge_core::decide`) inside a closure that sees the row as
//! locked; the store executes the plan: conditional update, audit rows, outbox event with its
//! deliveries, timeline entries, follow-up jobs and the idempotency key's new recovery point.

use paybridge_core::decide::settle_refund;
use paybridge_core::{Fen, PaymentStatus, RefundStatus};
use serde_json::Value;
use sqlx::types::Json;

use crate::cashiers::{Cashier, CashierRow, NewCashier, CASHIER_COLS};
use crate::db::with_pool;
use crate::error::{conflict_or, Result, StoreError};
use crate::group::{GroupedUnit, UnitApplied};
use crate::inbox::{record_inbox, InboxEntry, InboxRecord};
use crate::model::{insert_audit, insert_event, Audit, NewEvent};
use crate::payments::{bind_patch, payment_select, PaymentRow, PATCH_SET, PAYMENT_COLS};
use crate::provider_calls::insert_provider_call;
use crate::refunds::{refund_select, RefundRow, REFUND_COLS};
use crate::{
    NewJob, NewPayment, NewProviderCall, NewRefund, Payment, PaymentPatch, Refund, RefundPatch,
    Store,
};

/// A request's claim on its `Idempotency-Key`, scoped to the API key that sent it.
#[derive(Debug, Clone, Copy)]
pub struct KeyClaim<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    /// Digest of method, path and body: the same key with another request is refused.
    pub request_hash: &'a str,
    /// How long the claiming request holds the key (past its provider call's deadline); after
    /// that a retry or the recovery job may resume the operation.
    pub lock_ms: i64,
}

/// Where a key already stands when a request claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// A definite answer was stored (a provider refusal): replay it.
    Answer { status: u16, body: Vec<u8> },
    /// The operation finished: the resource as it now is answers the retry.
    Finished { resource_id: String },
    /// Begun, not settled, and nobody was working on it: this request now holds the key and
    /// resumes the operation from its recovery point.
    Resume { resource_id: String },
    /// Another request holds the key until `until` (unix ms).
    Locked { until: i64 },
    /// The key was used for a different request.
    Mismatch,
}

/// The recovery job's attempt to take a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLock {
    Acquired,
    /// A request is working on it.
    Held,
    /// Settled, or gone (purged): nobody will resume through the key.
    Settled,
}

/// How a unit of work leaves the request's idempotency key.
#[derive(Debug, Clone)]
pub struct KeyFinish<'a> {
    pub scope: &'a str,
    pub key: &'a str,
    /// `Some`: a definite answer to replay (status, JSON body). `None`: the resource answers.
    pub answer: Option<(u16, Vec<u8>)>,
}

/// An outbox event to emit with a change; its payload is rendered from the row after the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub kind: String,
    pub endpoints: Vec<String>,
}

/// What to do to a locked payment, decided by the caller from the row it sees.
#[derive(Debug, Clone)]
pub struct PaymentPlan {
    pub to: Option<PaymentStatus>,
    /// A state passed through on the way to `to`, audited as its own step.
    pub via: Option<PaymentStatus>,
    pub patch: PaymentPatch,
    pub event: Option<EventSpec>,
    pub audit: Audit,
    pub jobs: Vec<NewJob>,
    /// `(kind, key)` of waiting jobs the change makes pointless.
    pub cancel_jobs: Vec<(String, String)>,
    pub timeline: Vec<(String, Value)>,
    /// The verified notification this unit applies, recorded with its outcome in the same
    /// transaction.
    pub inbox: Option<InboxEntry>,
    /// Provider calls whose answer this unit applies, logged in the same transaction (a
    /// create's or refund's T2 needs no commit of its own for its call log).
    pub calls: Vec<NewProviderCall>,
}

impl PaymentPlan {
    pub fn new(audit: Audit) -> Self {
        PaymentPlan {
            to: None,
            via: None,
            patch: PaymentPatch::default(),
            event: None,
            audit,
            jobs: Vec::new(),
            cancel_jobs: Vec::new(),
            timeline: Vec::new(),
            inbox: None,
            calls: Vec::new(),
        }
    }
}

/// What to do to a locked refund (and, through a success, its payment).
#[derive(Debug, Clone)]
pub struct RefundPlan {
    pub to: Option<RefundStatus>,
    pub patch: RefundPatch,
    pub event: Option<EventSpec>,
    pub audit: Audit,
    pub jobs: Vec<NewJob>,
    pub cancel_jobs: Vec<(String, String)>,
    pub timeline: Vec<(String, Value)>,
    pub inbox: Option<InboxEntry>,
    /// As [`PaymentPlan::calls`].
    pub calls: Vec<NewProviderCall>,
}

impl RefundPlan {
    pub fn new(audit: Audit) -> Self {
        RefundPlan {
            to: None,
            patch: RefundPatch::default(),
            event: None,
            audit,
            jobs: Vec::new(),
            cancel_jobs: Vec::new(),
            timeline: Vec::new(),
            inbox: None,
            calls: Vec::new(),
        }
    }
}

/// The result of [`Store::begin_payment`].
#[derive(Debug, Clone, PartialEq)]
pub enum BeginPayment {
    /// Created under the caller's lock on the key: go on to the provider.
    Started(Box<Payment>),
    /// The key was used before.
    Key(KeyState),
}

/// The result of [`Store::begin_cashier`].
#[derive(Debug, Clone, PartialEq)]
pub enum BeginCashier {
    /// Created, and the key settled on it.
    Created(Box<Cashier>),
    /// The key was used before.
    Key(KeyState),
}

/// The result of [`Store::begin_refund`].
#[derive(Debug, Clone, PartialEq)]
pub enum BeginRefund {
    Started(Refund),
    /// A refund with this `out_refund_no` and amount already exists on the payment: the key now
    /// answers with it.
    Existing(Refund),
    Key(KeyState),
}

/// After [`Store::apply_payment`]: the row as it now is and whether this call changed its state.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentApplied {
    pub payment: Payment,
    pub changed: bool,
    /// How the plan's notification was recorded.
    pub inbox: Option<InboxRecord>,
}

/// After [`Store::apply_refund`].
#[derive(Debug, Clone, PartialEq)]
pub struct RefundApplied {
    pub refund: Refund,
    /// The payment after the unit (moved when the refund succeeded).
    pub payment: Payment,
    pub changed: bool,
    pub inbox: Option<InboxRecord>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: String,
    state: String,
    response_status: Option<i64>,
    response_body: Option<Vec<u8>>,
    resource_id: Option<String>,
    locked_until: Option<i64>,
    updated_at: i64,
}

/// How long a legacy `in_progress` key (no resource, no lock) belongs to its request.
const LEGACY_LOCK_MS: i64 = 120_000;

/// Claims `$claim` for `$resource` inside `$tx`: `None` when the key was new (now held by this
/// request), else where it stands.
macro_rules! claim_key {
    ($tx:expr, $d:expr, $claim:expr, $resource:expr, $now:expr) => {{
        let claim: &KeyClaim<'_> = $claim;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, request_hash, state, resource_id, \
             locked_until, created_at, updated_at) VALUES ($1, $2, $3, 'started', $4, $5, $6, $6) \
             ON CONFLICT (scope, key) DO NOTHING",
        )
        .bind(claim.scope)
        .bind(claim.key)
        .bind(claim.request_hash)
        .bind($resource)
        .bind($now + claim.lock_ms)
        .bind($now)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            None
        } else {
            let sql = format!(
                "SELECT request_hash, state, response_status, response_body, resource_id, \
                 locked_until, updated_at FROM idempotency_keys WHERE scope = $1 AND key = $2{}",
                $d.for_update()
            );
            let row: KeyRow = sqlx::query_as(&sql)
                .bind(claim.scope)
                .bind(claim.key)
                .fetch_one(&mut *$tx)
                .await?;
            let state = key_state(row, claim, $now)?;
            if matches!(state, KeyState::Resume { .. }) {
                sqlx::query(
                    "UPDATE idempotency_keys SET locked_until = $1, updated_at = $2 \
                     WHERE scope = $3 AND key = $4",
                )
                .bind($now + claim.lock_ms)
                .bind($now)
                .bind(claim.scope)
                .bind(claim.key)
                .execute(&mut *$tx)
                .await?;
            }
            Some(state)
        }
    }};
}

fn key_state(row: KeyRow, claim: &KeyClaim<'_>, now: i64) -> Result<KeyState> {
    if row.request_hash != claim.request_hash {
        return Ok(KeyState::Mismatch);
    }
    match (row.state.as_str(), row.resource_id) {
        ("completed", _) => {
            let status = row
                .response_status
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "idempotency response status",
                    value: format!("{:?}", row.response_status),
                })?;
            Ok(KeyState::Answer {
                status,
                body: row.response_body.unwrap_or_default(),
            })
        }
        ("finished", Some(resource_id)) => Ok(KeyState::Finished { resource_id }),
        ("started", Some(resource_id)) => match row.locked_until {
            Some(until) if until > now => Ok(KeyState::Locked { until }),
            _ => Ok(KeyState::Resume { resource_id }),
        },
        // Written by the generic wrapper (close, redeliver) or an older version.
        ("in_progress", _) => Ok(KeyState::Locked {
            until: row.updated_at.saturating_add(LEGACY_LOCK_MS),
        }),
        (other, _) => Err(StoreError::Corrupt {
            what: "idempotency key state",
            value: other.to_string(),
        }),
    }
}

/// Settles the key inside `$tx` as `$finish` says and releases its lock.
macro_rules! finish_key {
    ($tx:expr, $finish:expr, $now:expr) => {{
        let finish: &KeyFinish<'_> = $finish;
        let (state, status, body) = match &finish.answer {
            Some((status, body)) => ("completed", Some(i64::from(*status)), Some(body.as_slice())),
            None => ("finished", None, None),
        };
        sqlx::query(
            "UPDATE idempotency_keys SET state = $1, response_status = $2, response_body = $3, \
             locked_until = NULL, updated_at = $4 WHERE scope = $5 AND key = $6",
        )
        .bind(state)
        .bind(status)
        .bind(body)
        .bind($now)
        .bind(finish.scope)
        .bind(finish.key)
        .execute(&mut *$tx)
        .await?;
    }};
}

/// Schedules `$job` inside `$tx` unless a live job of its `(kind, key)` exists, in which case a
/// later waiting one is moved up to `run_at`.
macro_rules! upsert_job {
    ($tx:expr, $job:expr, $now:expr) => {{
        let job: &NewJob = $job;
        let inserted = sqlx::query(
            "INSERT INTO jobs (id, kind, dedup_key, payment_id, refund_id, payload, state, \
             run_at, attempts, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
             'scheduled', $7, 0, $8, $8) \
             ON CONFLICT (kind, dedup_key) WHERE state IN ('scheduled', 'running') DO NOTHING",
        )
        .bind(crate::new_id("job"))
        .bind(&job.kind)
        .bind(&job.key)
        .bind(&job.payment_id)
        .bind(&job.refund_id)
        .bind(Json(&job.payload))
        .bind(job.run_at)
        .bind($now)
        .execute(&mut *$tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            sqlx::query(
                "UPDATE jobs SET run_at = $1, payload = $2, updated_at = $3 WHERE kind = $4 \
                 AND dedup_key = $5 AND state = 'scheduled' AND run_at > $1",
            )
            .bind(job.run_at)
            .bind(Json(&job.payload))
            .bind($now)
            .bind(&job.kind)
            .bind(&job.key)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// Jobs, cancellations, timeline entries and provider calls of a plan, inside `$tx`.
macro_rules! plan_side_effects {
    ($tx:expr, $plan:expr, $payment_id:expr, $now:expr) => {{
        for call in &$plan.calls {
            insert_provider_call!(&mut *$tx, call, $now);
        }
        for job in &$plan.jobs {
            upsert_job!($tx, job, $now);
        }
        for (kind, key) in &$plan.cancel_jobs {
            sqlx::query(
                "UPDATE jobs SET state = 'cancelled', updated_at = $1 \
                 WHERE kind = $2 AND dedup_key = $3 AND state = 'scheduled'",
            )
            .bind($now)
            .bind(kind)
            .bind(key)
            .execute(&mut *$tx)
            .await?;
        }
        for (kind, detail) in &$plan.timeline {
            sqlx::query(
                "INSERT INTO payment_timeline (payment_id, kind, detail, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind($payment_id)
            .bind(kind)
            .bind(Json(detail))
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        }
    }};
}

/// Whether writing `p` would change `current`: a duplicate notification or a repeated query
/// re-sends fields the row already holds, and must leave the row (and its version) alone.
fn differs<T: PartialEq>(new: &Option<T>, old: Option<&T>) -> bool {
    new.as_ref().is_some_and(|n| Some(n) != old)
}

fn patch_changes(p: &PaymentPatch, current: &Payment) -> bool {
    differs(&p.provider_trade_no, current.provider_trade_no.as_ref())
        || differs(&p.client_action, current.client_action.as_ref())
        || differs(&p.payer_id, current.payer_id.as_ref())
        || differs(&p.expires_at, current.expires_at.as_ref())
        || differs(&p.paid_at, current.paid_at.as_ref())
        || differs(&p.paid_amount, current.paid_amount.as_ref())
        || differs(&p.late_payment, Some(&current.late_payment))
}

/// As [`patch_changes`], for a refund.
fn refund_patch_changes(p: &RefundPatch, current: &Refund) -> bool {
    differs(&p.provider_refund_no, current.provider_refund_no.as_ref())
        || differs(&p.failure_reason, current.failure_reason.as_ref())
        || differs(&p.succeeded_at, current.succeeded_at.as_ref())
}

/// The payment unit's statements inside the open transaction `$tx` (see
/// [`Store::apply_payment`]); evaluates to `Result<Option<PaymentApplied>>`. Written once and
/// expanded for the single unit and for the group commit ([`Store::apply_together`]), so both
/// write exactly the same rows. It writes nothing before it has locked the row and checked the
/// plan, but may fail after a write: the caller must then roll the transaction back.
macro_rules! payment_unit {
    ($tx:ident, $d:ident, $id:expr, $key:expr, $render:expr, $plan:expr, $now:expr) => {{
        let id: &str = $id;
        let key: Option<&KeyFinish<'_>> = $key;
        let render: fn(&Payment) -> Value = $render;
        let now: i64 = $now;
        let done: Result<Option<PaymentApplied>> = async {
            let lock_sql = format!("{}{}", payment_select("id = $1"), $d.for_update());
            let row: Option<PaymentRow> = sqlx::query_as(&lock_sql)
                .bind(id)
                .fetch_optional(&mut *$tx)
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let current = Payment::try_from(row)?;
            let plan: PaymentPlan = $plan(&current);
            let to = plan.to.filter(|to| match plan.via {
                Some(via) => current.status.can_transition(via) && via.can_transition(*to),
                None => current.status.can_transition(*to),
            });
            if plan.to.is_some() && to.is_none() {
                return Err(StoreError::Invariant(format!(
                    "illegal payment transition {} -> {:?} planned for {id}",
                    current.status, plan.to
                )));
            }
            let mut payment = current.clone();
            let changed = to.is_some();
            if changed || patch_changes(&plan.patch, &current) {
                let steps: i64 = match (to, plan.via) {
                    (Some(_), Some(_)) => 2,
                    _ => 1,
                };
                let update = format!(
                    "UPDATE payments SET {PATCH_SET}, previous_status = CASE WHEN $12 IS NULL \
                     THEN previous_status ELSE $11 END, status = COALESCE($12, status), \
                     version = version + $13, updated_at = $8 \
                     WHERE id = $9 AND version = $10 RETURNING {PAYMENT_COLS}"
                );
                let row: PaymentRow = bind_patch!(sqlx::query_as(&update), plan.patch)
                    .bind(now)
                    .bind(id)
                    .bind(current.version)
                    .bind(to.map(|_| plan.via.unwrap_or(current.status).as_str()))
                    .bind(to.map(|s| s.as_str()))
                    .bind(steps)
                    .fetch_one(&mut *$tx)
                    .await?;
                payment = Payment::try_from(row)?;
            }
            if let Some(to) = to {
                if let Some(via) = plan.via {
                    insert_audit!(
                        $tx,
                        "payment",
                        id,
                        Some(current.status.as_str()),
                        via.as_str(),
                        current.version + 1,
                        plan.audit,
                        now
                    );
                }
                insert_audit!(
                    $tx,
                    "payment",
                    id,
                    Some(plan.via.unwrap_or(current.status).as_str()),
                    to.as_str(),
                    payment.version,
                    plan.audit,
                    now
                );
                if let Some(spec) = &plan.event {
                    let event = NewEvent::new(&spec.kind, render(&payment))
                        .deliver_to(spec.endpoints.clone());
                    insert_event!(
                        $tx,
                        event,
                        payment.mode.as_str(),
                        &payment.account,
                        Some(id),
                        None::<&str>,
                        now
                    );
                }
            }
            plan_side_effects!($tx, plan, id, now);
            let inbox = match &plan.inbox {
                Some(entry) => Some(record_inbox!($tx, entry, changed, Some(id), now)),
                None => None,
            };
            if let Some(finish) = key {
                finish_key!($tx, finish, now);
            }
            Ok(Some(PaymentApplied {
                payment,
                changed,
                inbox,
            }))
        }
        .await;
        done
    }};
}

/// The refund unit's statements inside the open transaction `$tx` (see
/// [`Store::apply_refund`]); evaluates to `Result<Option<RefundApplied>>`. As with
/// [`payment_unit`], an error may follow a write: the caller rolls back.
macro_rules! refund_unit {
    ($tx:ident, $d:ident, $refund_id:expr, $key:expr, $render:expr, $plan:expr, $now:expr) => {{
        let refund_id: &str = $refund_id;
        let key: Option<&KeyFinish<'_>> = $key;
        let render: fn(&Refund) -> Value = $render;
        let now: i64 = $now;
        let done: Result<Option<RefundApplied>> = async {
            let lock_payment = format!(
                "{}{}",
                payment_select("id = (SELECT payment_id FROM refunds WHERE id = $1)"),
                $d.for_update()
            );
            let payment: Option<PaymentRow> = sqlx::query_as(&lock_payment)
                .bind(refund_id)
                .fetch_optional(&mut *$tx)
                .await?;
            let Some(payment) = payment else {
                return Ok(None);
            };
            let mut payment = Payment::try_from(payment)?;
            let lock_refund = format!("{}{}", refund_select("id = $1"), $d.for_update());
            let current: RefundRow = sqlx::query_as(&lock_refund)
                .bind(refund_id)
                .fetch_one(&mut *$tx)
                .await?;
            let current = Refund::try_from(current)?;
            let plan: RefundPlan = $plan(&payment, &current);
            if let Some(to) = plan.to {
                current.status.check_transition(to).map_err(|e| {
                    StoreError::Invariant(format!("{e} planned for refund {refund_id}"))
                })?;
            }
            let mut refund = current.clone();
            let changed = plan.to.is_some();
            if changed || refund_patch_changes(&plan.patch, &current) {
                let update_refund = format!(
                    "UPDATE refunds SET previous_status = CASE WHEN $1 IS NULL THEN \
                     previous_status ELSE status END, status = COALESCE($1, status), \
                     version = version + 1, provider_refund_no = COALESCE($2, provider_refund_no), \
                     failure_reason = COALESCE($3, failure_reason), \
                     succeeded_at = COALESCE($4, succeeded_at), updated_at = $5 \
                     WHERE id = $6 AND version = $7 RETURNING {REFUND_COLS}"
                );
                let row: RefundRow = sqlx::query_as(&update_refund)
                    .bind(plan.to.map(|s| s.as_str()))
                    .bind(&plan.patch.provider_refund_no)
                    .bind(&plan.patch.failure_reason)
                    .bind(plan.patch.succeeded_at)
                    .bind(now)
                    .bind(refund_id)
                    .bind(current.version)
                    .fetch_one(&mut *$tx)
                    .await?;
                refund = Refund::try_from(row)?;
            }
            if let Some(to) = plan.to {
                insert_audit!(
                    $tx,
                    "refund",
                    refund_id,
                    Some(current.status.as_str()),
                    to.as_str(),
                    refund.version,
                    plan.audit,
                    now
                );
                if to == RefundStatus::Succeeded {
                    let paid = payment.paid_amount.unwrap_or(payment.amount);
                    let next =
                        settle_refund(payment.status, paid, payment.refunded_amount, refund.amount)
                            .ok_or_else(|| {
                                StoreError::Invariant(format!(
                                    "refund {refund_id} succeeded but payment {} is {}",
                                    payment.id, payment.status
                                ))
                            })?;
                    let update_payment = format!(
                        "UPDATE payments SET previous_status = status, status = $1, \
                         refunded_amount = refunded_amount + $2, version = version + 1, \
                         updated_at = $3 WHERE id = $4 AND version = $5 RETURNING {PAYMENT_COLS}"
                    );
                    let row: PaymentRow = sqlx::query_as(&update_payment)
                        .bind(next.as_str())
                        .bind(refund.amount.0)
                        .bind(now)
                        .bind(&payment.id)
                        .bind(payment.version)
                        .fetch_one(&mut *$tx)
                        .await?;
                    let before = payment.status;
                    payment = Payment::try_from(row)?;
                    insert_audit!(
                        $tx,
                        "payment",
                        &payment.id,
                        Some(before.as_str()),
                        payment.status.as_str(),
                        payment.version,
                        plan.audit,
                        now
                    );
                }
                if let Some(spec) = &plan.event {
                    let event = NewEvent::new(&spec.kind, render(&refund))
                        .deliver_to(spec.endpoints.clone());
                    insert_event!(
                        $tx,
                        event,
                        refund.mode.as_str(),
                        &refund.account,
                        Some(refund.payment_id.as_str()),
                        Some(refund_id),
                        now
                    );
                }
            }
            plan_side_effects!($tx, plan, &payment.id, now);
            let inbox = match &plan.inbox {
                Some(entry) => Some(record_inbox!(
                    $tx,
                    entry,
                    changed,
                    Some(payment.id.as_str()),
                    now
                )),
                None => None,
            };
            if let Some(finish) = key {
                finish_key!($tx, finish, now);
            }
            Ok(Some(RefundApplied {
                refund,
                payment,
                changed,
                inbox,
            }))
        }
        .await;
        done
    }};
}

impl Store {
    /// T1 of a create: the idempotency key (held by this request), the payment in `created`,
    /// its audit row and the jobs `jobs` returns for it (recovery and expiry), in one
    /// transaction, BEFORE the provider hears of it. A key used before creates nothing and says
    /// where it stands.
    ///
    /// Errors: [`StoreError::Conflict`] (`out_trade_no` taken by another request; nothing is
    /// written), [`StoreError::Invalid`] (amount ≤ 0).
    pub async fn begin_payment<J>(
        &self,
        claim: &KeyClaim<'_>,
        new: NewPayment,
        audit: &Audit,
        jobs: J,
    ) -> Result<BeginPayment>
    where
        J: FnOnce(&Payment) -> Vec<NewJob> + Send,
    {
        if new.amount.0 <= 0 {
            return Err(StoreError::Invalid(format!(
                "payment amount must be positive, got {} fen",
                new.amount.0
            )));
        }
        let id = crate::new_id("pay");
        let now = self.now_ms();
        let insert = format!(
            "INSERT INTO payments (id, mode, account, channel, scene, out_trade_no, amount, \
             currency, subject, description, status, version, expires_at, refunded_amount, \
             late_payment, metadata, cashier_id, created_at, updated_at) VALUES ($1, $2, $3, $4, \
             $5, $6, $7, $8, $9, $10, $11, 0, $12, 0, $13, $14, $15, $16, $16) RETURNING \
             {PAYMENT_COLS}"
        );
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            if let Some(state) = claim_key!(tx, d, claim, &id, now) {
                tx.commit().await?;
                return Ok(BeginPayment::Key(state));
            }
            let row: PaymentRow = sqlx::query_as(&insert)
                .bind(&id)
                .bind(new.mode.as_str())
                .bind(&new.account)
                .bind(new.channel.as_str())
                .bind(new.scene.as_str())
                .bind(&new.out_trade_no)
                .bind(new.amount.0)
                .bind(&new.currency)
                .bind(&new.subject)
                .bind(&new.description)
                .bind(PaymentStatus::Created.as_str())
                .bind(new.expires_at)
                .bind(false)
                .bind(Json(&new.metadata))
                .bind(&new.cashier_id)
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "out_trade_no", &new.out_trade_no))?;
            let payment = Payment::try_from(row)?;
            insert_audit!(
                tx,
                "payment",
                &id,
                None::<String>,
                PaymentStatus::Created.as_str(),
                0_i64,
                audit,
                now
            );
            for job in jobs(&payment) {
                upsert_job!(tx, &job, now);
            }
            tx.commit().await?;
            Ok(BeginPayment::Started(Box::new(payment)))
        })
    }

    /// A cashier and its key in one transaction. No provider hears of a cashier (its wallet
    /// orders are payments of their own), so the key is settled on it at once: a retry finds
    /// `Finished` and answers with the cashier as it now is.
    ///
    /// Errors: [`StoreError::Conflict`] (the merchant's `out_trade_no` is taken),
    /// [`StoreError::Invalid`] (amount ≤ 0). Errors write nothing.
    pub async fn begin_cashier(
        &self,
        claim: &KeyClaim<'_>,
        new: NewCashier,
    ) -> Result<BeginCashier> {
        if new.amount.0 <= 0 {
            return Err(StoreError::Invalid(format!(
                "cashier amount must be positive, got {} fen",
                new.amount.0
            )));
        }
        let id = crate::new_id("csh");
        let now = self.now_ms();
        let insert = format!(
            "INSERT INTO cashiers (id, token, mode, merchant, out_trade_no, amount, currency, \
             subject, description, return_url, alipay_account, wechat_account, expires_at, \
             metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $15) RETURNING {CASHIER_COLS}"
        );
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            if let Some(state) = claim_key!(tx, d, claim, &id, now) {
                tx.commit().await?;
                return Ok(BeginCashier::Key(state));
            }
            let row: CashierRow = sqlx::query_as(&insert)
                .bind(&id)
                .bind(&new.token)
                .bind(new.mode.as_str())
                .bind(&new.merchant)
                .bind(&new.out_trade_no)
                .bind(new.amount.0)
                .bind(&new.currency)
                .bind(&new.subject)
                .bind(&new.description)
                .bind(&new.return_url)
                .bind(&new.alipay_account)
                .bind(&new.wechat_account)
                .bind(new.expires_at)
                .bind(Json(&new.metadata))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "out_trade_no", &new.out_trade_no))?;
            let cashier = Cashier::try_from(row)?;
            let finish = KeyFinish {
                scope: claim.scope,
                key: claim.key,
                answer: None,
            };
            finish_key!(tx, &finish, now);
            tx.commit().await?;
            Ok(BeginCashier::Created(Box::new(cashier)))
        })
    }

    /// THE unit of work on an existing payment: locks its row, lets `plan` decide from the row
    /// as locked, and executes the plan (state change with audit rows and event, patch, jobs,
    /// timeline) and the key's new recovery point in one transaction. `None` when the payment
    /// does not exist. `render` builds event payloads from the row after the change.
    pub async fn apply_payment<F>(
        &self,
        id: &str,
        key: Option<KeyFinish<'_>>,
        render: fn(&Payment) -> Value,
        plan: F,
    ) -> Result<Option<PaymentApplied>>
    where
        F: FnOnce(&Payment) -> PaymentPlan + Send,
    {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            match payment_unit!(tx, d, id, key.as_ref(), render, plan, now) {
                Ok(applied) => {
                    tx.commit().await?;
                    Ok(applied)
                }
                Err(e) => {
                    tx.rollback().await?;
                    Err(e)
                }
            }
        })
    }

    /// T1 of a refund: locks the payment (first, as every unit does), claims the key, and unless
    /// the key or the `out_refund_no` was used before, inserts the `pending` refund with the
    /// amount reserved against what was paid, its audit row and the jobs `jobs` returns (the
    /// recovery query), in one transaction, BEFORE the provider hears of it.
    ///
    /// Errors: [`StoreError::NotFound`] (payment), [`StoreError::NotRefundable`],
    /// [`StoreError::RefundExceedsPaid`], [`StoreError::Conflict`] (`out_refund_no` used for
    /// another amount), [`StoreError::Invalid`] (amount ≤ 0). Errors write nothing.
    pub async fn begin_refund<J>(
        &self,
        claim: &KeyClaim<'_>,
        new: NewRefund,
        audit: &Audit,
        jobs: J,
    ) -> Result<BeginRefund>
    where
        J: FnOnce(&Payment, &Refund) -> Vec<NewJob> + Send,
    {
        if new.amount.0 <= 0 {
            return Err(StoreError::Invalid(format!(
                "refund amount must be positive, got {} fen",
                new.amount.0
            )));
        }
        let now = self.now_ms();
        let id = crate::new_id("re");
        let insert = format!(
            "INSERT INTO refunds (id, payment_id, mode, account, out_refund_no, amount, reason, \
             status, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, \
             $9, $9) RETURNING {REFUND_COLS}"
        );
        let existing_sql = refund_select("payment_id = $1 AND out_refund_no = $2");
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let lock = format!("{}{}", payment_select("id = $1"), d.for_update());
            let payment: Option<PaymentRow> = sqlx::query_as(&lock)
                .bind(&new.payment_id)
                .fetch_optional(&mut *tx)
                .await?;
            let payment = Payment::try_from(payment.ok_or_else(|| StoreError::NotFound {
                what: "payment",
                id: new.payment_id.clone(),
            })?)?;
            if let Some(state) = claim_key!(tx, d, claim, &id, now) {
                tx.commit().await?;
                return Ok(BeginRefund::Key(state));
            }
            let existing: Option<RefundRow> = sqlx::query_as(&existing_sql)
                .bind(&payment.id)
                .bind(&new.out_refund_no)
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(existing) = existing {
                let existing = Refund::try_from(existing)?;
                if existing.amount != new.amount {
                    tx.rollback().await?;
                    return Err(StoreError::Conflict {
                        what: "out_refund_no (for another amount)",
                        key: new.out_refund_no,
                    });
                }
                sqlx::query(
                    "UPDATE idempotency_keys SET state = 'finished', resource_id = $1, \
                     locked_until = NULL WHERE scope = $2 AND key = $3",
                )
                .bind(&existing.id)
                .bind(claim.scope)
                .bind(claim.key)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                return Ok(BeginRefund::Existing(existing));
            }
            if !payment.status.is_paid() {
                tx.rollback().await?;
                return Err(StoreError::NotRefundable {
                    payment_id: payment.id,
                    status: payment.status,
                });
            }
            let (committed,): (i64,) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds \
                 WHERE payment_id = $1 AND status <> 'failed'",
            )
            .bind(&payment.id)
            .fetch_one(&mut *tx)
            .await?;
            let paid = payment.paid_amount.unwrap_or(payment.amount).0;
            let available = paid.saturating_sub(committed);
            if new.amount.0 > available {
                tx.rollback().await?;
                return Err(StoreError::RefundExceedsPaid {
                    payment_id: payment.id,
                    requested: new.amount,
                    available: Fen(available),
                });
            }
            let row: RefundRow = sqlx::query_as(&insert)
                .bind(&id)
                .bind(&payment.id)
                .bind(payment.mode.as_str())
                .bind(&payment.account)
                .bind(&new.out_refund_no)
                .bind(new.amount.0)
                .bind(&new.reason)
                .bind(RefundStatus::Pending.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "out_refund_no", &new.out_refund_no))?;
            let refund = Refund::try_from(row)?;
            insert_audit!(
                tx,
                "refund",
                &refund.id,
                None::<String>,
                refund.status.as_str(),
                refund.version,
                audit,
                now
            );
            for job in jobs(&payment, &refund) {
                upsert_job!(tx, &job, now);
            }
            tx.commit().await?;
            Ok(BeginRefund::Started(refund))
        })
    }

    /// THE unit of work on an existing refund: locks its payment, then the refund, lets `plan`
    /// decide, and executes it; a success moves the payment's refunded amount and state (by
    /// `paybridge_core::decide::settle_refund`) in the same transaction. `None` when the refund
    /// does not exist.
    pub async fn apply_refund<F>(
        &self,
        refund_id: &str,
        key: Option<KeyFinish<'_>>,
        render: fn(&Refund) -> Value,
        plan: F,
    ) -> Result<Option<RefundApplied>>
    where
        F: FnOnce(&Payment, &Refund) -> RefundPlan + Send,
    {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            match refund_unit!(tx, d, refund_id, key.as_ref(), render, plan, now) {
                Ok(applied) => {
                    tx.commit().await?;
                    Ok(applied)
                }
                Err(e) => {
                    tx.rollback().await?;
                    Err(e)
                }
            }
        })
    }

    /// Several units of work in ONE transaction (the group commit of [`crate::group`]): all
    /// commit, or none does and the first error is returned.
    pub(crate) async fn apply_together(
        &self,
        units: &mut [GroupedUnit],
    ) -> Result<Vec<UnitApplied>> {
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let mut done = Vec::with_capacity(units.len());
            for unit in units.iter_mut() {
                let now = self.now_ms();
                let applied = match unit {
                    GroupedUnit::Payment { id, render, plan } => {
                        payment_unit!(tx, d, id.as_str(), None, *render, plan, now)
                            .map(UnitApplied::Payment)
                    }
                    GroupedUnit::Refund {
                        refund_id,
                        render,
                        plan,
                    } => refund_unit!(tx, d, refund_id.as_str(), None, *render, plan, now)
                        .map(UnitApplied::Refund),
                };
                match applied {
                    Ok(a) => done.push(a),
                    Err(e) => {
                        tx.rollback().await?;
                        return Err(e);
                    }
                }
            }
            tx.commit().await?;
            Ok(done)
        })
    }

    /// Takes the key's lock for the recovery job when no request holds it.
    pub async fn lock_key(&self, scope: &str, key: &str, lock_ms: i64) -> Result<KeyLock> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            let taken = sqlx::query(
                "UPDATE idempotency_keys SET locked_until = $1, updated_at = $2 \
                 WHERE scope = $3 AND key = $4 AND state = 'started' \
                 AND (locked_until IS NULL OR locked_until <= $2)",
            )
            .bind(now + lock_ms)
            .bind(now)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected();
            if taken == 1 {
                return Ok(KeyLock::Acquired);
            }
            let row: Option<(String,)> =
                sqlx::query_as("SELECT state FROM idempotency_keys WHERE scope = $1 AND key = $2")
                    .bind(scope)
                    .bind(key)
                    .fetch_optional(pool)
                    .await?;
            Ok(match row {
                Some((state,)) if state == "started" => KeyLock::Held,
                _ => KeyLock::Settled,
            })
        })
    }

    /// Keeps the key held while its request works (the heartbeat of a long provider call), so a
    /// crashed request's key frees itself within `lock_ms`.
    pub async fn extend_key_lock(&self, scope: &str, key: &str, lock_ms: i64) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE idempotency_keys SET locked_until = $1, updated_at = $2 \
                 WHERE scope = $3 AND key = $4 AND state = 'started'",
            )
            .bind(now + lock_ms)
            .bind(now)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Releases the key's lock without settling it (the provider's answer was unknown): a retry
    /// resumes at once, the recovery job when it comes.
    pub async fn unlock_key(&self, scope: &str, key: &str) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE idempotency_keys SET locked_until = NULL, updated_at = $1 \
                 WHERE scope = $2 AND key = $3 AND state = 'started'",
            )
            .bind(now)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
