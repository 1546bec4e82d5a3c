//! The money path's units of work (`begin_payment`, `apply_payment`, `begin_refund`,
//! `apply_refund`) with plans decided by `paybridge_core::decide`, on SQLite and (when
//! configured) PostgreSQL: exactly-once changes under races, version bumps, audit rows, events
//! with their deliveries, refunds never exceeding what was paid, and the lock order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{
    audit, begin_new, dbs, mark, new_payment, observe, observe_refund, observe_refund_with,
    observe_with, provider_says, provider_says_refund, render_payment, render_refund,
    request_refund, seed_payment, seed_refund, Db, HOOK, T0,
};
use paybridge_core::channel::{ProviderPaymentStatus, ProviderRefundStatus};
use paybridge_core::decide::{PaymentObservation, RefundObservation};
use paybridge_core::{Channel, Fen, Mode, PaymentStatus, RefundStatus};
use paybridge_store::{
    BeginPayment, BeginRefund, KeyClaim, KeyState, Payment, PaymentFilter, PaymentPatch,
    PaymentPlan, RefundPatch, Store, StoreError,
};
use serde_json::json;

/// A payment the provider accepted, with the QR code it handed back.
async fn pending_payment(store: &Store, out_trade_no: &str, amount: i64) -> Payment {
    let p = seed_payment(store, "alipay_main", out_trade_no, amount).await;
    let said = PaymentPatch {
        client_action: Some(json!({"qr_code": "https://qr.example/abc"})),
        ..PaymentPatch::default()
    };
    let applied = observe_with(store, &p.id, PaymentObservation::Accepted, &said, &[HOOK])
        .await
        .unwrap();
    assert!(applied.changed, "created -> pending applies");
    applied.payment
}

/// What a paid notification carries besides the status.
fn paid_said() -> PaymentPatch {
    PaymentPatch {
        provider_trade_no: Some("2026112622001400000001".into()),
        payer_id: Some("2088000000000001".into()),
        ..PaymentPatch::default()
    }
}

fn paid_notice(amount: i64) -> PaymentObservation {
    PaymentObservation::Provider {
        status: ProviderPaymentStatus::Paid,
        amount: Some(Fen(amount)),
    }
}

/// `racers` copies of the same paid notification applied at once; how many changed the row.
async fn race_to_paid(stores: &[Store], id: &str, racers: usize) -> usize {
    let mut tasks = Vec::new();
    for i in 0..racers {
        let store = stores[i % stores.len()].clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            observe_with(&store, &id, paid_notice(1000), &paid_said(), &[HOOK])
                .await
                .unwrap()
                .changed
        }));
    }
    let mut changed = 0;
    for t in tasks {
        if t.await.unwrap() {
            changed += 1;
        }
    }
    changed
}

fn moves(audit_rows: &[paybridge_store::AuditEntry]) -> Vec<(Option<String>, String, i64)> {
    audit_rows
        .iter()
        .map(|a| (a.from_status.clone(), a.to_status.clone(), a.version))
        .collect()
}

fn mv(from: Option<&str>, to: &str, version: i64) -> (Option<String>, String, i64) {
    (from.map(str::to_string), to.to_string(), version)
}

