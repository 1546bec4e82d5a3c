//! Test databases: every test runs on a fresh SQLite file in a temp dir, and on a fresh
//! PostgreSQL database when `PAYBRIDGE_TEST_PG_URL` is set (created through that admin URL,
//! dropped afterwards, even when the test panics). Rows are made and moved the way the gateway
//! does it: through the store's units of work, with plans decided by `paybridge_core::decide`.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::str::FromStr;
use std::sync::Arc;

use paybridge_core::channel::{ProviderPaymentStatus, ProviderRefundStatus};
use paybridge_core::decide::{
    decide_payment, decide_refund, PaymentObservation, RefundObservation,
};
use paybridge_core::{Channel, Fen, Mode, PaymentStatus, RefundStatus, Scene};
use paybridge_store::{
    Audit, BeginPayment, BeginRefund, EventSpec, KeyClaim, ManualClock, NewPayment, NewRefund,
    Payment, PaymentApplied, PaymentPatch, PaymentPlan, Refund, RefundApplied, RefundPatch,
    RefundPlan, Store, StoreError, StoreOptions,
};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

pub const T0: i64 = 1_800_000_000_000;

/// The webhook endpoint the helpers' events are delivered to.
pub const HOOK: &str = "https://merchant.example/hooks";

pub struct Db {
    pub label: &'static str,
    pub url: String,
    pub clock: Arc<ManualClock>,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl Db {
    /// A new pool ("instance") on this database, sharing the test clock.
    pub async fn open(&self) -> Store {
        let options = StoreOptions {
            max_connections: 5,
            clock: self.clock.clone(),
            ..StoreOptions::default()
        };
        Store::open_with(&self.url, options)
            .await
            .unwrap_or_else(|e| panic!("open {} store: {e}", self.label))
    }

    pub fn is_pg(&self) -> bool {
        self.pg_drop.is_some()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_drop.take() {
            // Drop runs outside async context (possibly while unwinding): use a private runtime.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin).await {
                        let _ = conn
                            .execute(
                                format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                            )
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// The databases a test runs on: SQLite always, PostgreSQL when configured.
pub async fn dbs(test: &str) -> Vec<Db> {
    let mut out = vec![sqlite_db().await];
    match std::env::var("PAYBRIDGE_TEST_PG_URL") {
        Ok(admin) if !admin.is_empty() => out.push(pg_db(&admin, test).await),
        _ => println!("SKIP postgres part of {test}: PAYBRIDGE_TEST_PG_URL is not set"),
    }
    out
}

pub async fn sqlite_db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paybridge.db");
    Db {
        label: "sqlite",
        url: format!("sqlite://{}", path.display()),
        clock: Arc::new(ManualClock::new(T0)),
        _dir: Some(dir),
        pg_drop: None,
    }
}

/// Creates a uniquely named database; an unreachable server fails the test.
pub async fn pg_db(admin: &str, test: &str) -> Db {
    let mut conn = PgConnection::connect(admin).await.unwrap_or_else(|e| {
        panic!("PAYBRIDGE_TEST_PG_URL is set but PostgreSQL is unreachable: {e}")
    });
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    let name = format!("pbtest_{short}_{}", uuid::Uuid::new_v4().simple());
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    Db {
        label: "postgres",
        url: with_database(admin, &name),
        clock: Arc::new(ManualClock::new(T0)),
        _dir: None,
        pg_drop: Some((admin.to_string(), name)),
    }
}

/// The admin URL with its database path replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[host_start..].find('/') {
        Some(slash) => &base[..host_start + slash],
        None => base,
    };
    // Validate the result parses as connection options.
    let out = format!("{base}/{name}{query}");
    sqlx::postgres::PgConnectOptions::from_str(&out).unwrap();
    out
}

pub fn audit() -> Audit {
    Audit::new("test", "test")
}

pub fn new_payment(account: &str, out_trade_no: &str, amount: i64) -> NewPayment {
    NewPayment {
        mode: Mode::Sandbox,
        account: account.to_string(),
        channel: Channel::Alipay,
        scene: Scene::Qr,
        out_trade_no: out_trade_no.to_string(),
        amount: Fen(amount),
        currency: "CNY".to_string(),
        subject: "test order".to_string(),
        description: None,
        expires_at: Some(T0 + 15 * 60_000),
        metadata: serde_json::json!({"order": out_trade_no}),
        cashier_id: None,
    }
}

/// A request's claim on `key` (from [`paybridge_store::new_id`], so nobody used it before:
/// every seeded row is its own request).
fn claim(key: &str) -> KeyClaim<'_> {
    KeyClaim {
        scope: "test",
        key,
        request_hash: "test-request",
        lock_ms: 60_000,
    }
}

