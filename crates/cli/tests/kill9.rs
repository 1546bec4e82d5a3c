//! `kill -9` of a real `paybridge serve` process in the middle of a run loses nothing.
//!
//! The sandbox drops every notification, so only active queries (jobs) can make a payment paid.
//! The doomed gateway reaches the sandbox through a proxy that, once armed, swallows its next
//! request: the process is then provably inside a job it claimed (its leases held) when it is
//! killed. On PostgreSQL a second process shares the database and takes the jobs over when the
//! short configured lease lapses; on SQLite the one process is restarted on the same file.
//! Either way every paid payment ends `paid`, every payment is still there, and each paid
//! payment has exactly one `payment.paid` event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use paybridge_core::Mode;
use paybridge_sandbox::{Clock as _, Sandbox, SandboxConfig, SystemClock};
use paybridge_store::{ApiScope, JobState, NewApiKey, Store};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::{free_port, scratch, spawn_serve, write};

const PAYMENTS: usize = 40;
/// Generous for a loaded two-core machine; the common case converges in seconds.
const DEADLINE: Duration = Duration::from_secs(90);
const LEASE_MS: u64 = 4000;

/// A `paybridge serve` child, SIGKILLed when dropped (also when the test fails), with its log
/// printed if the test is failing.
struct Gw {
    name: String,
    base: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Gw {
    fn spawn(dir: &Path, name: &str, config: &str) -> Gw {
        let log = dir.join(format!("{name}.log"));
        let child = spawn_serve(config, &log);
        let listen = std::fs::read_to_string(config)
            .unwrap()
            .lines()
            .find_map(|l| {
                l.strip_prefix("listen = \"")
                    .map(|r| r.trim_end_matches('"').to_string())
            })
            .unwrap();
        Gw {
            name: name.into(),
            base: format!("http://{listen}"),
            log,
            child: Some(child),
        }
    }

    /// The lease owner id the process logs at start-up.
    fn instance(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).ok()?;
        let at = text.find("gw-")?;
        let id: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        Some(id)
    }

    /// `kill -9`: no shutdown code runs.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("--- {} log (last lines) ---", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// A TCP proxy to the sandbox that, once armed, holds the next bytes a client sends forever.
struct Stall {
    armed: AtomicBool,
    held: tokio::sync::Notify,
    /// The first bytes of every request held, to tell which provider calls are in flight.
    held_requests: std::sync::Mutex<Vec<String>>,
}

async fn start_stall_proxy(target: SocketAddr) -> (SocketAddr, Arc<Stall>) {
    let stall = Arc::new(Stall {
        armed: AtomicBool::new(false),
        held: tokio::sync::Notify::new(),
        held_requests: std::sync::Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let st = stall.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut ri, mut wi) = inbound.into_split();
            let (mut ro, mut wo) = outbound.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut ro, &mut wi).await;
            });
            let st = st.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match ri.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if st.armed.load(Ordering::SeqCst) {
                        let at = {
                            let mut held = st.held_requests.lock().unwrap();
                            held.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                            held.len() - 1
                        };
                        st.held.notify_one();
                        // The rest of the request (its body may come in a later write) is
                        // recorded, never forwarded; both halves stay open (owned by this
                        // task): the client waits for an answer that never comes.
                        while let Ok(m) = ri.read(&mut buf).await {
                            if m == 0 {
                                break;
                            }
                            st.held_requests.lock().unwrap()[at]
                                .push_str(&String::from_utf8_lossy(&buf[..m]));
                        }
                        let _keep = (&ri, &wo);
                        std::future::pending::<()>().await;
                    }
                    if wo.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, stall)
}

/// A fresh PostgreSQL database from the admin URL, dropped afterwards (also on panic).
struct PgDb {
    admin: String,
    name: String,
    url: String,
}

