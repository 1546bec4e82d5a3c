//! Issue 12: `/metrics` after a scripted run against the real gateway and the sandbox over
//! loopback (SQLite always; PostgreSQL when `PAYBRIDGE_TEST_PG_URL` is set): payments created,
//! one paid by the sandbox's notification and that notification replayed, a forged and a probe
//! WeChat Pay notification, a webhook endpoint that fails, an expiry job left overdue, and a job
//! taken over from a dead instance. Every series is read back from the exposition text, which
//! must parse as Prometheus text format, and must have moved as the run says.
//!
//! The recorder is this test binary's (the gateway's binary installs its own the same way);
//! counters are compared before and after each world's run, since the recorder is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, WECHAT_V3};
use common::*;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use paybridge_core::Mode;
use paybridge_crypto::Secret;
use paybridge_sandbox::{ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock};
use paybridge_server::config::WebhookEndpoint;
use paybridge_store::{NewJob, Store, StoreOptions};
use serde_json::{json, Value};

const TOKEN: &str = "metrics-token-0123456789";

fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(paybridge_server::observe::LATENCY_BUCKETS)
                .unwrap()
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).unwrap();
            handle
        })
        .clone()
}

/// One scrape, parsed: `(name, sorted labels) -> value`, with the metric types by name.
struct Scrape {
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    fn parse(text: &str) -> Scrape {
        // The text must be what Prometheus reads.
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
        let mut samples = BTreeMap::new();
        for s in parsed.samples {
            let mut labels: Vec<(String, String)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.sort();
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                // Histograms: each bucket is its own `_bucket{le}` line below.
                prometheus_parse::Value::Histogram(_) | prometheus_parse::Value::Summary(_) => {
                    continue
                }
            };
            samples.insert((s.metric, labels), value);
        }
        // Strictly, line by line: `name{labels} value`, a valid name, a number. Histogram
        // `_count` and `_sum` lines are kept from here (the parser folds them away).
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("name value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => {
                    assert!(rest.ends_with('}'), "unclosed labels: {line}");
                    (n, rest.trim_end_matches('}'))
                }
                None => (series, ""),
            };
            assert!(
                !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name: {line}"
            );
            if !(name.ends_with("_count") || name.ends_with("_sum")) {
                continue;
            }
            let mut labels: Vec<(String, String)> = split_labels(labels);
            labels.sort();
            samples.insert((name.to_string(), labels), value);
        }
        let mut types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                types.insert(name.to_string(), kind.to_string());
            }
        }
        Scrape { samples, types }
    }

    /// The value of `name` with exactly `labels` (0 when absent: a counter not yet touched).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples
            .get(&(name.to_string(), l))
            .copied()
            .unwrap_or(0.0)
    }

    /// Whether a sample of `name` with exactly `labels` is exposed.
    fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        let mut l: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.contains_key(&(name.to_string(), l))
    }

    /// Every label set of `name`.
    fn label_sets(&self, name: &str) -> Vec<&Vec<(String, String)>> {
        self.samples
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l)
            .collect()
    }
}

type Labels = Vec<(String, String)>;

fn pairs(l: &[(String, String)]) -> Vec<(&str, &str)> {
    l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn split_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(eq) = rest.find("=\"") {
        let key = rest[..eq].trim_start_matches(',').to_string();
        let after = &rest[eq + 2..];
        let mut end = 0;
        let bytes = after.as_bytes();
        while end < bytes.len() && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\')) {
            end += 1;
        }
        out.push((key, after[..end].to_string()));
        rest = &after[(end + 1).min(after.len())..];
    }
    out
}

