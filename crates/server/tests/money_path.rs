//! Regression tests of issue 9, one per finding, against the real router over loopback with the
//! scripted provider (the sandbox covers finding 5 in `sandbox_e2e.rs`, where the real WeChat
//! APIv3 channel refuses barcode). Runs on SQLite and, when `PAYBRIDGE_TEST_PG_URL` is set, on
//! PostgreSQL. Time moves only through the store clock; jobs run when the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scripted::*;
use common::*;
use paybridge_core::channel::ProviderPaymentStatus;
use paybridge_server::service::reconcile::LatePaymentPolicy;
use serde_json::{json, Value};

/// A POST whose connection may die with the request (the gateway "crashes" inside it).
async fn post_raw(
    base: &str,
    path: &str,
    key: &str,
    idem: &str,
    body: &Value,
) -> Option<(u16, String)> {
    let resp = client()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .header("Idempotency-Key", idem)
        .json(body)
        .send()
        .await
        .ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().await.ok()?))
}

fn order(no: &str, amount: i64) -> Value {
    json!({"channel": "alipay", "scene": "pc", "amount": amount,
           "out_trade_no": no, "subject": "Test order"})
}

async fn job_kinds(env: &Env, payment_id: &str) -> Vec<String> {
    env.inst
        .gw
        .store
        .list_payment_jobs(payment_id)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.kind)
        .collect()
}

async fn event_kinds(env: &Env, payment_id: &str) -> Vec<String> {
    env.inst
        .gw
        .store
        .list_payment_events(payment_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// Past the key lock of a request that died (15 s) and the recovery delay (40 s).
const AFTER_RECOVERY: i64 = 41_000;

async fn paid_payment(env: &Env, no: &str, amount: i64) -> String {
    let p = create(env, no, amount).await;
    let (s, _) = notify(env, &paid_notice(no, amount, &format!("n-{no}")), None).await;
    assert_eq!(s, 200);
    p["id"].as_str().unwrap().to_string()
}

/// Finding 1: the create dies inside the provider call. The payment and its recovery job were
/// written before the call; the same-key retry resumes it (never 409) and jobs settle it.
#[tokio::test]
async fn f1_create_that_dies_in_the_provider_call_is_recoverable() {
    for env in envs("mp_f1").await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        *env.provider.die_in_create.lock().unwrap() = true;
        let first = post_raw(base, "/v1/payments", k, "k-f1", &order("ord-f1", 300)).await;
        assert!(
            first.as_ref().is_none_or(|(s, _)| *s >= 500),
            "the request died, it cannot have answered: {first:?}"
        );
        let store = &env.inst.gw.store;
        let p = store
            .get_payment_by_out_trade_no("ali-test", "ord-f1")
            .await
            .unwrap()
            .expect("the payment is written before the provider call");
        assert_eq!(p.status.as_str(), "created");
        assert!(
            job_kinds(&env, &p.id)
                .await
                .contains(&"payment.recover".to_string()),
            "a recovery job exists before the provider answered: {:?}",
            job_kinds(&env, &p.id).await
        );

        *env.provider.die_in_create.lock().unwrap() = false;
        env._db.clock.advance(16_000);
        let (s, again) = post_raw(base, "/v1/payments", k, "k-f1", &order("ord-f1", 300))
            .await
            .unwrap();
        assert!(matches!(s, 200..=202), "{s} {again}");
        let again: Value = serde_json::from_str(&again).unwrap();
        assert_eq!(again["id"], p.id.as_str());
        assert!(again["client_action"].is_object(), "resumed: {again}");

        env.provider
            .query
            .lock()
            .unwrap()
            .insert("ord-f1".into(), ProviderPaymentStatus::Paid);
        env._db.clock.advance(AFTER_RECOVERY);
        let gw = &env.inst.gw;
        assert!(gw.run_jobs_once(gw.now_ms(), 20).await.unwrap() >= 1);
        let (_, now) = get(base, &format!("/v1/payments/{}", p.id), k).await;
        assert_eq!(now["status"], "paid");
        assert_eq!(event_kinds(&env, &p.id).await, vec!["payment.paid"]);
    }
}

/// Finding 2: the refund dies inside the provider call. The pending refund has a job that asks
/// the provider, scheduled before the call; the same-key retry answers with that refund.
#[tokio::test]
async fn f2_refund_that_dies_in_the_provider_call_is_recoverable() {
    for env in envs("mp_f2").await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let id = paid_payment(&env, "ord-f2", 500).await;
        *env.provider.die_in_refund.lock().unwrap() = true;
        let path = format!("/v1/payments/{id}/refunds");
        let body = json!({"amount": 200});
        let first = post_raw(base, &path, k, "r-f2", &body).await;
        assert!(first.as_ref().is_none_or(|(s, _)| *s >= 500), "{first:?}");
        let store = &env.inst.gw.store;
        let refunds = store.list_refunds(&id).await.unwrap();
        assert_eq!(refunds.len(), 1);
        let r = &refunds[0];
        assert_eq!(r.status.as_str(), "pending");
        let jobs = store.list_payment_jobs(&id).await.unwrap();
        assert!(
            jobs.iter()
                .any(|j| j.refund_id.as_deref() == Some(r.id.as_str())),
            "a job watches the refund before the provider answered: {jobs:?}"
        );

        *env.provider.die_in_refund.lock().unwrap() = false;
        env._db.clock.advance(16_000);
        let (s, again) = post_raw(base, &path, k, "r-f2", &body).await.unwrap();
        assert!(matches!(s, 200..=202), "{s} {again}");
        let again: Value = serde_json::from_str(&again).unwrap();
        assert_eq!(again["id"], r.id.as_str());

        env._db.clock.advance(AFTER_RECOVERY);
        let gw = &env.inst.gw;
        gw.run_jobs_once(gw.now_ms(), 20).await.unwrap();
        let (_, r) = get(base, &format!("/v1/refunds/{}", r.id), k).await;
        assert_eq!(r["status"], "succeeded");
        let (_, p) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(p["refunded_amount"], 200);
        let kinds = event_kinds(&env, &id).await;
        assert_eq!(
            kinds.iter().filter(|k| *k == "refund.succeeded").count(),
            1,
            "{kinds:?}"
        );
    }
}

