//! A scripted provider stand-in shared by the API and money-path suites: notifications are
//! JSON signed with HMAC in `x-sig`; queries answer from a table the test controls; create,
//! refund and close can be told to time out, refuse or not know the order.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use paybridge_core::channel::*;
use paybridge_core::{Channel, Fen, Mode};
use paybridge_server::service::{Account, Protocol};
use serde_json::{json, Value};

use super::*;

pub const SIGNING_KEY: &[u8] = b"scripted-provider-key";
pub const APP_ID: &str = "app-test";

/// A provider stand-in: notifications are JSON signed with HMAC in `x-sig`; queries answer
/// from a table the test controls; `create` can be told to time out.
#[derive(Default)]
pub struct Scripted {
    pub query: Mutex<HashMap<String, ProviderPaymentStatus>>,
    pub create_unknown: Mutex<bool>,
    /// Refunds time out; a later query finds them succeeded.
    pub refund_unknown: Mutex<bool>,
    /// `refresh_keys(true)` calls: each unverifiable notification asks for one.
    pub urgent_refreshes: std::sync::atomic::AtomicUsize,
    /// `create` answers with this definite refusal code.
    pub create_refused: Mutex<Option<String>>,
    /// `close` answers that the provider does not know the order.
    pub close_not_found: Mutex<bool>,
    /// Every provider call that reached this stand-in, as `operation:reference`.
    pub calls: Mutex<Vec<String>>,
    /// POSTed (url, signed body) before `create` answers: the notification wins the race.
    pub notify_during_create: Mutex<Option<(String, Vec<u8>)>>,
    /// The process dies inside the provider call of `create` / `refund`: the request's future
    /// unwinds with the call in flight, so nothing after the call runs.
    pub die_in_create: Mutex<bool>,
    pub die_in_refund: Mutex<bool>,
    /// The next refund calls answer with these definite refusals `(code, retryable)`, in order.
    pub refund_refusals: Mutex<std::collections::VecDeque<(String, bool)>>,
    /// Each payment query takes this long (a slow provider).
    pub query_delay: Mutex<Option<std::time::Duration>>,
    /// Queries in flight per order, and the most ever in flight for one order.
    pub querying: Mutex<HashMap<String, usize>>,
    pub max_query_overlap: std::sync::atomic::AtomicUsize,
}

pub fn sign_body(body: &[u8]) -> String {
    hex::encode(paybridge_crypto::hmac_sha256(SIGNING_KEY, body))
}

