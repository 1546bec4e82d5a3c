//! Observability: the request span and request id, HTTP metrics, the metric series the service
//! records, the gauges sampled at scrape time, `/metrics` itself, worker heartbeats for
//! `/readyz`, and the log subscriber the binary installs.
//!
//! The library records through the `metrics` facade only; the binary installs the Prometheus
//! recorder once and hands its handle to the gateway ([`Gateway::export_metrics`]). Every
//! series and its labels are documented in `METRICS.md`; labels are bounded: route templates
//! (never raw paths), account and endpoint ids from the configuration, fixed outcome words.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use paybridge_crypto::Secret;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

use crate::error::ApiError;
use crate::service::jobs::JobKind;
use crate::service::Gateway;

pub mod logging;

/// The request id header: accepted from the client when sane, made up otherwise, and returned
/// on every response.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A due job nobody claimed for this long is overdue (workers poll every second by default).
pub const JOB_OVERDUE_AFTER_MS: i64 = 60_000;

/// Buckets of every latency histogram, in seconds: from a cached read to a provider timeout.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

// ---------------------------------------------------------------------------------------------
// The request span.

/// Whether a client's `X-Request-Id` is kept: short, printable, no spaces or quotes, so it
/// can be logged and echoed as is. Anything else is replaced by a fresh id.
pub fn sane_request_id(v: &HeaderValue) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(c))
}

async fn drop_insane_request_id(mut req: Request, next: Next) -> Response {
    if req
        .headers()
        .get(&REQUEST_ID)
        .is_some_and(|v| !sane_request_id(v))
    {
        req.headers_mut().remove(&REQUEST_ID);
    }
    next.run(req).await
}

fn route_of(req: &Request) -> String {
    req.extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string())
}

/// One span per request, with the fields every line inside it carries; the service records
/// the payment's id and `out_trade_no` into it once it knows them ([`record_payment`]).
fn request_span(req: &Request) -> tracing::Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = %route_of(req),
        payment_id = Empty,
        out_trade_no = Empty,
    )
}

/// The method as a label: the standard ones, everything else `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The problem code an [`ApiError`] answered with, left on the response for the request log.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

/// Counts and times every request by route template and status, and logs how it ended: a 5xx at
/// warn (a fault of ours was already logged once, at error with its cause chain, where the
/// error became the response: `ApiError::log_fault`), a refusal of the client's request at info
/// (a 404 or 405, the noise of scanners, at debug), success at debug.
async fn track_http(req: Request, next: Next) -> Response {
    let route = route_of(&req);
    let method = method_label(req.method());
    let started = Instant::now();
    let resp = next.run(req).await;
    let elapsed = started.elapsed();
    let status = resp.status();
    metrics::counter!("paybridge_http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status.as_str().to_string())
    .increment(1);
    metrics::histogram!("paybridge_http_request_duration_seconds",
        "method" => method, "route" => route)
    .record(elapsed.as_secs_f64());
    let code = resp.extensions().get::<ProblemCode>().map_or("", |c| c.0);
    let status_code = status.as_u16();
    let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match status {
        s if s.is_server_error() => {
            tracing::warn!(status = status_code, code, latency_ms, "request failed")
        }
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            tracing::debug!(status = status_code, code, latency_ms, "request refused")
        }
        s if s.is_client_error() => {
            tracing::info!(status = status_code, code, latency_ms, "request refused")
        }
        _ => tracing::debug!(status = status_code, latency_ms, "request served"),
    }
    resp
}

/// The observability layers around `router`, outermost first: a sane `X-Request-Id` is kept
/// (another is replaced by a UUID) and returned on the response; the request span; metrics and
/// the request log line. Applied with `Router::layer`, so the route template is known.
pub fn layers(router: axum::Router) -> axum::Router {
    router.layer(
        tower::ServiceBuilder::new()
            .layer(axum::middleware::from_fn(drop_insane_request_id))
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    // The request's one log line is track_http's, which knows the problem code.
                    .on_request(())
                    .on_response(())
                    .on_body_chunk(())
                    .on_eos(())
                    .on_failure(()),
            )
            .layer(axum::middleware::from_fn(track_http)),
    )
}

/// Records the payment a unit of work is about into the current span (a request's, a job's, a
/// webhook delivery's), so every line logged from there on names it.
pub fn record_payment(id: &str, out_trade_no: &str) {
    let span = tracing::Span::current();
    span.record("payment_id", id);
    span.record("out_trade_no", out_trade_no);
}

/// A job's span: its id, kind and attempt, and the payment it is about.
pub fn job_span(job: &paybridge_store::Job) -> tracing::Span {
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        kind = %job.kind,
        attempt = job.attempts,
        payment_id = Empty,
        out_trade_no = Empty,
    );
    if let Some(p) = &job.payment_id {
        span.record("payment_id", p.as_str());
    }
    span
}

