//! What the operator watches: queue depths and ages (jobs, webhook deliveries), open
//! reconciliation discrepancies, the connection pool, and whether the schema is current. Read
//! only, cheap (each query walks an index or the few live rows), sampled when metrics are
//! scraped and by the readiness check.

use crate::db::with_pool;
use crate::error::Result;
use crate::Store;

/// Live jobs of one kind at a moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobKindStats {
    pub kind: String,
    /// Claimable now: scheduled and due, or running under a lapsed lease.
    pub due: i64,
    /// Running under a live lease.
    pub running: i64,
    /// Due for longer than the `overdue_after_ms` the caller asked with: no worker took them.
    pub overdue: i64,
    /// When the longest-waiting due job became due (unix ms).
    pub oldest_due_at: Option<i64>,
}

/// Webhook deliveries not yet delivered nor given up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryBacklog {
    pub pending: i64,
    /// When the oldest pending delivery was created (unix ms).
    pub oldest_created_at: Option<i64>,
}

/// The connection pool right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (idle or in use).
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}

impl Store {
    /// Live jobs by kind at `now`; a due job waiting longer than `overdue_after_ms` is overdue.
    pub async fn job_stats(&self, now: i64, overdue_after_ms: i64) -> Result<Vec<JobKindStats>> {
        let rows: Vec<(String, i64, i64, i64, Option<i64>)> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT kind, \
                   CAST(SUM(CASE WHEN (state = 'scheduled' AND run_at <= $1) \
                     OR (state = 'running' AND lease_until <= $1) THEN 1 ELSE 0 END) AS BIGINT), \
                   CAST(SUM(CASE WHEN state = 'running' AND lease_until > $1 \
                     THEN 1 ELSE 0 END) AS BIGINT), \
                   CAST(SUM(CASE WHEN (state = 'scheduled' AND run_at <= $2) \
                     OR (state = 'running' AND lease_until <= $2) THEN 1 ELSE 0 END) AS BIGINT), \
                   MIN(CASE WHEN state = 'scheduled' AND run_at <= $1 THEN run_at \
                     WHEN state = 'running' AND lease_until <= $1 THEN lease_until END) \
                 FROM jobs WHERE state IN ('scheduled', 'running') GROUP BY kind ORDER BY kind",
            )
            .bind(now)
            .bind(now - overdue_after_ms)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(kind, due, running, overdue, oldest_due_at)| JobKindStats {
                    kind,
                    due,
                    running,
                    overdue,
                    oldest_due_at,
                },
            )
            .collect())
    }

    /// Pending webhook deliveries per endpoint, with the oldest one's creation time.
    pub async fn delivery_backlog(&self) -> Result<Vec<(String, DeliveryBacklog)>> {
        let rows: Vec<(String, i64, Option<i64>)> = with_pool!(self, |pool, d| {
            sqlx::query_as(
                "SELECT endpoint, COUNT(*), MIN(created_at) FROM webhook_deliveries \
                 WHERE status = 'pending' GROUP BY endpoint ORDER BY endpoint",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(endpoint, pending, oldest_created_at)| {
                (
                    endpoint,
                    DeliveryBacklog {
                        pending,
                        oldest_created_at,
                    },
                )
            })
            .collect())
    }

    /// The pool's connections now (no query).
    pub fn pool_stats(&self) -> PoolStats {
        let (open, idle, max) = match self.backend() {
            crate::db::Backend::Sqlite(p) => {
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
            crate::db::Backend::Postgres(p) => {
                (p.size(), p.num_idle(), p.options().get_max_connections())
            }
        };
        PoolStats {
            open,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
            max,
        }
    }

    /// Whether every migration this build knows has been applied successfully. A newer
    /// instance may have applied more: this build's schema is still all there.
    pub async fn migrations_current(&self) -> Result<bool> {
        let (applied, known): (Vec<i64>, Vec<i64>) = with_pool!(self, |pool, d| {
            let migrator = match d {
                crate::db::Dialect::Sqlite => &crate::SQLITE_MIGRATOR,
                crate::db::Dialect::Postgres => &crate::POSTGRES_MIGRATOR,
            };
            let applied: Vec<i64> =
                sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
                    .fetch_all(pool)
                    .await?;
            let known = migrator
                .iter()
                .filter(|m| !m.migration_type.is_down_migration())
                .map(|m| m.version)
                .collect();
            (applied, known)
        });
        Ok(known.iter().all(|v| applied.contains(v)))
    }
}