#[async_trait]
impl PaymentChannel for Scripted {
    async fn create_payment(&self, req: &CreatePayment) -> Result<ClientAction, ChannelError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("create:{}", req.out_trade_no));
        let die = *self.die_in_create.lock().unwrap();
        assert!(!die, "the process dies inside the create call");
        let race = self.notify_during_create.lock().unwrap().take();
        if let Some((url, raw)) = race {
            let r = client()
                .post(url)
                .header("x-sig", sign_body(&raw))
                .body(raw)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
        }
        if let Some(code) = self.create_refused.lock().unwrap().clone() {
            return Err(ChannelError::Refused {
                code,
                message: "refused by the script".into(),
                retryable: false,
            });
        }
        if req.scene == paybridge_core::Scene::Barcode {
            return Ok(ClientAction::Barcode {
                snapshot: PaymentSnapshot {
                    out_trade_no: req.out_trade_no.clone(),
                    provider_trade_no: Some(format!("T{}", req.out_trade_no)),
                    status: ProviderPaymentStatus::UserPaying,
                    provider_status: "WAIT_BUYER_PAY".into(),
                    amount: None,
                    paid_amount: None,
                    paid_at: None,
                    payer_id: None,
                },
            });
        }
        if *self.create_unknown.lock().unwrap() {
            return Err(ChannelError::Unknown {
                operation: "create",
                reason: "timeout".into(),
            });
        }
        Ok(ClientAction::Redirect {
            url: format!("https://provider.invalid/pay/{}", req.out_trade_no),
        })
    }
    async fn query_payment(&self, order: &OrderRef) -> Result<PaymentSnapshot, ChannelError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("query:{}", order.out_trade_no));
        let delay = *self.query_delay.lock().unwrap();
        if let Some(delay) = delay {
            let overlap = {
                let mut q = self.querying.lock().unwrap();
                let n = q.entry(order.out_trade_no.clone()).or_insert(0);
                *n += 1;
                *n
            };
            self.max_query_overlap
                .fetch_max(overlap, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            *self
                .querying
                .lock()
                .unwrap()
                .get_mut(&order.out_trade_no)
                .unwrap() -= 1;
        }
        let status = self
            .query
            .lock()
            .unwrap()
            .get(&order.out_trade_no)
            .copied()
            .unwrap_or(ProviderPaymentStatus::Pending);
        Ok(PaymentSnapshot {
            out_trade_no: order.out_trade_no.clone(),
            provider_trade_no: Some(format!("T{}", order.out_trade_no)),
            status,
            provider_status: format!("{status:?}"),
            amount: None,
            paid_amount: None,
            paid_at: None,
            payer_id: None,
        })
    }
    async fn close_payment(&self, order: &OrderRef) -> Result<CloseOutcome, ChannelError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("close:{}", order.out_trade_no));
        if *self.close_not_found.lock().unwrap() {
            return Ok(CloseOutcome::NotFound);
        }
        Ok(CloseOutcome::Closed)
    }
    async fn cancel_payment(&self, _order: &OrderRef) -> Result<(), ChannelError> {
        Ok(())
    }
    async fn refund(&self, req: &CreateRefund) -> Result<RefundSnapshot, ChannelError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("refund:{}", req.out_refund_no));
        let die = *self.die_in_refund.lock().unwrap();
        assert!(!die, "the process dies inside the refund call");
        if let Some((code, retryable)) = self.refund_refusals.lock().unwrap().pop_front() {
            return Err(ChannelError::Refused {
                code,
                message: "refused by the script".into(),
                retryable,
            });
        }
        if *self.refund_unknown.lock().unwrap() {
            return Err(ChannelError::Unknown {
                operation: "refund",
                reason: "timeout".into(),
            });
        }
        Ok(RefundSnapshot {
            out_refund_no: req.out_refund_no.clone(),
            provider_refund_no: Some(format!("R{}", req.out_refund_no)),
            status: ProviderRefundStatus::Succeeded,
            provider_status: "SUCCESS".into(),
            amount: Some(req.refund_amount),
            succeeded_at: None,
        })
    }
    async fn query_refund(&self, r: &RefundRef) -> Result<RefundSnapshot, ChannelError> {
        Ok(RefundSnapshot {
            out_refund_no: r.out_refund_no.clone(),
            provider_refund_no: Some(format!("R{}", r.out_refund_no)),
            status: ProviderRefundStatus::Succeeded,
            provider_status: "SUCCESS".into(),
            amount: None,
            succeeded_at: None,
        })
    }
    fn decode_notification(
        &self,
        req: &InboundRequest,
        _now: i64,
    ) -> Result<VerifiedNotification, ChannelError> {
        let sig = req.header("x-sig").unwrap_or_default();
        if !paybridge_crypto::constant_time_eq(sig.as_bytes(), sign_body(&req.body).as_bytes()) {
            return Err(ChannelError::BadNotification("bad signature".into()));
        }
        let v: Value = serde_json::from_slice(&req.body)
            .map_err(|e| ChannelError::BadNotification(e.to_string()))?;
        let s = |k: &str| v[k].as_str().map(str::to_string);
        Ok(VerifiedNotification {
            notify_id: s("notify_id"),
            subject: s("subject"),
            app_id: s("app_id"),
            merchant_id: None,
            event: ChannelEvent::Payment {
                snapshot: PaymentSnapshot {
                    out_trade_no: s("out_trade_no").unwrap_or_default(),
                    provider_trade_no: Some("T1".into()),
                    status: ProviderPaymentStatus::Paid,
                    provider_status: "TRADE_SUCCESS".into(),
                    amount: v["amount"].as_i64().map(Fen),
                    paid_amount: None,
                    paid_at: None,
                    payer_id: None,
                },
            },
        })
    }
    fn claimed_order(&self, req: &InboundRequest) -> Option<String> {
        let v: Value = serde_json::from_slice(&req.body).ok()?;
        v["out_trade_no"].as_str().map(str::to_string)
    }
    async fn refresh_keys(&self, urgent: bool) -> Result<bool, ChannelError> {
        if urgent {
            self.urgent_refreshes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(false)
    }
    fn acknowledge(&self, outcome: &NotifyOutcome) -> HttpReply {
        let (status, body) = match outcome {
            NotifyOutcome::Accepted => (200, "success".to_string()),
            NotifyOutcome::Rejected {
                retry: true,
                reason,
            } => (500, format!("retry: {reason}")),
            NotifyOutcome::Rejected {
                retry: false,
                reason,
            } => (200, format!("stop: {reason}")),
            NotifyOutcome::Failed => (500, "retry: ours".to_string()),
        };
        HttpReply {
            status,
            content_type: "text/plain",
            body: body.into_bytes(),
        }
    }
}

