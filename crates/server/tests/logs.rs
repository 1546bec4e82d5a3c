//! Issue 12: the gateway's JSON logs, captured from a run against the sandbox over loopback
//! with the subscriber the binary installs (`observe::logging`, at debug so provider calls are
//! in): every line parses as JSON; every line the gateway logs while serving carries the id of
//! the request that caused it (the client's `X-Request-Id` when sane, else a generated one,
//! returned either way); lines about a payment name its id and `out_trade_no`; refusals and
//! provider calls are logged; and no configured secret (API keys, private keys, API and AES
//! keys, webhook secrets) appears anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, WECHAT_V2, WECHAT_V3};
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock};
use paybridge_server::config::{AccountConfig, ProviderConfig};
use paybridge_server::observe::logging::{self, LogFormat};
use paybridge_store::{Store, StoreOptions};
use serde_json::{json, Value};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every secret of the accounts' configuration, as text that must never be logged: whole
/// values, and each line of PEM key material (a key might be logged bare, without its frame).
fn secrets_of(accounts: &[AccountConfig]) -> Vec<String> {
    let mut out = Vec::new();
    let mut add = |s: &str| {
        out.push(s.to_string());
        for line in s.lines() {
            let line = line.trim();
            if line.len() >= 16 && !line.starts_with("-----") {
                out.push(line.to_string());
            }
        }
    };
    for a in accounts {
        match &a.provider {
            ProviderConfig::Alipay(c) => {
                add(c.app_private_key.expose());
                if let Some(k) = &c.aes_key {
                    add(k.expose());
                }
            }
            ProviderConfig::Wechat(c) => {
                if let Some(v2) = &c.v2 {
                    add(v2.api_key.expose());
                    if let Some(id) = &v2.client_identity_pem {
                        add(&String::from_utf8_lossy(id.expose()));
                    }
                }
                if let Some(v3) = &c.v3 {
                    add(v3.apiv3_key.expose());
                    add(v3.merchant_private_key.expose());
                }
            }
        }
    }
    out
}

/// The spans of a JSON line, outermost first.
fn spans(line: &Value) -> Vec<&Value> {
    line["spans"]
        .as_array()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn request_id(line: &Value) -> Option<&str> {
    spans(line)
        .into_iter()
        .find(|s| s["name"] == "request")
        .and_then(|s| s["request_id"].as_str())
}

/// A field of the line's innermost span that has it.
fn span_field<'a>(line: &'a Value, field: &str) -> Option<&'a str> {
    spans(line)
        .into_iter()
        .rev()
        .find_map(|s| s[field].as_str())
}

