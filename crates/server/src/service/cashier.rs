//! The hosted cashier (收银台): one merchant order offered in both wallets.
//!
//! A cashier holds no money state. Each wallet order the buyer starts from it (Alipay wap,
//! WeChat JSAPI or H5) is an ordinary payment with `cashier_id` set, created through the same
//! units of work as an API create (T1 with its recovery job, the provider call, T2), under an
//! idempotency key of the cashier's own, so a reloaded page finds the order it started.
//!
//! Money safety: the buyer may pay more than one of those orders (two phones, two wallets).
//! The unit of work that marks any of them paid also schedules a `cashier.settle` job (see
//! `decision_plan`). The job names the first paid payment as the one that keeps the money (one
//! conditional update: two settling at once cannot both win), closes the cashier's other open
//! orders, and refunds in full any other payment that was paid too. Nothing here ever decides
//! that a payment is paid: notifications and queries do, as for every payment.

use paybridge_core::{Channel, Mode, PaymentStatus, Scene};
use paybridge_store::{
    ApiKey, Audit, BeginCashier, Cashier, Job, KeyClaim, KeyState, NewCashier, NewRefund, Payment,
};
use serde::Deserialize;
use serde_json::Value;

use super::idempotency::{Answer, IdempotencyKey, KEY_LOCK_MS};
use super::payments::{
    validate, CreatePaymentInput, Creator, DEFAULT_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS,
};
use super::{Gateway, ServiceError};

/// Which account pays for each wallet; a wallet left out is the mode's only account of that
/// channel, or not offered when the mode has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashierAccounts {
    pub alipay: Option<String>,
    pub wechat: Option<String>,
}

/// `POST /v1/payments` with `scene: "cashier"`: a hosted cashier page for the buyer, who pays
/// in either wallet.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateCashierPayment)]
pub struct CreateCashierInput {
    /// Always `cashier`.
    #[schema(pattern = "^cashier$")]
    pub scene: String,
    /// Offer only this wallet (`alipay` or `wechat`); both when absent.
    #[schema(value_type = Option<String>)]
    pub channel: Option<Channel>,
    pub accounts: Option<CashierAccounts>,
    /// Fen.
    #[schema(minimum = 1)]
    pub amount: i64,
    /// The merchant's order number, unique per merchant and mode. Each wallet order gets a
    /// number of its own (the payments listed with the cashier).
    #[schema(max_length = 32, pattern = "^[A-Za-z0-9_-]+$")]
    pub out_trade_no: String,
    #[schema(max_length = 128)]
    pub subject: String,
    pub description: Option<String>,
    /// Seconds until the buyer can no longer pay (60..86400*15, default 7200).
    pub expires_in: Option<i64>,
    /// Where the cashier sends the buyer once the gateway knows the order is paid.
    pub return_url: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// Where a cashier stands, from what the gateway knows of its payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CashierStatus {
    /// The buyer can pay.
    Open,
    /// A payment of it was paid: the one that keeps the money (or the first paid while the
    /// settle job has not named one yet).
    Paid { payment_id: String },
    /// Past its expiry unpaid.
    Expired,
}

impl CashierStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CashierStatus::Open => "open",
            CashierStatus::Paid { .. } => "paid",
            CashierStatus::Expired => "expired",
        }
    }
}

/// Pure: the status of `cashier` given its payments at `now_ms`.
pub fn cashier_status(cashier: &Cashier, payments: &[Payment], now_ms: i64) -> CashierStatus {
    if let Some(id) = &cashier.paid_payment_id {
        return CashierStatus::Paid {
            payment_id: id.clone(),
        };
    }
    // Paid once means money arrived, whatever refunds followed.
    let first_paid = payments
        .iter()
        .filter(|p| p.paid_at.is_some() || p.status.is_paid())
        .min_by_key(|p| (p.paid_at.unwrap_or(i64::MAX), p.created_at));
    if let Some(p) = first_paid {
        return CashierStatus::Paid {
            payment_id: p.id.clone(),
        };
    }
    if now_ms >= cashier.expires_at {
        CashierStatus::Expired
    } else {
        CashierStatus::Open
    }
}

/// A cashier with its wallet orders, its status and its URL.
#[derive(Debug, Clone, PartialEq)]
pub struct CashierState {
    pub cashier: Cashier,
    pub payments: Vec<Payment>,
    pub status: CashierStatus,
    pub url: String,
    pub now_ms: i64,
}

