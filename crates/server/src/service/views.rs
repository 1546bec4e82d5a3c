//! Event payloads and stored answers as JSON, serialized from the routes' typed views so the
//! API, the event payloads and the webhooks always agree.

use paybridge_store::{Event, Payment, Refund};
use serde_json::Value;

use crate::routes::views::{EventView, PaymentView, RefundView};

// The views hold only strings, integers, booleans and JSON values: serializing cannot fail.
fn to_value<T: serde::Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

pub fn payment(p: &Payment) -> Value {
    to_value(PaymentView::from(p))
}

pub fn refund(r: &Refund) -> Value {
    to_value(RefundView::from(r))
}

pub fn event(e: &Event) -> Value {
    to_value(EventView::from(e))
}
