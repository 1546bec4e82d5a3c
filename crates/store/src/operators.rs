//! Console operators: accounts with a role and an argon2id password hash (hashed by the caller
//! through `paybridge_crypto`), server-side sessions and one-time login links stored as SHA-256
//! of their tokens, failed logins for throttling, and operator actions in the audit log.

use paybridge_core::Mode;
use paybridge_crypto::Secret;

use crate::db::with_pool;
use crate::error::{conflict_or, Result, StoreError};
use crate::model::{parse, AuditEntry, AuditRow, AUDIT_COLS, INSERT_AUDIT};
use crate::{Audit, Store};

/// What an operator may do is decided by the console from this (one table, role → actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OperatorRole {
    /// Everything, including API keys, operators and reconciliation.
    Admin,
    /// Read, refund, close, redeliver.
    Support,
    /// Read only.
    Viewer,
}

impl OperatorRole {
    pub const ALL: &'static [OperatorRole] = &[
        OperatorRole::Admin,
        OperatorRole::Support,
        OperatorRole::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OperatorRole::Admin => "admin",
            OperatorRole::Support => "support",
            OperatorRole::Viewer => "viewer",
        }
    }
}

impl std::fmt::Display for OperatorRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for OperatorRole {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        OperatorRole::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown operator role {s:?}")))
    }
}

/// A stored operator (never the password hash: see [`Store::operator_credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    pub username: String,
    pub role: OperatorRole,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A live session: who, in which mode, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    pub operator: Operator,
    pub mode: Mode,
    pub created_at: i64,
    pub expires_at: i64,
}

/// How long sessions last: `idle_ms` after their last use, never beyond `absolute_ms` after
/// login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub idle_ms: i64,
    pub absolute_ms: i64,
}

const OPERATOR_COLS: &str = "id, username, role, disabled, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct OperatorRow {
    id: String,
    username: String,
    role: String,
    disabled: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<OperatorRow> for Operator {
    type Error = StoreError;
    fn try_from(r: OperatorRow) -> Result<Operator> {
        Ok(Operator {
            role: parse("operator role", &r.role)?,
            id: r.id,
            username: r.username,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    #[sqlx(flatten)]
    operator: OperatorRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    #[sqlx(flatten)]
    operator: OperatorRow,
    mode: String,
    session_created_at: i64,
    expires_at: i64,
    absolute_expiry: i64,
}

fn token_hash(token: &str) -> String {
    hex::encode(paybridge_crypto::sha256(token.as_bytes()))
}

/// Usernames are short and plain, so they are safe in logs, audit actors and URLs.
fn check_username(username: &str) -> Result<()> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(
            "usernames are 1 to 64 of A-Z a-z 0-9 . _ - @".into(),
        ))
    }
}