/// Finding 3: a definite refusal is the key's answer, replayed byte for byte even once the
/// provider would accept; an unknown outcome never turns the retry into `409`.
#[tokio::test]
async fn f3_refusals_replay_and_unknown_outcomes_never_409() {
    for env in envs("mp_f3").await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        *env.provider.create_refused.lock().unwrap() = Some("ACQ.TRADE_HAS_SUCCESS".into());
        // Asked after the refusal, the provider has no such order: the refusal is final.
        env.provider
            .query
            .lock()
            .unwrap()
            .insert("ord-f3".into(), ProviderPaymentStatus::NotFound);
        let (s1, b1) = post_raw(base, "/v1/payments", k, "k-f3", &order("ord-f3", 100))
            .await
            .unwrap();
        assert!((400..600).contains(&s1), "{s1} {b1}");
        assert!(b1.contains("ACQ.TRADE_HAS_SUCCESS"), "{b1}");
        *env.provider.create_refused.lock().unwrap() = None;
        let (s2, b2) = post_raw(base, "/v1/payments", k, "k-f3", &order("ord-f3", 100))
            .await
            .unwrap();
        assert_eq!((s2, b2.as_bytes()), (s1, b1.as_bytes()));
        let creates = env
            .provider
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == "create:ord-f3")
            .count();
        assert_eq!(creates, 1, "the replay does not ask the provider again");

        *env.provider.create_unknown.lock().unwrap() = true;
        let (s, first) = post_raw(base, "/v1/payments", k, "k-f3u", &order("ord-f3u", 100))
            .await
            .unwrap();
        assert_eq!(s, 202, "{first}");
        let first: Value = serde_json::from_str(&first).unwrap();
        *env.provider.create_unknown.lock().unwrap() = false;
        for _ in 0..2 {
            let (s, again) = post_raw(base, "/v1/payments", k, "k-f3u", &order("ord-f3u", 100))
                .await
                .unwrap();
            assert_ne!(s, 409, "{again}");
            assert!(s < 500, "{s} {again}");
            let again: Value = serde_json::from_str(&again).unwrap();
            assert_eq!(again["id"], first["id"]);
        }
    }
}

/// Finding 4: a request that fails validation stores nothing against its key.
#[tokio::test]
async fn f4_validation_failure_leaves_the_key_unused() {
    for env in envs("mp_f4").await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let mut bad = order("ord-f4", 100);
        bad["return_url"] = json!("ftp://shop.example/back");
        let (s, b) = post_raw(base, "/v1/payments", k, "k-f4", &bad)
            .await
            .unwrap();
        assert_eq!(s, 400, "{b}");
        assert!(b.contains("validation_failed"), "{b}");
        assert!(env
            .inst
            .gw
            .store
            .get_payment_by_out_trade_no("ali-test", "ord-f4")
            .await
            .unwrap()
            .is_none());
        let (s, b) = post_raw(base, "/v1/payments", k, "k-f4", &order("ord-f4", 100))
            .await
            .unwrap();
        assert_eq!(s, 201, "{b}");
    }
}

