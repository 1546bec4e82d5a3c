//! Payments: the stored shape, lookups and filtered keyset listing. Payments are created and
//! moved only by the units of work in `work.rs` ([`Store::begin_payment`],
//! [`Store::apply_payment`]).

use paybridge_core::{Channel, Fen, Mode, PaymentStatus, Scene};
use serde_json::Value;
use sqlx::types::Json;

use crate::db::with_pool;
use crate::error::{Result, StoreError};
use crate::model::{clamp_limit, decode_cursor, encode_cursor, parse, parse_opt, Page};
use crate::Store;

/// A payment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Payment {
    pub id: String,
    pub mode: Mode,
    /// The configured account name (one Alipay app or WeChat merchant).
    pub account: String,
    pub channel: Channel,
    pub scene: Scene,
    /// The merchant's order number, unique per account.
    pub out_trade_no: String,
    pub amount: Fen,
    pub currency: String,
    pub subject: String,
    pub description: Option<String>,
    pub status: PaymentStatus,
    /// The status before the last transition.
    pub previous_status: Option<PaymentStatus>,
    /// Incremented by every change (once per state step, once for a patch alone); usable as an
    /// optimistic-lock token.
    pub version: i64,
    pub provider_trade_no: Option<String>,
    /// What the client needs to pay (redirect URL, form, QR code, SDK parameters).
    pub client_action: Option<Value>,
    pub payer_id: Option<String>,
    pub expires_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub paid_amount: Option<Fen>,
    pub refunded_amount: Fen,
    /// Paid after it had been closed or failed locally.
    pub late_payment: bool,
    pub metadata: Value,
    /// The hosted cashier this payment is one wallet's order of, if any.
    pub cashier_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Payment {
    /// What refunds may still take: paid amount (or the order amount) minus refunded.
    pub fn refundable(&self) -> Fen {
        Fen(self.paid_amount.unwrap_or(self.amount).0 - self.refunded_amount.0)
    }
}

/// A payment to insert; it starts in [`PaymentStatus::Created`] at version 0.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPayment {
    pub mode: Mode,
    pub account: String,
    pub channel: Channel,
    pub scene: Scene,
    pub out_trade_no: String,
    pub amount: Fen,
    pub currency: String,
    pub subject: String,
    pub description: Option<String>,
    pub expires_at: Option<i64>,
    pub metadata: Value,
    /// Set for the order of one wallet the buyer picked in a hosted cashier.
    pub cashier_id: Option<String>,
}

/// Columns a transition may set besides the status; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentPatch {
    pub provider_trade_no: Option<String>,
    pub client_action: Option<Value>,
    pub payer_id: Option<String>,
    pub expires_at: Option<i64>,
    pub paid_at: Option<i64>,
    pub paid_amount: Option<Fen>,
    pub late_payment: Option<bool>,
}

/// Filters for [`Store::list_payments`]; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PaymentFilter {
    pub mode: Option<Mode>,
    pub account: Option<String>,
    pub status: Option<PaymentStatus>,
    pub channel: Option<Channel>,
    /// Inclusive lower bound on `created_at`.
    pub created_from: Option<i64>,
    /// Exclusive upper bound on `created_at`.
    pub created_to: Option<i64>,
    /// Inclusive bounds on the amount.
    pub amount_min: Option<Fen>,
    pub amount_max: Option<Fen>,
    /// One identifier, exactly: the payment id, its `out_trade_no` or the provider's trade
    /// number (what an operator pastes from a customer's message).
    pub reference: Option<String>,
}

