//! The engine over a real database (a SQLite file; PostgreSQL when PAYBRIDGE_TEST_PG_URL is
//! set) with bills in both providers' real formats (written by the sandbox's bill writers):
//! every kind of discrepancy is recorded, healable ones go through the healer, matched rows
//! are not reported, and a re-run of a healed day is clean.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../store/tests/common/mod.rs"]
mod common;

use async_trait::async_trait;
use common::{
    dbs, mark, observe, observe_refund, provider_says, provider_says_refund, seed_payment,
    seed_refund, T0,
};
use paybridge_core::channel::{ProviderPaymentStatus, ProviderRefundStatus};
use paybridge_core::{Fen, PaymentStatus, RefundStatus};
use paybridge_reconcile::{parse_bill_date, BillBytes, BillFile, Engine, Healer, ReconcileError};
use paybridge_sandbox::bills::{alipay_bill_zip, wechat_trade_bill, BillEntry};
use paybridge_store::Store;

const ACCOUNT: &str = "acct";
/// T0 is 2027-01-15 16:00 in Beijing.
const DAY: &str = "2027-01-15";

/// Plays the gateway's active query: the "provider" has these orders paid.
struct ProviderSays {
    store: Store,
    paid: Vec<&'static str>,
}

#[async_trait]
impl Healer for ProviderSays {
    async fn heal_payment(&self, payment_id: &str) -> Result<PaymentStatus, String> {
        let p = self.store.get_payment(payment_id).await.unwrap().unwrap();
        if self.paid.contains(&p.out_trade_no.as_str()) {
            observe(
                &self.store,
                &p.id,
                provider_says(ProviderPaymentStatus::Paid),
            )
            .await;
        }
        Ok(self
            .store
            .get_payment(payment_id)
            .await
            .unwrap()
            .unwrap()
            .status)
    }

    async fn heal_refund(&self, refund_id: &str) -> Result<RefundStatus, String> {
        Ok(observe_refund(
            &self.store,
            refund_id,
            provider_says_refund(ProviderRefundStatus::Succeeded),
        )
        .await
        .refund
        .status)
    }
}

/// A payment on the local books, moved through `to` by the observations that mean it.
async fn payment(store: &Store, no: &str, fen: i64, to: &[PaymentStatus]) -> String {
    let p = seed_payment(store, ACCOUNT, no, fen).await;
    for status in to {
        mark(store, &p.id, *status).await;
    }
    p.id
}

async fn refund(store: &Store, payment_id: &str, no: &str, fen: i64, succeed: bool) -> String {
    let r = seed_refund(store, payment_id, no, fen).await;
    if succeed {
        observe_refund(
            store,
            &r.id,
            provider_says_refund(ProviderRefundStatus::Succeeded),
        )
        .await;
    }
    r.id
}

fn entry(no: &str, fen: i64) -> BillEntry {
    BillEntry {
        at: T0,
        trade_no: format!("2027{no}"),
        out_trade_no: no.into(),
        app_id: "app".into(),
        account: "mch".into(),
        subject: "order".into(),
        buyer: "buyer".into(),
        scene: "NATIVE".into(),
        attach: String::new(),
        created_at: T0 - 60_000,
        amount: Fen(fen),
        refund: None,
        status: "SUCCESS".into(),
    }
}

fn refund_entry(no: &str, rno: &str, fen: i64) -> BillEntry {
    BillEntry {
        amount: Fen(-fen),
        refund: Some((format!("R{rno}"), rno.into())),
        status: "REFUND".into(),
        ..entry(no, 0)
    }
}

/// The day at the provider: what the local books below should be reconciled against.
fn provider_day() -> Vec<BillEntry> {
    vec![
        entry("ok", 100),
        entry("unknown", 300),
        entry("amount", 500),
        entry("pending", 700),
        entry("late", 800),
        entry("stuck", 900),
        BillEntry {
            status: "REVOKED".into(),
            ..entry("revoked", 400)
        },
        entry("refunded", 1000),
        refund_entry("refunded", "r1", 400),
        refund_entry("refunded", "r2", 100),
    ]
}

