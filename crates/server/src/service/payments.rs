//! Payments: create, read, close, and applying what a provider says about one.

use paybridge_core::channel::{
    ChannelError, ClientAction, CreatePayment, OrderRef, PaymentSnapshot, ProviderPaymentStatus,
};
use paybridge_core::{Channel, Fen, PaymentStatus, Scene};
use paybridge_store::{
    ApiKey, Audit, NewEvent, NewPayment, Page, Payment, PaymentFilter, PaymentPatch,
};
use serde::Deserialize;
use serde_json::Value;

use super::calllog::{with_context, CallContext};
use super::jobs::JobKind;
use super::{views, Gateway};
use crate::error::ApiError;

const DEFAULT_EXPIRY_SECONDS: i64 = 2 * 3600;
const MAX_EXPIRY_SECONDS: i64 = 15 * 86400;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentInput {
    pub account: Option<String>,
    pub channel: Channel,
    pub scene: Scene,
    pub amount: i64,
    pub out_trade_no: String,
    pub subject: String,
    pub description: Option<String>,
    pub expires_in: Option<i64>,
    pub return_url: Option<String>,
    pub client_ip: Option<String>,
    pub payer_id: Option<String>,
    pub auth_code: Option<String>,
    pub metadata: Option<Value>,
}

fn validate_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::Validation(format!("{field} must not be empty")));
    }
    if value.chars().count() > max {
        return Err(ApiError::Validation(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::Validation(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

fn validate(input: &CreatePaymentInput) -> Result<Fen, ApiError> {
    let amount = Fen(input.amount)
        .check_trade_range()
        .map_err(|e| ApiError::Validation(format!("amount: {e}")))?;
    let no = &input.out_trade_no;
    if no.is_empty()
        || no.len() > 32
        || !no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ApiError::Validation(
            "out_trade_no: 1 to 32 characters of A-Z a-z 0-9 _ -".into(),
        ));
    }
    if input.channel == Channel::Wechat && no.len() < 6 {
        return Err(ApiError::Validation(
            "out_trade_no: WeChat Pay needs 6 to 32 characters".into(),
        ));
    }
    validate_text("subject", &input.subject, 128)?;
    if let Some(d) = &input.description {
        validate_text("description", d, 512)?;
    }
    if let Some(s) = input.expires_in {
        if !(60..=MAX_EXPIRY_SECONDS).contains(&s) {
            return Err(ApiError::Validation(format!(
                "expires_in must be between 60 and {MAX_EXPIRY_SECONDS} seconds"
            )));
        }
    }
    if let Some(url) = &input.return_url {
        let ok = url::Url::parse(url)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !ok {
            return Err(ApiError::Validation(
                "return_url must be an http(s) URL".into(),
            ));
        }
    }
    if let Some(ip) = &input.client_ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ApiError::Validation(
                "client_ip is not an IP address".into(),
            ));
        }
    }
    match input.scene {
        Scene::Barcode if input.auth_code.as_deref().is_none_or(str::is_empty) => {
            return Err(ApiError::Validation(
                "barcode payments need auth_code".into(),
            ))
        }
        Scene::Jsapi if input.payer_id.as_deref().is_none_or(str::is_empty) => {
            return Err(ApiError::Validation(
                "jsapi payments need payer_id (openid / buyer id)".into(),
            ))
        }
        _ => {}
    }
    if let Some(m) = &input.metadata {
        if !m.is_object() {
            return Err(ApiError::Validation("metadata must be an object".into()));
        }
        if m.to_string().len() > 4096 {
            return Err(ApiError::Validation("metadata is larger than 4 KiB".into()));
        }
    }
    Ok(amount)
}

/// Whether a channel error means the provider may have acted.
pub(super) fn is_unknown(e: &ChannelError) -> bool {
    matches!(e, ChannelError::Unknown { .. })
}

pub(super) fn refused(e: ChannelError) -> ApiError {
    match e {
        ChannelError::Refused { code, message, .. } => ApiError::ProviderRefused { code, message },
        ChannelError::Invalid(m) => ApiError::Validation(m),
        ChannelError::Unsupported(m) => ApiError::Validation(format!("{m} is not supported")),
        ChannelError::Unknown { .. } => ApiError::ProviderUnknown,
        other => ApiError::internal(other),
    }
}

