//! The gateway over real HTTP with a scripted channel: API semantics (auth, modes, idempotency,
//! refunds, close), notification handling (exactly once under concurrency, forged / tampered /
//! unknown notifications recorded and harmless), signed webhooks. Runs on SQLite and, when
//! `PAYBRIDGE_TEST_PG_URL` is set, on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use paybridge_core::channel::*;
use paybridge_core::{Channel, Fen, Mode};
use paybridge_server::service::{Account, Protocol};
use serde_json::{json, Value};

const SIGNING_KEY: &[u8] = b"scripted-provider-key";
const APP_ID: &str = "app-test";

/// A provider stand-in: notifications are JSON signed with HMAC in `x-sig`; queries answer
/// from a table the test controls; `create` can be told to time out.
#[derive(Default)]
struct Scripted {
    query: Mutex<HashMap<String, ProviderPaymentStatus>>,
    create_unknown: Mutex<bool>,
    /// Refunds time out; a later query finds them succeeded.
    refund_unknown: Mutex<bool>,
    /// `refresh_keys(true)` calls: each unverifiable notification asks for one.
    urgent_refreshes: std::sync::atomic::AtomicUsize,
}

fn sign_body(body: &[u8]) -> String {
    hex::encode(paybridge_crypto::hmac_sha256(SIGNING_KEY, body))
}

#[async_trait]
impl PaymentChannel for Scripted {
    async fn create_payment(&self, req: &CreatePayment) -> Result<ClientAction, ChannelError> {
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
    async fn close_payment(&self, _order: &OrderRef) -> Result<CloseOutcome, ChannelError> {
        Ok(CloseOutcome::Closed)
    }
    async fn cancel_payment(&self, _order: &OrderRef) -> Result<(), ChannelError> {
        Ok(())
    }
    async fn refund(&self, req: &CreateRefund) -> Result<RefundSnapshot, ChannelError> {
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

fn accounts(channel: Arc<Scripted>) -> Vec<Account> {
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

struct Env {
    _db: db::Db,
    inst: Instance,
    keys: Keys,
    hooks: Received,
    provider: Arc<Scripted>,
}

async fn envs(test: &str) -> Vec<Env> {
    let mut out = Vec::new();
    for d in db::dbs(test).await {
        let store = d.open().await;
        let keys = make_keys(&store).await;
        let (hook, hooks) = start_receiver().await;
        let provider = Arc::new(Scripted::default());
        let inst = start_gateway(store, accounts(provider.clone()), &hook).await;
        out.push(Env {
            _db: d,
            inst,
            keys,
            hooks,
            provider,
        });
    }
    out
}

async fn create(env: &Env, no: &str, amount: i64) -> Value {
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

async fn notify(env: &Env, body: &Value, signature: Option<String>) -> (u16, String) {
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

fn paid_notice(no: &str, amount: i64, notify_id: &str) -> Value {
    json!({"notify_id": notify_id, "app_id": APP_ID, "out_trade_no": no, "amount": amount})
}

#[tokio::test]
async fn paid_notification_moves_payment_and_sends_signed_webhook() {
    for env in envs("paid_flow").await {
        let p = create(&env, "ord-1", 1234).await;
        assert_eq!(p["status"], "pending");
        assert_eq!(p["mode"], "sandbox");
        assert_eq!(p["client_action"]["type"], "redirect");
        let id = p["id"].as_str().unwrap();

        let (status, reply) = notify(&env, &paid_notice("ord-1", 1234, "n-1"), None).await;
        assert_eq!((status, reply.as_str()), (200, "success"));
        let (_, p) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}"),
            &env.keys.sandbox_read,
        )
        .await;
        assert_eq!(p["status"], "paid");
        assert_eq!(p["paid_amount"], 1234);

        let gw = &env.inst.gw;
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 1);
        assert_eq!(env.hooks.len(), 1);
        env.hooks.verify_all(gw.now_ms() / 1000);
        let hook = &env.hooks.bodies()[0];
        assert_eq!(hook["type"], "payment.paid");
        assert_eq!(hook["mode"], "sandbox");
        assert_eq!(hook["data"]["id"], id);
        // Delivered once: nothing left to send.
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 0);

        // The pull feed serves the same event.
        let (_, feed) = get(&env.inst.base, "/v1/events", &env.keys.sandbox_read).await;
        assert_eq!(feed["data"][0]["id"], hook["id"]);
        // Live keys see neither the payment nor the event.
        let (s, _) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}"),
            &env.keys.live_all,
        )
        .await;
        assert_eq!(s, 404);
        let (_, live_feed) = get(&env.inst.base, "/v1/events", &env.keys.live_all).await;
        assert_eq!(live_feed["data"].as_array().unwrap().len(), 0);

        // Redelivery by API sends it again.
        let eid = hook["id"].as_str().unwrap();
        let (s, r, _) = post(
            &env.inst.base,
            &format!("/v1/events/{eid}/redeliver"),
            &env.keys.sandbox_write,
            Some("redeliver-1"),
            &json!({}),
        )
        .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 1);
        assert_eq!(env.hooks.len(), 2);
        assert_eq!(env.hooks.bodies()[1]["id"], hook["id"]);
    }
}

