//! Group commit: units of work that reach a writer together share ONE transaction, so one
//! commit (one WAL flush) serves many provider notifications instead of one each.
//!
//! Each unit is still the unit of [`Store::apply_payment`] / [`Store::apply_refund`]: the same
//! statements (the `payment_unit!` / `refund_unit!` bodies), deciding from the row as locked.
//! Only the transaction boundary is shared.
//!
//! - **Batches form by themselves.** A writer takes what is queued, up to `max_batch`, and
//!   waits at most `max_wait` for more; while it commits, the next batch queues. An idle
//!   gateway therefore commits each unit at once, a busy one amortizes the flush.
//! - **One failure fails nobody else.** If any unit of a batch fails (or the commit does), the
//!   transaction is rolled back and every unit is run again alone, in its own transaction: the
//!   broken one fails by itself, the others commit. Plans are `FnMut` for that reason.
//! - **No deadlock between batches.** A payment always goes to the same writer (its id picks
//!   the lane), so two open batches never hold or wait for the same payment row; a unit locks
//!   the payment before its refunds, as everywhere. Nothing in a batch waits on a provider.
//! - **Callers may go away.** The writer owns the transaction; a caller that stops waiting
//!   (its client hung up) only drops its answer.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::db::Dialect;
use crate::error::{Result, StoreError};
use crate::work::{PaymentApplied, PaymentPlan, RefundApplied, RefundPlan};
use crate::{Payment, Refund, Store};

/// Decides a payment plan from the row as locked; may be called twice (batch, then alone).
pub type PaymentPlanFn = Box<dyn FnMut(&Payment) -> PaymentPlan + Send>;
/// Decides a refund plan from the payment and refund rows as locked.
pub type RefundPlanFn = Box<dyn FnMut(&Payment, &Refund) -> RefundPlan + Send>;

/// A unit waiting for its writer.
pub(crate) enum GroupedUnit {
    Payment {
        id: String,
        render: fn(&Payment) -> Value,
        plan: PaymentPlanFn,
    },
    Refund {
        refund_id: String,
        render: fn(&Refund) -> Value,
        plan: RefundPlanFn,
    },
}

/// What a grouped unit did.
// Moved once per unit, through its answer channel: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum UnitApplied {
    Payment(Option<PaymentApplied>),
    Refund(Option<RefundApplied>),
}

struct Queued {
    unit: GroupedUnit,
    reply: oneshot::Sender<Result<UnitApplied>>,
}

/// How units are grouped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPolicy {
    /// Writers (lanes), each with its own connection while it works. SQLite has one writer at
    /// a time whatever this says, so one lane serves it best.
    pub writers: usize,
    /// Most units in one transaction.
    pub max_batch: usize,
    /// How long a writer holding fewer than `max_batch` units waits for more before it
    /// commits. Zero: commit what has queued, at once.
    pub max_wait: Duration,
}

impl GroupPolicy {
    /// The default for a database: PostgreSQL commits in parallel on several connections;
    /// SQLite serializes writers, so one lane with larger batches.
    pub fn for_dialect(dialect: Dialect) -> GroupPolicy {
        match dialect {
            Dialect::Postgres => GroupPolicy {
                writers: 8,
                max_batch: 50,
                max_wait: Duration::ZERO,
            },
            Dialect::Sqlite => GroupPolicy {
                writers: 1,
                max_batch: 50,
                max_wait: Duration::ZERO,
            },
        }
    }
}

/// What the writers of a [`GroupCommit`] have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Transactions opened for a batch.
    pub batches: u64,
    /// Units those batches held.
    pub units: u64,
    /// Batches that failed and were applied unit by unit.
    pub fallbacks: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    units: AtomicU64,
    fallbacks: AtomicU64,
}

