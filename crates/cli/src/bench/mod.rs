//! `paybridge bench`: provider notifications (Alipay, WeChat Pay APIv2 and APIv3), payment
//! creation and webhook delivery, each reporting throughput and latency percentiles as JSON.
//!
//! By default everything runs in-process (sandbox, gateway on 127.0.0.1:0, the database given by
//! `--database-url`, SQLite in a temp dir otherwise), so figures on SQLite and PostgreSQL come
//! from the same command. `--gateway URL` aims at a running gateway instead (e.g. `paybridge
//! demo`, whose data dir holds the `sandbox.toml` with the keys to sign with).

mod create;
mod notify;
mod webhooks;

use crate::out::outln;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paybridge_core::Mode;
use paybridge_crypto::Secret;
use paybridge_sandbox::config::Keys;
use paybridge_sandbox::{Clock as _, Sandbox, SandboxConfig, SystemClock};
use paybridge_server::config::{Config, NotificationsConfig, WebhookEndpoint};
use paybridge_server::{runtime, Gateway};
use paybridge_store::{ApiScope, NewApiKey, Store, StoreOptions};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::sandbox_accounts::{sandbox_accounts, ALIPAY, WECHAT_V2, WECHAT_V3};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Signed payment notifications for existing pending payments, at a chosen concurrency.
    Notify(notify::NotifyArgs),
    /// Payments created through the API (the gateway calls the sandbox for each).
    Create(create::CreateArgs),
    /// Webhook deliveries to a local receiver, from payments paid by notifications.
    Webhooks(webhooks::WebhookArgs),
}

/// Where a bench runs: in-process (optionally on `--database-url`) or against `--gateway`.
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// In-process mode: the gateway's database (`sqlite://...` or `postgres://...`).
    #[arg(long)]
    database_url: Option<String>,
    /// Aim at a running gateway instead of starting one.
    #[arg(long, requires_all = ["api_key", "sandbox_config"])]
    gateway: Option<String>,
    /// A sandbox-mode API key of that gateway (write scope).
    #[arg(long)]
    api_key: Option<String>,
    /// The sandbox.toml whose keys that gateway trusts (the demo writes one).
    #[arg(long)]
    sandbox_config: Option<PathBuf>,
    /// In-process mode: `[notifications] writers` (group-commit writers).
    #[arg(long)]
    writers: Option<usize>,
    /// In-process mode: `[notifications] max_batch`.
    #[arg(long)]
    max_batch: Option<usize>,
    /// In-process mode: `[notifications] max_wait_ms`.
    #[arg(long)]
    max_wait_ms: Option<u64>,
}

/// The provider protocol a bench speaks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Alipay,
    WechatV2,
    WechatV3,
}

impl Protocol {
    /// The sandbox account speaking it, and the create request's channel and scene.
    fn account(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Protocol::Alipay => (ALIPAY, "alipay", "qr"),
            Protocol::WechatV2 => (WECHAT_V2, "wechat", "native"),
            Protocol::WechatV3 => (WECHAT_V3, "wechat", "native"),
        }
    }
}

pub fn run(cmd: BenchCommand) -> ExitCode {
    crate::serve::init_tracing("error");
    let rt = match crate::serve::runtime_or_exit("bench") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        match cmd {
            BenchCommand::Notify(args) => notify::run(args).await,
            BenchCommand::Create(args) => create::run(args).await,
            BenchCommand::Webhooks(args) => webhooks::run(args).await,
        }
    });
    crate::serve::exit_code("bench", result)
}

/// What a bench run aims at.
pub(crate) struct Target {
    base: String,
    api_key: String,
    /// The sandbox's configuration (merchant-side keys) and the provider keys derived from it.
    sandbox: SandboxConfig,
    keys: Keys,
    /// Keeps the in-process sandbox, gateway and workers alive.
    _local: Option<Local>,
    label: String,
}

struct Local {
    _sandbox: Sandbox,
    _stop: tokio::sync::oneshot::Sender<()>,
    _workers: Option<paybridge_server::workers::Workers>,
}

