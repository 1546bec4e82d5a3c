//! `paybridge bench notify`: fires signed Alipay notifications for pending payments at a gateway
//! and reports throughput and latency percentiles.
//!
//! By default everything runs in-process (sandbox, gateway on 127.0.0.1:0, the database given by
//! `--database-url`, SQLite in a temp dir otherwise), so figures on SQLite and PostgreSQL come
//! from the same command. `--gateway URL` aims at a running gateway instead (e.g. `paybridge
//! demo`, whose data dir holds the `sandbox.toml` with the keys to sign with).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use paybridge_alipay::notify::NotifyRule;
use paybridge_alipay::provider::{encode_form, sign_notify};
use paybridge_alipay::time_fmt::format_beijing;
use paybridge_core::{Fen, Mode};
use paybridge_crypto::{RsaPrivateKey, Secret};
use paybridge_sandbox::{Clock as _, Sandbox, SandboxConfig, SystemClock};
use paybridge_server::config::Config;
use paybridge_server::{runtime, Gateway};
use paybridge_store::{ApiScope, NewApiKey, Store, StoreOptions};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::sandbox_accounts::{sandbox_accounts, ALIPAY};

#[derive(clap::Subcommand)]
pub enum BenchCommand {
    /// Signed payment notifications for existing pending payments, at a chosen concurrency.
    Notify(NotifyArgs),
}

#[derive(clap::Args)]
pub struct NotifyArgs {
    /// How many payments (each gets one notification, plus `--duplicates` copies).
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// Notifications in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Extra copies of every notification (0 = each payment notified once).
    #[arg(long, default_value_t = 0)]
    duplicates: usize,
    /// In-process mode: the gateway's database (`sqlite://...` or `postgres://...`).
    #[arg(long)]
    database_url: Option<String>,
    /// Aim at a running gateway instead of starting one.
    #[arg(long, requires_all = ["api_key", "sandbox_config"])]
    gateway: Option<String>,
    /// A sandbox-mode API key of that gateway (write scope).
    #[arg(long)]
    api_key: Option<String>,
    /// The sandbox.toml whose Alipay key that gateway trusts (the demo writes one).
    #[arg(long)]
    sandbox_config: Option<PathBuf>,
}

pub fn run(cmd: BenchCommand) -> ExitCode {
    crate::serve::init_tracing("error");
    let BenchCommand::Notify(args) = cmd;
    let rt = match crate::serve::runtime_or_exit("bench") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    crate::serve::exit_code("bench", rt.block_on(notify(args)))
}

/// What a bench run aims at.
struct Target {
    base: String,
    api_key: String,
    app_id: String,
    alipay_key: RsaPrivateKey,
    /// Keeps the in-process sandbox and gateway alive.
    _local: Option<(Sandbox, tokio::sync::oneshot::Sender<()>)>,
    label: String,
}

