//! Payments: search with CSV export, the payment page (amounts, client action, one timeline)
//! and its actions — partial refund, close, redeliver (in `events`) — each role-checked and
//! audited with the operator and the reason they give.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use paybridge_core::{Channel, Fen, PaymentStatus};
use paybridge_server::service::{CreateRefundInput, IdempotencyKey, Timeline};
use paybridge_store::{Payment, PaymentFilter, Refund};
use serde::Deserialize;

use super::auth::{Action, Session};
use super::layout::{self, csrf_field, json_block, opt_time, status, time, yuan, Nav};
use super::{events, Console, ConsoleError};

/// Rows per page of the list; CSV exports page through at most `CSV_MAX_ROWS`.
const PAGE_ROWS: u32 = 50;
const CSV_MAX_ROWS: usize = 10_000;
/// Longest reason an operator may give (the provider sees refund reasons, which it limits).
const REASON_MAX: usize = 80;

#[derive(Deserialize, Default, Clone)]
pub struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    channel: String,
    /// Yuan.
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    /// `YYYY-MM-DD`, Beijing days, inclusive.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// The start of a Beijing day in unix ms.
fn beijing_day_start(date: &str) -> Result<i64, ConsoleError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let day = time::Date::parse(date, &format)
        .map_err(|_| ConsoleError::BadRequest(format!("date {date:?}: use YYYY-MM-DD")))?;
    let offset = time::UtcOffset::from_hms(8, 0, 0).unwrap_or(time::UtcOffset::UTC);
    let start = day.midnight().assume_offset(offset);
    Ok(i64::try_from(start.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
}

impl Search {
    fn filter(&self) -> Result<PaymentFilter, ConsoleError> {
        let bad = |what: &str| ConsoleError::BadRequest(format!("{what}: not a valid value"));
        let fen = |s: &str, what: &str| -> Result<Option<Fen>, ConsoleError> {
            non_empty(s)
                .map(|v| Fen::parse_yuan(v).map_err(|_| bad(what)))
                .transpose()
        };
        Ok(PaymentFilter {
            mode: None,
            account: non_empty(&self.account).map(str::to_string),
            status: non_empty(&self.status)
                .map(|s| s.parse::<PaymentStatus>().map_err(|_| bad("status")))
                .transpose()?,
            channel: non_empty(&self.channel)
                .map(|s| s.parse::<Channel>().map_err(|_| bad("channel")))
                .transpose()?,
            created_from: non_empty(&self.from).map(beijing_day_start).transpose()?,
            created_to: non_empty(&self.to)
                .map(|d| beijing_day_start(d).map(|ms| ms + 86_400_000))
                .transpose()?,
            amount_min: fen(&self.min, "minimum amount")?,
            amount_max: fen(&self.max, "maximum amount")?,
            reference: non_empty(&self.q).map(str::to_string),
        })
    }

    /// The query string of this search (without the page cursor).
    fn query(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", &self.q)
            .append_pair("status", &self.status)
            .append_pair("account", &self.account)
            .append_pair("channel", &self.channel)
            .append_pair("min", &self.min)
            .append_pair("max", &self.max)
            .append_pair("from", &self.from)
            .append_pair("to", &self.to)
            .finish()
    }
}

fn search_form(s: &Session, c: &Console, q: &Search) -> Markup {
    let accounts: Vec<&String> =
        c.gw.accounts()
            .values()
            .filter(|a| a.mode == s.mode)
            .map(|a| &a.id)
            .collect();
    let statuses = [
        "created",
        "pending",
        "paid",
        "partially_refunded",
        "refunded",
        "closed",
        "failed",
    ];
    html! {
        form.card.filters method="get" action="/console/payments" {
            label { (s.text("Id, out_trade_no or provider no.", "支付单号/商户订单号/渠道单号"))
                input name="q" value=(q.q); }
            label { (s.text("Status", "状态"))
                select name="status" {
                    option value="" { (s.text("any", "全部")) }
                    @for st in statuses { option value=(st) selected[q.status == st] { (st) } }
                } }
            label { (s.text("Account", "账户"))
                select name="account" {
                    option value="" { (s.text("any", "全部")) }
                    @for a in &accounts { option value=(a) selected[&q.account == *a] { (a) } }
                } }
            label { (s.text("Channel", "渠道"))
                select name="channel" {
                    option value="" { (s.text("any", "全部")) }
                    option value="alipay" selected[q.channel == "alipay"] { "alipay" }
                    option value="wechat" selected[q.channel == "wechat"] { "wechat" }
                } }
            label { (s.text("Min ¥", "最小金额 ¥")) input name="min" inputmode="decimal" value=(q.min); }
            label { (s.text("Max ¥", "最大金额 ¥")) input name="max" inputmode="decimal" value=(q.max); }
            label { (s.text("From", "开始日期")) input name="from" type="date" value=(q.from); }
            label { (s.text("To", "结束日期")) input name="to" type="date" value=(q.to); }
            div { button type="submit" { (s.text("Search", "搜索")) } }
        }
    }
}

pub async fn list(
    State(c): State<Arc<Console>>,
    s: Session,
    Query(q): Query<Search>,
) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Read, None)?;
    let title = s.text("Payments", "支付");
    let page = match q.filter() {
        Ok(filter) => {
            c.gw.list_payments(&caller, filter, None, non_empty(&q.after), PAGE_ROWS)
                .await
                .map_err(ConsoleError::from)
        }
        Err(e) => Err(e),
    };
    let body = html! {
        (search_form(&s, &c, &q))
        @match &page {
            Err(e) => p.error role="alert" { (e.message()) },
            Ok(page) => {
                p { a href={"/console/payments.csv?" (q.query())} download { (s.text("Export CSV", "导出 CSV")) } }
                @if page.items.is_empty() { p.muted { (s.text("No payments match.", "没有匹配的支付。")) } }
                @else { (payment_table(&s, &page.items)) }
                @if let Some(next) = &page.next_cursor {
                    p { a href={"/console/payments?" (q.query()) "&after=" (next)} { (s.text("Next page →", "下一页 →")) } }
                }
            }
        }
    };
    Ok(layout::page(&s, title, Nav::Payments, body).into_response())
}