async fn send(req: reqwest::RequestBuilder, rid: &str) -> (u16, String, Value) {
    let resp = req.header("x-request-id", rid).send().await.unwrap();
    let status = resp.status().as_u16();
    let echoed = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    (
        status,
        echoed,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn json_logs_parse_carry_request_ids_and_payments_and_no_secret() {
    let buf = Buf::default();
    let writer = buf.clone();
    tracing::subscriber::set_global_default(logging::subscriber(
        LogFormat::Json,
        tracing_subscriber::EnvFilter::new("debug"),
        false,
        move || writer.clone(),
    ))
    .unwrap();

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
    let d = db::sqlite_db().await;
    let store = Store::open_with(&d.url, StoreOptions::default())
        .await
        .unwrap();
    let keys = make_keys(&store).await;
    let (hook, _hooks) = start_receiver().await;
    let accounts = sandbox_accounts(&sb, Mode::Sandbox).unwrap();
    let mut secrets = secrets_of(&accounts);
    secrets.extend([
        WEBHOOK_SECRET.to_string(),
        keys.sandbox_all.clone(),
        keys.sandbox_read.clone(),
        keys.sandbox_write.clone(),
        keys.live_all.clone(),
    ]);
    let inst = start_configured(store, accounts, &hook).await;
    let base = inst.base.clone();
    let c = client();

    // Payments on three protocols, each request with its own id.
    let mut created = Vec::new();
    for (rid, account, channel, no) in [
        ("rid-create-alipay", ALIPAY, "alipay", "LOG0001"),
        ("rid-create-v3", WECHAT_V3, "wechat", "LOG0002"),
        ("rid-create-v2", WECHAT_V2, "wechat", "LOG0003"),
    ] {
        let (s, echoed, p) = send(
            c.post(format!("{base}/v1/payments"))
                .bearer_auth(&keys.sandbox_all)
                .header("idempotency-key", format!("k-{no}"))
                .json(
                    &json!({"account": account, "channel": channel, "scene": "qr",
                    "amount": 990, "out_trade_no": no, "subject": "logs"}),
                ),
            rid,
        )
        .await;
        assert_eq!(s, 201, "{p}");
        assert_eq!(echoed, rid, "a sane request id is returned as given");
        created.push((rid, p["id"].as_str().unwrap().to_string(), no));
    }
    // The first is paid by the sandbox's notification (the gateway makes up its request id).
    let trade = sb.trade_by_out_no("LOG0001").unwrap();
    sb.pay(&trade.id).unwrap();
    sb.advance(1000);
    sb.run_due().await;
    // Refusals: no key (401), an unknown payment (404), a forged notification.
    let (s, _, _) = send(
        c.post(format!("{base}/v1/payments"))
            .header("idempotency-key", "k-x")
            .json(&json!({})),
        "rid-no-key",
    )
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = send(
        c.get(format!("{base}/v1/payments/pay_nope"))
            .bearer_auth(&keys.sandbox_read),
        "rid-404",
    )
    .await;
    assert_eq!(s, 404);
    let (s, _, _) = send(
        c.post(format!("{base}/notify/wechat/v3/{WECHAT_V3}"))
            .header("content-type", "application/json")
            .header("wechatpay-serial", "FORGEDSERIAL0001")
            .header("wechatpay-timestamp", (now / 1000).to_string())
            .header("wechatpay-nonce", "n")
            .header("wechatpay-signature", "c2lnbmF0dXJl")
            .header("wechatpay-signature-type", "WECHATPAY2-SHA256-RSA2048")
            .body(r#"{"id":"x","resource":{}}"#),
        "rid-forged",
    )
    .await;
    assert!((400..500).contains(&s));
    // An id with spaces (or too long) is replaced, and the replacement returned.
    for insane in ["two words", &"x".repeat(200)] {
        let (s, echoed, _) = send(c.get(format!("{base}/healthz")), insane).await;
        assert_eq!(s, 200);
        assert!(
            echoed.len() == 36 && echoed != insane,
            "a fresh id: {echoed}"
        );
    }
    let (_, paid) = get(
        &base,
        &format!("/v1/payments/{}", created[0].1),
        &keys.sandbox_read,
    )
    .await;
    assert_eq!(paid["status"], "paid", "{paid}");
    // Outside any request: the paid event's webhook delivery, and the second payment's expiry
    // (moved into the past) run as a job.
    let gw = inst.gw.clone();
    assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 1);
    let t = gw.now_ms();
    gw.store
        .schedule_job(&paybridge_store::NewJob {
            kind: "payment.expire".into(),
            key: created[1].1.clone(),
            payment_id: Some(created[1].1.clone()),
            refund_id: None,
            payload: Value::Null,
            run_at: t - 1000,
        })
        .await
        .unwrap();
    let ran = gw
        .run_jobs_of_once(t, 10, paybridge_store::KindFilter::Only("payment.expire"))
        .await
        .unwrap();
    assert_eq!(ran, 1);
    // Lines written by tasks still finishing (a key refresh after the forgery) are in by now.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 20, "{} lines", lines.len());
    assert!(!text.contains('\u{1b}'), "no ANSI escape codes");
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret was logged: {secret:.12}..."
        );
    }

    // Everything the gateway logged, it logged while serving a request, running a job or
    // delivering a webhook, and says which (connection-level lines name the peer instead).
    let gateway: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            let target = l["target"].as_str().unwrap_or("");
            target.starts_with("paybridge_server")
                && !target.starts_with("paybridge_server::listener")
        })
        .collect();
    assert!(!gateway.is_empty());
    let of = |rid: &str| -> Vec<&Value> {
        lines
            .iter()
            .filter(|l| request_id(l) == Some(rid))
            .collect()
    };
    let message = |l: &Value| l["fields"]["message"].as_str().unwrap_or("").to_string();

    let in_span = |l: &Value, name: &str| spans(l).iter().any(|s| s["name"] == name);
    for l in &gateway {
        let worker = in_span(l, "job") || in_span(l, "webhook_delivery");
        assert!(
            worker || request_id(l).is_some_and(|id| !id.is_empty()),
            "no request id: {l}"
        );
    }
    // The delivery and the job name their payment on every line.
    let delivered: Vec<&Value> = lines
        .iter()
        .filter(|l| message(l) == "webhook delivered")
        .collect();
    assert_eq!(delivered.len(), 1);
    assert!(in_span(delivered[0], "webhook_delivery"));
    assert_eq!(
        span_field(delivered[0], "payment_id"),
        Some(created[0].1.as_str())
    );
    assert_eq!(span_field(delivered[0], "out_trade_no"), Some("LOG0001"));
    let job_lines: Vec<&Value> = gateway
        .iter()
        .copied()
        .filter(|l| in_span(l, "job"))
        .collect();
    assert!(
        job_lines
            .iter()
            .filter(|l| message(l) == "provider call")
            .count()
            >= 2,
        "the expiry's query and close: {job_lines:?}"
    );
    for l in &job_lines {
        assert_eq!(
            span_field(l, "payment_id"),
            Some(created[1].1.as_str()),
            "{l}"
        );
        assert_eq!(span_field(l, "out_trade_no"), Some("LOG0002"), "{l}");
    }

    // Each create's provider call is logged (debug, redacted) in its request, naming the payment.
    for (rid, id, no) in &created {
        let calls: Vec<&Value> = of(rid)
            .into_iter()
            .filter(|l| message(l) == "provider call")
            .collect();
        assert!(!calls.is_empty(), "{rid}: no provider call logged");
        for l in calls {
            assert_eq!(l["level"], "DEBUG");
            assert_eq!(span_field(l, "payment_id"), Some(id.as_str()), "{l}");
            assert_eq!(span_field(l, "out_trade_no"), Some(*no), "{l}");
            let request = l["fields"]["request"].as_str().unwrap();
            assert!(request.contains("[REDACTED]"), "{rid}: {request}");
        }
    }
    // The notification line names the payment it paid.
    let applied: Vec<&Value> = lines
        .iter()
        .filter(|l| message(l) == "notification" && l["fields"]["outcome"] == "applied")
        .collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(
        span_field(applied[0], "payment_id"),
        Some(created[0].1.as_str())
    );
    assert_eq!(span_field(applied[0], "out_trade_no"), Some("LOG0001"));
    // Refusals are logged with their status and problem code, at info (a 404 at debug).
    let refused = |rid: &str| -> Vec<(String, Value, Value)> {
        of(rid)
            .into_iter()
            .filter(|l| message(l) == "request refused")
            .map(|l| {
                (
                    l["level"].as_str().unwrap().to_string(),
                    l["fields"]["status"].clone(),
                    l["fields"]["code"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        refused("rid-no-key"),
        vec![("INFO".to_string(), json!(401), json!("unauthenticated"))]
    );
    assert_eq!(
        refused("rid-404"),
        vec![("DEBUG".to_string(), json!(404), json!("not_found"))]
    );
    let forged = of("rid-forged");
    assert!(
        forged
            .iter()
            .any(|l| message(l) == "notification refused" && l["fields"]["outcome"] == "unverified"),
        "{forged:?}"
    );
}