async fn local_target(database_url: Option<String>, concurrency: usize) -> Result<Target, String> {
    let now = SystemClock.now_ms();
    let config = SandboxConfig::generate(now / 1000).map_err(|e| e.to_string())?;
    let alipay_key =
        RsaPrivateKey::from_text(&config.alipay.private_key).map_err(|e| e.to_string())?;
    let app_id = config
        .alipay
        .apps
        .first()
        .map(|a| a.app_id.clone())
        .ok_or("no Alipay app")?;
    let sandbox = Sandbox::start(config).await.map_err(|e| e.to_string())?;
    let url = match database_url {
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
    let mut config = Config::minimal(&base).map_err(|e| e.to_string())?;
    config.listen = addr;
    config.database_url = Secret::new(url);
    config.database_max_connections = 16;
    config.accounts = sandbox_accounts(&sandbox, Mode::Sandbox)?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    // Not `serve`'s store opening: that narrows the data dir's permissions, and a database given
    // here may sit in any directory.
    let store = Store::open_with(
        config.database_url.expose(),
        StoreOptions {
            max_connections: config.database_max_connections,
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
    let gw = Arc::new(Gateway::from_config(&config, store).map_err(|e| e.to_string())?);
    // Production limits, except that the load generator is one address opening a connection
    // per concurrent request: the per-address cap would otherwise be what is measured.
    let limits = runtime::Limits {
        max_connections_per_ip: config.limits.max_connections_per_ip.max(concurrency * 2),
        ..config.limits.clone()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = runtime::serve(listener, gw, limits, async {
            let _ = rx.await;
        })
        .await;
    });
    Ok(Target {
        base,
        api_key: key.expose().clone(),
        app_id,
        alipay_key,
        _local: Some((sandbox, tx)),
        label,
    })
}

fn remote_target(args: &NotifyArgs) -> Result<Target, String> {
    let (Some(base), Some(api_key), Some(path)) =
        (&args.gateway, &args.api_key, &args.sandbox_config)
    else {
        return Err("--gateway needs --api-key and --sandbox-config".into());
    };
    let config = SandboxConfig::load(path).map_err(|e| e.to_string())?;
    Ok(Target {
        base: base.trim_end_matches('/').to_string(),
        api_key: api_key.clone(),
        app_id: config
            .alipay
            .apps
            .first()
            .map(|a| a.app_id.clone())
            .ok_or("no Alipay app in the sandbox config")?,
        alipay_key: RsaPrivateKey::from_text(&config.alipay.private_key)
            .map_err(|e| e.to_string())?,
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

async fn notify(args: NotifyArgs) -> Result<(), String> {
    let target = match &args.gateway {
        Some(_) => remote_target(&args)?,
        None => local_target(args.database_url.clone(), args.concurrency).await?,
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(1))
        .build()
        .map_err(|e| e.to_string())?;
    let run_id = SystemClock.now_ms();
    let concurrency = args.concurrency.max(1);

    eprintln!(
        "creating {} pending payments at {} ...",
        args.count, target.base
    );
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let (client, sem) = (client.clone(), sem.clone());
        let url = format!("{}/v1/payments", target.base);
        let key = target.api_key.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
            let no = format!("B{run_id}{i:07}");
            let body = json!({"account": ALIPAY, "channel": "alipay", "scene": "qr",
                              "amount": 100, "out_trade_no": no, "subject": "bench"});
            let resp = client
                .post(url)
                .bearer_auth(key)
                .header("Idempotency-Key", &no)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = resp.json().await.map_err(|e| e.to_string())?;
            match v["status"].as_str() {
                Some("pending") => Ok(no),
                _ => Err(format!("create failed: {v}")),
            }
        }));
    }
    let mut orders = Vec::with_capacity(args.count);
    for t in tasks {
        orders.push(t.await.map_err(|e| e.to_string())??);
    }

    // Signing is the provider's cost, not the gateway's: do it before the clock starts.
    let now = SystemClock.now_ms() / 1000;
    let mut bodies = Vec::with_capacity(orders.len() * (1 + args.duplicates));
    for (i, no) in orders.iter().enumerate() {
        let fields: Vec<(String, String)> = [
            ("gmt_create", format_beijing(now)),
            ("charset", "utf-8".to_string()),
            ("gmt_payment", format_beijing(now)),
            ("notify_time", format_beijing(now)),
            ("subject", "bench".to_string()),
            ("sign_type", "RSA2".to_string()),
            ("buyer_id", "2088000000000001".to_string()),
            ("version", "1.0".to_string()),
            ("notify_id", format!("bench{run_id}{i:07}")),
            ("notify_type", "trade_status_sync".to_string()),
            ("out_trade_no", no.clone()),
            ("total_amount", Fen(100).to_yuan()),
            ("receipt_amount", Fen(100).to_yuan()),
            ("buyer_pay_amount", Fen(100).to_yuan()),
            ("trade_status", "TRADE_SUCCESS".to_string()),
            ("trade_no", format!("2026{run_id}{i:07}")),
            ("auth_app_id", target.app_id.clone()),
            ("app_id", target.app_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let signed =
            sign_notify(fields, NotifyRule::V1, &target.alipay_key).map_err(|e| e.to_string())?;
        let body = encode_form(&signed, "utf-8").map_err(|e| e.to_string())?;
        for _ in 0..=args.duplicates {
            bodies.push(body.clone());
        }
    }

    eprintln!(
        "firing {} notifications, {} in flight ...",
        bodies.len(),
        concurrency
    );
    let url = format!("{}/notify/alipay/{ALIPAY}", target.base);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(bodies.len());
    for body in bodies {
        let (client, sem, url) = (client.clone(), sem.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
            let t0 = Instant::now();
            let resp = client
                .post(url)
                .header(
                    "content-type",
                    "application/x-www-form-urlencoded; charset=utf-8",
                )
                .body(body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let ok = resp.text().await.map_err(|e| e.to_string())? == "success";
            Ok::<_, String>((t0.elapsed(), ok))
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failures = 0usize;
    for t in tasks {
        let (d, ok) = t.await.map_err(|e| e.to_string())??;
        latencies.push(d);
        if !ok {
            failures += 1;
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    let n = latencies.len();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "target": target.label,
            "notifications": n,
            "payments": orders.len(),
            "concurrency": concurrency,
            "not_success": failures,
            "seconds": (wall.as_secs_f64() * 1000.0).round() / 1000.0,
            "per_second": (n as f64 / wall.as_secs_f64()).round(),
            "p50_ms": (ms(percentile(&latencies, 50.0)) * 100.0).round() / 100.0,
            "p90_ms": (ms(percentile(&latencies, 90.0)) * 100.0).round() / 100.0,
            "p99_ms": (ms(percentile(&latencies, 99.0)) * 100.0).round() / 100.0,
            "max_ms": (ms(latencies.last().copied().unwrap_or_default()) * 100.0).round() / 100.0,
        }))
        .unwrap_or_default()
    );
    if failures > 0 {
        return Err(format!(
            "{failures} notifications were not acknowledged with success"
        ));
    }
    Ok(())
}
