//! Group commit: many notifications' units of work in one transaction, each applied exactly
//! once, a broken one failing alone, several writers never deadlocking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use paybridge_core::channel::ProviderPaymentStatus;
use paybridge_core::decide::PaymentObservation;
use paybridge_core::{Channel, Fen, PaymentStatus};
use paybridge_store::{
    GroupCommit, GroupPolicy, InboxEntry, NewNotification, Payment, PaymentPatch, Store, StoreError,
};

fn paid(amount: i64) -> PaymentObservation {
    PaymentObservation::Provider {
        status: ProviderPaymentStatus::Paid,
        amount: Some(Fen(amount)),
    }
}

fn entry(notify_id: &str) -> InboxEntry {
    InboxEntry::new(
        NewNotification {
            channel: Channel::Alipay,
            account: "alipay_main".into(),
            path: "/notify/alipay/alipay_main".into(),
            headers: vec![],
            body: format!("notify_id={notify_id}").into_bytes(),
            remote_addr: None,
        },
        Some(notify_id.to_string()),
    )
}

async fn pending(store: &Store, n: usize) -> Vec<Payment> {
    let mut out = Vec::new();
    for i in 0..n {
        let p = seed_payment(store, "alipay_main", &format!("grp-{i}"), 1000).await;
        out.push(mark(store, &p.id, PaymentStatus::Pending).await);
    }
    out
}

/// A paid notification for `id` through the group commit; its inbox outcome.
async fn notify(
    group: &GroupCommit,
    now: i64,
    id: &str,
    notify_id: &str,
) -> Result<&'static str, StoreError> {
    let e = entry(notify_id);
    let applied = group
        .apply_payment(id, render_payment, move |cur| {
            let mut plan = payment_plan(now, cur, paid(1000), &PaymentPatch::default(), &[HOOK]);
            plan.inbox = Some(e.clone());
            plan
        })
        .await?
        .expect("the payment exists");
    Ok(applied.inbox.expect("recorded").outcome)
}

/// Holds every unit of a burst in one batch: the writer waits (up to far longer than the burst
/// takes to queue) until the batch is full.
fn one_batch_of(n: usize) -> GroupPolicy {
    GroupPolicy {
        writers: 1,
        max_batch: n,
        max_wait: Duration::from_secs(30),
    }
}

