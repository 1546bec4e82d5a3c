//! Issue 12 against the real binary: `paybridge serve` installs its Prometheus recorder and
//! serves `/metrics` behind the configured token on the main port, or alone on
//! `metrics_listen`; it logs JSON lines when stdout is not a terminal (text with `[log] format
//! = "text"`, never with ANSI codes), each request's lines carrying its `X-Request-Id`, and no
//! configured secret; `/readyz` turns ready once the workers run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{free_port, scratch, write};
use serde_json::Value;

const TOKEN: &str = "metrics-token-cli-0123456789";
const WEBHOOK_SECRET: &str = "whsec_cli_observe_0123456789";
const GIVE_UP: Duration = Duration::from_secs(60);

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &str, log: &Path) -> Serve {
    let out = std::fs::File::create(log).unwrap();
    Serve(
        Command::new(env!("CARGO_BIN_EXE_paybridge"))
            .args(["serve", "--config", config])
            .env("RUST_LOG", "debug")
            .env("PB_METRICS_TOKEN", TOKEN)
            .env("PB_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap(),
    )
}

async fn wait_ready(base: &str, log: &Path) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            start.elapsed() < GIVE_UP,
            "never ready: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The exposition text, checked line by line: `# HELP`/`# TYPE` comments, or
/// `name{labels} value` with a valid name and a number.
fn check_exposition(text: &str) {
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = series.split('{').next().unwrap();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        assert!(!series.contains('{') || series.ends_with('}'), "{line}");
    }
}

fn config(dir: &Path, port: u16, extra: &str) -> String {
    write(
        dir,
        "gateway.toml",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n{extra}\n\
             [webhooks]\nendpoints = [{{ id = \"shop\", url = \"http://127.0.0.1:9/hook\", \
             signing_secret_env = \"PB_WEBHOOK_SECRET\" }}]\n",
            dir.display()
        ),
    )
}

#[tokio::test]
async fn serve_exports_metrics_behind_its_token_and_logs_json_with_request_ids() {
    let dir = scratch("observe-json");
    let port = free_port();
    let config = config(&dir, port, "metrics_token_env = \"PB_METRICS_TOKEN\"");
    let created = Command::new(env!("CARGO_BIN_EXE_paybridge"))
        .args([
            "api-key", "create", "--config", &config, "--mode", "sandbox",
        ])
        .env("PB_METRICS_TOKEN", TOKEN)
        .env("PB_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    let key = String::from_utf8(created.stdout)
        .unwrap()
        .trim()
        .to_string();
    let log = dir.join("serve.log");
    let serve = spawn(&config, &log);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &log).await;

    let c = reqwest::Client::new();
    let r = c
        .get(format!("{base}/v1/payments"))
        .bearer_auth(&key)
        .header("x-request-id", "cli-rid-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "cli-rid-1");
    let r = c
        .get(format!("{base}/v1/payments"))
        .header("x-request-id", "cli-rid-401")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let scrape = |token: Option<&str>| {
        let mut req = c.get(format!("{base}/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(scrape(None).await.unwrap().status(), 401);
    assert_eq!(
        scrape(Some("wrong-token-0123456789"))
            .await
            .unwrap()
            .status(),
        401
    );
    let r = scrape(Some(TOKEN)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    check_exposition(&text);
    for expected in [
        "paybridge_http_requests_total{method=\"GET\",route=\"/v1/payments\",status=\"200\"} 1",
        "paybridge_http_requests_total{method=\"GET\",route=\"/v1/payments\",status=\"401\"} 1",
        "paybridge_jobs_due{kind=\"retention.purge\"}",
        "paybridge_webhook_backlog{endpoint=\"shop\"} 0",
        "paybridge_build_info{version=",
        "# TYPE paybridge_http_request_duration_seconds histogram",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    drop(serve);

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains('\u{1b}'), "no ANSI codes in a file");
    let lines: Vec<Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let with_id = |rid: &str| {
        lines
            .iter()
            .filter(|l| {
                l["spans"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["name"] == "request" && s["request_id"] == rid)
                })
            })
            .count()
    };
    assert!(with_id("cli-rid-1") >= 1, "{logged}");
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "request refused"
                && l["fields"]["status"] == 401
                && l["spans"][0]["request_id"] == "cli-rid-401"),
        "{logged}"
    );
    for secret in [TOKEN, WEBHOOK_SECRET, key.as_str()] {
        assert!(!logged.contains(secret), "{secret} logged");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn metrics_listen_serves_metrics_alone_and_text_logs_have_no_colour() {
    let dir = scratch("observe-text");
    let (port, metrics_port) = (free_port(), free_port());
    let config = config(
        &dir,
        port,
        &format!("metrics_listen = \"127.0.0.1:{metrics_port}\"\n[log]\nformat = \"text\""),
    );
    let log = dir.join("serve.log");
    let serve = spawn(&config, &log);
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base, &log).await;
    let main = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(main.status(), 404, "not on the main port");
    let r = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    check_exposition(&text);
    assert!(text.contains("route=\"/readyz\""), "{text}");
    let other = reqwest::get(format!("http://127.0.0.1:{metrics_port}/v1/payments"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404, "only /metrics there");
    drop(serve);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("paybridge gateway started"), "{logged}");
    assert!(!logged.contains('\u{1b}'), "no ANSI codes in a file");
    assert!(
        logged
            .lines()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "text, not JSON"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
