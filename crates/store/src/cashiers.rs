//! Hosted cashiers (收银台): the merchant's order as the buyer sees it before choosing a wallet.
//! A cashier holds no money state; the payments it leads to (one per wallet order, through the
//! usual units of work) do, and point back at it with `payments.cashier_id`. Created by
//! [`Store::begin_cashier`] (in `work.rs`, with its idempotency key).

use paybridge_core::{Fen, Mode};
use serde_json::Value;
use sqlx::types::Json;

use crate::db::with_pool;
use crate::error::Result;
use crate::model::parse;
use crate::payments::{payment_select, PaymentRow};
use crate::{Payment, Store};

/// A cashier as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Cashier {
    pub id: String,
    /// The unguessable part of the cashier URL.
    pub token: String,
    pub mode: Mode,
    /// The API key's merchant name, shown to the buyer.
    pub merchant: String,
    /// The merchant's order number, unique per merchant and mode.
    pub out_trade_no: String,
    pub amount: Fen,
    pub currency: String,
    pub subject: String,
    pub description: Option<String>,
    pub return_url: Option<String>,
    /// The Alipay account its Alipay orders go to; `None`: Alipay is not offered.
    pub alipay_account: Option<String>,
    /// The WeChat Pay account its WeChat orders go to; `None`: WeChat Pay is not offered.
    pub wechat_account: Option<String>,
    pub expires_at: i64,
    /// The payment that keeps the money (the first one paid), once known.
    pub paid_payment_id: Option<String>,
    pub metadata: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A cashier to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCashier {
    pub token: String,
    pub mode: Mode,
    pub merchant: String,
    pub out_trade_no: String,
    pub amount: Fen,
    pub currency: String,
    pub subject: String,
    pub description: Option<String>,
    pub return_url: Option<String>,
    pub alipay_account: Option<String>,
    pub wechat_account: Option<String>,
    pub expires_at: i64,
    pub metadata: Value,
}

pub(crate) const CASHIER_COLS: &str = "id, token, mode, merchant, out_trade_no, amount, currency, \
    subject, description, return_url, alipay_account, wechat_account, expires_at, \
    paid_payment_id, metadata, created_at, updated_at";

#[derive(sqlx::FromRow)]
pub(crate) struct CashierRow {
    id: String,
    token: String,
    mode: String,
    merchant: String,
    out_trade_no: String,
    amount: i64,
    currency: String,
    subject: String,
    description: Option<String>,
    return_url: Option<String>,
    alipay_account: Option<String>,
    wechat_account: Option<String>,
    expires_at: i64,
    paid_payment_id: Option<String>,
    metadata: Json<Value>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<CashierRow> for Cashier {
    type Error = crate::StoreError;
    fn try_from(r: CashierRow) -> Result<Cashier> {
        Ok(Cashier {
            mode: parse("cashier mode", &r.mode)?,
            id: r.id,
            token: r.token,
            merchant: r.merchant,
            out_trade_no: r.out_trade_no,
            amount: Fen(r.amount),
            currency: r.currency,
            subject: r.subject,
            description: r.description,
            return_url: r.return_url,
            alipay_account: r.alipay_account,
            wechat_account: r.wechat_account,
            expires_at: r.expires_at,
            paid_payment_id: r.paid_payment_id,
            metadata: r.metadata.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    pub async fn get_cashier(&self, id: &str) -> Result<Option<Cashier>> {
        self.cashier_where("id = $1", id).await
    }

    /// The cashier a buyer's URL names.
    pub async fn get_cashier_by_token(&self, token: &str) -> Result<Option<Cashier>> {
        self.cashier_where("token = $1", token).await
    }

    async fn cashier_where(&self, clause: &str, value: &str) -> Result<Option<Cashier>> {
        let sql = format!("SELECT {CASHIER_COLS} FROM cashiers WHERE {clause}");
        let row: Option<CashierRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(value)
                .fetch_optional(pool)
                .await?
        });
        row.map(Cashier::try_from).transpose()
    }

    /// The payments a cashier led to (one per wallet order), oldest first.
    pub async fn list_cashier_payments(&self, cashier_id: &str) -> Result<Vec<Payment>> {
        let sql = payment_select("cashier_id = $1 ORDER BY created_at, id");
        let rows: Vec<PaymentRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(cashier_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// Names `payment_id` as the payment that keeps the cashier's money unless another was
    /// named first (one conditional update, so two payments settling at once cannot both win).
    /// Returns the payment that keeps it; `None` when the cashier does not exist.
    pub async fn claim_cashier_payment(
        &self,
        cashier_id: &str,
        payment_id: &str,
    ) -> Result<Option<String>> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE cashiers SET paid_payment_id = $1, updated_at = $2 \
                 WHERE id = $3 AND paid_payment_id IS NULL",
            )
            .bind(payment_id)
            .bind(now)
            .bind(cashier_id)
            .execute(pool)
            .await?;
        });
        Ok(self
            .get_cashier(cashier_id)
            .await?
            .and_then(|c| c.paid_payment_id))
    }
}