async fn local_books(store: &Store) {
    use PaymentStatus::*;
    payment(store, "ok", 100, &[Pending, Paid]).await;
    payment(store, "amount", 501, &[Pending, Paid]).await;
    payment(store, "pending", 700, &[Pending]).await;
    payment(store, "late", 800, &[Pending, Closed]).await;
    payment(store, "stuck", 900, &[Pending]).await;
    payment(store, "revoked", 400, &[Pending, Paid]).await;
    payment(store, "gone", 200, &[Pending, Paid]).await;
    let refunded = payment(store, "refunded", 1000, &[Pending, Paid]).await;
    refund(store, &refunded, "r1", 400, true).await;
    refund(store, &refunded, "r2", 100, false).await;
    refund(store, &refunded, "r3", 50, true).await;
}

fn bills(dir: &std::path::Path) -> Vec<(&'static str, BillFile)> {
    let rows = provider_day();
    // Alipay's detail table has no status column: the sandbox writes a status as a remark.
    let alipay_rows: Vec<BillEntry> = rows
        .iter()
        .cloned()
        .map(|mut r| {
            if r.status == "REVOKED" {
                r.status = "TRADE_CLOSED".into();
            }
            r
        })
        .collect();
    let zip = alipay_bill_zip("2088000000000000", DAY, &alipay_rows).unwrap();
    let zip_path = dir.join("alipay.zip");
    std::fs::write(&zip_path, &zip).unwrap();
    let text = wechat_trade_bill(&rows, "ALL").into_bytes();
    let text_path = dir.join("wechat.csv");
    std::fs::write(&text_path, &text).unwrap();
    vec![
        (
            "alipay zip in memory",
            BillFile::AlipayZip(BillBytes::Memory(zip)),
        ),
        (
            "alipay zip file",
            BillFile::AlipayZip(BillBytes::File(zip_path)),
        ),
        (
            "wechat text in memory",
            BillFile::WechatText(BillBytes::Memory(text)),
        ),
        (
            "wechat text file",
            BillFile::WechatText(BillBytes::File(text_path)),
        ),
    ]
}

