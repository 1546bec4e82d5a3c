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
use crate::workers::{WorkerLimits, Workers};

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

/// Serves `/metrics` alone on `listener` (`[server] metrics_listen`) until `shutdown` resolves.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, crate::observe::metrics_router(gw))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The request-level limits around `router`, outermost first: a panic becomes a 500; beyond
/// `max_in_flight` requests a new one is shed at once (503 `overloaded`, never queued); every
/// other request is answered within `request_timeout` (503 `timeout`); a body that stalls for
/// `body_timeout` fails its read (408 `request_timeout`, see `routes::read_body`).
///
/// Around them all, [`crate::observe::layers`]: the request id, the request span, HTTP metrics
/// and the request log line, so a shed, timed-out or panicked request is counted and logged too.
pub fn with_request_limits(router: axum::Router, limits: &Limits) -> axum::Router {
    let limited = router.layer(
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
    );
    crate::observe::layers(limited)
}

async fn shed_response(err: tower::BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        metrics::counter!("paybridge_requests_shed_total").increment(1);
        ApiError::Overloaded.into_response()
    } else {
        ApiError::internal(err).into_response()
    }
}

/// Every request has the deadline: a reconciliation is queued and answered at once, its
/// work done by a job.
async fn request_deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
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

/// Starts the background workers ([`crate::workers`]) with the default limits and `poll`.
/// Keep the handle: dropping it stops them; [`Workers::shutdown`] lets them finish.
pub fn spawn_workers(gw: Arc<Gateway>, poll: Duration) -> Workers {
    Workers::spawn(
        gw,
        WorkerLimits {
            poll,
            ..WorkerLimits::default()
        },
    )
}
