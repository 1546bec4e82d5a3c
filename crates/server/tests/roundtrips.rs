//! Counts the database statements and commits of one create, one notification and one refund,
//! as the gateway runs them (PostgreSQL: every statement is a round trip; its BEGIN and COMMIT
//! are statements too). The figures are recorded in BENCHMARKS.md; the bounds below keep the
//! money path from growing back into a chain of small transactions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY};
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{
    Clock as _, ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock,
};
use paybridge_store::{Store, StoreOptions};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static STATEMENTS: AtomicUsize = AtomicUsize::new(0);
static COMMITS: AtomicUsize = AtomicUsize::new(0);
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Sees sqlx's per-statement events (target `sqlx::query`, field `summary`).
struct CountStatements;

struct Summary(Option<String>);

impl Visit for Summary {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "summary" {
            self.0 = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "summary" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for CountStatements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut s = Summary(None);
        event.record(&mut s);
        let summary = s.0.unwrap_or_default();
        STATEMENTS.fetch_add(1, Ordering::SeqCst);
        if summary
            .trim_matches('"')
            .to_ascii_uppercase()
            .starts_with("COMMIT")
        {
            COMMITS.fetch_add(1, Ordering::SeqCst);
        }
        SEEN.lock().unwrap().push(summary);
    }
}

fn take() -> (usize, usize, Vec<String>) {
    let seen = std::mem::take(&mut *SEEN.lock().unwrap());
    (
        STATEMENTS.swap(0, Ordering::SeqCst),
        COMMITS.swap(0, Ordering::SeqCst),
        seen,
    )
}

#[tokio::test(flavor = "current_thread")]
async fn create_notification_and_refund_are_few_transactions() {
    let Ok(admin) = std::env::var("PAYBRIDGE_TEST_PG_URL") else {
        println!("SKIP roundtrips: PAYBRIDGE_TEST_PG_URL is not set (the counts are PostgreSQL's)");
        return;
    };
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CountStatements))
        .unwrap();
    let d = db::pg_db(&admin, "roundtrips").await;
    let now = SystemClock.now_ms();
    let sb = Sandbox::start_with(
        SandboxConfig::generate(now / 1000).unwrap(),
        StartOptions {
            manual_clock: Some(ManualClock::new(now)),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let store = Store::open_with(&d.url, StoreOptions::default())
        .await
        .unwrap();
    let keys = make_keys(&store).await;
    let (hook, _hooks) = start_receiver().await;
    let inst = start_configured(store, sandbox_accounts(&sb, Mode::Sandbox).unwrap(), &hook).await;
    // Warm up: the API key lookup cache and every prepared statement of the path, so the
    // counts below are those of steady state.
    for no in ["RT-WARM-1", "RT-1"] {
        take();
        let body = json!({"account": ALIPAY, "channel": "alipay", "scene": "qr", "amount": 1000,
            "out_trade_no": no, "subject": "round trips"});
        let (s, p, _) = post(
            &inst.base,
            "/v1/payments",
            &keys.sandbox_all,
            Some(no),
            &body,
        )
        .await;
        assert_eq!(s, 201, "{p}");
        let (create, create_commits, create_seen) = take();

        let trade = sb.trade_by_out_no(no).unwrap();
        sb.pay(&trade.id).unwrap();
        sb.advance(1000);
        take();
        sb.run_due().await;
        let (notify, notify_commits, notify_seen) = take();
        let id = p["id"].as_str().unwrap();
        let (_, paid) = get(
            &inst.base,
            &format!("/v1/payments/{id}"),
            &keys.sandbox_read,
        )
        .await;
        assert_eq!(paid["status"], "paid", "{paid}");

        take();
        let (s, r, _) = post(
            &inst.base,
            &format!("/v1/payments/{id}/refunds"),
            &keys.sandbox_all,
            Some(&format!("r-{no}")),
            &json!({"amount": 400, "out_refund_no": format!("R{no}")}),
        )
        .await;
        assert!(s == 201, "{s} {r}");
        let (refund, refund_commits, refund_seen) = take();
        // Drain the refund's own notification so the next round counts only its own.
        sb.advance(1000);
        sb.run_due().await;
        if no == "RT-WARM-1" {
            continue;
        }
        println!("create: {create} statements, {create_commits} commits: {create_seen:#?}");
        println!("notification: {notify} statements, {notify_commits} commits: {notify_seen:#?}");
        println!("refund: {refund} statements, {refund_commits} commits: {refund_seen:#?}");
        // The sandbox answers at once: T1 (key + payment + jobs) and T2 (the answer, with the
        // call's log row). Nothing is autocommitted between them: after T1's COMMIT the next
        // statement is T2's row lock, and the call log is written inside T2.
        assert_eq!(create_commits, 2, "create: {create_seen:#?}");
        assert_eq!(refund_commits, 2, "refund: {refund_seen:#?}");
        for (what, seen) in [("create", &create_seen), ("refund", &refund_seen)] {
            let first_commit = seen.iter().position(|s| s.starts_with("COMMIT"));
            let call_log = seen
                .iter()
                .position(|s| s.starts_with("INSERT INTO provider_calls"));
            match (first_commit, call_log) {
                (Some(c), Some(l)) => {
                    assert!(
                        seen[c + 1].starts_with("SELECT") && l > c + 1,
                        "{what}: the call log is part of T2: {seen:#?}"
                    );
                }
                _ => panic!("{what}: a commit and a call log expected: {seen:#?}"),
            }
        }
        // The decision, its effects, the dedup row and the inbox row: one transaction.
        assert_eq!(notify_commits, 1, "notification: {notify_seen:#?}");
        assert!(create <= 16 && refund <= 24 && notify <= 10);
    }
}
