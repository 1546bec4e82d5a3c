//! Merchant API keys: stored as SHA-256 hex, shown in plaintext exactly once at creation.

use paybridge_core::Mode;
use paybridge_crypto::Secret;

use crate::db::with_pool;
use crate::error::{conflict_or, Result, StoreError};
use crate::model::parse;
use crate::Store;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiScope {
    Read,
    Write,
    Refund,
}

impl ApiScope {
    pub const ALL: &'static [ApiScope] = &[ApiScope::Read, ApiScope::Write, ApiScope::Refund];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiScope::Read => "read",
            ApiScope::Write => "write",
            ApiScope::Refund => "refund",
        }
    }
}

impl std::str::FromStr for ApiScope {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self> {
        ApiScope::ALL
            .iter()
            .copied()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown API scope {s:?}")))
    }
}

/// A key to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiKey {
    pub mode: Mode,
    pub merchant: String,
    pub scopes: Vec<ApiScope>,
}

/// A stored API key (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub mode: Mode,
    pub merchant: String,
    pub scopes: Vec<ApiScope>,
    /// The first characters of the key, for display (`pb_live_AbCd`).
    pub prefix: String,
    pub revoked: bool,
    pub created_at: i64,
}

impl ApiKey {
    /// Whether the key carries `scope`.
    pub fn allows(&self, scope: ApiScope) -> bool {
        self.scopes.contains(&scope)
    }
}

const API_KEY_COLS: &str = "id, mode, merchant, scopes, prefix, revoked, created_at";
const DISPLAY_PREFIX_LEN: usize = 12;

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: String,
    mode: String,
    merchant: String,
    scopes: String,
    prefix: String,
    revoked: bool,
    created_at: i64,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;
    fn try_from(r: ApiKeyRow) -> Result<ApiKey> {
        let scopes = r
            .scopes
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| parse("API key scope", s))
            .collect::<Result<Vec<ApiScope>>>()?;
        Ok(ApiKey {
            mode: parse("API key mode", &r.mode)?,
            id: r.id,
            merchant: r.merchant,
            scopes,
            prefix: r.prefix,
            revoked: r.revoked,
            created_at: r.created_at,
        })
    }
}

fn key_hash(plaintext: &str) -> String {
    hex::encode(paybridge_crypto::sha256(plaintext.as_bytes()))
}

impl Store {
    /// Creates a key with a fresh random secret (`pb_live_…` / `pb_test_…`) and returns it in
    /// plaintext: this is the only time it exists outside the caller's hands.
    pub async fn create_api_key(&self, new: &NewApiKey) -> Result<(ApiKey, Secret<String>)> {
        let tag = match new.mode {
            Mode::Live => "live",
            Mode::Sandbox => "test",
        };
        let plaintext = format!("pb_{tag}_{}", paybridge_crypto::random_string(40));
        let key = self.insert_api_key(new, &plaintext).await?;
        Ok((key, Secret::new(plaintext)))
    }

    /// Stores a key whose plaintext the operator chose (configuration, demo setup). It must be
    /// at least 24 characters; only its hash is kept.
    pub async fn insert_api_key(&self, new: &NewApiKey, plaintext: &str) -> Result<ApiKey> {
        if plaintext.len() < 24 || !plaintext.is_ascii() {
            return Err(StoreError::Invalid(
                "API keys must be at least 24 ASCII characters".into(),
            ));
        }
        let id = crate::new_id("key");
        let prefix: String = plaintext.chars().take(DISPLAY_PREFIX_LEN).collect();
        let mut scopes = new.scopes.clone();
        scopes.sort();
        scopes.dedup();
        let scopes_text = scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let now = self.now_ms();
        let sql = format!(
            "INSERT INTO api_keys (id, mode, merchant, scopes, key_hash, prefix, revoked, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {API_KEY_COLS}"
        );
        let row: ApiKeyRow = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(&id)
                .bind(new.mode.as_str())
                .bind(&new.merchant)
                .bind(&scopes_text)
                .bind(key_hash(plaintext))
                .bind(&prefix)
                .bind(false)
                .bind(now)
                .fetch_one(pool)
                .await
                .map_err(|e| conflict_or(e, "API key", &prefix))?
        });
        row.try_into()
    }

    /// The live (not revoked) key matching a presented bearer token, if any.
    pub async fn authenticate(&self, plaintext: &str) -> Result<Option<ApiKey>> {
        let sql =
            format!("SELECT {API_KEY_COLS} FROM api_keys WHERE key_hash = $1 AND revoked = $2");
        let row: Option<ApiKeyRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(key_hash(plaintext))
                .bind(false)
                .fetch_optional(pool)
                .await?
        });
        row.map(ApiKey::try_from).transpose()
    }

    /// Revokes a key; returns whether it existed and was live.
    pub async fn revoke_api_key(&self, id: &str) -> Result<bool> {
        Ok(with_pool!(self, |pool, d| {
            sqlx::query("UPDATE api_keys SET revoked = $1 WHERE id = $2 AND revoked = $3")
                .bind(true)
                .bind(id)
                .bind(false)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Keys (including revoked ones), optionally of one merchant, oldest first.
    pub async fn list_api_keys(&self, merchant: Option<&str>) -> Result<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {API_KEY_COLS} FROM api_keys WHERE ($1 IS NULL OR merchant = $1) \
             ORDER BY created_at, id"
        );
        let rows: Vec<ApiKeyRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(merchant).fetch_all(pool).await?
        });
        rows.into_iter().map(ApiKey::try_from).collect()
    }
}
