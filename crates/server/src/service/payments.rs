//! Payments: create, read, close, and applying what a provider says about one.

use paybridge_core::channel::{ChannelError, ClientAction, CreatePayment, ProviderPaymentStatus};
use paybridge_core::decide::{decide_payment, PaymentObservation};
use paybridge_core::{Channel, Fen, Mode, PaymentStatus, Scene};
use paybridge_store::{
    ApiKey, Audit, BeginPayment, KeyFinish, KeyLock, KeyState, NewPayment, NewProviderCall, Page,
    Payment, PaymentFilter, PaymentPlan, ProviderCall,
};
use paybridge_store::{AuditEntry, Notification, TimelineEntry};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::apply::timeline_entry;
use super::caller::Caller;
use super::calllog::{with_context, CallContext, DeferredCalls};
use super::error::ServiceError;
use super::idempotency::{Answer, IdempotencyKey, LockWait, KEY_LOCK_MS, RECOVER_AFTER_MS};
use super::jobs::JobKind;
use super::{views, Gateway};
use crate::error::ApiError;

pub(super) const DEFAULT_EXPIRY_SECONDS: i64 = 2 * 3600;
pub(super) const MAX_EXPIRY_SECONDS: i64 = 15 * 86400;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreatePayment)]
pub struct CreatePaymentInput {
    /// Config account id; optional when the key's mode has one account for the channel.
    pub account: Option<String>,
    #[schema(value_type = String)]
    pub channel: Channel,
    #[schema(value_type = String)]
    pub scene: Scene,
    /// Fen.
    #[schema(minimum = 1)]
    pub amount: i64,
    #[schema(max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub out_trade_no: String,
    #[schema(max_length = 128)]
    pub subject: String,
    pub description: Option<String>,
    /// Seconds until the buyer can no longer pay (60..86400*15, default 7200).
    pub expires_in: Option<i64>,
    pub return_url: Option<String>,
    pub client_ip: Option<String>,
    /// WeChat openid / Alipay buyer id (jsapi).
    pub payer_id: Option<String>,
    /// The buyer's code (barcode).
    pub auth_code: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

fn validate_text(field: &str, value: &str, max: usize) -> Result<(), ServiceError> {
    if value.trim().is_empty() {
        return Err(ServiceError::Validation(format!(
            "{field} must not be empty"
        )));
    }
    if value.chars().count() > max {
        return Err(ServiceError::Validation(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::Validation(format!(
            "{field} contains control characters"
        )));
    }
    if value.chars().any(is_format_char) {
        return Err(ServiceError::Validation(format!(
            "{field} contains invisible formatting characters"
        )));
    }
    // Alipay and WeChat APIv2 sign an unescaped `k=v&k=v` join that echoes this text back in
    // notifications: a `&` or `=` in it lets whoever controls it re-split a genuine signed
    // notification into other fields (another order, another amount). Alipay forbids these and
    // the other specials in subject/body outright.
    if let Some(c) = value.chars().find(|c| FORBIDDEN_IN_TEXT.contains(c)) {
        return Err(ServiceError::Validation(format!(
            "{field} must not contain {c:?} (the providers forbid {FORBIDDEN_IN_TEXT:?})"
        )));
    }
    Ok(())
}

/// Characters refused in merchant text the providers sign and echo (Alipay: "不可使用特殊字符，
/// 如 /，=，& 等").
const FORBIDDEN_IN_TEXT: &[char] = &['&', '=', '/', '\\', '%', '+', '?', '#', '<', '>', '"', '\''];

/// Unicode general category Cf (bidirectional overrides such as U+202E, zero-width spaces and
/// joiners, the BOM...): they make a subject read differently from what it is, or read as
/// nothing at all.
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061C}'
        | '\u{06DD}'
        | '\u{070F}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08E2}'
        | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{110BD}'
        | '\u{110CD}'
        | '\u{13430}'..='\u{1343F}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0001}'
        | '\u{E0020}'..='\u{E007F}')
}