async fn scrape(base: &str, token: Option<&str>) -> (u16, String) {
    let mut req = client().get(format!("{base}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn scraped(base: &str) -> Scrape {
    let (status, text) = scrape(base, Some(TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    Scrape::parse(&text)
}

#[tokio::test]
async fn metrics_move_as_a_scripted_run_says_and_parse_as_prometheus_text() {
    let handle = recorder();
    for d in db::dbs("metrics_run").await {
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
        let (hook, hooks) = start_receiver().await;
        let (down, _, _) = start_receiver_with_status(500).await;
        let mut config = test_config(&hook);
        config.webhook_endpoints.push(WebhookEndpoint {
            id: "down".into(),
            url: down,
            mode: None,
            secret: Secret::new(WEBHOOK_SECRET.to_string()),
        });
        config.metrics.token = Some(Secret::new(TOKEN.to_string()));
        config.accounts = sandbox_accounts(&sb, Mode::Sandbox)
            .unwrap()
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let inst = start_from_config(store, config, None).await;
        let gw = inst.gw.clone();
        let base = inst.base.clone();

        // Before the recorder is handed over, and without or with a wrong token: no metrics.
        assert_eq!(scrape(&base, Some(TOKEN)).await.0, 404);
        gw.export_metrics(handle.clone());
        assert_eq!(scrape(&base, None).await.0, 401);
        assert_eq!(scrape(&base, Some("metrics-token-wrong-000")).await.0, 401);
        let before = scraped(&base).await;

        // Two payments; the first is paid by the sandbox's notification, which is then
        // replayed (a duplicate).
        let mut ids = Vec::new();
        for no in ["MET0001", "MET0002"] {
            let (s, p, _) = post(
                &base,
                "/v1/payments",
                &keys.sandbox_all,
                Some(&format!("c-{no}")),
                &json!({"account": ALIPAY, "channel": "alipay", "scene": "qr",
                    "amount": 1200, "out_trade_no": no, "subject": "metrics"}),
            )
            .await;
            assert_eq!(s, 201, "{p}");
            ids.push(p["id"].as_str().unwrap().to_string());
        }
        let trade = sb.trade_by_out_no("MET0001").unwrap();
        sb.pay(&trade.id).unwrap();
        sb.advance(1000);
        sb.run_due().await;
        let (_, paid) = get(
            &base,
            &format!("/v1/payments/{}", ids[0]),
            &keys.sandbox_read,
        )
        .await;
        assert_eq!(paid["status"], "paid", "{paid}");
        let note = gw
            .store
            .list_payment_notifications(&ids[0])
            .await
            .unwrap()
            .pop()
            .unwrap();
        let mut replay = client()
            .post(format!("{base}{}", note.path))
            .body(note.body.clone());
        for (k, v) in &note.headers {
            if k != "content-length" && k != "host" {
                replay = replay.header(k, v);
            }
        }
        assert!(replay.send().await.unwrap().status().is_success());

        // A forged WeChat Pay notification and a signature probe.
        for signature in ["c2lnbmF0dXJl", "WECHATPAY/SIGNTEST/c2lnbmF0dXJl"] {
            let status = client()
                .post(format!("{base}/notify/wechat/v3/{WECHAT_V3}"))
                .header("content-type", "application/json")
                .header("wechatpay-serial", "FORGEDSERIAL0001")
                .header("wechatpay-timestamp", (now / 1000).to_string())
                .header("wechatpay-nonce", "n")
                .header("wechatpay-signature", signature)
                .header("wechatpay-signature-type", "WECHATPAY2-SHA256-RSA2048")
                .body(r#"{"id":"x","resource":{}}"#)
                .send()
                .await
                .unwrap()
                .status();
            assert!(status.is_client_error(), "{status}");
        }

        // The paid event goes to both endpoints: `main` takes it, `down` answers 500.
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 100).await.unwrap(), 2);
        assert_eq!(hooks.len(), 1);

        // The unpaid payment's expiry job is moved two minutes into the past: overdue.
        let t = gw.now_ms();
        gw.store
            .schedule_job(&NewJob {
                kind: "payment.expire".into(),
                key: ids[1].clone(),
                payment_id: Some(ids[1].clone()),
                refund_id: None,
                payload: Value::Null,
                run_at: t - 120_000,
            })
            .await
            .unwrap();
        let mid = scraped(&base).await;
        assert!(mid.get("paybridge_jobs_overdue", &[("kind", "payment.expire")]) >= 1.0);
        assert!(mid.get("paybridge_jobs_due", &[("kind", "payment.expire")]) >= 1.0);
        assert!(
            mid.get(
                "paybridge_jobs_oldest_due_age_seconds",
                &[("kind", "payment.expire")]
            ) >= 120.0
        );
        assert_eq!(
            mid.get("paybridge_webhook_backlog", &[("endpoint", "down")]),
            1.0
        );
        assert_eq!(
            mid.get("paybridge_webhook_backlog", &[("endpoint", "main")]),
            0.0
        );
        assert!(mid.has(
            "paybridge_webhook_oldest_pending_age_seconds",
            &[("endpoint", "down")]
        ));

        // A dead instance claimed the overdue job with a lease that lapsed at once; the
        // gateway takes it over and runs it (query, then close: the order is unpaid).
        let claimed = gw
            .store
            .claim_jobs_of(
                "gw-dead",
                t,
                10,
                1,
                paybridge_store::KindFilter::Only("payment.expire"),
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        let ran = gw
            .run_jobs_of_once(
                t + 10,
                10,
                paybridge_store::KindFilter::Only("payment.expire"),
            )
            .await
            .unwrap();
        assert_eq!(ran, 1);
        let (_, closed) = get(
            &base,
            &format!("/v1/payments/{}", ids[1]),
            &keys.sandbox_read,
        )
        .await;
        assert_eq!(closed["status"], "closed", "{closed}");

        let after = scraped(&base).await;
        let delta = |name: &str, labels: &[(&str, &str)]| {
            after.get(name, labels) - before.get(name, labels)
        };
        let label = d.label;

        // HTTP: by route template and status, with a latency histogram.
        let create = [
            ("method", "POST"),
            ("route", "/v1/payments"),
            ("status", "201"),
        ];
        assert_eq!(
            delta("paybridge_http_requests_total", &create),
            2.0,
            "{label}"
        );
        let v3_refused: f64 = after
            .label_sets("paybridge_http_requests_total")
            .into_iter()
            .filter(|l| {
                l.contains(&("route".into(), "/notify/wechat/v3/:account".into()))
                    && l.iter().any(|(k, v)| k == "status" && v.starts_with('4'))
            })
            .map(|l| delta("paybridge_http_requests_total", &pairs(l)))
            .sum();
        assert_eq!(v3_refused, 2.0, "{label}: two refused v3 notifications");
        assert_eq!(
            delta(
                "paybridge_http_request_duration_seconds_count",
                &[("method", "POST"), ("route", "/v1/payments")]
            ),
            2.0
        );
        assert_eq!(
            after.types["paybridge_http_request_duration_seconds"],
            "histogram"
        );
        assert!(
            after.get(
                "paybridge_http_requests_total",
                &[("method", "GET"), ("route", "/metrics"), ("status", "401")]
            ) >= 2.0,
            "{label}: the refused scrapes are counted"
        );
        // Bounded labels: templates, never a payment id.
        for labels in after.label_sets("paybridge_http_requests_total") {
            let route = &labels.iter().find(|(k, _)| k == "route").unwrap().1;
            assert!(
                !route.contains("pay_") && !route.contains(ALIPAY),
                "raw path as label: {route}"
            );
        }

        // Notifications: applied, duplicate, forged (unverified) and the probe.
        let n = |account: &str, protocol: &str, outcome: &str| {
            delta(
                "paybridge_notifications_total",
                &[
                    ("account", account),
                    ("protocol", protocol),
                    ("outcome", outcome),
                ],
            )
        };
        assert_eq!(n(ALIPAY, "alipay", "applied"), 1.0, "{label}");
        assert_eq!(n(ALIPAY, "alipay", "duplicate"), 1.0, "{label}");
        assert_eq!(n(WECHAT_V3, "wechat_v3", "unverified"), 1.0, "{label}");
        assert_eq!(n(WECHAT_V3, "wechat_v3", "signature_probe"), 1.0, "{label}");
        assert_eq!(
            delta(
                "paybridge_notification_verify_duration_seconds_count",
                &[("account", ALIPAY), ("protocol", "alipay")]
            ),
            2.0
        );

        // Provider calls: two creates, the expiry's query and close, all answered.
        let sum = |name: &str, keep: &dyn Fn(&Labels) -> bool| -> f64 {
            after
                .label_sets(name)
                .into_iter()
                .filter(|l| keep(l))
                .map(|l| delta(name, &pairs(l)))
                .sum()
        };
        let alipay = |l: &Labels| l.contains(&("account".into(), ALIPAY.into()));
        let calls = sum("paybridge_provider_calls_total", &alipay);
        let ok = sum("paybridge_provider_calls_total", &|l| {
            alipay(l) && l.contains(&("outcome".into(), "ok".into()))
        });
        assert!(ok >= 4.0, "{label}: {ok} provider calls answered");
        let timed = sum("paybridge_provider_call_duration_seconds_count", &alipay);
        assert_eq!(timed, calls, "{label}: every call timed");

        // Webhooks: one delivered, one to retry, the backlog left on `down`.
        let w = |endpoint: &str, outcome: &str| {
            delta(
                "paybridge_webhook_deliveries_total",
                &[("endpoint", endpoint), ("outcome", outcome)],
            )
        };
        assert_eq!(w("main", "delivered"), 1.0, "{label}");
        assert_eq!(w("down", "retry"), 1.0, "{label}");
        assert!(after.get("paybridge_webhook_backlog", &[("endpoint", "down")]) >= 1.0);

        // Jobs: the takeover, the run, and nothing overdue any more.
        assert_eq!(
            delta(
                "paybridge_job_lease_takeovers_total",
                &[("kind", "payment.expire")]
            ),
            1.0,
            "{label}"
        );
        assert_eq!(
            delta(
                "paybridge_jobs_run_total",
                &[("kind", "payment.expire"), ("outcome", "done")]
            ),
            1.0,
            "{label}"
        );
        assert_eq!(
            after.get("paybridge_jobs_overdue", &[("kind", "payment.expire")]),
            0.0
        );

        // Sampled gauges exist for every configured account and the pool.
        for account in gw.accounts().keys() {
            assert!(after.has(
                "paybridge_reconciliation_discrepancies_open",
                &[("account", account)]
            ));
        }
        // The certificate-mode account's certificates, with their expiry.
        for certificate in ["alipay_app_cert", "alipay_cert", "alipay_root_cert"] {
            let expiries: Vec<f64> = after
                .label_sets("paybridge_certificate_not_after_seconds")
                .into_iter()
                .filter(|l| {
                    l.contains(&("account".into(), "alipay-cert".into()))
                        && l.contains(&("certificate".into(), certificate.into()))
                })
                .map(|l| after.get("paybridge_certificate_not_after_seconds", &pairs(l)))
                .collect();
            assert!(!expiries.is_empty(), "{certificate}");
            assert!(
                expiries.iter().all(|t| *t > (now / 1000) as f64),
                "{certificate}: {expiries:?}"
            );
        }
        assert!(after.get("paybridge_db_pool_max_connections", &[]) >= 1.0);
        assert!(after.has("paybridge_db_pool_connections", &[("state", "idle")]));
        assert_eq!(after.types["paybridge_jobs_due"], "gauge");
        assert_eq!(after.types["paybridge_notifications_total"], "counter");
        drop(inst);
        drop(sb);
    }
}

/// `/readyz` says what is missing; `/healthz` answers without the database.
#[tokio::test]
async fn readiness_names_the_workers_and_liveness_needs_nothing() {
    let d = db::sqlite_db().await;
    let store = d.open().await;
    let (hook, _) = start_receiver().await;
    let inst = start_gateway(store, Vec::new(), &hook).await;
    let (s, body) = get(&inst.base, "/readyz", "").await;
    assert_eq!(s, 503, "{body}");
    assert_eq!(body["status"], "not_ready");
    let checks: BTreeMap<String, bool> = body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["ok"] == true))
        .collect();
    assert!(checks["database"]);
    assert!(checks["migrations"]);
    assert!(!checks["workers:jobs"], "no workers started yet");
    let workers = paybridge_server::runtime::spawn_workers(
        inst.gw.clone(),
        std::time::Duration::from_millis(50),
    );
    let mut ready = false;
    for _ in 0..100 {
        let (s, _) = get(&inst.base, "/readyz", "").await;
        if s == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(ready, "ready once the workers run");
    workers.shutdown().await;
    let (s, body) = get(&inst.base, "/readyz", "").await;
    assert_eq!(s, 503, "stopped workers are not running: {body}");
    inst.gw.store.close().await;
    let (s, body) = get(&inst.base, "/healthz", "").await;
    assert_eq!((s, body), (200, json!({"status": "ok"})));
    let (s, body) = get(&inst.base, "/readyz", "").await;
    assert_eq!(s, 503);
    assert_eq!(body["checks"][0]["ok"], false, "{body}");
}