async fn check_fifty_concurrent_notifications(db: &Db) {
    let store = db.open().await;
    let p = pending_payment(&store, "race-1", 1000).await;
    let changed = race_to_paid(std::slice::from_ref(&store), &p.id, 50).await;
    assert_eq!(
        changed, 1,
        "{}: exactly one of 50 racers changes it",
        db.label
    );

    let paid = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(paid.status, PaymentStatus::Paid);
    assert_eq!(paid.previous_status, Some(PaymentStatus::Pending));
    assert_eq!(paid.version, 2, "created(0) -> pending(1) -> paid(2)");
    assert_eq!(paid.paid_amount, Some(Fen(1000)));
    assert_eq!(paid.paid_at, Some(T0));
    assert_eq!(
        paid.provider_trade_no.as_deref(),
        Some("2026112622001400000001")
    );
    assert_eq!(
        paid.client_action,
        Some(json!({"qr_code": "https://qr.example/abc"})),
        "the patch keeps unset columns"
    );
    let events = store.list_payment_events(&p.id).await.unwrap();
    assert_eq!(events.len(), 1, "{}: exactly one event", db.label);
    assert_eq!(events[0].kind, "payment.paid");
    assert_eq!(events[0].mode, Mode::Sandbox);
    assert_eq!(
        events[0].payload,
        json!({"id": p.id, "status": "paid"}),
        "rendered from the row after the change"
    );
    let deliveries = store.list_deliveries(&events[0].id).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].endpoint, HOOK);
    assert_eq!(
        moves(&store.list_audit(&p.id).await.unwrap()),
        vec![
            mv(None, "created", 0),
            mv(Some("created"), "pending", 1),
            mv(Some("pending"), "paid", 2)
        ]
    );

    {
        // Two separate pools play two gateway instances (or processes) on one database.
        let other = db.open().await;
        let q = pending_payment(&store, "race-2", 1000).await;
        let changed = race_to_paid(&[store.clone(), other.clone()], &q.id, 50).await;
        assert_eq!(changed, 1, "exactly once across two instances");
        assert_eq!(other.list_payment_events(&q.id).await.unwrap().len(), 1);
        assert_eq!(other.get_payment(&q.id).await.unwrap().unwrap().version, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_notifications_apply_exactly_once() {
    for db in dbs("fifty_concurrent").await {
        check_fifty_concurrent_notifications(&db).await;
    }
}

async fn check_pass_through(db: &Db) {
    let store = db.open().await;
    let p = seed_payment(&store, "alipay_main", "via-1", 300).await;
    // The notification beats the create answer: the path still has pending, audited as a step.
    let applied = observe(&store, &p.id, paid_notice(300)).await;
    assert!(applied.changed);
    assert_eq!(
        (
            applied.payment.status,
            applied.payment.previous_status,
            applied.payment.version
        ),
        (PaymentStatus::Paid, Some(PaymentStatus::Pending), 2),
        "{}",
        db.label
    );
    assert_eq!(
        moves(&store.list_audit(&p.id).await.unwrap()),
        vec![
            mv(None, "created", 0),
            mv(Some("created"), "pending", 1),
            mv(Some("pending"), "paid", 2)
        ]
    );
    assert_eq!(store.list_payment_events(&p.id).await.unwrap().len(), 1);
    // The late create answer then changes nothing.
    let late_answer = observe(&store, &p.id, PaymentObservation::Accepted).await;
    assert!(!late_answer.changed);
    assert_eq!(late_answer.payment.version, 2);
}

#[tokio::test]
async fn a_payment_paid_before_its_create_answer_passes_through_pending() {
    for db in dbs("pass_through").await {
        check_pass_through(&db).await;
    }
}

/// A plan that moves straight to `to`, bypassing the decision.
async fn force(store: &Store, id: &str, to: PaymentStatus) -> Result<bool, StoreError> {
    store
        .apply_payment(id, None, render_payment, move |_| {
            let mut plan = PaymentPlan::new(audit());
            plan.to = Some(to);
            plan.event = Some(paybridge_store::EventSpec {
                kind: "payment.forced".into(),
                endpoints: vec![HOOK.into()],
            });
            plan.patch.payer_id = Some("someone".into());
            plan
        })
        .await
        .map(|a| a.unwrap().changed)
}

async fn check_refusals(db: &Db) {
    let store = db.open().await;
    let created = seed_payment(&store, "alipay_main", "illegal-1", 500).await;
    // A plan for an illegal move is a bug in the caller: it fails and writes nothing.
    for to in [
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Created,
    ] {
        let r = force(&store, &created.id, to).await;
        assert!(
            matches!(r, Err(StoreError::Invariant(_))),
            "{}: created -> {to}: {r:?}",
            db.label
        );
    }
    let r = store
        .apply_payment(&created.id, None, render_payment, |_| {
            let mut plan = PaymentPlan::new(audit());
            plan.via = Some(PaymentStatus::Closed);
            plan.to = Some(PaymentStatus::Pending);
            plan
        })
        .await;
    assert!(matches!(r, Err(StoreError::Invariant(_))), "{r:?}");
    let untouched = store.get_payment(&created.id).await.unwrap().unwrap();
    assert_eq!(untouched, created);
    assert!(store
        .list_payment_events(&created.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.list_audit(&created.id).await.unwrap().len(), 1);
    // No such payment: nothing to apply.
    assert!(observe_with(
        &store,
        "pay_unknown",
        paid_notice(1),
        &PaymentPatch::default(),
        &[HOOK]
    )
    .await
    .is_none());

    let p = pending_payment(&store, "illegal-2", 500).await;
    assert!(observe(&store, &p.id, paid_notice(500)).await.changed);
    for to in [
        PaymentStatus::Pending,
        PaymentStatus::Closed,
        PaymentStatus::Failed,
        PaymentStatus::Paid,
    ] {
        let r = force(&store, &p.id, to).await;
        assert!(
            matches!(r, Err(StoreError::Invariant(_))),
            "{}: paid -> {to}: {r:?}",
            db.label
        );
    }
    // Whatever else is said about a paid payment changes nothing and emits nothing.
    let mut words = vec![
        PaymentObservation::Accepted,
        PaymentObservation::CreateRefused,
        PaymentObservation::Closed,
        paid_notice(500),
    ];
    for status in [
        ProviderPaymentStatus::NotFound,
        ProviderPaymentStatus::Pending,
        ProviderPaymentStatus::UserPaying,
        ProviderPaymentStatus::Paid,
        ProviderPaymentStatus::Refunded,
        ProviderPaymentStatus::Closed,
        ProviderPaymentStatus::Failed,
    ] {
        words.push(provider_says(status));
    }
    for obs in words {
        let applied = observe(&store, &p.id, obs).await;
        assert!(!applied.changed, "{}: paid + {obs:?}", db.label);
    }
    let after = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.version), (PaymentStatus::Paid, 2));
    assert_eq!(store.list_payment_events(&p.id).await.unwrap().len(), 1);
    assert_eq!(store.list_audit(&p.id).await.unwrap().len(), 3);

    // A notification whose amount contradicts the order changes nothing, not even its columns.
    let q = pending_payment(&store, "illegal-3", 500).await;
    let off = observe_with(&store, &q.id, paid_notice(499), &paid_said(), &[HOOK])
        .await
        .unwrap();
    assert!(!off.changed);
    assert_eq!(off.payment, q);

    // Money after close is kept and flagged, with both events.
    let late = pending_payment(&store, "illegal-4", 500).await;
    mark(&store, &late.id, PaymentStatus::Closed).await;
    let paid = observe(&store, &late.id, paid_notice(500)).await;
    assert!(paid.changed);
    assert!(paid.payment.late_payment);
    assert_eq!(paid.payment.status, PaymentStatus::Paid);
    assert_eq!(paid.payment.previous_status, Some(PaymentStatus::Closed));
    let kinds: Vec<_> = store
        .list_payment_events(&late.id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec!["payment.closed", "payment.paid"]);
}

#[tokio::test]
async fn illegal_plans_fail_and_stale_words_change_nothing() {
    for db in dbs("refusals").await {
        check_refusals(&db).await;
    }
}

async fn check_patch_alone(db: &Db) {
    let store = db.open().await;
    let p = pending_payment(&store, "patch-0", 100).await;
    let patch_only = |said: PaymentPatch| {
        let store = store.clone();
        let id = p.id.clone();
        async move {
            store
                .apply_payment(&id, None, render_payment, move |_| {
                    let mut plan = PaymentPlan::new(audit());
                    plan.patch = said;
                    plan
                })
                .await
                .unwrap()
                .unwrap()
        }
    };
    let learnt = PaymentPatch {
        provider_trade_no: Some("2026-trade".into()),
        ..PaymentPatch::default()
    };
    let first = patch_only(learnt.clone()).await;
    assert!(!first.changed, "{}: no state change", db.label);
    assert_eq!(
        (
            first.payment.status,
            first.payment.version,
            first.payment.provider_trade_no.as_deref()
        ),
        (PaymentStatus::Pending, p.version + 1, Some("2026-trade"))
    );
    // The same columns again (a repeated query) leave the row and its version alone.
    let again = patch_only(learnt).await;
    assert_eq!(again.payment, first.payment);
    assert!(store.list_payment_events(&p.id).await.unwrap().is_empty());
    assert_eq!(store.list_audit(&p.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_patch_alone_bumps_the_version_once_and_audits_nothing() {
    for db in dbs("patch_alone").await {
        check_patch_alone(&db).await;
    }
}

async fn check_begin_payment(db: &Db) {
    let store = db.open().await;
    let first = begin_new(&store, new_payment("acct_a", "order-1", 100))
        .await
        .unwrap();
    let err = begin_new(&store, new_payment("acct_a", "order-1", 200))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what: "out_trade_no", key } if key == "order-1"),
        "{}: {err:?}",
        db.label
    );
    // Unique per account only.
    begin_new(&store, new_payment("acct_b", "order-1", 300))
        .await
        .unwrap();
    let found = store
        .get_payment_by_out_trade_no("acct_a", "order-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, first);
    assert_eq!(found.amount, Fen(100));
    assert!(store
        .get_payment_by_out_trade_no("acct_c", "order-1")
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        begin_new(&store, new_payment("acct_a", "order-0", 0)).await,
        Err(StoreError::Invalid(_))
    ));

    // A key used before creates nothing: held by its request, or used for another one.
    let claim = |request_hash| KeyClaim {
        scope: "test",
        key: "k-1",
        request_hash,
        lock_ms: 60_000,
    };
    let begun = store
        .begin_payment(
            &claim("h1"),
            new_payment("acct_a", "keyed", 100),
            &audit(),
            |_| vec![],
        )
        .await
        .unwrap();
    assert!(matches!(begun, BeginPayment::Started(_)));
    for (hash, no) in [("h1", "keyed-again"), ("h2", "keyed-other")] {
        let begun = store
            .begin_payment(
                &claim(hash),
                new_payment("acct_a", no, 100),
                &audit(),
                |_| vec![],
            )
            .await
            .unwrap();
        match (hash, begun) {
            ("h1", BeginPayment::Key(KeyState::Locked { until })) => {
                assert_eq!(until, T0 + 60_000)
            }
            ("h2", BeginPayment::Key(KeyState::Mismatch)) => {}
            (_, other) => panic!("{}: {hash}: {other:?}", db.label),
        }
        assert!(store
            .get_payment_by_out_trade_no("acct_a", no)
            .await
            .unwrap()
            .is_none());
    }
}

#[tokio::test]
async fn begin_payment_refuses_a_taken_order_number_and_a_used_key() {
    for db in dbs("begin_payment").await {
        check_begin_payment(&db).await;
    }
}

async fn paid_payment(store: &Store, out_trade_no: &str, amount: i64) -> Payment {
    let p = pending_payment(store, out_trade_no, amount).await;
    let paid = observe(store, &p.id, paid_notice(amount)).await;
    assert!(paid.changed);
    paid.payment
}

fn refund_succeeded(amount: Fen) -> RefundObservation {
    RefundObservation::Provider {
        status: ProviderRefundStatus::Succeeded,
        amount: Some(amount),
    }
}

async fn check_concurrent_refunds(db: &Db) {
    let store = db.open().await;
    let unpaid = pending_payment(&store, "refund-0", 1000).await;
    let err = request_refund(&store, &unpaid.id, "r0", 1)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotRefundable {
                status: PaymentStatus::Pending,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(matches!(
        request_refund(&store, "pay_unknown", "r0", 1).await,
        Err(StoreError::NotFound { .. })
    ));

    let p = paid_payment(&store, "refund-1", 1000).await;
    assert!(matches!(
        request_refund(&store, &p.id, "r0", 0).await,
        Err(StoreError::Invalid(_))
    ));
    // Two pools: two gateway instances on PostgreSQL, two processes on one SQLite file.
    let stores = [store.clone(), db.open().await];
    let mut tasks = Vec::new();
    for i in 0..25 {
        let store = stores[i % stores.len()].clone();
        let payment_id = p.id.clone();
        tasks.push(tokio::spawn(async move {
            request_refund(&store, &payment_id, &format!("r{i}"), 150).await
        }));
    }
    let (mut created, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(BeginRefund::Started(r)) => created.push(r),
            Err(StoreError::RefundExceedsPaid {
                requested,
                available,
                ..
            }) => {
                assert_eq!(requested, Fen(150));
                assert!(available.0 < 150);
                refused += 1;
            }
            other => panic!("{}: unexpected {other:?}", db.label),
        }
    }
    assert_eq!(created.len(), 6, "{}: 6 x 150 <= 1000 < 7 x 150", db.label);
    assert_eq!(refused, 19);
    let total: i64 = store
        .list_refunds(&p.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.amount.0)
        .sum();
    assert_eq!(total, 900);
    assert!(created
        .iter()
        .all(|r| (r.status, r.version) == (RefundStatus::Pending, 0)));
    assert_eq!(
        moves(&store.list_audit(&created[0].id).await.unwrap()),
        vec![mv(None, "pending", 0)]
    );

    // The same out_refund_no: the same refund again, or a conflict for another amount.
    let same = request_refund(&store, &p.id, &created[0].out_refund_no, 150)
        .await
        .unwrap();
    assert_eq!(same, BeginRefund::Existing(created[0].clone()));
    let dup = request_refund(&store, &p.id, &created[0].out_refund_no, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(
            dup,
            StoreError::Conflict {
                what: "out_refund_no (for another amount)",
                ..
            }
        ),
        "{dup:?}"
    );

    // A failed refund frees its amount and leaves the payment alone.
    let failed = observe_refund_with(
        &store,
        &created[0].id,
        provider_says_refund(ProviderRefundStatus::Failed),
        &RefundPatch {
            failure_reason: Some("NOT_ENOUGH".into()),
            ..RefundPatch::default()
        },
        &[HOOK],
    )
    .await
    .unwrap();
    assert!(failed.changed);
    assert_eq!(
        (
            failed.refund.status,
            failed.refund.version,
            failed.refund.failure_reason.as_deref()
        ),
        (RefundStatus::Failed, 1, Some("NOT_ENOUGH"))
    );
    assert_eq!(failed.payment, p, "a failure does not touch the payment");
    let extra = seed_refund(&store, &p.id, "extra", 250).await;

    // A success whose amount contradicts ours changes nothing.
    let off = observe_refund(&store, &extra.id, refund_succeeded(Fen(249))).await;
    assert!(!off.changed);
    assert_eq!(off.refund, extra);

    let mut succeed = created[1..].to_vec();
    succeed.push(extra);
    let mut version = p.version;
    for (n, r) in succeed.iter().enumerate() {
        let said = RefundPatch {
            provider_refund_no: Some(format!("prov-{n}")),
            ..RefundPatch::default()
        };
        let change = observe_refund_with(&store, &r.id, refund_succeeded(r.amount), &said, &[HOOK])
            .await
            .unwrap();
        assert!(change.changed);
        assert_eq!(
            (
                change.refund.status,
                change.refund.version,
                change.refund.succeeded_at
            ),
            (RefundStatus::Succeeded, 1, Some(T0))
        );
        version += 1;
        assert_eq!(change.payment.version, version, "one step per success");
        let expected = if n + 1 < succeed.len() {
            PaymentStatus::PartiallyRefunded
        } else {
            PaymentStatus::Refunded
        };
        assert_eq!(change.payment.status, expected, "{}", db.label);
        // Applying the same success again changes nothing and emits nothing.
        let again = observe_refund_with(&store, &r.id, refund_succeeded(r.amount), &said, &[HOOK])
            .await
            .unwrap();
        assert!(!again.changed);
        assert_eq!(
            (again.refund, again.payment),
            (change.refund, change.payment)
        );
    }
    let p = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(
        (p.status, p.refunded_amount, p.refundable()),
        (PaymentStatus::Refunded, Fen(1000), Fen(0))
    );
    let audit_rows = store.list_audit(&p.id).await.unwrap();
    assert_eq!(
        moves(&audit_rows[audit_rows.len() - 2..]),
        vec![
            mv(
                Some("partially_refunded"),
                "partially_refunded",
                version - 1
            ),
            mv(Some("partially_refunded"), "refunded", version)
        ]
    );
    assert_eq!(
        moves(&store.list_audit(&succeed[0].id).await.unwrap()),
        vec![mv(None, "pending", 0), mv(Some("pending"), "succeeded", 1)]
    );
    let events = store.list_payment_events(&p.id).await.unwrap();
    let count = |kind: &str| events.iter().filter(|e| e.kind == kind).count();
    assert_eq!((count("refund.succeeded"), count("refund.failed")), (6, 1));
    let last = events.last().unwrap();
    assert_eq!(
        (last.refund_id.as_deref(), last.payment_id.as_deref()),
        (Some(succeed[5].id.as_str()), Some(p.id.as_str()))
    );
    assert_eq!(
        last.payload,
        render_refund(&store.get_refund(&succeed[5].id).await.unwrap().unwrap())
    );
    assert_eq!(store.list_deliveries(&last.id).await.unwrap().len(), 1);
    assert!(matches!(
        request_refund(&store, &p.id, "late", 1).await,
        Err(StoreError::NotRefundable {
            status: PaymentStatus::Refunded,
            ..
        })
    ));
    assert!(observe_refund_with(
        &store,
        "re_unknown",
        refund_succeeded(Fen(1)),
        &RefundPatch::default(),
        &[HOOK]
    )
    .await
    .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_paid_amount() {
    for db in dbs("concurrent_refunds").await {
        check_concurrent_refunds(&db).await;
    }
}

async fn check_settlement_racing_creation(db: &Db) {
    let store = db.open().await;
    let p = paid_payment(&store, "race-refunds", 10_000).await;
    let mut pending = Vec::new();
    for i in 0..10 {
        pending.push(seed_refund(&store, &p.id, &format!("s{i}"), 100).await);
    }
    let stores = [store.clone(), db.open().await];
    let mut tasks = Vec::new();
    for (i, r) in pending.iter().enumerate() {
        let settler = stores[i % 2].clone();
        let id = r.id.clone();
        let amount = r.amount;
        tasks.push(tokio::spawn(async move {
            assert!(
                observe_refund(&settler, &id, refund_succeeded(amount))
                    .await
                    .changed
            );
        }));
        let creator = stores[(i + 1) % 2].clone();
        let payment_id = p.id.clone();
        tasks.push(tokio::spawn(async move {
            seed_refund(&creator, &payment_id, &format!("c{i}"), 100).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let after = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(
        (after.status, after.refunded_amount, after.version),
        (PaymentStatus::PartiallyRefunded, Fen(1000), p.version + 10),
        "{}",
        db.label
    );
    assert_eq!(store.list_refunds(&p.id).await.unwrap().len(), 20);
}

/// Settling refunds while others are being created on the same payment never deadlocks: every
/// unit locks the payment row before its refund rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refund_settlement_racing_refund_creation_completes() {
    for db in dbs("settle_vs_create").await {
        check_settlement_racing_creation(&db).await;
    }
}

/// PostgreSQL only (SQLite's `BEGIN IMMEDIATE` takes one lock for everything): while another
/// transaction holds the payment row, a refund's unit waits for it without having locked the
/// refund row.
#[tokio::test]
async fn apply_refund_locks_the_payment_before_the_refund() {
    use sqlx::Connection;
    let Some(db) = dbs("lock_order").await.into_iter().find(|d| d.is_pg()) else {
        return;
    };
    let store = db.open().await;
    let p = paid_payment(&store, "lock-order", 1000).await;
    let r = seed_refund(&store, &p.id, "lo-1", 100).await;

    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("SELECT id FROM payments WHERE id = $1 FOR UPDATE")
        .bind(&p.id)
        .fetch_one(&mut *held)
        .await
        .unwrap();
    let unit = {
        let store = store.clone();
        let id = r.id.clone();
        tokio::spawn(async move { observe_refund(&store, &id, refund_succeeded(Fen(100))).await })
    };
    // Wait until the unit is blocked on a lock (bounded: it must get there).
    let mut blocked = false;
    for _ in 0..500 {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *held)
        .await
        .unwrap();
        if waiting > 0 {
            blocked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(blocked, "the unit never waited for the payment row");
    // The refund row is still free: the unit did not take it before the payment.
    sqlx::query("SELECT id FROM refunds WHERE id = $1 FOR UPDATE NOWAIT")
        .bind(&r.id)
        .fetch_one(&mut *held)
        .await
        .expect("the refund row is not locked while the unit waits for the payment");
    held.rollback().await.unwrap();
    let applied = unit.await.unwrap();
    assert!(applied.changed);
    assert_eq!(applied.payment.status, PaymentStatus::PartiallyRefunded);
}

async fn check_pagination(db: &Db) {
    let store = db.open().await;
    // Several payments share a timestamp so the id breaks ties.
    let mut all = Vec::new();
    for i in 0..23 {
        if i % 3 == 0 {
            db.clock.advance(10);
        }
        let mut np = new_payment(
            if i % 2 == 0 { "even" } else { "odd" },
            &format!("page-{i:02}"),
            100 + i,
        );
        if i % 5 == 0 {
            np.channel = Channel::Wechat;
        }
        all.push(begin_new(&store, np).await.unwrap());
    }
    let mut expected: Vec<_> = all.iter().map(|p| (p.created_at, p.id.clone())).collect();
    expected.sort();
    expected.reverse();

    let filter = PaymentFilter {
        mode: Some(Mode::Sandbox),
        ..PaymentFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_payments(&filter, cursor.as_deref(), 5)
            .await
            .unwrap();
        assert!(page.items.len() <= 5);
        seen.extend(page.items.iter().map(|p| (p.created_at, p.id.clone())));
        // Inserts between pages land before the cursor (newer) and never shift later pages.
        db.clock.advance(1);
        seed_payment(&store, "late", &format!("late-{}", seen.len()), 1).await;
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen, expected,
        "{}: every payment once, newest first",
        db.label
    );

    let evens = store
        .list_payments(
            &PaymentFilter {
                account: Some("even".into()),
                ..PaymentFilter::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(evens.items.len(), 12);
    assert!(evens.next_cursor.is_none());
    let wechat = store
        .list_payments(
            &PaymentFilter {
                channel: Some(Channel::Wechat),
                status: Some(PaymentStatus::Created),
                ..PaymentFilter::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(wechat.items.len(), 5);
    let from = all[3].created_at;
    let to = all[9].created_at;
    let ranged = store
        .list_payments(
            &PaymentFilter {
                created_from: Some(from),
                created_to: Some(to),
                account: Some("odd".into()),
                ..PaymentFilter::default()
            },
            None,
            100,
        )
        .await
        .unwrap();
    let want: HashSet<_> = all
        .iter()
        .filter(|p| p.account == "odd" && p.created_at >= from && p.created_at < to)
        .map(|p| p.id.clone())
        .collect();
    assert_eq!(
        ranged
            .items
            .iter()
            .map(|p| p.id.clone())
            .collect::<HashSet<_>>(),
        want
    );
    assert!(!want.is_empty());
    assert!(matches!(
        store.list_payments(&filter, Some("not-a-cursor"), 5).await,
        Err(StoreError::InvalidCursor)
    ));
    let none = store
        .list_payments(
            &PaymentFilter {
                mode: Some(Mode::Live),
                ..PaymentFilter::default()
            },
            None,
            10,
        )
        .await
        .unwrap();
    assert!(none.items.is_empty());

    let expired = store
        .list_expired_payments(PaymentStatus::Created, T0 + 16 * 60_000, 1000)
        .await
        .unwrap();
    assert_eq!(expired.len(), 23 + seen.len().div_ceil(5));
}

#[tokio::test]
async fn cursor_pagination_is_stable() {
    for db in dbs("cursor_pagination").await {
        check_pagination(&db).await;
    }
}

async fn check_patch(db: &Db) {
    let store = db.open().await;
    let p = pending_payment(&store, "patch-1", 100).await;
    let patch = PaymentPatch {
        provider_trade_no: Some("2026-trade".into()),
        expires_at: Some(T0 + 99),
        ..PaymentPatch::default()
    };
    let patched = store
        .patch_payment(&p.id, Some(p.version), &patch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (patched.status, patched.version),
        (PaymentStatus::Pending, p.version + 1),
        "{}",
        db.label
    );
    assert_eq!(
        (patched.provider_trade_no.as_deref(), patched.expires_at),
        (Some("2026-trade"), Some(T0 + 99))
    );
    assert_eq!(
        patched.client_action, p.client_action,
        "unset fields are kept"
    );
    assert!(
        store
            .patch_payment(&p.id, Some(p.version), &patch)
            .await
            .unwrap()
            .is_none(),
        "stale version"
    );
    assert!(store
        .patch_payment("pay_missing", None, &patch)
        .await
        .unwrap()
        .is_none());
    assert!(store.list_payment_events(&p.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn patch_changes_columns_but_not_status() {
    for db in dbs("patch").await {
        check_patch(&db).await;
    }
}

#[tokio::test]
async fn in_memory_sqlite_works() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let p = pending_payment(&store, "mem-1", 100).await;
    assert_eq!(
        store.get_payment(&p.id).await.unwrap().unwrap().status,
        PaymentStatus::Pending
    );
    assert!(
        matches!(Store::open("mysql://u:pw@h/db").await, Err(StoreError::UnsupportedUrl(u)) if !u.contains("pw"))
    );
}
