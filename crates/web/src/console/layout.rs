//! The page shell every console page shares: navigation, the operator and mode switch, the
//! sandbox banner; and the formatting of money and time.

use axum::response::Html;
use maud::{html, Markup, DOCTYPE};
use paybridge_core::{Fen, Mode};
use time::{OffsetDateTime, UtcOffset};

use super::auth::{Action, Session};
use crate::assets::asset_url;
use crate::i18n::Lang;

/// Which navigation entry is the current page.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Dashboard,
    Payments,
    Refunds,
    Events,
    Reconciliation,
    Accounts,
    ApiKeys,
    Operators,
}

fn head(lang: Lang, title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · paybridge" }
            link rel="stylesheet" href=(asset_url("base.css"));
            link rel="stylesheet" href=(asset_url("console.css"));
            @if lang == Lang::Zh { meta name="lang" content="zh"; }
        }
    }
}

/// A page without a session: login, errors.
pub fn bare(lang: Lang, title: &str, body: Markup) -> Html<String> {
    let page = html! {
        (DOCTYPE)
        html lang=(lang.tag()) {
            (head(lang, title))
            body { (body) }
        }
    };
    Html(page.into_string())
}

pub fn lang_links(lang: Lang) -> Markup {
    html! {
        p.lang {
            @if lang == Lang::Zh { a href="/console/lang/en" { "English" } }
            @else { a href="/console/lang/zh" { "中文" } }
        }
    }
}

/// A console page: the sandbox banner (in sandbox mode), navigation, mode switch, `body`.
pub fn page(s: &Session, title: &str, nav: Nav, body: Markup) -> Html<String> {
    let sandbox = s.mode == Mode::Sandbox;
    let item = |which: Nav, href: &str, en: &'static str, zh: &'static str| {
        html! {
            a href=(href) aria-current=[(which == nav).then_some("page")] { (s.text(en, zh)) }
        }
    };
    let page = html! {
        (DOCTYPE)
        html lang=(s.lang.tag()) class=[sandbox.then_some("sandbox")] {
            (head(s.lang, title))
            body {
                @if sandbox {
                    div.sandbox-banner role="status" data-mode="sandbox" {
                        strong { (s.text("SANDBOX MODE", "沙箱模式")) }
                        " — " (s.text("test data only, no real money moves.", "仅测试数据，不涉及真实资金。"))
                    }
                }
                header.top {
                    a.brand href="/console" { "paybridge" }
                    nav {
                        (item(Nav::Dashboard, "/console", "Dashboard", "概览"))
                        (item(Nav::Payments, "/console/payments", "Payments", "支付"))
                        (item(Nav::Refunds, "/console/refunds", "Refunds", "退款"))
                        (item(Nav::Events, "/console/events", "Events & webhooks", "事件与回调"))
                        (item(Nav::Reconciliation, "/console/reconciliations", "Reconciliation", "对账"))
                        (item(Nav::Accounts, "/console/accounts", "Accounts", "账户"))
                        @if s.may(Action::ManageApiKeys) { (item(Nav::ApiKeys, "/console/api-keys", "API keys", "API 密钥")) }
                        @if s.may(Action::ManageOperators) { (item(Nav::Operators, "/console/operators", "Operators", "操作员")) }
                    }
                    div.who {
                        form.mode method="post" action="/console/mode" {
                            (csrf_field(s))
                            @if sandbox {
                                button name="mode" value="live" { (s.text("Switch to live", "切换到正式")) }
                            } @else {
                                button name="mode" value="sandbox" { (s.text("Switch to sandbox", "切换到沙箱")) }
                            }
                        }
                        span.op { (s.operator.username) " (" (s.operator.role.as_str()) ")" }
                        form method="post" action="/console/logout" {
                            (csrf_field(s))
                            button.link { (s.text("Log out", "退出")) }
                        }
                        @if s.lang == Lang::Zh { a href="/console/lang/en" { "EN" } }
                        @else { a href="/console/lang/zh" { "中文" } }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(page.into_string())
}

pub fn csrf_field(s: &Session) -> Markup {
    html! { input type="hidden" name=(super::csrf::FIELD) value=(s.csrf()); }
}

/// `¥12.34`
pub fn yuan(f: Fen) -> String {
    format!("¥{f}")
}

/// Beijing time, the providers' and the merchants' clock: `2026-12-04 22:33:43`.
pub fn time(ms: i64) -> String {
    let offset = UtcOffset::from_hms(8, 0, 0).unwrap_or(UtcOffset::UTC);
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) else {
        return ms.to_string();
    };
    let t = t.to_offset(offset);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The Beijing day of a moment, `YYYY-MM-DD`.
pub fn beijing_date(ms: i64) -> String {
    time(ms).chars().take(10).collect()
}

pub fn opt_time(ms: Option<i64>) -> String {
    ms.map(time).unwrap_or_else(|| "—".to_string())
}

/// A status as a coloured label.
pub fn status(s: &str) -> Markup {
    let class = match s {
        "paid" | "succeeded" | "delivered" | "processed" | "completed" => "ok",
        "failed" | "closed" | "refused" | "rejected" => "bad",
        _ => "wait",
    };
    html! { span class={"badge " (class)} { (s) } }
}

/// Pretty JSON in a wrapped block (never wider than the page).
pub fn json_block(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre { (text) } }
}

/// A note after an action (`?done=` / `?error=` on the page it returns to).
pub fn flash(done: Option<&str>, error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error { p.error role="alert" { (e) } }
        @if let Some(d) = done { p.done role="status" { (d) } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_time() {
        assert_eq!(yuan(Fen(1234)), "¥12.34");
        assert_eq!(yuan(Fen(5)), "¥0.05");
        // 2026-01-01T00:00:00Z is 08:00 in Beijing.
        assert_eq!(time(1_767_225_600_000), "2026-01-01 08:00:00");
    }
}