pub(super) fn validate(input: &CreatePaymentInput) -> Result<Fen, ServiceError> {
    let amount = Fen(input.amount)
        .check_trade_range()
        .map_err(|e| ServiceError::Validation(format!("amount: {e}")))?;
    let no = &input.out_trade_no;
    if no.is_empty()
        || no.len() > 32
        || !no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ServiceError::Validation(
            "out_trade_no: 1 to 32 characters of A-Z a-z 0-9 _ -".into(),
        ));
    }
    if input.channel == Channel::Wechat && no.len() < 6 {
        return Err(ServiceError::Validation(
            "out_trade_no: WeChat Pay needs 6 to 32 characters".into(),
        ));
    }
    validate_text("subject", &input.subject, 128)?;
    if let Some(d) = &input.description {
        validate_text("description", d, 512)?;
    }
    if let Some(s) = input.expires_in {
        if !(60..=MAX_EXPIRY_SECONDS).contains(&s) {
            return Err(ServiceError::Validation(format!(
                "expires_in must be between 60 and {MAX_EXPIRY_SECONDS} seconds"
            )));
        }
    }
    if let Some(url) = &input.return_url {
        let ok = url::Url::parse(url)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !ok {
            return Err(ServiceError::Validation(
                "return_url must be an http(s) URL".into(),
            ));
        }
    }
    if let Some(ip) = &input.client_ip {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(ServiceError::Validation(
                "client_ip is not an IP address".into(),
            ));
        }
    }
    match input.scene {
        Scene::Barcode if input.auth_code.as_deref().is_none_or(str::is_empty) => {
            return Err(ServiceError::Validation(
                "barcode payments need auth_code".into(),
            ))
        }
        Scene::Jsapi if input.payer_id.as_deref().is_none_or(str::is_empty) => {
            return Err(ServiceError::Validation(
                "jsapi payments need payer_id (openid / buyer id)".into(),
            ))
        }
        _ => {}
    }
    if let Some(m) = &input.metadata {
        if !m.is_object() {
            return Err(ServiceError::Validation(
                "metadata must be an object".into(),
            ));
        }
        if m.to_string().len() > 4096 {
            return Err(ServiceError::Validation(
                "metadata is larger than 4 KiB".into(),
            ));
        }
    }
    Ok(amount)
}

/// Whether a channel error means the provider may have acted.
pub(super) fn is_unknown(e: &ChannelError) -> bool {
    matches!(e, ChannelError::Unknown { .. })
}

pub(super) fn refused(e: ChannelError) -> ServiceError {
    ServiceError::from(e)
}

/// What a create request carries for the provider beyond the stored payment. Kept in the
/// recovery job, so the job can resend the create exactly as the request would have.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CreateExtras {
    pub return_url: Option<String>,
    pub client_ip: Option<String>,
    pub payer_id: Option<String>,
    pub auth_code: Option<String>,
}

/// The recovery job's payload: which key the operation runs under and what to resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Recovery {
    pub scope: String,
    pub key: String,
    #[serde(default)]
    pub extras: CreateExtras,
}

/// Who asks for a create: its idempotency scope, the mode it may act in, its audit name.
#[derive(Debug, Clone)]
pub(super) struct Creator {
    pub scope: String,
    pub mode: Mode,
    pub actor: String,
}

/// What happened to one payment: queries and notes, state changes, provider notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub entries: Vec<TimelineEntry>,
    pub state_changes: Vec<AuditEntry>,
    pub notifications: Vec<Notification>,
}

