//! The transition primitive, payments and refunds, on SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;

use common::{audit, dbs, new_payment, Db, T0};
use paybridge_core::{Channel, Fen, Mode, PaymentStatus, RefundStatus};
use paybridge_store::{
    Applied, NewEvent, NewRefund, Payment, PaymentFilter, PaymentPatch, RefundPatch, Store,
    StoreError,
};
use serde_json::json;

async fn pending_payment(store: &Store, out_trade_no: &str, amount: i64) -> Payment {
    let p = store
        .insert_payment(new_payment("alipay_main", out_trade_no, amount), &audit())
        .await
        .unwrap();
    let patch = PaymentPatch {
        client_action: Some(json!({"qr_code": "https://qr.example/abc"})),
        ..PaymentPatch::default()
    };
    store
        .transition_payment(
            &p.id,
            Some(0),
            PaymentStatus::Pending,
            &patch,
            |_| None,
            &audit(),
        )
        .await
        .unwrap()
        .applied()
        .expect("created -> pending applies")
}

fn paid_patch(amount: i64) -> PaymentPatch {
    PaymentPatch {
        provider_trade_no: Some("2026112622001400000001".into()),
        paid_at: Some(T0 + 1_000),
        paid_amount: Some(Fen(amount)),
        payer_id: Some("2088000000000001".into()),
        ..PaymentPatch::default()
    }
}

fn paid_event(p: &Payment) -> Option<NewEvent> {
    Some(
        NewEvent::new(
            "payment.paid",
            json!({"id": p.id, "status": p.status.as_str()}),
        )
        .deliver_to(["https://merchant.example/hooks"]),
    )
}

