//! Refunds as units of work: T1 reserves the amount under the payment's lock and schedules the
//! recovery query before the provider hears of the refund; T2 applies its answer.

use std::sync::Arc;

use paybridge_core::channel::{CreateRefund, RefundRef, RefundSnapshot};
use paybridge_core::decide::{decide_refund, RefundObservation};
use paybridge_core::{Fen, RefundStatus};
use paybridge_store::{
    Audit, BeginRefund, EventSpec, InboxEntry, InboxRecord, KeyFinish, KeyState, NewProviderCall,
    NewRefund, Payment, Refund, RefundApplied, RefundPlan,
};
use serde::Deserialize;
use serde_json::Value;

use super::apply::timeline_entry;
use super::caller::Caller;
use super::calllog::{with_context, CallContext, DeferredCalls};
use super::error::ServiceError;
use super::idempotency::{Answer, IdempotencyKey, LockWait, RECOVER_AFTER_MS};
use super::jobs::JobKind;
use super::payments::{is_unknown, refused};
use super::{views, Gateway};
use crate::error::ApiError;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateRefund)]
pub struct CreateRefundInput {
    /// Fen; the sum of refunds can never exceed the payment.
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(max_length = 64)]
    pub out_refund_no: Option<String>,
    pub reason: Option<String>,
}

/// Refunds the provider still processes are polled on this schedule (they may take days).
const REFUND_POLL_MS: i64 = 10_000;

impl Gateway {
    fn refund_event(&self, kind: &str, r: &Refund) -> EventSpec {
        EventSpec {
            kind: kind.to_string(),
            endpoints: self.endpoints_for(r.mode),
        }
    }

    /// `POST /v1/payments/{id}/refunds`: validated before any write, then T1 (key + refund with
    /// its amount reserved + recovery query), the provider call, T2.
    pub async fn create_refund(
        &self,
        key: &dyn Caller,
        idem: &IdempotencyKey,
        payment_id: &str,
        input: CreateRefundInput,
    ) -> Result<Answer<Refund>, ServiceError> {
        let payment = self.payment_for(key, payment_id).await?;
        if input.amount <= 0 {
            return Err(ServiceError::Validation("amount must be positive".into()));
        }
        let out_refund_no = match input.out_refund_no {
            Some(no) => {
                if no.is_empty()
                    || no.len() > 64
                    || !no
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
                {
                    return Err(ServiceError::Validation(
                        "out_refund_no: 1 to 64 characters of A-Z a-z 0-9 _ - | * @".into(),
                    ));
                }
                no
            }
            None => format!("rf{}", uuid::Uuid::now_v7().simple()),
        };
        if let Some(r) = &input.reason {
            if r.chars().count() > 80 || r.chars().any(char::is_control) {
                return Err(ServiceError::Validation(
                    "reason: at most 80 characters, no control characters".into(),
                ));
            }
        }
        let new = NewRefund {
            payment_id: payment.id.clone(),
            out_refund_no,
            amount: Fen(input.amount),
            reason: input.reason.clone(),
        };
        let audit = key.audit("refund requested");
        let scope = key.idempotency_scope();
        let claim = self.claim(&scope, idem);
        self.begin_and_send_refund(&claim, new, &audit).await
    }