impl Store {
    /// Adds an operator; `password_hash` is an argon2id PHC string.
    pub async fn create_operator(
        &self,
        username: &str,
        role: OperatorRole,
        password_hash: &str,
    ) -> Result<Operator> {
        check_username(username)?;
        let id = crate::new_id("op");
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO operators (id, username, role, password_hash, disabled, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {OPERATOR_COLS}"
        );
        let row: OperatorRow = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(&id)
                .bind(username)
                .bind(role.as_str())
                .bind(password_hash)
                .bind(false)
                .bind(now)
                .fetch_one(pool)
                .await
                .map_err(|e| conflict_or(e, "operator", username))?
        });
        row.try_into()
    }

    /// Every operator, by username.
    pub async fn list_operators(&self) -> Result<Vec<Operator>> {
        let sql = format!("SELECT {OPERATOR_COLS} FROM operators ORDER BY username");
        let rows: Vec<OperatorRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).fetch_all(pool).await?
        });
        rows.into_iter().map(Operator::try_from).collect()
    }

    /// The operator and their password hash, to check a login against.
    pub async fn operator_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(Operator, Secret<String>)>> {
        let sql =
            format!("SELECT {OPERATOR_COLS}, password_hash FROM operators WHERE username = $1");
        let row: Option<CredentialRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(username)
                .fetch_optional(pool)
                .await?
        });
        row.map(|r| Ok((r.operator.try_into()?, Secret::new(r.password_hash))))
            .transpose()
    }

    /// Disables or re-enables an operator; disabling ends their sessions and unused login
    /// links in the same transaction. Returns the operator, or `NotFound`.
    pub async fn set_operator_disabled(&self, username: &str, disabled: bool) -> Result<Operator> {
        self.update_operator(username, "disabled = $1", Param::Bool(disabled), disabled)
            .await
    }

    /// Replaces an operator's password hash and ends their sessions (a reset is often because
    /// the old password leaked).
    pub async fn set_operator_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<Operator> {
        self.update_operator(
            username,
            "password_hash = $1",
            Param::Text(password_hash.to_string()),
            true,
        )
        .await
    }

    async fn update_operator(
        &self,
        username: &str,
        set: &str,
        value: Param,
        end_sessions: bool,
    ) -> Result<Operator> {
        let now = self.now_ms();
        let sql = format!(
            "UPDATE operators SET {set}, updated_at = $2 WHERE username = $3 \
             RETURNING {OPERATOR_COLS}"
        );
        let row: Option<OperatorRow> = with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let q = sqlx::query_as(&sql);
            let q = match &value {
                Param::Bool(b) => q.bind(*b),
                Param::Text(t) => q.bind(t.clone()),
            };
            let row: Option<OperatorRow> =
                q.bind(now).bind(username).fetch_optional(&mut *tx).await?;
            if let (Some(r), true) = (&row, end_sessions) {
                sqlx::query("DELETE FROM operator_sessions WHERE operator_id = $1")
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM operator_login_tokens WHERE operator_id = $1")
                    .bind(&r.id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            row
        });
        row.ok_or_else(|| StoreError::NotFound {
            what: "operator",
            id: username.to_string(),
        })?
        .try_into()
    }

    /// Starts a session for an operator in `mode`; returns its token (only its hash is kept).
    pub async fn create_session(
        &self,
        operator_id: &str,
        mode: Mode,
        policy: SessionPolicy,
    ) -> Result<Secret<String>> {
        let token = paybridge_crypto::random_string(43);
        let now = self.now_ms();
        let absolute = now.saturating_add(policy.absolute_ms);
        let expires = now.saturating_add(policy.idle_ms).min(absolute);
        with_pool!(self, |pool, d| {
            sqlx::query(
                "INSERT INTO operator_sessions (token_hash, operator_id, mode, created_at, \
                 last_seen_at, expires_at, absolute_expiry) VALUES ($1, $2, $3, $4, $4, $5, $6)",
            )
            .bind(token_hash(&token))
            .bind(operator_id)
            .bind(mode.as_str())
            .bind(now)
            .bind(expires)
            .bind(absolute)
            .execute(pool)
            .await?;
        });
        Ok(Secret::new(token))
    }

    /// The live session of `token`: not expired, its operator not disabled. Using it pushes its
    /// idle expiry forward (at most once a minute, so reads do not all become writes).
    pub async fn session(
        &self,
        token: &str,
        policy: SessionPolicy,
    ) -> Result<Option<OperatorSession>> {
        let now = self.now_ms();
        let hash = token_hash(token);
        let sql = "SELECT o.id, o.username, o.role, o.disabled, o.created_at, o.updated_at, \
             s.mode, s.created_at AS session_created_at, s.expires_at, s.absolute_expiry \
             FROM operator_sessions s JOIN operators o ON o.id = s.operator_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 AND o.disabled = $3";
        let row: Option<SessionRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(sql)
                .bind(&hash)
                .bind(now)
                .bind(false)
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else {
            return Ok(None);
        };
        let renewed = now.saturating_add(policy.idle_ms).min(row.absolute_expiry);
        let expires_at = if renewed > row.expires_at.saturating_add(60_000) {
            with_pool!(self, |pool, d| {
                sqlx::query(
                    "UPDATE operator_sessions SET expires_at = $1, last_seen_at = $2 \
                     WHERE token_hash = $3",
                )
                .bind(renewed)
                .bind(now)
                .bind(&hash)
                .execute(pool)
                .await?;
            });
            renewed
        } else {
            row.expires_at
        };
        Ok(Some(OperatorSession {
            operator: row.operator.try_into()?,
            mode: parse("session mode", &row.mode)?,
            created_at: row.session_created_at,
            expires_at,
        }))
    }

    /// Switches the mode a session shows.
    pub async fn set_session_mode(&self, token: &str, mode: Mode) -> Result<bool> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query("UPDATE operator_sessions SET mode = $1 WHERE token_hash = $2")
                .bind(mode.as_str())
                .bind(token_hash(token))
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Ends a session (logout). Also drops every expired session, which is as often as that
    /// housekeeping needs to run.
    pub async fn delete_session(&self, token: &str) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query("DELETE FROM operator_sessions WHERE token_hash = $1 OR expires_at <= $2")
                .bind(token_hash(token))
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A login link token for an operator, valid once within `ttl_ms`.
    pub async fn create_login_token(
        &self,
        operator_id: &str,
        ttl_ms: i64,
    ) -> Result<Secret<String>> {
        let token = paybridge_crypto::random_string(43);
        let expires = self.now_ms().saturating_add(ttl_ms);
        with_pool!(self, |pool, d| {
            sqlx::query(
                "INSERT INTO operator_login_tokens (token_hash, operator_id, expires_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(token_hash(&token))
            .bind(operator_id)
            .bind(expires)
            .execute(pool)
            .await?;
        });
        Ok(Secret::new(token))
    }

    /// Uses a login link: the operator it was for, if it is unused, unexpired and the operator
    /// enabled. The conditional update makes two concurrent uses log in at most once.
    pub async fn redeem_login_token(&self, token: &str) -> Result<Option<Operator>> {
        let now = self.now_ms();
        let hash = token_hash(token);
        let sql = format!(
            "SELECT {OPERATOR_COLS} FROM operators WHERE disabled = $1 AND id = \
             (SELECT operator_id FROM operator_login_tokens WHERE token_hash = $2)"
        );
        let row: Option<OperatorRow> = with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let used = sqlx::query(
                "UPDATE operator_login_tokens SET used_at = $1 \
                 WHERE token_hash = $2 AND used_at IS NULL AND expires_at > $1",
            )
            .bind(now)
            .bind(&hash)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let row: Option<OperatorRow> = if used == 1 {
                sqlx::query_as(&sql)
                    .bind(false)
                    .bind(&hash)
                    .fetch_optional(&mut *tx)
                    .await?
            } else {
                None
            };
            tx.commit().await?;
            row
        });
        row.map(Operator::try_from).transpose()
    }

    /// Records one failed login against each subject (`user:<name>`, `addr:<ip>`), dropping
    /// failures older than `keep_ms` (the throttling window) as it goes.
    pub async fn record_login_failure(&self, subjects: &[&str], keep_ms: i64) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            sqlx::query("DELETE FROM login_failures WHERE at <= $1")
                .bind(now.saturating_sub(keep_ms))
                .execute(&mut *tx)
                .await?;
            for subject in subjects {
                sqlx::query("INSERT INTO login_failures (subject, at) VALUES ($1, $2)")
                    .bind(*subject)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Failed logins of `subject` within the last `window_ms`.
    pub async fn login_failures(&self, subject: &str, window_ms: i64) -> Result<i64> {
        let since = self.now_ms().saturating_sub(window_ms);
        Ok(with_pool!(self, |pool, d| {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM login_failures WHERE subject = $1 AND at > $2",
            )
            .bind(subject)
            .bind(since)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Forgets the failures of `subject` (after a successful login).
    pub async fn clear_login_failures(&self, subject: &str) -> Result<()> {
        with_pool!(self, |pool, d| {
            sqlx::query("DELETE FROM login_failures WHERE subject = $1")
                .bind(subject)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Writes an action that is not a state change of a payment or refund (a
    /// redelivery, a new API key, a disabled operator) to the audit log: `entity`/`entity_id`
    /// name what it was done to, `action` what was done; `audit` says who and why.
    pub async fn record_action(
        &self,
        audit: &Audit,
        entity: &str,
        entity_id: &str,
        action: &str,
    ) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, d| {
            sqlx::query(INSERT_AUDIT)
                .bind(crate::new_id("aud"))
                .bind(entity)
                .bind(entity_id)
                .bind(None::<String>)
                .bind(action)
                .bind(0_i64)
                .bind(&audit.actor)
                .bind(&audit.reason)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The newest audit rows written by operators (actor `operator:…`), newest first.
    pub async fn list_operator_actions(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        let sql = format!(
            "SELECT {AUDIT_COLS} FROM audit_log WHERE actor LIKE 'operator:%' \
             ORDER BY created_at DESC, id DESC LIMIT $1"
        );
        let rows: Vec<AuditRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(i64::from(limit.clamp(1, 500)))
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }
}

enum Param {
    Bool(bool),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_plain() {
        assert!(check_username("alice").is_ok());
        assert!(check_username("ops.bob-2@example").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_username("a'--").is_err());
        assert!(check_username(&"a".repeat(65)).is_err());
    }

    #[test]
    fn roles_round_trip() {
        for r in OperatorRole::ALL {
            assert_eq!(r.as_str().parse::<OperatorRole>().ok(), Some(*r));
        }
        assert!("root".parse::<OperatorRole>().is_err());
    }
}
