//! The notification inbox: every provider callback the gateway accepts to look at is kept (raw,
//! bounded) with what verification and processing concluded, written in the same transaction as
//! its effects.

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

/// A verified notification, recorded in the same unit of work as the change it causes
/// (`PaymentPlan::inbox`, `RefundPlan::inbox`): the inbox row, its outcome and the dedup row
/// commit together with the state change, or not at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxEntry {
    /// The inbox row's id, known before the unit runs so its audit rows can name it.
    pub id: String,
    pub notification: NewNotification,
    /// The provider's notification id, remembered for deduplication unless it mismatched.
    pub notify_id: Option<String>,
    /// Set when the decision found the notification contradicting the order: it changes
    /// nothing and is recorded as `mismatch` with this reason.
    pub mismatch: Option<String>,
}

impl InboxEntry {
    pub fn new(notification: NewNotification, notify_id: Option<String>) -> InboxEntry {
        InboxEntry {
            id: crate::new_id("ntf"),
            notification,
            notify_id,
            mismatch: None,
        }
    }
}

/// How an [`InboxEntry`] was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxRecord {
    pub id: String,
    /// `applied`, `no_change`, `duplicate` (no change, and its notify id was seen before) or
    /// `mismatch`.
    pub outcome: &'static str,
    pub reason: Option<String>,
}

/// The one INSERT of an inbox row with its outcome, shared by [`Store::record_notification`]
/// and the units of work.
pub(crate) const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (id, channel, account, \
    path, headers, body, remote_addr, received_at, verified, outcome, reason, notify_id, \
    payment_id, processed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $8)";

/// Records `$entry` inside `$tx` after its plan ran (`$changed`: whether the state moved) and
/// evaluates to its [`InboxRecord`].
macro_rules! record_inbox {
    ($tx:expr, $entry:expr, $changed:expr, $payment_id:expr, $now:expr) => {{
        let entry: &$crate::inbox::InboxEntry = $entry;
        let n = &entry.notification;
        let id = entry.id.clone();
        let notify_id = entry
            .notify_id
            .as_ref()
            .filter(|_| entry.mismatch.is_none());
        let mut seen = false;
        if let Some(notify_id) = notify_id {
            seen = sqlx::query(
                "INSERT INTO notification_dedup (account, notify_id, notification_id, \
                 created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (account, notify_id) DO NOTHING",
            )
            .bind(&n.account)
            .bind(notify_id)
            .bind(&id)
            .bind($now)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
                == 0;
        }
        let (outcome, reason) = match (&entry.mismatch, $changed, seen) {
            (Some(m), _, _) => ("mismatch", Some(m.clone())),
            (None, true, _) => ("applied", None),
            (None, false, true) => ("duplicate", None),
            (None, false, false) => ("no_change", None),
        };
        sqlx::query($crate::inbox::INSERT_NOTIFICATION)
            .bind(&id)
            .bind(n.channel.as_str())
            .bind(&n.account)
            .bind(&n.path)
            .bind(sqlx::types::Json(&n.headers))
            .bind(&n.body)
            .bind(&n.remote_addr)
            .bind($now)
            .bind(true)
            .bind(outcome)
            .bind(&reason)
            .bind(notify_id)
            .bind($payment_id)
            .execute(&mut *$tx)
            .await?;
        $crate::inbox::InboxRecord {
            id,
            outcome,
            reason,
        }
    }};
}
pub(crate) use record_inbox;

impl Store {
    /// Records a notification that changes nothing (refused, unverified, naming no known order,
    /// or the raw copy kept when applying it failed) with its outcome, in one statement;
    /// returns its id (`ntf_…`). Only the units of work remember notify ids for deduplication.
    pub async fn record_notification(
        &self,
        n: &NewNotification,
        outcome: &NotificationOutcome,
    ) -> Result<String> {
        let id = crate::new_id("ntf");
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(INSERT_NOTIFICATION)
                .bind(&id)
                .bind(n.channel.as_str())
                .bind(&n.account)
                .bind(&n.path)
                .bind(Json(&n.headers))
                .bind(&n.body)
                .bind(&n.remote_addr)
                .bind(now)
                .bind(outcome.verified)
                .bind(&outcome.outcome)
                .bind(&outcome.reason)
                .bind(&outcome.notify_id)
                .bind(&outcome.payment_id)
                .execute(pool)
                .await?;
        });
        Ok(id)
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

    /// Retention: deletes notifications that never verified received before
    /// `unverified_before`, and all others (with their dedup rows) received before
    /// `verified_before`. Returns how many inbox rows went.
    pub async fn purge_notifications(
        &self,
        unverified_before: i64,
        verified_before: i64,
    ) -> Result<u64> {
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let gone = sqlx::query(
                "DELETE FROM notifications WHERE received_at < $2 \
                 OR (received_at < $1 AND verified IS NOT TRUE)",
            )
            .bind(unverified_before)
            .bind(verified_before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("DELETE FROM notification_dedup WHERE created_at < $1")
                .bind(verified_before)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(gone)
        })
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