/// A webhook delivery's span: the delivery, its event and endpoint, the event's payment.
pub fn delivery_span(item: &paybridge_store::DueDelivery) -> tracing::Span {
    let span = tracing::info_span!(
        "webhook_delivery",
        delivery_id = %item.delivery.id,
        event_id = %item.event.id,
        event = %item.event.kind,
        endpoint = %item.delivery.endpoint,
        attempt = item.delivery.attempts + 1,
        payment_id = Empty,
        out_trade_no = Empty,
    );
    if let Some(p) = &item.event.payment_id {
        span.record("payment_id", p.as_str());
    }
    if let Some(no) = item
        .event
        .payload
        .get("out_trade_no")
        .and_then(|v| v.as_str())
    {
        span.record("out_trade_no", no);
    }
    span
}

/// An error and its sources as one line, each cause once (layers that already print the one
/// below are not repeated).
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Series the service records (see METRICS.md).

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// One provider call (the call log's transport sees each one).
pub fn provider_call(account: &str, channel: &str, api: &str, outcome: &str, elapsed: Duration) {
    let outcome = match outcome {
        "ok" | "not_sent" | "unknown" => outcome.to_string(),
        // `http_<status>`: keep the class only, the status set is the provider's.
        other => match other.strip_prefix("http_").and_then(|s| s.chars().next()) {
            Some(class) => format!("http_{class}xx"),
            None => "other".to_string(),
        },
    };
    metrics::counter!("paybridge_provider_calls_total",
        "account" => account.to_string(), "channel" => channel.to_string(),
        "api" => api.to_string(), "outcome" => outcome)
    .increment(1);
    metrics::histogram!("paybridge_provider_call_duration_seconds",
        "account" => account.to_string(), "channel" => channel.to_string(),
        "api" => api.to_string())
    .record(seconds(elapsed));
}

/// How a notification ended (`applied`, `duplicate`, a refusal reason...).
pub fn notification(account: &str, protocol: &'static str, outcome: &'static str) {
    metrics::counter!("paybridge_notifications_total",
        "account" => account.to_string(), "protocol" => protocol, "outcome" => outcome)
    .increment(1);
}

/// How long verifying and decoding a notification took (pure CPU: signatures, decryption).
pub fn notification_verified(account: &str, protocol: &'static str, elapsed: Duration) {
    metrics::histogram!("paybridge_notification_verify_duration_seconds",
        "account" => account.to_string(), "protocol" => protocol)
    .record(seconds(elapsed));
}

/// One webhook delivery attempt: `delivered`, `retry` or `gave_up`.
pub fn webhook_attempt(endpoint: &str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!("paybridge_webhook_deliveries_total",
        "endpoint" => endpoint.to_string(), "outcome" => outcome)
    .increment(1);
    metrics::histogram!("paybridge_webhook_delivery_duration_seconds",
        "endpoint" => endpoint.to_string())
    .record(seconds(elapsed));
}

