//! The JSON shapes merchants see. Views are built from store rows in one place so the API, the
//! event payloads and the webhooks always agree.

use paybridge_store::{Event, Payment, ProviderCall, Refund};
use serde_json::{json, Value};

pub fn payment(p: &Payment) -> Value {
    json!({
        "id": p.id,
        "object": "payment",
        "mode": p.mode,
        "account": p.account,
        "channel": p.channel,
        "scene": p.scene,
        "out_trade_no": p.out_trade_no,
        "amount": p.amount.0,
        "currency": p.currency,
        "subject": p.subject,
        "description": p.description,
        "status": p.status,
        "provider_trade_no": p.provider_trade_no,
        "client_action": p.client_action,
        "payer_id": p.payer_id,
        "paid_amount": p.paid_amount.map(|f| f.0),
        "refunded_amount": p.refunded_amount.0,
        "paid_at": p.paid_at,
        "late_payment": p.late_payment,
        "expires_at": p.expires_at,
        "metadata": p.metadata,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

pub fn refund(r: &Refund) -> Value {
    json!({
        "id": r.id,
        "object": "refund",
        "payment_id": r.payment_id,
        "mode": r.mode,
        "account": r.account,
        "out_refund_no": r.out_refund_no,
        "amount": r.amount.0,
        "reason": r.reason,
        "status": r.status,
        "provider_refund_no": r.provider_refund_no,
        "failure_reason": r.failure_reason,
        "succeeded_at": r.succeeded_at,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
    })
}

/// The event envelope, identical in the pull feed and in webhook bodies.
pub fn event(e: &Event) -> Value {
    json!({
        "id": e.id,
        "object": "event",
        "type": e.kind,
        "created": e.created_at.div_euclid(1000),
        "mode": e.mode,
        "account": e.account,
        "data": e.payload,
    })
}

pub fn provider_call(c: &ProviderCall) -> Value {
    json!({
        "id": c.id,
        "operation": c.operation,
        "channel": c.channel,
        "account": c.account,
        "refund_id": c.refund_id,
        "request": c.request,
        "response": c.response,
        "http_status": c.http_status,
        "latency_ms": c.latency_ms,
        "outcome": c.outcome,
        "created_at": c.created_at,
    })
}
