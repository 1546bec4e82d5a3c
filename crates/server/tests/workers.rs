//! The worker pools: a merchant endpoint that hangs on every delivery, with 200 deliveries
//! queued, holds only its own slots while a due expiry runs; two instances on one PostgreSQL
//! never run the same job at once, even when a provider call outlasts the job lease; shutdown
//! lets the work in flight finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::post as route_post;
use common::scripted::*;
use common::*;
use paybridge_server::workers::{WorkerLimits, Workers};
use paybridge_store::{Store, StoreOptions};
use serde_json::json;
use tokio::sync::Semaphore;

/// Bounds every wait for the workers to act; far above what the work needs.
const GIVE_UP: Duration = Duration::from_secs(60);

/// A webhook endpoint that accepts each delivery and then hangs until released.
struct Hanging {
    url: String,
    arrived: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    release: Arc<Semaphore>,
}

async fn hanging_endpoint() -> Hanging {
    let arrived = Arc::new(AtomicUsize::new(0));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Semaphore::new(0));
    let (a, f, m, r) = (
        arrived.clone(),
        in_flight.clone(),
        max_in_flight.clone(),
        release.clone(),
    );
    let app = axum::Router::new().route(
        "/hook",
        route_post(move || {
            let (a, f, m, r) = (a.clone(), f.clone(), m.clone(), r.clone());
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let _ = r.acquire().await.unwrap();
                f.fetch_sub(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Hanging {
        url,
        arrived,
        in_flight,
        max_in_flight,
        release,
    }
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    while !done().await {
        assert!(start.elapsed() < GIVE_UP, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn status_of(inst: &Instance, key: &str, id: &str) -> String {
    let (_, p) = get(&inst.base, &format!("/v1/payments/{id}"), key).await;
    p["status"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn a_hanging_webhook_endpoint_does_not_hold_up_a_due_expiry() {
    for d in db::dbs("workers_hang").await {
        let store = d.open().await;
        let keys = make_keys(&store).await;
        let hook = hanging_endpoint().await;
        let provider = Arc::new(Scripted::default());
        // The endpoint hangs far longer than any delivery timeout would allow.
        let patient = |g: &mut paybridge_server::Gateway| {
            g.http = reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap();
        };
        let inst = start_from_config_with(
            store,
            test_config(&hook.url),
            Some(accounts(provider.clone())),
            patient,
        )
        .await;
        let env = Env {
            _db: d,
            inst,
            keys,
            hooks: Received::default(),
            provider,
        };
        // 200 paid payments: 200 deliveries queued for the hanging endpoint.
        for i in 0..200 {
            let no = format!("HANG-{i}");
            create(&env, &no, 100).await;
            let (s, _) = notify(&env, &paid_notice(&no, 100, &format!("n-{no}")), None).await;
            assert_eq!(s, 200);
        }
        // And one order whose expiry is due.
        let (s, order, _) = post(
            &env.inst.base,
            "/v1/payments",
            &env.keys.sandbox_all,
            Some("exp"),
            &json!({"channel": "alipay", "scene": "pc", "amount": 100, "out_trade_no": "EXP-1",
                    "subject": "Test order", "expires_in": 120}),
        )
        .await;
        assert_eq!(s, 201, "{order}");
        let id = order["id"].as_str().unwrap().to_string();
        env._db.clock.advance(121_000);

        let limits = WorkerLimits {
            poll: Duration::from_millis(100),
            ..WorkerLimits::default()
        };
        let per_endpoint = limits.deliveries_per_endpoint;
        let workers = Workers::spawn(env.inst.gw.clone(), limits);
        wait_until("the endpoint to receive its first deliveries", || async {
            hook.arrived.load(Ordering::SeqCst) >= per_endpoint
        })
        .await;
        wait_until("the expiry to close the order", || async {
            status_of(&env.inst, &env.keys.sandbox_read, &id).await == "closed"
        })
        .await;
        // All the while, the endpoint held every delivery it got, and only its own slots.
        assert_eq!(hook.arrived.load(Ordering::SeqCst), per_endpoint);
        assert_eq!(hook.in_flight.load(Ordering::SeqCst), per_endpoint);
        assert_eq!(hook.max_in_flight.load(Ordering::SeqCst), per_endpoint);

        // Released, the endpoint gets the whole backlog.
        hook.release.add_permits(10_000);
        wait_until("the backlog to drain", || async {
            hook.arrived.load(Ordering::SeqCst) >= 200
        })
        .await;
        assert!(hook.max_in_flight.load(Ordering::SeqCst) <= per_endpoint);
        tokio::time::timeout(GIVE_UP, workers.shutdown())
            .await
            .expect("the workers stop");
    }
}

#[tokio::test]
async fn two_instances_never_run_one_job_at_once_even_past_the_lease() {
    let Ok(admin) = std::env::var("PAYBRIDGE_TEST_PG_URL") else {
        println!("SKIP two_instances_never_run_one_job_at_once: PAYBRIDGE_TEST_PG_URL is not set");
        return;
    };
    let d = db::pg_db(&admin, "workers_lease").await;
    // Real time here: the lease must really run out while the provider call goes on.
    let open = || Store::open_with(&d.url, StoreOptions::default());
    let (store_a, store_b) = (open().await.unwrap(), open().await.unwrap());
    let keys = make_keys(&store_a).await;
    let provider = Arc::new(Scripted::default());
    let config = || {
        let mut c = test_config("http://127.0.0.1:9/");
        c.job_lease_ms = 1_000;
        c
    };
    let a = start_from_config(store_a, config(), Some(accounts(provider.clone()))).await;
    let b = start_from_config(store_b, config(), Some(accounts(provider.clone()))).await;
    let env = Env {
        _db: d,
        inst: a,
        keys,
        hooks: Received::default(),
        provider: provider.clone(),
    };
    // Each query takes 2.5 lease lengths.
    *provider.query_delay.lock().unwrap() = Some(Duration::from_millis(2_500));
    let orders: Vec<String> = (0..6).map(|i| format!("LEASE-{i}")).collect();
    for no in &orders {
        create(&env, no, 100).await;
        // A notification contradicting the amount: a mismatch, answered by a query job now.
        let (s, _) = notify(&env, &paid_notice(no, 999, &format!("n-{no}")), None).await;
        assert_eq!(s, 200);
    }
    let limits = WorkerLimits {
        poll: Duration::from_millis(50),
        ..WorkerLimits::default()
    };
    let wa = Workers::spawn(env.inst.gw.clone(), limits.clone());
    let wb = Workers::spawn(b.gw.clone(), limits);
    let queried = |no: &str| {
        provider
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| *c == &format!("query:{no}"))
            .count()
    };
    wait_until("every order to be queried", || async {
        orders.iter().all(|no| queried(no) >= 1)
            && provider.querying.lock().unwrap().values().all(|n| *n == 0)
    })
    .await;
    tokio::time::timeout(GIVE_UP, async {
        wa.shutdown().await;
        wb.shutdown().await;
    })
    .await
    .expect("the workers stop");
    assert_eq!(
        provider.max_query_overlap.load(Ordering::SeqCst),
        1,
        "a job ran on both instances at once"
    );
    // A query of a still-pending order is tried again later, never twice at the same time.
    for no in &orders {
        assert!(queried(no) >= 1, "{no}");
    }
}
