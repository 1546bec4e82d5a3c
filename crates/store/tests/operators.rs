//! Operators, sessions, one-time login links, login failures and operator audit rows, on
//! SQLite and (when configured) PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{begin_new, dbs, mark, new_payment, request_refund, Db};
use paybridge_core::{Fen, Mode, PaymentStatus};
use paybridge_store::{Audit, OperatorRole, PaymentFilter, SessionPolicy, StoreError};

const POLICY: SessionPolicy = SessionPolicy {
    idle_ms: 30 * 60_000,
    absolute_ms: 2 * 3_600_000,
};

async fn check_operators(db: &Db) {
    let store = db.open().await;
    let alice = store
        .create_operator("alice", OperatorRole::Admin, "$argon2id$h1")
        .await
        .unwrap();
    assert_eq!(alice.role, OperatorRole::Admin);
    assert!(!alice.disabled);
    let dup = store
        .create_operator("alice", OperatorRole::Viewer, "$argon2id$h2")
        .await;
    assert!(
        matches!(dup, Err(StoreError::Conflict { .. })),
        "{}",
        db.label
    );
    assert!(matches!(
        store
            .create_operator("bad name", OperatorRole::Viewer, "x")
            .await,
        Err(StoreError::Invalid(_))
    ));
    store
        .create_operator("bob", OperatorRole::Viewer, "$argon2id$hb")
        .await
        .unwrap();
    let names: Vec<String> = store
        .list_operators()
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.username)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let (op, hash) = store.operator_credentials("alice").await.unwrap().unwrap();
    assert_eq!(
        (op.id.as_str(), hash.expose().as_str()),
        (alice.id.as_str(), "$argon2id$h1")
    );
    assert!(store.operator_credentials("carol").await.unwrap().is_none());

    // A session lives while used, dies idle, and never outlives its absolute expiry.
    let token = store
        .create_session(&alice.id, Mode::Sandbox, POLICY)
        .await
        .unwrap();
    let s = store
        .session(token.expose(), POLICY)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (s.operator.username.as_str(), s.mode),
        ("alice", Mode::Sandbox)
    );
    assert!(store
        .session("not-a-token", POLICY)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .set_session_mode(token.expose(), Mode::Live)
        .await
        .unwrap());
    for _ in 0..3 {
        db.clock.advance(25 * 60_000);
        let s = store.session(token.expose(), POLICY).await.unwrap();
        assert_eq!(
            s.map(|s| s.mode),
            Some(Mode::Live),
            "{}: used within the idle time",
            db.label
        );
    }
    db.clock.advance(50 * 60_000); // 125 min after login: past the absolute 2 h
    assert!(store
        .session(token.expose(), POLICY)
        .await
        .unwrap()
        .is_none());
    let idle = store
        .create_session(&alice.id, Mode::Live, POLICY)
        .await
        .unwrap();
    db.clock.advance(31 * 60_000);
    assert!(
        store
            .session(idle.expose(), POLICY)
            .await
            .unwrap()
            .is_none(),
        "{}",
        db.label
    );

    // Logout ends a session; disabling and password resets end all of the operator's.
    let t1 = store
        .create_session(&alice.id, Mode::Live, POLICY)
        .await
        .unwrap();
    store.delete_session(t1.expose()).await.unwrap();
    assert!(store.session(t1.expose(), POLICY).await.unwrap().is_none());
    let t2 = store
        .create_session(&alice.id, Mode::Live, POLICY)
        .await
        .unwrap();
    let reset = store
        .set_operator_password("alice", "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(reset.id, alice.id);
    assert!(store.session(t2.expose(), POLICY).await.unwrap().is_none());
    let (_, hash) = store.operator_credentials("alice").await.unwrap().unwrap();
    assert_eq!(hash.expose(), "$argon2id$new");
    let t3 = store
        .create_session(&alice.id, Mode::Live, POLICY)
        .await
        .unwrap();
    assert!(
        store
            .set_operator_disabled("alice", true)
            .await
            .unwrap()
            .disabled
    );
    assert!(store.session(t3.expose(), POLICY).await.unwrap().is_none());
    let t4 = store
        .create_session(&alice.id, Mode::Live, POLICY)
        .await
        .unwrap();
    assert!(
        store.session(t4.expose(), POLICY).await.unwrap().is_none(),
        "disabled"
    );
    assert!(
        !store
            .set_operator_disabled("alice", false)
            .await
            .unwrap()
            .disabled
    );
    assert!(matches!(
        store.set_operator_disabled("nobody", true).await,
        Err(StoreError::NotFound { .. })
    ));

    // Login links work once, and not after their expiry.
    let link = store.create_login_token(&alice.id, 60_000).await.unwrap();
    let first = store.redeem_login_token(link.expose()).await.unwrap();
    assert_eq!(first.map(|o| o.username), Some("alice".to_string()));
    assert!(store
        .redeem_login_token(link.expose())
        .await
        .unwrap()
        .is_none());
    let late = store.create_login_token(&alice.id, 60_000).await.unwrap();
    db.clock.advance(60_001);
    assert!(store
        .redeem_login_token(late.expose())
        .await
        .unwrap()
        .is_none());
    assert!(store.redeem_login_token("unknown").await.unwrap().is_none());

    // Failures are counted per subject over the window and cleared on success.
    store
        .record_login_failure(&["user:alice", "addr:127.0.0.1"], 900_000)
        .await
        .unwrap();
    store
        .record_login_failure(&["user:alice"], 900_000)
        .await
        .unwrap();
    assert_eq!(
        store.login_failures("user:alice", 900_000).await.unwrap(),
        2
    );
    assert_eq!(
        store
            .login_failures("addr:127.0.0.1", 900_000)
            .await
            .unwrap(),
        1
    );
    db.clock.advance(900_000);
    assert_eq!(
        store.login_failures("user:alice", 900_000).await.unwrap(),
        0
    );
    store
        .record_login_failure(&["user:alice"], 900_000)
        .await
        .unwrap();
    assert_eq!(
        store.login_failures("user:alice", 900_000).await.unwrap(),
        1
    );
    store.clear_login_failures("user:alice").await.unwrap();
    assert_eq!(
        store.login_failures("user:alice", 900_000).await.unwrap(),
        0
    );

    // Operator actions land in the one audit log, with who and why.
    store
        .record_action(
            &Audit::new("operator:alice", "merchant asked"),
            "event",
            "evt_1",
            "redelivered",
        )
        .await
        .unwrap();
    let actions = store.list_operator_actions(10).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(
        (
            actions[0].actor.as_str(),
            actions[0].reason.as_str(),
            actions[0].to_status.as_str()
        ),
        ("operator:alice", "merchant asked", "redelivered")
    );
    assert_eq!(store.list_audit("evt_1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn operators_sessions_and_throttling() {
    for db in dbs("operators").await {
        check_operators(&db).await;
    }
}

/// What the console searches by: amount range and one reference (id, order or provider number);
/// and the newest refunds of a mode.
async fn check_console_queries(db: &Db) {
    let store = db.open().await;
    let small = begin_new(&store, new_payment("a", "ORDER-S", 100))
        .await
        .unwrap();
    let big = begin_new(&store, new_payment("a", "ORDER-B", 5_000))
        .await
        .unwrap();
    let mut live = new_payment("a", "ORDER-L", 5_000);
    live.mode = Mode::Live;
    let live = begin_new(&store, live).await.unwrap();
    let ids = |f: PaymentFilter| {
        let store = store.clone();
        async move {
            let page = store.list_payments(&f, None, 100).await.unwrap();
            page.items.into_iter().map(|p| p.id).collect::<Vec<_>>()
        }
    };
    let sandbox = PaymentFilter {
        mode: Some(Mode::Sandbox),
        ..PaymentFilter::default()
    };
    let ranged = PaymentFilter {
        amount_min: Some(Fen(1_000)),
        amount_max: Some(Fen(5_000)),
        ..sandbox.clone()
    };
    assert_eq!(ids(ranged).await, vec![big.id.clone()], "{}", db.label);
    for reference in [small.id.clone(), "ORDER-S".to_string()] {
        let f = PaymentFilter {
            reference: Some(reference),
            ..sandbox.clone()
        };
        assert_eq!(ids(f).await, vec![small.id.clone()]);
    }
    let other_mode = PaymentFilter {
        reference: Some(live.id.clone()),
        ..sandbox.clone()
    };
    assert!(ids(other_mode).await.is_empty(), "modes never mix");

    mark(&store, &small.id, PaymentStatus::Paid).await;
    request_refund(&store, &small.id, "RF-1", 40).await.unwrap();
    let refunds = store
        .list_recent_refunds(Mode::Sandbox, None, 10)
        .await
        .unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!(
        (refunds[0].out_refund_no.as_str(), refunds[0].amount),
        ("RF-1", Fen(40))
    );
    assert!(store
        .list_recent_refunds(Mode::Live, None, 10)
        .await
        .unwrap()
        .is_empty());

    // Events newest first; "undelivered" keeps those with a delivery still to make.
    let big_paid = common::observe_with(
        &store,
        &big.id,
        common::provider_says(paybridge_core::channel::ProviderPaymentStatus::Paid),
        &paybridge_store::PaymentPatch::default(),
        &["hook"],
    )
    .await
    .unwrap();
    assert!(big_paid.changed);
    let events = store
        .list_recent_events(Mode::Sandbox, false, 10)
        .await
        .unwrap();
    assert!(events.len() >= 2, "{}", db.label);
    assert_eq!(events[0].payment_id.as_deref(), Some(big.id.as_str()));
    // Deliver the newest event's webhook: only the older one is still undelivered.
    let delivery = store
        .list_deliveries(&events[0].id)
        .await
        .unwrap()
        .remove(0);
    let attempt = paybridge_store::DeliveryAttempt {
        now: store.now_ms(),
        status_code: Some(200),
        error: None,
        outcome: paybridge_store::DeliveryOutcome::Delivered,
    };
    store
        .record_delivery_attempt(&delivery.id, &attempt)
        .await
        .unwrap();
    let undelivered = store
        .list_recent_events(Mode::Sandbox, true, 10)
        .await
        .unwrap();
    assert_eq!(undelivered.len(), 1, "{}", db.label);
    assert_eq!(
        undelivered[0].payment_id.as_deref(),
        Some(small.id.as_str())
    );
    assert!(store
        .list_recent_events(Mode::Live, false, 10)
        .await
        .unwrap()
        .is_empty());

    // The dashboard's figures: both sandbox payments were paid (100 + 5000 fen).
    let stats = store.payment_stats(Mode::Sandbox, 0).await.unwrap();
    let of = |status: PaymentStatus| {
        stats
            .iter()
            .find(|s| s.status == status)
            .map(|s| (s.account.clone(), s.count, s.amount))
    };
    assert_eq!(
        of(PaymentStatus::Paid),
        Some(("a".to_string(), 2, Fen(5_100))),
        "{}",
        db.label
    );
    assert!(store
        .payment_stats(Mode::Sandbox, store.now_ms() + 1)
        .await
        .unwrap()
        .is_empty());
    let backlog = store.webhook_backlog(Mode::Sandbox).await.unwrap();
    assert_eq!(backlog.len(), 1);
    assert_eq!((backlog[0].pending, backlog[0].failed), (1, 0));
    assert!(store.webhook_backlog(Mode::Live).await.unwrap().is_empty());
    assert!(store.open_discrepancies().await.unwrap().is_empty());
    assert!(store.failed_verifications(0).await.unwrap().is_empty());
    let overdue = store
        .overdue_jobs(store.now_ms() + 3_600_000)
        .await
        .unwrap();
    assert!(overdue.iter().all(|(_, n)| *n > 0));
}

#[tokio::test]
async fn console_payment_search_and_refunds() {
    for db in dbs("console_queries").await {
        check_console_queries(&db).await;
    }
}