impl Gateway {
    fn resolve_account(
        &self,
        mode: Mode,
        input: &CreatePaymentInput,
    ) -> Result<String, ServiceError> {
        if let Some(id) = &input.account {
            let acc = self.account(id)?;
            if acc.mode != mode {
                // Do not reveal accounts of the other mode.
                return Err(ServiceError::UnknownAccount(id.clone()));
            }
            if acc.channel != input.channel {
                return Err(ServiceError::Validation(format!(
                    "account {id} is a {} account",
                    acc.channel
                )));
            }
            return Ok(id.clone());
        }
        let mut matching = self
            .accounts
            .values()
            .filter(|a| a.mode == mode && a.channel == input.channel);
        match (matching.next(), matching.next()) {
            (Some(a), None) => Ok(a.id.clone()),
            (None, _) => Err(ServiceError::Validation(format!(
                "no {} account in {} mode",
                input.channel, mode
            ))),
            (Some(_), Some(_)) => Err(ServiceError::Validation(format!(
                "several {} accounts in {} mode: name one with \"account\"",
                input.channel, mode
            ))),
        }
    }

    /// `POST /v1/payments`. Everything is validated before the first write (a 4xx writes
    /// nothing); then T1 (key + payment + recovery and expiry jobs), the provider call, and T2
    /// (the decision from the answer + client action + follow-up jobs + the key's answer).
    pub async fn create_payment(
        &self,
        key: &ApiKey,
        idem: &IdempotencyKey,
        input: CreatePaymentInput,
    ) -> Result<Answer<Payment>, ServiceError> {
        let caller = Creator {
            scope: key.id.clone(),
            mode: key.mode,
            actor: format!("api:{}", key.id),
        };
        self.create_payment_as(&caller, idem, input, None).await
    }

    /// The create of [`Gateway::create_payment`] for any caller: the API under its key, or a
    /// hosted cashier creating the order of the wallet its buyer picked (`cashier_id`).
    pub(super) async fn create_payment_as(
        &self,
        caller: &Creator,
        idem: &IdempotencyKey,
        input: CreatePaymentInput,
        cashier_id: Option<String>,
    ) -> Result<Answer<Payment>, ServiceError> {
        let amount = validate(&input)?;
        let account_id = self.resolve_account(caller.mode, &input)?;
        let account = self.account(&account_id)?.clone();
        let channel = account.api_for(input.scene)?;
        if !channel.supports_scene(input.scene) {
            return Err(ServiceError::Validation(format!(
                "account {} cannot take {} payments",
                account.id, input.scene
            )));
        }
        let now = self.now_ms();
        let expires_at_ms = now + input.expires_in.unwrap_or(DEFAULT_EXPIRY_SECONDS) * 1000;
        let recovery = Recovery {
            scope: caller.scope.clone(),
            key: idem.key.clone(),
            extras: CreateExtras {
                return_url: input.return_url.clone(),
                client_ip: input.client_ip.clone(),
                payer_id: input.payer_id.clone(),
                auth_code: input.auth_code.clone(),
            },
        };
        let new = NewPayment {
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
            cashier_id,
        };
        tracing::Span::current().record("out_trade_no", input.out_trade_no.as_str());
        let audit = Audit::new(caller.actor.clone(), "create");
        let claim = self.claim(&caller.scope, idem);
        let payload = serde_json::to_value(&recovery).map_err(ServiceError::internal)?;
        let mut wait = LockWait::new();
        let payment = loop {
            let begun = self
                .store
                .begin_payment(&claim, new.clone(), &audit, |p| {
                    vec![
                        JobKind::Recover.job(&p.id, None, payload.clone(), now + RECOVER_AFTER_MS),
                        JobKind::Expire.job(&p.id, None, Value::Null, expires_at_ms),
                    ]
                })
                .await?;
            match begun {
                BeginPayment::Started(p) => break *p,
                BeginPayment::Key(state) => match state {
                    KeyState::Answer { status, body } => {
                        return Ok(Answer::Stored { status, body })
                    }
                    KeyState::Finished { resource_id } => {
                        return Ok(Answer::Replayed(self.load_payment(&resource_id).await?))
                    }
                    KeyState::Resume { resource_id } => {
                        let p = self.load_payment(&resource_id).await?;
                        if p.status == PaymentStatus::Created && !self.past_expiry(&p) {
                            tracing::info!(payment = %p.id, "resuming an unsettled create");
                            break p;
                        }
                        // Settled meanwhile (by the recovery job or a notification).
                        let finish = KeyFinish {
                            scope: &caller.scope,
                            key: &idem.key,
                            answer: None,
                        };
                        let p = self
                            .store
                            .apply_payment(&p.id, Some(finish), views::payment, |_| {
                                PaymentPlan::new(audit.clone())
                            })
                            .await?
                            .ok_or(ServiceError::NotFound("payment"))?;
                        return Ok(Answer::Replayed(p.payment));
                    }
                    KeyState::Locked { .. } => {
                        if !wait.again().await {
                            return Err(ServiceError::IdempotencyInProgress);
                        }
                    }
                    KeyState::Mismatch => return Err(ServiceError::IdempotencyKeyReused),
                },
            }
        };
        crate::observe::record_payment(&payment.id, &payment.out_trade_no);
        self.send_create(
            payment,
            Some((&caller.scope, &idem.key)),
            &recovery.extras,
            &audit,
        )
        .await
    }

