//! The real channels against the in-process sandbox, over real HTTP: for every account (Alipay
//! public-key + AES, Alipay certificate mode, WeChat v3, WeChat v2) and every scene, create →
//! the buyer pays in the sandbox → the sandbox notifies → paid → a signed webhook reaches the
//! receiver. Then refunds and close. SQLite always; PostgreSQL when `PAYBRIDGE_TEST_PG_URL` is
//! set. Time is the sandbox's manual clock: notifications go out only when the test says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, ALIPAY_CERT, WECHAT_V2, WECHAT_V3};
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock};
use paybridge_store::{Store, StoreOptions};
use serde_json::{json, Value};

struct World {
    _db: db::Db,
    sb: Sandbox,
    inst: Instance,
    keys: Keys,
    hooks: Received,
}

async fn worlds(test: &str) -> Vec<World> {
    let mut out = Vec::new();
    for d in db::dbs(test).await {
        use paybridge_sandbox::Clock as _;
        let now = SystemClock.now_ms();
        let sb = Sandbox::start_with(
            SandboxConfig::generate(now / 1000).unwrap(),
            StartOptions {
                manual_clock: Some(ManualClock::new(now)),
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
        // The gateway keeps real time (the sandbox clock starts there and the tests do not
        // advance it), so v3 timestamps agree.
        let store = Store::open_with(&d.url, StoreOptions::default())
            .await
            .unwrap();
        let keys = make_keys(&store).await;
        let (hook, hooks) = start_receiver().await;
        let inst =
            start_configured(store, sandbox_accounts(&sb, Mode::Sandbox).unwrap(), &hook).await;
        out.push(World {
            _db: d,
            sb,
            inst,
            keys,
            hooks,
        });
    }
    out
}

impl World {
    async fn create(
        &self,
        account: &str,
        channel: &str,
        scene: &str,
        no: &str,
        amount: i64,
    ) -> Value {
        let mut body = json!({"account": account, "channel": channel, "scene": scene,
            "amount": amount, "out_trade_no": no, "subject": "E2E order",
            "client_ip": "203.0.113.7", "return_url": "https://shop.example/return"});
        if scene == "jsapi" {
            body["payer_id"] = json!("buyer-openid-1");
        }
        if scene == "barcode" {
            body["auth_code"] = json!("287000000000000001");
        }
        let (status, p, _) = post(
            &self.inst.base,
            "/v1/payments",
            &self.keys.sandbox_all,
            Some(&format!("c-{no}")),
            &body,
        )
        .await;
        assert_eq!(status, 201, "{account} {scene}: {p}");
        p
    }

    async fn payment(&self, id: &str) -> Value {
        get(
            &self.inst.base,
            &format!("/v1/payments/{id}"),
            &self.keys.sandbox_read,
        )
        .await
        .1
    }

    /// The buyer's device opens what the client action says (Alipay page, wap and App orders
    /// reach the provider only then), pays in the sandbox, and the sandbox notifies now.
    async fn buyer_pays(&self, no: &str, action: &Value) {
        if self.sb.trade_by_out_no(no).is_none() {
            let url = match action["type"].as_str() {
                Some("redirect") | Some("form") => action["url"].as_str().unwrap().to_string(),
                Some("app_order_string") => {
                    format!(
                        "{}?{}",
                        self.sb.gateway_url(),
                        action["order_string"].as_str().unwrap()
                    )
                }
                other => panic!("{no}: nothing for the buyer to open in {other:?}"),
            };
            let page = client().get(&url).send().await.unwrap();
            assert!(page.status().is_success(), "{no}: {}", page.status());
        }
        let trade = self
            .sb
            .trade_by_out_no(no)
            .unwrap_or_else(|| panic!("no sandbox trade {no}"));
        self.sb.pay(&trade.id).unwrap();
        // The sandbox derives Alipay notify ids from its clock: keep them distinct.
        self.sb.advance(1000);
        self.sb.run_due().await;
    }

    async fn deliver(&self) -> usize {
        let gw = &self.inst.gw;
        gw.deliver_webhooks_once(gw.now_ms(), 100).await.unwrap()
    }
}

const ACCOUNTS: &[(&str, &str)] = &[
    (ALIPAY, "alipay"),
    (ALIPAY_CERT, "alipay"),
    (WECHAT_V3, "wechat"),
    (WECHAT_V2, "wechat"),
];
const SCENES: &[&str] = &["pc", "wap", "app", "qr", "jsapi", "barcode"];

#[tokio::test]
async fn every_channel_and_scene_pays_and_sends_a_signed_webhook() {
    for w in worlds("e2e_pay").await {
        let mut expected_hooks = 0;
        for (i, (account, channel)) in ACCOUNTS.iter().enumerate() {
            for (j, scene) in SCENES.iter().enumerate() {
                let no = format!("E2E{i}{j}{}", scene.to_uppercase());
                if *account == WECHAT_V3 && *scene == "barcode" {
                    // Micropay exists only in APIv2: a v3-only account refuses it up front.
                    let body = json!({"account": account, "channel": channel, "scene": scene, "amount": 1,
                        "out_trade_no": no, "subject": "x", "auth_code": "287000000000000001"});
                    let (s, b, _) = post(
                        &w.inst.base,
                        "/v1/payments",
                        &w.keys.sandbox_all,
                        Some("v3bc"),
                        &body,
                    )
                    .await;
                    assert_eq!((s, b["code"].as_str()), (400, Some("validation_failed")));
                    // Refused before the first write (issue 9, finding 5): no payment, no event,
                    // no webhook, and the order number is still free.
                    let store = &w.inst.gw.store;
                    assert!(store
                        .get_payment_by_out_trade_no(account, &no)
                        .await
                        .unwrap()
                        .is_none());
                    assert_eq!(w.deliver().await, 0);
                    let p = w.create(account, channel, "qr", &no, 1).await;
                    assert_eq!(p["status"], "pending");
                    let id = p["id"].as_str().unwrap().to_string();
                    assert!(w
                        .inst
                        .gw
                        .store
                        .list_payment_events(&id)
                        .await
                        .unwrap()
                        .is_empty());
                    continue;
                }
                let p = w.create(account, channel, scene, &no, 100 + j as i64).await;
                let id = p["id"].as_str().unwrap().to_string();
                assert!(p["client_action"].is_object(), "{account} {scene}: {p}");
                if *scene == "barcode" {
                    // The sandbox's default barcode buyer pays at once: answered synchronously.
                    assert_eq!(p["status"], "paid", "{account} barcode: {p}");
                } else {
                    assert_eq!(p["status"], "pending", "{account} {scene}: {p}");
                    w.buyer_pays(&no, &p["client_action"]).await;
                    let paid = w.payment(&id).await;
                    let inbox = w
                        .inst
                        .gw
                        .store
                        .list_recent_notifications(Some(account), 3)
                        .await
                        .unwrap();
                    let why: Vec<_> = inbox
                        .iter()
                        .map(|n| (n.outcome.clone(), n.reason.clone()))
                        .collect();
                    assert_eq!(paid["status"], "paid", "{account} {scene}: {why:?}");
                    assert!(paid["provider_trade_no"].is_string());
                }
                expected_hooks += 1;
                assert_eq!(w.deliver().await, 1, "{account} {scene}: one webhook");
                assert_eq!(w.hooks.len(), expected_hooks);
                let hook = w.hooks.bodies().pop().unwrap();
                assert_eq!(
                    (hook["type"].as_str(), hook["data"]["id"].as_str()),
                    (Some("payment.paid"), Some(id.as_str()))
                );
                // The provider calls were logged against the payment, redacted.
                let (_, calls) = get(
                    &w.inst.base,
                    &format!("/v1/payments/{id}/provider-calls"),
                    &w.keys.sandbox_read,
                )
                .await;
                let calls = calls["data"].as_array().unwrap();
                // Alipay page, wap and App orders are signed locally: no call until a query.
                let signed_locally = *channel == "alipay" && ["pc", "wap", "app"].contains(scene);
                assert_eq!(
                    calls.is_empty(),
                    signed_locally,
                    "{account} {scene}: call log"
                );
                assert!(calls
                    .iter()
                    .all(|c| !c["request"].as_str().unwrap().contains("BEGIN PRIVATE KEY")));
            }
        }
        w.hooks.verify_all(w.inst.gw.now_ms() / 1000);
        // The sandbox notified once per non-barcode payment and each got the success reply.
        let notes = w.sb.notifications();
        assert!(
            notes.len() >= ACCOUNTS.len() * (SCENES.len() - 1),
            "{}",
            notes.len()
        );
    }
}

#[tokio::test]
async fn refunds_and_close_on_every_account() {
    for w in worlds("e2e_refund").await {
        for (i, (account, channel)) in ACCOUNTS.iter().enumerate() {
            let no = format!("REFUND{i}QR");
            let p = w.create(account, channel, "qr", &no, 1000).await;
            let id = p["id"].as_str().unwrap().to_string();
            w.buyer_pays(&no, &p["client_action"]).await;
            let k = &w.keys.sandbox_all;
            let (s, r1, _) = post(
                &w.inst.base,
                &format!("/v1/payments/{id}/refunds"),
                k,
                Some(&format!("r1{no}")),
                &json!({"amount": 300, "reason": "partial"}),
            )
            .await;
            assert_eq!(s, 201, "{account}: {r1}");
            // WeChat settles refunds asynchronously: its notification (or a query) finishes it.
            w.sb.run_due().await;
            let gw = &w.inst.gw;
            let rid = r1["id"].as_str().unwrap();
            let mut refund = get(&w.inst.base, &format!("/v1/refunds/{rid}"), k).await.1;
            if refund["status"] == "pending" {
                gw.run_jobs_once(gw.now_ms() + 60_000, 10).await.unwrap();
                refund = get(&w.inst.base, &format!("/v1/refunds/{rid}"), k).await.1;
            }
            assert_eq!(refund["status"], "succeeded", "{account}: {refund}");
            let (s, b, _) = post(
                &w.inst.base,
                &format!("/v1/payments/{id}/refunds"),
                k,
                Some(&format!("r2{no}")),
                &json!({"amount": 701}),
            )
            .await;
            assert_eq!(
                (s, b["code"].as_str()),
                (409, Some("refund_exceeds_payment")),
                "{account}"
            );
            let paid = w.payment(&id).await;
            assert_eq!(
                (paid["status"].as_str(), paid["refunded_amount"].as_i64()),
                (Some("partially_refunded"), Some(300)),
                "{account}"
            );

            // Close an unpaid order: the provider closes it, then we do.
            let no = format!("CLOSE{i}PC");
            let c = w.create(account, channel, "pc", &no, 500).await;
            let cid = c["id"].as_str().unwrap();
            let (s, closed, _) = post(
                &w.inst.base,
                &format!("/v1/payments/{cid}/close"),
                k,
                Some(&format!("close{no}")),
                &json!({}),
            )
            .await;
            assert_eq!(
                (s, closed["status"].as_str()),
                (200, Some("closed")),
                "{account}: {closed}"
            );
        }
        assert!(w.deliver().await >= ACCOUNTS.len() * 3);
        w.hooks.verify_all(w.inst.gw.now_ms() / 1000);
        let kinds: Vec<String> = w
            .hooks
            .bodies()
            .iter()
            .map(|h| h["type"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            kinds.iter().filter(|k| *k == "refund.succeeded").count(),
            ACCOUNTS.len()
        );
        assert_eq!(
            kinds.iter().filter(|k| *k == "payment.closed").count(),
            ACCOUNTS.len()
        );
    }
}

#[tokio::test]
async fn sandbox_notification_replayed_fifty_times_applies_once() {
    for w in worlds("e2e_dup").await {
        for (account, channel) in [
            (ALIPAY, "alipay"),
            (WECHAT_V3, "wechat"),
            (WECHAT_V2, "wechat"),
        ] {
            let no = format!("DUP{}", account.replace('-', ""));
            let p = w.create(account, channel, "qr", &no, 777).await;
            let id = p["id"].as_str().unwrap().to_string();
            w.buyer_pays(&no, &p["client_action"]).await;
            // Replay the exact request the sandbox sent, 50 times at once.
            let note = w
                .inst
                .gw
                .store
                .list_payment_notifications(&id)
                .await
                .unwrap()
                .pop()
                .unwrap();
            let url = format!("{}{}", w.inst.base, note.path);
            let mut tasks = Vec::new();
            for _ in 0..50 {
                let mut req = client().post(&url).body(note.body.clone());
                for (k, v) in &note.headers {
                    if k != "content-length" && k != "host" {
                        req = req.header(k, v);
                    }
                }
                tasks.push(tokio::spawn(async move {
                    req.send().await.unwrap().status().as_u16()
                }));
            }
            for t in tasks {
                assert!(t.await.unwrap() < 300);
            }
            let events = w.inst.gw.store.list_payment_events(&id).await.unwrap();
            assert_eq!(events.len(), 1, "{account}: exactly one event");
            let inbox = w
                .inst
                .gw
                .store
                .list_payment_notifications(&id)
                .await
                .unwrap();
            assert_eq!(inbox.len(), 51);
            assert_eq!(
                inbox
                    .iter()
                    .filter(|n| n.outcome.as_deref() == Some("applied"))
                    .count(),
                1
            );
        }
    }
}

/// Re-splits a signed `k=v&k=v` string so that it stays byte-identical while the fields of
/// `region` (smuggled into merchant text) become real fields: before the region only keys that
/// sort before the region's first key start a field, the region's tokens all do, and the rest of
/// the string is absorbed into the region's last field (as the attacker's `zz=w`).
fn resplit(signed: &str, region: &str) -> Vec<(String, String)> {
    let at = signed
        .find(region)
        .expect("the smuggled fields are in the signed string");
    let first_key = region.split('=').next().unwrap();
    let mut fields: Vec<(String, String)> = Vec::new();
    let before = signed[..at].trim_end_matches('&');
    for token in before.split('&') {
        let (k, v) = token.split_once('=').unwrap();
        match fields.last_mut() {
            Some(last) if k >= first_key || k <= last.0.as_str() => {
                last.1.push('&');
                last.1.push_str(token);
            }
            _ => fields.push((k.to_string(), v.to_string())),
        }
    }
    for token in region.split('&') {
        let (k, v) = token.split_once('=').unwrap();
        fields.push((k.to_string(), v.to_string()));
    }
    let rest = &signed[at + region.len()..];
    fields.last_mut().unwrap().1.push_str(rest);
    fields
}

/// Issue 10 item 1: an attacker's own order whose subject (Alipay) or attach (WeChat APIv2)
/// carries `&k=v` pairs, paid for real, yields a genuine signed notification that re-splits
/// into one naming an unpaid 888.00 victim. The gateway refuses such text at creation, and the
/// re-split notification (from an order that reached the provider anyway, e.g. created before
/// the check) must not pay the victim.
#[tokio::test]
async fn field_smuggling_through_merchant_text_pays_nothing() {
    use paybridge_core::channel::CreatePayment;
    use paybridge_core::{Fen, Scene};
    for w in worlds("e2e_smuggle").await {
        for (account, channel) in [
            (ALIPAY, "alipay"),
            (ALIPAY_CERT, "alipay"),
            (WECHAT_V2, "wechat"),
        ] {
            let tag = account.replace('-', "");
            let victim_no = format!("VICTIM{tag}");
            let attack_no = format!("ATTACK{tag}");
            let alipay = channel == "alipay";
            let region = if alipay {
                format!(
                    "out_trade_no={victim_no}&total_amount=888.00&trade_no=T2\
                     &trade_status=TRADE_SUCCESS&zz=w"
                )
            } else {
                let mch = w.inst.gw.accounts()[account].merchant_id.clone().unwrap();
                format!(
                    "bank_type=OTHERS&cash_fee=88800&fee_type=CNY&mch_id={mch}\
                     &out_trade_no={victim_no}&result_code=SUCCESS&return_code=SUCCESS\
                     &total_fee=88800&trade_type=NATIVE&transaction_id=T2&zz=w"
                )
            };
            let smuggled = format!("x&{region}");

            // Layer 1: the gateway refuses the text before writing anything.
            let mut body = json!({"account": account, "channel": channel, "scene": "qr",
                "amount": 1, "out_trade_no": attack_no, "subject": smuggled});
            for (field, text) in [
                ("subject", smuggled.as_str()),
                ("description", smuggled.as_str()),
                ("subject", "pay \u{202E}cod.exe"),
                ("subject", "\u{200B}\u{200B}"),
            ] {
                body["subject"] = json!("ok");
                body[field] = json!(text);
                let (status, e, _) = post(
                    &w.inst.base,
                    "/v1/payments",
                    &w.keys.sandbox_all,
                    Some(&format!("s-{attack_no}-{field}-{}", text.len())),
                    &body,
                )
                .await;
                // The gateway answers every validation failure 400 validation_failed.
                assert_eq!(status, 400, "{account} {field} {text:?}: {e}");
                assert_eq!(e["code"], "validation_failed");
            }
            assert!(w
                .inst
                .gw
                .store
                .get_payment_by_out_trade_no(account, &attack_no)
                .await
                .unwrap()
                .is_none());

            // Layer 2: the order reached the provider anyway; its genuine notification is
            // re-split and posted over HTTP.
            let victim = w.create(account, channel, "qr", &victim_no, 88800).await;
            let victim_id = victim["id"].as_str().unwrap().to_string();
            let acc = w.inst.gw.accounts()[account].clone();
            let ch = acc.channels[&acc.primary].clone();
            let (subject, attach) = if alipay {
                (smuggled.clone(), None)
            } else {
                ("x".to_string(), Some(smuggled.clone()))
            };
            let action = ch
                .create_payment(&CreatePayment {
                    out_trade_no: attack_no.clone(),
                    amount: Fen(1),
                    subject,
                    description: None,
                    scene: Scene::Qr,
                    expires_at: None,
                    notify_url: w.inst.gw.notify_url(&acc, false),
                    return_url: None,
                    client_ip: Some("203.0.113.7".into()),
                    payer_id: None,
                    auth_code: None,
                    attach,
                })
                .await
                .unwrap();
            w.buyer_pays(&attack_no, &serde_json::to_value(&action).unwrap())
                .await;
            let trade = w.sb.trade_by_out_no(&attack_no).unwrap();
            let genuine =
                w.sb.notifications()
                    .into_iter()
                    .rfind(|n| n.trade_id == trade.id)
                    .expect("the sandbox notified the attacker's payment");
            let (forged_body, content_type) = if alipay {
                let form =
                    paybridge_alipay::notify::NotifyForm::parse(genuine.request.body.as_bytes())
                        .unwrap();
                let signed = form.string_to_sign(paybridge_alipay::notify::NotifyRule::V1);
                let mut fields = resplit(&signed, &region);
                for k in ["sign_type", "sign"] {
                    fields.push((k.into(), form.get(k).unwrap().to_string()));
                }
                let forged = alipay_form(&fields, &signed);
                (forged, "application/x-www-form-urlencoded; charset=utf-8")
            } else {
                let doc =
                    paybridge_wechatpay::v2::parse_xml(genuine.request.body.as_bytes()).unwrap();
                let pairs = || doc.fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                let signed = paybridge_wechatpay::v2::sign::string_a(pairs());
                let mut fields = resplit(&signed, &region);
                assert_eq!(
                    paybridge_wechatpay::v2::sign::string_a(
                        fields.iter().map(|(k, v)| (k.as_str(), v.as_str()))
                    ),
                    signed
                );
                fields.push(("sign".into(), doc.get("sign").unwrap().to_string()));
                let xml = paybridge_wechatpay::v2::write_xml(
                    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                );
                (xml, "text/xml")
            };
            let url = genuine.request.url.clone();
            let reply = client()
                .post(&url)
                .header("content-type", content_type)
                .body(forged_body)
                .send()
                .await
                .unwrap();
            assert!(reply.status().is_success(), "{account}: {}", reply.status());
            let p = w.payment(&victim_id).await;
            assert_ne!(p["status"], "paid", "{account}: the victim was paid: {p}");
            assert!(
                w.inst
                    .gw
                    .store
                    .list_payment_events(&victim_id)
                    .await
                    .unwrap()
                    .is_empty(),
                "{account}: no event on the victim"
            );
            let recent = w
                .inst
                .gw
                .store
                .list_recent_notifications(Some(account), 10)
                .await
                .unwrap();
            assert!(
                recent
                    .iter()
                    .any(|n| n.outcome.as_deref() == Some("unverified")
                        && n.reason.as_deref().is_some_and(|r| r.contains("separator"))),
                "{account}: {:?}",
                recent
                    .iter()
                    .map(|n| (&n.outcome, &n.reason))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// The re-split Alipay form, encoded, after checking that its string-to-sign is the genuine one.
fn alipay_form(fields: &[(String, String)], signed: &str) -> String {
    let form = paybridge_alipay::notify::NotifyForm::from_pairs(fields.to_vec());
    assert_eq!(
        form.string_to_sign(paybridge_alipay::notify::NotifyRule::V1),
        signed
    );
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

/// A genuine sandbox notification for a fresh paid order of `account`, as a model of the ids,
/// app and seller the sandbox uses.
async fn alipay_model(w: &World, account: &str, no: &str) -> (String, Vec<(String, String)>) {
    let p = w.create(account, "alipay", "qr", no, 100).await;
    w.buyer_pays(no, &p["client_action"]).await;
    let trade = w.sb.trade_by_out_no(no).unwrap();
    let model =
        w.sb.notifications()
            .into_iter()
            .rfind(|n| n.trade_id == trade.id)
            .unwrap();
    let form = paybridge_alipay::notify::NotifyForm::parse(model.request.body.as_bytes()).unwrap();
    let fields = form
        .fields()
        .iter()
        .filter(|(k, _)| k != "sign")
        .cloned()
        .collect();
    (model.request.url, fields)
}

/// `model` paying `no` for 2.50 with `changes` on top, signed by the sandbox's Alipay key
/// over the string with empty values dropped or kept, form-encoded.
fn alipay_signed(
    w: &World,
    model: &[(String, String)],
    no: &str,
    changes: &[(&str, &str)],
    keep_empty: bool,
) -> String {
    use paybridge_alipay::sign::{
        rsa2_sign, string_to_sign, string_to_sign_keeping_empty, NOTIFY_V1_EXCLUDED,
    };
    let mut fields: Vec<(String, String)> = model
        .iter()
        .map(|(k, v)| {
            let v = match k.as_str() {
                "out_trade_no" => no.to_string(),
                "total_amount" | "receipt_amount" | "buyer_pay_amount" | "invoice_amount" => {
                    "2.50".into()
                }
                "notify_id" | "trade_no" => format!("{v}{no}"),
                "fund_bill_list" => {
                    "[{\"amount\":\"2.50\",\"fundChannel\":\"ALIPAYACCOUNT\"}]".into()
                }
                _ => v.clone(),
            };
            (k.clone(), v)
        })
        .collect();
    for (k, v) in changes {
        match fields.iter_mut().find(|(key, _)| key == k) {
            Some(f) => f.1 = v.to_string(),
            None => fields.push((k.to_string(), v.to_string())),
        }
    }
    let pairs = fields.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let content = if keep_empty {
        string_to_sign_keeping_empty(pairs, NOTIFY_V1_EXCLUDED)
    } else {
        string_to_sign(pairs, NOTIFY_V1_EXCLUDED)
    };
    let keys = paybridge_sandbox::config::Keys::from_config(w.sb.config()).unwrap();
    let sign = rsa2_sign(&keys.alipay_key, &content).unwrap();
    fields.push(("sign".into(), sign));
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .finish()
}

async fn post_form(url: &str, form: String) -> String {
    client()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Issue 10 item 2: the SDKs disagree on empty values, so a genuine notification with `body=`
/// is signed either with the empty field dropped or kept as `k=`. Both must pay the order, in
/// both Alipay key modes, over HTTP to the gateway.
#[tokio::test]
async fn alipay_notifications_with_empty_values_pay_in_both_forms() {
    for w in worlds("e2e_empty").await {
        for account in [ALIPAY, ALIPAY_CERT] {
            let tag = account.replace('-', "");
            let (url, model) = alipay_model(&w, account, &format!("MODEL{tag}")).await;
            for (n, keep_empty) in [(1, false), (2, true)] {
                let no = format!("EMPTY{n}{tag}");
                let p = w.create(account, "alipay", "qr", &no, 250).await;
                let id = p["id"].as_str().unwrap().to_string();
                let form = alipay_signed(&w, &model, &no, &[("body", "")], keep_empty);
                assert!(form.contains("body=&"));
                assert_eq!(post_form(&url, form).await, "success", "{account} {n}");
                let paid = w.payment(&id).await;
                assert_eq!(
                    paid["status"], "paid",
                    "{account} keep_empty={keep_empty}: {paid}"
                );
            }
        }
    }
}

/// Issue 10 item 10: a correctly signed Alipay notification naming another app id is a
/// `mismatch` linked to the order it names (its timeline shows it), not `unverified`, and
/// pays nothing.
#[tokio::test]
async fn alipay_notification_for_another_app_is_a_linked_mismatch() {
    for w in worlds("e2e_other_app").await {
        for account in [ALIPAY, ALIPAY_CERT] {
            let tag = account.replace('-', "");
            let (url, model) = alipay_model(&w, account, &format!("MODEL{tag}")).await;
            let no = format!("OTHER{tag}");
            let p = w.create(account, "alipay", "qr", &no, 250).await;
            let id = p["id"].as_str().unwrap().to_string();
            let form = alipay_signed(
                &w,
                &model,
                &no,
                &[
                    ("app_id", "2021009999999999"),
                    ("auth_app_id", "2021009999999999"),
                ],
                false,
            );
            // Final: Alipay stops resending it.
            assert_eq!(post_form(&url, form).await, "success");
            assert_ne!(w.payment(&id).await["status"], "paid");
            let inbox = w
                .inst
                .gw
                .store
                .list_payment_notifications(&id)
                .await
                .unwrap();
            assert_eq!(inbox.len(), 1, "{account}: linked to the order it names");
            assert_eq!(inbox[0].outcome.as_deref(), Some("mismatch"), "{account}");
            assert_eq!(inbox[0].verified, Some(true));
            assert!(inbox[0]
                .reason
                .as_deref()
                .unwrap()
                .contains("2021009999999999"));
        }
    }
}

/// Issue 10 item 9: a forged APIv3 notification (a serial we do not know, a stale timestamp)
/// is a sender fault: 4xx with a generic message that names neither the serial nor our clock;
/// the reason is in the inbox.
#[tokio::test]
async fn forged_wechat_v3_notification_gets_a_generic_4xx() {
    for w in worlds("e2e_v3_forged").await {
        let url = format!("{}/notify/wechat/v3/{WECHAT_V3}", w.inst.base);
        for (serial, timestamp) in [("FORGEDSERIAL0001", "1700000000"), ("", "x")] {
            let reply = client()
                .post(&url)
                .header("content-type", "application/json")
                .header("wechatpay-serial", serial)
                .header("wechatpay-timestamp", timestamp)
                .header("wechatpay-nonce", "n")
                .header("wechatpay-signature", "c2lnbmF0dXJl")
                .header("wechatpay-signature-type", "WECHATPAY2-SHA256-RSA2048")
                .body(r#"{"id":"x","resource":{}}"#)
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            let body = reply.text().await.unwrap();
            assert!((400..500).contains(&status), "{status} {body}");
            assert!(!body.contains("FORGEDSERIAL"), "{body}");
            assert!(!body.contains("1700000000"), "{body}");
            assert!(
                !body.contains(&(w.inst.gw.now_ms() / 1_000_000).to_string()),
                "{body}"
            );
        }
        let inbox = w
            .inst
            .gw
            .store
            .list_recent_notifications(Some(WECHAT_V3), 10)
            .await
            .unwrap();
        assert_eq!(inbox.len(), 2);
        for n in &inbox {
            assert_eq!(n.outcome.as_deref(), Some("unverified"));
            assert!(n.reason.as_deref().is_some_and(|r| !r.is_empty()));
        }
    }
}

/// Issue 10 item 10: a WeChat APIv2 refund notification (genuinely encrypted with the API key)
/// whose amount contradicts the refund is a `mismatch` with a reason, not `no_change`, and
/// settles nothing.
#[tokio::test]
async fn wechat_v2_refund_notification_with_another_amount_is_a_mismatch() {
    use paybridge_wechatpay::v2::notify::encrypt_req_info;
    use paybridge_wechatpay::v2::xml::write_xml_root;
    for w in worlds("e2e_v2_refund_mismatch").await {
        let no = "V2RMISMATCH1";
        let p = w.create(WECHAT_V2, "wechat", "qr", no, 1000).await;
        let id = p["id"].as_str().unwrap().to_string();
        w.buyer_pays(no, &p["client_action"]).await;
        let k = &w.keys.sandbox_all;
        let (s, r, _) = post(
            &w.inst.base,
            &format!("/v1/payments/{id}/refunds"),
            k,
            Some("rm-1"),
            &json!({"amount": 300}),
        )
        .await;
        assert_eq!(s, 201, "{r}");
        let rid = r["id"].as_str().unwrap().to_string();
        let refund = w.inst.gw.store.get_refund(&rid).await.unwrap().unwrap();
        let m = &w.sb.config().wechat.merchants[0];
        let inner = write_xml_root(
            "root",
            [
                ("out_trade_no", no),
                ("out_refund_no", refund.out_refund_no.as_str()),
                ("refund_id", "50000000000000000001"),
                ("total_fee", "1000"),
                ("refund_fee", "900"),
                ("settlement_refund_fee", "900"),
                ("refund_status", "SUCCESS"),
                ("success_time", "2026-12-02 12:00:00"),
            ],
        );
        let req_info = encrypt_req_info(&inner, &m.api_v2_key).unwrap();
        let body = paybridge_wechatpay::v2::write_xml([
            ("return_code", "SUCCESS"),
            ("appid", m.appid.as_str()),
            ("mch_id", m.mchid.as_str()),
            ("nonce_str", "n1"),
            ("req_info", req_info.as_str()),
        ]);
        let url = format!("{}/notify/wechat/v2/{WECHAT_V2}/refund", w.inst.base);
        let reply = client()
            .post(&url)
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success());
        let stored = get(&w.inst.base, &format!("/v1/refunds/{rid}"), k).await.1;
        assert_ne!(stored["status"], "succeeded", "{stored}");
        let inbox = w
            .inst
            .gw
            .store
            .list_payment_notifications(&id)
            .await
            .unwrap();
        let last = inbox
            .iter()
            .find(|n| n.path.ends_with("/refund"))
            .expect("the refund notification is linked to its payment");
        assert_eq!(
            last.outcome.as_deref(),
            Some("mismatch"),
            "{:?}",
            last.reason
        );
        assert!(last.reason.as_deref().unwrap().contains("900"));
        let jobs = w.inst.gw.store.list_payment_jobs(&id).await.unwrap();
        assert!(jobs.iter().any(|j| j.kind == "refund.query"), "{jobs:?}");
    }
}
