//! Applying what a provider says about a payment: the core decision turned into a store plan,
//! executed as one unit of work. Used by create answers, notifications, queries, closes and the
//! jobs alike, so a transition is decided in exactly one place.

use std::sync::Arc;

use paybridge_core::channel::{ChannelError, OrderRef, PaymentSnapshot};
use paybridge_core::decide::{decide_payment, PaymentDecision, PaymentObservation};
use paybridge_core::PaymentStatus;
use paybridge_store::{
    Audit, EventSpec, InboxEntry, InboxRecord, NewJob, Payment, PaymentApplied, PaymentPlan,
};
use serde_json::Value;

use super::calllog::{with_context, CallContext};
use super::error::ServiceError;
use super::jobs::JobKind;
use super::payments::refused;
use super::{views, Gateway};

/// What applying a provider snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed,
    NoChange,
    /// The provider's view contradicts ours (amount); nothing was changed.
    Mismatch(String),
}

pub(super) fn timeline_entry(kind: &str, detail: &str) -> (String, Value) {
    (kind.to_string(), serde_json::json!({ "detail": detail }))
}

impl JobKind {
    /// A job of this kind about `subject_id` (a payment, or a refund of `payment_id`).
    pub(super) fn job(
        self,
        subject_id: &str,
        payment_id: Option<&str>,
        payload: Value,
        run_at: i64,
    ) -> NewJob {
        let (payment_id, refund_id) = match self {
            JobKind::RefundQuery => (payment_id.map(str::to_string), Some(subject_id.to_string())),
            JobKind::Reconcile | JobKind::ReconcileRun | JobKind::Retention => (None, None),
            JobKind::Query
            | JobKind::Expire
            | JobKind::Recover
            | JobKind::CloseWatch
            | JobKind::LateRefund
            | JobKind::CashierSettle => (Some(subject_id.to_string()), None),
        };
        NewJob {
            kind: self.as_str().to_string(),
            key: subject_id.to_string(),
            payment_id,
            refund_id,
            payload: if payload.is_null() {
                serde_json::json!({})
            } else {
                payload
            },
            run_at,
        }
    }
}

impl Gateway {
    /// The payment `id`, which from here on every log line of the unit of work names.
    pub(super) async fn load_payment(&self, id: &str) -> Result<Payment, ServiceError> {
        let p = self
            .store
            .get_payment(id)
            .await?
            .ok_or(ServiceError::NotFound("payment"))?;
        crate::observe::record_payment(&p.id, &p.out_trade_no);
        Ok(p)
    }

    pub(super) fn payment_event(&self, kind: &str, p: &Payment) -> EventSpec {
        EventSpec {
            kind: kind.to_string(),
            endpoints: self.endpoints_for(p.mode),
        }
    }

    /// The plan executing `d` on `cur`: state, event, and for money after close the late flag,
    /// its timeline entry and the late-payment policy's job.
    pub(super) fn decision_plan(
        &self,
        cur: &Payment,
        d: &PaymentDecision,
        audit: &Audit,
    ) -> PaymentPlan {
        let mut plan = PaymentPlan::new(audit.clone());
        plan.to = d.to;
        plan.via = d.via;
        plan.event = d.event.map(|e| self.payment_event(e.as_str(), cur));
        if let Some(m) = &d.mismatch {
            plan.timeline.push(timeline_entry("mismatch", m));
            // Signed by the provider yet contradicting the order: ask the provider directly.
            plan.jobs
                .push(JobKind::Query.job(&cur.id, None, Value::Null, self.now_ms()));
        }
        if d.late {
            plan.patch.late_payment = Some(true);
            plan.timeline.push(timeline_entry(
                "late_payment",
                &format!("paid after it was {}", cur.status),
            ));
            plan.jobs.push(self.late_payment_job(cur));
        }
        if cur.cashier_id.is_some() && d.to == Some(PaymentStatus::Paid) {
            // One order, possibly paid in both wallets: the settle job, committed with the
            // money, names the payment that keeps it and refunds or closes the others.
            plan.jobs
                .push(JobKind::CashierSettle.job(&cur.id, None, Value::Null, self.now_ms()));
        }
        plan
    }

