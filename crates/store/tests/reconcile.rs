//! Reconciliation bookkeeping on both dialects: runs, batches of matches and discrepancies,
//! batch lookups, and the day's unmatched local rows in keyset pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dbs, mark, seed_payment, T0};
use paybridge_core::{Fen, PaymentStatus};
use paybridge_store::{NewDiscrepancy, NewJob, StoreError};

fn discrepancy(kind: &str, no: &str) -> NewDiscrepancy {
    NewDiscrepancy {
        kind: kind.into(),
        entity: "payment".into(),
        out_trade_no: no.into(),
        out_refund_no: None,
        payment_id: None,
        refund_id: None,
        provider_trade_no: Some(format!("T{no}")),
        bill_amount: Some(Fen(100)),
        local_amount: None,
        bill_status: Some("SUCCESS".into()),
        local_status: None,
        healable: false,
    }
}

#[tokio::test]
async fn runs_batches_lookups_and_the_unmatched_sweep() {
    for db in dbs("reconcile_store").await {
        let store = db.open().await;
        let mut ids = Vec::new();
        for i in 0..25 {
            // One payment a millisecond: paid at T0 + i.
            db.clock.set(T0 + i);
            let p = seed_payment(&store, "acct", &format!("N{i:03}"), 100 + i).await;
            mark(&store, &p.id, PaymentStatus::Pending).await;
            mark(&store, &p.id, PaymentStatus::Paid).await;
            ids.push(p.id);
        }
        let nos: Vec<String> = (0..30).map(|i| format!("N{i:03}")).collect();
        let found = store
            .find_payments_by_out_trade_nos("acct", &nos)
            .await
            .unwrap();
        assert_eq!(found.len(), 25, "{}", db.label);
        assert!(store
            .find_payments_by_out_trade_nos("other", &nos)
            .await
            .unwrap()
            .is_empty());
        let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        assert!(matches!(
            store
                .find_payments_by_out_trade_nos("acct", &too_many)
                .await,
            Err(StoreError::Invalid(_))
        ));

        let run = store
            .start_reconciliation("acct", "2027-01-15")
            .await
            .unwrap();
        assert_eq!(run.state, "running");
        // The bill matched the first 20; two rows were unknown here.
        let recorded = store
            .record_reconciliation_batch(
                &run,
                &ids[..20],
                &[
                    discrepancy("missing_locally", "X1"),
                    discrepancy("missing_locally", "X2"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(recorded.len(), 2);
        // Recording the same matches again (a retried batch) is harmless.
        store
            .record_reconciliation_batch(&run, &ids[..20], &[])
            .await
            .unwrap();
        let mut left = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_unreconciled_payments("acct", T0, T0 + 86_400_000, after.as_deref(), 2)
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            left.extend(page.into_iter().map(|p| p.out_trade_no));
        }
        assert_eq!(
            left,
            vec!["N020", "N021", "N022", "N023", "N024"],
            "{}",
            db.label
        );
        // Outside the window nothing is missing.
        assert!(store
            .list_unreconciled_payments("acct", T0 + 100, T0 + 200, None, 10)
            .await
            .unwrap()
            .is_empty());
        let totals = store
            .local_day_totals("acct", T0, T0 + 86_400_000)
            .await
            .unwrap();
        assert_eq!(totals.payment_count, 25);
        assert_eq!(totals.payment_amount, Fen((100..125).sum()));
        assert_eq!(totals.refund_count, 0);

        assert!(store
            .resolve_discrepancy(&recorded[0], "healed", Some("query: paid"))
            .await
            .unwrap());
        assert!(!store
            .resolve_discrepancy("dsc_nope", "healed", None)
            .await
            .unwrap());
        let first = store.list_discrepancies(&run.id, None, 1).await.unwrap();
        let rest = store
            .list_discrepancies(&run.id, Some(&first[0].id), 10)
            .await
            .unwrap();
        assert_eq!(first.len() + rest.len(), 2);
        let healed = first
            .iter()
            .chain(&rest)
            .find(|d| d.id == recorded[0])
            .unwrap();
        assert_eq!(healed.resolution, "healed");
        assert_eq!(healed.detail.as_deref(), Some("query: paid"));
        assert_eq!(healed.discrepancy.out_trade_no, "X1");

        let totals_json = serde_json::json!({"bill_rows": 22});
        let done = store
            .finish_reconciliation(&run.id, &totals_json, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (done.state.as_str(), &done.totals),
            ("completed", &totals_json)
        );
        let failed = store
            .start_reconciliation("acct", "2027-01-15")
            .await
            .unwrap();
        store
            .finish_reconciliation(&failed.id, &serde_json::json!({}), Some("no bill"))
            .await
            .unwrap();
        let runs = store
            .list_reconciliations("acct", "2027-01-15")
            .await
            .unwrap();
        assert_eq!(runs.len(), 2);
        let got = store.get_reconciliation(&failed.id).await.unwrap().unwrap();
        assert_eq!(
            (got.state.as_str(), got.error.as_deref()),
            ("failed", Some("no bill"))
        );
    }
}

#[tokio::test]
async fn a_long_job_keeps_its_lease_and_only_its_owner_can_renew_it() {
    for db in dbs("reconcile_lease").await {
        let store = db.open().await;
        store
            .schedule_job(&NewJob {
                kind: "reconcile.daily".into(),
                key: "acct".into(),
                payment_id: None,
                refund_id: None,
                payload: serde_json::json!({}),
                run_at: T0,
            })
            .await
            .unwrap();
        let jobs = store.claim_jobs("a", T0, 10, 60_000).await.unwrap();
        assert_eq!(jobs.len(), 1);
        assert!(store
            .extend_job_lease(&jobs[0].id, "a", T0 + 120_000)
            .await
            .unwrap());
        assert!(!store
            .extend_job_lease(&jobs[0].id, "b", T0 + 999_000)
            .await
            .unwrap());
        // The first lease would have lapsed; the renewed one still holds.
        assert!(store
            .claim_jobs("b", T0 + 60_000, 10, 60_000)
            .await
            .unwrap()
            .is_empty());
        let taken = store
            .claim_jobs("b", T0 + 120_000, 10, 60_000)
            .await
            .unwrap();
        assert_eq!(taken.len(), 1, "{}", db.label);
        assert!(!store
            .extend_job_lease(&jobs[0].id, "a", T0 + 300_000)
            .await
            .unwrap());
    }
}
