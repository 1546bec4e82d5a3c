//! The dashboard: today and the last 7 days per account and channel (volume, counts, success
//! rate), notifications that failed verification, the webhook backlog per endpoint, open
//! reconciliation discrepancies and overdue jobs — all of the session's mode.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use paybridge_core::{Fen, PaymentStatus};
use paybridge_store::PaymentStat;

use super::auth::{Action, Session};
use super::layout::{self, yuan, Nav};
use super::{Console, ConsoleError};

const DAY_MS: i64 = 86_400_000;
const BEIJING_OFFSET_MS: i64 = 8 * 3_600_000;
/// A scheduled job this late means no worker is taking its queue.
const OVERDUE_AFTER_MS: i64 = 5 * 60_000;

/// Per account and channel: payments, paid ones, paid volume.
#[derive(Default)]
struct Row {
    total: i64,
    paid: i64,
    volume: i64,
}

fn is_paid(s: PaymentStatus) -> bool {
    matches!(
        s,
        PaymentStatus::Paid | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded
    )
}

fn rows(stats: &[PaymentStat]) -> BTreeMap<(String, String), Row> {
    let mut out: BTreeMap<(String, String), Row> = BTreeMap::new();
    for s in stats {
        let row = out
            .entry((s.account.clone(), s.channel.as_str().to_string()))
            .or_default();
        row.total += s.count;
        if is_paid(s.status) {
            row.paid += s.count;
            row.volume = row.volume.saturating_add(s.amount.0);
        }
    }
    out
}

fn table(s: &Session, title: &str, stats: &[PaymentStat]) -> Markup {
    let rows = rows(stats);
    html! {
        h2 { (title) }
        @if rows.is_empty() { p.muted { (s.text("No payments.", "没有支付。")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th { (s.text("Account", "账户")) } th { (s.text("Channel", "渠道")) }
                    th.num { (s.text("Payments", "笔数")) } th.num { (s.text("Paid", "成功")) }
                    th.num { (s.text("Success rate", "成功率")) } th.num { (s.text("Volume", "金额")) }
                } }
                tbody {
                    @for ((account, channel), r) in &rows {
                        tr {
                            td { (account) } td { (channel) }
                            td.num { (r.total) } td.num { (r.paid) }
                            td.num { (r.paid * 100 / r.total.max(1)) "%" }
                            td.num { (yuan(Fen(r.volume))) }
                        }
                    }
                }
            } }
        }
    }
}

pub async fn page(State(c): State<Arc<Console>>, s: Session) -> Result<Response, ConsoleError> {
    s.act(Action::Read, None)?;
    let store = &c.gw.store;
    let now = c.gw.now_ms();
    let today = (now + BEIJING_OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - BEIJING_OFFSET_MS;
    let today_stats = store.payment_stats(s.mode, today).await?;
    let week_stats = store.payment_stats(s.mode, today - 6 * DAY_MS).await?;
    // Accounts, notifications and discrepancies are per account: keep this mode's.
    let in_mode = |account: &str| {
        c.gw.accounts()
            .get(account)
            .is_some_and(|a| a.mode == s.mode)
    };
    let unverified: Vec<(String, i64)> = store
        .failed_verifications(today - 6 * DAY_MS)
        .await?
        .into_iter()
        .filter(|(a, _)| in_mode(a))
        .collect();
    let discrepancies: Vec<(String, i64)> = store
        .open_discrepancies()
        .await?
        .into_iter()
        .filter(|(a, _)| in_mode(a))
        .collect();
    let backlog = store.webhook_backlog(s.mode).await?;
    let overdue = store.overdue_jobs(now - OVERDUE_AFTER_MS).await?;
    let count = |v: &[(String, i64)]| v.iter().map(|(_, n)| n).sum::<i64>();
    let body = html! {
        div.stat-grid {
            div.card { (s.text("Notifications failing verification (7 days)", "验签失败的通知（7 天）")) b { (count(&unverified)) }
                @for (a, n) in &unverified { div.muted { (a) ": " (n) } } }
            div.card { (s.text("Webhooks not delivered", "未送达的回调")) b { (backlog.iter().map(|b| b.pending + b.failed).sum::<i64>()) }
                @for b in &backlog { div.muted { (b.endpoint) ": " (b.pending) " " (s.text("retrying", "重试中")) ", " (b.failed) " " (s.text("failed", "失败")) } }
                a href="/console/events?undelivered=1" { (s.text("See them", "查看")) } }
            div.card { (s.text("Open reconciliation discrepancies", "未解决的对账差异")) b { (count(&discrepancies)) }
                @for (a, n) in &discrepancies { div.muted { (a) ": " (n) } } }
            div.card { (s.text("Jobs overdue (all modes)", "逾期任务（全部模式）")) b { (count(&overdue)) }
                @for (k, n) in &overdue { div.muted { (k) ": " (n) } } }
        }
        (table(&s, s.text("Today (Beijing time)", "今天（北京时间）"), &today_stats))
        (table(&s, s.text("Last 7 days", "最近 7 天"), &week_stats))
    };
    Ok(layout::page(&s, s.text("Dashboard", "概览"), Nav::Dashboard, body).into_response())
}
