//! The composition root: the one place a [`Gateway`] is built, from its [`Config`].
//!
//! `serve`, `demo`, `bench`, `reconcile` and the tests all come through here, so every setting
//! of the configuration (accounts, public URL, webhook endpoints, IP allowlist, job lease,
//! inbox policy, idempotency retention, bill sources and the late payment policy) reaches every
//! gateway, and none is set afterwards. Building writes nothing to the database: the recurring
//! jobs are scheduled by the workers when they start ([`Gateway::ensure_recurring_jobs`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use paybridge_store::{GroupCommit, Store};

use crate::channels::{self, BuildError};
use crate::config::Config;
use crate::service::reconcile::{bill_source, ReconcileState};
use crate::service::{inbox, Account, Gateway};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Account(#[from] BuildError),
    #[error("account {account}: bill source: {reason}")]
    BillSource { account: String, reason: String },
    #[error("account {0} is configured but has no channels")]
    MissingAccount(String),
    #[error("duplicate account id {0:?}")]
    DuplicateAccount(String),
    #[error("webhook HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

impl Gateway {
    /// The gateway `config` describes, over `store`: each configured account's channels and
    /// bill source, and every other setting.
    pub fn from_config(config: &Config, store: Store) -> Result<Gateway, ComposeError> {
        let accounts = channels::build_accounts(config, &store)?;
        Gateway::from_config_with_accounts(config, store, accounts)
    }

    /// [`Gateway::from_config`] with the accounts' channels given instead of built from
    /// `config.accounts` (tests with a scripted provider). Each account listed in
    /// `config.accounts` must be among them: it still gets its bill source from there.
    pub fn from_config_with_accounts(
        config: &Config,
        store: Store,
        accounts: Vec<Account>,
    ) -> Result<Gateway, ComposeError> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .connect_timeout(std::time::Duration::from_secs(5))
            .user_agent(concat!("paybridge-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ComposeError::HttpClient)?;
        let mut by_id = BTreeMap::new();
        for a in accounts {
            let id = a.id.clone();
            if by_id.insert(id.clone(), Arc::new(a)).is_some() {
                return Err(ComposeError::DuplicateAccount(id));
            }
        }
        let mut sources = BTreeMap::new();
        for a in config.accounts.values() {
            if !by_id.contains_key(&a.id) {
                return Err(ComposeError::MissingAccount(a.id.clone()));
            }
            let source = bill_source(a, &store).map_err(|reason| ComposeError::BillSource {
                account: a.id.clone(),
                reason,
            })?;
            sources.insert(a.id.clone(), source);
        }
        // The web authorization of each WeChat account that has one (the cashier's JSAPI).
        let wechat_oauth = config
            .accounts
            .values()
            .filter_map(|a| match &a.provider {
                crate::config::ProviderConfig::Wechat(w) => w
                    .oauth
                    .clone()
                    .map(|o| (a.id.clone(), (w.appid.clone(), o))),
                crate::config::ProviderConfig::Alipay(_) => None,
            })
            .collect();
        let policy = config
            .notifications
            .policy(store.dialect(), config.database_max_connections);
        let group = GroupCommit::new(store.clone(), policy);
        Ok(Gateway {
            store,
            accounts: by_id,
            public_base_url: config.public_base_url.trim_end_matches('/').to_string(),
            endpoints: config.webhook_endpoints.clone(),
            ip_allowlist: config.ip_allowlist.clone(),
            instance: format!("gw-{}", uuid::Uuid::now_v7().simple()),
            job_lease_ms: config.job_lease_ms,
            idempotency_retention_ms: config.idempotency_retention_ms,
            inbox: inbox::InboxGuard::new(config.inbox.clone()),
            group,
            http,
            wechat_oauth,
            outbox_signal: tokio::sync::Notify::new(),
            reconcile: ReconcileState {
                sources,
                late_payment: config.late_payment,
            },
            observe: crate::observe::Observe::new(
                config.metrics.clone(),
                config.jobs_enabled,
                std::time::Duration::from_millis(config.poll_interval_ms),
                crate::observe::configured_certificates(config),
            ),
        })
    }
}