    pub(super) fn past_expiry(&self, p: &Payment) -> bool {
        p.expires_at.is_some_and(|e| self.now_ms() >= e)
    }

    /// The create as the provider gets it, rebuilt from the stored payment so a resumed create
    /// sends the same order (providers take a repeated `out_trade_no` with the same content as
    /// the same order).
    fn provider_create(
        &self,
        p: &Payment,
        extras: &CreateExtras,
    ) -> Result<CreatePayment, ServiceError> {
        let account = self.account(&p.account)?;
        Ok(CreatePayment {
            out_trade_no: p.out_trade_no.clone(),
            amount: p.amount,
            subject: p.subject.clone(),
            description: p.description.clone(),
            scene: p.scene,
            expires_at: p.expires_at.map(|ms| ms.div_euclid(1000)),
            notify_url: self.notify_url(account, false),
            return_url: extras.return_url.clone(),
            client_ip: extras.client_ip.clone(),
            payer_id: extras.payer_id.clone(),
            auth_code: extras.auth_code.clone(),
            attach: None,
        })
    }

    /// The provider call of a create and its T2; shared by the request, its retries and the
    /// recovery job. `key` is held by the caller.
    pub(super) async fn send_create(
        &self,
        payment: Payment,
        key: Option<(&str, &str)>,
        extras: &CreateExtras,
        audit: &Audit,
    ) -> Result<Answer<Payment>, ServiceError> {
        let account = self.account(&payment.account)?.clone();
        let channel = account.api_for(payment.scene)?.clone();
        let request = self.provider_create(&payment, extras)?;
        // The call's log row goes into T2 with its answer: one commit fewer per create.
        let deferred = DeferredCalls::default();
        let ctx = CallContext {
            payment_id: Some(payment.id.clone()),
            refund_id: None,
            operation: "create_payment",
            deferred: Some(deferred.clone()),
        };
        let result = self
            .holding_key(key, with_context(ctx, channel.create_payment(&request)))
            .await;
        let calls = deferred.take(account.channel);
        let finish = key.map(|(scope, key)| KeyFinish {
            scope,
            key,
            answer: None,
        });
        let recover = (JobKind::Recover.as_str().to_string(), payment.id.clone());
        match result {
            Ok(action) => {
                let unit = self
                    .store
                    .apply_payment(&payment.id, finish, views::payment, |cur| {
                        let mut plan = self.accepted_plan(cur, &action, audit);
                        plan.cancel_jobs.push(recover);
                        plan.calls = calls.clone();
                        plan
                    })
                    .await;
                let applied = self
                    .or_log_calls(unit, calls)
                    .await?
                    .ok_or(ServiceError::NotFound("payment"))?;
                self.after_change(&applied.payment, applied.changed);
                Ok(Answer::Done(applied.payment))
            }
            Err(e) if is_unknown(&e) => {
                tracing::warn!(payment = %payment.id, error = %e, "create outcome unknown");
                let payload = match key {
                    Some((scope, key)) => serde_json::to_value(Recovery {
                        scope: scope.to_string(),
                        key: key.to_string(),
                        extras: extras.clone(),
                    })
                    .map_err(ServiceError::internal)?,
                    None => Value::Null,
                };
                let soon = self.now_ms() + 5_000;
                let unit = self
                    .store
                    .apply_payment(&payment.id, None, views::payment, |_| {
                        let mut plan = PaymentPlan::new(audit.clone());
                        plan.jobs
                            .push(JobKind::Recover.job(&payment.id, None, payload, soon));
                        plan.timeline
                            .push(timeline_entry("create_unknown", &e.to_string()));
                        plan.calls = calls.clone();
                        plan
                    })
                    .await;
                let p = self
                    .or_log_calls(unit, calls)
                    .await?
                    .ok_or(ServiceError::NotFound("payment"))?;
                if let Some((scope, key)) = key {
                    self.store.unlock_key(scope, key).await?;
                }
                Ok(Answer::Unsettled(p.payment))
            }
            Err(e) => self.create_refused(payment, key, e, audit, calls).await,
        }
    }

