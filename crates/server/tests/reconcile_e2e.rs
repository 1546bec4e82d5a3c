//! Convergence and reconciliation against the in-process sandbox over real HTTP (SQLite always;
//! PostgreSQL when `PAYBRIDGE_TEST_PG_URL` is set). Job time is driven explicitly through
//! `run_jobs_once(now)`; nothing sleeps.
//!
//! - Sandbox bills with every kind of injected discrepancy, for every account kind (Alipay
//!   public-key and certificate mode, WeChat APIv3 with its SHA-1 checked bill, WeChat APIv2),
//!   are all reported through `POST /v1/reconciliations`, and the healable one is healed.
//! - With the sandbox dropping 100% of notifications, hundreds of payments converge through
//!   active queries alone: the paid ones become paid, the unpaid ones close on expiry.
//! - A payment paid after it was closed locally is found by reconciliation, flagged
//!   `late_payment`, and kept or refunded by the configured policy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, ALIPAY_CERT, WECHAT_V2, WECHAT_V3};
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{
    Discrepancy, DiscrepancyKind, DropFault, Faults, ManualClock, Sandbox, SandboxConfig,
    StartOptions, SystemClock,
};
use paybridge_server::service::jobs::RECONCILE_QUEUE;
use paybridge_server::service::reconcile::{beijing_date, LatePaymentPolicy};
use paybridge_store::{PaymentPatch, Store, StoreOptions};
use serde_json::{json, Value};

struct World {
    _db: db::Db,
    sb: Sandbox,
    inst: Instance,
    keys: Keys,
}

/// A sandbox and a gateway with `accounts` (of the sandbox accounts), each with its bill source.
async fn world(d: db::Db, accounts: &[&str]) -> World {
    world_with(d, accounts, LatePaymentPolicy::default()).await
}