    /// The plan for a provider snapshot of `cur` (as if it were in `as_status`, when a create
    /// answer moves it first).
    pub(super) fn snapshot_plan(
        &self,
        cur: &Payment,
        snap: &PaymentSnapshot,
        audit: &Audit,
        as_status: Option<PaymentStatus>,
    ) -> PaymentPlan {
        let obs = PaymentObservation::Provider {
            status: snap.status,
            amount: snap.amount,
        };
        let from = as_status.unwrap_or(cur.status);
        let d = decide_payment(from, cur.amount, obs);
        let mut plan = self.decision_plan(cur, &d, audit);
        if d.mismatch.is_none() {
            plan.patch.provider_trade_no = snap.provider_trade_no.clone();
            plan.patch.payer_id = snap.payer_id.clone();
        }
        if d.to == Some(PaymentStatus::Paid) {
            plan.patch.paid_at = Some(self.now_ms());
            plan.patch.paid_amount = Some(snap.paid_amount.or(snap.amount).unwrap_or(cur.amount));
            plan.cancel_jobs
                .push((JobKind::Expire.as_str().to_string(), cur.id.clone()));
        }
        plan
    }

    /// Wakes the webhook deliverer after a change that wrote an event.
    pub(super) fn after_change(&self, p: &Payment, changed: bool) {
        if changed {
            self.outbox_signal.notify_one();
            if p.late_payment && p.status == PaymentStatus::Paid {
                tracing::warn!(payment = %p.id, "late payment after {:?}", p.previous_status);
            }
        }
    }

    /// Applies what the provider says about a payment (from a verified notification, a query or
    /// a synchronous answer) as one unit of work. Exactly once: the row is locked and the
    /// decision taken on it as it is.
    pub(super) async fn apply_snapshot(
        &self,
        payment: Payment,
        snap: &PaymentSnapshot,
        audit: &Audit,
    ) -> Result<(Payment, Applied), ServiceError> {
        self.apply_snapshot_with(payment, snap, audit, None).await
    }

    /// Applies a verified notification's snapshot and records the notification (outcome and
    /// dedup row) in the same unit of work, committed together with the other notifications
    /// its group-commit writer holds.
    pub(super) async fn apply_notified_payment(
        self: &Arc<Self>,
        payment: &Payment,
        snap: &PaymentSnapshot,
        audit: &Audit,
        entry: InboxEntry,
    ) -> Result<InboxRecord, ServiceError> {
        let (gw, snap, audit) = (Arc::clone(self), snap.clone(), audit.clone());
        let applied = self
            .group
            .apply_payment(&payment.id, views::payment, move |cur| {
                gw.provider_word_plan(cur, &snap, &audit, None, Some(entry.clone()))
                    .0
            })
            .await?
            .ok_or(ServiceError::NotFound("payment"))?;
        self.after_change(&applied.payment, applied.changed);
        applied.inbox.ok_or_else(|| {
            ServiceError::internal("the unit of work did not record the notification")
        })
    }

