//! HTTP glue: authentication, idempotency, body limits, and one thin handler per route, each
//! calling the service.

mod auth;
pub use auth::bearer_token;
pub mod openapi;
mod reconcile;
pub mod views;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body, Bytes};
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paybridge_core::channel::InboundRequest;
use paybridge_core::{Channel, PaymentStatus};
use paybridge_store::{ApiKey, IdempotencyBegin, PaymentFilter};
use serde::Deserialize;
use serde_json::Value;

use self::auth::{Authed, LimitedBody, ReadKey, RefundKey, WriteKey};
use self::views::{
    CashierView, CreatedPayment, EventList, EventView, PaymentList, PaymentView, ProviderCallList,
    ProviderCallView, Redelivery, RefundList, RefundView, Timeline,
};
use crate::error::ApiError;
use crate::service::ServiceError;
use crate::service::{
    views as service_views, Answer, CreateCashierInput, CreatePaymentInput, CreateRefundInput,
    Gateway, IdempotencyKey, NotifyKind, NotifyReply,
};

/// Provider notifications are small; anything bigger is not one (and XML bombs are capped).
const NOTIFY_BODY_LIMIT: usize = 64 * 1024;
/// An in-progress idempotency entry older than this belongs to a dead process.

#[derive(Clone)]
pub struct AppState {
    pub gw: Arc<Gateway>,
    pub max_body_bytes: usize,
}

/// The gateway's router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`
/// so notify endpoints see the peer address (for IP allowlists).
pub fn app(gw: Arc<Gateway>, max_body_bytes: usize) -> Router {
    let state = AppState { gw, max_body_bytes };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/v1/payments", post(create_payment).get(list_payments))
        .route("/v1/payments/:id", get(get_payment))
        .route("/v1/cashiers/:id", get(get_cashier))
        .route("/v1/payments/:id/close", post(close_payment))
        .route(
            "/v1/payments/:id/refunds",
            post(create_refund).get(list_refunds),
        )
        .route("/v1/payments/:id/provider-calls", get(provider_calls))
        .route("/v1/payments/:id/timeline", get(timeline))
        .route("/v1/refunds/:id", get(get_refund))
        .route("/v1/events", get(list_events))
        .route("/v1/events/:id/redeliver", post(redeliver))
        .route("/notify/alipay/:account", post(notify_alipay))
        .route("/notify/wechat/v2/:account/pay", post(notify_wechat_v2_pay))
        .route(
            "/notify/wechat/v2/:account/refund",
            post(notify_wechat_v2_refund),
        )
        .route("/notify/wechat/v3/:account", post(notify_wechat_v3))
        .merge(reconcile::routes())
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
}

/// Liveness: the process is up and serving requests
///
/// Touches nothing else (a database outage must not get a live process restarted); see
/// `/readyz` for whether it can do its work.
#[utoipa::path(get, path = "/healthz", operation_id = "health", security(()),
    responses((status = 200, description = "the process serves requests", body = views::Health)))]
async fn healthz() -> Json<views::Health> {
    Json(views::Health {
        status: "ok".to_string(),
    })
}

/// Readiness: the database answers, its schema is current, and the workers run
///
/// `503` with the same body when a check fails. Workers are checked only when this process is
/// configured to run them.
#[utoipa::path(get, path = "/readyz", operation_id = "ready", security(()),
    responses(
        (status = 200, description = "ready", body = views::Readiness),
        (status = 503, description = "not ready", body = views::Readiness),
    ))]
async fn readyz(State(s): State<AppState>) -> Response {
    let mut checks = Vec::new();
    let failed = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "readiness check failed");
        Some("unreachable".to_string())
    };
    let db = match s.gw.store.ping().await {
        Ok(()) => None,
        Err(e) => failed(&e),
    };
    let db_ok = db.is_none();
    checks.push(views::ReadinessCheck {
        name: "database".into(),
        ok: db_ok,
        detail: db,
    });
    let migrations = if db_ok {
        match s.gw.store.migrations_current().await {
            Ok(true) => None,
            Ok(false) => Some("migrations pending".to_string()),
            Err(e) => failed(&e),
        }
    } else {
        Some("database unreachable".to_string())
    };
    checks.push(views::ReadinessCheck {
        name: "migrations".into(),
        ok: migrations.is_none(),
        detail: migrations,
    });
    for (pool, alive) in s.gw.observe.workers() {
        let (ok, detail) = match (s.gw.observe.workers_expected, alive) {
            (false, _) => (true, Some("disabled".to_string())),
            (true, true) => (true, None),
            (true, false) => (false, Some("not running".to_string())),
        };
        checks.push(views::ReadinessCheck {
            name: format!("workers:{pool}"),
            ok,
            detail,
        });
    }
    let ready = checks.iter().all(|c| c.ok);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = views::Readiness {
        status: if ready { "ready" } else { "not_ready" }.to_string(),
        checks,
    };
    (status, Json(body)).into_response()
}

