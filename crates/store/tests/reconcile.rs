//! Reconciliation bookkeeping on both dialects: runs queued and begun, a bill staged and
//! matched set-based (the yardstick statement agreeing with the recording one), what is
//! recorded, and the neighbouring-day matches.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{dbs, mark, seed_payment, T0};
use paybridge_core::{Fen, PaymentStatus};
use paybridge_store::{
    BillRow, DayWindow, MatchRule, NewJob, RunMatched, BILL_SUCCESS, MISSING_AT_PROVIDER,
    MISSING_LOCALLY,
};

fn row(no: &str, fen: i64) -> BillRow {
    BillRow {
        refund: false,
        out_trade_no: no.into(),
        out_refund_no: None,
        provider_trade_no: format!("T{no}"),
        amount: Fen(fen),
        status: BILL_SUCCESS.into(),
    }
}

/// A success row against a paid payment of another amount is the only rule here.
fn rules() -> Vec<MatchRule> {
    vec![MatchRule {
        refund: false,
        bill_success: true,
        amounts_equal: false,
        local_status: "paid",
        kind: "amount_mismatch",
        healable: false,
    }]
}

#[tokio::test]
async fn runs_a_staged_bill_and_what_its_matching_records() {
    for db in dbs("reconcile_store").await {
        let store = db.open().await;
        for i in 0..25 {
            // One payment a millisecond: paid at T0 + i.
            db.clock.set(T0 + i);
            let p = seed_payment(&store, "acct", &format!("N{i:03}"), 100 + i).await;
            mark(&store, &p.id, PaymentStatus::Pending).await;
            mark(&store, &p.id, PaymentStatus::Paid).await;
        }
        let queued = store
            .queue_reconciliation("acct", "2027-01-15")
            .await
            .unwrap();
        assert_eq!(queued.state, "queued");
        db.clock.set(T0 + 1000);
        let run = store
            .begin_reconciliation(&queued.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((run.state.as_str(), run.started_at), ("running", T0 + 1000));
        assert_eq!(run.created_at, queued.created_at);
        store
            .record_reconciliation_progress(&run.id, 7)
            .await
            .unwrap();
        assert_eq!(
            store
                .get_reconciliation(&run.id)
                .await
                .unwrap()
                .unwrap()
                .rows_read,
            7
        );

        // The bill has the first 20 (N005 one fen high) and two rows unknown here; N000 was
        // paid "yesterday" in this window, so it is remembered as matched elsewhere.
        let window = DayWindow {
            from: T0 + 1,
            to: T0 + 1000,
            day_end: T0 + 86_400_000,
        };
        let mut rows: Vec<BillRow> = (0..20).map(|i| row(&format!("N{i:03}"), 100 + i)).collect();
        rows[5].amount = Fen(106);
        rows.push(row("X1", 1));
        rows.push(row("X2", 2));
        let mut stage = store.stage_bill("acct").await.unwrap();
        stage.load(&rows[..10]).await.unwrap();
        stage.load(&rows[10..]).await.unwrap();
        stage.loaded().await.unwrap();
        assert_eq!(stage.rows(), 22);
        let yardstick = stage.count_discrepancies(&rules(), window).await.unwrap();
        let counts = stage.find_discrepancies(&rules(), window).await.unwrap();
        assert_eq!(counts, yardstick, "{}", db.label);
        assert_eq!(counts.rows_matched, 20);
        assert_eq!(counts.of(MISSING_LOCALLY), 2);
        assert_eq!(counts.of("amount_mismatch"), 1);
        // N020..N024 settled in the window without a bill row.
        assert_eq!(counts.of(MISSING_AT_PROVIDER), 5, "{}", db.label);
        let totals = serde_json::json!({"bill_rows": 22});
        let recorded = stage
            .record(
                &store,
                &run,
                window,
                &counts,
                RunMatched {
                    rows_read: 22,
                    bill_sha256: Some("ab"),
                    totals: &totals,
                },
            )
            .await
            .unwrap();
        stage.close().await.unwrap();
        assert_eq!(
            (
                recorded.rows_read,
                recorded.rows_matched,
                recorded.bill_sha256.as_deref()
            ),
            (22, 20, Some("ab"))
        );
        assert!(recorded.matched_at.is_some());

        let mut first = store.list_discrepancies(&run.id, None, 3).await.unwrap();
        let rest = store
            .list_discrepancies(&run.id, Some(&first[2].id), 100)
            .await
            .unwrap();
        first.extend(rest);
        // In recording order: bill rows in bill order, then local rows.
        let seen: Vec<(&str, &str)> = first
            .iter()
            .map(|d| {
                (
                    d.discrepancy.kind.as_str(),
                    d.discrepancy.out_trade_no.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("amount_mismatch", "N005"),
                ("missing_locally", "X1"),
                ("missing_locally", "X2"),
                ("missing_at_provider", "N020"),
                ("missing_at_provider", "N021"),
                ("missing_at_provider", "N022"),
                ("missing_at_provider", "N023"),
                ("missing_at_provider", "N024"),
            ],
            "{}",
            db.label
        );
        let amount = &first[0];
        assert_eq!(amount.discrepancy.bill_amount, Some(Fen(106)));
        assert_eq!(amount.discrepancy.local_amount, Some(Fen(105)));
        assert_eq!(
            amount.discrepancy.provider_trade_no.as_deref(),
            Some("TN005")
        );
        assert_eq!(amount.resolution, "open");

        // A run of the day before does not call N000 missing: this run matched it.
        let before = DayWindow {
            from: T0 - 86_400_000,
            to: T0 + 1,
            day_end: T0 + 1,
        };
        let mut stage = store.stage_bill("acct").await.unwrap();
        stage.loaded().await.unwrap();
        let counts = stage.count_discrepancies(&rules(), before).await.unwrap();
        stage.close().await.unwrap();
        assert_eq!(counts.of(MISSING_AT_PROVIDER), 0, "{}", db.label);

        let healable = store
            .list_open_healable_discrepancies(&run.id, None, 10)
            .await
            .unwrap();
        assert!(healable.is_empty());
        assert!(store
            .resolve_discrepancy(&first[1].id, "healed", Some("query: paid"))
            .await
            .unwrap());
        assert!(!store
            .resolve_discrepancy("dsc_nope", "healed", None)
            .await
            .unwrap());
        let healed = store.get_discrepancy(&first[1].id).await.unwrap().unwrap();
        assert_eq!(
            (healed.resolution.as_str(), healed.detail.as_deref()),
            ("healed", Some("query: paid"))
        );
        assert!(store.get_discrepancy("dsc_nope").await.unwrap().is_none());
        // The dashboard counts what is neither healed nor resolved.
        assert_eq!(
            store.open_discrepancies().await.unwrap(),
            vec![("acct".to_string(), 7)]
        );
        let by = store.count_discrepancies(&run.id).await.unwrap();
        assert_eq!(
            by,
            vec![
                ("amount_mismatch".to_string(), "open".to_string(), 1),
                ("missing_at_provider".to_string(), "open".to_string(), 5),
                ("missing_locally".to_string(), "healed".to_string(), 1),
                ("missing_locally".to_string(), "open".to_string(), 1),
            ]
        );

        let local = store
            .local_day_totals("acct", T0, T0 + 86_400_000)
            .await
            .unwrap();
        assert_eq!(local.payment_count, 25);
        assert_eq!(local.payment_amount, Fen((100..125).sum()));
        assert_eq!(local.refund_count, 0);

        let done = store
            .finish_reconciliation(&run.id, &totals, None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((done.state.as_str(), &done.totals), ("completed", &totals));
        assert!(store.begin_reconciliation(&run.id).await.unwrap().is_none());
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
        let newest = store
            .list_account_reconciliations("acct", 10)
            .await
            .unwrap();
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[0].id, failed.id, "newest first");
        assert!(store
            .list_account_reconciliations("other", 10)
            .await
            .unwrap()
            .is_empty());
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