/// The wallet order a buyer asks the cashier for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CashierChoice {
    pub channel: Channel,
    /// Alipay: `wap`; WeChat: `jsapi` (inside WeChat, with the buyer's openid) or `wap` (H5).
    pub scene: Scene,
    pub payer_id: Option<String>,
    pub client_ip: Option<String>,
}

/// The idempotency scope of the refunds of second payments.
const DUPLICATE_REFUND_SCOPE: &str = "system:cashier-duplicate";

/// The merchant refund number of a second payment's refund: a retried settle job finds the
/// refund it already began.
fn duplicate_refund_no(payment_id: &str) -> String {
    format!("dup_{}", payment_id.trim_start_matches("pay_"))
}

/// The merchant order number of one wallet order: the same choice gives the same number (a
/// reloaded page resumes its order), another choice another (WeChat fixes an order's trade
/// type, and a JSAPI order its buyer). 32 characters, as both providers allow.
fn wallet_trade_no(cashier_id: &str, choice: &CashierChoice) -> String {
    let material = format!(
        "{cashier_id}\n{}\n{}\n{}",
        choice.channel,
        choice.scene,
        choice.payer_id.as_deref().unwrap_or("")
    );
    let digest = hex::encode(paybridge_crypto::sha256(material.as_bytes()));
    format!("cs{}", &digest[..30])
}

/// The scenes a cashier uses per wallet.
fn cashier_scenes(channel: Channel) -> &'static [Scene] {
    match channel {
        Channel::Alipay => &[Scene::Wap],
        Channel::Wechat => &[Scene::Jsapi, Scene::Wap],
    }
}

impl Gateway {
    pub fn cashier_url(&self, token: &str) -> String {
        format!("{}/cashier/{token}", self.public_base_url)
    }

    /// The account of `channel` a cashier of `mode` uses: the one named, else the mode's only
    /// one. `Ok(None)`: the wallet is not offered (no account, and none was asked for).
    fn cashier_account(
        &self,
        mode: Mode,
        channel: Channel,
        named: Option<&str>,
        required: bool,
    ) -> Result<Option<String>, ServiceError> {
        let usable = |id: &str| -> Result<bool, ServiceError> {
            let api = self.account(id)?.api()?;
            Ok(cashier_scenes(channel)
                .iter()
                .any(|s| api.supports_scene(*s)))
        };
        if let Some(id) = named {
            let acc = self.account(id)?;
            if acc.mode != mode {
                return Err(ServiceError::UnknownAccount(id.to_string()));
            }
            if acc.channel != channel {
                return Err(ServiceError::Validation(format!(
                    "accounts.{channel}: account {id} is a {} account",
                    acc.channel
                )));
            }
            if !usable(id)? {
                return Err(ServiceError::Validation(format!(
                    "accounts.{channel}: account {id} cannot take cashier payments"
                )));
            }
            return Ok(Some(id.to_string()));
        }
        let mut matching = self
            .accounts
            .values()
            .filter(|a| a.mode == mode && a.channel == channel);
        match (matching.next(), matching.next()) {
            (Some(a), None) if usable(&a.id)? => Ok(Some(a.id.clone())),
            (Some(_), Some(_)) => Err(ServiceError::Validation(format!(
                "several {channel} accounts in {mode} mode: name one in accounts.{channel}"
            ))),
            _ if required => Err(ServiceError::Validation(format!(
                "no {channel} account in {mode} mode can take cashier payments"
            ))),
            _ => Ok(None),
        }
    }