impl PgDb {
    async fn create(admin: &str) -> PgDb {
        let mut conn = PgConnection::connect(admin).await.unwrap_or_else(|e| {
            panic!("PAYBRIDGE_TEST_PG_URL is set but PostgreSQL is unreachable: {e}")
        });
        let name = format!(
            "pbtest_kill9_{}",
            paybridge_store::new_id("d").replace('-', "_")
        )
        .to_ascii_lowercase();
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, format!("?{q}")),
            None => (admin, String::new()),
        };
        let host_start = base.find("://").map(|i| i + 3).unwrap_or(0);
        let base = match base[host_start..].find('/') {
            Some(slash) => &base[..host_start + slash],
            None => base,
        };
        let url = format!("{base}/{name}{query}");
        sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
        PgDb {
            admin: admin.into(),
            name,
            url,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn
                        .execute(
                            format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str(),
                        )
                        .await;
                }
            });
        })
        .join();
    }
}

struct Env {
    sb: Sandbox,
    dir: PathBuf,
    app_id: String,
    account_toml: String,
    http: reqwest::Client,
}

impl Env {
    async fn new(test: &str) -> Env {
        let sb = Sandbox::start(SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap())
            .await
            .unwrap();
        let dir = scratch(test);
        let app = sb.config().alipay.apps[0].clone();
        let private = write(&dir, "app.key", app.app_private_key.as_deref().unwrap());
        let public = write(&dir, "alipay.pub", &sb.alipay_public_key());
        let aes = app
            .aes_key
            .as_deref()
            .map(|k| format!("aes_key_file = \"{}\"\n", write(&dir, "aes.key", k)))
            .unwrap_or_default();
        let account_toml = format!(
            "[[accounts]]\nid = \"shop\"\nmode = \"sandbox\"\nchannel = \"alipay\"\n\
             [accounts.alipay]\napp_id = \"{app_id}\"\ngateway_url = \"GATEWAY\"\n\
             app_private_key_file = \"{private}\"\nalipay_public_key_file = \"{public}\"\n{aes}",
            app_id = app.app_id,
        );
        let env = Env {
            sb,
            dir,
            app_id: app.app_id,
            account_toml,
            http: reqwest::Client::new(),
        };
        // Notifications never arrive: only the gateways' queries can find the payments paid.
        let (s, v) = env
            .send(
                env.http
                    .put(format!("{}/_sandbox/faults", env.sb.base_url())),
                &json!({"account": env.app_id, "faults": {"drop": "all"}}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        env
    }

    /// A gateway config on `db_url`, reaching the sandbox's gateway at `via` (or directly).
    fn config(&self, name: &str, db_url: &str, via: Option<SocketAddr>) -> String {
        let gateway = self.sb.gateway_url();
        let gateway = match via {
            None => gateway,
            Some(proxy) => {
                let path = gateway.strip_prefix(self.sb.base_url()).unwrap();
                format!("http://{proxy}{path}")
            }
        };
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_base_url = \"http://127.0.0.1:9\"\n\
             data_dir = \"{dir}\"\n\n[database]\nurl = \"{db_url}\"\n\n\
             [jobs]\npoll_interval_ms = 200\nlease_ms = {LEASE_MS}\n\n{accounts}",
            port = free_port(),
            dir = self.dir.display(),
            accounts = self.account_toml.replace("GATEWAY", &gateway),
        );
        write(&self.dir, &format!("{name}.toml"), &text)
    }

    async fn send(&self, req: reqwest::RequestBuilder, body: &Value) -> (u16, Value) {
        let r = req.json(body).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, url: &str, key: &str) -> (u16, Value) {
        let r = self.http.get(url).bearer_auth(key).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn wait_healthy(&self, gw: &Gw) {
        let start = Instant::now();
        loop {
            if let Ok(r) = self.http.get(format!("{}/healthz", gw.base)).send().await {
                if r.status().is_success() && gw.instance().is_some() {
                    return;
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{} never became healthy",
                gw.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates the payments (round-robin over `gws`) and pays all but every fifth at the
    /// sandbox; returns payment id → paid.
    async fn create_and_pay(&self, gws: &[&Gw], key: &str) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::new();
        for i in 0..PAYMENTS {
            let gw = gws[i % gws.len()];
            let no = format!("K9{i:06}");
            let (s, p) = self
                .send(
                    self.http
                        .post(format!("{}/v1/payments", gw.base))
                        .bearer_auth(key)
                        .header("Idempotency-Key", &no),
                    &json!({"account": "shop", "channel": "alipay", "scene": "qr",
                            "amount": 100 + i, "out_trade_no": no, "subject": "kill9"}),
                )
                .await;
            assert_eq!(s, 201, "{}: {p}", gw.name);
            let paid = i % 5 != 4;
            if paid {
                let trade = self.sb.trade_by_out_no(&no).unwrap();
                let (s, t) = self
                    .send(
                        self.http.post(format!(
                            "{}/_sandbox/trades/{}/pay",
                            self.sb.base_url(),
                            trade.id
                        )),
                        &json!({}),
                    )
                    .await;
                assert_eq!(s, 200, "{t}");
            }
            out.insert(p["id"].as_str().unwrap().to_string(), paid);
        }
        out
    }

    /// Arms the proxy, waits until `victim` is stuck inside a job, kills it with SIGKILL and
    /// returns the jobs it died holding (there must be some).
    async fn kill_mid_job(
        &self,
        victim: &mut Gw,
        stall: &Stall,
        store: &Store,
        ids: &[String],
    ) -> (String, Vec<String>) {
        stall.armed.store(true, Ordering::SeqCst);
        tokio::time::timeout(DEADLINE, stall.held.notified())
            .await
            .expect("the victim never queried the provider");
        victim.kill9();
        let owner = victim.instance().unwrap();
        let mut held = Vec::new();
        for id in ids {
            for job in store.list_payment_jobs(id).await.unwrap() {
                if job.state == JobState::Running && job.lease_owner.as_deref() == Some(&owner) {
                    held.push(job.id);
                }
            }
        }
        assert!(!held.is_empty(), "the killed process held no job leases");
        (owner, held)
    }

    /// Waits until none of `jobs` is still leased to the dead `owner`: another process took
    /// each over once its lease lapsed.
    async fn taken_over(&self, store: &Store, owner: &str, jobs: &[String]) {
        let start = Instant::now();
        for id in jobs {
            loop {
                let job = store.get_job(id).await.unwrap().unwrap();
                if job.state != JobState::Running || job.lease_owner.as_deref() != Some(owner) {
                    break;
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "job {id} stayed with the dead process"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Polls `gw` until every paid payment is `paid`, then checks nothing is lost.
    async fn converge(&self, gw: &Gw, key: &str, payments: &BTreeMap<String, bool>) {
        let start = Instant::now();
        let mut waiting: BTreeSet<&String> = payments
            .iter()
            .filter(|(_, paid)| **paid)
            .map(|(id, _)| id)
            .collect();
        while !waiting.is_empty() {
            assert!(
                start.elapsed() < DEADLINE,
                "{} payments never became paid on {}: {waiting:?}",
                waiting.len(),
                gw.name
            );
            let mut still = BTreeSet::new();
            for id in waiting {
                let (s, p) = self
                    .get(&format!("{}/v1/payments/{id}", gw.base), key)
                    .await;
                assert_eq!(s, 200, "{p}");
                if p["status"] != "paid" {
                    still.insert(id);
                }
            }
            waiting = still;
            if !waiting.is_empty() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }

        // Every payment is still there, in the state the provider knows.
        for (id, paid) in payments {
            let (s, p) = self
                .get(&format!("{}/v1/payments/{id}", gw.base), key)
                .await;
            assert_eq!(s, 200, "{p}");
            let expected: &[&str] = if *paid { &["paid"] } else { &["pending"] };
            assert!(
                expected.contains(&p["status"].as_str().unwrap()),
                "{id}: {p}"
            );
        }
        let mut listed = BTreeSet::new();
        let mut url = format!("{}/v1/payments?limit=100", gw.base);
        loop {
            let (s, page) = self.get(&url, key).await;
            assert_eq!(s, 200, "{page}");
            for p in page["data"].as_array().unwrap() {
                listed.insert(p["id"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => url = format!("{}/v1/payments?limit=100&after={c}", gw.base),
                None => break,
            }
        }
        assert_eq!(listed, payments.keys().cloned().collect());

        // Exactly one payment.paid event per paid payment, none for the others.
        let mut paid_events: BTreeMap<String, usize> = BTreeMap::new();
        let mut url = format!("{}/v1/events?limit=100", gw.base);
        loop {
            let (s, page) = self.get(&url, key).await;
            assert_eq!(s, 200, "{page}");
            for e in page["data"].as_array().unwrap() {
                if e["type"] == "payment.paid" {
                    *paid_events
                        .entry(e["data"]["id"].as_str().unwrap().to_string())
                        .or_default() += 1;
                }
            }
            match (page["has_more"].as_bool(), page["next_cursor"].as_str()) {
                (Some(true), Some(c)) => url = format!("{}/v1/events?limit=100&after={c}", gw.base),
                _ => break,
            }
        }
        let expected: BTreeMap<String, usize> = payments
            .iter()
            .filter(|(_, paid)| **paid)
            .map(|(id, _)| (id.clone(), 1))
            .collect();
        assert_eq!(paid_events, expected);
    }
}

async fn api_key(store: &Store) -> String {
    let (_, secret) = store
        .create_api_key(&NewApiKey {
            mode: Mode::Sandbox,
            merchant: "kill9".into(),
            scopes: vec![ApiScope::Read, ApiScope::Write, ApiScope::Refund],
        })
        .await
        .unwrap();
    secret.expose().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_other_instance_takes_over_after_kill9() {
    let admin = match std::env::var("PAYBRIDGE_TEST_PG_URL") {
        Ok(a) if !a.is_empty() => a,
        _ => {
            println!("SKIP kill9 postgres: PAYBRIDGE_TEST_PG_URL is not set");
            return;
        }
    };
    let db = PgDb::create(&admin).await;
    let env = Env::new("kill9-pg").await;
    let store = Store::open(&db.url).await.unwrap();
    let key = api_key(&store).await;
    let (proxy, stall) = start_stall_proxy(env.sb.addr()).await;
    let mut a = Gw::spawn(&env.dir, "a", &env.config("a", &db.url, Some(proxy)));
    let b = Gw::spawn(&env.dir, "b", &env.config("b", &db.url, None));
    env.wait_healthy(&a).await;
    env.wait_healthy(&b).await;

    let payments = env.create_and_pay(&[&a, &b], &key).await;
    let ids: Vec<String> = payments.keys().cloned().collect();
    let (dead, held) = env.kill_mid_job(&mut a, &stall, &store, &ids).await;
    env.converge(&b, &key, &payments).await;
    env.taken_over(&store, &dead, &held).await;
    drop((a, b));
    store.close().await;
    let _ = std::fs::remove_dir_all(&env.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restarted_process_converges_after_kill9() {
    let env = Env::new("kill9-sqlite").await;
    let db_url = format!("sqlite://{}", env.dir.join("paybridge.db").display());
    let store = Store::open(&db_url).await.unwrap();
    let key = api_key(&store).await;
    let (proxy, stall) = start_stall_proxy(env.sb.addr()).await;
    let mut a = Gw::spawn(&env.dir, "a", &env.config("a", &db_url, Some(proxy)));
    env.wait_healthy(&a).await;

    let payments = env.create_and_pay(&[&a], &key).await;
    let ids: Vec<String> = payments.keys().cloned().collect();
    let (dead, held) = env.kill_mid_job(&mut a, &stall, &store, &ids).await;
    let restarted = Gw::spawn(&env.dir, "a-restarted", &env.config("a2", &db_url, None));
    env.wait_healthy(&restarted).await;
    env.converge(&restarted, &key, &payments).await;
    env.taken_over(&store, &dead, &held).await;
    drop((a, restarted));
    store.close().await;
    let _ = std::fs::remove_dir_all(&env.dir);
}

/// Issue 5: the same signed notification delivered 50 times at once, half to each of two
/// `paybridge serve` processes on one PostgreSQL database, changes the payment once and emits
/// one event. The notification is the sandbox's own (signed by the emulated Alipay), captured
/// while the fault keeps it from the gateways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_same_notification_50_times_across_two_processes_applies_once() {
    let admin = match std::env::var("PAYBRIDGE_TEST_PG_URL") {
        Ok(a) if !a.is_empty() => a,
        _ => {
            println!("SKIP duplicate notifications postgres: PAYBRIDGE_TEST_PG_URL is not set");
            return;
        }
    };
    let db = PgDb::create(&admin).await;
    let env = Env::new("dup50-pg").await;
    let store = Store::open(&db.url).await.unwrap();
    let key = api_key(&store).await;
    let a = Gw::spawn(&env.dir, "a", &env.config("a", &db.url, None));
    let b = Gw::spawn(&env.dir, "b", &env.config("b", &db.url, None));
    env.wait_healthy(&a).await;
    env.wait_healthy(&b).await;

    let (s, p) = env
        .send(
            env.http
                .post(format!("{}/v1/payments", a.base))
                .bearer_auth(&key)
                .header("Idempotency-Key", "dup50"),
            &json!({"account": "shop", "channel": "alipay", "scene": "qr",
                    "amount": 4321, "out_trade_no": "DUP50", "subject": "dup50"}),
        )
        .await;
    assert_eq!(s, 201, "{p}");
    let payment_id = p["id"].as_str().unwrap().to_string();
    env.pay_at_sandbox("DUP50").await;
    let body = env.paid_notification("DUP50").await;

    let sends = (0..50).map(|i| {
        let url = format!(
            "{}/notify/alipay/shop",
            if i % 2 == 0 { &a.base } else { &b.base }
        );
        let req = env
            .http
            .post(url)
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.clone());
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    for (status, reply) in futures_join_all(sends).await {
        assert_eq!((status, reply.as_str()), (200, "success"));
    }

    let (s, p) = env
        .get(&format!("{}/v1/payments/{payment_id}", b.base), &key)
        .await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(p["status"], "paid", "{p}");
    assert_eq!(p["version"], 2, "applied more than once: {p}");
    let (s, events) = env
        .get(&format!("{}/v1/events?limit=100", a.base), &key)
        .await;
    assert_eq!(s, 200, "{events}");
    let paid_events = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "payment.paid" && e["data"]["id"] == payment_id.as_str())
        .count();
    assert_eq!(paid_events, 1, "{events}");
    drop((a, b));
    store.close().await;
    let _ = std::fs::remove_dir_all(&env.dir);
}

/// Runs the futures concurrently on the current task (no extra dependency for a join_all).
async fn futures_join_all<F, T>(futs: impl IntoIterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Overall cap of the crash suite's polling: a retry waits out the dead request's key lock and
/// recovery jobs first look after their own delay, so this is longer than [`DEADLINE`].
const CRASH_DEADLINE: Duration = Duration::from_secs(150);

/// What the merchant sent, so the same-key retry after the crash is byte-for-byte the same.
struct Post {
    url_path: String,
    key: String,
    body: Value,
}

impl Env {
    async fn post(&self, gw: &Gw, api: &str, p: &Post) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{}", gw.base, p.url_path))
                .bearer_auth(api)
                .header("Idempotency-Key", &p.key),
            &p.body,
        )
        .await
    }

    async fn create(&self, gw: &Gw, api: &str, no: &str, amount: i64) -> String {
        let post = Post {
            url_path: "/v1/payments".into(),
            key: no.into(),
            body: json!({"account": "shop", "channel": "alipay", "scene": "qr",
                         "amount": amount, "out_trade_no": no, "subject": "crash"}),
        };
        let (s, p) = self.post(gw, api, &post).await;
        assert_eq!(s, 201, "{p}");
        p["id"].as_str().unwrap().to_string()
    }

    async fn pay_at_sandbox(&self, no: &str) {
        let trade = self.sb.trade_by_out_no(no).unwrap();
        self.sb.pay(&trade.id).unwrap();
    }

    /// The signed `TRADE_SUCCESS` notification the sandbox built for `no` (the drop fault kept
    /// it from the gateways).
    async fn paid_notification(&self, no: &str) -> String {
        let trade = self.sb.trade_by_out_no(no).unwrap();
        let start = Instant::now();
        loop {
            let found = self
                .sb
                .notifications()
                .into_iter()
                .find(|n| n.trade_id == trade.id && n.kind == "TRADE_SUCCESS");
            if let Some(n) = found {
                return n.request.body;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "the sandbox never built the notification"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn notify(&self, gw: &Gw, body: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}/notify/alipay/shop", gw.base))
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .body(body.to_string())
            .send()
            .await
    }

    async fn wait_status(&self, gw: &Gw, api: &str, id: &str, status: &str) {
        let start = Instant::now();
        loop {
            let (s, p) = self
                .get(&format!("{}/v1/payments/{id}", gw.base), api)
                .await;
            assert_eq!(s, 200, "{p}");
            if p["status"] == status {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{id} never became {status}: {p}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The merchant's same-key retry until it gets the resource: a 409 (key still locked by
    /// the dead request, or a conflict) fails at once, other failures are retried.
    async fn retry_until_resource(&self, gw: &Gw, api: &str, p: &Post) -> Value {
        let start = Instant::now();
        loop {
            let (s, v) = self.post(gw, api, p).await;
            assert_ne!(s, 409, "same-key retry of {} answered 409: {v}", p.url_path);
            if (200..=202).contains(&s) && v["id"].is_string() {
                return v;
            }
            assert!(
                start.elapsed() < CRASH_DEADLINE,
                "retry of {} never answered with the resource: {s} {v}",
                p.url_path
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The gateway status the sandbox's ledger implies for the trade `no`.
fn ledger_status(sb: &Sandbox, no: &str) -> &'static str {
    let t = sb.trade_by_out_no(no).expect("the provider has the order");
    if t.is_paid() {
        match t.refunded().0 {
            0 => "paid",
            r if r < t.amount.0 => "partially_refunded",
            _ => "refunded",
        }
    } else {
        match t.alipay_status() {
            "WAIT_BUYER_PAY" => "pending",
            _ => "closed",
        }
    }
}

/// `kill -9` while the gateway is inside the provider call of a create, a refund, a close and
/// a query job at once (all four held by the proxy, checked by their Alipay method names), then
/// restart on the same database (`takeover == false`) or a second process on it (`true`).
/// Afterwards every payment and refund reaches the state the sandbox's ledger holds, each
/// transition has exactly one event, and the merchant's same-key retries answer with the
/// resource, never 409.
async fn crash_inside_provider_calls(env: &Env, db_url: &str, takeover: bool) {
    let store = Store::open(db_url).await.unwrap();
    let api = api_key(&store).await;
    let (proxy, stall) = start_stall_proxy(env.sb.addr()).await;
    let mut a = Gw::spawn(&env.dir, "a", &env.config("a", db_url, Some(proxy)));
    env.wait_healthy(&a).await;

    // Before the crash: a paid payment to refund, a pending one to close, one the buyer pays
    // while the gateway's query of it hangs.
    let refund_pay = env.create(&a, &api, "CR-REFUND", 300).await;
    env.pay_at_sandbox("CR-REFUND").await;
    env.wait_status(&a, &api, &refund_pay, "paid").await;
    let close_pay = env.create(&a, &api, "CR-CLOSE", 200).await;
    // The buyer opened the code without paying, so the provider knows the order and the close
    // really closes it there (an unscanned one is closed here and watched: money_path.rs).
    let close_trade = env.sb.trade_by_out_no("CR-CLOSE").unwrap();
    env.sb.scan(&close_trade.id).unwrap();
    let query_pay = env.create(&a, &api, "CR-QUERY", 100).await;
    let notify_pay = env.create(&a, &api, "CR-NOTIFY", 500).await;

    stall.armed.store(true, Ordering::SeqCst);
    env.pay_at_sandbox("CR-QUERY").await;
    let create = Post {
        url_path: "/v1/payments".into(),
        key: "CR-NEW".into(),
        body: json!({"account": "shop", "channel": "alipay", "scene": "qr",
                     "amount": 400, "out_trade_no": "CR-NEW", "subject": "crash"}),
    };
    let refund = Post {
        url_path: format!("/v1/payments/{refund_pay}/refunds"),
        key: "CR-REFUND-1".into(),
        body: json!({"amount": 120, "out_refund_no": "CR-REFUND-1", "reason": "crash"}),
    };
    let close_url = format!("{}/v1/payments/{close_pay}/close", a.base);
    // Fire and forget: these requests die with the process.
    for p in [&create, &refund] {
        let req = env
            .http
            .post(format!("{}{}", a.base, p.url_path))
            .bearer_auth(&api)
            .header("Idempotency-Key", &p.key)
            .json(&p.body);
        tokio::spawn(req.send());
    }
    tokio::spawn(
        env.http
            .post(&close_url)
            .bearer_auth(&api)
            .header("Idempotency-Key", "CR-CLOSE-1")
            .send(),
    );
    let start = Instant::now();
    for method in [
        "alipay.trade.precreate",
        "alipay.trade.refund",
        "alipay.trade.close",
        "alipay.trade.query",
    ] {
        while !stall
            .held_requests
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains(method))
        {
            assert!(
                start.elapsed() < DEADLINE,
                "the gateway never called {method}: {:?}",
                stall.held_requests.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // A notification reaches the doomed process as it dies; the provider delivers it again
    // (below) to the process that carries on.
    env.pay_at_sandbox("CR-NOTIFY").await;
    let notification = env.paid_notification("CR-NOTIFY").await;
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let http = env.http.clone();
            let url = format!("{}/notify/alipay/shop", a.base);
            let body = notification.clone();
            tokio::spawn(async move {
                let _ = http
                    .post(url)
                    .header(
                        "Content-Type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )
                    .body(body)
                    .send()
                    .await;
            })
        })
        .collect();
    tokio::task::yield_now().await;
    a.kill9();
    for h in in_flight {
        h.await.unwrap();
    }

    let b = if takeover {
        Gw::spawn(&env.dir, "b", &env.config("b", db_url, None))
    } else {
        Gw::spawn(&env.dir, "a-restarted", &env.config("a2", db_url, None))
    };
    env.wait_healthy(&b).await;

    let r = env.notify(&b, &notification).await.unwrap();
    let status = r.status().as_u16();
    assert_eq!((status, r.text().await.unwrap().as_str()), (200, "success"));

    // The merchant retries with the same keys (and closes again).
    let created = env.retry_until_resource(&b, &api, &create).await;
    assert_eq!(created["out_trade_no"], "CR-NEW", "{created}");
    let new_pay = created["id"].as_str().unwrap().to_string();
    let refunded = env.retry_until_resource(&b, &api, &refund).await;
    let refund_id = refunded["id"].as_str().unwrap().to_string();
    let close_url = format!("{}/v1/payments/{close_pay}/close", b.base);
    let start = Instant::now();
    loop {
        let r = env
            .http
            .post(&close_url)
            .bearer_auth(&api)
            .header("Idempotency-Key", "CR-CLOSE-1")
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        assert_ne!(s, 409, "close retry answered 409: {v}");
        if s == 200 && v["status"] == "closed" {
            break;
        }
        assert!(start.elapsed() < CRASH_DEADLINE, "close retry: {s} {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Every payment and the refund settle in the state the provider's ledger holds.
    let payments = [
        (new_pay.as_str(), "CR-NEW"),
        (refund_pay.as_str(), "CR-REFUND"),
        (close_pay.as_str(), "CR-CLOSE"),
        (query_pay.as_str(), "CR-QUERY"),
        (notify_pay.as_str(), "CR-NOTIFY"),
    ];
    let start = Instant::now();
    loop {
        let mut off = Vec::new();
        for (id, no) in payments {
            let (s, p) = env.get(&format!("{}/v1/payments/{id}", b.base), &api).await;
            assert_eq!(s, 200, "{p}");
            let want = ledger_status(&env.sb, no);
            if p["status"] != want {
                off.push(format!("{no}: gateway {} ledger {want}", p["status"]));
            }
        }
        let (s, r) = env
            .get(&format!("{}/v1/refunds/{refund_id}", b.base), &api)
            .await;
        assert_eq!(s, 200, "{r}");
        let trade = env.sb.trade_by_out_no("CR-REFUND").unwrap();
        let at_provider = trade.refund("CR-REFUND-1").map(|r| r.state);
        let want = match at_provider {
            Some(paybridge_sandbox::ledger::RefundState::Success) => "succeeded",
            _ => "unsettled",
        };
        if r["status"] != want {
            off.push(format!(
                "refund: gateway {} ledger {at_provider:?}",
                r["status"]
            ));
        }
        if off.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < CRASH_DEADLINE,
            "never matched the ledger on {}: {off:?}",
            b.name
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let expected = [
        ("CR-NEW", "pending"),
        ("CR-REFUND", "partially_refunded"),
        ("CR-CLOSE", "closed"),
        ("CR-QUERY", "paid"),
        ("CR-NOTIFY", "paid"),
    ];
    for (no, want) in expected {
        assert_eq!(ledger_status(&env.sb, no), want, "{no} at the provider");
    }

    // Exactly one event per transition.
    let mut events: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut url = format!("{}/v1/events?limit=100", b.base);
    loop {
        let (s, page) = env.get(&url, &api).await;
        assert_eq!(s, 200, "{page}");
        for e in page["data"].as_array().unwrap() {
            let key = (
                e["type"].as_str().unwrap().to_string(),
                e["data"]["id"].as_str().unwrap().to_string(),
            );
            *events.entry(key).or_default() += 1;
        }
        match (page["has_more"].as_bool(), page["next_cursor"].as_str()) {
            (Some(true), Some(c)) => url = format!("{}/v1/events?limit=100&after={c}", b.base),
            _ => break,
        }
    }
    let dup: Vec<_> = events.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        dup.is_empty(),
        "transitions with more than one event: {dup:?}"
    );
    for (kind, id) in [
        ("payment.paid", &refund_pay),
        ("refund.succeeded", &refund_id),
        ("payment.closed", &close_pay),
        ("payment.paid", &query_pay),
        ("payment.paid", &notify_pay),
    ] {
        assert!(
            events.contains_key(&(kind.to_string(), id.clone())),
            "no {kind} event for {id}: {events:?}"
        );
    }
    assert!(
        !events.keys().any(|(_, id)| *id == new_pay),
        "events for a payment nobody paid: {events:?}"
    );
    // The same-key retries keep answering with the resource.
    assert_eq!(
        env.retry_until_resource(&b, &api, &create).await["id"],
        new_pay.as_str()
    );
    assert_eq!(
        env.retry_until_resource(&b, &api, &refund).await["id"],
        refund_id.as_str()
    );
    drop((a, b));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_crash_inside_create_refund_close_and_query_recovers_on_restart() {
    let env = Env::new("crash-sqlite").await;
    let db_url = format!("sqlite://{}", env.dir.join("paybridge.db").display());
    crash_inside_provider_calls(&env, &db_url, false).await;
    let _ = std::fs::remove_dir_all(&env.dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_inside_create_refund_close_and_query_taken_over() {
    let admin = match std::env::var("PAYBRIDGE_TEST_PG_URL") {
        Ok(a) if !a.is_empty() => a,
        _ => {
            println!("SKIP crash postgres: PAYBRIDGE_TEST_PG_URL is not set");
            return;
        }
    };
    let db = PgDb::create(&admin).await;
    let env = Env::new("crash-pg").await;
    crash_inside_provider_calls(&env, &db.url, true).await;
    let _ = std::fs::remove_dir_all(&env.dir);
}
