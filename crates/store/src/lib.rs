//! paybridge-store: all of paybridge's SQL.
//!
//! One [`Store`] (cheap to clone) over SQLite (the embedded default: one file, WAL, foreign keys,
//! busy timeout) or PostgreSQL (production; several gateway instances on one database). The
//! schema is migrated on [`Store::open`]. Callers never write SQL: every operation the gateway
//! and its workers need is a method here.
//!
//! Conventions: times are unix milliseconds (`i64`), money is [`paybridge_core::Fen`], ids are
//! prefixed UUIDv7 strings (`pay_…`, `re_…`, `evt_…`), JSON columns are `serde_json::Value`.
//! State changes are units of work ([`Store::begin_payment`], [`Store::apply_payment`],
//! [`Store::begin_refund`], [`Store::apply_refund`]): one transaction each, which locks the
//! payment row (then its refund rows), lets the caller decide from the row as locked (with
//! `paybridge_core::decide`) and executes the plan: the conditional update, its audit rows, the
//! outbox event with its webhook deliveries, jobs and the idempotency key's recovery point.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), paybridge_store::StoreError> {
//! use paybridge_core::channel::ProviderPaymentStatus;
//! use paybridge_core::decide::{decide_payment, PaymentObservation};
//! use paybridge_core::{Channel, Fen, Mode, PaymentStatus, Scene};
//! use paybridge_store::{
//!     Audit, BeginPayment, EventSpec, KeyClaim, NewPayment, Payment, PaymentPlan, Store,
//! };
//!
//! let dir = tempfile::tempdir().map_err(|e| paybridge_store::StoreError::Invalid(e.to_string()))?;
//! let store = Store::open(&format!("sqlite://{}", dir.path().join("pb.db").display())).await?;
//! // T1 of a create: the request's key and the payment, before the provider hears of it.
//! let claim = KeyClaim { scope: "key_1", key: "idem-1", request_hash: "h1", lock_ms: 30_000 };
//! let new = NewPayment {
//!     mode: Mode::Sandbox,
//!     account: "alipay_main".into(),
//!     channel: Channel::Alipay,
//!     scene: Scene::Qr,
//!     out_trade_no: "order-1".into(),
//!     amount: Fen(1999),
//!     currency: "CNY".into(),
//!     subject: "T-shirt".into(),
//!     description: None,
//!     expires_at: None,
//!     metadata: serde_json::json!({}),
//!     cashier_id: None,
//! };
//! let audit = Audit::new("api:key_1", "create");
//! let BeginPayment::Started(payment) = store.begin_payment(&claim, new, &audit, |_| vec![]).await?
//! else {
//!     unreachable!("a new key creates the payment")
//! };
//!
//! // A verified notification says paid: core decides on the locked row, the store executes.
//! let notice = PaymentObservation::Provider {
//!     status: ProviderPaymentStatus::Paid,
//!     amount: Some(Fen(1999)),
//! };
//! let plan = |p: &Payment| {
//!     let d = decide_payment(p.status, p.amount, notice);
//!     let mut plan = PaymentPlan::new(Audit::new("notify:ntf_1", "alipay TRADE_SUCCESS"));
//!     plan.to = d.to;
//!     plan.via = d.via;
//!     plan.event = d.event.map(|e| EventSpec {
//!         kind: e.as_str().into(),
//!         endpoints: vec!["https://merchant.example/hooks".into()],
//!     });
//!     if d.changes() {
//!         plan.patch.paid_amount = Some(p.amount);
//!     }
//!     plan
//! };
//! fn render(p: &Payment) -> serde_json::Value {
//!     serde_json::json!({ "id": p.id, "status": p.status.as_str() })
//! }
//! let paid = store.apply_payment(&payment.id, None, render, plan).await?;
//! assert!(matches!(&paid, Some(a) if a.changed && a.payment.status == PaymentStatus::Paid));
//! // The same notification again: nothing changes, no second event.
//! let again = store.apply_payment(&payment.id, None, render, plan).await?;
//! assert!(matches!(&again, Some(a) if !a.changed && a.payment.version == 2));
//! assert_eq!(store.list_payment_events(&payment.id).await?.len(), 1);
//! # Ok(())
//! # }
//! ```

