//! The admin's pages: reconciliation runs with their discrepancies (resolve with a note, start a
//! run), accounts (what to register with the provider), API keys (create — shown once — list,
//! revoke) and operators (list, disable, their recent actions). All of the session's mode.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::{html, Markup};
use paybridge_core::Mode;
use paybridge_server::service::{Caller, Protocol};
use paybridge_store::{ApiScope, Audit, NewApiKey};
use serde::Deserialize;

use super::auth::{Action, Session};
use super::layout::{self, csrf_field, json_block, opt_time, status, time, yuan, Nav};
use super::payments::reason;
use super::{Console, ConsoleError};

#[derive(Deserialize, Default)]
pub struct Flash {
    done: Option<String>,
    error: Option<String>,
}

/// Back to `path` with a note for the operator.
fn back(path: &str, outcome: Result<&str, String>) -> Response {
    let (k, v) = match outcome {
        Ok(done) => ("done", done.to_string()),
        Err(e) => ("error", e),
    };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair(k, &v)
        .finish();
    Redirect::to(&format!("{path}?{q}")).into_response()
}

fn mode_accounts(c: &Console, mode: Mode) -> Vec<String> {
    c.gw.accounts()
        .values()
        .filter(|a| a.mode == mode)
        .map(|a| a.id.clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reconciliation.

pub async fn reconciliations(
    State(c): State<Arc<Console>>,
    s: Session,
    Query(flash): Query<Flash>,
) -> Result<Response, ConsoleError> {
    s.act(Action::Read, None)?;
    let accounts = mode_accounts(&c, s.mode);
    let mut runs = Vec::new();
    for a in &accounts {
        runs.extend(c.gw.store.list_account_reconciliations(a, 20).await?);
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
    let yesterday = layout::beijing_date(c.gw.now_ms() - 86_400_000);
    let body = html! {
        (layout::flash(flash.done.as_deref(), flash.error.as_deref()))
        @if s.may(Action::Reconcile) && !accounts.is_empty() {
            form.card.filters method="post" action="/console/reconciliations" {
                (csrf_field(&s))
                label { (s.text("Account", "账户"))
                    select name="account" { @for a in &accounts { option value=(a) { (a) } } } }
                label { (s.text("Day (Beijing)", "账单日（北京时间）"))
                    input name="date" type="date" required value=(yesterday); }
                div { button type="submit" { (s.text("Start a run", "发起对账")) } }
            }
        }
        @if runs.is_empty() { p.muted { (s.text("No reconciliation runs.", "没有对账记录。")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th { (s.text("Asked", "发起时间")) } th { (s.text("Account", "账户")) }
                    th { (s.text("Day", "账单日")) } th { (s.text("State", "状态")) }
                    th.num { (s.text("Rows read", "读取行数")) } th.num { (s.text("Matched", "已匹配")) }
                } }
                tbody { @for r in &runs { tr {
                    td { a href={"/console/reconciliations/" (r.id)} { (time(r.created_at)) } }
                    td { (r.account) } td { (r.bill_date) }
                    td { (status(&r.state)) @if let Some(e) = &r.error { " " span.muted { (e) } } }
                    td.num { (r.rows_read) } td.num { (r.rows_matched) }
                } } }
            } }
        }
    };
    Ok(layout::page(
        &s,
        s.text("Reconciliation", "对账"),
        Nav::Reconciliation,
        body,
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct StartRun {
    account: String,
    date: String,
}

pub async fn start_run(
    State(c): State<Arc<Console>>,
    s: Session,
    Form(form): Form<StartRun>,
) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Reconcile, Some("started from the console"))?;
    match c
        .gw
        .create_reconciliation(&caller, &form.account, &form.date)
        .await
    {
        Ok(rec) => {
            c.gw.store
                .record_action(
                    &caller.audit("reconciliation started"),
                    "reconciliation",
                    &rec.run.id,
                    "queued",
                )
                .await?;
            Ok(Redirect::to(&format!("/console/reconciliations/{}", rec.run.id)).into_response())
        }
        Err(e) if e.is_fault() => Err(e.into()),
        Err(e) => Ok(back("/console/reconciliations", Err(e.to_string()))),
    }
}

pub async fn reconciliation(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Result<Response, ConsoleError> {
    let caller = s.act(Action::Read, None)?;
    let rec = c.gw.get_reconciliation(&caller, &id).await?;
    let r = &rec.run;
    let body = html! {
        (layout::flash(flash.done.as_deref(), flash.error.as_deref()))
        section.card { dl.facts {
            dt { (s.text("Account", "账户")) } dd { (r.account) }
            dt { (s.text("Day", "账单日")) } dd { (r.bill_date) }
            dt { (s.text("State", "状态")) } dd { (status(&r.state)) @if let Some(e) = &r.error { " " (e) } }
            dt { (s.text("Asked", "发起")) } dd { (time(r.created_at)) }
            dt { (s.text("Finished", "完成")) } dd { (opt_time(r.finished_at)) }
            dt { (s.text("Rows read / matched", "读取/匹配行数")) } dd { (r.rows_read) " / " (r.rows_matched) }
        }
        details { summary { (s.text("Totals", "汇总")) } (json_block(&r.totals)) } }
        h2 { (s.text("Discrepancies", "差异")) }
        @if rec.discrepancies.is_empty() { p.muted { (s.text("None.", "无。")) } }
        ol.timeline { @for d in &rec.discrepancies {
            li data-kind="discrepancy" data-resolution=(d.resolution) {
                b { (d.discrepancy.kind) } " · " (d.discrepancy.entity) " " (d.discrepancy.out_trade_no)
                @if let Some(p) = &d.discrepancy.payment_id { " · " a href={"/console/payments/" (p)} { (p) } }
                " · " (status(&d.resolution))
                div.muted {
                    (s.text("bill", "账单")) " " (d.discrepancy.bill_amount.map(yuan).unwrap_or_else(|| "—".into()))
                    " " (d.discrepancy.bill_status.as_deref().unwrap_or(""))
                    " · " (s.text("local", "本地")) " " (d.discrepancy.local_amount.map(yuan).unwrap_or_else(|| "—".into()))
                    " " (d.discrepancy.local_status.as_deref().unwrap_or(""))
                }
                @if let Some(note) = &d.detail { div { (note) } }
                @if d.resolution != "healed" && d.resolution != "resolved" && s.may(Action::Reconcile) {
                    form.stack method="post" action={"/console/discrepancies/" (d.id) "/resolve"} {
                        (csrf_field(&s))
                        label { (s.text("Note (how it was settled)", "备注（如何处理）"))
                            input name="note" required maxlength="80"; }
                        button.secondary type="submit" { (s.text("Mark resolved", "标记为已解决")) }
                    }
                }
            }
        } }
    };
    Ok(layout::page(
        &s,
        s.text("Reconciliation run", "对账记录"),
        Nav::Reconciliation,
        body,
    )
    .into_response())
}

#[derive(Deserialize)]
pub struct ResolveForm {
    note: String,
}

pub async fn resolve(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Form(form): Form<ResolveForm>,
) -> Result<Response, ConsoleError> {
    let note = match reason(&form.note) {
        Ok(n) => n,
        Err(e) => return Ok(back("/console/reconciliations", Err(e))),
    };
    let caller = s.act(Action::Reconcile, Some(note))?;
    let d =
        c.gw.store
            .get_discrepancy(&id)
            .await?
            .filter(|d| {
                c.gw.accounts()
                    .get(&d.account)
                    .is_some_and(|a| a.mode == caller.mode())
            })
            .ok_or(ConsoleError::NotFound("discrepancy"))?;
    let audit = caller.audit("discrepancy resolved");
    let detail = format!("{} ({})", note, audit.actor);
    c.gw.store
        .resolve_discrepancy(&d.id, "resolved", Some(&detail))
        .await?;
    c.gw.store
        .record_action(&audit, "discrepancy", &d.id, "resolved")
        .await?;
    Ok(back(
        &format!("/console/reconciliations/{}", d.run_id),
        Ok(s.text("Marked resolved.", "已标记为已解决。")),
    ))
}

// ---------------------------------------------------------------------------------------------
// Accounts.

pub async fn accounts(State(c): State<Arc<Console>>, s: Session) -> Result<Response, ConsoleError> {
    s.act(Action::Read, None)?;
    let accounts: Vec<_> =
        c.gw.accounts()
            .values()
            .filter(|a| a.mode == s.mode)
            .collect();
    let body = html! {
        p.muted { (s.text("Register these notify URLs with the provider.", "请在渠道后台登记以下通知地址。")) }
        @if accounts.is_empty() { p.muted { (s.text("No accounts in this mode.", "此模式下没有账户。")) } }
        @for a in &accounts {
            section.card {
                h2 { (a.id) }
                dl.facts {
                    dt { (s.text("Mode", "模式")) } dd { (a.mode.as_str()) }
                    dt { (s.text("Channel", "渠道")) } dd { (a.channel.as_str()) }
                    dt { (s.text("API", "接口")) } dd { (a.primary.as_str())
                        @for p in a.channels.keys().filter(|p| **p != a.primary) { " + " (p.as_str()) } }
                    dt { "app_id" } dd { (a.app_id) }
                    dt { (s.text("Merchant id", "商户号")) } dd { (a.merchant_id.as_deref().unwrap_or("—")) }
                    dt { (s.text("Notify URL", "通知地址")) } dd { code { (c.gw.notify_url(a, false)) } }
                    @if a.primary == Protocol::WechatV2 {
                        dt { (s.text("Refund notify URL", "退款通知地址")) } dd { code { (c.gw.notify_url(a, true)) } }
                    }
                }
            }
        }
    };
    Ok(layout::page(&s, s.text("Accounts", "账户"), Nav::Accounts, body).into_response())
}

// ---------------------------------------------------------------------------------------------
// API keys.

fn keys_body(s: &Session, keys: &[paybridge_store::ApiKey], shown: Option<&str>) -> Markup {
    html! {
        @if let Some(secret) = shown {
            div.card.done role="status" {
                p { b { (s.text("The new key — shown only now, copy it:", "新密钥（仅显示这一次，请复制）：")) } }
                pre data-new-key { (secret) }
            }
        }
        form.card.filters method="post" action="/console/api-keys" {
            (csrf_field(s))
            label { (s.text("Merchant", "商户")) input name="merchant" required maxlength="64" value="default"; }
            fieldset { legend { (s.text("Scopes", "权限")) }
                @for sc in ApiScope::ALL {
                    label { input type="checkbox" name="scope" value=(sc.as_str()) checked; " " (sc.as_str()) }
                } }
            label { (s.text("Reason", "原因")) input name="reason" required maxlength="80"; }
            div { button type="submit" { (s.text("Create key", "创建密钥")) } }
        }
        div.table-wrap { table {
            thead { tr {
                th { (s.text("Created", "创建时间")) } th { "id" } th { (s.text("Prefix", "前缀")) }
                th { (s.text("Merchant", "商户")) } th { (s.text("Scopes", "权限")) } th { (s.text("State", "状态")) }
            } }
            tbody { @for k in keys { tr data-key=(k.id) {
                td { (time(k.created_at)) } td { (k.id) } td { code { (k.prefix) "…" } }
                td { (k.merchant) }
                td { (k.scopes.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")) }
                td {
                    @if k.revoked { (status("revoked")) }
                    @else {
                        form.stack method="post" action={"/console/api-keys/" (k.id) "/revoke"} {
                            (csrf_field(s))
                            input name="reason" required maxlength="80" placeholder=(s.text("reason", "原因"));
                            button.danger type="submit" { (s.text("Revoke", "吊销")) }
                        }
                    }
                }
            } } }
        } }
    }
}

async fn mode_keys(c: &Console, mode: Mode) -> Result<Vec<paybridge_store::ApiKey>, ConsoleError> {
    Ok(c.gw
        .store
        .list_api_keys(None)
        .await?
        .into_iter()
        .filter(|k| k.mode == mode)
        .collect())
}

pub async fn api_keys(
    State(c): State<Arc<Console>>,
    s: Session,
    Query(flash): Query<Flash>,
) -> Result<Response, ConsoleError> {
    s.act(Action::ManageApiKeys, None)?;
    let keys = mode_keys(&c, s.mode).await?;
    let body = html! {
        (layout::flash(flash.done.as_deref(), flash.error.as_deref()))
        (keys_body(&s, &keys, None))
    };
    Ok(layout::page(&s, s.text("API keys", "API 密钥"), Nav::ApiKeys, body).into_response())
}

pub async fn create_key(
    State(c): State<Arc<Console>>,
    s: Session,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, ConsoleError> {
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let why = match reason(&field("reason")) {
        Ok(r) => r.to_string(),
        Err(e) => return Ok(back("/console/api-keys", Err(e))),
    };
    let caller = s.act(Action::ManageApiKeys, Some(&why))?;
    let scopes: Result<Vec<ApiScope>, _> = form
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.parse::<ApiScope>())
        .collect();
    let merchant = field("merchant");
    let scopes = match scopes {
        Ok(sc) if !sc.is_empty() && !merchant.is_empty() && merchant.len() <= 64 => sc,
        _ => {
            return Ok(back(
                "/console/api-keys",
                Err("a merchant and at least one scope are needed".into()),
            ))
        }
    };
    let (key, secret) =
        c.gw.store
            .create_api_key(&NewApiKey {
                mode: caller.mode(),
                merchant,
                scopes,
            })
            .await?;
    c.gw.store
        .record_action(
            &caller.audit("API key created"),
            "api_key",
            &key.id,
            "created",
        )
        .await?;
    // The key is in this one answer and nowhere else: rendered, not redirected, never cached.
    let keys = mode_keys(&c, s.mode).await?;
    let page = layout::page(
        &s,
        s.text("API keys", "API 密钥"),
        Nav::ApiKeys,
        keys_body(&s, &keys, Some(secret.expose())),
    );
    Ok(([(header::CACHE_CONTROL, "no-store")], page).into_response())
}

#[derive(Deserialize)]
pub struct RevokeForm {
    reason: String,
}

pub async fn revoke_key(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, ConsoleError> {
    let why = match reason(&form.reason) {
        Ok(r) => r,
        Err(e) => return Ok(back("/console/api-keys", Err(e))),
    };
    let caller = s.act(Action::ManageApiKeys, Some(why))?;
    // Only a key of the session's mode: the other mode's keys are not on this screen.
    if !mode_keys(&c, caller.mode())
        .await?
        .iter()
        .any(|k| k.id == id)
    {
        return Err(ConsoleError::NotFound("API key"));
    }
    c.gw.store.revoke_api_key(&id).await?;
    c.gw.store
        .record_action(&caller.audit("API key revoked"), "api_key", &id, "revoked")
        .await?;
    Ok(back(
        "/console/api-keys",
        Ok(s.text("Key revoked.", "密钥已吊销。")),
    ))
}

// ---------------------------------------------------------------------------------------------
// Operators.

pub async fn operators(
    State(c): State<Arc<Console>>,
    s: Session,
    Query(flash): Query<Flash>,
) -> Result<Response, ConsoleError> {
    s.act(Action::ManageOperators, None)?;
    let operators = c.gw.store.list_operators().await?;
    let actions = c.gw.store.list_operator_actions(50).await?;
    let body = html! {
        (layout::flash(flash.done.as_deref(), flash.error.as_deref()))
        p.muted { (s.text("Create operators and reset passwords with `paybridge operator`.", "用 `paybridge operator` 创建操作员和重置密码。")) }
        div.table-wrap { table {
            thead { tr { th { (s.text("Username", "用户名")) } th { (s.text("Role", "角色")) } th { (s.text("State", "状态")) } th {} } }
            tbody { @for o in &operators { tr data-operator=(o.username) {
                td { (o.username) } td { (o.role.as_str()) }
                td { @if o.disabled { (status("disabled")) } @else { (s.text("active", "正常")) } }
                td { @if !o.disabled && o.id != s.operator.id {
                    form.stack method="post" action={"/console/operators/" (o.username) "/disable"} {
                        (csrf_field(&s))
                        input name="reason" required maxlength="80" placeholder=(s.text("reason", "原因"));
                        button.danger type="submit" { (s.text("Disable", "停用")) }
                    }
                } }
            } } }
        } }
        h2 { (s.text("Recent operator actions", "最近的操作")) }
        div.table-wrap { table {
            thead { tr { th { (s.text("When", "时间")) } th { (s.text("Who", "操作员")) } th { (s.text("What", "操作")) } th { (s.text("Why", "原因")) } } }
            tbody { @for a in &actions { tr {
                td { (time(a.created_at)) } td { (a.actor) }
                td { (a.entity) " " (a.entity_id) ": " (a.from_status.as_deref().map(|f| format!("{f} → ")).unwrap_or_default()) (a.to_status) }
                td { (a.reason) }
            } } }
        } }
    };
    Ok(layout::page(&s, s.text("Operators", "操作员"), Nav::Operators, body).into_response())
}

pub async fn disable_operator(
    State(c): State<Arc<Console>>,
    s: Session,
    Path(username): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Result<Response, ConsoleError> {
    let why = match reason(&form.reason) {
        Ok(r) => r,
        Err(e) => return Ok(back("/console/operators", Err(e))),
    };
    let caller = s.act(Action::ManageOperators, Some(why))?;
    if username == s.operator.username {
        return Ok(back(
            "/console/operators",
            Err("you cannot disable yourself".into()),
        ));
    }
    let op = c.gw.store.set_operator_disabled(&username, true).await?;
    let audit: Audit = caller.audit("operator disabled");
    c.gw.store
        .record_action(&audit, "operator", &op.id, "disabled")
        .await?;
    Ok(back(
        "/console/operators",
        Ok(s.text("Operator disabled.", "操作员已停用。")),
    ))
}
