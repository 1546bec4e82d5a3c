//! Idempotency keys: the same key with the same request gets the same answer; the same key with
//! another request is refused; a key whose request is still running is reported as such.

use crate::db::with_pool;
use crate::error::{Result, StoreError};
use crate::Store;

/// What [`Store::begin_idempotent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyBegin {
    /// First use (or a takeover of an abandoned attempt): the caller runs the request and then
    /// calls [`Store::complete_idempotent`] (or [`Store::release_idempotent`] on failure).
    New,
    /// Already completed with the same request: answer with this stored response.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used with a different request.
    Mismatch,
    /// The same request is being processed right now by another call.
    InProgress,
}

#[derive(sqlx::FromRow)]
struct StoredKey {
    request_hash: String,
    state: String,
    response_status: Option<i64>,
    response_body: Option<Vec<u8>>,
    updated_at: i64,
}

impl Store {
    /// Starts an idempotent request. `scope` separates key spaces (the API key id or merchant),
    /// `request_hash` identifies the request (method, path, body). An in-progress entry whose
    /// last update is older than `stale_after_ms` (its process died) is taken over as `New`.
    pub async fn begin_idempotent(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        now: i64,
        stale_after_ms: i64,
    ) -> Result<IdempotencyBegin> {
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (scope, key, request_hash, state, created_at, \
                 updated_at) VALUES ($1, $2, $3, 'in_progress', $4, $4) \
                 ON CONFLICT (scope, key) DO NOTHING",
            )
            .bind(scope)
            .bind(key)
            .bind(request_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                tx.commit().await?;
                return Ok(IdempotencyBegin::New);
            }
            let sql = format!(
                "SELECT request_hash, state, response_status, response_body, updated_at \
                 FROM idempotency_keys WHERE scope = $1 AND key = $2{}",
                d.for_update()
            );
            let row: Option<StoredKey> = sqlx::query_as(&sql)
                .bind(scope)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            // The conflicting row was released (deleted) between our insert and select.
            let Some(StoredKey {
                request_hash: hash,
                state,
                response_status: status,
                response_body: body,
                updated_at,
            }) = row
            else {
                tx.rollback().await?;
                return Ok(IdempotencyBegin::InProgress);
            };
            let result = if hash != request_hash {
                IdempotencyBegin::Mismatch
            } else if state == "completed" {
                let status = status.and_then(|s| u16::try_from(s).ok()).ok_or_else(|| {
                    StoreError::Corrupt {
                        what: "idempotency response status",
                        value: format!("{status:?}"),
                    }
                })?;
                IdempotencyBegin::Replay {
                    status,
                    body: body.unwrap_or_default(),
                }
            } else if updated_at.saturating_add(stale_after_ms) <= now {
                sqlx::query(
                    "UPDATE idempotency_keys SET updated_at = $1 WHERE scope = $2 AND key = $3",
                )
                .bind(now)
                .bind(scope)
                .bind(key)
                .execute(&mut *tx)
                .await?;
                IdempotencyBegin::New
            } else {
                IdempotencyBegin::InProgress
            };
            tx.commit().await?;
            Ok(result)
        })
    }

    /// Stores the response of a request begun with [`Store::begin_idempotent`]; later calls
    /// with the same key and request replay it.
    pub async fn complete_idempotent(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &[u8],
        now: i64,
    ) -> Result<()> {
        let changed = with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE idempotency_keys SET state = 'completed', response_status = $1, \
                 response_body = $2, updated_at = $3 WHERE scope = $4 AND key = $5",
            )
            .bind(i64::from(status))
            .bind(body)
            .bind(now)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Err(StoreError::NotFound {
                what: "idempotency key",
                id: key.to_string(),
            });
        }
        Ok(())
    }

    /// Renews an in-progress key while its request works, so only a dead request's key goes
    /// stale (see `stale_after_ms` of [`Store::begin_idempotent`]).
    pub async fn touch_idempotent(&self, scope: &str, key: &str, now: i64) -> Result<()> {
        with_pool!(self, |pool, d| {
            sqlx::query(
                "UPDATE idempotency_keys SET updated_at = $1 \
                 WHERE scope = $2 AND key = $3 AND state = 'in_progress'",
            )
            .bind(now)
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Forgets an in-progress key (the request failed in a way worth retrying), so the client's
    /// retry runs afresh. Completed keys are kept.
    pub async fn release_idempotent(&self, scope: &str, key: &str) -> Result<()> {
        with_pool!(self, |pool, d| {
            sqlx::query(
                "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 \
                 AND state = 'in_progress'",
            )
            .bind(scope)
            .bind(key)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Deletes keys created before `before` (retention); returns how many.
    pub async fn purge_idempotency_keys(&self, before: i64) -> Result<u64> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}
