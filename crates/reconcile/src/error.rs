use paybridge_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("bill download for {date} failed: {reason}")]
    Download { date: String, reason: String },
    #[error("bill: {0}")]
    Bill(String),
    #[error("invalid bill date {0:?} (expected YYYY-MM-DD)")]
    Date(String),
    #[error("bill parser stopped: {0}")]
    Parser(String),
}