#[tokio::test]
async fn fifty_concurrent_duplicates_apply_once_across_two_instances() {
    for env in envs("dup50").await {
        let p = create(&env, "ord-dup", 500).await;
        let id = p["id"].as_str().unwrap().to_string();
        // A second gateway instance over the same database.
        let store2 = env._db.open().await;
        let (hook2, _) = start_receiver().await;
        let inst2 = start_gateway(store2, accounts(env.provider.clone()), &hook2).await;
        let raw = serde_json::to_vec(&paid_notice("ord-dup", 500, "n-dup")).unwrap();
        let sig = sign_body(&raw);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let base = if i % 2 == 0 {
                env.inst.base.clone()
            } else {
                inst2.base.clone()
            };
            let (raw, sig) = (raw.clone(), sig.clone());
            tasks.push(tokio::spawn(async move {
                let r = client()
                    .post(format!("{base}/notify/alipay/ali-test"))
                    .header("x-sig", sig)
                    .body(raw)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }));
        }
        for t in tasks {
            let (status, body) = t.await.unwrap();
            assert_eq!((status, body.as_str()), (200, "success"));
        }
        let store = &env.inst.gw.store;
        let events = store.list_payment_events(&id).await.unwrap();
        assert_eq!(events.len(), 1, "exactly one event");
        assert_eq!(events[0].kind, "payment.paid");
        let to_paid = store
            .list_audit(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|a| a.to_status == "paid")
            .count();
        assert_eq!(to_paid, 1, "exactly one transition to paid");
        let inbox = store.list_payment_notifications(&id).await.unwrap();
        assert_eq!(inbox.len(), 50, "every copy is kept in the inbox");
        let applied = inbox
            .iter()
            .filter(|n| n.outcome.as_deref() == Some("applied"))
            .count();
        assert_eq!(applied, 1);
    }
}

#[tokio::test]
async fn forged_tampered_and_unknown_notifications_change_nothing_and_are_recorded() {
    for env in envs("forged").await {
        let p = create(&env, "ord-f", 100).await;
        let id = p["id"].as_str().unwrap();
        let gw = &env.inst.gw;

        // Forged: bad signature. Retrying could help only after a key change; nothing changes.
        let (s, _) = notify(&env, &paid_notice("ord-f", 100, "n-f1"), Some("00".into())).await;
        assert_eq!(s, 500);
        // Tampered amount (validly signed: the provider itself says something else).
        let (s, body) = notify(&env, &paid_notice("ord-f", 1, "n-f2"), None).await;
        assert_eq!((s, body.starts_with("stop:")), (200, true), "{body}");
        // Tampered app id.
        let mut other_app = paid_notice("ord-f", 100, "n-f3");
        other_app["app_id"] = json!("someone-else");
        let (s, body) = notify(&env, &other_app, None).await;
        assert_eq!((s, body.starts_with("stop:")), (200, true), "{body}");
        // Unknown order.
        let (s, body) = notify(&env, &paid_notice("no-such-order", 100, "n-f4"), None).await;
        assert_eq!((s, body.starts_with("stop:")), (200, true), "{body}");
        // Malformed body with a valid signature over it.
        let resp = client()
            .post(format!("{}/notify/alipay/ali-test", env.inst.base))
            .header("x-sig", sign_body(b"\xff\x00garbage"))
            .body(&b"\xff\x00garbage"[..])
            .send()
            .await
            .unwrap();
        assert!(resp.status().as_u16() >= 200);

        let (_, p) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}"),
            &env.keys.sandbox_read,
        )
        .await;
        assert_eq!(p["status"], "pending");
        assert!(gw.store.list_payment_events(id).await.unwrap().is_empty());

        let inbox = gw
            .store
            .list_recent_notifications(Some("ali-test"), 10)
            .await
            .unwrap();
        let outcomes: Vec<_> = inbox
            .iter()
            .rev()
            .map(|n| (n.outcome.clone().unwrap_or_default(), n.verified))
            .collect();
        assert_eq!(
            outcomes,
            vec![
                ("unverified".to_string(), Some(false)),
                ("mismatch".to_string(), Some(true)),
                ("mismatch".to_string(), Some(true)),
                ("unknown_order".to_string(), Some(true)),
                ("unverified".to_string(), Some(false)),
            ]
        );
        assert!(inbox.iter().all(|n| n.reason.is_some()));
        // Each unverifiable one (forged, malformed) asked the channel for fresh keys, in the
        // background; verified mismatches did not.
        let start = std::time::Instant::now();
        while env
            .provider
            .urgent_refreshes
            .load(std::sync::atomic::Ordering::SeqCst)
            < 2
        {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no key refresh asked"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            env.provider
                .urgent_refreshes
                .load(std::sync::atomic::Ordering::SeqCst),
            2
        );
        // The amount mismatch asked the provider directly: a query job is due now.
        env.provider
            .query
            .lock()
            .unwrap()
            .insert("ord-f".into(), ProviderPaymentStatus::Pending);
        assert!(gw.run_jobs_once(gw.now_ms(), 10).await.unwrap() >= 1);
        let (_, p) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}"),
            &env.keys.sandbox_read,
        )
        .await;
        assert_eq!(p["status"], "pending");
        // Unknown account: not ours, nothing stored.
        let resp = client()
            .post(format!("{}/notify/alipay/nope", env.inst.base))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404);
    }
}