/// Finding 6: the notification overtakes the barcode answer. The path still goes through
/// `pending`, and the create answer carries the client action.
#[tokio::test]
async fn f6_barcode_notification_before_the_answer_keeps_pending_and_client_action() {
    for env in envs("mp_f6").await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let raw = serde_json::to_vec(&paid_notice("ord-f6", 700, "n-f6")).unwrap();
        *env.provider.notify_during_create.lock().unwrap() =
            Some((format!("{base}/notify/alipay/ali-test"), raw));
        let mut body = order("ord-f6", 700);
        body["scene"] = json!("barcode");
        body["auth_code"] = json!("287000000000000001");
        let (s, p) = post_raw(base, "/v1/payments", k, "k-f6", &body)
            .await
            .unwrap();
        assert!(matches!(s, 200..=201), "{s} {p}");
        let p: Value = serde_json::from_str(&p).unwrap();
        assert_eq!(p["status"], "paid", "{p}");
        assert!(p["client_action"].is_object(), "{p}");
        let id = p["id"].as_str().unwrap();
        let path: Vec<String> = env
            .inst
            .gw
            .store
            .list_audit(id)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.to_status)
            .collect();
        assert_eq!(path, vec!["created", "pending", "paid"]);
        assert_eq!(event_kinds(&env, id).await, vec!["payment.paid"]);
    }
}

/// Finding 8: a close the provider never saw keeps a watch until the order's expiry; a buyer
/// who pays meanwhile is found by the watch.
#[tokio::test]
async fn f8_close_of_an_unseen_order_keeps_watching() {
    for env in envs("mp_f8").await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let p = create(&env, "ord-f8", 900).await;
        let id = p["id"].as_str().unwrap();
        *env.provider.close_not_found.lock().unwrap() = true;
        let (s, c, _) = post(
            base,
            &format!("/v1/payments/{id}/close"),
            k,
            Some("c-f8"),
            &json!({}),
        )
        .await;
        assert_eq!((s, c["status"].as_str()), (200, Some("closed")), "{c}");
        let store = &env.inst.gw.store;
        let watch = store
            .list_payment_jobs(id)
            .await
            .unwrap()
            .into_iter()
            .find(|j| j.kind == "payment.close_watch")
            .expect("a close watch job");
        assert_eq!(watch.state.as_str(), "scheduled");

        // The buyer scans the old QR code and pays at the provider.
        env.provider
            .query
            .lock()
            .unwrap()
            .insert("ord-f8".into(), ProviderPaymentStatus::Paid);
        let gw = &env.inst.gw;
        env._db.clock.advance(watch.run_at - gw.now_ms() + 1);
        assert!(gw.run_jobs_once(gw.now_ms(), 20).await.unwrap() >= 1);
        let (_, now) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(now["status"], "paid", "{now}");
        assert_eq!(now["late_payment"], true, "{now}");
        assert_eq!(
            event_kinds(&env, id).await,
            vec!["payment.closed", "payment.paid"]
        );
    }
}

/// The refund calls that reached the provider, in order.
fn refund_calls(env: &Env) -> Vec<String> {
    env.provider
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.starts_with("refund:"))
        .cloned()
        .collect()
}

/// Finding 9a: the late-payment refund is a job, and a failed provider call is retried.
#[tokio::test]
async fn f9_late_payment_refund_is_a_retried_job() {
    for env in envs_with("mp_f9", |c| c.late_payment = LatePaymentPolicy::Refund).await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let gw = &env.inst.gw;
        assert_eq!(gw.late_payment_policy(), LatePaymentPolicy::Refund);
        let p = create(&env, "ord-f9", 800).await;
        let id = p["id"].as_str().unwrap();
        let (s, _, _) = post(
            base,
            &format!("/v1/payments/{id}/close"),
            k,
            Some("c-f9"),
            &json!({}),
        )
        .await;
        assert_eq!(s, 200);
        // The provider call of the policy's refund times out.
        *env.provider.refund_unknown.lock().unwrap() = true;
        let (s, _) = notify(&env, &paid_notice("ord-f9", 800, "n-f9"), None).await;
        assert_eq!(s, 200);
        let calls = |env: &Env| refund_calls(env).len();
        assert_eq!(calls(&env), 0, "no refund inline in the notification");
        assert!(job_kinds(&env, id)
            .await
            .contains(&"payment.late_refund".to_string()));

        gw.run_jobs_once(gw.now_ms(), 20).await.unwrap();
        assert_eq!(calls(&env), 1);
        let (_, now) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(now["refunded_amount"], 0, "{now}");

        *env.provider.refund_unknown.lock().unwrap() = false;
        env._db.clock.advance(AFTER_RECOVERY);
        gw.run_jobs_once(gw.now_ms(), 20).await.unwrap();
        let (_, now) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(
            (now["status"].as_str(), now["refunded_amount"].as_i64()),
            (Some("refunded"), Some(800)),
            "{now}"
        );
    }
}

