//! THE orchestrator: routes, notify endpoints and workers all go through [`Gateway`].
//!
//! It validates, talks to the store (which owns every SQL statement and makes each state change
//! one conditional transaction with its outbox event) and to the channels (which own every wire
//! format). It never assumes an outcome it has not seen: a provider answer that is unknown
//! schedules an active query job instead.

mod apply;
pub mod caller;
pub mod calllog;
mod cashier;
mod close;
mod error;
mod events;
mod idempotency;
pub mod inbox;
pub mod jobs;
mod notify;
mod payments;
pub mod reconcile;
mod refunds;
pub mod views;

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use paybridge_core::channel::PaymentChannel;
use paybridge_core::{Channel, Mode};
use paybridge_store::Store;

use crate::config::{IpAllowlist, WebhookEndpoint};
pub use caller::{Caller, OperatorCaller};
pub use cashier::{
    cashier_status, CashierAccounts, CashierChoice, CashierState, CashierStatus, CreateCashierInput,
};
pub use error::ServiceError;

pub use idempotency::{Answer, IdempotencyKey};
pub use notify::{NotifyKind, NotifyReply};
pub use payments::{CreatePaymentInput, Timeline};
pub use reconcile::Reconciliation;
pub use refunds::CreateRefundInput;

/// How an account talks to its provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Alipay,
    WechatV2,
    WechatV3,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Alipay => "alipay",
            Protocol::WechatV2 => "wechat_v2",
            Protocol::WechatV3 => "wechat_v3",
        }
    }
}

/// One configured merchant account at runtime: its identity and its channel implementations.
pub struct Account {
    pub id: String,
    pub mode: Mode,
    pub channel: Channel,
    /// Alipay `app_id` / WeChat `appid`: notifications naming another are refused.
    pub app_id: String,
    /// Alipay `seller_id` (when configured) / WeChat `mchid`.
    pub merchant_id: Option<String>,
    /// The protocol used for API calls (WeChat: v3 when configured).
    pub primary: Protocol,
    pub channels: BTreeMap<Protocol, Arc<dyn PaymentChannel>>,
}

impl Account {
    /// The channel for a payment of `scene`: barcode (micropay) exists only in WeChat's APIv2,
    /// so a v3 account that also has v2 keys sends those payments through v2.
    pub fn api_for(
        &self,
        scene: paybridge_core::Scene,
    ) -> Result<&Arc<dyn PaymentChannel>, ServiceError> {
        if scene == paybridge_core::Scene::Barcode && self.primary == Protocol::WechatV3 {
            if let Some(v2) = self.channels.get(&Protocol::WechatV2) {
                return Ok(v2);
            }
        }
        self.api()
    }

    pub fn api(&self) -> Result<&Arc<dyn PaymentChannel>, ServiceError> {
        self.channels
            .get(&self.primary)
            .ok_or_else(|| ServiceError::internal(format!("account {} has no channel", self.id)))
    }
}

/// Idempotency keys are answered for a day, as Stripe does.
pub const DEFAULT_IDEMPOTENCY_RETENTION_MS: i64 = 24 * 3_600_000;

/// Everything the service needs, shared by every request and worker.
///
/// Built only by the composition root ([`Gateway::from_config`] in `crate::compose`): the
/// settings that come from the configuration are private, so nothing changes them afterwards
/// and no entry point (serve, demo, bench, reconcile, tests) forgets one.
pub struct Gateway {
    pub store: Store,
    pub(crate) accounts: BTreeMap<String, Arc<Account>>,
    pub(crate) public_base_url: String,
    pub(crate) endpoints: Vec<WebhookEndpoint>,
    pub(crate) ip_allowlist: IpAllowlist,
    /// Identifies this process as a job/delivery lease owner.
    pub instance: String,
    /// How long a claimed job stays this instance's.
    pub(crate) job_lease_ms: i64,
    /// How long idempotency keys are kept.
    pub(crate) idempotency_retention_ms: i64,
    /// What the notification inbox keeps, and the limiters enforcing it.
    pub(crate) inbox: inbox::InboxGuard,
    /// Commits verified notifications in groups (`[notifications]`).
    pub(crate) group: paybridge_store::GroupCommit,
    pub http: reqwest::Client,
    /// Per WeChat account id: its `appid` and web authorization settings, where configured.
    pub(crate) wechat_oauth: BTreeMap<String, (String, crate::config::WechatOauthConfig)>,
    /// Woken after a change that created webhook deliveries, so delivery needs no polling delay.
    pub outbox_signal: tokio::sync::Notify,
    /// Bill sources and the late payment policy (see [`reconcile`]).
    pub(crate) reconcile: reconcile::ReconcileState,
    /// `/metrics` (its handle and token) and the worker heartbeats `/readyz` reads.
    pub(crate) observe: crate::observe::Observe,
}

impl Gateway {
    pub fn now_ms(&self) -> i64 {
        self.store.now_ms()
    }

    /// The configured accounts by id.
    pub fn accounts(&self) -> &BTreeMap<String, Arc<Account>> {
        &self.accounts
    }

    pub fn public_base_url(&self) -> &str {
        &self.public_base_url
    }

    pub fn ip_allowlist(&self) -> &IpAllowlist {
        &self.ip_allowlist
    }

    pub fn job_lease_ms(&self) -> i64 {
        self.job_lease_ms
    }

    pub fn idempotency_retention_ms(&self) -> i64 {
        self.idempotency_retention_ms
    }

    pub fn inbox_policy(&self) -> &inbox::InboxPolicy {
        &self.inbox.policy
    }

    pub fn account(&self, id: &str) -> Result<&Arc<Account>, ServiceError> {
        self.accounts
            .get(id)
            .ok_or_else(|| ServiceError::UnknownAccount(id.to_string()))
    }

    /// The webhook endpoints an event of `mode` goes to.
    pub fn endpoints_for(&self, mode: Mode) -> Vec<String> {
        self.endpoints
            .iter()
            .filter(|e| e.mode.is_none_or(|m| m == mode))
            .map(|e| e.id.clone())
            .collect()
    }

    pub fn notify_url(&self, account: &Account, refund: bool) -> String {
        let base = &self.public_base_url;
        let id = &account.id;
        match account.primary {
            Protocol::Alipay => format!("{base}/notify/alipay/{id}"),
            Protocol::WechatV2 if refund => format!("{base}/notify/wechat/v2/{id}/refund"),
            Protocol::WechatV2 => format!("{base}/notify/wechat/v2/{id}/pay"),
            Protocol::WechatV3 => format!("{base}/notify/wechat/v3/{id}"),
        }
    }
}

/// Stores provider calls through the store; a failure to log never fails the payment.
pub struct StoreCallSink {
    pub store: Store,
    pub channel: Channel,
}

#[async_trait]
impl calllog::CallSink for StoreCallSink {
    async fn record(&self, call: calllog::ProviderCall) {
        let row = call.into_row(self.channel);
        if let Err(e) = self.store.record_provider_call(&row).await {
            tracing::warn!(error = %e, "could not record provider call");
        }
    }
}

impl Gateway {
    /// Lets every channel refresh rotating provider keys when due (WeChat Pay platform
    /// certificates); failures are logged and retried at the next check.
    pub async fn refresh_channel_keys(&self) {
        for account in self.accounts.values() {
            for channel in account.channels.values() {
                if let Err(e) = channel.refresh_keys(false).await {
                    tracing::warn!(account = %account.id, error = %e, "provider key refresh failed");
                }
            }
        }
    }
}
