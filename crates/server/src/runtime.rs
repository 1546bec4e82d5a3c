//! Running the gateway: the HTTP server and the background workers (webhook delivery and jobs).

use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
pub use crate::listener::{Limits, LimitsError};
use crate::service::Gateway;

/// Serves the API and notify endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, gw, limits, axum::Router::new(), shutdown).await
}

/// [`serve`] with extra routes merged in (the demo page).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    limits: Limits,
    extra: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    limits
        .validate()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let exempt = gw.ip_allowlist.trusted_proxies.clone();
    let app = with_request_limits(
        extra.merge(crate::routes::app(gw, limits.max_body_bytes)),
        &limits,
    );
    crate::listener::serve(listener, app, &limits, exempt, shutdown).await
}

/// The request-level limits around `router`, outermost first: a panic becomes a 500; beyond
/// `max_in_flight` requests a new one is shed at once (503 `overloaded`, never queued); every
/// other request is answered within `request_timeout` (503 `timeout`); a body that stalls for
/// `body_timeout` fails its read (408 `request_timeout`, see `routes::read_body`).
pub fn with_request_limits(router: axum::Router, limits: &Limits) -> axum::Router {
    router.layer(
        tower::ServiceBuilder::new()
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                panic_response,
            ))
            .layer(HandleErrorLayer::new(shed_response))
            .layer(tower::load_shed::LoadShedLayer::new())
            .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                limits.max_in_flight,
            ))
            .layer(axum::middleware::from_fn_with_state(
                limits.request_timeout,
                request_deadline,
            ))
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
                limits.body_timeout,
            )),
    )
}

async fn shed_response(err: tower::BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("paybridge_requests_shed_total").increment(1);
        ApiError::Overloaded.into_response()
    } else {
        ApiError::internal(err).into_response()
    }
}

/// A reconciliation reads and matches a whole day's bill, which may take longer than any
/// merchant call (a million rows ~40 s, BENCHMARKS.md); cutting it off would leave the run
/// half done. The header, body and connection limits still bound what its client sends.
fn runs_unbounded(req: &Request) -> bool {
    req.method() == axum::http::Method::POST && req.uri().path() == "/v1/reconciliations"
}

async fn request_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if runs_unbounded(&req) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            metrics::counter!("paybridge_requests_timed_out_total").increment(1);
            ApiError::Timeout.into_response()
        }
    }
}

/// A handler that panicked is a fault of ours: the caller gets the same bare `internal` problem
/// as any other internal error (never the panic message), and the connection and the process
/// keep serving.
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::internal("a request handler panicked").into_response()
}

/// How often the channels are asked whether their keys are due for a refresh (each channel
/// decides; WeChat Pay platform certificates refresh every 12 hours).
const KEY_REFRESH_CHECK: Duration = Duration::from_secs(300);

/// Runs webhook deliveries and due jobs forever: immediately when a change signals the outbox,
/// otherwise every `poll`. Several instances may run this against one PostgreSQL database; the
/// store's leases keep them from doing the same work at once.
pub fn spawn_workers(gw: Arc<Gateway>, poll: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = gw.ensure_retention_job().await {
            tracing::error!(error = %e, "cannot schedule the retention job");
        }
        // Provider keys on their own task, so a slow certificate download never holds up jobs;
        // it ends with this one (the guard aborts it when this task is dropped or aborted).
        let keys = gw.clone();
        let _keys = AbortOnDrop(tokio::spawn(async move {
            loop {
                keys.refresh_channel_keys().await;
                tokio::time::sleep(KEY_REFRESH_CHECK).await;
            }
        }));
        loop {
            let now = gw.now_ms();
            match gw.deliver_webhooks_once(now, 50).await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "webhook worker"),
            }
            match gw.run_jobs_once(now, 50).await {
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "job worker"),
            }
            tokio::select! {
                _ = gw.outbox_signal.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use tower::ServiceExt;

    use super::*;

    /// Counts counters by name, so a test can see what was recorded on its thread.
    #[derive(Default)]
    struct Counts(Mutex<HashMap<String, Arc<AtomicU64>>>);

    impl Counts {
        fn get(&self, name: &str) -> u64 {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .map_or(0, |c| c.load(Ordering::Relaxed))
        }
    }

    impl Recorder for Counts {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let mut map = self.0.lock().unwrap();
            Counter::from_arc(map.entry(key.name().to_string()).or_default().clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    async fn problem(resp: Response) -> (StatusCode, Option<String>, serde_json::Value) {
        let status = resp.status();
        let retry = resp
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, retry, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn beyond_max_in_flight_requests_are_shed_at_once_and_counted() {
        let counts = Counts::default();
        let _recorder = metrics::set_default_local_recorder(&counts);
        let release = Arc::new(tokio::sync::Notify::new());
        let held = release.clone();
        let limits = Limits {
            max_in_flight: 1,
            ..Limits::default()
        };
        let app = with_request_limits(
            axum::Router::new().route(
                "/hold",
                axum::routing::get(move || {
                    let held = held.clone();
                    async move {
                        held.notified().await;
                        "done"
                    }
                }),
            ),
            &limits,
        );
        let first = tokio::spawn(app.clone().oneshot(get("/hold")));
        tokio::task::yield_now().await;
        let (status, retry, body) = problem(app.clone().oneshot(get("/hold")).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["code"], "overloaded");
        assert_eq!(counts.get("paybridge_requests_shed_total"), 1);
        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The slot is back.
        let again = tokio::spawn(app.clone().oneshot(get("/hold")));
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(again.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_is_answered_503_timeout() {
        let counts = Counts::default();
        let _recorder = metrics::set_default_local_recorder(&counts);
        let limits = Limits {
            request_timeout: Duration::from_millis(20),
            ..Limits::default()
        };
        let app = with_request_limits(
            axum::Router::new().route(
                "/never",
                axum::routing::get(std::future::pending::<&'static str>),
            ),
            &limits,
        );
        let (status, retry, body) = problem(app.oneshot(get("/never")).await.unwrap()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(retry.as_deref(), Some("1"));
        assert_eq!(body["code"], "timeout");
        assert_eq!(counts.get("paybridge_requests_timed_out_total"), 1);
    }

    #[test]
    fn only_reconciliation_runs_are_exempt_from_the_deadline() {
        let post = |path: &str| Request::post(path).body(Body::empty()).unwrap();
        assert!(runs_unbounded(&post("/v1/reconciliations")));
        assert!(!runs_unbounded(&get("/v1/reconciliations")));
        assert!(!runs_unbounded(&post("/v1/payments")));
        assert!(!runs_unbounded(&post("/notify/alipay/a")));
    }
}