/// Finding 9c: a retryable refusal of the late-payment refund (the balance short, the provider
/// busy) is tried again as a new refund; a final refusal is said once and not retried.
#[tokio::test]
async fn f9_late_payment_refund_retries_a_retryable_refusal() {
    for env in envs_with("mp_f9c", |c| c.late_payment = LatePaymentPolicy::Refund).await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let gw = &env.inst.gw;
        for (no, retryable) in [("ord-f9c", true), ("ord-f9d", false)] {
            let p = create(&env, no, 700).await;
            let id = p["id"].as_str().unwrap().to_string();
            let (s, _, _) = post(
                base,
                &format!("/v1/payments/{id}/close"),
                k,
                Some(&format!("c-{no}")),
                &json!({}),
            )
            .await;
            assert_eq!(s, 200);
            env.provider
                .refund_refusals
                .lock()
                .unwrap()
                .push_back(("NOTENOUGH".into(), retryable));
            let before = refund_calls(&env).len();
            let (s, _) = notify(&env, &paid_notice(no, 700, &format!("n-{no}")), None).await;
            assert_eq!(s, 200);
            gw.run_jobs_once(gw.now_ms(), 20).await.unwrap();
            assert_eq!(refund_calls(&env).len(), before + 1, "{no}: first attempt");
            env._db.clock.advance(3_600_000);
            gw.run_jobs_once(gw.now_ms(), 20).await.unwrap();
            env._db.clock.advance(3_600_000);
            gw.run_jobs_once(gw.now_ms(), 20).await.unwrap();
            let calls = refund_calls(&env);
            let (_, now) = get(base, &format!("/v1/payments/{id}"), k).await;
            let (_, refunds) = get(base, &format!("/v1/payments/{id}/refunds"), k).await;
            let statuses: Vec<_> = refunds["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["status"].as_str().unwrap().to_string())
                .collect();
            if retryable {
                // The second attempt is another refund, and it went through.
                assert_eq!(calls.len(), before + 2, "{calls:?}");
                assert_ne!(calls[before], calls[before + 1]);
                assert_eq!(now["refunded_amount"], 700, "{now}");
                assert_eq!(statuses.len(), 2, "{refunds}");
                assert!(statuses.contains(&"failed".to_string()));
                assert!(statuses.contains(&"succeeded".to_string()));
            } else {
                assert_eq!(calls.len(), before + 1, "final: not retried {calls:?}");
                assert_eq!(now["refunded_amount"], 0, "{now}");
                assert_eq!(statuses, vec!["failed".to_string()]);
            }
        }
    }
}

/// Finding 9b: the retention job purges idempotency keys past the retention, as configured
/// (`[idempotency] retention_hours`; two hours here, 24 by default).
#[tokio::test]
async fn f9_retention_purges_old_idempotency_keys() {
    const HOUR: i64 = 3_600_000;
    for env in envs_with("mp_f9r", |c| c.idempotency_retention_ms = 2 * HOUR).await {
        let (base, k) = (&env.inst.base, &env.keys.sandbox_all);
        let gw = &env.inst.gw;
        assert_eq!(gw.idempotency_retention_ms(), 2 * HOUR);
        let (s, _) = post_raw(base, "/v1/payments", k, "k-f9r", &order("ord-f9r", 100))
            .await
            .unwrap();
        assert_eq!(s, 201);
        // The key is bound to its first request...
        let (s, b) = post_raw(base, "/v1/payments", k, "k-f9r", &order("ord-f9r2", 100))
            .await
            .unwrap();
        assert_eq!(s, 422, "{b}");
        gw.ensure_recurring_jobs().await.unwrap();
        // ...while the retention lasts, though the retention job runs...
        env._db.clock.advance(HOUR + 1);
        gw.run_jobs_once(gw.now_ms(), 50).await.unwrap();
        let (s, b) = post_raw(base, "/v1/payments", k, "k-f9r", &order("ord-f9r2", 100))
            .await
            .unwrap();
        assert_eq!(s, 422, "{b}");
        // ...until it has passed and the job (hourly) purged it.
        env._db.clock.advance(2 * HOUR);
        gw.run_jobs_once(gw.now_ms(), 50).await.unwrap();
        let (s, b) = post_raw(base, "/v1/payments", k, "k-f9r", &order("ord-f9r2", 100))
            .await
            .unwrap();
        assert_eq!(s, 201, "{b}");
    }
}
