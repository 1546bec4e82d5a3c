//! The operator's view the metrics sample (`Store::job_stats`, `delivery_backlog`,
//! `open_discrepancies`, `pool_stats`, `migrations_current`), on SQLite and (when configured)
//! PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dbs, observe_with, provider_says, seed_payment, T0};
use paybridge_core::channel::ProviderPaymentStatus;
use paybridge_store::{JobKindStats, KindFilter, NewJob, PaymentPatch};
use serde_json::Value;

fn job(kind: &str, key: &str, run_at: i64) -> NewJob {
    NewJob {
        kind: kind.into(),
        key: key.into(),
        payment_id: None,
        refund_id: None,
        payload: Value::Null,
        run_at,
    }
}

#[tokio::test]
async fn queues_are_counted_by_kind_and_age() {
    for db in dbs("stats_queues").await {
        let store = db.open().await;
        let now = store.now_ms();
        assert_eq!(now, T0);
        assert!(store.migrations_current().await.unwrap(), "{}", db.label);

        // stats.a: one due two minutes ago (overdue), one due 10 s ago, one not yet due.
        store
            .schedule_job(&job("stats.a", "1", now - 120_000))
            .await
            .unwrap();
        store
            .schedule_job(&job("stats.a", "2", now - 10_000))
            .await
            .unwrap();
        store
            .schedule_job(&job("stats.a", "3", now + 3_600_000))
            .await
            .unwrap();
        // stats.b: one claimed under a live lease, one whose lease lapsed 90 s ago.
        store
            .schedule_job(&job("stats.b", "1", now - 200_000))
            .await
            .unwrap();
        store
            .claim_jobs_of(
                "gw-x",
                now - 200_000,
                1,
                110_000,
                KindFilter::Only("stats.b"),
            )
            .await
            .unwrap();
        // (Claimed while the first lease still runs, so the claim takes this one.)
        store
            .schedule_job(&job("stats.b", "2", now - 95_000))
            .await
            .unwrap();
        let claimed = store
            .claim_jobs_of(
                "gw-y",
                now - 95_000,
                1,
                200_000,
                KindFilter::Only("stats.b"),
            )
            .await
            .unwrap();
        assert_eq!(claimed[0].key, "2");

        let stats: Vec<JobKindStats> = store
            .job_stats(now, 60_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.kind.starts_with("stats."))
            .collect();
        assert_eq!(
            stats,
            vec![
                JobKindStats {
                    kind: "stats.a".into(),
                    due: 2,
                    running: 0,
                    overdue: 1,
                    oldest_due_at: Some(now - 120_000),
                },
                JobKindStats {
                    kind: "stats.b".into(),
                    // The lapsed lease (until now - 90 s) is claimable again, and overdue.
                    due: 1,
                    running: 1,
                    overdue: 1,
                    oldest_due_at: Some(now - 90_000),
                },
            ],
            "{}",
            db.label
        );

        // Two endpoints get the paid event; one delivers, the other stays pending.
        let p = seed_payment(&store, "acct", "STATS-1", 100).await;
        db.clock.advance(5_000);
        observe_with(
            &store,
            &p.id,
            provider_says(ProviderPaymentStatus::Paid),
            &PaymentPatch::default(),
            &["ok", "down"],
        )
        .await
        .unwrap();
        let backlog = store.delivery_backlog().await.unwrap();
        assert_eq!(backlog.len(), 2, "{backlog:?}");
        for (_, b) in &backlog {
            assert_eq!(b.pending, 1);
            assert_eq!(b.oldest_created_at, Some(T0 + 5_000));
        }
        let due = store
            .claim_due_deliveries_of(
                store.now_ms(),
                10,
                60_000,
                paybridge_store::EndpointFilter::Only("ok"),
            )
            .await
            .unwrap();
        assert_eq!(due.len(), 1);
        store
            .record_delivery_attempt(
                &due[0].delivery.id,
                &paybridge_store::DeliveryAttempt {
                    now: store.now_ms(),
                    status_code: Some(200),
                    error: None,
                    outcome: paybridge_store::DeliveryOutcome::Delivered,
                },
            )
            .await
            .unwrap();
        let backlog = store.delivery_backlog().await.unwrap();
        assert_eq!(backlog.len(), 1);
        assert_eq!(backlog[0].0, "down");

        assert!(store.open_discrepancies().await.unwrap().is_empty());
        let pool = store.pool_stats();
        assert_eq!(pool.max, 5);
        assert!(pool.idle <= pool.open && pool.open <= pool.max);
    }
}