/// What applying a provider snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Changed,
    NoChange,
    /// The provider's view contradicts ours (amount); nothing was changed.
    Mismatch(String),
}

impl Gateway {
    fn resolve_account(
        &self,
        key: &ApiKey,
        input: &CreatePaymentInput,
    ) -> Result<String, ApiError> {
        if let Some(id) = &input.account {
            let acc = self.account(id)?;
            if acc.mode != key.mode {
                // Do not reveal accounts of the other mode.
                return Err(ApiError::UnknownAccount(id.clone()));
            }
            if acc.channel != input.channel {
                return Err(ApiError::Validation(format!(
                    "account {id} is a {} account",
                    acc.channel
                )));
            }
            return Ok(id.clone());
        }
        let mut matching = self
            .accounts
            .values()
            .filter(|a| a.mode == key.mode && a.channel == input.channel);
        match (matching.next(), matching.next()) {
            (Some(a), None) => Ok(a.id.clone()),
            (None, _) => Err(ApiError::Validation(format!(
                "no {} account in {} mode",
                input.channel, key.mode
            ))),
            (Some(_), Some(_)) => Err(ApiError::Validation(format!(
                "several {} accounts in {} mode: name one with \"account\"",
                input.channel, key.mode
            ))),
        }
    }

    pub async fn create_payment(
        &self,
        key: &ApiKey,
        input: CreatePaymentInput,
    ) -> Result<Value, ApiError> {
        let amount = validate(&input)?;
        let account_id = self.resolve_account(key, &input)?;
        let account = self.account(&account_id)?.clone();
        let now = self.now_ms();
        let expires_in = input.expires_in.unwrap_or(DEFAULT_EXPIRY_SECONDS);
        let expires_at_ms = now + expires_in * 1000;
        let audit = Audit::new(format!("api:{}", key.id), "create");
        let payment = self
            .store
            .insert_payment(
                NewPayment {
                    mode: account.mode,
                    account: account.id.clone(),
                    channel: account.channel,
                    scene: input.scene,
                    out_trade_no: input.out_trade_no.clone(),
                    amount,
                    currency: "CNY".into(),
                    subject: input.subject.clone(),
                    description: input.description.clone(),
                    expires_at: Some(expires_at_ms),
                    metadata: input
                        .metadata
                        .clone()
                        .unwrap_or_else(|| serde_json::json!({})),
                },
                &audit,
            )
            .await?;
        let request = CreatePayment {
            out_trade_no: payment.out_trade_no.clone(),
            amount,
            subject: payment.subject.clone(),
            description: payment.description.clone(),
            scene: payment.scene,
            expires_at: Some(expires_at_ms.div_euclid(1000)),
            notify_url: self.notify_url(&account, false),
            return_url: input.return_url.clone(),
            client_ip: input.client_ip.clone(),
            payer_id: input.payer_id.clone(),
            auth_code: input.auth_code.clone(),
            attach: None,
        };
        let channel = account.api_for(payment.scene)?.clone();
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: None,
            operation: "create_payment",
        };
        let result = with_context(ctx, channel.create_payment(&request)).await;
        // Expiry is scheduled whatever happened: an unpaid payment must be closed eventually.
        self.schedule(JobKind::Expire, &payment.id, None, expires_at_ms)
            .await?;
        let payment = match result {
            Ok(action) => self.accept_client_action(payment, action, &audit).await?,
            Err(e) if is_unknown(&e) => {
                tracing::warn!(payment = %payment.id, error = %e, "create outcome unknown; querying");
                self.timeline(&payment.id, "create_unknown", &e.to_string())
                    .await;
                self.schedule(JobKind::Query, &payment.id, None, now + 5_000)
                    .await?;
                payment
            }
            Err(e) => {
                let reason = e.to_string();
                self.store
                    .transition_payment(
                        &payment.id,
                        None,
                        PaymentStatus::Failed,
                        &PaymentPatch::default(),
                        |p| Some(self.event("payment.failed", p)),
                        &Audit::new(audit.actor.clone(), reason),
                    )
                    .await?;
                return Err(refused(e));
            }
        };
        if payment.status == PaymentStatus::Pending {
            // Notifications get lost: poll on the backoff schedule until paid or expired.
            self.schedule(JobKind::Query, &payment.id, None, now + 10_000)
                .await?;
        }
        Ok(views::payment(&payment))
    }

    async fn accept_client_action(
        &self,
        payment: Payment,
        action: ClientAction,
        audit: &Audit,
    ) -> Result<Payment, ApiError> {
        let snapshot = match &action {
            ClientAction::Barcode { snapshot } => Some(snapshot.clone()),
            ClientAction::TradeNo { .. }
            | ClientAction::Redirect { .. }
            | ClientAction::Form { .. }
            | ClientAction::QrCode { .. }
            | ClientAction::AppOrderString { .. }
            | ClientAction::ClientParams { .. } => None,
        };
        let provider_trade_no = match &action {
            ClientAction::TradeNo { trade_no } => Some(trade_no.clone()),
            ClientAction::Barcode { snapshot } => snapshot.provider_trade_no.clone(),
            _ => None,
        };
        let patch = PaymentPatch {
            client_action: Some(serde_json::to_value(&action).map_err(ApiError::internal)?),
            provider_trade_no,
            ..PaymentPatch::default()
        };
        let pending = self
            .store
            .transition_payment(
                &payment.id,
                Some(payment.version),
                PaymentStatus::Pending,
                &patch,
                |_| None,
                audit,
            )
            .await?
            .applied();
        let mut current = match pending {
            Some(p) => p,
            // A notification or query overtook us (possible with barcode): keep their result.
            None => self.load_payment(&payment.id).await?,
        };
        if let Some(snapshot) = snapshot {
            let audit = Audit::new(audit.actor.clone(), "barcode answer");
            let (p, _) = self.apply_snapshot(current, &snapshot, &audit).await?;
            current = p;
            if matches!(
                current.status,
                PaymentStatus::Created | PaymentStatus::Pending
            ) {
                // Buyer typing a password: poll fast rather than wait for a notification.
                self.schedule(JobKind::Query, &current.id, None, self.now_ms() + 3_000)
                    .await?;
            }
        }
        Ok(current)
    }

    pub(super) fn event(&self, kind: &str, p: &Payment) -> NewEvent {
        NewEvent::new(kind, views::payment(p)).deliver_to(self.endpoints_for(p.mode))
    }

    pub(super) async fn load_payment(&self, id: &str) -> Result<Payment, ApiError> {
        self.store
            .get_payment(id)
            .await?
            .ok_or(ApiError::NotFound("payment"))
    }

    /// A payment the key may see: same mode, else it does not exist for this key.
    pub async fn payment_for(&self, key: &ApiKey, id: &str) -> Result<Payment, ApiError> {
        let p = self.load_payment(id).await?;
        if p.mode != key.mode {
            return Err(ApiError::NotFound("payment"));
        }
        Ok(p)
    }

    pub async fn get_payment(&self, key: &ApiKey, id: &str) -> Result<Value, ApiError> {
        Ok(views::payment(&self.payment_for(key, id).await?))
    }

    pub async fn list_payments(
        &self,
        key: &ApiKey,
        mut filter: PaymentFilter,
        out_trade_no: Option<String>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Value, ApiError> {
        filter.mode = Some(key.mode);
        if let Some(no) = out_trade_no {
            // An exact order number names at most one payment per account.
            let mut data = Vec::new();
            let accounts: Vec<_> = self
                .accounts
                .values()
                .filter(|a| a.mode == key.mode)
                .filter(|a| filter.account.as_ref().is_none_or(|f| f == &a.id))
                .collect();
            for a in accounts {
                if let Some(p) = self.store.get_payment_by_out_trade_no(&a.id, &no).await? {
                    if filter.status.is_none_or(|s| s == p.status)
                        && filter.channel.is_none_or(|c| c == p.channel)
                    {
                        data.push(views::payment(&p));
                    }
                }
            }
            return Ok(serde_json::json!({"data": data, "next_cursor": null}));
        }
        let Page { items, next_cursor } = self
            .store
            .list_payments(&filter, after, limit.clamp(1, 100))
            .await?;
        Ok(serde_json::json!({
            "data": items.iter().map(views::payment).collect::<Vec<_>>(),
            "next_cursor": next_cursor,
        }))
    }

    /// Closes an unpaid payment at the provider, then locally.
    pub async fn close_payment(&self, key: &ApiKey, id: &str) -> Result<Value, ApiError> {
        let payment = self.payment_for(key, id).await?;
        match payment.status {
            PaymentStatus::Created | PaymentStatus::Pending => {}
            PaymentStatus::Closed => return Ok(views::payment(&payment)),
            other => {
                return Err(ApiError::InvalidState {
                    status: other.to_string(),
                    action: "close",
                })
            }
        }
        let audit = Audit::new(format!("api:{}", key.id), "closed by merchant");
        let closed = self.close_at_provider(payment, &audit).await?;
        Ok(views::payment(&closed))
    }

    /// Shared by the API and the expiry job: close (or cancel a barcode) at the provider, and
    /// only when the provider agrees mark it closed. A refusal because it was paid meanwhile is
    /// answered by querying and applying the truth.
    pub(super) async fn close_at_provider(
        &self,
        payment: Payment,
        audit: &Audit,
    ) -> Result<Payment, ApiError> {
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let order = OrderRef {
            out_trade_no: payment.out_trade_no.clone(),
            provider_trade_no: payment.provider_trade_no.clone(),
        };
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: None,
            operation: if payment.scene == Scene::Barcode {
                "cancel_payment"
            } else {
                "close_payment"
            },
        };
        let result = with_context(ctx, async {
            if payment.scene == Scene::Barcode {
                channel.cancel_payment(&order).await
            } else {
                channel.close_payment(&order).await
            }
        })
        .await;
        match result {
            Ok(()) => {
                let closed = self
                    .store
                    .transition_payment(
                        &payment.id,
                        None,
                        PaymentStatus::Closed,
                        &PaymentPatch::default(),
                        |p| Some(self.event("payment.closed", p)),
                        audit,
                    )
                    .await?;
                self.outbox_signal.notify_one();
                match closed.applied() {
                    Some(p) => Ok(p),
                    None => self.load_payment(&payment.id).await,
                }
            }
            Err(e) if is_unknown(&e) => {
                self.schedule(JobKind::Query, &payment.id, None, self.now_ms() + 5_000)
                    .await?;
                Err(ApiError::ProviderUnknown)
            }
            Err(e) => {
                // The provider refused the close; it may know something we do not (paid).
                let reason = e.to_string();
                let refreshed = self.query_and_apply(&payment.id, "close refused").await;
                match refreshed {
                    Ok(p) if p.status == PaymentStatus::Closed => Ok(p),
                    Ok(p) if p.status != payment.status => Err(ApiError::InvalidState {
                        status: p.status.to_string(),
                        action: "close",
                    }),
                    _ => {
                        tracing::info!(payment = %payment.id, %reason, "close refused");
                        Err(refused(e))
                    }
                }
            }
        }
    }

    /// Queries the provider and applies its answer. Used by jobs and after refusals.
    pub(super) async fn query_and_apply(&self, id: &str, why: &str) -> Result<Payment, ApiError> {
        let payment = self.load_payment(id).await?;
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let order = OrderRef {
            out_trade_no: payment.out_trade_no.clone(),
            provider_trade_no: payment.provider_trade_no.clone(),
        };
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: None,
            operation: "query_payment",
        };
        let snapshot = with_context(ctx, channel.query_payment(&order))
            .await
            .map_err(|e| match e {
                ChannelError::Unknown { .. } => ApiError::ProviderUnknown,
                other => refused(other),
            })?;
        self.timeline(
            &payment.id,
            "query",
            &format!("{why}: provider says {}", snapshot.provider_status),
        )
        .await;
        let audit = Audit::new("query", format!("{why}: {}", snapshot.provider_status));
        let (p, applied) = self.apply_snapshot(payment, &snapshot, &audit).await?;
        if let Applied::Mismatch(m) = applied {
            self.timeline(&p.id, "mismatch", &m).await;
        }
        Ok(p)
    }

    /// Applies what the provider says about a payment (from a verified notification, a query or
    /// a synchronous answer). Exactly-once comes from the store's conditional transition.
    pub(super) async fn apply_snapshot(
        &self,
        payment: Payment,
        snap: &PaymentSnapshot,
        audit: &Audit,
    ) -> Result<(Payment, Applied), ApiError> {
        let target = match snap.status {
            ProviderPaymentStatus::Paid | ProviderPaymentStatus::Refunded => PaymentStatus::Paid,
            ProviderPaymentStatus::Closed => PaymentStatus::Closed,
            ProviderPaymentStatus::Failed => PaymentStatus::Failed,
            ProviderPaymentStatus::Pending | ProviderPaymentStatus::UserPaying => {
                PaymentStatus::Pending
            }
            ProviderPaymentStatus::NotFound => return Ok((payment, Applied::NoChange)),
        };
        if target == PaymentStatus::Paid {
            if let Some(amount) = snap.amount {
                if amount != payment.amount {
                    return Ok((
                        payment.clone(),
                        Applied::Mismatch(format!(
                            "provider amount {} fen, order amount {} fen",
                            amount.0, payment.amount.0
                        )),
                    ));
                }
            }
        }
        if !payment.status.can_transition(target) {
            return Ok((payment, Applied::NoChange));
        }
        let late = matches!(
            payment.status,
            PaymentStatus::Closed | PaymentStatus::Failed
        );
        let patch = PaymentPatch {
            provider_trade_no: snap.provider_trade_no.clone(),
            payer_id: snap.payer_id.clone(),
            paid_at: (target == PaymentStatus::Paid).then(|| self.now_ms()),
            paid_amount: (target == PaymentStatus::Paid)
                .then(|| snap.paid_amount.or(snap.amount).unwrap_or(payment.amount)),
            late_payment: (target == PaymentStatus::Paid && late).then_some(true),
            ..PaymentPatch::default()
        };
        let kind = match target {
            PaymentStatus::Paid => Some("payment.paid"),
            PaymentStatus::Closed => Some("payment.closed"),
            PaymentStatus::Failed => Some("payment.failed"),
            _ => None,
        };
        let applied = self
            .store
            .transition_payment(
                &payment.id,
                None,
                target,
                &patch,
                |p| kind.map(|k| self.event(k, p)),
                audit,
            )
            .await?;
        match applied.applied() {
            Some(p) => {
                if kind.is_some() {
                    self.outbox_signal.notify_one();
                }
                if late {
                    tracing::warn!(payment = %p.id, "late payment after {}", payment.status);
                    self.timeline(&p.id, "late_payment", "paid after it was closed")
                        .await;
                    self.after_late_payment(&p).await;
                }
                Ok((p, Applied::Changed))
            }
            None => Ok((self.load_payment(&payment.id).await?, Applied::NoChange)),
        }
    }

    pub(super) async fn timeline(&self, payment_id: &str, kind: &str, detail: &str) {
        let detail = serde_json::json!({ "detail": detail });
        if let Err(e) = self.store.record_timeline(payment_id, kind, &detail).await {
            tracing::warn!(error = %e, "could not record timeline");
        }
    }

    pub async fn payment_provider_calls(&self, key: &ApiKey, id: &str) -> Result<Value, ApiError> {
        let p = self.payment_for(key, id).await?;
        let calls = self.store.list_provider_calls(&p.id).await?;
        Ok(serde_json::json!({
            "data": calls.iter().map(views::provider_call).collect::<Vec<_>>()
        }))
    }

    pub async fn payment_timeline(&self, key: &ApiKey, id: &str) -> Result<Value, ApiError> {
        let p = self.payment_for(key, id).await?;
        let entries = self.store.list_timeline(&p.id).await?;
        let audit = self.store.list_audit(&p.id).await?;
        let notifications = self.store.list_payment_notifications(&p.id).await?;
        Ok(serde_json::json!({
            "data": entries.iter().map(|t| serde_json::json!({
                "at": t.created_at, "kind": t.kind, "detail": t.detail
            })).collect::<Vec<_>>(),
            "state_changes": audit.iter().map(|a| serde_json::json!({
                "at": a.created_at, "from": a.from_status, "to": a.to_status,
                "actor": a.actor, "reason": a.reason
            })).collect::<Vec<_>>(),
            "notifications": notifications.iter().map(|n| serde_json::json!({
                "id": n.id, "received_at": n.received_at, "verified": n.verified,
                "outcome": n.outcome, "reason": n.reason
            })).collect::<Vec<_>>(),
        }))
    }
}
