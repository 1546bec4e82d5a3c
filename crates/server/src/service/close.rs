//! Closing unpaid payments: on the merchant's request, on expiry, and watching an order the
//! provider did not know yet until it can no longer be paid.

use paybridge_core::channel::{CloseOutcome, OrderRef, ProviderPaymentStatus};
use paybridge_core::decide::PaymentObservation;
use paybridge_core::{PaymentStatus, Scene};
use paybridge_store::{Audit, Payment};
use serde_json::Value;

use super::apply::timeline_entry;
use super::caller::Caller;
use super::calllog::{with_context, CallContext};
use super::error::ServiceError;
use super::jobs::JobKind;
use super::payments::{is_unknown, refused};
use super::Gateway;

/// How long past its expiry an order the provider had not seen is still watched: the provider's
/// own `time_expire` is ours rounded to the second, and its clock may run a little late.
pub(super) const CLOSE_WATCH_MARGIN_MS: i64 = 5 * 60_000;
/// Queries of a watched order.
pub(super) const CLOSE_WATCH_EVERY_MS: i64 = 60_000;

impl Gateway {
    /// `POST /v1/payments/{id}/close`: closes an unpaid payment at the provider, then locally.
    pub async fn close_payment(&self, key: &dyn Caller, id: &str) -> Result<Payment, ServiceError> {
        let payment = self.payment_for(key, id).await?;
        match payment.status {
            PaymentStatus::Created | PaymentStatus::Pending => {}
            PaymentStatus::Closed => return Ok(payment),
            other => {
                return Err(ServiceError::InvalidState {
                    status: other.to_string(),
                    action: "close",
                })
            }
        }
        let audit = key.audit("closed by merchant");
        self.close_at_provider(payment, &audit).await
    }

    /// Shared by the API and the expiry job: close (or cancel a barcode) at the provider, and
    /// only when the provider agrees mark it closed. A refusal because it was paid meanwhile is
    /// answered by querying and applying the truth.
    pub(super) async fn close_at_provider(
        &self,
        payment: Payment,
        audit: &Audit,
    ) -> Result<Payment, ServiceError> {
        // The recovery point: if we die during the call, the query finds out what happened.
        self.schedule(JobKind::Query, &payment.id, None, self.now_ms() + 30_000)
            .await?;
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let order = OrderRef {
            out_trade_no: payment.out_trade_no.clone(),
            provider_trade_no: payment.provider_trade_no.clone(),
        };
        let barcode = payment.scene == Scene::Barcode;
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: None,
            operation: if barcode {
                "cancel_payment"
            } else {
                "close_payment"
            },
            deferred: None,
        };
        let result = with_context(ctx, async {
            if barcode {
                channel
                    .cancel_payment(&order)
                    .await
                    .map(|()| CloseOutcome::Closed)
            } else {
                channel.close_payment(&order).await
            }
        })
        .await;
        match result {
            Ok(CloseOutcome::Closed) => {
                self.apply_observation(
                    &payment.id,
                    PaymentObservation::Closed,
                    audit,
                    |cur, plan| {
                        plan.cancel_jobs
                            .push((JobKind::Expire.as_str().to_string(), cur.id.clone()));
                    },
                )
                .await
            }
            Ok(CloseOutcome::NotFound) => {
                // The provider has no order yet (an Alipay QR code nobody scanned), which is
                // not "closed": it can still be created and paid until the provider-side
                // `time_expire`. Closed here, watched there until then.
                let watch_until = payment
                    .expires_at
                    .unwrap_or_else(|| self.now_ms())
                    .saturating_add(CLOSE_WATCH_MARGIN_MS);
                let first = self.now_ms() + CLOSE_WATCH_EVERY_MS;
                self.apply_observation(
                    &payment.id,
                    PaymentObservation::Closed,
                    audit,
                    |cur, plan| {
                        plan.timeline.push(timeline_entry(
                            "close_watch",
                            "the provider did not know the order yet; watching it until it expires",
                        ));
                        plan.jobs.push(JobKind::CloseWatch.job(
                            &cur.id,
                            None,
                            serde_json::json!({ "until": watch_until }),
                            first,
                        ));
                    },
                )
                .await
            }
            Err(e) if is_unknown(&e) => {
                self.schedule(JobKind::Query, &payment.id, None, self.now_ms() + 5_000)
                    .await?;
                Err(ServiceError::ProviderUnknown)
            }
            Err(e) => {
                // The provider refused the close; it may know something we do not (paid).
                let reason = e.to_string();
                let refreshed = self.query_and_apply(&payment.id, "close refused").await;
                match refreshed {
                    Ok(p) if p.status == PaymentStatus::Closed => Ok(p),
                    Ok(p) if p.status != payment.status => Err(ServiceError::InvalidState {
                        status: p.status.to_string(),
                        action: "close",
                    }),
                    _ => {
                        tracing::info!(payment = %payment.id, %reason, "close refused");
                        Err(refused(e))
                    }
                }
            }
        }
    }

    /// One look at an order closed here while the provider did not know it: closes it there
    /// if it appeared, applies a payment if the buyer paid. `true` when the watch is over.
    pub(super) async fn watch_closed(
        &self,
        job_id: &str,
        payment_id: &str,
        payload: &Value,
    ) -> Result<bool, ServiceError> {
        let p = self.load_payment(payment_id).await?;
        if p.status != PaymentStatus::Closed {
            return Ok(true);
        }
        let until = payload.get("until").and_then(Value::as_i64).unwrap_or(0);
        let snap = self.query_provider(&p).await.map_err(|e| match e {
            e if is_unknown(&e) => ServiceError::ProviderUnknown,
            other => refused(other),
        })?;
        let audit = Audit::new(format!("job:{job_id}"), "close watch");
        match snap.status {
            ProviderPaymentStatus::Pending | ProviderPaymentStatus::UserPaying => {
                let account = self.account(&p.account)?.clone();
                let channel = account.api_for(p.scene)?.clone();
                let order = OrderRef {
                    out_trade_no: p.out_trade_no.clone(),
                    provider_trade_no: snap.provider_trade_no.clone(),
                };
                let ctx = CallContext {
                    payment_id: Some(p.id.clone()),
                    refund_id: None,
                    operation: "close_payment",
                    deferred: None,
                };
                let closed = with_context(ctx, channel.close_payment(&order)).await;
                self.timeline(
                    &p.id,
                    "close_watch",
                    &format!("the order appeared at the provider; closing it: {closed:?}"),
                )
                .await;
                // Watch on: a close that did not take is tried again; one that did shows as
                // closed at the next look. A provider that never expires it gets a day more.
                Ok(self.now_ms() > until.saturating_add(86_400_000))
            }
            ProviderPaymentStatus::Paid | ProviderPaymentStatus::Refunded => {
                self.apply_snapshot(p, &snap, &audit).await?;
                Ok(true)
            }
            ProviderPaymentStatus::Closed | ProviderPaymentStatus::Failed => Ok(true),
            ProviderPaymentStatus::NotFound => Ok(self.now_ms() > until),
        }
    }
}