    /// The result of a unit of work that was to log `calls`; when it failed they are logged
    /// on their own, so the operator still sees what the provider answered.
    pub(super) async fn or_log_calls<T, E>(
        &self,
        unit: Result<T, E>,
        calls: Vec<NewProviderCall>,
    ) -> Result<T, ServiceError>
    where
        ServiceError: From<E>,
    {
        if unit.is_err() {
            for call in &calls {
                if let Err(e) = self.store.record_provider_call(call).await {
                    tracing::warn!(error = %e, "could not record provider call");
                }
            }
        }
        Ok(unit?)
    }

    /// A definite refusal of a create. The provider may hold an order under this number
    /// already (a resumed create of an order the buyer has paid meanwhile): ask before failing.
    async fn create_refused(
        &self,
        payment: Payment,
        key: Option<(&str, &str)>,
        error: ChannelError,
        audit: &Audit,
        calls: Vec<NewProviderCall>,
    ) -> Result<Answer<Payment>, ServiceError> {
        let reason = error.to_string();
        let provider_may_know = matches!(error, ChannelError::Refused { .. });
        let snapshot = if provider_may_know {
            self.holding_key(key, self.query_provider(&payment))
                .await
                .ok()
        } else {
            None
        };
        let recover = (JobKind::Recover.as_str().to_string(), payment.id.clone());
        if let Some(snap) = snapshot.filter(|s| s.status != ProviderPaymentStatus::NotFound) {
            let finish = key.map(|(scope, key)| KeyFinish {
                scope,
                key,
                answer: None,
            });
            let audit = Audit::new(
                audit.actor.clone(),
                format!("create refused ({reason}); provider has it"),
            );
            let unit = self
                .store
                .apply_payment(&payment.id, finish, views::payment, |cur| {
                    let mut plan = self.snapshot_plan(cur, &snap, &audit, None);
                    plan.cancel_jobs.push(recover);
                    plan.calls = calls.clone();
                    plan
                })
                .await;
            let applied = self
                .or_log_calls(unit, calls)
                .await?
                .ok_or(ServiceError::NotFound("payment"))?;
            self.after_change(&applied.payment, applied.changed);
            return Ok(Answer::Done(applied.payment));
        }
        // The answer a retry with the same key replays: the HTTP problem, byte for byte.
        let answer = ApiError::from(refused(error.clone())).stored_answer();
        let finish = key.map(|(scope, key)| KeyFinish {
            scope,
            key,
            answer: Some(answer),
        });
        let audit = Audit::new(audit.actor.clone(), reason.clone());
        let unit = self
            .store
            .apply_payment(&payment.id, finish, views::payment, |cur| {
                let d = decide_payment(cur.status, cur.amount, PaymentObservation::CreateRefused);
                let mut plan = self.decision_plan(cur, &d, &audit);
                plan.cancel_jobs.push(recover);
                plan.cancel_jobs
                    .push((JobKind::Expire.as_str().to_string(), cur.id.clone()));
                plan.timeline
                    .push(timeline_entry("create_refused", &reason));
                plan.calls = calls.clone();
                plan
            })
            .await;
        let applied = self
            .or_log_calls(unit, calls)
            .await?
            .ok_or(ServiceError::NotFound("payment"))?;
        self.after_change(&applied.payment, applied.changed);
        Err(refused(error))
    }

