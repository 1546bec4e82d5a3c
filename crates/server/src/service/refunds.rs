//! Refunds: the store guards against overspending before the provider is asked.

use paybridge_core::channel::{CreateRefund, ProviderRefundStatus, RefundRef, RefundSnapshot};
use paybridge_core::{Fen, RefundStatus};
use paybridge_store::{ApiKey, Audit, NewEvent, NewRefund, Refund, RefundPatch, StoreError};
use serde::Deserialize;
use serde_json::Value;

use super::calllog::{with_context, CallContext};
use super::jobs::JobKind;
use super::payments::{is_unknown, refused};
use super::{views, Gateway};
use crate::error::ApiError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundInput {
    pub amount: i64,
    pub out_refund_no: Option<String>,
    pub reason: Option<String>,
}

impl Gateway {
    fn refund_event(&self, kind: &str, r: &Refund) -> NewEvent {
        NewEvent::new(kind, views::refund(r)).deliver_to(self.endpoints_for(r.mode))
    }

    pub async fn create_refund(
        &self,
        key: &ApiKey,
        payment_id: &str,
        input: CreateRefundInput,
    ) -> Result<Value, ApiError> {
        let payment = self.payment_for(key, payment_id).await?;
        if input.amount <= 0 {
            return Err(ApiError::Validation("amount must be positive".into()));
        }
        let out_refund_no = match input.out_refund_no {
            Some(no) => {
                if no.is_empty()
                    || no.len() > 64
                    || !no
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
                {
                    return Err(ApiError::Validation(
                        "out_refund_no: 1 to 64 characters of A-Z a-z 0-9 _ - | * @".into(),
                    ));
                }
                no
            }
            None => format!("rf{}", uuid::Uuid::now_v7().simple()),
        };
        if let Some(r) = &input.reason {
            if r.chars().count() > 80 || r.chars().any(char::is_control) {
                return Err(ApiError::Validation(
                    "reason: at most 80 characters, no control characters".into(),
                ));
            }
        }
        let audit = Audit::new(format!("api:{}", key.id), "refund requested");
        let refund = match self
            .store
            .create_refund(
                NewRefund {
                    payment_id: payment.id.clone(),
                    out_refund_no: out_refund_no.clone(),
                    amount: Fen(input.amount),
                    reason: input.reason.clone(),
                },
                |_| None,
                &audit,
            )
            .await
        {
            Ok(r) => r,
            Err(StoreError::Conflict { .. }) => {
                let existing = self
                    .store
                    .get_refund_by_out_refund_no(&payment.id, &out_refund_no)
                    .await?
                    .ok_or(ApiError::NotFound("refund"))?;
                if existing.amount.0 != input.amount {
                    return Err(ApiError::Conflict(format!(
                        "out_refund_no {out_refund_no} was used for another amount"
                    )));
                }
                return Ok(views::refund(&existing));
            }
            Err(e) => return Err(e.into()),
        };
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
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: Some(refund.id.clone()),
            operation: "refund",
        };
        let result = with_context(ctx, channel.refund(&request)).await;
        let refund = match result {
            Ok(snapshot) => {
                let actor = Audit::new(audit.actor.clone(), "refund answer");
                self.apply_refund_snapshot(refund, &snapshot, &actor)
                    .await?
            }
            Err(e) if is_unknown(&e) => {
                self.schedule(
                    JobKind::RefundQuery,
                    &refund.id,
                    Some(&payment.id),
                    self.now_ms() + 5_000,
                )
                .await?;
                refund
            }
            Err(e) => {
                let reason = e.to_string();
                let failed = self
                    .store
                    .transition_refund(
                        &refund.id,
                        None,
                        RefundStatus::Failed,
                        &RefundPatch {
                            failure_reason: Some(reason.clone()),
                            ..RefundPatch::default()
                        },
                        |r| Some(self.refund_event("refund.failed", r)),
                        &Audit::new(audit.actor.clone(), reason),
                    )
                    .await?;
                self.outbox_signal.notify_one();
                if failed.applied().is_none() {
                    return Err(refused(e));
                }
                self.store
                    .get_refund(&refund.id)
                    .await?
                    .ok_or(ApiError::NotFound("refund"))?
            }
        };
        Ok(views::refund(&refund))
    }

    /// Applies a provider's view of a refund; success also moves the payment (in the store's
    /// transaction).
    pub(super) async fn apply_refund_snapshot(
        &self,
        refund: Refund,
        snap: &RefundSnapshot,
        audit: &Audit,
    ) -> Result<Refund, ApiError> {
        let (to, kind) = match snap.status {
            ProviderRefundStatus::Succeeded => (RefundStatus::Succeeded, "refund.succeeded"),
            ProviderRefundStatus::Failed => (RefundStatus::Failed, "refund.failed"),
            ProviderRefundStatus::Processing | ProviderRefundStatus::NotFound => {
                if refund.status == RefundStatus::Pending {
                    self.schedule(
                        JobKind::RefundQuery,
                        &refund.id,
                        Some(&refund.payment_id),
                        self.now_ms() + 10_000,
                    )
                    .await?;
                }
                return Ok(refund);
            }
        };
        if let Some(amount) = snap.amount {
            if amount != refund.amount {
                self.timeline(
                    &refund.payment_id,
                    "refund_mismatch",
                    &format!(
                        "refund {}: provider amount {} fen, ours {} fen",
                        refund.id, amount.0, refund.amount.0
                    ),
                )
                .await;
                return Ok(refund);
            }
        }
        let patch = RefundPatch {
            provider_refund_no: snap.provider_refund_no.clone(),
            failure_reason: (to == RefundStatus::Failed).then(|| snap.provider_status.clone()),
            succeeded_at: (to == RefundStatus::Succeeded).then(|| self.now_ms()),
        };
        let endpoints = self.endpoints_for(refund.mode);
        let applied = self
            .store
            .transition_refund(
                &refund.id,
                None,
                to,
                &patch,
                |r| Some(NewEvent::new(kind, views::refund(r)).deliver_to(endpoints)),
                audit,
            )
            .await?;
        match applied.applied() {
            Some(change) => {
                self.outbox_signal.notify_one();
                Ok(change.refund)
            }
            None => self
                .store
                .get_refund(&refund.id)
                .await?
                .ok_or(ApiError::NotFound("refund")),
        }
    }

    pub(super) async fn query_refund_and_apply(&self, refund_id: &str) -> Result<Refund, ApiError> {
        let refund = self
            .store
            .get_refund(refund_id)
            .await?
            .ok_or(ApiError::NotFound("refund"))?;
        let payment = self.load_payment(&refund.payment_id).await?;
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: Some(refund.id.clone()),
            operation: "query_refund",
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
            "query",
            format!("refund query: {}", snapshot.provider_status),
        );
        self.apply_refund_snapshot(refund, &snapshot, &audit).await
    }

    pub async fn get_refund(&self, key: &ApiKey, id: &str) -> Result<Value, ApiError> {
        let r = self
            .store
            .get_refund(id)
            .await?
            .filter(|r| r.mode == key.mode)
            .ok_or(ApiError::NotFound("refund"))?;
        Ok(views::refund(&r))
    }

    pub async fn list_refunds(&self, key: &ApiKey, payment_id: &str) -> Result<Value, ApiError> {
        let p = self.payment_for(key, payment_id).await?;
        let refunds = self.store.list_refunds(&p.id).await?;
        Ok(serde_json::json!({
            "data": refunds.iter().map(views::refund).collect::<Vec<_>>()
        }))
    }
}