pub fn payment_table(s: &Session, items: &[Payment]) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th { (s.text("Created", "创建时间")) }
                    th { (s.text("Payment", "支付单")) }
                    th { (s.text("Order", "商户订单号")) }
                    th { (s.text("Account", "账户")) }
                    th.num { (s.text("Amount", "金额")) }
                    th { (s.text("Status", "状态")) }
                } }
                tbody {
                    @for p in items {
                        tr {
                            td { (time(p.created_at)) }
                            td { a href={"/console/payments/" (p.id)} { (p.id) } }
                            td { (p.out_trade_no) }
                            td { (p.account) " · " (p.channel.as_str()) " " (p.scene.as_str()) }
                            td.num { (yuan(p.amount)) }
                            td { (status(p.status.as_str())) }
                        }
                    }
                }
            }
        }
    }
}

/// A CSV field: quoted when needed, and never read as a formula by a spreadsheet.
fn csv_field(v: &str) -> String {
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}

pub async fn csv(
    State(c): State<Arc<Console>>,
    s: Session,
    Query(q): Query<Search>,
) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Read, None)?;
    let filter = q.filter()?;
    let mut out = String::from(
        "id,created_at,out_trade_no,provider_trade_no,account,channel,scene,amount_fen,\
         paid_amount_fen,refunded_amount_fen,status,subject\n",
    );
    let mut after: Option<String> = None;
    let mut rows = 0;
    loop {
        let page =
            c.gw.list_payments(&caller, filter.clone(), None, after.as_deref(), 100)
                .await?;
        for p in &page.items {
            let fields = [
                p.id.clone(),
                time(p.created_at),
                p.out_trade_no.clone(),
                p.provider_trade_no.clone().unwrap_or_default(),
                p.account.clone(),
                p.channel.as_str().to_string(),
                p.scene.as_str().to_string(),
                p.amount.0.to_string(),
                p.paid_amount.map(|f| f.0.to_string()).unwrap_or_default(),
                p.refunded_amount.0.to_string(),
                p.status.as_str().to_string(),
                p.subject.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            out.push_str(&line.join(","));
            out.push('\n');
        }
        rows += page.items.len();
        match page.next_cursor {
            Some(next) if rows < CSV_MAX_ROWS => after = Some(next),
            _ => break,
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"payments.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

#[derive(Deserialize, Default)]
pub struct Flash {
    done: Option<String>,
    error: Option<String>,
}

pub async fn show(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Read, None)?;
    let p = c.gw.get_payment(&caller, &id).await?;
    let timeline = c.gw.payment_timeline(&caller, &id).await?;
    let refunds = c.gw.list_refunds(&caller, &id).await?;
    let calls = c.gw.payment_provider_calls(&caller, &id).await?;
    let mut entries = timeline_entries(&s, &timeline, &calls);
    for r in &refunds {
        for a in c.gw.store.list_audit(&r.id).await? {
            entries.push(Entry {
                at: a.created_at,
                kind: "state",
                body: html! {
                    b { (s.text("Refund", "退款")) " " (r.id) ": " (a.from_status.as_deref().unwrap_or("—")) " → " (a.to_status) }
                    " " span.muted { (a.actor) " · " (a.reason) }
                },
            });
        }
    }
    for e in c.gw.store.list_payment_events(&p.id).await? {
        let deliveries = c.gw.store.list_deliveries(&e.id).await?;
        entries.push(Entry {
            at: e.created_at,
            kind: "webhook",
            body: events::event_body(&s, &e, &deliveries, Some(&p.id)),
        });
    }
    // One timeline in time order; entries of the same millisecond keep their source order.
    entries.sort_by_key(|e| e.at);
    let title = format!("{} {}", s.text("Payment", "支付"), p.id);
    let body = html! {
        (layout::flash(flash.done.as_deref(), flash.error.as_deref()))
        (facts(&s, &p))
        (actions(&s, &p))
        h2 { (s.text("Refunds", "退款")) }
        @if refunds.is_empty() { p.muted { (s.text("None.", "无。")) } }
        @else { (refund_table(&s, &refunds, false)) }
        h2 { (s.text("Timeline", "时间线")) }
        ol.timeline {
            @for e in &entries {
                li data-kind=(e.kind) { span.when { (time(e.at)) } (e.body) }
            }
        }
    };
    Ok(layout::page(&s, &title, Nav::Payments, body).into_response())
}

fn facts(s: &Session, p: &Payment) -> Markup {
    html! {
        section.card {
            dl.facts {
                dt { (s.text("Status", "状态")) } dd { (status(p.status.as_str())) @if p.late_payment { " " span.badge.bad { (s.text("late payment", "逾期支付")) } } }
                dt { (s.text("Amount", "金额")) } dd { b { (yuan(p.amount)) } " " (p.currency) }
                dt { (s.text("Paid", "已付")) } dd { (p.paid_amount.map(yuan).unwrap_or_else(|| "—".into())) }
                dt { (s.text("Refunded", "已退")) } dd { (yuan(p.refunded_amount)) }
                dt { (s.text("Refundable", "可退")) } dd { (yuan(p.refundable())) }
                dt { (s.text("Subject", "商品")) } dd { (p.subject) }
                dt { (s.text("Order", "商户订单号")) } dd { (p.out_trade_no) }
                dt { (s.text("Provider no.", "渠道单号")) } dd { (p.provider_trade_no.as_deref().unwrap_or("—")) }
                dt { (s.text("Account", "账户")) } dd { (p.account) " · " (p.channel.as_str()) " · " (p.scene.as_str()) }
                dt { (s.text("Created", "创建")) } dd { (time(p.created_at)) }
                dt { (s.text("Paid at", "支付时间")) } dd { (opt_time(p.paid_at)) }
                dt { (s.text("Expires", "过期")) } dd { (opt_time(p.expires_at)) }
            }
            @if let Some(action) = &p.client_action {
                details { summary { (s.text("Client action", "客户端动作")) } (json_block(action)) }
            }
        }
    }
}

fn reason_input(s: &Session) -> Markup {
    html! {
        label { (s.text("Reason (kept in the audit log)", "原因（记入审计日志）"))
            input name="reason" required maxlength=(REASON_MAX); }
    }
}

fn actions(s: &Session, p: &Payment) -> Markup {
    let refundable = p.refundable().0 > 0
        && matches!(
            p.status,
            PaymentStatus::Paid | PaymentStatus::PartiallyRefunded
        );
    let closable = matches!(p.status, PaymentStatus::Created | PaymentStatus::Pending);
    html! {
        div.actions {
            @if refundable && s.may(Action::Refund) {
                form.card.stack method="post" action={"/console/payments/" (p.id) "/refund"} {
                    h2 { (s.text("Refund", "退款")) }
                    (csrf_field(s))
                    // A form's own idempotency key: submitting it twice refunds once.
                    input type="hidden" name="idempotency_key" value=(paybridge_crypto::random_string(24));
                    label { (s.text("Amount ¥ (at most ", "金额 ¥（最多 ")) (p.refundable()) ")"
                        input name="amount" inputmode="decimal" required placeholder=(p.refundable()); }
                    (reason_input(s))
                    button.danger type="submit" { (s.text("Refund", "退款")) }
                }
            }
            @if closable && s.may(Action::Close) {
                form.card.stack method="post" action={"/console/payments/" (p.id) "/close"} {
                    h2 { (s.text("Close", "关闭")) }
                    (csrf_field(s))
                    (reason_input(s))
                    button.danger type="submit" { (s.text("Close payment", "关闭支付")) }
                }
            }
        }
    }
}

pub fn refund_table(s: &Session, refunds: &[Refund], with_payment: bool) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th { (s.text("Created", "创建时间")) }
                    th { (s.text("Refund", "退款单")) }
                    @if with_payment { th { (s.text("Payment", "支付单")) } }
                    th { "out_refund_no" }
                    th.num { (s.text("Amount", "金额")) }
                    th { (s.text("Status", "状态")) }
                    th { (s.text("Reason", "原因")) }
                } }
                tbody {
                    @for r in refunds {
                        tr data-refund=(r.id) {
                            td { (time(r.created_at)) }
                            td { (r.id) }
                            @if with_payment { td { a href={"/console/payments/" (r.payment_id)} { (r.payment_id) } } }
                            td { (r.out_refund_no) }
                            td.num { (yuan(r.amount)) }
                            td { (status(r.status.as_str())) @if let Some(f) = &r.failure_reason { " " span.muted { (f) } } }
                            td { (r.reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

struct Entry {
    at: i64,
    kind: &'static str,
    body: Markup,
}

fn timeline_entries(
    s: &Session,
    t: &Timeline,
    calls: &[paybridge_store::ProviderCall],
) -> Vec<Entry> {
    let mut out = Vec::new();
    for a in &t.state_changes {
        out.push(Entry {
            at: a.created_at,
            kind: "state",
            body: html! {
                b { (a.from_status.as_deref().unwrap_or("—")) " → " (a.to_status) }
                " " span.muted { (a.actor) " · " (a.reason) }
            },
        });
    }
    for n in &t.notifications {
        let verified = match n.verified {
            Some(true) => s.text("verified", "已验签"),
            Some(false) => s.text("NOT verified", "验签失败"),
            None => s.text("not processed yet", "尚未处理"),
        };
        let headers: Vec<String> = n.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        out.push(Entry {
            at: n.received_at,
            kind: "notification",
            body: html! {
                b { (s.text("Notification", "异步通知")) } " " (n.id) " · "
                span class=(if n.verified == Some(true) { "badge ok" } else { "badge bad" }) { (verified) }
                " " (n.outcome.as_deref().unwrap_or("")) @if let Some(r) = &n.reason { " — " (r) }
                details { summary { (s.text("Raw request", "原始请求")) }
                    pre { (n.path) "\n" (headers.join("\n")) "\n\n" (String::from_utf8_lossy(&n.body)) } }
            },
        });
    }
    for e in &t.entries {
        out.push(Entry {
            at: e.created_at,
            kind: "note",
            body: html! {
                b { (e.kind) } " "
                @match e.detail.get("detail").and_then(|d| d.as_str()) {
                    Some(d) => span { (d) },
                    None => (json_block(&e.detail)),
                }
            },
        });
    }
    for call in calls {
        out.push(Entry {
            at: call.created_at,
            kind: "provider_call",
            body: html! {
                b { (s.text("Provider call", "渠道调用")) " " (call.operation) }
                " · " (call.outcome) " · HTTP " (call.http_status.map(|h| h.to_string()).unwrap_or_else(|| "—".into()))
                " · " (call.latency_ms) " ms"
                details { summary { (s.text("Request (redacted) and response", "请求（已脱敏）与响应")) }
                    pre { (call.request) } pre { (call.response.as_deref().unwrap_or("")) } }
            },
        });
    }
    out
}

#[derive(Deserialize)]
pub struct RefundForm {
    amount: String,
    reason: String,
    idempotency_key: String,
}

pub(super) fn back(id: &str, outcome: Result<&str, String>) -> Response {
    let (k, v) = match outcome {
        Ok(done) => ("done", done.to_string()),
        Err(e) => ("error", e),
    };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair(k, &v)
        .finish();
    Redirect::to(&format!("/console/payments/{id}?{q}")).into_response()
}

pub(super) fn reason(text: &str) -> Result<&str, String> {
    let r = text.trim();
    if r.is_empty() || r.chars().count() > REASON_MAX || r.chars().any(char::is_control) {
        return Err(format!(
            "a reason of 1 to {REASON_MAX} characters is required"
        ));
    }
    Ok(r)
}

pub async fn refund(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Form(form): Form<RefundForm>,
) -> Result<Response, ConsoleError> {
    let why = match reason(&form.reason) {
        Ok(r) => r,
        Err(e) => return Ok(back(&id, Err(e))),
    };
    let caller = s.act(Action::Refund, Some(why))?;
    let amount = match Fen::parse_yuan(form.amount.trim()) {
        Ok(f) if f.0 > 0 => f,
        _ => return Ok(back(&id, Err("amount: yuan, e.g. 12.50".into()))),
    };
    let key = form.idempotency_key.trim();
    if key.is_empty() || key.len() > 64 {
        return Ok(back(
            &id,
            Err("the form is incomplete; reload the page".into()),
        ));
    }
    let idem = IdempotencyKey {
        key: format!("console-{key}"),
        request_hash: hex::encode(paybridge_crypto::sha256(
            format!("refund {id} {}", amount.0).as_bytes(),
        )),
    };
    let input = CreateRefundInput {
        amount: amount.0,
        out_refund_no: None,
        reason: Some(why.to_string()),
    };
    match c.gw.create_refund(&caller, &idem, &id, input).await {
        Ok(_) => Ok(back(&id, Ok(s.text("Refund requested.", "已发起退款。")))),
        Err(e) if e.is_fault() => Err(e.into()),
        Err(e) => Ok(back(&id, Err(e.to_string()))),
    }
}

#[derive(Deserialize)]
pub struct ReasonForm {
    reason: String,
}

pub async fn close(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Form(form): Form<ReasonForm>,
) -> Result<Response, ConsoleError> {
    let why = match reason(&form.reason) {
        Ok(r) => r,
        Err(e) => return Ok(back(&id, Err(e))),
    };
    let caller = s.act(Action::Close, Some(why))?;
    match c.gw.close_payment(&caller, &id).await {
        Ok(_) => Ok(back(&id, Ok(s.text("Payment closed.", "支付已关闭。")))),
        Err(e) if e.is_fault() => Err(e.into()),
        Err(e) => Ok(back(&id, Err(e.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_never_formulas() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    #[test]
    fn searches_become_filters() {
        let q = Search {
            min: "1.50".into(),
            max: "20".into(),
            from: "2026-01-01".into(),
            to: "2026-01-01".into(),
            status: "paid".into(),
            ..Search::default()
        };
        let f = q.filter().unwrap();
        assert_eq!(
            (f.amount_min, f.amount_max),
            (Some(Fen(150)), Some(Fen(2000)))
        );
        assert_eq!(f.created_from, Some(1_767_196_800_000)); // 2026-01-01 00:00 +08:00
        assert_eq!(f.created_to, Some(1_767_196_800_000 + 86_400_000));
        assert_eq!(f.status, Some(PaymentStatus::Paid));
        assert!(Search {
            min: "1.234".into(),
            ..Search::default()
        }
        .filter()
        .is_err());
        assert!(Search {
            status: "nope".into(),
            ..Search::default()
        }
        .filter()
        .is_err());
    }
}