    /// T2 for an accepted create: pending with its client action; for barcode, the payment
    /// result in the same answer applied on top.
    fn accepted_plan(&self, cur: &Payment, action: &ClientAction, audit: &Audit) -> PaymentPlan {
        let accepted = decide_payment(cur.status, cur.amount, PaymentObservation::Accepted);
        let mut plan = match action {
            ClientAction::Barcode { snapshot } => {
                let after = accepted.to.unwrap_or(cur.status);
                let mut plan = self.snapshot_plan(cur, snapshot, audit, Some(after));
                if accepted.to.is_some() {
                    if plan.to.is_some() {
                        plan.via = accepted.to;
                    } else {
                        plan.to = accepted.to;
                    }
                }
                plan
            }
            ClientAction::TradeNo { .. }
            | ClientAction::Redirect { .. }
            | ClientAction::Form { .. }
            | ClientAction::QrCode { .. }
            | ClientAction::AppOrderString { .. }
            | ClientAction::ClientParams { .. } => self.decision_plan(cur, &accepted, audit),
        };
        // Recorded whatever the state: a notification may have overtaken the answer.
        plan.patch.client_action = serde_json::to_value(action).ok();
        if let ClientAction::TradeNo { trade_no } = action {
            plan.patch.provider_trade_no = Some(trade_no.clone());
        }
        let result = plan.to.unwrap_or(cur.status);
        if matches!(result, PaymentStatus::Created | PaymentStatus::Pending) {
            // Notifications get lost: poll until paid or expired (fast while a barcode buyer
            // types a password).
            let delay = if cur.scene == Scene::Barcode {
                3_000
            } else {
                10_000
            };
            plan.jobs
                .push(JobKind::Query.job(&cur.id, None, Value::Null, self.now_ms() + delay));
        }
        plan
    }

    /// The recovery job of a create: ask the provider first and apply what it knows; then, if
    /// the buyer still has nothing to pay with, resend the create (the same order) unless it
    /// expired. `Ok(false)`: look again later.
    pub(super) async fn recover_create(
        &self,
        job_id: &str,
        payment_id: &str,
        recovery: Option<Recovery>,
    ) -> Result<bool, ServiceError> {
        let p = self.load_payment(payment_id).await?;
        if p.status != PaymentStatus::Created {
            return Ok(true);
        }
        let key = match &recovery {
            Some(r) => match self.store.lock_key(&r.scope, &r.key, KEY_LOCK_MS).await? {
                KeyLock::Acquired => Some((r.scope.as_str(), r.key.as_str())),
                // A retry is resuming it right now; look again later.
                KeyLock::Held => return Ok(false),
                KeyLock::Settled => None,
            },
            None => None,
        };
        let outcome = self.recover_locked(job_id, p, key, recovery.as_ref()).await;
        if let Some((scope, key)) = key {
            // Settled keys ignore this; an unsettled one is free for the merchant's retry.
            self.store.unlock_key(scope, key).await?;
        }
        outcome
    }