mod api_keys;
mod cashiers;
mod clock;
mod db;
mod error;
mod events;
mod group;
mod idempotency;
mod inbox;
mod jobs;
mod model;
mod operators;
mod payments;
mod provider_calls;
mod recon_stage;
mod reconcile;
mod refunds;
mod stats;
mod watch;
mod work;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use api_keys::{ApiKey, ApiScope, NewApiKey};
pub use cashiers::{Cashier, NewCashier};
pub use clock::{Clock, ManualClock, SystemClock};
pub use db::Dialect;
pub use error::{Result, StoreError};
pub use events::{
    DeliveryAttempt, DeliveryOutcome, DeliveryStatus, DueDelivery, EndpointFilter, Event,
    EventPage, WebhookDelivery,
};
pub use group::{GroupCommit, GroupPolicy, GroupStats, PaymentPlanFn, RefundPlanFn};
pub use idempotency::IdempotencyBegin;
pub use inbox::{InboxEntry, InboxRecord, NewNotification, Notification, NotificationOutcome};
pub use jobs::{Job, JobState, KindFilter, NewJob, Scheduled, TimelineEntry};
pub use model::{Audit, AuditEntry, Page};
pub use operators::{Operator, OperatorRole, OperatorSession, SessionPolicy};
pub use payments::{NewPayment, Payment, PaymentFilter, PaymentPatch};
pub use provider_calls::{NewProviderCall, ProviderCall};
pub use recon_stage::{
    BillRow, BillStage, DayWindow, MatchCounts, MatchRule, RunMatched, BILL_SUCCESS,
    MISSING_AT_PROVIDER, MISSING_LOCALLY,
};
pub use reconcile::{DiscrepancyRecord, LocalDayTotals, NewDiscrepancy, ReconciliationRun};
pub use refunds::{NewRefund, Refund, RefundPatch};
pub use stats::{PaymentStat, WebhookBacklog};
pub use watch::{DeliveryBacklog, JobKindStats, PoolStats};
pub use work::{
    BeginCashier, BeginPayment, BeginRefund, EventSpec, KeyClaim, KeyFinish, KeyLock, KeyState,
    PaymentApplied, PaymentPlan, RefundApplied, RefundPlan,
};

use db::Backend;

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connection settings for [`Store::open_with`].
#[derive(Clone)]
pub struct StoreOptions {
    /// Pool size. SQLite writes are serialized by the database anyway; the extra connections
    /// serve concurrent reads (WAL).
    pub max_connections: u32,
    /// How long a SQLite writer waits for the write lock before failing.
    pub busy_timeout: Duration,
    /// Where `created_at`/`updated_at` stamps come from (tests inject a [`ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 10,
            busy_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("max_connections", &self.max_connections)
            .field("busy_timeout", &self.busy_timeout)
            .finish_non_exhaustive()
    }
}

/// The handle to paybridge's database. Clone it freely: clones share one pool.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Backend,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dialect", &self.dialect())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating the SQLite file if needed) and migrates the database at `url`:
    /// `sqlite:///absolute/path.db`, `sqlite://relative.db`, or `postgres://user@host/db`.
    /// `sqlite::memory:` works too (one connection, gone when the store is dropped).
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with explicit pool size, SQLite busy timeout and clock.
    pub async fn open_with(url: &str, options: StoreOptions) -> Result<Store> {
        let backend = if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(options.busy_timeout);
            // Every connection to `:memory:` is its own database: keep exactly one, forever.
            let in_memory = url.contains(":memory:");
            let pool = SqlitePoolOptions::new()
                .max_connections(if in_memory {
                    1
                } else {
                    options.max_connections.max(1)
                })
                .idle_timeout(if in_memory {
                    None
                } else {
                    Some(Duration::from_secs(600))
                })
                .max_lifetime(if in_memory {
                    None
                } else {
                    Some(Duration::from_secs(1800))
                })
                .connect_with(connect)
                .await?;
            SQLITE_MIGRATOR.run(&pool).await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let connect = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections.max(1))
                .connect_with(connect)
                .await?;
            // sqlx takes an advisory lock while migrating, so instances starting together are safe.
            POSTGRES_MIGRATOR.run(&pool).await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        Ok(Store {
            inner: Arc::new(Inner {
                backend,
                clock: options.clock,
            }),
        })
    }

    /// The dialect behind this store.
    pub fn dialect(&self) -> Dialect {
        match &self.inner.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The store clock's current time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// Closes the pool, waiting for checked-out connections to return.
    pub async fn close(&self) {
        match &self.inner.backend {
            Backend::Sqlite(p) => p.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }

    /// A cheap liveness probe for health endpoints.
    pub async fn ping(&self) -> Result<()> {
        db::with_pool!(self, |pool, d| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.inner.backend
    }
}

/// Drops any password from a URL before it goes into an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://[REDACTED]{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A new prefixed, time-ordered id (`pay_0192…`): UUIDv7 in simple hex after the prefix.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url("mysql://u:secret@h/db"),
            "mysql://[REDACTED]@h/db"
        );
        assert_eq!(redact_url("file.db"), "file.db");
    }

    #[test]
    fn ids_are_prefixed_and_ordered() {
        let a = new_id("pay");
        let b = new_id("pay");
        assert!(a.starts_with("pay_") && a.len() == 36);
        assert!(a < b);
    }
}