async fn race_to_paid(stores: &[Store], id: &str, racers: usize) -> usize {
    let mut tasks = Vec::new();
    for i in 0..racers {
        let store = stores[i % stores.len()].clone();
        let id = id.to_string();
        tasks.push(tokio::spawn(async move {
            store
                .transition_payment(
                    &id,
                    None,
                    PaymentStatus::Paid,
                    &paid_patch(1000),
                    paid_event,
                    &audit(),
                )
                .await
                .unwrap()
                .is_applied()
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if t.await.unwrap() {
            applied += 1;
        }
    }
    applied
}

async fn check_fifty_concurrent_transitions(db: &Db) {
    let store = db.open().await;
    let p = pending_payment(&store, "race-1", 1000).await;
    let applied = race_to_paid(std::slice::from_ref(&store), &p.id, 50).await;
    assert_eq!(applied, 1, "{}: exactly one of 50 racers applies", db.label);

    let paid = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(paid.status, PaymentStatus::Paid);
    assert_eq!(paid.previous_status, Some(PaymentStatus::Pending));
    assert_eq!(paid.version, 2, "created(0) -> pending(1) -> paid(2)");
    assert_eq!(paid.paid_amount, Some(Fen(1000)));
    assert_eq!(
        paid.client_action,
        Some(json!({"qr_code": "https://qr.example/abc"})),
        "patch keeps unset columns"
    );
    let events = store.list_payment_events(&p.id).await.unwrap();
    assert_eq!(events.len(), 1, "{}: exactly one event", db.label);
    assert_eq!(events[0].kind, "payment.paid");
    assert_eq!(events[0].mode, Mode::Sandbox);
    assert_eq!(store.list_deliveries(&events[0].id).await.unwrap().len(), 1);
    let audit_rows = store.list_audit(&p.id).await.unwrap();
    let moves: Vec<_> = audit_rows
        .iter()
        .map(|a| (a.from_status.clone(), a.to_status.clone()))
        .collect();
    assert_eq!(
        moves,
        vec![
            (None, "created".to_string()),
            (Some("created".into()), "pending".into()),
            (Some("pending".into()), "paid".into())
        ]
    );

    {
        // Two separate pools play two gateway instances (or processes) on one database.
        let other = db.open().await;
        let q = pending_payment(&store, "race-2", 1000).await;
        let applied = race_to_paid(&[store.clone(), other.clone()], &q.id, 50).await;
        assert_eq!(applied, 1, "exactly once across two instances");
        assert_eq!(other.list_payment_events(&q.id).await.unwrap().len(), 1);
        assert_eq!(other.get_payment(&q.id).await.unwrap().unwrap().version, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_transitions_apply_exactly_once() {
    for db in dbs("fifty_concurrent").await {
        check_fifty_concurrent_transitions(&db).await;
    }
}

async fn check_illegal_transitions(db: &Db) {
    let store = db.open().await;
    let created = store
        .insert_payment(new_payment("alipay_main", "illegal-1", 500), &audit())
        .await
        .unwrap();
    let none = PaymentPatch::default();
    for to in [
        PaymentStatus::Refunded,
        PaymentStatus::PartiallyRefunded,
        PaymentStatus::Created,
    ] {
        let r = store
            .transition_payment(&created.id, None, to, &none, paid_event, &audit())
            .await
            .unwrap();
        assert_eq!(r, Applied::No, "{}: created -> {to} refused", db.label);
    }
    // A stale version is refused even for a legal move.
    let r = store
        .transition_payment(
            &created.id,
            Some(7),
            PaymentStatus::Pending,
            &none,
            |_| None,
            &audit(),
        )
        .await
        .unwrap();
    assert_eq!(r, Applied::No);
    assert_eq!(
        store
            .transition_payment(
                "pay_unknown",
                None,
                PaymentStatus::Paid,
                &none,
                paid_event,
                &audit()
            )
            .await
            .unwrap(),
        Applied::No
    );

    let p = pending_payment(&store, "illegal-2", 500).await;
    store
        .transition_payment(
            &p.id,
            None,
            PaymentStatus::Paid,
            &paid_patch(500),
            paid_event,
            &audit(),
        )
        .await
        .unwrap()
        .applied()
        .unwrap();
    for to in [
        PaymentStatus::Pending,
        PaymentStatus::Closed,
        PaymentStatus::Failed,
        PaymentStatus::Paid,
    ] {
        let r = store
            .transition_payment(&p.id, None, to, &none, paid_event, &audit())
            .await
            .unwrap();
        assert_eq!(r, Applied::No, "{}: paid -> {to} refused", db.label);
    }
    let after = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!((after.status, after.version), (PaymentStatus::Paid, 2));
    assert_eq!(store.list_payment_events(&p.id).await.unwrap().len(), 1);
    let untouched = store.get_payment(&created.id).await.unwrap().unwrap();
    assert_eq!(
        (untouched.status, untouched.version),
        (PaymentStatus::Created, 0)
    );
    assert!(store
        .list_payment_events(&created.id)
        .await
        .unwrap()
        .is_empty());

    // A late payment after close is legal and flagged by the caller's patch.
    let late = pending_payment(&store, "illegal-3", 500).await;
    store
        .transition_payment(
            &late.id,
            None,
            PaymentStatus::Closed,
            &none,
            |_| None,
            &audit(),
        )
        .await
        .unwrap()
        .applied()
        .unwrap();
    let patch = PaymentPatch {
        late_payment: Some(true),
        ..paid_patch(500)
    };
    let paid = store
        .transition_payment(
            &late.id,
            None,
            PaymentStatus::Paid,
            &patch,
            paid_event,
            &audit(),
        )
        .await
        .unwrap()
        .applied()
        .unwrap();
    assert!(paid.late_payment);
    assert_eq!(paid.previous_status, Some(PaymentStatus::Closed));
}

#[tokio::test]
async fn illegal_transitions_are_refused() {
    for db in dbs("illegal_transitions").await {
        check_illegal_transitions(&db).await;
    }
}

async fn check_duplicate_out_trade_no(db: &Db) {
    let store = db.open().await;
    let first = store
        .insert_payment(new_payment("acct_a", "order-1", 100), &audit())
        .await
        .unwrap();
    let err = store
        .insert_payment(new_payment("acct_a", "order-1", 200), &audit())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what: "out_trade_no", key } if key == "order-1"),
        "{}: {err:?}",
        db.label
    );
    // Unique per account only.
    store
        .insert_payment(new_payment("acct_b", "order-1", 300), &audit())
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
        store
            .insert_payment(new_payment("acct_a", "order-0", 0), &audit())
            .await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn duplicate_out_trade_no_is_a_conflict() {
    for db in dbs("duplicate_out_trade_no").await {
        check_duplicate_out_trade_no(&db).await;
    }
}

async fn paid_payment(store: &Store, out_trade_no: &str, amount: i64) -> Payment {
    let p = pending_payment(store, out_trade_no, amount).await;
    store
        .transition_payment(
            &p.id,
            None,
            PaymentStatus::Paid,
            &paid_patch(amount),
            paid_event,
            &audit(),
        )
        .await
        .unwrap()
        .applied()
        .unwrap()
}

async fn check_concurrent_refunds(db: &Db) {
    let store = db.open().await;
    let unpaid = pending_payment(&store, "refund-0", 1000).await;
    let err = store
        .create_refund(
            NewRefund {
                payment_id: unpaid.id.clone(),
                out_refund_no: "r0".into(),
                amount: Fen(1),
                reason: None,
            },
            |_| None,
            &audit(),
        )
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

    let p = paid_payment(&store, "refund-1", 1000).await;
    // Two pools: two gateway instances on PostgreSQL, two processes on one SQLite file.
    let stores = [store.clone(), db.open().await];
    let mut tasks = Vec::new();
    for i in 0..25 {
        let store = stores[i % stores.len()].clone();
        let payment_id = p.id.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_refund(
                    NewRefund {
                        payment_id,
                        out_refund_no: format!("r{i}"),
                        amount: Fen(150),
                        reason: None,
                    },
                    |r| Some(NewEvent::new("refund.created", json!({"id": r.id}))),
                    &audit(),
                )
                .await
        }));
    }
    let (mut created, mut refused) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => created.push(r),
            Err(StoreError::RefundExceedsPaid {
                requested,
                available,
                ..
            }) => {
                assert_eq!(requested, Fen(150));
                assert!(available.0 < 150);
                refused += 1;
            }
            Err(e) => panic!("{}: unexpected {e:?}", db.label),
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

    // Duplicate out_refund_no on the same payment.
    let dup = store
        .create_refund(
            NewRefund {
                payment_id: p.id.clone(),
                out_refund_no: created[0].out_refund_no.clone(),
                amount: Fen(10),
                reason: None,
            },
            |_| None,
            &audit(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            dup,
            StoreError::Conflict {
                what: "out_refund_no",
                ..
            }
        ),
        "{dup:?}"
    );

    // A failed refund frees its amount; successes move the payment.
    let failed = store
        .transition_refund(
            &created[0].id,
            None,
            RefundStatus::Failed,
            &RefundPatch {
                failure_reason: Some("NOT_ENOUGH".into()),
                ..RefundPatch::default()
            },
            |_| None,
            &audit(),
        )
        .await
        .unwrap()
        .applied()
        .unwrap();
    assert!(failed.payment.is_none());
    let extra = store
        .create_refund(
            NewRefund {
                payment_id: p.id.clone(),
                out_refund_no: "extra".into(),
                amount: Fen(250),
                reason: Some("remaining".into()),
            },
            |_| None,
            &audit(),
        )
        .await
        .unwrap();

    let mut succeed = created[1..].to_vec();
    succeed.push(extra);
    let mut last_status = PaymentStatus::Paid;
    for (n, r) in succeed.iter().enumerate() {
        let change = store
            .transition_refund(
                &r.id,
                Some(0),
                RefundStatus::Succeeded,
                &RefundPatch {
                    provider_refund_no: Some(format!("prov-{n}")),
                    succeeded_at: Some(T0 + 5),
                    ..RefundPatch::default()
                },
                |r| Some(NewEvent::new("refund.succeeded", json!({"id": r.id}))),
                &audit(),
            )
            .await
            .unwrap()
            .applied()
            .unwrap();
        let payment = change.payment.unwrap();
        last_status = payment.status;
        if n + 1 < succeed.len() {
            assert_eq!(payment.status, PaymentStatus::PartiallyRefunded);
        }
        // Applying the same success again changes nothing.
        let again = store
            .transition_refund(
                &r.id,
                None,
                RefundStatus::Succeeded,
                &RefundPatch::default(),
                |_| None,
                &audit(),
            )
            .await
            .unwrap();
        assert_eq!(again, Applied::No);
    }
    assert_eq!(last_status, PaymentStatus::Refunded);
    let p = store.get_payment(&p.id).await.unwrap().unwrap();
    assert_eq!(
        (p.status, p.refunded_amount, p.refundable()),
        (PaymentStatus::Refunded, Fen(1000), Fen(0))
    );
    let refund_events = store
        .list_payment_events(&p.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "refund.succeeded")
        .count();
    assert_eq!(refund_events, 6);
    assert!(matches!(
        store
            .create_refund(
                NewRefund {
                    payment_id: p.id.clone(),
                    out_refund_no: "late".into(),
                    amount: Fen(1),
                    reason: None
                },
                |_| None,
                &audit()
            )
            .await,
        Err(StoreError::NotRefundable {
            status: PaymentStatus::Refunded,
            ..
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refunds_never_exceed_the_paid_amount() {
    for db in dbs("concurrent_refunds").await {
        check_concurrent_refunds(&db).await;
    }
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
        all.push(store.insert_payment(np, &audit()).await.unwrap());
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
        store
            .insert_payment(
                new_payment("late", &format!("late-{}", seen.len()), 1),
                &audit(),
            )
            .await
            .unwrap();
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
