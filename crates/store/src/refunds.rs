//! Refunds: creation guarded against overspending, and the refund transition that moves the
//! payment's refunded amount and status in the same transaction.

use paybridge_core::{Fen, Mode, PaymentStatus, RefundStatus};

use crate::db::{in_list, with_pool};
use crate::error::{conflict_or, Result, StoreError};
use crate::model::{
    clamp_limit, insert_audit, insert_event, parse, parse_opt, Applied, Audit, NewEvent,
};
use crate::payments::{payment_select, PaymentRow, PAYMENT_COLS};
use crate::{Payment, Store};

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

/// The outcome of an applied refund transition.
#[derive(Debug, Clone, PartialEq)]
pub struct RefundChange {
    pub refund: Refund,
    /// The payment after the change: present when the refund succeeded (its `refunded_amount`
    /// grew and it became `partially_refunded` or `refunded`).
    pub payment: Option<Payment>,
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
    /// Creates a `pending` refund, atomically checking that the non-failed refunds of the
    /// payment plus this one do not exceed what was paid: the payment row is locked
    /// (`FOR UPDATE` on PostgreSQL, the write lock of `BEGIN IMMEDIATE` on SQLite), so
    /// concurrent refunds cannot overspend.
    ///
    /// Errors: [`StoreError::NotFound`] (payment), [`StoreError::NotRefundable`] (payment not
    /// paid/partially refunded), [`StoreError::RefundExceedsPaid`], [`StoreError::Conflict`]
    /// (`out_refund_no` already used on this payment), [`StoreError::Invalid`] (amount ≤ 0).
    pub async fn create_refund<F>(&self, new: NewRefund, event: F, audit: &Audit) -> Result<Refund>
    where
        F: FnOnce(&Refund) -> Option<NewEvent> + Send,
    {
        if new.amount.0 <= 0 {
            return Err(StoreError::Invalid(format!(
                "refund amount must be positive, got {} fen",
                new.amount.0
            )));
        }
        let now = self.now_ms();
        let id = crate::new_id("re");
        let insert = format!(
            "INSERT INTO refunds (id, payment_id, mode, account, out_refund_no, amount, reason, \
             status, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, \
             $9, $9) RETURNING {REFUND_COLS}"
        );
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let lock = format!("{}{}", payment_select("id = $1"), d.for_update());
            let payment: Option<PaymentRow> = sqlx::query_as(&lock)
                .bind(&new.payment_id)
                .fetch_optional(&mut *tx)
                .await?;
            let payment = Payment::try_from(payment.ok_or_else(|| StoreError::NotFound {
                what: "payment",
                id: new.payment_id.clone(),
            })?)?;
            if !payment.status.is_paid() {
                return Err(StoreError::NotRefundable {
                    payment_id: payment.id,
                    status: payment.status,
                });
            }
            let (committed,): (i64,) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refunds \
                 WHERE payment_id = $1 AND status <> 'failed'",
            )
            .bind(&payment.id)
            .fetch_one(&mut *tx)
            .await?;
            let paid = payment.paid_amount.unwrap_or(payment.amount).0;
            let available = paid.saturating_sub(committed);
            if new.amount.0 > available {
                return Err(StoreError::RefundExceedsPaid {
                    payment_id: payment.id,
                    requested: new.amount,
                    available: Fen(available),
                });
            }
            let row: RefundRow = sqlx::query_as(&insert)
                .bind(&id)
                .bind(&payment.id)
                .bind(payment.mode.as_str())
                .bind(&payment.account)
                .bind(&new.out_refund_no)
                .bind(new.amount.0)
                .bind(&new.reason)
                .bind(RefundStatus::Pending.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| conflict_or(e, "out_refund_no", &new.out_refund_no))?;
            let refund = Refund::try_from(row)?;
            insert_audit!(
                tx,
                "refund",
                &refund.id,
                None::<String>,
                refund.status.as_str(),
                refund.version,
                audit,
                now
            );
            if let Some(ev) = event(&refund) {
                insert_event!(
                    tx,
                    ev,
                    refund.mode.as_str(),
                    &refund.account,
                    Some(refund.payment_id.as_str()),
                    Some(refund.id.as_str()),
                    now
                );
            }
            tx.commit().await?;
            Ok(refund)
        })
    }

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

    /// The refund state change, the refund counterpart of [`Store::transition_payment`]. When
    /// `to` is `succeeded`, the same transaction adds the refund amount to the payment's
    /// `refunded_amount` and moves the payment to `refunded` (fully refunded) or
    /// `partially_refunded`, auditing both rows. The event (built from the new refund row)
    /// carries both ids.
    pub async fn transition_refund<F>(
        &self,
        id: &str,
        expected_version: Option<i64>,
        to: RefundStatus,
        patch: &RefundPatch,
        event: F,
        audit: &Audit,
    ) -> Result<Applied<RefundChange>>
    where
        F: FnOnce(&Refund) -> Option<NewEvent> + Send,
    {
        let from = RefundStatus::allowed_from(to);
        if from.is_empty() {
            return Ok(Applied::No);
        }
        let now = self.now_ms();
        let update_refund = format!(
            "UPDATE refunds SET previous_status = status, status = $1, version = version + 1, \
             provider_refund_no = COALESCE($2, provider_refund_no), \
             failure_reason = COALESCE($3, failure_reason), \
             succeeded_at = COALESCE($4, succeeded_at), updated_at = $5 \
             WHERE id = $6 AND status IN ({}) AND ($7 IS NULL OR version = $7) \
             RETURNING {REFUND_COLS}",
            in_list(from.iter().map(|s| s.as_str()))
        );
        // Both targets share the same legal sources (paid, partially_refunded).
        let refundable = in_list(
            PaymentStatus::allowed_from(PaymentStatus::Refunded)
                .iter()
                .map(|s| s.as_str()),
        );
        let update_payment = format!(
            "UPDATE payments SET previous_status = status, \
             status = CASE WHEN refunded_amount + $1 >= COALESCE(paid_amount, amount) \
                      THEN 'refunded' ELSE 'partially_refunded' END, \
             refunded_amount = refunded_amount + $1, version = version + 1, updated_at = $2 \
             WHERE id = $3 AND status IN ({refundable}) RETURNING {PAYMENT_COLS}"
        );
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            // The payment row first, as every unit of work locks them: refund settlement racing
            // refund creation on PostgreSQL must not take the two locks in opposite orders.
            sqlx::query(&format!(
                "SELECT id FROM payments WHERE id = (SELECT payment_id FROM refunds WHERE id = $1){}",
                d.for_update()
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let row: Option<RefundRow> = sqlx::query_as(&update_refund)
                .bind(to.as_str())
                .bind(&patch.provider_refund_no)
                .bind(&patch.failure_reason)
                .bind(patch.succeeded_at)
                .bind(now)
                .bind(id)
                .bind(expected_version)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(Applied::No);
            };
            let refund = Refund::try_from(row)?;
            insert_audit!(
                tx,
                "refund",
                &refund.id,
                refund.previous_status.map(|s| s.as_str()),
                refund.status.as_str(),
                refund.version,
                audit,
                now
            );
            let mut payment = None;
            if to == RefundStatus::Succeeded {
                let row: Option<PaymentRow> = sqlx::query_as(&update_payment)
                    .bind(refund.amount.0)
                    .bind(now)
                    .bind(&refund.payment_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                // create_refund guarantees the payment was refundable with room for this amount;
                // anything else means the rows were edited behind our back: write nothing.
                let row = row.ok_or_else(|| {
                    StoreError::Invariant(format!(
                        "refund {} succeeded but payment {} is not refundable",
                        refund.id, refund.payment_id
                    ))
                })?;
                let p = Payment::try_from(row)?;
                insert_audit!(
                    tx,
                    "payment",
                    &p.id,
                    p.previous_status.map(|s| s.as_str()),
                    p.status.as_str(),
                    p.version,
                    audit,
                    now
                );
                payment = Some(p);
            }
            if let Some(ev) = event(&refund) {
                insert_event!(
                    tx,
                    ev,
                    refund.mode.as_str(),
                    &refund.account,
                    Some(refund.payment_id.as_str()),
                    Some(refund.id.as_str()),
                    now
                );
            }
            tx.commit().await?;
            Ok(Applied::Yes(RefundChange { refund, payment }))
        })
    }
}