#[tokio::test]
async fn idempotency_keys_replay_and_refuse_other_bodies() {
    for env in envs("idem").await {
        let body = json!({"channel": "alipay", "scene": "pc", "amount": 10,
                          "out_trade_no": "ord-i", "subject": "x"});
        let k = &env.keys.sandbox_all;
        let (s1, b1, h1) = post(&env.inst.base, "/v1/payments", k, Some("same"), &body).await;
        let (s2, b2, h2) = post(&env.inst.base, "/v1/payments", k, Some("same"), &body).await;
        assert_eq!((s1, s2), (201, 201));
        assert_eq!(b1, b2);
        assert!(h1.get("idempotent-replayed").is_none());
        assert_eq!(h2.get("idempotent-replayed").unwrap(), "true");
        let mut other = body.clone();
        other["amount"] = json!(11);
        let (s3, b3, _) = post(&env.inst.base, "/v1/payments", k, Some("same"), &other).await;
        assert_eq!(
            (s3, b3["code"].as_str()),
            (422, Some("idempotency_key_reused"))
        );
        let (s4, b4, _) = post(&env.inst.base, "/v1/payments", k, None, &body).await;
        assert_eq!(
            (s4, b4["code"].as_str()),
            (400, Some("idempotency_key_missing"))
        );
        // A new key for the same order number: the order already exists.
        let (s5, b5, _) = post(&env.inst.base, "/v1/payments", k, Some("other"), &body).await;
        assert_eq!((s5, b5["code"].as_str()), (409, Some("conflict")));
        // Errors are problems with stable codes, validation included.
        let mut bad = body.clone();
        bad["out_trade_no"] = json!("has spaces");
        let (s6, b6, _) = post(&env.inst.base, "/v1/payments", k, Some("bad"), &bad).await;
        assert_eq!((s6, b6["code"].as_str()), (400, Some("validation_failed")));
        let resp = client()
            .post(format!("{}/v1/payments", env.inst.base))
            .bearer_auth(k)
            .header("Idempotency-Key", "junk")
            .body("{not json")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 400);
        let resp = client()
            .post(format!("{}/v1/payments", env.inst.base))
            .bearer_auth(k)
            .header("Idempotency-Key", "huge")
            .body(vec![b' '; 200 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 413);
    }
}