    /// `POST /v1/payments` with `scene: "cashier"`. Validated first (a 4xx writes nothing),
    /// then ONE transaction: the key and the cashier. No provider hears of it until the buyer
    /// picks a wallet.
    pub async fn create_cashier(
        &self,
        key: &ApiKey,
        idem: &IdempotencyKey,
        input: CreateCashierInput,
    ) -> Result<Answer<CashierState>, ServiceError> {
        if input.scene != "cashier" {
            return Err(ServiceError::Validation("scene must be \"cashier\"".into()));
        }
        // The merchant's text goes to the providers with each wallet order: the same rules.
        let probe = CreatePaymentInput {
            account: None,
            channel: input.channel.unwrap_or(Channel::Alipay),
            scene: Scene::Wap,
            amount: input.amount,
            out_trade_no: input.out_trade_no.clone(),
            subject: input.subject.clone(),
            description: input.description.clone(),
            expires_in: input.expires_in,
            return_url: input.return_url.clone(),
            client_ip: None,
            payer_id: None,
            auth_code: None,
            metadata: input.metadata.clone(),
        };
        let amount = validate(&probe)?;
        let accounts = input.accounts.clone().unwrap_or_default();
        let (alipay, wechat) = match input.channel {
            Some(Channel::Alipay) => {
                if accounts.wechat.is_some() {
                    return Err(ServiceError::Validation(
                        "accounts.wechat given for an alipay-only cashier".into(),
                    ));
                }
                let a = self.cashier_account(
                    key.mode,
                    Channel::Alipay,
                    accounts.alipay.as_deref(),
                    true,
                )?;
                (a, None)
            }
            Some(Channel::Wechat) => {
                if accounts.alipay.is_some() {
                    return Err(ServiceError::Validation(
                        "accounts.alipay given for a wechat-only cashier".into(),
                    ));
                }
                let w = self.cashier_account(
                    key.mode,
                    Channel::Wechat,
                    accounts.wechat.as_deref(),
                    true,
                )?;
                (None, w)
            }
            None => {
                let a = self.cashier_account(
                    key.mode,
                    Channel::Alipay,
                    accounts.alipay.as_deref(),
                    false,
                )?;
                let w = self.cashier_account(
                    key.mode,
                    Channel::Wechat,
                    accounts.wechat.as_deref(),
                    false,
                )?;
                if a.is_none() && w.is_none() {
                    return Err(ServiceError::Validation(format!(
                        "no account in {} mode can take cashier payments",
                        key.mode
                    )));
                }
                (a, w)
            }
        };
        let expires_in = input
            .expires_in
            .unwrap_or(DEFAULT_EXPIRY_SECONDS)
            .min(MAX_EXPIRY_SECONDS);
        let new = NewCashier {
            token: paybridge_crypto::random_string(43),
            mode: key.mode,
            merchant: key.merchant.clone(),
            out_trade_no: input.out_trade_no.clone(),
            amount,
            currency: "CNY".into(),
            subject: input.subject.clone(),
            description: input.description.clone(),
            return_url: input.return_url.clone(),
            alipay_account: alipay,
            wechat_account: wechat,
            expires_at: self.now_ms() + expires_in * 1000,
            metadata: input.metadata.unwrap_or_else(|| serde_json::json!({})),
        };
        let claim = self.claim(&key.id, idem);
        match self.store.begin_cashier(&claim, new).await? {
            BeginCashier::Created(c) => Ok(Answer::Done(self.cashier_state(*c).await?)),
            BeginCashier::Key(state) => match state {
                KeyState::Finished { resource_id } | KeyState::Resume { resource_id } => {
                    let c = self
                        .store
                        .get_cashier(&resource_id)
                        .await?
                        .ok_or(ServiceError::NotFound("cashier"))?;
                    Ok(Answer::Replayed(self.cashier_state(c).await?))
                }
                KeyState::Answer { status, body } => Ok(Answer::Stored { status, body }),
                KeyState::Locked { .. } => Err(ServiceError::IdempotencyInProgress),
                KeyState::Mismatch => Err(ServiceError::IdempotencyKeyReused),
            },
        }
    }

    async fn cashier_state(&self, cashier: Cashier) -> Result<CashierState, ServiceError> {
        let payments = self.store.list_cashier_payments(&cashier.id).await?;
        let now_ms = self.now_ms();
        Ok(CashierState {
            status: cashier_status(&cashier, &payments, now_ms),
            url: self.cashier_url(&cashier.token),
            cashier,
            payments,
            now_ms,
        })
    }

    /// `GET /v1/cashiers/{id}`: a cashier the key may see (same mode and merchant).
    pub async fn get_cashier(&self, key: &ApiKey, id: &str) -> Result<CashierState, ServiceError> {
        let c = self
            .store
            .get_cashier(id)
            .await?
            .filter(|c| c.mode == key.mode && c.merchant == key.merchant)
            .ok_or(ServiceError::NotFound("cashier"))?;
        self.cashier_state(c).await
    }

