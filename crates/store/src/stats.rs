//! The console dashboard's figures: payments per account, channel and status over a period;
//! notifications that failed verification; the webhook backlog; open reconciliation
//! discrepancies; jobs overdue. Each is one grouped query.

use paybridge_core::{Channel, Fen, Mode, PaymentStatus};

use crate::db::with_pool;
use crate::error::Result;
use crate::model::parse;
use crate::Store;

/// Payments of one account, channel and status created in a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentStat {
    pub account: String,
    pub channel: Channel,
    pub status: PaymentStatus,
    pub count: i64,
    /// Sum of the amounts asked for.
    pub amount: Fen,
}

/// Webhook deliveries of a mode not yet delivered, per endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookBacklog {
    pub endpoint: String,
    /// Still being retried.
    pub pending: i64,
    /// Given up (need a redelivery).
    pub failed: i64,
}

#[derive(sqlx::FromRow)]
struct PaymentStatRow {
    account: String,
    channel: String,
    status: String,
    count: i64,
    amount: i64,
}

#[derive(sqlx::FromRow)]
struct BacklogRow {
    endpoint: String,
    pending: i64,
    failed: i64,
}

impl Store {
    /// Payments of `mode` created at or after `since`, grouped by account, channel and status.
    pub async fn payment_stats(&self, mode: Mode, since: i64) -> Result<Vec<PaymentStat>> {
        let rows: Vec<PaymentStatRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT account, channel, status, COUNT(*) AS count, \
                 CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount FROM payments \
                 WHERE mode = $1 AND created_at >= $2 \
                 GROUP BY account, channel, status ORDER BY account, channel, status",
            )
            .bind(mode.as_str())
            .bind(since)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(PaymentStat {
                    channel: parse("payment channel", &r.channel)?,
                    status: parse("payment status", &r.status)?,
                    account: r.account,
                    count: r.count,
                    amount: Fen(r.amount),
                })
            })
            .collect()
    }

    /// Notifications received since `since` that failed verification, per account.
    pub async fn failed_verifications(&self, since: i64) -> Result<Vec<(String, i64)>> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT account, COUNT(*) FROM notifications \
                 WHERE verified = $1 AND received_at >= $2 GROUP BY account ORDER BY account",
            )
            .bind(false)
            .bind(since)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Undelivered webhook deliveries of events of `mode`, per endpoint.
    pub async fn webhook_backlog(&self, mode: Mode) -> Result<Vec<WebhookBacklog>> {
        let rows: Vec<BacklogRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT w.endpoint, \
                 CAST(SUM(CASE WHEN w.status = 'pending' THEN 1 ELSE 0 END) AS BIGINT) AS pending, \
                 CAST(SUM(CASE WHEN w.status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) AS failed \
                 FROM webhook_deliveries w JOIN events e ON e.id = w.event_id \
                 WHERE e.mode = $1 AND w.status <> 'delivered' \
                 GROUP BY w.endpoint ORDER BY w.endpoint",
            )
            .bind(mode.as_str())
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| WebhookBacklog {
                endpoint: r.endpoint,
                pending: r.pending,
                failed: r.failed,
            })
            .collect())
    }

    /// Open reconciliation discrepancies, per account.
    pub async fn open_discrepancies(&self) -> Result<Vec<(String, i64)>> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT account, COUNT(*) FROM reconciliation_discrepancies \
                 WHERE resolution IN ('open', 'heal_failed') GROUP BY account ORDER BY account",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Scheduled jobs whose time passed before `due_before` (a worker should have taken them),
    /// per kind.
    pub async fn overdue_jobs(&self, due_before: i64) -> Result<Vec<(String, i64)>> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT kind, COUNT(*) FROM jobs WHERE state = 'scheduled' AND run_at < $1 \
                 GROUP BY kind ORDER BY kind",
            )
            .bind(due_before)
            .fetch_all(pool)
            .await?
        }))
    }
}
