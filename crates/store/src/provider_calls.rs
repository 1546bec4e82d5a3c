//! The provider call log: every outbound call, already redacted by the caller, kept for the
//! person debugging an unclear provider answer.

use paybridge_core::Channel;

use crate::db::with_pool;
use crate::error::{Result, StoreError};
use crate::model::parse;
use crate::Store;

/// One outbound call to record. `request` and `response` must already be redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProviderCall {
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub channel: Channel,
    pub account: String,
    /// `alipay.trade.query`, `v3/pay/transactions/native`...
    pub operation: String,
    pub request: String,
    pub response: Option<String>,
    pub http_status: Option<u16>,
    pub latency_ms: i64,
    /// `ok`, `provider_error:<code>`, `timeout`, `transport_error`, `bad_signature`...
    pub outcome: String,
}

/// A recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderCall {
    pub id: String,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub channel: Channel,
    pub account: String,
    pub operation: String,
    pub request: String,
    pub response: Option<String>,
    pub http_status: Option<i64>,
    pub latency_ms: i64,
    pub outcome: String,
    pub created_at: i64,
}

const CALL_COLS: &str = "id, payment_id, refund_id, channel, account, operation, request, \
    response, http_status, latency_ms, outcome, created_at";

#[derive(sqlx::FromRow)]
struct CallRow {
    id: String,
    payment_id: Option<String>,
    refund_id: Option<String>,
    channel: String,
    account: String,
    operation: String,
    request: String,
    response: Option<String>,
    http_status: Option<i64>,
    latency_ms: i64,
    outcome: String,
    created_at: i64,
}

impl TryFrom<CallRow> for ProviderCall {
    type Error = StoreError;
    fn try_from(r: CallRow) -> Result<ProviderCall> {
        Ok(ProviderCall {
            channel: parse("provider call channel", &r.channel)?,
            id: r.id,
            payment_id: r.payment_id,
            refund_id: r.refund_id,
            account: r.account,
            operation: r.operation,
            request: r.request,
            response: r.response,
            http_status: r.http_status,
            latency_ms: r.latency_ms,
            outcome: r.outcome,
            created_at: r.created_at,
        })
    }
}

/// Writes `$call` through `$exec` (a pool, or `&mut *tx` inside a unit of work); evaluates to
/// its id.
macro_rules! insert_provider_call {
    ($exec:expr, $call:expr, $now:expr) => {{
        let call: &$crate::NewProviderCall = $call;
        let id = $crate::new_id("pcl");
        sqlx::query(
            "INSERT INTO provider_calls (id, payment_id, refund_id, channel, account, \
             operation, request, response, http_status, latency_ms, outcome, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(&id)
        .bind(&call.payment_id)
        .bind(&call.refund_id)
        .bind(call.channel.as_str())
        .bind(&call.account)
        .bind(&call.operation)
        .bind(&call.request)
        .bind(&call.response)
        .bind(call.http_status.map(i64::from))
        .bind(call.latency_ms)
        .bind(&call.outcome)
        .bind($now)
        .execute($exec)
        .await?;
        id
    }};
}
pub(crate) use insert_provider_call;

impl Store {
    /// Records an outbound provider call; returns its id (`pcl_…`).
    pub async fn record_provider_call(&self, call: &NewProviderCall) -> Result<String> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            let id = insert_provider_call!(pool, call, now);
            Ok(id)
        })
    }

    /// The calls made for a payment (including its refunds), oldest first.
    pub async fn list_provider_calls(&self, payment_id: &str) -> Result<Vec<ProviderCall>> {
        let sql = format!(
            "SELECT {CALL_COLS} FROM provider_calls WHERE payment_id = $1 ORDER BY created_at, id"
        );
        let rows: Vec<CallRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(payment_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ProviderCall::try_from).collect()
    }
}