    async fn recover_locked(
        &self,
        job_id: &str,
        p: Payment,
        key: Option<(&str, &str)>,
        recovery: Option<&Recovery>,
    ) -> Result<bool, ServiceError> {
        let audit = Audit::new(format!("job:{job_id}"), "create recovery");
        let snap = self
            .holding_key(key, self.query_provider(&p))
            .await
            .map_err(|e| match e {
                e if is_unknown(&e) => ServiceError::ProviderUnknown,
                other => refused(other),
            })?;
        let note = timeline_entry(
            "query",
            &format!("create recovery: provider says {}", snap.provider_status),
        );
        let (p, _) = self
            .apply_snapshot_with(p, &snap, &audit, Some(note))
            .await?;
        let needs_action = matches!(p.status, PaymentStatus::Created | PaymentStatus::Pending)
            && p.client_action.is_none();
        if !needs_action {
            return Ok(true);
        }
        if self.past_expiry(&p) {
            // Too late to offer it to the buyer: the expiry job closes it.
            self.schedule(JobKind::Expire, &p.id, None, self.now_ms())
                .await?;
            return Ok(true);
        }
        let extras = recovery.map(|r| r.extras.clone()).unwrap_or_default();
        match self.send_create(p, key, &extras, &audit).await {
            Ok(Answer::Unsettled(_)) => Ok(false),
            Ok(_) => Ok(true),
            // A definite refusal settled the payment (failed) and its key.
            Err(ServiceError::ProviderRefused { .. } | ServiceError::Validation(_)) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// A payment the key may see: same mode, else it does not exist for this key.
    pub async fn payment_for(&self, key: &dyn Caller, id: &str) -> Result<Payment, ServiceError> {
        let p = self.load_payment(id).await?;
        if p.mode != key.mode() {
            return Err(ServiceError::NotFound("payment"));
        }
        Ok(p)
    }

    pub async fn get_payment(&self, key: &dyn Caller, id: &str) -> Result<Payment, ServiceError> {
        self.payment_for(key, id).await
    }

    pub async fn list_payments(
        &self,
        key: &dyn Caller,
        mut filter: PaymentFilter,
        out_trade_no: Option<String>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Payment>, ServiceError> {
        filter.mode = Some(key.mode());
        if let Some(no) = out_trade_no {
            // An exact order number names at most one payment per account.
            let mut data = Vec::new();
            let accounts: Vec<_> = self
                .accounts
                .values()
                .filter(|a| a.mode == key.mode())
                .filter(|a| filter.account.as_ref().is_none_or(|f| f == &a.id))
                .collect();
            for a in accounts {
                if let Some(p) = self.store.get_payment_by_out_trade_no(&a.id, &no).await? {
                    if filter.status.is_none_or(|s| s == p.status)
                        && filter.channel.is_none_or(|c| c == p.channel)
                    {
                        data.push(p);
                    }
                }
            }
            return Ok(Page {
                items: data,
                next_cursor: None,
            });
        }
        Ok(self
            .store
            .list_payments(&filter, after, limit.clamp(1, 100))
            .await?)
    }

    pub(super) async fn timeline(&self, payment_id: &str, kind: &str, detail: &str) {
        let detail = serde_json::json!({ "detail": detail });
        if let Err(e) = self.store.record_timeline(payment_id, kind, &detail).await {
            tracing::warn!(error = %e, "could not record timeline");
        }
    }

    pub async fn payment_provider_calls(
        &self,
        key: &dyn Caller,
        id: &str,
    ) -> Result<Vec<ProviderCall>, ServiceError> {
        let p = self.payment_for(key, id).await?;
        Ok(self.store.list_provider_calls(&p.id).await?)
    }

    pub async fn payment_timeline(
        &self,
        key: &dyn Caller,
        id: &str,
    ) -> Result<Timeline, ServiceError> {
        let p = self.payment_for(key, id).await?;
        Ok(Timeline {
            entries: self.store.list_timeline(&p.id).await?,
            state_changes: self.store.list_audit(&p.id).await?,
            notifications: self.store.list_payment_notifications(&p.id).await?,
        })
    }
}