#[tokio::test]
async fn every_discrepancy_is_recorded_and_safe_ones_heal() {
    let dir = tempfile::tempdir().unwrap();
    for (label, file) in bills(dir.path()) {
        for db in dbs("reconcile_engine").await {
            let store = db.open().await;
            // The books are settled at T0 and the run comes an hour later: what heals during
            // the run carries the run's time, after the window the run counts.
            local_books(&store).await;
            db.clock.set(T0 + 3_600_000);
            let healer = ProviderSays {
                store: store.clone(),
                paid: vec!["pending", "late"],
            };
            let engine = Engine::new(store.clone())
                .with_healer(&healer)
                .with_batch_size(3);
            let date = parse_bill_date(DAY).unwrap();
            let report = engine
                .reconcile_file(ACCOUNT, date, file.clone(), &())
                .await
                .unwrap();
            let ctx = format!("{label} on {}", db.label);
            let t = &report.totals;
            assert_eq!(report.run.state, "completed", "{ctx}");
            assert_eq!(t.bill_rows, 10, "{ctx}");
            assert_eq!(t.bill_payments, 7, "{ctx}");
            assert_eq!(
                t.bill_payment_amount,
                100 + 300 + 500 + 700 + 800 + 900 + 1000,
                "{ctx}"
            );
            assert_eq!((t.bill_refunds, t.bill_refund_amount), (2, 500), "{ctx}");
            assert_eq!(t.missing_locally, 1, "{ctx}");
            assert_eq!(t.amount_mismatch, 1, "{ctx}");
            // pending, late, stuck, revoked (paid locally), refund r2 pending
            assert_eq!(t.status_mismatch, 5, "{ctx}");
            // gone (payment) and r3 (refund)
            assert_eq!(t.missing_at_provider, 2, "{ctx}");
            assert_eq!((t.healed, t.heal_failed, t.open), (3, 1, 6), "{ctx}");
            // Local side: settled in the day before the run started (ok, amount, revoked, gone,
            // refunded); the two healed during the run carry the run's time.
            assert_eq!(t.local_payments, 5, "{ctx}");

            let recorded = store
                .list_discrepancies(&report.run.id, None, 100)
                .await
                .unwrap();
            let mut seen: Vec<(String, String, Option<String>, String)> = recorded
                .iter()
                .map(|r| {
                    (
                        r.discrepancy.kind.clone(),
                        r.discrepancy.out_trade_no.clone(),
                        r.discrepancy.out_refund_no.clone(),
                        r.resolution.clone(),
                    )
                })
                .collect();
            seen.sort();
            let s = |x: &str| x.to_string();
            let mut want = vec![
                (s("missing_locally"), s("unknown"), None, s("open")),
                (s("amount_mismatch"), s("amount"), None, s("open")),
                (s("status_mismatch"), s("pending"), None, s("healed")),
                (s("status_mismatch"), s("late"), None, s("healed")),
                (s("status_mismatch"), s("stuck"), None, s("heal_failed")),
                (s("status_mismatch"), s("revoked"), None, s("open")),
                (
                    s("status_mismatch"),
                    s("refunded"),
                    Some(s("r2")),
                    s("healed"),
                ),
                (s("missing_at_provider"), s("gone"), None, s("open")),
                (
                    s("missing_at_provider"),
                    s("refunded"),
                    Some(s("r3")),
                    s("open"),
                ),
            ];
            want.sort();
            assert_eq!(seen, want, "{ctx}");

            let get = |no: &'static str| {
                let store = store.clone();
                async move {
                    store
                        .get_payment_by_out_trade_no(ACCOUNT, no)
                        .await
                        .unwrap()
                        .unwrap()
                }
            };
            assert_eq!(get("pending").await.status, PaymentStatus::Paid, "{ctx}");
            let late = get("late").await;
            assert_eq!(late.status, PaymentStatus::Paid, "{ctx}");
            assert!(late.late_payment, "{ctx}");
            assert_eq!(get("stuck").await.status, PaymentStatus::Pending, "{ctx}");

            // Running the day again: what healed is matched now, the rest is still there.
            let again = engine
                .reconcile_file(ACCOUNT, date, file.clone(), &())
                .await
                .unwrap();
            let t = &again.totals;
            assert_eq!(
                (
                    t.missing_locally,
                    t.amount_mismatch,
                    t.status_mismatch,
                    t.missing_at_provider
                ),
                (1, 1, 2, 2),
                "{ctx} re-run"
            );
            assert_eq!(t.healed, 0, "{ctx} re-run");
            let runs = store.list_reconciliations(ACCOUNT, DAY).await.unwrap();
            assert_eq!(runs.len(), 2, "{ctx}");
            assert_eq!(runs[0].id, again.run.id, "{ctx}");
        }
    }
}

#[tokio::test]
async fn a_truncated_or_foreign_bill_fails_the_run_and_says_why() {
    let db = common::sqlite_db().await;
    let store = db.open().await;
    let engine = Engine::new(store.clone());
    let date = parse_bill_date(DAY).unwrap();
    let mut text =
        String::from_utf8(wechat_trade_bill(&provider_day(), "ALL").into_bytes()).unwrap();
    // Drop one record line: the summary's count no longer matches.
    let second_line = text.find("\r\n`").unwrap();
    let end = text[second_line + 2..].find("\r\n").unwrap() + second_line + 2;
    text.replace_range(second_line..end, "");
    let err = engine
        .reconcile_file(
            ACCOUNT,
            date,
            BillFile::WechatText(BillBytes::Memory(text.into_bytes())),
            &(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, ReconcileError::Bill(ref m) if m.contains("declares")),
        "{err}"
    );
    let err = engine
        .reconcile_file(
            ACCOUNT,
            date,
            BillFile::AlipayZip(BillBytes::Memory(b"PK?".to_vec())),
            &(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ReconcileError::Bill(_)), "{err}");
    let runs = store.list_reconciliations(ACCOUNT, DAY).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs
        .iter()
        .all(|r| r.state == "failed" && r.error.is_some()));
    assert!(parse_bill_date("2027-13-01").is_err());
}