    /// T1, the provider call and T2 of a refund under `claim` (a merchant's key, or the late
    /// payment policy's own).
    pub(super) async fn begin_and_send_refund(
        &self,
        claim: &paybridge_store::KeyClaim<'_>,
        new: NewRefund,
        audit: &Audit,
    ) -> Result<Answer<Refund>, ServiceError> {
        let now = self.now_ms();
        let mut wait = LockWait::new();
        let refund = loop {
            let begun = self
                .store
                .begin_refund(claim, new.clone(), audit, |p, r| {
                    vec![JobKind::RefundQuery.job(
                        &r.id,
                        Some(&p.id),
                        Value::Null,
                        now + RECOVER_AFTER_MS,
                    )]
                })
                .await?;
            match begun {
                BeginRefund::Started(r) => break r,
                BeginRefund::Existing(r) => return Ok(Answer::Replayed(r)),
                BeginRefund::Key(state) => match state {
                    KeyState::Answer { status, body } => {
                        return Ok(Answer::Stored { status, body })
                    }
                    KeyState::Finished { resource_id } => {
                        return Ok(Answer::Replayed(self.load_refund(&resource_id).await?))
                    }
                    KeyState::Resume { resource_id } => {
                        let r = self.load_refund(&resource_id).await?;
                        if r.status == RefundStatus::Pending {
                            tracing::info!(refund = %r.id, "resuming an unsettled refund");
                            break r;
                        }
                        let finish = KeyFinish {
                            scope: claim.scope,
                            key: claim.key,
                            answer: None,
                        };
                        let r = self
                            .store
                            .apply_refund(&r.id, Some(finish), views::refund, |_, _| {
                                RefundPlan::new(audit.clone())
                            })
                            .await?
                            .ok_or(ServiceError::NotFound("refund"))?;
                        return Ok(Answer::Replayed(r.refund));
                    }
                    KeyState::Locked { .. } => {
                        if !wait.again().await {
                            return Err(ServiceError::IdempotencyInProgress);
                        }
                    }
                    KeyState::Mismatch => return Err(ServiceError::IdempotencyKeyReused),
                },
            }
        };
        self.send_refund(refund, Some((claim.scope, claim.key)), audit)
            .await
    }

    async fn load_refund(&self, id: &str) -> Result<Refund, ServiceError> {
        self.store
            .get_refund(id)
            .await?
            .ok_or(ServiceError::NotFound("refund"))
    }

