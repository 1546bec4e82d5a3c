//! `paybridge bench webhooks`: how fast the worker runtime delivers webhooks. Pending payments
//! are paid by notifications as fast as the gateway takes them; a local receiver verifies each
//! delivery's `Paybridge-Signature` and records when it arrived. Latency is from the
//! notification's acknowledgement to its event's delivery; the rate is deliveries over the time
//! from the first acknowledgement to the last delivery. In-process only: the bench owns the
//! endpoints.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use paybridge_core::Mode;
use paybridge_crypto::Secret;
use paybridge_sandbox::{Clock as _, SystemClock};
use paybridge_server::config::WebhookEndpoint;
use paybridge_server::webhook::{verify, SIGNATURE_HEADER};
use serde_json::{json, Value};

use super::notify::paid_notification;
use super::{
    create_pending, http_client, print, LocalOptions, Protocol, Target, TargetArgs, Timings,
};

#[derive(clap::Args)]
pub struct WebhookArgs {
    /// How many payments (each yields one `payment.paid` event per endpoint).
    #[arg(long, default_value_t = 1000)]
    count: usize,
    /// Webhook endpoints; every event goes to each, and each has its own concurrency limit.
    #[arg(long, default_value_t = 4)]
    endpoints: usize,
    /// Notifications in flight while paying the payments.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The gateway's database (`sqlite://...` or `postgres://...`); SQLite in a temp dir if absent.
    #[arg(long)]
    database_url: Option<String>,
}

const SECRET: &str = "whsec_bench_receiver_0123456789abcdef";

#[derive(Default)]
struct Received {
    /// (endpoint, out_trade_no) -> first arrival.
    at: HashMap<(usize, String), Instant>,
    bad_signatures: usize,
}

async fn receive(
    State(seen): State<Arc<Mutex<Received>>>,
    Path(endpoint): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = Instant::now();
    let signed = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| {
            verify(
                SECRET.as_bytes(),
                h,
                &body,
                SystemClock.now_ms() / 1000,
                300,
            )
            .is_ok()
        });
    let order = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| find_out_trade_no(&v));
    let Ok(mut seen) = seen.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR;
    };
    match (signed, order) {
        (true, Some(no)) => {
            seen.at.entry((endpoint, no)).or_insert(now);
            StatusCode::NO_CONTENT
        }
        _ => {
            seen.bad_signatures += 1;
            StatusCode::BAD_REQUEST
        }
    }
}

fn find_out_trade_no(v: &Value) -> Option<String> {
    match v {
        Value::Object(o) => o
            .get("out_trade_no")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| o.values().find_map(find_out_trade_no)),
        Value::Array(a) => a.iter().find_map(find_out_trade_no),
        _ => None,
    }
}

pub async fn run(args: WebhookArgs) -> Result<(), String> {
    let endpoints = args.endpoints.max(1);
    let concurrency = args.concurrency.max(1);
    let seen = Arc::new(Mutex::new(Received::default()));
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let hook_base = format!(
        "http://{}",
        receiver.local_addr().map_err(|e| e.to_string())?
    );
    let app = axum::Router::new()
        .route("/hook/:endpoint", axum::routing::post(receive))
        .with_state(seen.clone());
    tokio::spawn(async move {
        let _ = axum::serve(receiver, app).await;
    });
    let opts = LocalOptions {
        endpoints: (0..endpoints)
            .map(|k| WebhookEndpoint {
                id: format!("bench-{k}"),
                url: format!("{hook_base}/hook/{k}"),
                mode: Some(Mode::Sandbox),
                secret: Secret::new(SECRET.to_string()),
            })
            .collect(),
        workers: true,
    };
    let target_args = TargetArgs {
        database_url: args.database_url.clone(),
        gateway: None,
        api_key: None,
        sandbox_config: None,
        writers: None,
        max_batch: None,
        max_wait_ms: None,
    };
    let target = Target::new(&target_args, concurrency, opts).await?;
    let client = http_client(concurrency)?;
    eprintln!("creating {} pending payments ...", args.count);
    let orders = create_pending(
        &client,
        &target,
        Protocol::Alipay,
        args.count,
        100,
        concurrency,
    )
    .await?;
    // The creates' own events (none for `pending`) are not counted: only `payment.paid` ones
    // name orders the notifications below pay.
    let shots = orders
        .iter()
        .enumerate()
        .map(|(i, no)| paid_notification(&target, Protocol::Alipay, no, i).map(|s| (no, s)))
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "paying them ({} notifications in flight), delivering to {endpoints} endpoints ...",
        concurrency
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (no, shot) in shots {
        let (client, sem, no) = (client.clone(), sem.clone(), no.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire().await.map_err(|e| e.to_string())?;
            let mut req = client.post(&shot.url).body(shot.body);
            for (k, v) in &shot.headers {
                req = req.header(k, v);
            }
            let text = req
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            if text != "success" {
                return Err(format!("notification for {no} answered {text:?}"));
            }
            Ok::<_, String>((no, Instant::now()))
        }));
    }
    let mut acked = HashMap::new();
    for t in tasks {
        let (no, at) = t.await.map_err(|e| e.to_string())??;
        acked.insert(no, at);
    }
    let expected = orders.len() * endpoints;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let got = seen.lock().map_err(|_| "receiver lock poisoned")?.at.len();
        if got >= expected {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("only {got} of {expected} deliveries within 300 s"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().map_err(|_| "receiver lock poisoned")?;
    let last = seen.at.values().max().copied().unwrap_or(started);
    let latencies = seen
        .at
        .iter()
        .filter_map(|((_, no), at)| acked.get(no).map(|a| at.saturating_duration_since(*a)))
        .collect();
    print(
        &Timings {
            latencies,
            wall: last.saturating_duration_since(started),
        }
        .report(json!({
            "bench": "webhooks",
            "target": target.label,
            "payments": orders.len(),
            "endpoints": endpoints,
            "bad_signatures": seen.bad_signatures,
        })),
    );
    Ok(())
}
