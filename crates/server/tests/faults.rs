//! Issue 9 finding 7: a fault of ours (here the database losing a table under the gateway) is
//! answered with the bare `internal` problem, never its detail, and its real cause is logged
//! exactly once, for the money POSTs and for the POSTs behind the plain idempotency wrapper.
//! Once the fault is gone, the merchant's retry with the same key runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;

use common::scripted::*;
use common::*;
use sqlx::{Connection, Executor};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static ERRORS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps every ERROR event, all its fields written out.
struct CaptureErrors;

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
}

impl<S: tracing::Subscriber> Layer<S> for CaptureErrors {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            let mut f = Fields(String::new());
            event.record(&mut f);
            ERRORS.lock().unwrap().push(f.0);
        }
    }
}

fn take_errors() -> Vec<String> {
    std::mem::take(&mut *ERRORS.lock().unwrap())
}

/// Runs `sql` on the test database behind the gateway's back.
async fn behind_the_back(db: &db::Db, sql: &str) {
    if db.is_pg() {
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        c.execute(sql).await.unwrap();
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        c.execute(sql).await.unwrap();
    }
}

#[tokio::test]
async fn a_fault_is_a_bare_500_logged_once_with_its_cause_and_the_retry_runs() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(CaptureErrors))
        .unwrap();
    for d in db::dbs("faults_logged").await {
        let env = env_on(d).await;
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let paid = create(&env, "FAULT-0", 100).await;
        let paid_id = paid["id"].as_str().unwrap().to_string();
        let close_path = format!("/v1/payments/{paid_id}/close");
        let empty = serde_json::json!({});
        let close = || post(base, &close_path, k, Some("fault-close"), &empty);
        take_errors();

        behind_the_back(&env._db, "ALTER TABLE audit_log RENAME TO audit_log_gone").await;
        let order = serde_json::json!({"channel": "alipay", "scene": "pc", "amount": 100,
            "out_trade_no": "FAULT-1", "subject": "Test order"});
        let (s, body, _) = post(base, "/v1/payments", k, Some("fault-1"), &order).await;
        assert_eq!(s, 500, "{body}");
        assert_eq!(body["code"], "internal");
        assert_eq!(body["detail"], "internal error");
        assert!(!body.to_string().contains("audit_log"), "{body}");
        let errors = take_errors();
        assert_eq!(errors.len(), 1, "logged once: {errors:#?}");
        assert!(errors[0].contains("audit_log"), "the cause: {errors:#?}");

        // The idempotency wrapper's POSTs (close) log the same way.
        let (s, body, _) = close().await;
        assert_eq!(s, 500, "{body}");
        assert_eq!(body["code"], "internal");
        let errors = take_errors();
        assert_eq!(errors.len(), 1, "logged once: {errors:#?}");
        assert!(errors[0].contains("audit_log"), "the cause: {errors:#?}");

        // The fault gone, the same key runs the request (nothing was stored against it).
        behind_the_back(&env._db, "ALTER TABLE audit_log_gone RENAME TO audit_log").await;
        let (s, body, _) = post(base, "/v1/payments", k, Some("fault-1"), &order).await;
        assert_eq!(s, 201, "{body}");
        let (s, body, _) = close().await;
        assert_eq!(s, 200, "{body}");
        assert_eq!(body["status"], "closed");
        assert!(take_errors().is_empty());
    }
}