/// Prometheus metrics (text exposition format; series in METRICS.md)
///
/// Served here only when `[server] metrics_token` is set and `metrics_listen` is not; send the
/// token as `Authorization: Bearer <token>`. `404` otherwise.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", security(()),
    responses(
        (status = 200, description = "the exposition text", content_type = "text/plain", body = String),
        (status = 401, description = "missing or wrong metrics token", body = views::Problem),
        (status = 404, description = "metrics are not served on this port", body = views::Problem),
    ))]
async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    crate::observe::scrape(&s.gw, &headers, true).await
}

// ---------------------------------------------------------------------------------------------
// Authentication and idempotency.

pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    to_bytes(body, limit).await.map_err(|e| {
        if stalled(&e) {
            metrics::counter!("paybridge_request_bodies_timed_out_total").increment(1);
            ApiError::BodyTimeout
        } else {
            ApiError::PayloadTooLarge
        }
    })
}

/// True when a body read failed because the client stopped sending (the body inactivity
/// timeout in `runtime::with_request_limits`), not because the body was too large.
fn stalled(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::validation(format!("body: {e}")))
}

fn json_response(status: StatusCode, body: Vec<u8>, replayed: bool) -> Response {
    let mut resp = (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// Runs a POST once per `(api key, Idempotency-Key)`: the same key with the same request gets
/// the stored answer, with another request a 422.
async fn idempotent<F, Fut>(
    s: &AppState,
    key: &ApiKey,
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
    success: StatusCode,
    run: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Value, ApiError>>,
{
    let idem = match idempotency_key(headers, path, body) {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let (idem, hash) = (idem.key.as_str(), idem.request_hash.as_str());
    let begin = s.gw.begin_plain_key(&key.id, idem, hash).await;
    match begin {
        Err(e) => ApiError::from(e).into_response(),
        Ok(IdempotencyBegin::Mismatch) => {
            ApiError::from(ServiceError::IdempotencyKeyReused).into_response()
        }
        Ok(IdempotencyBegin::InProgress) => {
            ApiError::from(ServiceError::IdempotencyInProgress).into_response()
        }
        Ok(IdempotencyBegin::Replay { status, body }) => json_response(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            true,
        ),
        Ok(IdempotencyBegin::New) => {
            let (status, body) = match s.gw.holding_plain_key(&key.id, idem, run()).await {
                Ok(v) => (success, v.to_string().into_bytes()),
                Err(e) => {
                    e.log_fault();
                    (e.status(), e.body().to_string().into_bytes())
                }
            };
            // Answers that may differ on a retry (server faults, unknown provider outcome) are
            // not stored: the key is released so the retry runs again.
            let final_answer = !(status.is_server_error() || status == StatusCode::ACCEPTED);
            let stored = if final_answer {
                s.gw.store
                    .complete_idempotent(&key.id, idem, status.as_u16(), &body, s.gw.now_ms())
                    .await
            } else {
                s.gw.store.release_idempotent(&key.id, idem).await
            };
            if let Err(e) = stored {
                tracing::error!(error = %e, "cannot store idempotent response");
            }
            let mut r = json_response(status, body, false);
            if !status.is_success() {
                r.headers_mut().insert(
                    axum::http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
            }
            r
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Merchant API.

/// The request's `Idempotency-Key` bound to a digest of what it asks (method, path, body).
fn idempotency_key(
    headers: &HeaderMap,
    path: &str,
    body: &[u8],
) -> Result<IdempotencyKey, ApiError> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or(ApiError::IdempotencyKeyMissing)?;
    let mut material = Vec::with_capacity(path.len() + body.len() + 8);
    material.extend_from_slice(b"POST ");
    material.extend_from_slice(path.as_bytes());
    material.push(b'\n');
    material.extend_from_slice(body);
    Ok(IdempotencyKey {
        key: key.to_string(),
        request_hash: hex::encode(paybridge_crypto::sha256(&material)),
    })
}

/// How a money-moving POST answers: `success` when it ran now, the same status with
/// `Idempotent-Replayed: true` for a retry, `202` while the provider's answer is unknown.
fn answer_response(answer: Result<Answer<Value>, ApiError>, success: StatusCode) -> Response {
    match answer {
        Ok(Answer::Done(v)) => json_response(success, v.to_string().into_bytes(), false),
        Ok(Answer::Replayed(v)) => json_response(success, v.to_string().into_bytes(), true),
        Ok(Answer::Unsettled(v)) => {
            json_response(StatusCode::ACCEPTED, v.to_string().into_bytes(), false)
        }
        Ok(Answer::Stored { status, body }) => {
            let mut r = json_response(
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                body,
                true,
            );
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Create a payment and return what the buyer's client needs
///
/// Scope: write. `202` with the payment while the provider's answer is unknown (a query job
/// settles it).
#[utoipa::path(post, path = "/v1/payments", operation_id = "createPayment",
    request_body = CreatePaymentBody,
    responses((status = 201, body = CreatedPayment), (status = 202, body = PaymentView)))]
async fn create_payment(
    State(s): State<AppState>,
    Authed { key, .. }: WriteKey,
    headers: HeaderMap,
    LimitedBody(bytes): LimitedBody,
) -> Response {
    let answer = async {
        let idem = idempotency_key(&headers, "/v1/payments", &bytes)?;
        // The scene picks the body's shape: a hosted cashier names no single channel.
        let body: Value = parse_json(&bytes)?;
        if body.get("scene").and_then(Value::as_str) == Some("cashier") {
            let input: CreateCashierInput = parse_json(&bytes)?;
            let answer = s.gw.create_cashier(&key, &idem, input).await?;
            return Ok(
                answer.map(|c| serde_json::to_value(CashierView::from(&c)).unwrap_or_default())
            );
        }
        let input: CreatePaymentInput = parse_json(&bytes)?;
        let answer = s.gw.create_payment(&key, &idem, input).await?;
        Ok(answer.map(|p| service_views::payment(&p)))
    }
    .await;
    answer_response(answer, StatusCode::CREATED)
}

/// The request body of `POST /v1/payments`: one channel and scene, or `scene: "cashier"`.
#[derive(utoipa::ToSchema, Deserialize)]
#[serde(untagged)]
#[allow(dead_code)] // documents the body; the handler dispatches on `scene` itself
enum CreatePaymentBody {
    Payment(CreatePaymentInput),
    Cashier(CreateCashierInput),
}

/// A hosted cashier and the wallet orders it led to
///
/// Scope: read.
#[utoipa::path(get, path = "/v1/cashiers/{id}", operation_id = "getCashier",
    params(("id" = String, Path)), responses((status = 200, body = CashierView)))]
async fn get_cashier(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<CashierView>, ApiError> {
    Ok(Json(CashierView::from(&s.gw.get_cashier(&key, &id).await?)))
}

#[derive(Deserialize)]
struct ListQuery {
    account: Option<String>,
    channel: Option<String>,
    status: Option<String>,
    out_trade_no: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// List payments of the key's mode, newest first
///
/// Scope: read.
#[utoipa::path(get, path = "/v1/payments", operation_id = "listPayments",
    params(
        ("account" = Option<String>, Query),
        ("channel" = Option<String>, Query, description = "alipay or wechat"),
        ("status" = Option<String>, Query),
        ("out_trade_no" = Option<String>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100),
        ("after" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses((status = 200, body = PaymentList)))]
async fn list_payments(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<PaymentList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::validation(e.body_text()))?;
    let channel = q
        .channel
        .as_deref()
        .map(str::parse::<Channel>)
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let status = q
        .status
        .as_deref()
        .map(str::parse::<PaymentStatus>)
        .transpose()
        .map_err(|e| ApiError::validation(e.to_string()))?;
    let filter = PaymentFilter {
        account: q.account,
        channel,
        status,
        ..PaymentFilter::default()
    };
    let page =
        s.gw.list_payments(
            &key,
            filter,
            q.out_trade_no,
            q.after.as_deref(),
            q.limit.unwrap_or(20),
        )
        .await?;
    Ok(Json(PaymentList {
        data: page.items.iter().map(PaymentView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Scope: read.
#[utoipa::path(get, path = "/v1/payments/{id}", operation_id = "getPayment",
    params(("id" = String, Path)), responses((status = 200, body = PaymentView)))]
async fn get_payment(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<PaymentView>, ApiError> {
    Ok(Json(PaymentView::from(&s.gw.get_payment(&key, &id).await?)))
}

/// Close an unpaid payment at the provider (barcode payments are cancelled)
///
/// Scope: write.
#[utoipa::path(post, path = "/v1/payments/{id}/close", operation_id = "closePayment",
    params(("id" = String, Path)), responses((status = 200, body = PaymentView)))]
async fn close_payment(
    State(s): State<AppState>,
    Authed { key, .. }: WriteKey,
    headers: HeaderMap,
    Path(id): Path<String>,
    LimitedBody(bytes): LimitedBody,
) -> Response {
    let path = format!("/v1/payments/{id}/close");
    let gw = s.gw.clone();
    idempotent(
        &s,
        &key,
        &headers,
        &path,
        &bytes,
        StatusCode::OK,
        || async { Ok(service_views::payment(&gw.close_payment(&key, &id).await?)) },
    )
    .await
}

/// Refund part or all of a paid payment
///
/// Scope: refund. The sum of refunds can never exceed the payment. `202` with the refund while
/// the provider's answer is unknown.
#[utoipa::path(post, path = "/v1/payments/{id}/refunds", operation_id = "createRefund",
    params(("id" = String, Path)), request_body = crate::service::CreateRefundInput,
    responses((status = 201, body = RefundView), (status = 202, body = RefundView)))]
async fn create_refund(
    State(s): State<AppState>,
    Authed { key, .. }: RefundKey,
    headers: HeaderMap,
    Path(id): Path<String>,
    LimitedBody(bytes): LimitedBody,
) -> Response {
    let answer = async {
        let idem = idempotency_key(&headers, &format!("/v1/payments/{id}/refunds"), &bytes)?;
        let input: CreateRefundInput = parse_json(&bytes)?;
        let answer = s.gw.create_refund(&key, &idem, &id, input).await?;
        Ok(answer.map(|r| service_views::refund(&r)))
    }
    .await;
    answer_response(answer, StatusCode::CREATED)
}

/// Scope: read.
#[utoipa::path(get, path = "/v1/payments/{id}/refunds", operation_id = "listRefunds",
    params(("id" = String, Path)), responses((status = 200, body = RefundList)))]
async fn list_refunds(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<RefundList>, ApiError> {
    let refunds = s.gw.list_refunds(&key, &id).await?;
    Ok(Json(RefundList {
        data: refunds.iter().map(RefundView::from).collect(),
    }))
}

/// Scope: read.
#[utoipa::path(get, path = "/v1/refunds/{id}", operation_id = "getRefund",
    params(("id" = String, Path)), responses((status = 200, body = RefundView)))]
async fn get_refund(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<RefundView>, ApiError> {
    Ok(Json(RefundView::from(&s.gw.get_refund(&key, &id).await?)))
}

/// Every call made to the provider for this payment, redacted
///
/// Scope: read.
#[utoipa::path(get, path = "/v1/payments/{id}/provider-calls", operation_id = "listProviderCalls",
    params(("id" = String, Path)), responses((status = 200, body = ProviderCallList)))]
async fn provider_calls(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<ProviderCallList>, ApiError> {
    let calls = s.gw.payment_provider_calls(&key, &id).await?;
    Ok(Json(ProviderCallList {
        data: calls.iter().map(ProviderCallView::from).collect(),
    }))
}

/// Queries, notifications and state changes of one payment
///
/// Scope: read.
#[utoipa::path(get, path = "/v1/payments/{id}/timeline", operation_id = "paymentTimeline",
    params(("id" = String, Path)), responses((status = 200, body = Timeline)))]
async fn timeline(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<Timeline>, ApiError> {
    Ok(Json(Timeline::from(
        &s.gw.payment_timeline(&key, &id).await?,
    )))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<String>,
    limit: Option<u32>,
}

/// The event feed of the key's mode, oldest first, for merchants who pull
///
/// Scope: read.
#[utoipa::path(get, path = "/v1/events", operation_id = "listEvents",
    params(
        ("after" = Option<String>, Query),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100),
    ),
    responses((status = 200, body = EventList)))]
