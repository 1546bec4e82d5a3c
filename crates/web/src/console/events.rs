//! Events with their webhook deliveries (status, attempts, next retry, last answer) and
//! redelivery; the refunds list.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use paybridge_store::{DeliveryStatus, Event, WebhookDelivery};
use serde::Deserialize;

use super::auth::{Action, Session};
use super::layout::{self, csrf_field, json_block, opt_time, status, time, Nav};
use super::payments::{back, reason, refund_table};
use super::{Console, ConsoleError};

/// An event and its deliveries, with a redeliver form for those allowed; `payment` is where the
/// form returns to (the payment page) instead of the events page.
pub fn event_body(
    s: &Session,
    e: &Event,
    deliveries: &[WebhookDelivery],
    payment: Option<&str>,
) -> Markup {
    html! {
        b { (s.text("Event", "事件")) " " (e.kind) } " " span.muted { (e.id) }
        @if deliveries.is_empty() {
            " · " span.muted { (s.text("no webhook endpoint", "无回调地址")) }
        }
        @for d in deliveries {
            div.delivery data-delivery-status=(d.status.as_str()) {
                (s.text("Webhook to ", "回调 ")) b { (d.endpoint) } ": " (status(d.status.as_str()))
                " · " (s.text("attempts", "尝试次数")) " " (d.attempts)
                @if d.status == DeliveryStatus::Pending {
                    " · " (s.text("next try", "下次重试")) " " (time(d.next_attempt_at))
                }
                @if let Some(code) = d.last_status_code { " · HTTP " (code) }
                @if let Some(err) = &d.last_error { " · " span.muted { (err) } }
                @if d.status == DeliveryStatus::Delivered { " · " (opt_time(d.delivered_at)) }
            }
        }
        details { summary { (s.text("Payload", "内容")) } (json_block(&e.payload)) }
        @if s.may(Action::Redeliver) {
            form.stack method="post" action={"/console/events/" (e.id) "/redeliver"} {
                (csrf_field(s))
                @if let Some(p) = payment { input type="hidden" name="payment" value=(p); }
                label { (s.text("Reason", "原因")) input name="reason" required maxlength="80"; }
                button.secondary type="submit" { (s.text("Redeliver", "重新推送")) }
            }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct EventsQuery {
    /// `1`: only events with a delivery still pending or given up.
    #[serde(default)]
    undelivered: String,
    done: Option<String>,
    error: Option<String>,
}

pub async fn list(
    State(c): State<Arc<Console>>,
    s: Session,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Read, None)?;
    let undelivered = q.undelivered == "1";
    let events =
        c.gw.store
            .list_recent_events(
                paybridge_server::service::Caller::mode(&caller),
                undelivered,
                50,
            )
            .await?;
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        let deliveries = c.gw.store.list_deliveries(&e.id).await?;
        rows.push((e, deliveries));
    }
    let body = html! {
        (layout::flash(q.done.as_deref(), q.error.as_deref()))
        p {
            @if undelivered { a href="/console/events" { (s.text("Show all events", "显示全部事件")) } }
            @else { a href="/console/events?undelivered=1" { (s.text("Only undelivered webhooks (retrying or failed)", "仅未送达的回调（重试中或失败）")) } }
        }
        @if rows.is_empty() { p.muted { (s.text("No events.", "没有事件。")) } }
        ol.timeline {
            @for (e, d) in &rows {
                li data-kind="webhook" {
                    span.when { (time(e.created_at)) }
                    @if let Some(p) = &e.payment_id { a href={"/console/payments/" (p)} { (p) } " · " }
                    (event_body(&s, e, d, None))
                }
            }
        }
    };
    Ok(layout::page(
        &s,
        s.text("Events & webhooks", "事件与回调"),
        Nav::Events,
        body,
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct RedeliverForm {
    reason: String,
    payment: Option<String>,
}

pub async fn redeliver(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Form(form): Form<RedeliverForm>,
) -> Result<Response, ConsoleError> {
    let to_events = |outcome: Result<&str, String>| {
        let (k, v) = match outcome {
            Ok(done) => ("done", done.to_string()),
            Err(e) => ("error", e),
        };
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair(k, &v)
            .finish();
        Redirect::to(&format!("/console/events?{q}")).into_response()
    };
    let answer = |outcome: Result<&str, String>| match &form.payment {
        Some(p) if p.starts_with("pay_") => back(p, outcome),
        _ => to_events(outcome),
    };
    let why = match reason(&form.reason) {
        Ok(r) => r,
        Err(e) => return Ok(answer(Err(e))),
    };
    let caller = s.act(Action::Redeliver, Some(why))?;
    match c.gw.redeliver(&caller, &id).await {
        Ok(_) => Ok(answer(Ok(s.text("Redelivery queued.", "已重新排队推送。")))),
        Err(e) if e.is_fault() => Err(e.into()),
        Err(e) => Ok(answer(Err(e.to_string()))),
    }
}

pub async fn refunds(State(c): State<Arc<Console>>, s: Session) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Read, None)?;
    let refunds =
        c.gw.store
            .list_recent_refunds(paybridge_server::service::Caller::mode(&caller), None, 100)
            .await?;
    let body = html! {
        @if refunds.is_empty() { p.muted { (s.text("No refunds.", "没有退款。")) } }
        @else { (refund_table(&s, &refunds, true)) }
    };
    Ok(layout::page(&s, s.text("Refunds", "退款"), Nav::Refunds, body).into_response())
}