/// One job run: `done`, `retry`, `gave_up`, or `lost` (its lease was taken meanwhile).
pub fn job_run(kind: &str, outcome: &'static str, elapsed: Duration) {
    let kind = JobKind::label(kind);
    metrics::counter!("paybridge_jobs_run_total", "kind" => kind, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("paybridge_job_duration_seconds", "kind" => kind).record(seconds(elapsed));
}

// ---------------------------------------------------------------------------------------------
// Gauges, sampled when scraped.

/// Sets the gauges read from the database: jobs by kind, webhook backlog, open discrepancies,
/// the pool. Every label value known from the configuration is set, zero included, so a queue
/// that drains reads 0 rather than its last value. A failed query is counted and its gauges
/// keep their previous values.
pub async fn sample_gauges(gw: &Gateway) {
    let now = gw.now_ms();
    let age = |since: Option<i64>| since.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
    let failed = |what: &'static str, e: &dyn std::fmt::Display| {
        metrics::counter!("paybridge_metrics_sample_errors_total", "query" => what).increment(1);
        tracing::warn!(query = what, error = %e, "cannot sample a metrics gauge");
    };

    match gw.store.job_stats(now, JOB_OVERDUE_AFTER_MS).await {
        Ok(stats) => {
            let by_kind: BTreeMap<&str, &paybridge_store::JobKindStats> =
                stats.iter().map(|s| (s.kind.as_str(), s)).collect();
            for kind in JobKind::ALL {
                let k = kind.as_str();
                let s = by_kind.get(k).copied().cloned().unwrap_or_default();
                metrics::gauge!("paybridge_jobs_due", "kind" => k).set(s.due as f64);
                metrics::gauge!("paybridge_jobs_running", "kind" => k).set(s.running as f64);
                metrics::gauge!("paybridge_jobs_overdue", "kind" => k).set(s.overdue as f64);
                metrics::gauge!("paybridge_jobs_oldest_due_age_seconds", "kind" => k)
                    .set(age(s.oldest_due_at));
            }
        }
        Err(e) => failed("jobs", &e),
    }

    match gw.store.delivery_backlog().await {
        Ok(rows) => {
            let mut lanes: BTreeMap<String, (i64, Option<i64>)> = gw
                .endpoints
                .iter()
                .map(|e| (e.id.clone(), (0, None)))
                .collect();
            lanes.insert(UNCONFIGURED.to_string(), (0, None));
            for (endpoint, b) in rows {
                let lane = if lanes.contains_key(&endpoint) && endpoint != UNCONFIGURED {
                    endpoint
                } else {
                    UNCONFIGURED.to_string()
                };
                let entry = lanes.entry(lane).or_insert((0, None));
                entry.0 += b.pending;
                entry.1 = match (entry.1, b.oldest_created_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            for (endpoint, (pending, oldest)) in lanes {
                metrics::gauge!("paybridge_webhook_backlog", "endpoint" => endpoint.clone())
                    .set(pending as f64);
                metrics::gauge!("paybridge_webhook_oldest_pending_age_seconds",
                    "endpoint" => endpoint)
                .set(age(oldest));
            }
        }
        Err(e) => failed("webhooks", &e),
    }

    match gw.store.open_discrepancies().await {
        Ok(rows) => {
            let open: BTreeMap<String, i64> = rows.into_iter().collect();
            for account in gw.accounts.keys() {
                let n = open.get(account).copied().unwrap_or(0);
                metrics::gauge!("paybridge_reconciliation_discrepancies_open",
                    "account" => account.clone())
                .set(n as f64);
            }
        }
        Err(e) => failed("discrepancies", &e),
    }

    for c in &gw.observe.certificates {
        metrics::gauge!("paybridge_certificate_not_after_seconds",
            "account" => c.account.clone(), "certificate" => c.certificate,
            "serial" => c.serial.clone())
        .set(c.not_after as f64);
    }

    let pool = gw.store.pool_stats();
    metrics::gauge!("paybridge_db_pool_connections", "state" => "idle").set(f64::from(pool.idle));
    metrics::gauge!("paybridge_db_pool_connections", "state" => "in_use")
        .set(f64::from(pool.open.saturating_sub(pool.idle)));
    metrics::gauge!("paybridge_db_pool_max_connections").set(f64::from(pool.max));
    metrics::gauge!("paybridge_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// A configured certificate's end of validity, for `paybridge_certificate_not_after_seconds`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateExpiry {
    pub account: String,
    /// `alipay_app_cert`, `alipay_cert`, `alipay_root_cert`, `wechat_platform_cert`,
    /// `wechat_client_cert`.
    pub certificate: &'static str,
    /// Hex serial: several certificates of one kind (a root bundle) are told apart.
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// The certificates the configuration holds, with their expiry (a member of a bundle this
/// parser cannot read, such as an SM2 root, is left out: nothing here uses it). Platform
/// certificates WeChat Pay hands out at run time are not configuration and not listed.
pub fn configured_certificates(config: &crate::config::Config) -> Vec<CertificateExpiry> {
    use crate::config::{AlipayKeys, ProviderConfig};
    use paybridge_crypto::Certificate;
    let mut out = Vec::new();
    let mut add = |account: &str, certificate: &'static str, pem: &str| {
        let certs = Certificate::bundle_from_pem(pem).unwrap_or_default();
        for cert in certs.into_iter().flatten() {
            out.push(CertificateExpiry {
                account: account.to_string(),
                certificate,
                serial: cert.serial_hex(),
                not_after: cert.not_after_unix(),
            });
        }
    };
    for a in config.accounts.values() {
        match &a.provider {
            ProviderConfig::Alipay(c) => {
                if let AlipayKeys::Certificate {
                    app_cert_pem,
                    alipay_cert_pem,
                    root_bundle_pem,
                } = &c.keys
                {
                    add(&a.id, "alipay_app_cert", app_cert_pem);
                    add(&a.id, "alipay_cert", alipay_cert_pem);
                    add(&a.id, "alipay_root_cert", root_bundle_pem);
                }
            }
            ProviderConfig::Wechat(c) => {
                if let Some(pem) =
                    c.v3.as_ref()
                        .and_then(|v3| v3.platform_certificates_pem.as_ref())
                {
                    add(&a.id, "wechat_platform_cert", pem);
                }
                if let Some(identity) = c.v2.as_ref().and_then(|v2| v2.client_identity_pem.as_ref())
                {
                    add(
                        &a.id,
                        "wechat_client_cert",
                        &String::from_utf8_lossy(identity.expose()),
                    );
                }
            }
        }
    }
    out
}

/// The label of deliveries to endpoints no longer in the configuration.
pub const UNCONFIGURED: &str = "(unconfigured)";

/// The endpoint label of a delivery: its configured id, or [`UNCONFIGURED`].
pub fn endpoint_label(gw: &Gateway, endpoint: &str) -> String {
    if gw.endpoints.iter().any(|e| e.id == endpoint) {
        endpoint.to_string()
    } else {
        UNCONFIGURED.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// `/metrics` and `/readyz` state.

/// Where metrics are served, from `[server]`: on the main port behind `metrics_token`, or on
/// `metrics_listen` (where the token, when set, is required too).
#[derive(Debug, Clone, Default)]
pub struct MetricsConfig {
    pub listen: Option<std::net::SocketAddr>,
    pub token: Option<Secret<String>>,
}

/// What the gateway holds for `/metrics` and `/readyz`.
pub struct Observe {
    pub(crate) config: MetricsConfig,
    /// Set once by the binary after it installed the recorder.
    handle: OnceLock<PrometheusHandle>,
    /// Whether this process is meant to run workers (`[jobs] enabled`).
    pub(crate) workers_expected: bool,
    /// A pool whose last round is older than this is not running.
    pub(crate) stale_after: Duration,
    /// The configured certificates' expiry, read once at start.
    pub(crate) certificates: Vec<CertificateExpiry>,
    beats: Mutex<BTreeMap<&'static str, Instant>>,
}

impl Observe {
    /// `poll` is the workers' poll interval: a pool goes round at least that often.
    pub fn new(
        config: MetricsConfig,
        workers_expected: bool,
        poll: Duration,
        certificates: Vec<CertificateExpiry>,
    ) -> Observe {
        Observe {
            config,
            certificates,
            handle: OnceLock::new(),
            workers_expected,
            stale_after: (poll * 5).max(Duration::from_secs(30)),
            beats: Mutex::new(BTreeMap::new()),
        }
    }

    /// A worker pool went round its loop.
    pub(crate) fn beat(&self, pool: &'static str) {
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats.insert(pool, Instant::now());
    }

    /// A worker pool stopped (shutdown): it no longer counts as running.
    pub(crate) fn stopped(&self, pool: &'static str) {
        let mut beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        beats.remove(pool);
    }

    /// The pools that went round within `stale`, and those that did not (or never started).
    pub(crate) fn workers(&self) -> Vec<(&'static str, bool)> {
        let beats = self.beats.lock().unwrap_or_else(|p| p.into_inner());
        crate::workers::POOLS
            .iter()
            .map(|pool| {
                let alive = beats
                    .get(pool)
                    .is_some_and(|t| t.elapsed() <= self.stale_after);
                (*pool, alive)
            })
            .collect()
    }
}

impl Gateway {
    /// Serves `/metrics` from `handle` (the binary's installed Prometheus recorder). Only the
    /// first call counts: one process has one recorder.
    pub fn export_metrics(&self, handle: PrometheusHandle) {
        let _ = self.observe.handle.set(handle);
    }

    /// Where metrics are served (from the configuration).
    pub fn metrics_config(&self) -> &MetricsConfig {
        &self.observe.config
    }
}

/// `GET /metrics`: the gauges sampled, then the exposition text. On the main port (`main_port`)
/// it exists only with a token configured and no `metrics_listen` (else it answers 404, as an
/// unknown path does); a wrong or missing token is a 401.
pub async fn scrape(gw: &Gateway, headers: &axum::http::HeaderMap, main_port: bool) -> Response {
    let cfg = &gw.observe.config;
    let Some(handle) = gw.observe.handle.get() else {
        return ApiError::not_found("metrics").into_response();
    };
    if main_port && (cfg.listen.is_some() || cfg.token.is_none()) {
        return ApiError::not_found("metrics").into_response();
    }
    if let Some(token) = &cfg.token {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::routes::bearer_token)
            .unwrap_or("");
        if !paybridge_crypto::constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            return ApiError::InvalidApiKey.into_response();
        }
    }
    sample_gauges(gw).await;
    handle.run_upkeep();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// The router of a separate `metrics_listen` port: `/metrics` only.
pub fn metrics_router(gw: std::sync::Arc<Gateway>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(
                |State(gw): State<std::sync::Arc<Gateway>>, headers: axum::http::HeaderMap| async move {
                    scrape(&gw, &headers, false).await
                },
            ),
        )
        .with_state(gw)
}
