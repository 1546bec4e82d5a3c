//! Refunds: the stored shape and its lookups. Refunds are created and settled only by the units
//! of work in `work.rs` ([`Store::begin_refund`], [`Store::apply_refund`]).

use paybridge_core::{Fen, Mode, RefundStatus};

use crate::db::with_pool;
use crate::error::{Result, StoreError};
use crate::model::{clamp_limit, parse, parse_opt};
use crate::Store;

/// A refund as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Refund {
    pub id: String,
    pub payment_id: String,
    pub mode: Mode,
    pub account: String,
    /// The merchant's refund number, unique per payment.
    pub out_refund_no: String,
    pub amount: Fen,
    pub reason: Option<String>,
    pub status: RefundStatus,
    pub previous_status: Option<RefundStatus>,
    pub version: i64,
    pub provider_refund_no: Option<String>,
    pub failure_reason: Option<String>,
    pub succeeded_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A refund to create; it starts `pending` at version 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefund {
    pub payment_id: String,
    pub out_refund_no: String,
    pub amount: Fen,
    pub reason: Option<String>,
}

/// Columns a refund transition may set; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefundPatch {
    pub provider_refund_no: Option<String>,
    pub failure_reason: Option<String>,
    pub succeeded_at: Option<i64>,
}

pub(crate) const REFUND_COLS: &str =
    "id, payment_id, mode, account, out_refund_no, amount, reason, status, \
    previous_status, version, provider_refund_no, failure_reason, succeeded_at, created_at, \
    updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct RefundRow {
    id: String,
    payment_id: String,
    mode: String,
    account: String,
    out_refund_no: String,
    amount: i64,
    reason: Option<String>,
    status: String,
    previous_status: Option<String>,
    version: i64,
    provider_refund_no: Option<String>,
    failure_reason: Option<String>,
    succeeded_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;
    fn try_from(r: RefundRow) -> Result<Refund> {
        Ok(Refund {
            mode: parse("refund mode", &r.mode)?,
            status: parse("refund status", &r.status)?,
            previous_status: parse_opt("refund status", r.previous_status.as_deref())?,
            id: r.id,
            payment_id: r.payment_id,
            account: r.account,
            out_refund_no: r.out_refund_no,
            amount: Fen(r.amount),
            reason: r.reason,
            version: r.version,
            provider_refund_no: r.provider_refund_no,
            failure_reason: r.failure_reason,
            succeeded_at: r.succeeded_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) fn refund_select(where_clause: &str) -> String {
    format!("SELECT {REFUND_COLS} FROM refunds WHERE {where_clause}")
}

impl Store {
    /// The refund with this id (`re_…`), if any.
    pub async fn get_refund(&self, id: &str) -> Result<Option<Refund>> {
        let sql = refund_select("id = $1");
        let row: Option<RefundRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Refund::try_from).transpose()
    }

    /// The refund of a payment by the merchant's refund number.
    pub async fn get_refund_by_out_refund_no(
        &self,
        payment_id: &str,
        out_refund_no: &str,
    ) -> Result<Option<Refund>> {
        let sql = refund_select("payment_id = $1 AND out_refund_no = $2");
        let row: Option<RefundRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(payment_id)
                .bind(out_refund_no)
                .fetch_optional(pool)
                .await?
        });
        row.map(Refund::try_from).transpose()
    }

    /// All refunds of a payment, oldest first.
    pub async fn list_refunds(&self, payment_id: &str) -> Result<Vec<Refund>> {
        let sql = format!(
            "{} ORDER BY created_at, id",
            refund_select("payment_id = $1")
        );
        let rows: Vec<RefundRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(payment_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Refund::try_from).collect()
    }

    /// Refunds in `status` created before `created_before`, oldest first (the refund poller's
    /// work list).
    /// The newest refunds of a mode, newest first (`before`: the `created_at` of the last row
    /// of the previous page).
    pub async fn list_recent_refunds(
        &self,
        mode: Mode,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Refund>> {
        let sql = format!(
            "{} ORDER BY created_at DESC, id DESC LIMIT $3",
            refund_select("mode = $1 AND ($2 IS NULL OR created_at < $2)")
        );
        let rows: Vec<RefundRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(mode.as_str())
                .bind(before)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Refund::try_from).collect()
    }

    pub async fn list_refunds_by_status(
        &self,
        status: RefundStatus,
        created_before: i64,
        limit: u32,
    ) -> Result<Vec<Refund>> {
        let sql = format!(
            "{} ORDER BY created_at, id LIMIT $3",
            refund_select("status = $1 AND created_at < $2")
        );
        let rows: Vec<RefundRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(status.as_str())
                .bind(created_before)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Refund::try_from).collect()
    }
}