/// T1 of a create under a fresh `Idempotency-Key`: the payment in `created`, or the store's
/// refusal.
pub async fn begin_new(store: &Store, new: NewPayment) -> Result<Payment, StoreError> {
    let key = paybridge_store::new_id("idem");
    match store
        .begin_payment(&claim(&key), new, &audit(), |_| Vec::new())
        .await?
    {
        BeginPayment::Started(p) => Ok(*p),
        BeginPayment::Key(state) => panic!("a fresh key is already {state:?}"),
    }
}

/// A `created` payment of `amount` fen on `account`.
pub async fn seed_payment(
    store: &Store,
    account: &str,
    out_trade_no: &str,
    amount: i64,
) -> Payment {
    begin_new(store, new_payment(account, out_trade_no, amount))
        .await
        .unwrap()
}

/// The provider's word on a payment, without an amount to check against the order.
pub fn provider_says(status: ProviderPaymentStatus) -> PaymentObservation {
    PaymentObservation::Provider {
        status,
        amount: None,
    }
}

/// The provider's word on a refund, without an amount to check.
pub fn provider_says_refund(status: ProviderRefundStatus) -> RefundObservation {
    RefundObservation::Provider {
        status,
        amount: None,
    }
}

/// The observation a test means by "mark it `to`".
pub fn observation_to(to: PaymentStatus) -> PaymentObservation {
    match to {
        PaymentStatus::Pending => PaymentObservation::Accepted,
        PaymentStatus::Paid => provider_says(ProviderPaymentStatus::Paid),
        PaymentStatus::Closed => PaymentObservation::Closed,
        PaymentStatus::Failed => provider_says(ProviderPaymentStatus::Failed),
        PaymentStatus::Created | PaymentStatus::PartiallyRefunded | PaymentStatus::Refunded => {
            panic!("no observation moves a payment to {to}: it starts there or refunds move it")
        }
    }
}

pub fn render_payment(p: &Payment) -> Value {
    json!({"id": p.id, "status": p.status.as_str()})
}

pub fn render_refund(r: &Refund) -> Value {
    json!({"id": r.id, "payment_id": r.payment_id, "status": r.status.as_str()})
}

fn event_to(kind: &str, endpoints: &[&str]) -> EventSpec {
    EventSpec {
        kind: kind.to_string(),
        endpoints: endpoints.iter().map(|e| e.to_string()).collect(),
    }
}

/// What the gateway's `decision_plan`/`snapshot_plan` make of `obs` on `cur` (jobs and timeline
/// aside): core's decision, its event delivered to `endpoints`, the columns the provider `said`
/// (unless they contradict the order), the late flag, and for a payment becoming paid its time
/// and amount.
pub fn payment_plan(
    now: i64,
    cur: &Payment,
    obs: PaymentObservation,
    said: &PaymentPatch,
    endpoints: &[&str],
) -> PaymentPlan {
    let d = decide_payment(cur.status, cur.amount, obs);
    let mut plan = PaymentPlan::new(audit());
    plan.to = d.to;
    plan.via = d.via;
    plan.event = d.event.map(|e| event_to(e.as_str(), endpoints));
    if d.mismatch.is_none() {
        plan.patch = said.clone();
    }
    if d.late {
        plan.patch.late_payment = Some(true);
    }
    if d.to == Some(PaymentStatus::Paid) {
        let amount = match obs {
            PaymentObservation::Provider {
                amount: Some(a), ..
            } => a,
            _ => cur.amount,
        };
        plan.patch.paid_at = Some(now);
        plan.patch.paid_amount = Some(amount);
    }
    plan
}

