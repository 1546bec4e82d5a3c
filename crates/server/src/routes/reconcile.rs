//! `POST /v1/reconciliations` (run an account's day now) and `GET /v1/reconciliations/{id}`
//! (the run, its totals and its discrepancies).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use paybridge_store::ApiScope;
use serde::Deserialize;
use serde_json::Value;

use super::{authenticate, idempotent, parse_json, read_body, AppState};
use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateReconciliation {
    account: String,
    /// `YYYY-MM-DD`, the provider's (Beijing) day.
    date: String,
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/reconciliations", post(create))
        .route("/v1/reconciliations/:id", get(show))
}

async fn create(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    // Healing may change payments and refunds: the same scope as writing them.
    let key = match authenticate(&s, &headers, ApiScope::Write).await {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let bytes = match read_body(body, s.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let gw = s.gw.clone();
    idempotent(
        &s,
        &key,
        &headers,
        "/v1/reconciliations",
        &bytes,
        StatusCode::CREATED,
        || async {
            let input: CreateReconciliation = parse_json(&bytes)?;
            gw.create_reconciliation(&key, &input.account, &input.date)
                .await
        },
    )
    .await
}

async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let key = authenticate(&s, &headers, ApiScope::Read).await?;
    Ok(Json(s.gw.get_reconciliation(&key, &id).await?))
}