    /// The provider call of a refund and its T2; shared by the request, its retries and the
    /// recovery query (which resends a refund the provider never received: providers take a
    /// repeated `out_refund_no` as the same refund).
    pub(super) async fn send_refund(
        &self,
        refund: Refund,
        key: Option<(&str, &str)>,
        audit: &Audit,
    ) -> Result<Answer<Refund>, ServiceError> {
        let payment = self.load_payment(&refund.payment_id).await?;
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let request = CreateRefund {
            out_trade_no: payment.out_trade_no.clone(),
            provider_trade_no: payment.provider_trade_no.clone(),
            out_refund_no: refund.out_refund_no.clone(),
            refund_amount: refund.amount,
            total_amount: payment.amount,
            reason: refund.reason.clone(),
            notify_url: Some(self.notify_url(&account, true)),
        };
        // The call's log row goes into T2 with its answer: one commit fewer per refund.
        let deferred = DeferredCalls::default();
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: Some(refund.id.clone()),
            operation: "refund",
            deferred: Some(deferred.clone()),
        };
        let result = self
            .holding_key(key, with_context(ctx, channel.refund(&request)))
            .await;
        let calls = deferred.take(account.channel);
        match result {
            Ok(snapshot) => {
                let finish = key.map(|(scope, key)| KeyFinish {
                    scope,
                    key,
                    answer: None,
                });
                let audit = Audit::new(audit.actor.clone(), "refund answer");
                let unit = self
                    .refund_unit(&refund.id, finish, &snapshot, &audit, calls.clone())
                    .await;
                let r = self.or_log_calls(unit.map(|a| a.refund), calls).await?;
                Ok(Answer::Done(r))
            }
            Err(e) if is_unknown(&e) => {
                tracing::warn!(refund = %refund.id, error = %e, "refund outcome unknown");
                let soon = self.now_ms() + 5_000;
                let unit = self
                    .store
                    .apply_refund(&refund.id, None, views::refund, |p, r| {
                        let mut plan = RefundPlan::new(audit.clone());
                        plan.jobs.push(JobKind::RefundQuery.job(
                            &r.id,
                            Some(&p.id),
                            Value::Null,
                            soon,
                        ));
                        plan.timeline.push(timeline_entry(
                            "refund_unknown",
                            &format!("refund {}: {e}", r.id),
                        ));
                        plan.calls = calls.clone();
                        plan
                    })
                    .await;
                let applied = self
                    .or_log_calls(unit, calls)
                    .await?
                    .ok_or(ServiceError::NotFound("refund"))?;
                if let Some((scope, key)) = key {
                    self.store.unlock_key(scope, key).await?;
                }
                Ok(Answer::Unsettled(applied.refund))
            }
            Err(e) => {
                let reason = e.to_string();
                let answer = ApiError::from(refused(e.clone())).stored_answer();
                let finish = key.map(|(scope, key)| KeyFinish {
                    scope,
                    key,
                    answer: Some(answer),
                });
                let audit = Audit::new(audit.actor.clone(), reason.clone());
                let unit = self
                    .store
                    .apply_refund(&refund.id, finish, views::refund, |_, r| {
                        let d = decide_refund(r.status, r.amount, RefundObservation::Refused);
                        let mut plan = RefundPlan::new(audit.clone());
                        plan.to = d.to;
                        plan.event = d.event.map(|ev| self.refund_event(ev.as_str(), r));
                        plan.patch.failure_reason = Some(reason.clone());
                        plan.cancel_jobs
                            .push((JobKind::RefundQuery.as_str().to_string(), r.id.clone()));
                        plan.calls = calls.clone();
                        plan
                    })
                    .await;
                let applied = self
                    .or_log_calls(unit, calls)
                    .await?
                    .ok_or(ServiceError::NotFound("refund"))?;
                if applied.changed {
                    self.outbox_signal.notify_one();
                }
                Err(refused(e))
            }
        }
    }

    /// Applies a provider's view of a refund as one unit of work (payment locked first); a
    /// success also moves the payment. Keeps polling while the provider is still processing.
    pub(super) async fn apply_refund_snapshot(
        &self,
        refund: Refund,
        snap: &RefundSnapshot,
        audit: &Audit,
    ) -> Result<Refund, ServiceError> {
        self.apply_refund_with(&refund.id, None, snap, audit).await
    }

    async fn apply_refund_with(
        &self,
        refund_id: &str,
        key: Option<KeyFinish<'_>>,
        snap: &RefundSnapshot,
        audit: &Audit,
    ) -> Result<Refund, ServiceError> {
        Ok(self
            .refund_unit(refund_id, key, snap, audit, Vec::new())
            .await?
            .refund)
    }

    /// Applies a verified refund notification and records it in the same unit of work,
    /// committed together with the other notifications its group-commit writer holds.
    pub(super) async fn apply_notified_refund(
        self: &Arc<Self>,
        refund: &Refund,
        snap: &RefundSnapshot,
        audit: &Audit,
        entry: InboxEntry,
    ) -> Result<InboxRecord, ServiceError> {
        let (gw, snap, audit) = (Arc::clone(self), snap.clone(), audit.clone());
        let poll_at = self.now_ms() + REFUND_POLL_MS;
        let applied = self
            .group
            .apply_refund(
                &refund.payment_id,
                &refund.id,
                views::refund,
                move |p, r| {
                    gw.provider_refund_plan(p, r, &snap, &audit, poll_at, Some(entry.clone()))
                },
            )
            .await?
            .ok_or(ServiceError::NotFound("refund"))?;
        if applied.changed {
            self.outbox_signal.notify_one();
        }
        applied.inbox.ok_or_else(|| {
            ServiceError::internal("the unit of work did not record the notification")
        })
    }

    /// One unit of work over a provider's word on a refund (a query, a refund answer), with
    /// the provider calls that brought it logged in the same transaction.
    async fn refund_unit(
        &self,
        refund_id: &str,
        key: Option<KeyFinish<'_>>,
        snap: &RefundSnapshot,
        audit: &Audit,
        calls: Vec<NewProviderCall>,
    ) -> Result<RefundApplied, ServiceError> {
        let poll_at = self.now_ms() + REFUND_POLL_MS;
        let applied = self
            .store
            .apply_refund(refund_id, key, views::refund, |p, r| {
                let mut plan = self.provider_refund_plan(p, r, snap, audit, poll_at, None);
                plan.calls = calls;
                plan
            })
            .await?
            .ok_or(ServiceError::NotFound("refund"))?;
        if applied.changed {
            self.outbox_signal.notify_one();
        }
        Ok(applied)
    }

    /// The plan for a provider's word on refund `r` of `p` as locked, with the notification
    /// that carried it marked with the decision's mismatch: the one place for the single unit
    /// and the grouped one.
    fn provider_refund_plan(
        &self,
        p: &Payment,
        r: &Refund,
        snap: &RefundSnapshot,
        audit: &Audit,
        poll_at: i64,
        entry: Option<InboxEntry>,
    ) -> RefundPlan {
        let obs = RefundObservation::Provider {
            status: snap.status,
            amount: snap.amount,
        };
        let mut plan = self.refund_plan(p, r, obs, snap, audit, poll_at);
        plan.inbox = entry.map(|mut e| {
            e.mismatch = decide_refund(r.status, r.amount, obs).mismatch;
            e
        });
        plan
    }

    fn refund_plan(
        &self,
        p: &Payment,
        r: &Refund,
        obs: RefundObservation,
        snap: &RefundSnapshot,
        audit: &Audit,
        poll_at: i64,
    ) -> RefundPlan {
        let d = decide_refund(r.status, r.amount, obs);
        let mut plan = RefundPlan::new(audit.clone());
        plan.to = d.to;
        plan.event = d.event.map(|ev| self.refund_event(ev.as_str(), r));
        if let Some(m) = &d.mismatch {
            plan.timeline.push(timeline_entry(
                "refund_mismatch",
                &format!("refund {}: {m}", r.id),
            ));
            // The provider's signed word contradicts the refund: ask it directly.
            plan.jobs.push(JobKind::RefundQuery.job(
                &r.id,
                Some(&p.id),
                Value::Null,
                self.now_ms(),
            ));
        }
        match d.to {
            Some(to) => {
                plan.patch.provider_refund_no = snap.provider_refund_no.clone();
                if to == RefundStatus::Failed {
                    plan.patch.failure_reason = Some(snap.provider_status.clone());
                } else {
                    plan.patch.succeeded_at = Some(self.now_ms());
                }
                plan.cancel_jobs
                    .push((JobKind::RefundQuery.as_str().to_string(), r.id.clone()));
            }
            None if r.status == RefundStatus::Pending => {
                plan.jobs
                    .push(JobKind::RefundQuery.job(&r.id, Some(&p.id), Value::Null, poll_at));
            }
            None => {}
        }
        plan
    }

    /// The refund query job: asks the provider, applies the answer, and resends a refund the
    /// provider never received (the process died before or during the call).
    pub(super) async fn query_refund_and_apply(
        &self,
        refund_id: &str,
        job_id: &str,
    ) -> Result<Refund, ServiceError> {
        let refund = self.load_refund(refund_id).await?;
        if refund.status != RefundStatus::Pending {
            return Ok(refund);
        }
        let payment = self.load_payment(&refund.payment_id).await?;
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: Some(refund.id.clone()),
            operation: "query_refund",
            deferred: None,
        };
        let r = RefundRef {
            out_trade_no: payment.out_trade_no.clone(),
            provider_trade_no: payment.provider_trade_no.clone(),
            out_refund_no: refund.out_refund_no.clone(),
        };
        let snapshot = with_context(ctx, channel.query_refund(&r))
            .await
            .map_err(refused)?;
        let audit = Audit::new(
            format!("job:{job_id}"),
            format!("refund query: {}", snapshot.provider_status),
        );
        if snapshot.status == paybridge_core::channel::ProviderRefundStatus::NotFound {
            tracing::info!(refund = %refund.id, "the provider has no such refund; resending it");
            return match self.send_refund(refund, None, &audit).await {
                Ok(answer) => match answer {
                    Answer::Done(r) | Answer::Replayed(r) | Answer::Unsettled(r) => Ok(r),
                    Answer::Stored { .. } => self.load_refund(refund_id).await,
                },
                Err(ServiceError::ProviderRefused { .. } | ServiceError::Validation(_)) => {
                    self.load_refund(refund_id).await
                }
                Err(e) => Err(e),
            };
        }
        self.apply_refund_snapshot(refund, &snapshot, &audit).await
    }

    pub async fn get_refund(&self, key: &dyn Caller, id: &str) -> Result<Refund, ServiceError> {
        self.store
            .get_refund(id)
            .await?
            .filter(|r| r.mode == key.mode())
            .ok_or(ServiceError::NotFound("refund"))
    }

    pub async fn list_refunds(
        &self,
        key: &dyn Caller,
        payment_id: &str,
    ) -> Result<Vec<Refund>, ServiceError> {
        let p = self.payment_for(key, payment_id).await?;
        Ok(self.store.list_refunds(&p.id).await?)
    }
}