#[tokio::test]
async fn api_keys_are_scoped_and_bound_to_one_mode() {
    for env in envs("auth").await {
        let base = &env.inst.base;
        let body = json!({"channel": "alipay", "scene": "pc", "amount": 10,
                          "out_trade_no": "ord-a", "subject": "x"});
        let r = client()
            .get(format!("{base}/v1/payments"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
        let (s, b) = get(base, "/v1/payments", "pb_test_wrong_wrong_wrong_wrong").await;
        assert_eq!((s, b["code"].as_str()), (401, Some("invalid_api_key")));
        let (s, b, _) = post(
            base,
            "/v1/payments",
            &env.keys.sandbox_read,
            Some("a"),
            &body,
        )
        .await;
        assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
        let p = create(&env, "ord-a2", 10).await;
        let id = p["id"].as_str().unwrap();
        // Write without refund scope cannot refund.
        let (s, _, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            &env.keys.sandbox_write,
            Some("r"),
            &json!({"amount": 1}),
        )
        .await;
        assert_eq!(s, 403);
        // A live key creates in the live account only.
        let (s, live, _) = post(base, "/v1/payments", &env.keys.live_all, Some("l"), &body).await;
        assert_eq!(s, 201, "{live}");
        assert_eq!(
            (live["mode"].as_str(), live["account"].as_str()),
            (Some("live"), Some("ali-live"))
        );
        let mut named = body.clone();
        named["account"] = json!("ali-test");
        named["out_trade_no"] = json!("ord-a3");
        let (s, _, _) = post(base, "/v1/payments", &env.keys.live_all, Some("l2"), &named).await;
        assert_eq!(s, 400, "a live key cannot use a sandbox account");
        let (_, list) = get(base, "/v1/payments", &env.keys.sandbox_read).await;
        assert!(list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["mode"] == "sandbox"));
        let (s, _) = get(base, "/healthz", "").await;
        assert_eq!(s, 200);
        let (_, doc) = get(base, "/openapi.json", "").await;
        for path in [
            "/v1/payments",
            "/v1/payments/{id}/refunds",
            "/v1/events",
            "/notify/wechat/v3/{account}",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} documented");
        }
    }
}

#[tokio::test]
async fn refunds_never_exceed_the_payment_and_close_only_unpaid() {
    for env in envs("refunds").await {
        let base = &env.inst.base;
        let k = &env.keys.sandbox_all;
        let p = create(&env, "ord-r", 100).await;
        let id = p["id"].as_str().unwrap();
        // Not paid yet: refunds refused.
        let (s, b, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("r0"),
            &json!({"amount": 10}),
        )
        .await;
        assert_eq!((s, b["code"].as_str()), (409, Some("invalid_state")));
        notify(&env, &paid_notice("ord-r", 100, "n-r"), None).await;
        let (s, r1, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("r1"),
            &json!({"amount": 30}),
        )
        .await;
        assert_eq!((s, r1["status"].as_str()), (201, Some("succeeded")), "{r1}");
        let (s, b, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("r2"),
            &json!({"amount": 80}),
        )
        .await;
        assert_eq!(
            (s, b["code"].as_str(), b["refundable"].as_i64()),
            (409, Some("refund_exceeds_payment"), Some(70))
        );
        let (_, p) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(
            (p["status"].as_str(), p["refunded_amount"].as_i64()),
            (Some("partially_refunded"), Some(30))
        );
        let (s, _, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("r3"),
            &json!({"amount": 70, "out_refund_no": "rest"}),
        )
        .await;
        assert_eq!(s, 201);
        let (_, p) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(p["status"], "refunded");
        let (_, list) = get(base, &format!("/v1/payments/{id}/refunds"), k).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 2);
        let rid = r1["id"].as_str().unwrap();
        let (s, one) = get(base, &format!("/v1/refunds/{rid}"), k).await;
        assert_eq!((s, one["amount"].as_i64()), (200, Some(30)));
        // Paid payments cannot be closed; unpaid ones can, once.
        let (s, b, _) = post(
            base,
            &format!("/v1/payments/{id}/close"),
            k,
            Some("c1"),
            &json!({}),
        )
        .await;
        assert_eq!((s, b["code"].as_str()), (409, Some("invalid_state")));
        let q = create(&env, "ord-c", 100).await;
        let qid = q["id"].as_str().unwrap();
        let (s, c, _) = post(
            base,
            &format!("/v1/payments/{qid}/close"),
            k,
            Some("c2"),
            &json!({}),
        )
        .await;
        assert_eq!((s, c["status"].as_str()), (200, Some("closed")));
        let gw = &env.inst.gw;
        gw.deliver_webhooks_once(gw.now_ms(), 50).await.unwrap();
        let kinds: Vec<String> = env
            .hooks
            .bodies()
            .iter()
            .map(|b| b["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds,
            [
                "payment.paid",
                "refund.succeeded",
                "refund.succeeded",
                "payment.closed"
            ]
        );
        env.hooks.verify_all(gw.now_ms() / 1000);
    }
}

