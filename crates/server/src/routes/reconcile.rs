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

/// Adds the reconciliation paths and schemas to the OpenAPI document.
pub(super) fn document(doc: &mut Value) {
    let problems = |status: &str, ok: Value| {
        let mut r = serde_json::json!({
            "400": {"$ref": "#/components/responses/Problem"},
            "401": {"$ref": "#/components/responses/Problem"},
            "403": {"$ref": "#/components/responses/Problem"},
            "404": {"$ref": "#/components/responses/Problem"}
        });
        r[status] = ok;
        r
    };
    let run = serde_json::json!({"description": "The run, its totals and its discrepancies",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reconciliation"}}}});
    doc["paths"]["/v1/reconciliations"] = serde_json::json!({"post": {
        "operationId": "createReconciliation",
        "summary": "Download an account's bill of one day and reconcile it now (healable differences are healed by active queries)",
        "description": "Scope: write. Body: {\"account\": \"...\", \"date\": \"YYYY-MM-DD\"} (the provider's Beijing day). A run that failed (bill unavailable) is answered with state failed and its error.",
        "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
            "type": "object", "required": ["account", "date"],
            "properties": {"account": {"type": "string"}, "date": {"type": "string", "format": "date"}}}}}},
        "responses": problems("201", run.clone())
    }});
    doc["paths"]["/v1/reconciliations/{id}"] = serde_json::json!({"get": {
        "operationId": "getReconciliation",
        "description": "Scope: read.",
        "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
        "responses": problems("200", run)
    }});
    doc["components"]["schemas"]["Reconciliation"] = serde_json::json!({"type": "object", "properties": {
        "id": {"type": "string"}, "object": {"type": "string", "enum": ["reconciliation"]},
        "account": {"type": "string"}, "date": {"type": "string"},
        "state": {"type": "string", "enum": ["running", "completed", "failed"]},
        "totals": {"type": "object", "description": "bill rows, payments, refunds and fees (fen); local counts and sums; matched; discrepancies by kind; healed, heal_failed, open"},
        "error": {"type": "string", "nullable": true},
        "started_at": {"type": "integer"}, "finished_at": {"type": "integer", "nullable": true},
        "discrepancies": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"},
            "kind": {"type": "string", "enum": ["missing_locally", "missing_at_provider", "amount_mismatch", "status_mismatch"]},
            "entity": {"type": "string", "enum": ["payment", "refund"]},
            "out_trade_no": {"type": "string"}, "out_refund_no": {"type": "string", "nullable": true},
            "payment_id": {"type": "string", "nullable": true}, "refund_id": {"type": "string", "nullable": true},
            "bill_amount": {"type": "integer", "nullable": true}, "local_amount": {"type": "integer", "nullable": true},
            "bill_status": {"type": "string", "nullable": true}, "local_status": {"type": "string", "nullable": true},
            "healable": {"type": "boolean"},
            "resolution": {"type": "string", "enum": ["open", "healed", "heal_failed"]},
            "detail": {"type": "string", "nullable": true}
        }}}
    }});
}
