//! `paybridge demo` and `paybridge bench notify` as a newcomer runs them: both compose their
//! gateway through `Gateway::from_config` with the sandbox's accounts. The demo is driven over
//! HTTP from its page's links to a paid order and a signed webhook at its receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::scratch;

/// Generous for a loaded two-core machine: a sandbox notification and a webhook delivery.
const DEADLINE: Duration = Duration::from_secs(60);

/// The demo process, killed when dropped (also when the test fails).
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What the demo prints at start: its base URL and the API key.
fn start_demo(dir: &std::path::Path) -> (Demo, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let demo = Demo(child);
    let (mut base, mut key) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Gateway", "API", url, ..] => base = url.strip_suffix("/v1").map(str::to_string),
            ["API", "key", k, ..] => key = Some(k.to_string()),
            _ => {}
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    (
        demo,
        base.expect("base URL printed"),
        key.expect("key printed"),
    )
}

/// The body of a GET as JSON (with the API key when given).
async fn get_json(c: &reqwest::Client, url: String, key: Option<&str>) -> Value {
    let req = c.get(url);
    let req = match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    };
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn the_demo_starts_and_a_payment_is_paid_with_a_signed_webhook() {
    let dir = scratch("demo");
    let (_demo, base, key) = start_demo(&dir);
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let page = c
        .get(format!("{base}/demo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains(&key),
        "the demo page must not embed the API key"
    );
    // The page is a guide: actions happen in the console, behind its login.
    assert!(
        page.contains("/console/login"),
        "the demo page leads to the console"
    );

    let created: Value = c
        .post(format!("{base}/v1/payments"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "demo-test-1")
        .json(
            &json!({"account": "alipay-sandbox", "channel": "alipay", "scene": "qr",
                      "amount": 1, "out_trade_no": "DEMOTEST1", "subject": "Coffee"}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["status"], "pending", "{created}");
    let id = created["id"].as_str().unwrap();

    // The page's buyer link leads to the sandbox's pay page; the buyer presses Pay there.
    let buyer = c
        .get(format!("{base}/demo/buyer/{id}"))
        .send()
        .await
        .unwrap();
    assert!(buyer.status().is_redirection(), "{}", buyer.status());
    let pay_page = buyer.headers()["location"].to_str().unwrap().to_string();
    assert!(pay_page.contains("/_sandbox/pay/"), "{pay_page}");
    let paid = c.post(format!("{pay_page}/pay")).send().await.unwrap();
    assert!(paid.status().as_u16() < 400, "{}", paid.status());

    let started = Instant::now();
    loop {
        let p = get_json(&c, format!("{base}/v1/payments/{id}"), Some(&key)).await;
        let hooks = get_json(&c, format!("{base}/demo/webhooks"), None).await;
        let paid_hook = hooks["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["event"]["type"] == "payment.paid" && h["event"]["data"]["id"] == id)
            .cloned();
        if p["status"] == "paid" {
            if let Some(h) = paid_hook {
                assert_eq!(h["signature_valid"], true, "{h}");
                break;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "not paid with a webhook in time: {p} {hooks}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `paybridge bench ARGS` and returns its JSON report.
fn bench(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn bench_notify_runs_in_process_for_every_protocol() {
    for protocol in ["alipay", "wechat-v2", "wechat-v3"] {
        let report = bench(&[
            "notify",
            "--count",
            "20",
            "--concurrency",
            "4",
            "--duplicates",
            "1",
            "--protocol",
            protocol,
        ]);
        assert_eq!(report["count"], 40, "{protocol}: {report}");
        assert_eq!(report["payments"], 20, "{protocol}: {report}");
        assert_eq!(report["not_acknowledged"], 0, "{protocol}: {report}");
        assert_eq!(report["target"], "sqlite");
    }
}

#[test]
fn bench_create_and_webhooks_run_in_process() {
    let report = bench(&[
        "create",
        "--count",
        "10",
        "--concurrency",
        "4",
        "--protocol",
        "wechat-v3",
    ]);
    assert_eq!(
        (report["count"].clone(), report["not_pending"].clone()),
        (10.into(), 0.into()),
        "{report}"
    );
    // Every payment paid once: one signed `payment.paid` delivery per endpoint each.
    let report = bench(&["webhooks", "--count", "10", "--endpoints", "2"]);
    assert_eq!(report["count"], 20, "{report}");
    assert_eq!(report["bad_signatures"], 0, "{report}");
}
