//! Dialect dispatch. Most statements are written once with `$n` placeholders (SQLite accepts
//! them too) and compiled twice by [`with_pool!`]; only locking clauses and transaction openers
//! differ, and [`Dialect`] supplies them.

use sqlx::{PgPool, SqlitePool};

#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which SQL dialect a [`crate::Store`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The statement opening a writing transaction. SQLite takes the write lock up front so a
    /// read-then-write transaction can never fail to upgrade (and waits on `busy_timeout`);
    /// PostgreSQL locks rows explicitly instead.
    pub(crate) fn begin_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Suffix for a SELECT that must hold the row until commit (SQLite already holds the
    /// database write lock from `BEGIN IMMEDIATE`).
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// Suffix for queue claims: other instances skip rows being claimed instead of waiting.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// Runs `$body` with `$pool` bound to the concrete pool and `$d` to its [`Dialect`]. The body is
/// type-checked once per dialect, which is how one source text serves both databases.
macro_rules! with_pool {
    ($store:expr, |$pool:ident, $d:ident| $body:expr) => {
        match $store.backend() {
            $crate::db::Backend::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $d = $crate::db::Dialect::Sqlite;
                $body
            }
            $crate::db::Backend::Postgres($pool) => {
                #[allow(unused_variables)]
                let $d = $crate::db::Dialect::Postgres;
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// `status IN (...)` list of literals from our own enums (never user input), so it is inlined.
pub(crate) fn in_list<I: IntoIterator<Item = &'static str>>(values: I) -> String {
    let quoted: Vec<String> = values.into_iter().map(|v| format!("'{v}'")).collect();
    quoted.join(", ")
}
