use paybridge_core::{Fen, PaymentStatus};

/// Everything a store operation can fail with. Variants other than `Database`/`Migrate` are
/// outcomes the caller is expected to handle (map to an API problem), not infrastructure faults.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit: `what` names the rule, `key` the offending value.
    #[error("{what} {key:?} already exists")]
    Conflict { what: &'static str, key: String },
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The refund would take refunds of the payment past what was paid.
    #[error("refund of {requested} on payment {payment_id} exceeds the refundable {available}")]
    RefundExceedsPaid {
        payment_id: String,
        requested: Fen,
        available: Fen,
    },
    /// Refunds need a paid (or partially refunded) payment.
    #[error("payment {payment_id} is {status}, refunds need a paid payment")]
    NotRefundable {
        payment_id: String,
        status: PaymentStatus,
    },
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("invalid pagination cursor")]
    InvalidCursor,
    #[error("unsupported database URL {0:?} (expected sqlite://PATH or postgres://...)")]
    UnsupportedUrl(String),
    /// A stored value does not parse back (a row written by something other than this crate).
    #[error("corrupt {what} in the database: {value:?}")]
    Corrupt { what: &'static str, value: String },
    /// A consistency rule of the schema was violated inside a transaction; nothing was written.
    #[error("invariant violated: {0}")]
    Invariant(String),
    /// The group commit's writer for this unit is gone (the runtime is shutting down, or a
    /// batch task panicked): nothing is known to have been written.
    #[error("the group commit writer stopped before answering")]
    WriterGone,
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Maps a unique violation to [`StoreError::Conflict`], everything else to `Database`.
pub(crate) fn conflict_or(err: sqlx::Error, what: &'static str, key: &str) -> StoreError {
    match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            what,
            key: key.to_string(),
        },
        _ => StoreError::Database(err),
    }
}