/// The store's SQL is written from the matcher's rules: for every payment status a payment can
/// be put in here, a success or other bill row, equal or unequal amounts, the set-based match
/// finds exactly what `classify_payment` says (kind and whether it heals).
#[tokio::test]
async fn the_database_matches_as_the_rules_say() {
    use paybridge_reconcile::line::{BillLine, BillStatus, LineKind};
    use paybridge_reconcile::match_rules;
    use paybridge_reconcile::matcher::{classify_payment, LocalPayment};
    use paybridge_store::{BillRow, DayWindow};
    use PaymentStatus::*;
    for db in dbs("reconcile_rules").await {
        let store = db.open().await;
        let paths: [(PaymentStatus, &[PaymentStatus]); 5] = [
            (Created, &[]),
            (Pending, &[Pending]),
            (Paid, &[Pending, Paid]),
            (Closed, &[Pending, Closed]),
            (Failed, &[Pending, Failed]),
        ];
        let mut rows = Vec::new();
        let mut want = Vec::new();
        for (status, path) in paths {
            for success in [true, false] {
                for equal in [true, false] {
                    let no = format!("{status}-{success}-{equal}");
                    payment(&store, &no, 100, path).await;
                    let line = BillLine {
                        kind: LineKind::Payment,
                        out_trade_no: no.clone(),
                        provider_trade_no: format!("T{no}"),
                        out_refund_no: None,
                        amount: Fen(if equal { 100 } else { 101 }),
                        fee: Fen(0),
                        status: if success {
                            BillStatus::Success
                        } else {
                            BillStatus::Other("REVOKED".into())
                        },
                    };
                    let local = LocalPayment {
                        id: String::new(),
                        out_trade_no: no.clone(),
                        amount: Fen(100),
                        status,
                    };
                    if let Some(d) = classify_payment(&line, Some(&local)) {
                        want.push((no.clone(), d.kind.as_str().to_string(), d.heal.is_some()));
                    }
                    rows.push(BillRow {
                        refund: false,
                        out_trade_no: no,
                        out_refund_no: None,
                        provider_trade_no: line.provider_trade_no.clone(),
                        amount: line.amount,
                        status: line.status.as_str().to_string().into(),
                    });
                }
            }
        }
        let run = store.start_reconciliation(ACCOUNT, DAY).await.unwrap();
        // A window that holds none of the books: only the bill's side is compared.
        let window = DayWindow {
            from: 0,
            to: 1,
            day_end: i64::MAX,
        };
        let mut stage = store.stage_bill(ACCOUNT).await.unwrap();
        stage.load(&rows).await.unwrap();
        stage.loaded().await.unwrap();
        let counts = stage
            .find_discrepancies(&match_rules(), window)
            .await
            .unwrap();
        let totals = serde_json::json!({});
        let matched = paybridge_store::RunMatched {
            rows_read: stage.rows(),
            bill_sha256: None,
            totals: &totals,
        };
        stage
            .record(&store, &run, window, &counts, matched)
            .await
            .unwrap();
        stage.close().await.unwrap();
        let mut got: Vec<(String, String, bool)> = store
            .list_discrepancies(&run.id, None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let d = r.discrepancy;
                (d.out_trade_no, d.kind, d.healable)
            })
            .collect();
        got.sort();
        want.sort();
        assert!(!want.is_empty());
        assert_eq!(got, want, "{}", db.label);
    }
}