/// One unit of work applying `obs` (with the columns the provider `said`) to payment `id`;
/// `None` when there is no such payment.
pub async fn observe_with(
    store: &Store,
    id: &str,
    obs: PaymentObservation,
    said: &PaymentPatch,
    endpoints: &[&str],
) -> Option<PaymentApplied> {
    let now = store.now_ms();
    store
        .apply_payment(id, None, render_payment, |cur| {
            payment_plan(now, cur, obs, said, endpoints)
        })
        .await
        .unwrap()
}

/// [`observe_with`] on an existing payment, events delivered to [`HOOK`].
pub async fn observe(store: &Store, id: &str, obs: PaymentObservation) -> PaymentApplied {
    observe_with(store, id, obs, &PaymentPatch::default(), &[HOOK])
        .await
        .unwrap_or_else(|| panic!("no payment {id}"))
}

/// Moves payment `id` to `to` by the observation that means it; panics when it does not get
/// there.
pub async fn mark(store: &Store, id: &str, to: PaymentStatus) -> Payment {
    let applied = observe(store, id, observation_to(to)).await;
    assert_eq!(applied.payment.status, to, "payment {id}");
    applied.payment
}

/// T1 of a refund under a fresh `Idempotency-Key`.
pub async fn request_refund(
    store: &Store,
    payment_id: &str,
    out_refund_no: &str,
    amount: i64,
) -> Result<BeginRefund, StoreError> {
    let new = NewRefund {
        payment_id: payment_id.to_string(),
        out_refund_no: out_refund_no.to_string(),
        amount: Fen(amount),
        reason: None,
    };
    let key = paybridge_store::new_id("idem");
    store
        .begin_refund(&claim(&key), new, &audit(), |_, _| Vec::new())
        .await
}

/// A new `pending` refund of `amount` fen on a paid payment.
pub async fn seed_refund(
    store: &Store,
    payment_id: &str,
    out_refund_no: &str,
    amount: i64,
) -> Refund {
    match request_refund(store, payment_id, out_refund_no, amount)
        .await
        .unwrap()
    {
        BeginRefund::Started(r) => r,
        other => panic!("refund {out_refund_no} was not created: {other:?}"),
    }
}

/// What the gateway's `refund_plan` makes of `obs` on `r` (jobs aside): core's decision, its
/// event delivered to `endpoints`, and with a new state the columns the provider `said`, the
/// failure reason or the success time.
pub fn refund_plan(
    now: i64,
    r: &Refund,
    obs: RefundObservation,
    said: &RefundPatch,
    endpoints: &[&str],
) -> RefundPlan {
    let d = decide_refund(r.status, r.amount, obs);
    let mut plan = RefundPlan::new(audit());
    plan.to = d.to;
    plan.event = d.event.map(|e| event_to(e.as_str(), endpoints));
    match d.to {
        Some(RefundStatus::Succeeded) => {
            plan.patch = said.clone();
            plan.patch.succeeded_at = Some(now);
        }
        Some(RefundStatus::Failed) => {
            plan.patch = said.clone();
            plan.patch.failure_reason = said.failure_reason.clone().or(Some("failed".into()));
        }
        Some(RefundStatus::Pending) | None => {}
    }
    plan
}

/// One unit of work applying `obs` to refund `id`; `None` when there is no such refund.
pub async fn observe_refund_with(
    store: &Store,
    id: &str,
    obs: RefundObservation,
    said: &RefundPatch,
    endpoints: &[&str],
) -> Option<RefundApplied> {
    let now = store.now_ms();
    store
        .apply_refund(id, None, render_refund, |_, r| {
            refund_plan(now, r, obs, said, endpoints)
        })
        .await
        .unwrap()
}

/// [`observe_refund_with`] on an existing refund, events delivered to [`HOOK`].
pub async fn observe_refund(store: &Store, id: &str, obs: RefundObservation) -> RefundApplied {
    observe_refund_with(store, id, obs, &RefundPatch::default(), &[HOOK])
        .await
        .unwrap_or_else(|| panic!("no refund {id}"))
}