/// The group-commit writers of one store. Writers start on first use (inside the runtime)
/// and stop when this is dropped, after finishing what they hold.
pub struct GroupCommit {
    store: Store,
    policy: GroupPolicy,
    lanes: OnceLock<Vec<mpsc::Sender<Queued>>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl GroupCommit {
    pub fn new(store: Store, mut policy: GroupPolicy) -> GroupCommit {
        policy.writers = policy.writers.max(1);
        policy.max_batch = policy.max_batch.max(1);
        GroupCommit {
            store,
            policy,
            lanes: OnceLock::new(),
            counters: Arc::default(),
        }
    }

    pub fn policy(&self) -> &GroupPolicy {
        &self.policy
    }

    pub fn stats(&self) -> GroupStats {
        GroupStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            units: self.counters.units.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// [`Store::apply_payment`] (without an idempotency key), committed together with whatever
    /// else its writer holds.
    pub async fn apply_payment<F>(
        &self,
        id: &str,
        render: fn(&Payment) -> Value,
        plan: F,
    ) -> Result<Option<PaymentApplied>>
    where
        F: FnMut(&Payment) -> PaymentPlan + Send + 'static,
    {
        let unit = GroupedUnit::Payment {
            id: id.to_string(),
            render,
            plan: Box::new(plan),
        };
        match self.submit(id, unit).await? {
            UnitApplied::Payment(applied) => Ok(applied),
            UnitApplied::Refund(_) => Err(StoreError::Invariant(
                "the group writer answered a payment unit with a refund".into(),
            )),
        }
    }

    /// [`Store::apply_refund`] (without an idempotency key), committed together with whatever
    /// else its writer holds. `payment_id` is the refund's payment: it picks the writer.
    pub async fn apply_refund<F>(
        &self,
        payment_id: &str,
        refund_id: &str,
        render: fn(&Refund) -> Value,
        plan: F,
    ) -> Result<Option<RefundApplied>>
    where
        F: FnMut(&Payment, &Refund) -> RefundPlan + Send + 'static,
    {
        let unit = GroupedUnit::Refund {
            refund_id: refund_id.to_string(),
            render,
            plan: Box::new(plan),
        };
        match self.submit(payment_id, unit).await? {
            UnitApplied::Refund(applied) => Ok(applied),
            UnitApplied::Payment(_) => Err(StoreError::Invariant(
                "the group writer answered a refund unit with a payment".into(),
            )),
        }
    }

    async fn submit(&self, payment_id: &str, unit: GroupedUnit) -> Result<UnitApplied> {
        let lanes = self.lanes.get_or_init(|| self.start());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        payment_id.hash(&mut h);
        let lane = &lanes[(h.finish() % lanes.len() as u64) as usize];
        let (reply, answer) = oneshot::channel();
        lane.send(Queued { unit, reply })
            .await
            .map_err(|_| StoreError::WriterGone)?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    fn start(&self) -> Vec<mpsc::Sender<Queued>> {
        (0..self.policy.writers)
            .map(|_| {
                // Bounded: a writer that falls behind slows its callers down instead of
                // queueing without limit.
                let (tx, rx) = mpsc::channel(self.policy.max_batch * 4);
                tokio::spawn(writer(
                    self.store.clone(),
                    self.policy.clone(),
                    self.counters.clone(),
                    rx,
                ));
                tx
            })
            .collect()
    }
}

async fn writer(
    store: Store,
    policy: GroupPolicy,
    counters: Arc<Counters>,
    mut rx: mpsc::Receiver<Queued>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + policy.max_wait;
        while batch.len() < policy.max_batch {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(mpsc::error::TryRecvError::Empty) if !policy.max_wait.is_zero() => {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(q)) => batch.push(q),
                        _ => break,
                    }
                }
                Err(_) => break,
            }
        }
        // In a task of its own: a panic inside one plan fails that batch's callers
        // (`WriterGone`), not every later notification of this lane.
        if let Err(e) = tokio::spawn(run_batch(store.clone(), counters.clone(), batch)).await {
            tracing::error!(error = %e, "a group commit batch panicked");
        }
    }
}

async fn run_batch(store: Store, counters: Arc<Counters>, batch: Vec<Queued>) {
    let (mut units, replies): (Vec<GroupedUnit>, Vec<_>) =
        batch.into_iter().map(|q| (q.unit, q.reply)).unzip();
    counters.batches.fetch_add(1, Ordering::Relaxed);
    counters
        .units
        .fetch_add(units.len() as u64, Ordering::Relaxed);
    metrics::histogram!("paybridge_group_commit_units").record(units.len() as f64);
    match store.apply_together(&mut units).await {
        Ok(done) => {
            for (reply, applied) in replies.into_iter().zip(done) {
                let _ = reply.send(Ok(applied));
            }
        }
        Err(e) if units.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(e) => {
            // Which unit broke the batch is not known (PostgreSQL aborts the whole
            // transaction): each runs alone, so only the broken one fails.
            tracing::warn!(error = %e, units = units.len(), "group commit failed; applying its units one by one");
            metrics::counter!("paybridge_group_commit_fallbacks_total").increment(1);
            counters.fallbacks.fetch_add(1, Ordering::Relaxed);
            for (unit, reply) in units.into_iter().zip(replies) {
                let _ = reply.send(store.apply_alone(unit).await);
            }
        }
    }
}

impl Store {
    /// A grouped unit in a transaction of its own.
    async fn apply_alone(&self, unit: GroupedUnit) -> Result<UnitApplied> {
        match unit {
            GroupedUnit::Payment {
                id,
                render,
                mut plan,
            } => self
                .apply_payment(&id, None, render, |p| plan(p))
                .await
                .map(UnitApplied::Payment),
            GroupedUnit::Refund {
                refund_id,
                render,
                mut plan,
            } => self
                .apply_refund(&refund_id, None, render, |p, r| plan(p, r))
                .await
                .map(UnitApplied::Refund),
        }
    }
}