async fn world_with(d: db::Db, accounts: &[&str], late_payment: LatePaymentPolicy) -> World {
    use paybridge_sandbox::Clock as _;
    let now = SystemClock.now_ms();
    let sb = Sandbox::start_with(
        SandboxConfig::generate(now / 1000).unwrap(),
        StartOptions {
            manual_clock: Some(ManualClock::new(now)),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    let store = Store::open_with(&d.url, StoreOptions::default())
        .await
        .unwrap();
    let keys = make_keys(&store).await;
    let (hook, _hooks) = start_receiver().await;
    let mut config = test_config(&hook);
    config.accounts = sandbox_accounts(&sb, Mode::Sandbox)
        .unwrap()
        .into_iter()
        .filter(|a| accounts.contains(&a.id.as_str()))
        .map(|a| (a.id.clone(), a))
        .collect();
    config.late_payment = late_payment;
    let inst = start_from_config(store, config, None).await;
    World {
        _db: d,
        sb,
        inst,
        keys,
    }
}

fn channel_of(account: &str) -> &'static str {
    if account.starts_with("alipay") {
        "alipay"
    } else {
        "wechat"
    }
}

impl World {
    /// The sandbox's name of a gateway account (Alipay app id or WeChat mchid).
    fn provider_account(&self, account: &str) -> String {
        let cfg = self.sb.config();
        match account {
            ALIPAY => cfg.alipay.apps[0].app_id.clone(),
            ALIPAY_CERT => cfg.alipay.apps[1].app_id.clone(),
            _ => cfg.wechat.merchants[0].mchid.clone(),
        }
    }

    async fn create(&self, account: &str, no: &str, amount: i64, expires_in: i64) -> Value {
        let body = json!({"account": account, "channel": channel_of(account), "scene": "qr",
            "amount": amount, "out_trade_no": no, "subject": "reconcile order",
            "expires_in": expires_in, "client_ip": "203.0.113.7"});
        let (status, p, _) = post(
            &self.inst.base,
            "/v1/payments",
            &self.keys.sandbox_all,
            Some(&format!("c-{account}-{no}")),
            &body,
        )
        .await;
        assert_eq!(status, 201, "{account} {no}: {p}");
        assert_eq!(p["status"], "pending", "{account} {no}: {p}");
        p
    }

    /// The buyer pays at the provider; whatever notification the sandbox sends goes out now.
    async fn pay(&self, no: &str) {
        let trade = self.sb.trade_by_out_no(no).unwrap();
        self.sb.pay(&trade.id).unwrap();
        self.sb.advance(1000);
        self.sb.run_due().await;
    }

    fn drop_notifications(&self, account: &str) {
        let faults = Faults {
            drop: DropFault::All,
            ..Faults::default()
        };
        self.sb
            .set_faults(Some(&self.provider_account(account)), None, faults);
    }

    async fn status(&self, account: &str, no: &str) -> paybridge_store::Payment {
        self.inst
            .gw
            .store
            .get_payment_by_out_trade_no(account, no)
            .await
            .unwrap()
            .unwrap()
    }

    fn today(&self) -> String {
        beijing_date(self.sb.now()).unwrap().to_string()
    }

    /// `POST /v1/reconciliations`: the run, queued.
    async fn queue(&self, account: &str) -> Value {
        let (status, run, _) = post(
            &self.inst.base,
            "/v1/reconciliations",
            &self.keys.sandbox_all,
            Some(&format!("r-{account}-{}", paybridge_store::new_id("t"))),
            &json!({"account": account, "date": self.today()}),
        )
        .await;
        assert_eq!(status, 202, "{account}: {run}");
        assert_eq!(run["state"], "queued", "{account}: {run}");
        assert_eq!(run["rows_read"], 0, "{account}: {run}");
        run
    }

    /// A run queued, its job run by the reconciliation pool, then the run as `GET` shows it.
    async fn reconcile(&self, account: &str) -> Value {
        let queued = self.queue(account).await;
        let gw = &self.inst.gw;
        assert_eq!(
            gw.run_jobs_of_once(gw.now_ms(), 10, RECONCILE_QUEUE)
                .await
                .unwrap(),
            1,
            "{account}: one run queued"
        );
        let (status, run) = get(
            &self.inst.base,
            &format!("/v1/reconciliations/{}", queued["id"].as_str().unwrap()),
            &self.keys.sandbox_read,
        )
        .await;
        assert_eq!(status, 200, "{account}: {run}");
        run
    }
}

fn summary(run: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = run["discrepancies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["out_trade_no"].as_str().unwrap().to_string(),
                d["resolution"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn sandbox_bill_discrepancies_are_all_reported_and_the_safe_ones_healed() {
    for account in [ALIPAY, ALIPAY_CERT, WECHAT_V3, WECHAT_V2] {
        for d in db::dbs("reconcile_bills").await {
            let label = format!("{account} on {}", d.label);
            let w = world(d, &[account]).await;
            let provider = w.provider_account(account);
            for (no, amount) in [
                ("OKAY0001", 100),
                ("MISS0001", 200),
                ("AMNT0001", 300),
                ("STAT0001", 400),
            ] {
                w.create(account, no, amount, 900).await;
                w.pay(no).await;
                assert_eq!(
                    w.status(account, no).await.status.as_str(),
                    "paid",
                    "{label} {no}"
                );
            }
            // Refunded in the day: the bill's refund row matches the local refund.
            let ok = w.status(account, "OKAY0001").await;
            let (s, r, _) = post(
                &w.inst.base,
                &format!("/v1/payments/{}/refunds", ok.id),
                &w.keys.sandbox_all,
                Some(&format!("rf-{account}")),
                &json!({"amount": 30, "out_refund_no": "RFND0001"}),
            )
            .await;
            assert!(s == 200 || s == 201, "{label}: {r}");
            w.sb.advance(1000);
            w.sb.run_due().await;
            // Paid at the provider, the notification lost: pending here.
            let lost = w.create(account, "LOST0001", 500, 900).await;
            let trade = w.sb.trade_by_out_no("LOST0001").unwrap();
            w.sb.set_faults(
                None,
                Some(&trade.id),
                Faults {
                    drop: DropFault::All,
                    ..Faults::default()
                },
            );
            w.pay("LOST0001").await;
            assert_eq!(
                w.status(account, "LOST0001").await.status.as_str(),
                "pending",
                "{label}"
            );
            let bad_status = if account.starts_with("alipay") {
                "TRADE_CLOSED"
            } else {
                "REVOKED"
            };
            for kind in [
                DiscrepancyKind::MissingTrade {
                    out_trade_no: "MISS0001".into(),
                },
                DiscrepancyKind::ExtraTrade {
                    out_trade_no: "EXTRA001".into(),
                    amount: paybridge_core::Fen(999),
                    date: w.today(),
                },
                DiscrepancyKind::AmountMismatch {
                    out_trade_no: "AMNT0001".into(),
                    delta: paybridge_core::Fen(1),
                },
                DiscrepancyKind::StatusMismatch {
                    out_trade_no: "STAT0001".into(),
                    status: bad_status.into(),
                },
            ] {
                w.sb.add_discrepancy(Discrepancy {
                    account: provider.clone(),
                    kind,
                });
            }

            let run = w.reconcile(account).await;
            assert_eq!(run["state"], "completed", "{label}: {run}");
            // Six bill rows (OKAY, its refund, AMNT, STAT, LOST, EXTRA; MISS left out), all
            // but EXTRA with their local row; the bill's digest recorded.
            assert_eq!(run["rows_read"], 6, "{label}: {run}");
            assert_eq!(run["rows_matched"], 5, "{label}: {run}");
            assert_eq!(
                run["bill_sha256"].as_str().map(str::len),
                Some(64),
                "{label}"
            );
            let s = |x: &str| x.to_string();
            assert_eq!(
                summary(&run),
                vec![
                    (s("amount_mismatch"), s("AMNT0001"), s("open")),
                    (s("missing_at_provider"), s("MISS0001"), s("open")),
                    (s("missing_locally"), s("EXTRA001"), s("open")),
                    (s("status_mismatch"), s("LOST0001"), s("healed")),
                    (s("status_mismatch"), s("STAT0001"), s("open")),
                ],
                "{label}: {run}"
            );
            let t = &run["totals"];
            // OK1, AMT1 (+1), STAT1 is not a success row, LOST1, EXTRA1 (MISS1 left out).
            assert_eq!(t["bill_payments"], 4, "{label}: {t}");
            assert_eq!(
                t["bill_payment_amount"],
                100 + 301 + 500 + 999,
                "{label}: {t}"
            );
            assert_eq!(
                (&t["bill_refunds"], &t["bill_refund_amount"]),
                (&json!(1), &json!(30))
            );
            assert_eq!(
                (&t["healed"], &t["open"]),
                (&json!(1), &json!(4)),
                "{label}: {t}"
            );
            // The healed payment went through the gateway: paid, with its event.
            let healed = w.status(account, "LOST0001").await;
            assert_eq!(healed.status.as_str(), "paid", "{label}");
            let lost_id = lost["id"].as_str().unwrap();
            let events = w.inst.gw.store.list_payment_events(lost_id).await.unwrap();
            assert!(events.iter().any(|e| e.kind == "payment.paid"), "{label}");
            let timeline = w.inst.gw.store.list_timeline(lost_id).await.unwrap();
            assert!(
                timeline.iter().any(|e| e.kind == "query"
                    && e.detail["detail"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("reconciliation")),
                "{label}: {timeline:?}"
            );

            let (status, again) = get(
                &w.inst.base,
                &format!("/v1/reconciliations/{}", run["id"].as_str().unwrap()),
                &w.keys.sandbox_read,
            )
            .await;
            assert_eq!(status, 200);
            assert_eq!(summary(&again), summary(&run), "{label}");
            let (status, _) = get(
                &w.inst.base,
                &format!("/v1/reconciliations/{}", run["id"].as_str().unwrap()),
                &w.keys.live_all,
            )
            .await;
            assert_eq!(status, 404, "{label}: live keys do not see sandbox runs");
        }
    }
}

#[tokio::test]
async fn with_every_notification_dropped_hundreds_of_payments_converge_by_queries() {
    const PER_ACCOUNT: usize = 150;
    const EXPIRES_IN: i64 = 900;
    for d in db::dbs("reconcile_converge").await {
        let label = d.label;
        let w = world(d, &[ALIPAY, WECHAT_V3]).await;
        let start = w.inst.gw.now_ms();
        let mut paid = Vec::new();
        let mut unpaid = Vec::new();
        for account in [ALIPAY, WECHAT_V3] {
            w.drop_notifications(account);
            for i in 0..PER_ACCOUNT {
                let prefix = if account == ALIPAY { "CVA" } else { "CVW" };
                let no = format!("{prefix}{i:04}");
                w.create(account, &no, 100 + i as i64, EXPIRES_IN).await;
                if i % 3 == 0 {
                    unpaid.push((account, no));
                } else {
                    w.pay(&no).await;
                    paid.push((account, no));
                }
            }
        }
        // Drive the job clock in 10-second steps until past every expiry.
        let mut now = start;
        let end = start + (EXPIRES_IN + 3600) * 1000;
        let mut ran = 0;
        while now < end {
            now += 10_000;
            ran += w.inst.gw.run_jobs_once(now, 1000).await.unwrap();
        }
        assert!(ran >= PER_ACCOUNT * 2, "{label}: {ran} jobs");
        for (account, no) in &paid {
            let p = w.status(account, no).await;
            assert_eq!(p.status.as_str(), "paid", "{label} {account} {no}");
            assert!(!p.late_payment);
        }
        for (account, no) in &unpaid {
            let p = w.status(account, no).await;
            assert_eq!(p.status.as_str(), "closed", "{label} {account} {no}");
            let trade = w.sb.trade_by_out_no(no).unwrap();
            // Closed at the provider too, or (an Alipay QR code nobody scanned) never known
            // to it, so never payable.
            assert!(
                trade.state == paybridge_sandbox::ledger::TradeState::Closed || !trade.visible,
                "{label} {account} {no}: still open at the provider ({:?})",
                trade.state
            );
        }
        let inbox = w
            .inst
            .gw
            .store
            .list_recent_notifications(None, 10)
            .await
            .unwrap();
        assert!(inbox.is_empty(), "{label}: no notification ever arrived");
        // Paid ones were found by the backoff queries, long before their expiry.
        let (_, sample) = &paid[0];
        let p = w.status(ALIPAY, sample).await;
        assert!(p.paid_at.unwrap() < start + EXPIRES_IN * 1000, "{label}");
    }
}

#[tokio::test]
async fn a_late_payment_after_close_is_found_and_handled_by_the_policy() {
    for policy in [LatePaymentPolicy::Keep, LatePaymentPolicy::Refund] {
        for d in db::dbs("reconcile_late").await {
            let label = format!("{policy:?} on {}", d.label);
            let w = world_with(d, &[ALIPAY], policy).await;
            w.drop_notifications(ALIPAY);
            let p = w.create(ALIPAY, "LATE0001", 888, 900).await;
            let id = p["id"].as_str().unwrap();
            // The order was closed here while the provider's close never landed (a crash
            // between the two): the buyer can still pay at the provider.
            let store = &w.inst.gw.store;
            let closed = db::observe_with(
                store,
                id,
                paybridge_core::decide::PaymentObservation::Closed,
                &PaymentPatch::default(),
                &[],
            )
            .await
            .unwrap();
            assert_eq!(closed.payment.status.as_str(), "closed");
            w.pay("LATE0001").await;
            assert_eq!(w.status(ALIPAY, "LATE0001").await.status.as_str(), "closed");

            let run = w.reconcile(ALIPAY).await;
            let s = |x: &str| x.to_string();
            assert_eq!(
                summary(&run),
                vec![(s("status_mismatch"), s("LATE0001"), s("healed"))],
                "{label}: {run}"
            );
            // The policy is a job scheduled with the heal, not a call made inline.
            let gw = &w.inst.gw;
            assert!(store.list_refunds(id).await.unwrap().is_empty(), "{label}");
            assert_eq!(
                gw.run_jobs_once(gw.now_ms(), 100).await.unwrap(),
                1,
                "{label}"
            );
            let p = w.status(ALIPAY, "LATE0001").await;
            assert!(p.late_payment, "{label}");
            let refunds = store.list_refunds(&p.id).await.unwrap();
            let timeline = store.list_timeline(&p.id).await.unwrap();
            assert!(timeline.iter().any(|e| e.kind == "late_payment"), "{label}");
            match policy {
                LatePaymentPolicy::Keep => {
                    assert_eq!(p.status.as_str(), "paid", "{label}");
                    assert!(refunds.is_empty(), "{label}");
                }
                LatePaymentPolicy::Refund => {
                    assert_eq!(refunds.len(), 1, "{label}");
                    assert_eq!(refunds[0].amount.0, 888);
                    assert_eq!(refunds[0].status.as_str(), "succeeded", "{label}");
                    assert_eq!(p.status.as_str(), "refunded", "{label}");
                    let trade = w.sb.trade_by_out_no("LATE0001").unwrap();
                    assert_eq!(trade.refunds.len(), 1, "{label}: refunded at the provider");
                }
            }
            // Reconciling again repeats nothing: the payment is matched, no second refund.
            let again = w.reconcile(ALIPAY).await;
            assert!(summary(&again).is_empty(), "{label}: {again}");
            assert_eq!(
                store.list_refunds(&p.id).await.unwrap().len(),
                refunds.len()
            );
        }
    }
}

#[tokio::test]
async fn the_daily_job_reconciles_yesterday_at_ten_beijing() {
    let d = db::sqlite_db().await;
    let w = world(d, &[WECHAT_V3]).await;
    let gw = &w.inst.gw;
    // The workers schedule it when they start.
    gw.ensure_recurring_jobs().await.unwrap();
    let now = gw.now_ms();
    let next = paybridge_server::service::reconcile::next_daily_run(now);
    let yesterday = beijing_date(now - 86_400_000).unwrap().to_string();
    // Counted by its runs: the retention job, scheduled alongside, runs too.
    gw.run_jobs_once(next - 1, 100).await.unwrap();
    let before = gw
        .store
        .list_reconciliations(WECHAT_V3, &yesterday)
        .await
        .unwrap();
    assert!(before.is_empty(), "not before ten: {before:?}");
    assert!(gw.run_jobs_once(next, 100).await.unwrap() >= 1);
    let runs = gw
        .store
        .list_reconciliations(WECHAT_V3, &yesterday)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].state, "completed", "{:?}", runs[0].error);
    let (_, doc) = get(&w.inst.base, "/openapi.json", "").await;
    for path in ["/v1/reconciliations", "/v1/reconciliations/{id}"] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    assert!(doc["components"]["schemas"]["Reconciliation"].is_object());
}

/// kill -9 of a gateway in the middle of a run, in process: instance A claims the due jobs
/// (leases taken) and dies without finishing them. Instance B on the same database cannot take
/// them while the leases hold, takes them once they expire, and every payment converges.
#[tokio::test]
async fn a_crashed_instance_loses_nothing_its_leased_jobs_move_to_another() {
    use paybridge_server::service::jobs::JOB_LEASE_MS;
    for d in db::dbs("reconcile_crash").await {
        let label = d.label;
        let url = d.url.clone();
        let a = world(d, &[ALIPAY]).await;
        let store_b = Store::open_with(&url, StoreOptions::default())
            .await
            .unwrap();
        let configs: Vec<_> = sandbox_accounts(&a.sb, Mode::Sandbox)
            .unwrap()
            .into_iter()
            .filter(|c| c.id == ALIPAY)
            .collect();
        let (hook, _) = start_receiver().await;
        let b = start_configured(store_b, configs, &hook).await;
        a.drop_notifications(ALIPAY);
        let start = a.inst.gw.now_ms();
        let mut expected = Vec::new();
        for i in 0..60 {
            let no = format!("KILL{i:04}");
            a.create(ALIPAY, &no, 100 + i, 300).await;
            if i % 3 != 0 {
                a.pay(&no).await;
                expected.push((no, "paid"));
            } else {
                expected.push((no, "closed"));
            }
        }
        // A: the first active queries are due; it claims them all and is killed.
        let t1 = start + 60_000;
        let claimed = a
            .inst
            .gw
            .store
            .claim_jobs(&a.inst.gw.instance, t1, 1000, JOB_LEASE_MS)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 60, "{label}");
        drop(a.inst);
        // B: nothing to take while A's leases hold, everything once they lapse.
        assert_eq!(
            b.gw.run_jobs_once(t1 + 1000, 1000).await.unwrap(),
            0,
            "{label}"
        );
        let mut now = t1 + JOB_LEASE_MS;
        let end = start + 3_600_000;
        while now < end {
            b.gw.run_jobs_once(now, 1000).await.unwrap();
            now += 10_000;
        }
        for (no, want) in &expected {
            let p =
                b.gw.store
                    .get_payment_by_out_trade_no(ALIPAY, no)
                    .await
                    .unwrap()
                    .unwrap();
            assert_eq!(p.status.as_str(), *want, "{label} {no}");
        }
    }
}

/// The document names exactly the routes the router serves (read from the router's source and
/// probed over HTTP), and every kind of answer the merchant API gives, from a real gateway on
/// the sandbox, matches the schema the document gives for it, with nothing missing or extra.
#[tokio::test]
async fn every_route_and_response_body_matches_the_openapi_document() {
    use common::openapi::{assert_matches, declared_routes, documented_routes, mismatches};
    let w = world(db::sqlite_db().await, &[ALIPAY]).await;
    let base = &w.inst.base;
    let key = &w.keys.sandbox_all;
    let (status, doc) = get(base, "/openapi.json", "").await;
    assert_eq!(status, 200);

    let declared = declared_routes(&[
        include_str!("../src/routes/mod.rs"),
        include_str!("../src/routes/reconcile.rs"),
    ]);
    assert!(
        declared.len() >= 19,
        "router source not understood: {declared:?}"
    );
    let documented = documented_routes(&doc);
    assert_eq!(
        declared.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "served but not documented"
    );
    assert_eq!(
        documented.difference(&declared).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not served"
    );
    // The router agrees over HTTP: documented methods reach a handler (not the fallback),
    // others on the same path are refused with 405.
    let http = client();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "nope").replace("{account}", "nope");
        for m in ["get", "post", "put", "patch", "delete"] {
            let method = reqwest::Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let resp = http
                .request(method, format!("{base}{concrete}"))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            if item.get(m).is_some() {
                assert_ne!(status, 405, "{m} {path}");
                assert!(!text.contains("route not found"), "{m} {path}: {text}");
            } else {
                assert_eq!(status, 405, "{m} {path}: {text}");
            }
        }
    }

    // Payments: created, read, listed (by page and by order number), paid.
    let created = w.create(ALIPAY, "OAPI0001", 1000, 3600).await;
    assert_matches(&doc, "post", "/v1/payments", 201, &created);
    let id = created["id"].as_str().unwrap();
    w.pay("OAPI0001").await;
    let (s, paid) = get(base, &format!("/v1/payments/{id}"), key).await;
    assert_eq!(paid["status"], "paid", "{paid}");
    assert_matches(&doc, "get", "/v1/payments/{id}", s, &paid);
    for q in ["", "?limit=1", "?out_trade_no=OAPI0001"] {
        let (s, list) = get(base, &format!("/v1/payments{q}"), key).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1, "{q}: {list}");
        assert_matches(&doc, "get", "/v1/payments", s, &list);
    }
    // The schemas are closed: a field more or less fails.
    let mut extra = paid.clone();
    extra["surprise"] = json!(1);
    assert!(!mismatches(&doc, "get", "/v1/payments/{id}", 200, &extra).is_empty());
    for field in ["version", "description", "payer_id"] {
        let mut missing = paid.clone();
        missing.as_object_mut().unwrap().remove(field);
        assert!(
            !mismatches(&doc, "get", "/v1/payments/{id}", 200, &missing).is_empty(),
            "{field} is required"
        );
    }

    // Refunds.
    let (s, refund, _) = post(
        base,
        &format!("/v1/payments/{id}/refunds"),
        key,
        Some("oapi-refund"),
        &json!({"amount": 300, "reason": "schema"}),
    )
    .await;
    assert_eq!(s, 201, "{refund}");
    assert_matches(&doc, "post", "/v1/payments/{id}/refunds", s, &refund);
    let rid = refund["id"].as_str().unwrap();
    let (s, r) = get(base, &format!("/v1/refunds/{rid}"), key).await;
    assert_matches(&doc, "get", "/v1/refunds/{id}", s, &r);
    let (s, rl) = get(base, &format!("/v1/payments/{id}/refunds"), key).await;
    assert_matches(&doc, "get", "/v1/payments/{id}/refunds", s, &rl);
    let (s, too_much, _) = post(
        base,
        &format!("/v1/payments/{id}/refunds"),
        key,
        Some("oapi-refund-2"),
        &json!({"amount": 5000}),
    )
    .await;
    assert_eq!(too_much["code"], "refund_exceeds_payment", "{too_much}");
    assert_matches(&doc, "post", "/v1/payments/{id}/refunds", s, &too_much);

    // What happened to the payment.
    let (s, calls) = get(base, &format!("/v1/payments/{id}/provider-calls"), key).await;
    assert!(!calls["data"].as_array().unwrap().is_empty(), "{calls}");
    assert_matches(&doc, "get", "/v1/payments/{id}/provider-calls", s, &calls);
    let (s, tl) = get(base, &format!("/v1/payments/{id}/timeline"), key).await;
    assert!(!tl["state_changes"].as_array().unwrap().is_empty(), "{tl}");
    assert_matches(&doc, "get", "/v1/payments/{id}/timeline", s, &tl);

    // Events and webhooks.
    let (s, events) = get(base, "/v1/events?limit=100", key).await;
    let first = events["data"][0]["id"].as_str().unwrap().to_string();
    assert_matches(&doc, "get", "/v1/events", s, &events);
    let (s, again, _) = post(
        base,
        &format!("/v1/events/{first}/redeliver"),
        key,
        Some("oapi-redeliver"),
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "{again}");
    assert_matches(&doc, "post", "/v1/events/{id}/redeliver", s, &again);

    // Close (refused: paid) and reconciliation.
    let (s, closed, _) = post(
        base,
        &format!("/v1/payments/{id}/close"),
        key,
        Some("oapi-close"),
        &json!({}),
    )
    .await;
    assert_matches(&doc, "post", "/v1/payments/{id}/close", s, &closed);
    let queued = w.queue(ALIPAY).await;
    assert_matches(&doc, "post", "/v1/reconciliations", 202, &queued);
    let run_id = queued["id"].as_str().unwrap();
    let (s, shown) = get(base, &format!("/v1/reconciliations/{run_id}"), key).await;
    assert_matches(&doc, "get", "/v1/reconciliations/{id}", s, &shown);
    w.inst
        .gw
        .run_jobs_of_once(w.inst.gw.now_ms(), 10, RECONCILE_QUEUE)
        .await
        .unwrap();
    let (s, done) = get(base, &format!("/v1/reconciliations/{run_id}"), key).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_matches(&doc, "get", "/v1/reconciliations/{id}", s, &done);
    let unpaid = w.create(ALIPAY, "OAPI0002", 500, 3600).await;
    let uid = unpaid["id"].as_str().unwrap();
    let (s, closed, _) = post(
        base,
        &format!("/v1/payments/{uid}/close"),
        key,
        Some("oapi-close-2"),
        &json!({}),
    )
    .await;
    assert_eq!(s, 200, "{closed}");
    assert_matches(&doc, "post", "/v1/payments/{id}/close", s, &closed);

    // Problems: 400, 401, 403, 404, 409, 422.
    let (s, p) = get(base, "/v1/payments/pay_missing", key).await;
    assert_eq!(s, 404);
    assert_matches(&doc, "get", "/v1/payments/{id}", s, &p);
    let (s, p) = get(base, "/v1/events", "").await;
    assert_eq!(s, 401);
    assert_matches(&doc, "get", "/v1/events", s, &p);
    let (s, p, _) = post(
        base,
        "/v1/payments",
        &w.keys.sandbox_read,
        Some("oapi-forbidden"),
        &json!({}),
    )
    .await;
    assert_eq!(s, 403);
    assert_matches(&doc, "post", "/v1/payments", s, &p);
    let (s, p, _) = post(
        base,
        "/v1/payments",
        key,
        Some("oapi-bad"),
        &json!({"amount": 1}),
    )
    .await;
    assert_eq!(s, 400, "{p}");
    assert_matches(&doc, "post", "/v1/payments", s, &p);
    let (s, p, _) = post(
        base,
        &format!("/v1/payments/{id}/refunds"),
        key,
        Some("oapi-refund"),
        &json!({"amount": 301}),
    )
    .await;
    assert_eq!(s, 422, "{p}");
    assert_matches(&doc, "post", "/v1/payments/{id}/refunds", s, &p);
    let (s, p) = get(base, "/v1/reconciliations/rec_missing", key).await;
    assert_eq!(s, 404);
    assert_matches(&doc, "get", "/v1/reconciliations/{id}", s, &p);
    let (s, health) = get(base, "/healthz", "").await;
    assert_matches(&doc, "get", "/healthz", s, &health);
}