    /// The cashier a buyer's URL names, as the gateway knows it now.
    pub async fn cashier_by_token(&self, token: &str) -> Result<CashierState, ServiceError> {
        // Tokens are 43 characters of [A-Za-z0-9]; anything else names nothing.
        if token.len() != 43 || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ServiceError::NotFound("cashier"));
        }
        let c = self
            .store
            .get_cashier_by_token(token)
            .await?
            .ok_or(ServiceError::NotFound("cashier"))?;
        self.cashier_state(c).await
    }

    /// The account a cashier uses for `channel`, if it offers that wallet.
    pub fn cashier_wallet_account<'a>(&self, c: &'a Cashier, channel: Channel) -> Option<&'a str> {
        match channel {
            Channel::Alipay => c.alipay_account.as_deref(),
            Channel::Wechat => c.wechat_account.as_deref(),
        }
    }

    /// The buyer picked a wallet: the wallet order of that choice, created through the money
    /// path (or found again, for the same choice). Refused once the cashier is paid or expired.
    pub async fn cashier_pay(
        &self,
        token: &str,
        choice: CashierChoice,
    ) -> Result<Payment, ServiceError> {
        let state = self.cashier_by_token(token).await?;
        if state.status != CashierStatus::Open {
            return Err(ServiceError::InvalidState {
                status: state.status.as_str().to_string(),
                action: "pay",
            });
        }
        let c = &state.cashier;
        let account = self
            .cashier_wallet_account(c, choice.channel)
            .ok_or_else(|| {
                ServiceError::Validation(format!("this cashier does not offer {}", choice.channel))
            })?
            .to_string();
        if !cashier_scenes(choice.channel).contains(&choice.scene) {
            return Err(ServiceError::Validation(format!(
                "a cashier pays {} with {:?}",
                choice.channel,
                cashier_scenes(choice.channel)
            )));
        }
        // The wallet order ends when the cashier does; the providers need a minute at least.
        let left_s = (c.expires_at - self.now_ms()) / 1000;
        if left_s < 60 {
            return Err(ServiceError::InvalidState {
                status: "expiring".into(),
                action: "pay",
            });
        }
        let out_trade_no = wallet_trade_no(&c.id, &choice);
        let input = CreatePaymentInput {
            account: Some(account),
            channel: choice.channel,
            scene: choice.scene,
            amount: c.amount.0,
            out_trade_no: out_trade_no.clone(),
            subject: c.subject.clone(),
            description: c.description.clone(),
            expires_in: Some(left_s),
            // Back to the cashier, which waits for the gateway to know.
            return_url: Some(state.url.clone()),
            client_ip: choice.client_ip.clone(),
            payer_id: choice.payer_id.clone(),
            auth_code: None,
            metadata: Some(c.metadata.clone()),
        };
        let caller = Creator {
            scope: format!("cashier:{}", c.id),
            mode: c.mode,
            actor: format!("cashier:{}", c.id),
        };
        // The choice is the request: the same choice replays the order it created.
        let idem = IdempotencyKey {
            key: out_trade_no.clone(),
            request_hash: out_trade_no,
        };
        match self
            .create_payment_as(&caller, &idem, input, Some(c.id.clone()))
            .await?
        {
            Answer::Done(p) | Answer::Replayed(p) | Answer::Unsettled(p) => Ok(p),
            Answer::Stored { .. } => Err(ServiceError::Conflict(
                "the wallet refused this order".into(),
            )),
        }
    }

    /// Where to send a buyer who opened the cashier inside WeChat, to learn its `openid` for a
    /// JSAPI order; `None` when the cashier's WeChat account has no web authorization set up.
    pub fn wechat_authorize_url(
        &self,
        c: &Cashier,
        redirect_uri: &str,
        state: &str,
    ) -> Option<String> {
        let (appid, oauth) = self.wechat_oauth.get(c.wechat_account.as_deref()?)?;
        Some(paybridge_wechatpay::oauth::authorize_url(
            &oauth.open_base_url,
            appid,
            redirect_uri,
            state,
        ))
    }

    /// Exchanges the code WeChat sent the buyer back with for the buyer's `openid`.
    pub async fn wechat_openid(&self, c: &Cashier, code: &str) -> Result<String, ServiceError> {
        let (appid, oauth) = c
            .wechat_account
            .as_deref()
            .and_then(|a| self.wechat_oauth.get(a))
            .ok_or_else(|| {
                ServiceError::Validation("this cashier has no WeChat web authorization".into())
            })?;
        let url = paybridge_wechatpay::oauth::access_token_url(
            &oauth.api_base_url,
            appid,
            oauth.app_secret.expose(),
            code,
        );
        let unknown = |reason: String| {
            ServiceError::Channel(paybridge_core::channel::ChannelError::Unknown {
                operation: "wechat_oauth",
                reason,
            })
        };
        // The URL holds the app secret: errors are reported without it.
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unknown(e.without_url().to_string()))?;
        let body = resp
            .bytes()
            .await
            .map_err(|e| unknown(e.without_url().to_string()))?;
        if body.len() > 64 * 1024 {
            return Err(unknown("answer larger than 64 KiB".into()));
        }
        match paybridge_wechatpay::oauth::parse_access_token(&body) {
            Ok(token) => Ok(token.openid),
            Err(paybridge_wechatpay::oauth::OauthError::Refused { errcode, errmsg }) => {
                Err(ServiceError::ProviderRefused {
                    code: errcode.to_string(),
                    message: errmsg,
                    retryable: false,
                })
            }
            Err(e) => Err(unknown(e.to_string())),
        }
    }

    /// The `cashier.settle` job of a paid payment of a cashier. `Ok(false)`: a sibling order
    /// is still being created, look again later.
    pub(super) async fn settle_cashier_payment(&self, job: &Job) -> Result<bool, ServiceError> {
        let Some(payment_id) = &job.payment_id else {
            return Ok(true);
        };
        let p = self.load_payment(payment_id).await?;
        let Some(cashier_id) = p.cashier_id.clone() else {
            return Ok(true);
        };
        if p.paid_at.is_none() && !p.status.is_paid() {
            return Ok(true);
        }
        let keeper = self
            .store
            .claim_cashier_payment(&cashier_id, &p.id)
            .await?
            .ok_or(ServiceError::NotFound("cashier"))?;
        let audit = Audit::new(
            format!("job:{}", job.id),
            "cashier: paid in another wallet order",
        );
        if keeper != p.id {
            return self.refund_second_payment(&p, &keeper, &audit).await;
        }
        // This one keeps the money: nobody may pay the other orders any more.
        let mut settled = true;
        for other in self.store.list_cashier_payments(&cashier_id).await? {
            if other.id == p.id {
                continue;
            }
            match other.status {
                PaymentStatus::Pending => {
                    let closed = self.close_at_provider(other.clone(), &audit).await;
                    match closed {
                        Ok(o) => {
                            self.timeline(
                                &o.id,
                                "cashier_closed",
                                &format!("closed: payment {} of the cashier was paid", p.id),
                            )
                            .await;
                        }
                        Err(e) => {
                            tracing::warn!(payment = %other.id, error = %e,
                                "cashier: cannot close a sibling order yet");
                            settled = false;
                        }
                    }
                }
                // Its create is in flight: close it once the provider has it.
                PaymentStatus::Created if !self.past_expiry(&other) => settled = false,
                PaymentStatus::Created
                | PaymentStatus::Paid
                | PaymentStatus::PartiallyRefunded
                | PaymentStatus::Refunded
                | PaymentStatus::Closed
                | PaymentStatus::Failed => {}
            }
        }
        Ok(settled)
    }

    /// A second payment of one cashier: refunded in full, under a key of its own so a retried
    /// job finds the refund it began. A late payment the late policy refunds is left to it.
    async fn refund_second_payment(
        &self,
        p: &Payment,
        keeper: &str,
        audit: &Audit,
    ) -> Result<bool, ServiceError> {
        if p.late_payment
            && self.late_payment_policy() == super::reconcile::LatePaymentPolicy::Refund
        {
            self.timeline(
                &p.id,
                "cashier_duplicate",
                &format!("paid after payment {keeper}; the late payment policy refunds it"),
            )
            .await;
            return Ok(true);
        }
        let no = duplicate_refund_no(&p.id);
        let claim = KeyClaim {
            scope: DUPLICATE_REFUND_SCOPE,
            key: &no,
            request_hash: "cashier-duplicate-refund",
            lock_ms: KEY_LOCK_MS,
        };
        let new = NewRefund {
            payment_id: p.id.clone(),
            out_refund_no: no.clone(),
            amount: p.refundable(),
            reason: Some("the order was already paid".into()),
        };
        let detail = match self.begin_and_send_refund(&claim, new, audit).await {
            Ok(Answer::Done(r) | Answer::Replayed(r) | Answer::Unsettled(r)) => format!(
                "paid after payment {keeper} of the same cashier: refunded in full (refund {} is {})",
                r.id, r.status
            ),
            Ok(Answer::Stored { .. }) => "refund refused earlier by the provider".to_string(),
            Err(
                e @ ServiceError::ProviderRefused {
                    retryable: true, ..
                },
            ) => return Err(e),
            Err(
                e @ (ServiceError::ProviderRefused { .. }
                | ServiceError::RefundExceedsPayment { .. }
                | ServiceError::InvalidState { .. }),
            ) => {
                tracing::warn!(payment = %p.id, error = %e, "cashier duplicate refund failed");
                format!("paid after payment {keeper}: automatic refund failed: {e}")
            }
            Err(e) => return Err(e),
        };
        self.timeline(&p.id, "cashier_duplicate", &detail).await;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use paybridge_core::Fen;

    fn cashier(expires_at: i64) -> Cashier {
        Cashier {
            id: "csh_1".into(),
            token: "t".into(),
            mode: Mode::Sandbox,
            merchant: "m".into(),
            out_trade_no: "o".into(),
            amount: Fen(100),
            currency: "CNY".into(),
            subject: "s".into(),
            description: None,
            return_url: None,
            alipay_account: None,
            wechat_account: None,
            expires_at,
            paid_payment_id: None,
            metadata: serde_json::json!({}),
            created_at: 0,
            updated_at: 0,
        }
    }

    fn payment(id: &str, status: PaymentStatus, paid_at: Option<i64>) -> Payment {
        Payment {
            id: id.into(),
            mode: Mode::Sandbox,
            account: "a".into(),
            channel: Channel::Alipay,
            scene: Scene::Wap,
            out_trade_no: id.into(),
            amount: Fen(100),
            currency: "CNY".into(),
            subject: "s".into(),
            description: None,
            status,
            previous_status: None,
            version: 1,
            provider_trade_no: None,
            client_action: None,
            payer_id: None,
            expires_at: None,
            paid_at,
            paid_amount: None,
            refunded_amount: Fen(0),
            late_payment: false,
            metadata: serde_json::json!({}),
            cashier_id: Some("csh_1".into()),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn status_follows_what_the_gateway_knows() {
        let c = cashier(1000);
        assert_eq!(cashier_status(&c, &[], 999), CashierStatus::Open);
        assert_eq!(cashier_status(&c, &[], 1000), CashierStatus::Expired);
        let pending = payment("pay_a", PaymentStatus::Pending, None);
        assert_eq!(
            cashier_status(&c, std::slice::from_ref(&pending), 10),
            CashierStatus::Open
        );
        // Paid after expiry is still paid: the money arrived.
        let paid = payment("pay_b", PaymentStatus::Paid, Some(20));
        let earlier = payment("pay_c", PaymentStatus::Refunded, Some(15));
        assert_eq!(
            cashier_status(&c, &[pending, paid.clone(), earlier], 5000),
            CashierStatus::Paid {
                payment_id: "pay_c".into()
            }
        );
        // Once named, the keeper stands.
        let mut named = cashier(1000);
        named.paid_payment_id = Some("pay_b".into());
        assert_eq!(
            cashier_status(&named, &[paid], 5000),
            CashierStatus::Paid {
                payment_id: "pay_b".into()
            }
        );
    }

    #[test]
    fn wallet_order_numbers_are_stable_per_choice_and_fit_both_providers() {
        let choice = |channel, scene, payer: Option<&str>| CashierChoice {
            channel,
            scene,
            payer_id: payer.map(str::to_string),
            client_ip: None,
        };
        let a = wallet_trade_no("csh_1", &choice(Channel::Wechat, Scene::Jsapi, Some("o1")));
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(
            a,
            wallet_trade_no("csh_1", &choice(Channel::Wechat, Scene::Jsapi, Some("o1")))
        );
        for other in [
            wallet_trade_no("csh_1", &choice(Channel::Wechat, Scene::Jsapi, Some("o2"))),
            wallet_trade_no("csh_1", &choice(Channel::Wechat, Scene::Wap, None)),
            wallet_trade_no("csh_2", &choice(Channel::Wechat, Scene::Jsapi, Some("o1"))),
        ] {
            assert_ne!(a, other);
        }
        assert_eq!(duplicate_refund_no("pay_0192ab"), "dup_0192ab");
    }
}