async fn list_events(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::validation(e.body_text()))?;
    let page =
        s.gw.store
            .list_events(
                q.after.as_deref(),
                q.limit.unwrap_or(50).clamp(1, 100),
                key.mode,
                None,
            )
            .await?;
    Ok(Json(EventList {
        data: page.events.iter().map(EventView::from).collect(),
        next_cursor: page.cursor,
        has_more: page.has_more,
    }))
}

/// Send an event to the webhook endpoints again
///
/// Scope: write.
#[utoipa::path(post, path = "/v1/events/{id}/redeliver", operation_id = "redeliverEvent",
    params(("id" = String, Path)), responses((status = 200, body = Redelivery)))]
async fn redeliver(
    State(s): State<AppState>,
    Authed { key, .. }: WriteKey,
    headers: HeaderMap,
    Path(id): Path<String>,
    LimitedBody(bytes): LimitedBody,
) -> Response {
    let path = format!("/v1/events/{id}/redeliver");
    let gw = s.gw.clone();
    idempotent(
        &s,
        &key,
        &headers,
        &path,
        &bytes,
        StatusCode::OK,
        || async {
            let (event, n) = gw.redeliver(&key, &id).await?;
            Ok(serde_json::to_value(Redelivery {
                event_id: event.id,
                deliveries: n,
            })
            .unwrap_or(Value::Null))
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Provider notifications.

async fn notify(s: AppState, kind: NotifyKind, account: String, req: Request) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, NOTIFY_BODY_LIMIT).await {
        Ok(b) => b,
        Err(e) if stalled(&e) => {
            metrics::counter!("paybridge_request_bodies_timed_out_total").increment(1);
            return (StatusCode::REQUEST_TIMEOUT, "body timeout").into_response();
        }
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "too large").into_response(),
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    // Field lines of one name form one comma-separated list, in order (RFC 9110 §5.3): a
    // client's own line comes first, the proxy's appended hop last, so all lines count.
    let lines: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().unwrap_or(","))
        .collect();
    let forwarded = (!lines.is_empty()).then(|| lines.join(","));
    let inbound = InboundRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers,
        body: bytes.to_vec(),
    };
    match s
        .gw
        .handle_notification(kind, &account, inbound, peer, forwarded.as_deref())
        .await
    {
        NotifyReply::Provider(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
            (
                status,
                [(axum::http::header::CONTENT_TYPE, reply.content_type)],
                reply.body,
            )
                .into_response()
        }
        NotifyReply::Plain(status, msg) => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::NOT_FOUND),
            msg,
        )
            .into_response(),
    }
}

