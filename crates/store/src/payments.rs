//! Payments: insert, lookups, filtered keyset listing, and the one transition primitive.

use paybridge_core::{Channel, Fen, Mode, PaymentStatus, Scene};
use serde_json::Value;
use sqlx::types::Json;

use crate::db::{in_list, with_pool};
use crate::error::{conflict_or, Result, StoreError};
use crate::model::{
    clamp_limit, decode_cursor, encode_cursor, insert_audit, insert_event, parse, parse_opt,
    Applied, Audit, NewEvent, Page,
};
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
    /// Incremented by every transition; usable as an optimistic-lock token.
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
}

pub(crate) const PAYMENT_COLS: &str = "id, mode, account, channel, scene, out_trade_no, amount, \
    currency, subject, description, status, previous_status, version, provider_trade_no, \
    client_action, payer_id, expires_at, paid_at, paid_amount, refunded_amount, late_payment, \
    metadata, created_at, updated_at";

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
    /// Inserts a payment in `created` (version 0) and audits its creation.
    ///
    /// A second payment with the same `(account, out_trade_no)` fails with
    /// [`StoreError::Conflict`] (`what = "out_trade_no"`).
    pub async fn insert_payment(&self, new: NewPayment, audit: &Audit) -> Result<Payment> {
        if new.amount.0 <= 0 {
            return Err(StoreError::Invalid(format!(
                "payment amount must be positive, got {} fen",
                new.amount.0
            )));
        }
        let id = crate::new_id("pay");
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO payments (id, mode, account, channel, scene, out_trade_no, amount, \
             currency, subject, description, status, version, expires_at, refunded_amount, \
             late_payment, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, 0, $12, 0, $13, $14, $15, $15) RETURNING {PAYMENT_COLS}"
        );
        let row: PaymentRow = with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let row = sqlx::query_as::<_, PaymentRow>(&sql)
                .bind(&id)
                .bind(new.mode.as_str())
                .bind(&new.account)
                .bind(new.channel.as_str())
                .bind(new.scene.as_str())
                .bind(&new.out_trade_no)
                .bind(new.amount.0)
                .bind(&new.currency)
                .bind(&new.subject)
                .bind(&new.description)
                .bind(PaymentStatus::Created.as_str())
                .bind(new.expires_at)
                .bind(false)
                .bind(Json(&new.metadata))
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "out_trade_no", &new.out_trade_no))?;
            insert_audit!(
                tx,
                "payment",
                &id,
                None::<String>,
                PaymentStatus::Created.as_str(),
                0_i64,
                audit,
                now
            );
            tx.commit().await?;
            row
        });
        row.try_into()
    }

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
            "{} ORDER BY created_at DESC, id DESC LIMIT $9",
            payment_select(
                "($1 IS NULL OR mode = $1) AND ($2 IS NULL OR account = $2) \
                 AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR channel = $4) \
                 AND ($5 IS NULL OR created_at >= $5) AND ($6 IS NULL OR created_at < $6) \
                 AND ($7 IS NULL OR created_at < $7 OR (created_at = $7 AND id < $8))"
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

    /// THE payment state change. In one transaction:
    /// `UPDATE payments SET status = to, version = version + 1, <patch> WHERE id = ? AND status IN
    /// (PaymentStatus::allowed_from(to)) [AND version = expected_version]`; when a row changed,
    /// the event built by `event` from the new row goes to the outbox (with its deliveries) and
    /// an audit row is written.
    ///
    /// Returns [`Applied::No`] when nothing changed: the payment is not in a state `to` may be
    /// entered from (already applied by a concurrent caller, or illegal), the version did not
    /// match, or the id is unknown. Concurrent callers racing for the same transition apply it
    /// exactly once, on both dialects and across instances.
    pub async fn transition_payment<F>(
        &self,
        id: &str,
        expected_version: Option<i64>,
        to: PaymentStatus,
        patch: &PaymentPatch,
        event: F,
        audit: &Audit,
    ) -> Result<Applied<Payment>>
    where
        F: FnOnce(&Payment) -> Option<NewEvent> + Send,
    {
        let from = PaymentStatus::allowed_from(to);
        if from.is_empty() {
            return Ok(Applied::No);
        }
        let now = self.now_ms();
        let sql = format!(
            "UPDATE payments SET {PATCH_SET}, previous_status = status, status = $11, \
             version = version + 1, updated_at = $8 \
             WHERE id = $9 AND ($10 IS NULL OR version = $10) AND status IN ({}) \
             RETURNING {PAYMENT_COLS}",
            in_list(from.iter().map(|s| s.as_str()))
        );
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let row: Option<PaymentRow> = bind_patch!(sqlx::query_as(&sql), patch)
                .bind(now)
                .bind(id)
                .bind(expected_version)
                .bind(to.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(Applied::No);
            };
            let payment = Payment::try_from(row)?;
            insert_audit!(
                tx,
                "payment",
                &payment.id,
                payment.previous_status.map(|s| s.as_str()),
                payment.status.as_str(),
                payment.version,
                audit,
                now
            );
            if let Some(ev) = event(&payment) {
                insert_event!(
                    tx,
                    ev,
                    payment.mode.as_str(),
                    &payment.account,
                    Some(payment.id.as_str()),
                    None::<&str>,
                    now
                );
            }
            tx.commit().await?;
            Ok(Applied::Yes(payment))
        })
    }
}