pub(crate) const PAYMENT_COLS: &str = "id, mode, account, channel, scene, out_trade_no, amount, \
    currency, subject, description, status, previous_status, version, provider_trade_no, \
    client_action, payer_id, expires_at, paid_at, paid_amount, refunded_amount, late_payment, \
    metadata, cashier_id, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct PaymentRow {
    id: String,
    mode: String,
    account: String,
    channel: String,
    scene: String,
    out_trade_no: String,
    amount: i64,
    currency: String,
    subject: String,
    description: Option<String>,
    status: String,
    previous_status: Option<String>,
    version: i64,
    provider_trade_no: Option<String>,
    client_action: Option<Json<Value>>,
    payer_id: Option<String>,
    expires_at: Option<i64>,
    paid_at: Option<i64>,
    paid_amount: Option<i64>,
    refunded_amount: i64,
    late_payment: bool,
    metadata: Json<Value>,
    cashier_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;
    fn try_from(r: PaymentRow) -> Result<Payment> {
        Ok(Payment {
            mode: parse("payment mode", &r.mode)?,
            channel: parse("payment channel", &r.channel)?,
            scene: parse("payment scene", &r.scene)?,
            status: parse("payment status", &r.status)?,
            previous_status: parse_opt("payment status", r.previous_status.as_deref())?,
            id: r.id,
            account: r.account,
            out_trade_no: r.out_trade_no,
            amount: Fen(r.amount),
            currency: r.currency,
            subject: r.subject,
            description: r.description,
            version: r.version,
            provider_trade_no: r.provider_trade_no,
            client_action: r.client_action.map(|j| j.0),
            payer_id: r.payer_id,
            expires_at: r.expires_at,
            paid_at: r.paid_at,
            paid_amount: r.paid_amount.map(Fen),
            refunded_amount: Fen(r.refunded_amount),
            late_payment: r.late_payment,
            metadata: r.metadata.0,
            cashier_id: r.cashier_id,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// The patchable columns, bound as `$1..=$7` in [`PaymentPatch`] field order; `NULL` keeps.
pub(crate) const PATCH_SET: &str = "provider_trade_no = COALESCE($1, provider_trade_no), \
    client_action = COALESCE($2, client_action), payer_id = COALESCE($3, payer_id), \
    expires_at = COALESCE($4, expires_at), paid_at = COALESCE($5, paid_at), \
    paid_amount = COALESCE($6, paid_amount), late_payment = COALESCE($7, late_payment)";

/// Binds a [`PaymentPatch`] as `$1..=$7` of [`PATCH_SET`].
macro_rules! bind_patch {
    ($query:expr, $patch:expr) => {
        $query
            .bind(&$patch.provider_trade_no)
            .bind($patch.client_action.as_ref().map(Json))
            .bind(&$patch.payer_id)
            .bind($patch.expires_at)
            .bind($patch.paid_at)
            .bind($patch.paid_amount.map(|f| f.0))
            .bind($patch.late_payment)
    };
}
pub(crate) use bind_patch;

pub(crate) fn payment_select(where_clause: &str) -> String {
    format!("SELECT {PAYMENT_COLS} FROM payments WHERE {where_clause}")
}

impl Store {
    /// The payment with this id, if any.
    pub async fn get_payment(&self, id: &str) -> Result<Option<Payment>> {
        let sql = payment_select("id = $1");
        let row: Option<PaymentRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Payment::try_from).transpose()
    }

    /// The payment of a merchant order number within an account.
    pub async fn get_payment_by_out_trade_no(
        &self,
        account: &str,
        out_trade_no: &str,
    ) -> Result<Option<Payment>> {
        let sql = payment_select("account = $1 AND out_trade_no = $2");
        let row: Option<PaymentRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(account)
                .bind(out_trade_no)
                .fetch_optional(pool)
                .await?
        });
        row.map(Payment::try_from).transpose()
    }

    /// Payments matching `filter`, newest first (`created_at DESC, id DESC`), `limit` (1..=1000)
    /// per page. Pass the previous page's `next_cursor` as `after`; the order is stable under
    /// concurrent inserts (keyset pagination, never offsets).
    pub async fn list_payments(
        &self,
        filter: &PaymentFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Payment>> {
        let limit = clamp_limit(limit);
        let (cursor_at, cursor_id) = match after {
            Some(c) => {
                let (at, id) = decode_cursor(c)?;
                (Some(at), Some(id))
            }
            None => (None, None),
        };
        let sql = format!(
            "{} ORDER BY created_at DESC, id DESC LIMIT $12",
            payment_select(
                "($1 IS NULL OR mode = $1) AND ($2 IS NULL OR account = $2) \
                 AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR channel = $4) \
                 AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
                 AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8)) \
                 AND ($9 IS NULL OR amount >= $9) AND ($10 IS NULL OR amount <= $10) \
                 AND ($11 IS NULL OR id = $11 OR out_trade_no = $11 OR provider_trade_no = $11)"
            )
        );
        let rows: Vec<PaymentRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(filter.mode.map(|m| m.as_str()))
                .bind(&filter.account)
                .bind(filter.status.map(|s| s.as_str()))
                .bind(filter.channel.map(|c| c.as_str()))
                .bind(filter.created_from)
                .bind(filter.created_to)
                .bind(cursor_at)
                .bind(cursor_id)
                .bind(filter.amount_min.map(|f| f.0))
                .bind(filter.amount_max.map(|f| f.0))
                .bind(&filter.reference)
                .bind(limit + 1)
                .fetch_all(pool)
                .await?
        });
        let mut items = rows
            .into_iter()
            .map(Payment::try_from)
            .collect::<Result<Vec<_>>>()?;
        let more = items.len() as i64 > limit;
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = match items.last() {
            Some(p) if more => Some(encode_cursor(p.created_at, &p.id)),
            _ => None,
        };
        Ok(Page { items, next_cursor })
    }

    /// Payments in `status` whose `expires_at` is at or before `now`, oldest expiry first: the
    /// expiry sweep's work list.
    pub async fn list_expired_payments(
        &self,
        status: PaymentStatus,
        now: i64,
        limit: u32,
    ) -> Result<Vec<Payment>> {
        let sql = format!(
            "{} ORDER BY expires_at, id LIMIT $3",
            payment_select("status = $1 AND expires_at IS NOT NULL AND expires_at <= $2")
        );
        let rows: Vec<PaymentRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(status.as_str())
                .bind(now)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// Updates columns of a payment without changing its status (a provider trade number learnt
    /// from a query, an extended expiry), bumping its version. `None` when the payment does not
    /// exist or `expected_version` did not match. No event, no audit row: not a state change.
    pub async fn patch_payment(
        &self,
        id: &str,
        expected_version: Option<i64>,
        patch: &PaymentPatch,
    ) -> Result<Option<Payment>> {
        let now = self.now_ms();
        let sql = format!(
            "UPDATE payments SET {PATCH_SET}, version = version + 1, updated_at = $8 \
             WHERE id = $9 AND ($10 IS NULL OR version = $10) RETURNING {PAYMENT_COLS}"
        );
        let row: Option<PaymentRow> = with_pool!(self, |pool, d| {
            bind_patch!(sqlx::query_as(&sql), patch)
                .bind(now)
                .bind(id)
                .bind(expected_version)
                .fetch_optional(pool)
                .await?
        });
        row.map(Payment::try_from).transpose()
    }
}
