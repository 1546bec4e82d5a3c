//! The notification inbox: every provider callback is stored raw before anything interprets it,
//! then annotated with what verification and processing concluded.

use paybridge_core::Channel;
use sqlx::types::Json;

use crate::db::with_pool;
use crate::error::{Result, StoreError};
use crate::model::{clamp_limit, parse};
use crate::Store;

/// A raw inbound notification, exactly as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub channel: Channel,
    pub account: String,
    pub path: String,
    /// Header name/value pairs in arrival order (duplicates kept).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote_addr: Option<String>,
}

/// What the gateway concluded about a stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationOutcome {
    /// The signature (and decryption) checked out.
    pub verified: bool,
    /// Short machine-readable result: `applied`, `duplicate`, `mismatch`, `forged`, `unknown_order`...
    pub outcome: String,
    /// Human-readable detail (which field mismatched, which key serial was unknown).
    pub reason: Option<String>,
    /// The provider's notification id (Alipay `notify_id`, WeChat v3 `id`); when given with
    /// `verified`, it is recorded for [`Store::notification_seen`].
    pub notify_id: Option<String>,
    /// The payment it concerned, once known.
    pub payment_id: Option<String>,
}

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub channel: Channel,
    pub account: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub remote_addr: Option<String>,
    pub received_at: i64,
    /// `None` until an outcome is recorded.
    pub verified: Option<bool>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub notify_id: Option<String>,
    pub payment_id: Option<String>,
    pub processed_at: Option<i64>,
}

const NOTIFICATION_COLS: &str = "id, channel, account, path, headers, body, remote_addr, \
    received_at, verified, outcome, reason, notify_id, payment_id, processed_at";

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: String,
    channel: String,
    account: String,
    path: String,
    headers: Json<Vec<(String, String)>>,
    body: Vec<u8>,
    remote_addr: Option<String>,
    received_at: i64,
    verified: Option<bool>,
    outcome: Option<String>,
    reason: Option<String>,
    notify_id: Option<String>,
    payment_id: Option<String>,
    processed_at: Option<i64>,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;
    fn try_from(r: NotificationRow) -> Result<Notification> {
        Ok(Notification {
            channel: parse("notification channel", &r.channel)?,
            id: r.id,
            account: r.account,
            path: r.path,
            headers: r.headers.0,
            body: r.body,
            remote_addr: r.remote_addr,
            received_at: r.received_at,
            verified: r.verified,
            outcome: r.outcome,
            reason: r.reason,
            notify_id: r.notify_id,
            payment_id: r.payment_id,
            processed_at: r.processed_at,
        })
    }
}

impl Store {
    /// Stores a raw notification before it is processed; returns its id (`ntf_…`).
    pub async fn insert_notification(&self, n: &NewNotification) -> Result<String> {
        let id = crate::new_id("ntf");
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(
                "INSERT INTO notifications (id, channel, account, path, headers, body, \
                 remote_addr, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&id)
            .bind(n.channel.as_str())
            .bind(&n.account)
            .bind(&n.path)
            .bind(Json(&n.headers))
            .bind(&n.body)
            .bind(&n.remote_addr)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(id)
    }

    /// Records the verification and processing outcome of a stored notification. When the
    /// notification is verified and carries a provider notify id, that id is remembered for
    /// deduplication. Returns `false` when that notify id had already been recorded by an
    /// earlier notification (a duplicate), `true` otherwise.
    pub async fn record_notification_outcome(
        &self,
        id: &str,
        outcome: &NotificationOutcome,
    ) -> Result<bool> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let row: Option<(String,)> = sqlx::query_as(
                "UPDATE notifications SET verified = $1, outcome = $2, reason = $3, \
                 notify_id = $4, payment_id = COALESCE($5, payment_id), processed_at = $6 \
                 WHERE id = $7 RETURNING account",
            )
            .bind(outcome.verified)
            .bind(&outcome.outcome)
            .bind(&outcome.reason)
            .bind(&outcome.notify_id)
            .bind(&outcome.payment_id)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((account,)) = row else {
                return Err(StoreError::NotFound {
                    what: "notification",
                    id: id.to_string(),
                });
            };
            let mut first = true;
            if let (true, Some(notify_id)) = (outcome.verified, &outcome.notify_id) {
                first = sqlx::query(
                    "INSERT INTO notification_dedup (account, notify_id, notification_id, \
                     created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (account, notify_id) DO NOTHING",
                )
                .bind(&account)
                .bind(notify_id)
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
            }
            tx.commit().await?;
            Ok(first)
        })
    }

    /// Whether a verified notification with this provider notify id was already recorded for
    /// the account.
    pub async fn notification_seen(&self, account: &str, notify_id: &str) -> Result<bool> {
        let row: Option<(String,)> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT notification_id FROM notification_dedup \
                 WHERE account = $1 AND notify_id = $2",
            )
            .bind(account)
            .bind(notify_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.is_some())
    }

    /// A stored notification with its raw headers and body.
    pub async fn get_notification(&self, id: &str) -> Result<Option<Notification>> {
        let sql = format!("SELECT {NOTIFICATION_COLS} FROM notifications WHERE id = $1");
        let row: Option<NotificationRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Notification::try_from).transpose()
    }

    /// The notifications recorded for a payment, oldest first.
    pub async fn list_payment_notifications(&self, payment_id: &str) -> Result<Vec<Notification>> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications WHERE payment_id = $1 \
             ORDER BY received_at, id"
        );
        let rows: Vec<NotificationRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(payment_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Notification::try_from).collect()
    }

    /// The most recent notifications (optionally of one account), newest first: what an
    /// operator looks at when callbacks misbehave.
    pub async fn list_recent_notifications(
        &self,
        account: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let sql = format!(
            "SELECT {NOTIFICATION_COLS} FROM notifications WHERE ($1 IS NULL OR account = $1) \
             ORDER BY received_at DESC, id DESC LIMIT $2"
        );
        let rows: Vec<NotificationRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(account)
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Notification::try_from).collect()
    }
}
