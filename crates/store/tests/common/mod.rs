//! Test databases: every test runs on a fresh SQLite file in a temp dir, and on a fresh
//! PostgreSQL database when `PAYBRIDGE_TEST_PG_URL` is set (created through that admin URL,
//! dropped afterwards, even when the test panics).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::str::FromStr;
use std::sync::Arc;

use paybridge_core::{Channel, Fen, Mode, Scene};
use paybridge_store::{Audit, ManualClock, NewPayment, Store, StoreOptions};
use sqlx::{Connection, Executor, PgConnection};

pub const T0: i64 = 1_800_000_000_000;

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
    }
}
