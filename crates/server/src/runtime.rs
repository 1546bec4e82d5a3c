//! Running the gateway: the HTTP server and the background workers (webhook delivery and jobs).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::service::Gateway;

/// Serves the API and notify endpoints on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    max_body_bytes: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, gw, max_body_bytes, axum::Router::new(), shutdown).await
}

/// [`serve`] with extra routes merged in (the demo page).
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    max_body_bytes: usize,
    extra: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = extra.merge(crate::routes::app(gw, max_body_bytes)).layer(
        tower_http::catch_panic::CatchPanicLayer::custom(panic_response),
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// A handler that panicked is a fault of ours: the caller gets the same bare `internal` problem
/// as any other internal error (never the panic message), and the connection and the process
/// keep serving.
fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::error::ApiError::internal("a request handler panicked").into_response()
}

/// How often the channels are asked whether their keys are due for a refresh (each channel
/// decides; WeChat Pay platform certificates refresh every 12 hours).
const KEY_REFRESH_CHECK: Duration = Duration::from_secs(300);

/// Runs webhook deliveries and due jobs forever: immediately when a change signals the outbox,
/// otherwise every `poll`. Several instances may run this against one PostgreSQL database; the
/// store's leases keep them from doing the same work at once.
pub fn spawn_workers(gw: Arc<Gateway>, poll: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = gw.ensure_recurring_jobs().await {
            tracing::error!(error = %e, "cannot schedule the recurring jobs");
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
