//! Outbox feed and webhook deliveries, inbox, idempotency keys, API keys, jobs, call log and
//! timeline, on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};

use common::{audit, dbs, observe_with, provider_says, seed_payment, Db, T0};
use paybridge_core::channel::ProviderPaymentStatus;
use paybridge_core::{Channel, Mode, PaymentStatus};
use paybridge_store::{
    ApiScope, DeliveryAttempt, DeliveryOutcome, DeliveryStatus, IdempotencyBegin, InboxEntry,
    JobState, NewApiKey, NewJob, NewNotification, NewProviderCall, NotificationOutcome,
    PaymentPatch, PaymentPlan, Scheduled, Store, StoreError,
};
use serde_json::json;

const HOOK: &str = "https://merchant.example/hooks";

async fn paid(store: &Store, account: &str, out_trade_no: &str, endpoints: &[&str]) -> String {
    let p = seed_payment(store, account, out_trade_no, 100).await;
    let paid = observe_with(
        store,
        &p.id,
        provider_says(ProviderPaymentStatus::Paid),
        &PaymentPatch::default(),
        endpoints,
    )
    .await
    .unwrap();
    assert!(paid.changed);
    p.id
}

async fn check_feed_and_deliveries(db: &Db) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let account = if i % 2 == 0 { "a" } else { "b" };
        ids.push(
            paid(
                &store,
                account,
                &format!("feed-{i}"),
                &[HOOK, "https://second.example/h"],
            )
            .await,
        );
    }
    // Feed: commit order, cursor continues exactly after the last event, filters apply.
    let mut cursor = None;
    let mut feed = Vec::new();
    loop {
        let page = store
            .list_events(cursor.as_deref(), 3, Mode::Sandbox, None)
            .await
            .unwrap();
        feed.extend(page.events.iter().map(|e| e.payment_id.clone().unwrap()));
        cursor = page.cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(feed, ids, "{}", db.label);
    let empty = store
        .list_events(cursor.as_deref(), 3, Mode::Sandbox, None)
        .await
        .unwrap();
    assert!(empty.events.is_empty() && !empty.has_more);
    assert_eq!(
        empty.cursor, cursor,
        "an empty page keeps the cursor for the next poll"
    );
    let later = paid(&store, "a", "feed-late", &[]).await;
    let next = store
        .list_events(cursor.as_deref(), 3, Mode::Sandbox, None)
        .await
        .unwrap();
    assert_eq!(next.events.len(), 1);
    assert_eq!(next.events[0].payment_id.as_deref(), Some(later.as_str()));
    let only_b = store
        .list_events(None, 100, Mode::Sandbox, Some("b"))
        .await
        .unwrap();
    assert_eq!(only_b.events.len(), 3);
    assert!(store
        .list_events(None, 100, Mode::Live, None)
        .await
        .unwrap()
        .events
        .is_empty());
    assert!(matches!(
        store.list_events(Some("zz"), 3, Mode::Sandbox, None).await,
        Err(StoreError::InvalidCursor)
    ));

    // Deliveries: 14 due; concurrent claimers never share one.
    let now = T0 + 10_000;
    // Two pools: two gateway instances on PostgreSQL, two processes on one SQLite file.
    let stores = [store.clone(), db.open().await];
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = stores[i % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            s.claim_due_deliveries(now, 4, 30_000).await.unwrap()
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().map(|d| d.delivery.id.clone()).collect();
    assert_eq!(
        unique.len(),
        claimed.len(),
        "{}: a delivery claimed twice",
        db.label
    );
    assert_eq!(claimed.len(), 14);
    assert!(
        store
            .claim_due_deliveries(now + 1, 100, 30_000)
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let first = &claimed[0];
    assert_eq!(first.event.id, first.delivery.event_id);
    assert_eq!(first.event.kind, "payment.paid");

    // Outcomes: delivered, retry later, give up.
    let delivered = store
        .record_delivery_attempt(
            &claimed[0].delivery.id,
            &DeliveryAttempt {
                now,
                status_code: Some(200),
                error: None,
                outcome: DeliveryOutcome::Delivered,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (delivered.status, delivered.attempts, delivered.delivered_at),
        (DeliveryStatus::Delivered, 1, Some(now))
    );
    let retry = store
        .record_delivery_attempt(
            &claimed[1].delivery.id,
            &DeliveryAttempt {
                now,
                status_code: Some(500),
                error: Some("HTTP 500".into()),
                outcome: DeliveryOutcome::RetryAt(now + 60_000),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (retry.status, retry.lease_until, retry.last_status_code),
        (DeliveryStatus::Pending, None, Some(500))
    );
    store
        .record_delivery_attempt(
            &claimed[2].delivery.id,
            &DeliveryAttempt {
                now,
                status_code: None,
                error: Some("connect refused".into()),
                outcome: DeliveryOutcome::GiveUp,
            },
        )
        .await
        .unwrap()
        .unwrap();
    // A finished delivery cannot be recorded again.
    assert!(store
        .record_delivery_attempt(
            &claimed[0].delivery.id,
            &DeliveryAttempt {
                now,
                status_code: Some(200),
                error: None,
                outcome: DeliveryOutcome::Delivered
            }
        )
        .await
        .unwrap()
        .is_none());
    // The retry is due at its time; leases of the others (never recorded: their instance died)
    // expire and they come back.
    let again = store
        .claim_due_deliveries(now + 60_000, 100, 30_000)
        .await
        .unwrap();
    assert_eq!(again.len(), 14 - 3 + 1);
    assert!(again
        .iter()
        .any(|d| d.delivery.id == claimed[1].delivery.id));

    // Redeliver: the given-up one and a new endpoint become pending.
    let event_id = claimed[2].delivery.event_id.clone();
    let n = store
        .redeliver(
            &event_id,
            &["https://third.example/h".to_string()],
            now + 70_000,
        )
        .await
        .unwrap();
    assert_eq!(n, 3);
    let ds = store.list_deliveries(&event_id).await.unwrap();
    assert_eq!(ds.len(), 3);
    assert!(ds
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at == now + 70_000));
    assert!(matches!(
        store.redeliver("evt_nope", &[], now).await,
        Err(StoreError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_feed_and_webhook_deliveries() {
    for db in dbs("feed_and_deliveries").await {
        check_feed_and_deliveries(&db).await;
    }
}

async fn check_inbox(db: &Db) {
    let store = db.open().await;
    let raw = NewNotification {
        channel: Channel::Alipay,
        account: "alipay_main".into(),
        path: "/notify/alipay/alipay_main".into(),
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("x-dup".into(), "1".into()),
            ("x-dup".into(), "2".into()),
        ],
        body: b"notify_id=abc&sign=\xff\x00".to_vec(),
        remote_addr: Some("203.0.113.7".into()),
    };
    // A forged one is kept with its reason and marks nothing as seen.
    let bad = NotificationOutcome {
        verified: false,
        outcome: "unverified".into(),
        reason: Some("signature does not verify with key serial 42".into()),
        notify_id: Some("zzz".into()),
        payment_id: None,
    };
    let forged = store.record_notification(&raw, &bad).await.unwrap();
    let f = store.get_notification(&forged).await.unwrap().unwrap();
    assert_eq!(
        (f.headers.clone(), f.body.clone()),
        (raw.headers.clone(), raw.body.clone()),
        "{}",
        db.label
    );
    assert_eq!(
        (
            f.verified,
            f.outcome.as_deref(),
            f.reason.as_deref(),
            f.received_at,
            f.processed_at
        ),
        (
            Some(false),
            Some("unverified"),
            Some("signature does not verify with key serial 42"),
            T0,
            Some(T0)
        )
    );
    assert!(!store.notification_seen("alipay_main", "zzz").await.unwrap());

    // A verified one is recorded by the unit of work that applies it.
    let pay = seed_payment(&store, "alipay_main", "inbox-1", 100).await;
    let apply = |to: Option<PaymentStatus>, mismatch: Option<&str>| {
        let store = store.clone();
        let pay_id = pay.id.clone();
        let mut entry = InboxEntry::new(raw.clone(), Some("abc".into()));
        entry.mismatch = mismatch.map(str::to_string);
        async move {
            store
                .apply_payment(
                    &pay_id,
                    None,
                    |p| json!({"id": p.id}),
                    move |_| {
                        let mut plan = PaymentPlan::new(audit());
                        plan.to = to;
                        plan.inbox = Some(entry);
                        plan
                    },
                )
                .await
        }
    };
    let first = apply(Some(PaymentStatus::Pending), None)
        .await
        .unwrap()
        .unwrap();
    let first = first.inbox.unwrap();
    assert_eq!(first.outcome, "applied");
    assert!(store.notification_seen("alipay_main", "abc").await.unwrap());
    assert!(!store
        .notification_seen("other_account", "abc")
        .await
        .unwrap());
    let again = apply(None, None).await.unwrap().unwrap().inbox.unwrap();
    assert_eq!(again.outcome, "duplicate");
    let off = apply(None, Some("amount 1 fen, ours 100 fen"))
        .await
        .unwrap()
        .unwrap()
        .inbox
        .unwrap();
    assert_eq!(
        (off.outcome, off.reason.as_deref()),
        ("mismatch", Some("amount 1 fen, ours 100 fen"))
    );
    let stored = store.get_notification(&off.id).await.unwrap().unwrap();
    assert_eq!(
        (
            stored.verified,
            stored.notify_id,
            stored.payment_id.as_deref()
        ),
        (Some(true), None, Some(pay.id.as_str())),
        "a mismatch is linked to the order and remembers no notify id"
    );
    // A unit that fails records nothing: the notification and its effects commit together.
    assert!(matches!(
        apply(Some(PaymentStatus::Refunded), None).await,
        Err(StoreError::Invariant(_))
    ));
    let for_payment = store.list_payment_notifications(&pay.id).await.unwrap();
    assert_eq!(
        for_payment.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        vec![first.id.clone(), again.id.clone(), off.id.clone()]
    );
    assert_eq!(
        store
            .list_recent_notifications(Some("alipay_main"), 10)
            .await
            .unwrap()
            .len(),
        4
    );

    // Retention: unverified copies go first, then everything with its dedup rows.
    assert_eq!(store.purge_notifications(T0 + 1, T0).await.unwrap(), 1);
    assert!(store.get_notification(&forged).await.unwrap().is_none());
    assert!(store.notification_seen("alipay_main", "abc").await.unwrap());
    assert_eq!(store.purge_notifications(T0 + 1, T0 + 1).await.unwrap(), 3);
    assert!(!store.notification_seen("alipay_main", "abc").await.unwrap());
}

#[tokio::test]
async fn inbox_records_with_the_unit_of_work_and_purges() {
    for db in dbs("inbox").await {
        check_inbox(&db).await;
    }
}

async fn check_idempotency(db: &Db) {
    let store = db.open().await;
    let begin = |key: &'static str, hash: &'static str, now: i64| {
        let store = store.clone();
        async move {
            store
                .begin_idempotent("key_1", key, hash, now, 60_000)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        begin("k1", "h1", T0).await,
        IdempotencyBegin::New,
        "{}",
        db.label
    );
    assert_eq!(
        begin("k1", "h1", T0 + 1).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        begin("k1", "other", T0 + 1).await,
        IdempotencyBegin::Mismatch
    );
    store
        .complete_idempotent("key_1", "k1", 201, b"{\"id\":\"pay_1\"}", T0 + 2)
        .await
        .unwrap();
    assert_eq!(
        begin("k1", "h1", T0 + 3).await,
        IdempotencyBegin::Replay {
            status: 201,
            body: b"{\"id\":\"pay_1\"}".to_vec()
        }
    );
    assert_eq!(begin("k1", "h2", T0 + 3).await, IdempotencyBegin::Mismatch);
    // Scopes are separate key spaces.
    assert_eq!(
        store
            .begin_idempotent("key_2", "k1", "h2", T0, 60_000)
            .await
            .unwrap(),
        IdempotencyBegin::New
    );

    // Concurrent first uses: exactly one runs.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            s.begin_idempotent("key_1", "race", "h", T0, 60_000)
                .await
                .unwrap()
        }));
    }
    let mut news = 0;
    for t in tasks {
        match t.await.unwrap() {
            IdempotencyBegin::New => news += 1,
            other => assert_eq!(other, IdempotencyBegin::InProgress),
        }
    }
    assert_eq!(news, 1);

    // Abandoned (process died): taken over after the stale window; released keys start afresh.
    assert_eq!(
        begin("race", "h", T0 + 59_999).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(begin("race", "h", T0 + 60_000).await, IdempotencyBegin::New);
    store.release_idempotent("key_1", "race").await.unwrap();
    assert_eq!(
        begin("race", "h9", T0 + 60_001).await,
        IdempotencyBegin::New
    );
    assert!(matches!(
        store
            .complete_idempotent("key_1", "never", 200, b"", T0)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.purge_idempotency_keys(T0 + 1).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_replay_and_refuse_mismatches() {
    for db in dbs("idempotency").await {
        check_idempotency(&db).await;
    }
}

async fn check_api_keys(db: &Db) {
    let store = db.open().await;
    let (key, plaintext) = store
        .create_api_key(&NewApiKey {
            mode: Mode::Live,
            merchant: "shop".into(),
            scopes: vec![ApiScope::Write, ApiScope::Read, ApiScope::Read],
        })
        .await
        .unwrap();
    assert_eq!(format!("{plaintext:?}"), "[REDACTED]");
    let token = plaintext.expose().clone();
    assert!(token.starts_with("pb_live_") && token.starts_with(&key.prefix));
    assert_eq!(key.scopes, vec![ApiScope::Read, ApiScope::Write]);
    let found = store.authenticate(&token).await.unwrap().unwrap();
    assert_eq!(found, key, "{}", db.label);
    assert!(found.allows(ApiScope::Write) && !found.allows(ApiScope::Refund));
    assert!(store
        .authenticate(&format!("{token}x"))
        .await
        .unwrap()
        .is_none());
    assert!(store.authenticate("").await.unwrap().is_none());

    let configured = "pb_test_configured_demo_key_0001";
    let demo = store
        .insert_api_key(
            &NewApiKey {
                mode: Mode::Sandbox,
                merchant: "demo".into(),
                scopes: ApiScope::ALL.to_vec(),
            },
            configured,
        )
        .await
        .unwrap();
    assert_eq!(
        store.authenticate(configured).await.unwrap().unwrap().mode,
        Mode::Sandbox
    );
    assert!(matches!(
        store
            .insert_api_key(
                &NewApiKey {
                    mode: Mode::Sandbox,
                    merchant: "x".into(),
                    scopes: vec![]
                },
                configured
            )
            .await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store
            .insert_api_key(
                &NewApiKey {
                    mode: Mode::Sandbox,
                    merchant: "x".into(),
                    scopes: vec![]
                },
                "short"
            )
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.revoke_api_key(&demo.id).await.unwrap());
    assert!(!store.revoke_api_key(&demo.id).await.unwrap());
    assert!(store.authenticate(configured).await.unwrap().is_none());
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 2);
    assert!(store.list_api_keys(Some("demo")).await.unwrap()[0].revoked);
}

#[tokio::test]
async fn api_keys_are_stored_hashed() {
    for db in dbs("api_keys").await {
        check_api_keys(&db).await;
    }
}

fn job(kind: &str, key: &str, run_at: i64) -> NewJob {
    NewJob {
        kind: kind.into(),
        key: key.into(),
        payment_id: Some(format!("pay_{key}")),
        refund_id: None,
        payload: json!({"attempt_schedule": "fast"}),
        run_at,
    }
}

async fn check_jobs(db: &Db) {
    let store = db.open().await;
    let mut ids = HashSet::new();
    for i in 0..30 {
        let s = store
            .schedule_job(&job("query_payment", &i.to_string(), T0 + i))
            .await
            .unwrap();
        assert!(matches!(s, Scheduled::Created(_)));
        ids.insert(s.id().to_string());
    }
    // Dedup per kind+key; an earlier run_at moves the waiting job up.
    let dup = store
        .schedule_job(&job("query_payment", "29", T0 - 5))
        .await
        .unwrap();
    assert!(
        matches!(&dup, Scheduled::Existing(id) if ids.contains(id)),
        "{}",
        db.label
    );
    assert_eq!(
        store.get_job(dup.id()).await.unwrap().unwrap().run_at,
        T0 - 5
    );
    assert!(matches!(
        store
            .schedule_job(&job("expire_payment", "29", T0 + 100))
            .await
            .unwrap(),
        Scheduled::Created(_)
    ));
    assert!(store.cancel_job("expire_payment", "29").await.unwrap());
    assert!(
        store
            .claim_jobs("w0", T0 - 10, 10, 1000)
            .await
            .unwrap()
            .is_empty(),
        "nothing due yet"
    );

    // Eight claimers at once (two instances on PostgreSQL): every job handed out exactly once.
    let now = T0 + 1_000;
    // Two pools: two gateway instances on PostgreSQL, two processes on one SQLite file.
    let stores = [store.clone(), db.open().await];
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = stores[w % stores.len()].clone();
        tasks.push(tokio::spawn(async move {
            let owner = format!("worker-{w}");
            let jobs = s.claim_jobs(&owner, now, 5, 30_000).await.unwrap();
            (owner, jobs)
        }));
    }
    let mut holder: HashMap<String, String> = HashMap::new();
    for t in tasks {
        let (owner, jobs) = t.await.unwrap();
        for j in jobs {
            assert_eq!(
                (j.state, j.attempts, j.lease_until),
                (JobState::Running, 1, Some(now + 30_000))
            );
            assert_eq!(j.lease_owner.as_deref(), Some(owner.as_str()));
            assert!(
                holder.insert(j.id.clone(), owner.clone()).is_none(),
                "{}: job {} claimed twice",
                db.label,
                j.id
            );
        }
    }
    assert_eq!(holder.keys().cloned().collect::<HashSet<_>>(), ids);
    assert!(
        store
            .claim_jobs("late", now + 29_999, 100, 30_000)
            .await
            .unwrap()
            .is_empty(),
        "all leased"
    );

    // Finish some; the rest belong to a crashed worker whose leases expire.
    let mut by_owner: Vec<(String, String)> = holder.into_iter().collect();
    by_owner.sort();
    let (done_id, done_owner) = &by_owner[0];
    assert!(store
        .complete_job(done_id, done_owner, now + 10)
        .await
        .unwrap());
    let (resched_id, resched_owner) = &by_owner[1];
    assert!(store
        .reschedule_job(
            resched_id,
            resched_owner,
            now + 120_000,
            Some("provider timeout"),
            now + 10
        )
        .await
        .unwrap());
    let (failed_id, failed_owner) = &by_owner[2];
    assert!(store
        .fail_job(failed_id, failed_owner, "order not found", now + 10)
        .await
        .unwrap());
    assert!(
        !store
            .complete_job(done_id, done_owner, now + 11)
            .await
            .unwrap(),
        "already done"
    );

    let reclaimed = store
        .claim_jobs("rescuer", now + 30_000, 100, 30_000)
        .await
        .unwrap();
    assert_eq!(
        reclaimed.len(),
        27,
        "{}: expired leases are reclaimed",
        db.label
    );
    assert!(reclaimed
        .iter()
        .all(|j| j.attempts == 2 && j.lease_owner.as_deref() == Some("rescuer")));
    let (stale_id, stale_owner) = by_owner
        .iter()
        .find(|(id, _)| reclaimed.iter().any(|j| &j.id == id))
        .unwrap();
    assert!(
        !store
            .complete_job(stale_id, stale_owner, now + 30_001)
            .await
            .unwrap(),
        "lost lease"
    );
    assert!(store
        .complete_job(stale_id, "rescuer", now + 30_001)
        .await
        .unwrap());

    let r = store.get_job(resched_id).await.unwrap().unwrap();
    assert_eq!(
        (r.state, r.last_error.as_deref(), r.lease_owner),
        (JobState::Scheduled, Some("provider timeout"), None)
    );
    let back = store
        .claim_jobs("w9", now + 120_000, 100, 30_000)
        .await
        .unwrap();
    assert!(back.iter().any(|j| &j.id == resched_id));
    assert_eq!(
        store.get_job(failed_id).await.unwrap().unwrap().state,
        JobState::Failed
    );
    // A done job no longer blocks scheduling the same key again.
    let again = store
        .schedule_job(&job(
            "query_payment",
            &store.get_job(done_id).await.unwrap().unwrap().key,
            now,
        ))
        .await
        .unwrap();
    assert!(matches!(again, Scheduled::Created(_)));
    let pid = store
        .get_job(done_id)
        .await
        .unwrap()
        .unwrap()
        .payment_id
        .unwrap();
    assert_eq!(store.list_payment_jobs(&pid).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_claims_are_exclusive_and_expired_leases_reclaimed() {
    for db in dbs("jobs").await {
        check_jobs(&db).await;
    }
}

async fn check_call_log_and_timeline(db: &Db) {
    let store = db.open().await;
    let call = NewProviderCall {
        payment_id: Some("pay_x".into()),
        refund_id: None,
        channel: Channel::Wechat,
        account: "wx_main".into(),
        operation: "v3/pay/transactions/native".into(),
        request: "{\"amount\":{\"total\":100},\"payer\":\"[REDACTED]\"}".into(),
        response: Some("{\"code_url\":\"weixin://wxpay/bizpayurl?pr=abc\"}".into()),
        http_status: Some(200),
        latency_ms: 87,
        outcome: "ok".into(),
    };
    store.record_provider_call(&call).await.unwrap();
    db.clock.advance(5);
    store
        .record_provider_call(&NewProviderCall {
            operation: "v3/pay/transactions/out-trade-no".into(),
            http_status: None,
            response: None,
            outcome: "timeout".into(),
            ..call.clone()
        })
        .await
        .unwrap();
    let calls = store.list_provider_calls("pay_x").await.unwrap();
    assert_eq!(calls.len(), 2, "{}", db.label);
    assert_eq!(
        (calls[0].http_status, calls[0].latency_ms, calls[0].channel),
        (Some(200), 87, Channel::Wechat)
    );
    assert_eq!(
        (calls[1].outcome.as_str(), calls[1].response.clone()),
        ("timeout", None)
    );
    assert!(store.list_provider_calls("pay_y").await.unwrap().is_empty());

    store
        .record_timeline("pay_x", "query", &json!({"attempt": 1}))
        .await
        .unwrap();
    store
        .record_timeline(
            "pay_x",
            "query_result",
            &json!({"status": "WAIT_BUYER_PAY"}),
        )
        .await
        .unwrap();
    let tl = store.list_timeline("pay_x").await.unwrap();
    assert_eq!(
        tl.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        vec!["query", "query_result"]
    );
    assert_eq!(tl[1].detail, json!({"status": "WAIT_BUYER_PAY"}));
    store.ping().await.unwrap();
}

#[tokio::test]
async fn provider_call_log_and_timeline() {
    for db in dbs("call_log").await {
        check_call_log_and_timeline(&db).await;
    }
}

/// PostgreSQL only (SQLite has one writer, so commits cannot interleave): an event whose
/// transaction took its insertion sequence first but commits last still shows up after a cursor
/// that already passed the events committed before it.
#[tokio::test]
async fn feed_never_skips_a_late_commit() {
    use sqlx::Connection;
    let Some(db) = dbs("feed_late_commit")
        .await
        .into_iter()
        .find(|d| d.is_pg())
    else {
        return;
    };
    let store = db.open().await;
    let mut slow = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut held = slow.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO events (id, mode, account, type, payload, created_at) \
         VALUES ('evt_slow', 'sandbox', 'a', 'payment.paid', '{}'::jsonb, 0)",
    )
    .execute(&mut *held)
    .await
    .unwrap();

    let fast = paid(&store, "a", "fast", &[]).await;
    let first = store
        .list_events(None, 10, Mode::Sandbox, None)
        .await
        .unwrap();
    assert_eq!(first.events.len(), 1);
    assert_eq!(first.events[0].payment_id.as_deref(), Some(fast.as_str()));

    held.commit().await.unwrap();
    let next = store
        .list_events(first.cursor.as_deref(), 10, Mode::Sandbox, None)
        .await
        .unwrap();
    assert_eq!(
        next.events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        vec!["evt_slow"],
        "the late commit is served after the cursor, not skipped"
    );
}

async fn check_feed_under_concurrent_writers(db: &Db) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let pools = [db.open().await, db.open().await];
    let done = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let store = pools[w % 2].clone();
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..15 {
                ids.push(paid(&store, "a", &format!("mixed-{w}-{i}"), &[]).await);
            }
            ids
        }));
    }
    // A merchant polls the feed while the writers commit; whatever interleaving happens, the
    // cursor walk must see every event exactly once.
    let reader = {
        let store = pools[1].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut cursor: Option<String> = None;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = store
                    .list_events(cursor.as_deref(), 7, Mode::Sandbox, None)
                    .await
                    .unwrap();
                seen.extend(page.events.iter().map(|e| e.payment_id.clone().unwrap()));
                cursor = page.cursor;
                if finished && page.events.is_empty() {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    assert_eq!(
        seen.len(),
        written.len(),
        "{}: no event skipped or repeated",
        db.label
    );
    assert_eq!(
        seen.iter().collect::<HashSet<_>>(),
        written.iter().collect::<HashSet<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn feed_is_complete_under_concurrent_writers() {
    for db in dbs("feed_concurrent").await {
        check_feed_under_concurrent_writers(&db).await;
    }
}
