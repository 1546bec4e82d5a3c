//! `POST /v1/reconciliations` (queue a run of an account's day; a job does the work) and
//! `GET /v1/reconciliations/{id}` (the run, its progress, totals and discrepancies).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{Authed, LimitedBody, ReadKey, WriteKey};
use super::views::ReconciliationView;
use super::{idempotent, parse_json, AppState};
use crate::error::ApiError;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateReconciliation {
    account: String,
    /// `YYYY-MM-DD`, the provider's (Beijing) day.
    #[schema(format = Date)]
    date: String,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/reconciliations", post(create))
        .route("/v1/reconciliations/:id", get(show))
}

/// Reconcile an account's bill of one day
///
/// Scope: write. Answers at once with the run in state `queued`; a job downloads the bill,
/// matches it and heals healable differences by active queries, recording its progress
/// (`rows_read`, `rows_matched`). Follow it with `GET /v1/reconciliations/{id}` until it is
/// `completed` or `failed` (with its error).
#[utoipa::path(post, path = "/v1/reconciliations", operation_id = "createReconciliation",
    request_body = CreateReconciliation,
    responses((status = 202, body = ReconciliationView)))]
pub(super) async fn create(
    State(s): State<AppState>,
    // Healing may change payments and refunds: the same scope as writing them.
    Authed { key, .. }: WriteKey,
    headers: HeaderMap,
    LimitedBody(bytes): LimitedBody,
) -> Response {
    let gw = s.gw.clone();
    idempotent(
        &s,
        &key,
        &headers,
        "/v1/reconciliations",
        &bytes,
        StatusCode::ACCEPTED,
        || async {
            let input: CreateReconciliation = parse_json(&bytes)?;
            let rec = gw
                .create_reconciliation(&key, &input.account, &input.date)
                .await?;
            Ok(serde_json::to_value(ReconciliationView::from(&rec)).unwrap_or(Value::Null))
        },
    )
    .await
}

/// Scope: read.
#[utoipa::path(get, path = "/v1/reconciliations/{id}", operation_id = "getReconciliation",
    params(("id" = String, Path)), responses((status = 200, body = ReconciliationView)))]
pub(super) async fn show(
    State(s): State<AppState>,
    Authed { key, .. }: ReadKey,
    Path(id): Path<String>,
) -> Result<Json<ReconciliationView>, ApiError> {
    Ok(Json(ReconciliationView::from(
        &s.gw.get_reconciliation(&key, &id).await?,
    )))
}