/// What the in-process gateway runs besides its API.
#[derive(Default)]
struct LocalOptions {
    endpoints: Vec<WebhookEndpoint>,
    workers: bool,
}

impl Target {
    async fn new(
        args: &TargetArgs,
        concurrency: usize,
        opts: LocalOptions,
    ) -> Result<Self, String> {
        match &args.gateway {
            Some(_) => remote_target(args),
            None => local_target(args, concurrency, opts).await,
        }
    }
}

async fn local_target(
    args: &TargetArgs,
    concurrency: usize,
    opts: LocalOptions,
) -> Result<Target, String> {
    let now = SystemClock.now_ms();
    let config = SandboxConfig::generate(now / 1000).map_err(|e| e.to_string())?;
    let keys = Keys::from_config(&config).map_err(|e| e.to_string())?;
    let sandbox = Sandbox::start(config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let url = match args.database_url.clone() {
        Some(u) => u,
        None => {
            let dir = std::env::temp_dir().join(format!("paybridge-bench-{now}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            format!("sqlite://{}", dir.join("bench.db").display())
        }
    };
    let label = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
    .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    let mut gw_config = Config::minimal(&base).map_err(|e| e.to_string())?;
    gw_config.listen = addr;
    gw_config.database_url = Secret::new(url);
    gw_config.database_max_connections = 16;
    gw_config.webhook_endpoints = opts.endpoints;
    gw_config.notifications = NotificationsConfig {
        writers: args.writers,
        max_batch: args.max_batch,
        max_wait: args.max_wait_ms.map(Duration::from_millis),
    };
    gw_config.accounts = sandbox_accounts(&sandbox, Mode::Sandbox)?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    // Not `serve`'s store opening: that narrows the data dir's permissions, and a database given
    // here may sit in any directory.
    let store = Store::open_with(
        gw_config.database_url.expose(),
        StoreOptions {
            max_connections: gw_config.database_max_connections,
            ..StoreOptions::default()
        },
    )
    .await
    .map_err(|e| format!("database: {e}"))?;
    let (_, key) = store
        .create_api_key(&NewApiKey {
            mode: Mode::Sandbox,
            merchant: "bench".into(),
            scopes: vec![ApiScope::Read, ApiScope::Write],
        })
        .await
        .map_err(|e| e.to_string())?;
    let gw = Arc::new(Gateway::from_config(&gw_config, store).map_err(|e| e.to_string())?);
    // Production limits, except that the load generator is one address opening a connection
    // per concurrent request: the per-address cap would otherwise be what is measured.
    let limits = runtime::Limits {
        max_connections_per_ip: gw_config.limits.max_connections_per_ip.max(concurrency * 2),
        ..gw_config.limits.clone()
    };
    let workers = opts
        .workers
        .then(|| runtime::spawn_workers(gw.clone(), Duration::from_millis(200)));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = runtime::serve(listener, gw, limits, async {
            let _ = stopped.await;
        })
        .await;
    });
    Ok(Target {
        base,
        api_key: key.expose().clone(),
        sandbox: config,
        keys,
        _local: Some(Local {
            _sandbox: sandbox,
            _stop: stop,
            _workers: workers,
        }),
        label,
    })
}

fn remote_target(args: &TargetArgs) -> Result<Target, String> {
    let (Some(base), Some(api_key), Some(path)) =
        (&args.gateway, &args.api_key, &args.sandbox_config)
    else {
        return Err("--gateway needs --api-key and --sandbox-config".into());
    };
    let config = SandboxConfig::load(path).map_err(|e| e.to_string())?;
    let keys = Keys::from_config(&config).map_err(|e| e.to_string())?;
    Ok(Target {
        base: base.trim_end_matches('/').to_string(),
        api_key: api_key.clone(),
        sandbox: config,
        keys,
        _local: None,
        label: base.clone(),
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latencies of a run and how long it took.
struct Timings {
    latencies: Vec<Duration>,
    wall: Duration,
}

impl Timings {
    /// The report line: count, rate, p50/p90/p99/max, plus `extra` fields.
    fn report(mut self, extra: Value) -> Value {
        self.latencies.sort();
        let n = self.latencies.len();
        let ms = |d: Duration| (d.as_secs_f64() * 100_000.0).round() / 100.0;
        let mut out = json!({
            "count": n,
            "seconds": (self.wall.as_secs_f64() * 1000.0).round() / 1000.0,
            "per_second": (n as f64 / self.wall.as_secs_f64().max(1e-9)).round(),
            "p50_ms": ms(percentile(&self.latencies, 50.0)),
            "p90_ms": ms(percentile(&self.latencies, 90.0)),
            "p99_ms": ms(percentile(&self.latencies, 99.0)),
            "max_ms": ms(self.latencies.last().copied().unwrap_or_default()),
        });
        if let (Some(o), Value::Object(e)) = (out.as_object_mut(), extra) {
            o.extend(e);
        }
        out
    }
}

/// One prepared HTTP request.
#[derive(Clone)]
struct Shot {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Fires `shots` with `concurrency` in flight, timing each until its whole answer arrived;
/// `ok` judges each answer (status, body). Returns the timings and the answers judged bad.
async fn fire(
    client: &reqwest::Client,
    shots: Vec<Shot>,
    concurrency: usize,
    ok: fn(u16, &[u8]) -> bool,
) -> Result<(Timings, usize), String> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(shots.len());
    for shot in shots {
        let (client, sem) = (client.clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let mut req = client.post(&shot.url).body(shot.body);
            for (k, v) in &shot.headers {
                req = req.header(k, v);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            let body = resp.bytes().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((t0.elapsed(), ok(status, &body)))
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut bad = 0usize;
    for t in tasks {
        let (d, good) = t.await.map_err(|e| e.to_string())??;
        latencies.push(d);
        if !good {
            bad += 1;
        }
    }
    Ok((
        Timings {
            latencies,
            wall: started.elapsed(),
        },
        bad,
    ))
}

/// `POST /v1/payments` for order `no` on `protocol`'s sandbox account.
fn create_shot(target: &Target, protocol: Protocol, no: &str, amount: i64) -> Shot {
    let (account, channel, scene) = protocol.account();
    let body = json!({"account": account, "channel": channel, "scene": scene,
                      "amount": amount, "out_trade_no": no, "subject": "bench"});
    Shot {
        url: format!("{}/v1/payments", target.base),
        headers: vec![
            ("authorization".into(), format!("Bearer {}", target.api_key)),
            ("idempotency-key".into(), no.to_string()),
            ("content-type".into(), "application/json".into()),
        ],
        body: body.to_string().into_bytes(),
    }
}

/// A create answered with a pending payment.
fn created(status: u16, body: &[u8]) -> bool {
    (200..300).contains(&status)
        && serde_json::from_slice::<Value>(body)
            .is_ok_and(|v| v["status"].as_str() == Some("pending"))
}

/// Creates `count` pending payments of `amount` fen (untimed set-up); their order numbers.
async fn create_pending(
    client: &reqwest::Client,
    target: &Target,
    protocol: Protocol,
    count: usize,
    amount: i64,
    concurrency: usize,
) -> Result<Vec<String>, String> {
    let run_id = SystemClock.now_ms();
    let orders: Vec<String> = (0..count).map(|i| format!("B{run_id}{i:07}")).collect();
    let shots = orders
        .iter()
        .map(|no| create_shot(target, protocol, no, amount))
        .collect();
    let (_, bad) = fire(client, shots, concurrency, created).await?;
    if bad > 0 {
        return Err(format!(
            "{bad} of {count} payments were not created pending"
        ));
    }
    Ok(orders)
}

fn http_client(concurrency: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency.max(1))
        .build()
        .map_err(|e| e.to_string())
}

fn print(report: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(report).unwrap_or_default()
    );
}