    /// Asks the provider about a payment.
    pub(super) async fn query_provider(
        &self,
        payment: &Payment,
    ) -> Result<PaymentSnapshot, ChannelError> {
        let account = self
            .account(&payment.account)
            .map_err(|e| ChannelError::Config(e.to_string()))?
            .clone();
        let channel = account
            .api_for(payment.scene)
            .map_err(|e| ChannelError::Config(e.to_string()))?
            .clone();
        let order = OrderRef {
            out_trade_no: payment.out_trade_no.clone(),
            provider_trade_no: payment.provider_trade_no.clone(),
        };
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: None,
            operation: "query_payment",
            deferred: None,
        };
        with_context(ctx, channel.query_payment(&order)).await
    }

    /// Queries the provider and applies its answer. Used by jobs and after refusals.
    pub(super) async fn query_and_apply(
        &self,
        id: &str,
        why: &str,
    ) -> Result<Payment, ServiceError> {
        let payment = self.load_payment(id).await?;
        let snapshot = self.query_provider(&payment).await.map_err(|e| match e {
            ChannelError::Unknown { .. } => ServiceError::ProviderUnknown,
            other => refused(other),
        })?;
        let audit = Audit::new("query", format!("{why}: {}", snapshot.provider_status));
        let note = timeline_entry(
            "query",
            &format!("{why}: provider says {}", snapshot.provider_status),
        );
        let (p, _) = self
            .apply_snapshot_with(payment, &snapshot, &audit, Some(note))
            .await?;
        Ok(p)
    }

    /// [`Gateway::apply_snapshot`], with a timeline entry first when `note` is given.
    pub(super) async fn apply_snapshot_with(
        &self,
        payment: Payment,
        snap: &PaymentSnapshot,
        audit: &Audit,
        note: Option<(String, Value)>,
    ) -> Result<(Payment, Applied), ServiceError> {
        let (applied, mismatch) = self.snapshot_unit(&payment.id, snap, audit, note).await?;
        let outcome = match (mismatch, applied.changed) {
            (Some(m), _) => Applied::Mismatch(m),
            (None, true) => Applied::Changed,
            (None, false) => Applied::NoChange,
        };
        Ok((applied.payment, outcome))
    }

    /// One unit of work over a provider's word on a payment (a query, a create answer), with a
    /// timeline note first. Also returns the decision's mismatch, if the word contradicts the
    /// order.
    async fn snapshot_unit(
        &self,
        payment_id: &str,
        snap: &PaymentSnapshot,
        audit: &Audit,
        note: Option<(String, Value)>,
    ) -> Result<(PaymentApplied, Option<String>), ServiceError> {
        let mut mismatch = None;
        let applied = self
            .store
            .apply_payment(payment_id, None, views::payment, |cur| {
                let (plan, m) = self.provider_word_plan(cur, snap, audit, note, None);
                mismatch = m;
                plan
            })
            .await?
            .ok_or(ServiceError::NotFound("payment"))?;
        self.after_change(&applied.payment, applied.changed);
        Ok((applied, mismatch))
    }

    /// The plan for a provider's word on `cur` as locked (its decision, a timeline note first)
    /// with the notification that carried it, marked with the decision's mismatch; also the
    /// mismatch. The one place for the single unit and the grouped one.
    fn provider_word_plan(
        &self,
        cur: &Payment,
        snap: &PaymentSnapshot,
        audit: &Audit,
        note: Option<(String, Value)>,
        entry: Option<InboxEntry>,
    ) -> (PaymentPlan, Option<String>) {
        let obs = PaymentObservation::Provider {
            status: snap.status,
            amount: snap.amount,
        };
        let mismatch = decide_payment(cur.status, cur.amount, obs).mismatch;
        let mut plan = self.snapshot_plan(cur, snap, audit, None);
        if let Some(note) = note {
            plan.timeline.insert(0, note);
        }
        plan.inbox = entry.map(|mut e| {
            e.mismatch = mismatch.clone();
            e
        });
        (plan, mismatch)
    }

    /// Applies a local observation (closed, refused) as one unit of work.
    pub(super) async fn apply_observation(
        &self,
        payment_id: &str,
        obs: PaymentObservation,
        audit: &Audit,
        extra: impl FnOnce(&Payment, &mut PaymentPlan) + Send,
    ) -> Result<Payment, ServiceError> {
        let applied = self
            .store
            .apply_payment(payment_id, None, views::payment, |cur| {
                let d = decide_payment(cur.status, cur.amount, obs);
                let mut plan = self.decision_plan(cur, &d, audit);
                extra(cur, &mut plan);
                plan
            })
            .await?
            .ok_or(ServiceError::NotFound("payment"))?;
        self.after_change(&applied.payment, applied.changed);
        Ok(applied.payment)
    }
}