/// Alipay asynchronous notifications
#[utoipa::path(post, path = "/notify/alipay/{account}", operation_id = "notifyAlipay",
    tag = "provider", security(()), params(("account" = String, Path)),
    responses((status = 200, description = "provider reply")))]
async fn notify_alipay(State(s): State<AppState>, Path(a): Path<String>, req: Request) -> Response {
    notify(s, NotifyKind::Alipay, a, req).await
}

/// WeChat Pay APIv2 payment notifications
#[utoipa::path(post, path = "/notify/wechat/v2/{account}/pay", operation_id = "notifyWechatV2Pay",
    tag = "provider", security(()), params(("account" = String, Path)),
    responses((status = 200, description = "provider reply")))]
async fn notify_wechat_v2_pay(
    State(s): State<AppState>,
    Path(a): Path<String>,
    req: Request,
) -> Response {
    notify(s, NotifyKind::WechatV2Pay, a, req).await
}

/// WeChat Pay APIv2 refund notifications
#[utoipa::path(post, path = "/notify/wechat/v2/{account}/refund", operation_id = "notifyWechatV2Refund",
    tag = "provider", security(()), params(("account" = String, Path)),
    responses((status = 200, description = "provider reply")))]
async fn notify_wechat_v2_refund(
    State(s): State<AppState>,
    Path(a): Path<String>,
    req: Request,
) -> Response {
    notify(s, NotifyKind::WechatV2Refund, a, req).await
}

/// WeChat Pay APIv3 notifications
#[utoipa::path(post, path = "/notify/wechat/v3/{account}", operation_id = "notifyWechatV3",
    tag = "provider", security(()), params(("account" = String, Path)),
    responses((status = 200, description = "provider reply")))]
async fn notify_wechat_v3(
    State(s): State<AppState>,
    Path(a): Path<String>,
    req: Request,
) -> Response {
    notify(s, NotifyKind::WechatV3, a, req).await
}