#[tokio::test]
async fn unknown_create_outcome_is_queried_never_assumed() {
    for env in envs("unknown").await {
        *env.provider.create_unknown.lock().unwrap() = true;
        let (status, p, _) = post(
            &env.inst.base,
            "/v1/payments",
            &env.keys.sandbox_all,
            Some("create-ord-u"),
            &json!({"channel": "alipay", "scene": "pc", "amount": 100,
                    "out_trade_no": "ord-u", "subject": "Test order"}),
        )
        .await;
        // Not an answer yet: 202, and the recovery job settles it.
        assert_eq!(
            (status, p["status"].as_str()),
            (202, Some("created")),
            "{p}"
        );
        let id = p["id"].as_str().unwrap();
        env.provider
            .query
            .lock()
            .unwrap()
            .insert("ord-u".into(), ProviderPaymentStatus::Paid);
        let gw = &env.inst.gw;
        // The query job is due 5 s after the failure; drive time through the store clock.
        env._db.clock.advance(6_000);
        assert!(gw.run_jobs_once(gw.now_ms(), 10).await.unwrap() >= 1);
        let (_, p) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}"),
            &env.keys.sandbox_read,
        )
        .await;
        assert_eq!(p["status"], "paid");
        let (_, calls) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}/timeline"),
            &env.keys.sandbox_read,
        )
        .await;
        assert!(calls["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["kind"] == "query"));
    }
}

#[tokio::test]
async fn failed_webhooks_back_off_and_are_delivered_later() {
    for d in db::dbs("webhook_retry").await {
        let store = d.open().await;
        let keys = make_keys(&store).await;
        let (hook, hooks, answer) = start_receiver_with_status(500).await;
        let provider = Arc::new(Scripted::default());
        let inst = start_gateway(store, accounts(provider.clone()), &hook).await;
        let env = Env {
            _db: d,
            inst,
            keys,
            hooks: hooks.clone(),
            provider,
        };
        create(&env, "ord-w", 100).await;
        notify(&env, &paid_notice("ord-w", 100, "n-w"), None).await;
        let gw = &env.inst.gw;
        // The merchant is down: one attempt, then nothing until the backoff has passed.
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 1);
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 0);
        env._db.clock.advance(59_000);
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 0);
        env._db.clock.advance(1_000);
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 1);
        // The second retry waits 5 minutes; the merchant is back by then.
        answer.store(200, std::sync::atomic::Ordering::SeqCst);
        env._db.clock.advance(5 * 60_000);
        assert_eq!(gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(), 1);
        env._db.clock.advance(86_400_000);
        assert_eq!(
            gw.deliver_webhooks_once(gw.now_ms(), 10).await.unwrap(),
            0,
            "delivered: done"
        );
        let bodies = hooks.bodies();
        assert_eq!(bodies.len(), 3);
        assert!(
            bodies.iter().all(|b| b["id"] == bodies[0]["id"]),
            "same event id every time"
        );
        // Each attempt is signed at its own time.
        let sigs: Vec<_> = hooks
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h["paybridge-signature"].clone())
            .collect();
        assert_ne!(sigs[0], sigs[2]);
    }
}

#[tokio::test]
async fn unknown_refund_outcome_stays_pending_until_a_query_settles_it() {
    for env in envs("refund_unknown").await {
        let base = &env.inst.base;
        let k = &env.keys.sandbox_all;
        let p = create(&env, "ord-ru", 100).await;
        let id = p["id"].as_str().unwrap();
        notify(&env, &paid_notice("ord-ru", 100, "n-ru"), None).await;
        *env.provider.refund_unknown.lock().unwrap() = true;
        let (s, r, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("ru"),
            &json!({"amount": 40}),
        )
        .await;
        assert_eq!((s, r["status"].as_str()), (202, Some("pending")), "{r}");
        // The pending refund still counts against the payment: no overspend meanwhile.
        let (s, b, _) = post(
            base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("ru2"),
            &json!({"amount": 61}),
        )
        .await;
        assert_eq!(
            (s, b["code"].as_str()),
            (409, Some("refund_exceeds_payment"))
        );
        let gw = &env.inst.gw;
        env._db.clock.advance(6_000);
        assert!(gw.run_jobs_once(gw.now_ms(), 10).await.unwrap() >= 1);
        let rid = r["id"].as_str().unwrap();
        let (_, r) = get(base, &format!("/v1/refunds/{rid}"), k).await;
        assert_eq!(r["status"], "succeeded");
        let (_, p) = get(base, &format!("/v1/payments/{id}"), k).await;
        assert_eq!(
            (p["status"].as_str(), p["refunded_amount"].as_i64()),
            (Some("partially_refunded"), Some(40))
        );
    }
}