pub fn accounts(channel: Arc<Scripted>) -> Vec<Account> {
    let mk = |id: &str, mode| {
        let mut channels: BTreeMap<Protocol, Arc<dyn PaymentChannel>> = BTreeMap::new();
        channels.insert(Protocol::Alipay, channel.clone());
        Account {
            id: id.into(),
            mode,
            channel: Channel::Alipay,
            app_id: APP_ID.into(),
            merchant_id: None,
            primary: Protocol::Alipay,
            channels,
        }
    };
    vec![mk("ali-test", Mode::Sandbox), mk("ali-live", Mode::Live)]
}

pub struct Env {
    pub _db: db::Db,
    pub inst: Instance,
    pub keys: Keys,
    pub hooks: Received,
    pub provider: Arc<Scripted>,
}

pub async fn envs(test: &str) -> Vec<Env> {
    envs_with(test, |_| {}).await
}

/// [`envs`] with settings of the test's own (late payment policy, retention, ...) applied to
/// the configuration the gateway is composed from.
pub async fn envs_with(test: &str, settings: impl Fn(&mut Config)) -> Vec<Env> {
    let mut out = Vec::new();
    for d in db::dbs(test).await {
        out.push(env_with(d, &settings).await);
    }
    out
}

/// A gateway with the scripted provider over `d`.
pub async fn env_on(d: db::Db) -> Env {
    env_with(d, |_| {}).await
}

async fn env_with(d: db::Db, settings: impl Fn(&mut Config)) -> Env {
    let store = d.open().await;
    let keys = make_keys(&store).await;
    let (hook, hooks) = start_receiver().await;
    let provider = Arc::new(Scripted::default());
    let mut config = test_config(&hook);
    settings(&mut config);
    let inst = start_from_config(store, config, Some(accounts(provider.clone()))).await;
    Env {
        _db: d,
        inst,
        keys,
        hooks,
        provider,
    }
}

pub async fn create(env: &Env, no: &str, amount: i64) -> Value {
    let (status, body, _) = post(
        &env.inst.base,
        "/v1/payments",
        &env.keys.sandbox_all,
        Some(&format!("create-{no}")),
        &json!({"channel": "alipay", "scene": "pc", "amount": amount,
                "out_trade_no": no, "subject": "Test order"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

pub async fn notify(env: &Env, body: &Value, signature: Option<String>) -> (u16, String) {
    let raw = serde_json::to_vec(body).unwrap();
    let sig = signature.unwrap_or_else(|| sign_body(&raw));
    let resp = client()
        .post(format!("{}/notify/alipay/ali-test", env.inst.base))
        .header("x-sig", sig)
        .body(raw)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

pub fn paid_notice(no: &str, amount: i64, notify_id: &str) -> Value {
    json!({"notify_id": notify_id, "app_id": APP_ID, "out_trade_no": no, "amount": amount})
}