async fn check_one_commit_for_a_burst(db: &Db) {
    let store = db.open().await;
    let payments = pending(&store, 19).await;
    let group = std::sync::Arc::new(GroupCommit::new(store.clone(), one_batch_of(20)));
    let now = store.now_ms();
    // 19 payments, and the first one's notification twice: 20 units.
    let mut calls: Vec<(String, String)> = payments
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), format!("n-{i}")))
        .collect();
    calls.push((payments[0].id.clone(), "n-0".into()));
    let tasks: Vec<_> = calls
        .into_iter()
        .map(|(id, nid)| {
            let group = group.clone();
            tokio::spawn(async move { notify(&group, now, &id, &nid).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().unwrap());
    }
    outcomes.sort();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "applied").count(),
        19,
        "{}: {outcomes:?}",
        db.label
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "duplicate").count(),
        1,
        "{}: the second copy in the same transaction is a duplicate",
        db.label
    );
    let stats = group.stats();
    assert_eq!(
        (stats.batches, stats.units, stats.fallbacks),
        (1, 20, 0),
        "{}: one transaction for the burst",
        db.label
    );
    for p in &payments {
        let now = store.get_payment(&p.id).await.unwrap().unwrap();
        assert_eq!(now.status, PaymentStatus::Paid);
        assert_eq!(now.version, 2, "{}: moved once", db.label);
        assert_eq!(store.list_payment_events(&p.id).await.unwrap().len(), 1);
    }
    assert_eq!(
        store
            .list_payment_notifications(&payments[0].id)
            .await
            .unwrap()
            .len(),
        2,
        "{}: both copies are in the inbox",
        db.label
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_notifications_shares_one_commit_and_applies_each_once() {
    for db in dbs("group_burst").await {
        check_one_commit_for_a_burst(&db).await;
    }
}

async fn check_broken_unit_fails_alone(db: &Db) {
    let store = db.open().await;
    let payments = pending(&store, 10).await;
    let group = std::sync::Arc::new(GroupCommit::new(store.clone(), one_batch_of(10)));
    let now = store.now_ms();
    let broken = payments[4].id.clone();
    let tasks: Vec<_> = payments
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let (group, id, broken) = (group.clone(), p.id.clone(), broken.clone());
            tokio::spawn(async move {
                let e = entry(&format!("b-{i}"));
                group
                    .apply_payment(&id, render_payment, move |cur| {
                        let mut plan =
                            payment_plan(now, cur, paid(1000), &PaymentPatch::default(), &[HOOK]);
                        plan.inbox = Some(e.clone());
                        if cur.id == broken {
                            // A plan the store must refuse: pending -> created.
                            plan.to = Some(PaymentStatus::Created);
                        }
                        plan
                    })
                    .await
                    .map(|a| a.map(|a| a.changed))
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    for (p, r) in payments.iter().zip(&results) {
        let row = store.get_payment(&p.id).await.unwrap().unwrap();
        if p.id == broken {
            assert!(
                matches!(r, Err(StoreError::Invariant(_))),
                "{}: the broken unit fails: {r:?}",
                db.label
            );
            assert_eq!(row.status, PaymentStatus::Pending, "{}", db.label);
            assert!(
                store
                    .list_payment_notifications(&p.id)
                    .await
                    .unwrap()
                    .is_empty(),
                "{}: nothing of the broken unit was written",
                db.label
            );
        } else {
            assert!(
                matches!(r, Ok(Some(true))),
                "{}: the others commit: {r:?}",
                db.label
            );
            assert_eq!(row.status, PaymentStatus::Paid, "{}", db.label);
        }
    }
    let stats = group.stats();
    assert_eq!(stats.fallbacks, 1, "{}: {stats:?}", db.label);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_unit_fails_alone_and_the_rest_of_its_batch_commits() {
    for db in dbs("group_broken").await {
        check_broken_unit_fails_alone(&db).await;
    }
}

async fn check_many_writers(db: &Db) {
    let store = db.open().await;
    let payments = pending(&store, 20).await;
    let group = std::sync::Arc::new(GroupCommit::new(
        store.clone(),
        GroupPolicy {
            writers: 4,
            max_batch: 8,
            max_wait: Duration::ZERO,
        },
    ));
    let now = store.now_ms();
    // Every payment notified 6 times (distinct notify ids, as a provider's retries after lost
    // answers), while single units of work race on the same rows outside the group.
    let mut tasks = Vec::new();
    for round in 0..6 {
        for p in &payments {
            let (group, id) = (group.clone(), p.id.clone());
            tasks.push(tokio::spawn(async move {
                notify(&group, now, &id, &format!("{id}-{round}")).await
            }));
        }
    }
    let mut singles = Vec::new();
    for p in &payments {
        let (store, id) = (store.clone(), p.id.clone());
        singles.push(tokio::spawn(async move {
            observe_with(&store, &id, paid(1000), &PaymentPatch::default(), &[HOOK])
                .await
                .unwrap()
                .changed
        }));
    }
    let mut applied = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() == "applied" {
            applied += 1;
        }
    }
    for t in singles {
        if t.await.unwrap() {
            applied += 1;
        }
    }
    assert_eq!(applied, 20, "{}: each payment moved exactly once", db.label);
    for p in &payments {
        let row = store.get_payment(&p.id).await.unwrap().unwrap();
        assert_eq!((row.status, row.version), (PaymentStatus::Paid, 2));
        assert_eq!(store.list_payment_events(&p.id).await.unwrap().len(), 1);
    }
    assert_eq!(
        group.stats().units,
        120,
        "{}: every notification went through the writers",
        db.label
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_writers_and_single_units_never_deadlock_or_double_apply() {
    for db in dbs("group_writers").await {
        check_many_writers(&db).await;
    }
}
