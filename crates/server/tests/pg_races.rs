//! PostgreSQL race suite (issue 9): many concurrent requests over real HTTP against one payment
//! (refunds sharing one `out_refund_no`, refunds with distinct ones, refunds racing the paid
//! notification and a close). No 5xx, never more refunded than paid, one refund per
//! `out_refund_no`, one event per transition, and no deadlock in `pg_stat_database`.
//! Skipped (with a message) when `PAYBRIDGE_TEST_PG_URL` is unset.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::scripted::*;
use common::*;
use paybridge_core::RefundStatus;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

async fn pg_env(test: &str) -> Option<Env> {
    match std::env::var("PAYBRIDGE_TEST_PG_URL") {
        Ok(admin) if !admin.is_empty() => Some(env_on(db::pg_db(&admin, test).await).await),
        _ => {
            println!("SKIP {test}: PAYBRIDGE_TEST_PG_URL is not set (PostgreSQL-only suite)");
            None
        }
    }
}

async fn deadlocks(env: &Env) -> i64 {
    let mut conn = PgConnection::connect(&env._db.url).await.unwrap();
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

async fn post_status(base: String, path: String, key: String, idem: String, body: Value) -> u16 {
    let (s, b, _) = post(&base, &path, &key, Some(&idem), &body).await;
    assert!(s < 500, "{path}: {s} {b}");
    s
}

async fn paid(env: &Env, no: &str, amount: i64) -> String {
    let p = create(env, no, amount).await;
    let (s, _) = notify(env, &paid_notice(no, amount, &format!("n-{no}")), None).await;
    assert_eq!(s, 200);
    p["id"].as_str().unwrap().to_string()
}

/// Refunds (succeeded + pending) of a payment never exceed what was paid; one refund per
/// `out_refund_no`; one `refund.succeeded` event per succeeded refund and one event per kind
/// of payment transition.
async fn check_invariants(env: &Env, id: &str) {
    let store = &env.inst.gw.store;
    let p = store.get_payment(id).await.unwrap().unwrap();
    let refunds = store.list_refunds(id).await.unwrap();
    let held: i64 = refunds
        .iter()
        .filter(|r| matches!(r.status, RefundStatus::Succeeded | RefundStatus::Pending))
        .map(|r| r.amount.0)
        .sum();
    let paid = p.paid_amount.map_or(0, |a| a.0);
    assert!(held <= paid, "{held} refunded of {paid} paid");
    let nos: BTreeSet<_> = refunds.iter().map(|r| r.out_refund_no.clone()).collect();
    assert_eq!(nos.len(), refunds.len(), "one refund per out_refund_no");
    let events = store.list_payment_events(id).await.unwrap();
    let succeeded = refunds
        .iter()
        .filter(|r| r.status == RefundStatus::Succeeded)
        .count();
    let refund_events = events
        .iter()
        .filter(|e| e.kind == "refund.succeeded")
        .count();
    assert_eq!(refund_events, succeeded);
    let mut seen = BTreeSet::new();
    for e in events.iter().filter(|e| e.kind.starts_with("payment.")) {
        assert!(seen.insert(e.kind.clone()), "twice: {}", e.kind);
    }
}

#[tokio::test]
async fn concurrent_refunds_sharing_one_out_refund_no() {
    let Some(env) = pg_env("race_shared_no").await else {
        return;
    };
    let before = deadlocks(&env).await;
    let id = paid(&env, "race-1", 1000).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        tasks.push(tokio::spawn(post_status(
            env.inst.base.clone(),
            format!("/v1/payments/{id}/refunds"),
            env.keys.sandbox_all.clone(),
            format!("shared-{i}"),
            json!({"amount": 300, "out_refund_no": "rf-shared"}),
        )));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let refunds = env.inst.gw.store.list_refunds(&id).await.unwrap();
    assert_eq!(refunds.len(), 1, "{refunds:?}");
    check_invariants(&env, &id).await;
    assert_eq!(deadlocks(&env).await, before, "deadlocks");
}

#[tokio::test]
async fn concurrent_refunds_with_distinct_out_refund_no() {
    let Some(env) = pg_env("race_distinct_no").await else {
        return;
    };
    let before = deadlocks(&env).await;
    let id = paid(&env, "race-2", 1000).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        tasks.push(tokio::spawn(post_status(
            env.inst.base.clone(),
            format!("/v1/payments/{id}/refunds"),
            env.keys.sandbox_all.clone(),
            format!("distinct-{i}"),
            json!({"amount": 50, "out_refund_no": format!("rf-{i}")}),
        )));
    }
    let mut created = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), 200..=202) {
            created += 1;
        }
    }
    // 40 asks of 50 on 1000 paid: exactly 20 fit.
    assert_eq!(created, 20);
    check_invariants(&env, &id).await;
    let p = env.inst.gw.store.get_payment(&id).await.unwrap().unwrap();
    assert_eq!(p.refunded_amount.0, 1000);
    assert_eq!(deadlocks(&env).await, before, "deadlocks");
}

#[tokio::test]
async fn refunds_race_settlement_and_close() {
    let Some(env) = pg_env("race_mixed").await else {
        return;
    };
    let before = deadlocks(&env).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let p = create(&env, &format!("race-m{n}"), 600).await;
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    let mut tasks = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let no = format!("race-m{n}");
        for i in 0..4 {
            let raw = serde_json::to_vec(&paid_notice(&no, 600, &format!("nm-{n}"))).unwrap();
            let base = env.inst.base.clone();
            tasks.push(tokio::spawn(async move {
                let r = client()
                    .post(format!("{base}/notify/alipay/ali-test"))
                    .header("x-sig", sign_body(&raw))
                    .body(raw)
                    .send()
                    .await
                    .unwrap();
                let s = r.status().as_u16();
                assert!(s < 500, "notification answered {s}");
                s
            }));
            tasks.push(tokio::spawn(post_status(
                env.inst.base.clone(),
                format!("/v1/payments/{id}/refunds"),
                env.keys.sandbox_all.clone(),
                format!("m-{n}-{i}"),
                json!({"amount": 200, "out_refund_no": format!("rm-{n}-{i}")}),
            )));
            tasks.push(tokio::spawn(post_status(
                env.inst.base.clone(),
                format!("/v1/payments/{id}/close"),
                env.keys.sandbox_all.clone(),
                format!("c-{n}-{i}"),
                json!({}),
            )));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let gw = &env.inst.gw;
    env._db.clock.advance(60_000);
    gw.run_jobs_once(gw.now_ms(), 100).await.unwrap();
    for id in &ids {
        check_invariants(&env, id).await;
    }
    assert_eq!(deadlocks(&env).await, before, "deadlocks");
}
