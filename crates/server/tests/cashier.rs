//! The hosted cashier against the in-process sandbox, over real HTTP, on SQLite and (when
//! `PAYBRIDGE_TEST_PG_URL` is set) PostgreSQL: create (validation writes nothing, Idempotency-Key
//! semantics, the OpenAPI document), wallet orders through the money path, WeChat's web
//! authorization for JSAPI, and the one order paid in both wallets: the second payment is
//! refunded and the cashier names the first as the one that keeps the money.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, ALIPAY_CERT, WECHAT_V2, WECHAT_V3};
use common::*;
use paybridge_core::{Channel, Mode, Scene};
use paybridge_sandbox::{ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock};
use paybridge_server::service::{CashierChoice, CashierStatus};
use paybridge_store::{Store, StoreOptions};
use serde_json::{json, Value};

struct World {
    _db: db::Db,
    sb: Sandbox,
    inst: Instance,
    keys: Keys,
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
        let store = Store::open_with(&d.url, StoreOptions::default())
            .await
            .unwrap();
        let keys = make_keys(&store).await;
        let (hook, _hooks) = start_receiver().await;
        let inst =
            start_configured(store, sandbox_accounts(&sb, Mode::Sandbox).unwrap(), &hook).await;
        out.push(World {
            _db: d,
            sb,
            inst,
            keys,
        });
    }
    out
}

fn cashier_body(no: &str) -> Value {
    json!({
        "scene": "cashier",
        "accounts": {"alipay": ALIPAY, "wechat": WECHAT_V3},
        "amount": 1234,
        "out_trade_no": no,
        "subject": "Cashier order",
        "return_url": "https://shop.example/done",
        "metadata": {"order": no},
    })
}

impl World {
    async fn create(&self, body: &Value, idem: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        post(
            &self.inst.base,
            "/v1/payments",
            &self.keys.sandbox_all,
            Some(idem),
            body,
        )
        .await
    }

    fn token(cashier: &Value) -> String {
        cashier["cashier_url"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    }

    async fn cashier(&self, id: &str) -> Value {
        let (status, c) = get(
            &self.inst.base,
            &format!("/v1/cashiers/{id}"),
            &self.keys.sandbox_read,
        )
        .await;
        assert_eq!(status, 200, "{c}");
        c
    }

    /// The buyer opens the wallet order's page (Alipay wap orders reach Alipay only then),
    /// pays in the sandbox, and the sandbox notifies the gateway now.
    async fn buyer_pays(&self, no: &str, action: &Value) {
        if self.sb.trade_by_out_no(no).is_none() {
            let url = action["url"].as_str().unwrap();
            let page = client().get(url).send().await.unwrap();
            assert!(page.status().is_success(), "{no}: {}", page.status());
        }
        let trade = self.sb.trade_by_out_no(no).unwrap();
        self.sb.pay(&trade.id).unwrap();
        self.sb.advance(1000);
        self.sb.run_due().await;
    }

    async fn run_jobs(&self) {
        let gw = &self.inst.gw;
        while gw.run_jobs_once(gw.now_ms(), 50).await.unwrap() > 0 {}
    }
}

#[tokio::test]
async fn create_validates_first_and_keeps_idempotency_key_semantics() {
    for w in worlds("cashier_create").await {
        let (_, doc) = get(&w.inst.base, "/openapi.json", "").await;

        // Refusals write nothing at all: no cashier, no key.
        let refusals = [
            (json!({"amount": 0}), 400),
            (json!({"subject": "a&b=c"}), 400),
            (json!({"out_trade_no": "bad no!"}), 400),
            (json!({"return_url": "javascript:alert(1)"}), 400),
            (json!({"expires_in": 5}), 400),
            (json!({"accounts": {"alipay": WECHAT_V3}}), 400),
            (json!({"accounts": {"alipay": "nope"}}), 400),
            (
                json!({"channel": "alipay", "accounts": {"wechat": WECHAT_V3}}),
                400,
            ),
            (json!({"unknown_field": 1}), 400),
            // Two Alipay accounts in sandbox mode: which one must be said.
            (json!({"accounts": {"wechat": WECHAT_V2}}), 400),
        ];
        for (i, (patch, want)) in refusals.iter().enumerate() {
            let mut body = cashier_body(&format!("REFUSED{i}"));
            for (k, v) in patch.as_object().unwrap() {
                if k == "accounts" {
                    body["accounts"] = v.clone();
                } else {
                    body[k] = v.clone();
                }
            }
            let (status, problem, _) = w.create(&body, &format!("refused-{i}")).await;
            assert_eq!(status, *want, "{patch}: {problem}");
        }
        // Nothing was written: each refused key and order number is still free.
        for i in 0..refusals.len() {
            let no = format!("REFUSED{i}");
            let (status, c, headers) = w.create(&cashier_body(&no), &format!("refused-{i}")).await;
            assert_eq!(status, 201, "{no}: {c}");
            assert!(headers.get("idempotent-replayed").is_none(), "{no}");
        }

        let body = cashier_body("SHOP0001");
        let (status, c, headers) = w.create(&body, "cashier-1").await;
        assert_eq!(status, 201, "{c}");
        assert!(headers.get("idempotent-replayed").is_none());
        assert_eq!(c["object"], "cashier");
        assert_eq!(c["scene"], "cashier");
        assert_eq!(c["status"], "open");
        assert_eq!(c["amount"], 1234);
        assert_eq!(
            c["accounts"],
            json!({"alipay": ALIPAY, "wechat": WECHAT_V3})
        );
        assert_eq!(c["payments"], json!([]));
        let url = c["cashier_url"].as_str().unwrap();
        assert!(
            url.starts_with(&format!("{}/cashier/", w.inst.base)),
            "{url}"
        );
        let token = World::token(&c);
        assert_eq!(token.len(), 43);
        common::openapi::assert_matches(&doc, "post", "/v1/payments", 201, &c);

        // The same key and body: the same cashier, marked replayed; another body: 422.
        let (status, again, headers) = w.create(&body, "cashier-1").await;
        assert_eq!(status, 201);
        assert_eq!(again["id"], c["id"]);
        assert_eq!(again["cashier_url"], c["cashier_url"]);
        assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
        let mut other = body.clone();
        other["amount"] = json!(99);
        let (status, problem, _) = w.create(&other, "cashier-1").await;
        assert_eq!(status, 422, "{problem}");
        // Another key with the merchant's order number taken: a conflict, nothing written.
        let (status, problem, _) = w.create(&body, "cashier-2").await;
        assert_eq!(status, 409, "{problem}");

        let shown = w.cashier(c["id"].as_str().unwrap()).await;
        assert_eq!(shown["cashier_url"], c["cashier_url"]);
        common::openapi::assert_matches(&doc, "get", "/v1/cashiers/{id}", 200, &shown);
        // Another mode's key does not see it.
        let (status, _) = get(
            &w.inst.base,
            &format!("/v1/cashiers/{}", c["id"].as_str().unwrap()),
            &w.keys.live_all,
        )
        .await;
        assert_eq!(status, 404);

        // One wallet only, its account the mode's only one: no accounts needed.
        let mut wechat_only = cashier_body("SHOP0002");
        wechat_only["channel"] = json!("wechat");
        wechat_only["accounts"] = json!({"wechat": WECHAT_V2});
        let (status, c2, _) = w.create(&wechat_only, "cashier-3").await;
        assert_eq!(status, 201, "{c2}");
        assert_eq!(c2["accounts"], json!({"alipay": null, "wechat": WECHAT_V2}));
    }
}

#[tokio::test]
async fn a_second_wallet_paid_for_one_order_is_refunded() {
    for w in worlds("cashier_double_pay").await {
        let (status, c, _) = w.create(&cashier_body("DOUBLE01"), "double-1").await;
        assert_eq!(status, 201, "{c}");
        let token = World::token(&c);
        let gw = &w.inst.gw;

        // The buyer starts a WeChat H5 order on one phone and an Alipay wap order on another.
        let choice = |channel, scene| CashierChoice {
            channel,
            scene,
            payer_id: None,
            client_ip: Some("203.0.113.9".into()),
        };
        let wechat = gw
            .cashier_pay(&token, choice(Channel::Wechat, Scene::Wap))
            .await
            .unwrap();
        let alipay = gw
            .cashier_pay(&token, choice(Channel::Alipay, Scene::Wap))
            .await
            .unwrap();
        assert_eq!(wechat.cashier_id.as_deref(), c["id"].as_str());
        assert_eq!(wechat.account, WECHAT_V3);
        assert_eq!(alipay.account, ALIPAY);
        assert_ne!(wechat.out_trade_no, alipay.out_trade_no);
        // The same pick again (a reload) is the same order, not a new one.
        let again = gw
            .cashier_pay(&token, choice(Channel::Wechat, Scene::Wap))
            .await
            .unwrap();
        assert_eq!(again.id, wechat.id);
        // The cashier offers Alipay only by wap, and nothing it does not name.
        assert!(gw
            .cashier_pay(&token, choice(Channel::Alipay, Scene::Qr))
            .await
            .is_err());

        // Paid in WeChat first: the gateway knows it from the notification, not the page.
        let wechat_action = serde_json::to_value(&wechat.client_action).unwrap();
        w.buyer_pays(&wechat.out_trade_no, &wechat_action).await;
        let state = gw.cashier_by_token(&token).await.unwrap();
        assert_eq!(
            state.status,
            CashierStatus::Paid {
                payment_id: wechat.id.clone()
            }
        );
        // Now nobody may start another wallet order.
        assert!(gw
            .cashier_pay(&token, choice(Channel::Alipay, Scene::Wap))
            .await
            .is_err());

        // Then the other phone pays Alipay too, before the settle job closed its order.
        let alipay_action = serde_json::to_value(&alipay.client_action).unwrap();
        w.buyer_pays(&alipay.out_trade_no, &alipay_action).await;
        let (_, second) = get(
            &w.inst.base,
            &format!("/v1/payments/{}", alipay.id),
            &w.keys.sandbox_read,
        )
        .await;
        assert_eq!(second["status"], "paid", "{second}");
        assert_eq!(second["cashier_id"], c["id"]);

        // The settle jobs (committed with each payment's paid state) run.
        w.run_jobs().await;
        let shown = w.cashier(c["id"].as_str().unwrap()).await;
        assert_eq!(shown["status"], "paid");
        assert_eq!(shown["payment_id"], json!(wechat.id));
        let (_, first) = get(
            &w.inst.base,
            &format!("/v1/payments/{}", wechat.id),
            &w.keys.sandbox_read,
        )
        .await;
        assert_eq!(first["status"], "paid", "{first}");
        assert_eq!(first["refunded_amount"], 0);
        let (_, second) = get(
            &w.inst.base,
            &format!("/v1/payments/{}", alipay.id),
            &w.keys.sandbox_read,
        )
        .await;
        assert_eq!(second["status"], "refunded", "{second}");
        assert_eq!(second["refunded_amount"], 1234);
        let (_, refunds) = get(
            &w.inst.base,
            &format!("/v1/payments/{}/refunds", alipay.id),
            &w.keys.sandbox_read,
        )
        .await;
        let refunds = refunds["data"].as_array().unwrap().clone();
        assert_eq!(refunds.len(), 1, "{refunds:?}");
        assert_eq!(refunds[0]["status"], "succeeded");
        assert!(refunds[0]["out_refund_no"]
            .as_str()
            .unwrap()
            .starts_with("dup_"));
        // The sandbox agrees: the Alipay trade's money went back.
        let trade = w.sb.trade_by_out_no(&alipay.out_trade_no).unwrap();
        assert_eq!(trade.refunded().0, 1234);

        // Running the jobs again refunds nothing more.
        w.run_jobs().await;
        let (_, refunds) = get(
            &w.inst.base,
            &format!("/v1/payments/{}/refunds", alipay.id),
            &w.keys.sandbox_read,
        )
        .await;
        assert_eq!(refunds["data"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_paid_order_closes_the_other_wallet_order() {
    for w in worlds("cashier_close_other").await {
        let (status, c, _) = w.create(&cashier_body("CLOSE001"), "close-1").await;
        assert_eq!(status, 201, "{c}");
        let token = World::token(&c);
        let gw = &w.inst.gw;
        let choice = |channel| CashierChoice {
            channel,
            scene: Scene::Wap,
            payer_id: None,
            client_ip: Some("203.0.113.9".into()),
        };
        let wechat = gw
            .cashier_pay(&token, choice(Channel::Wechat))
            .await
            .unwrap();
        let alipay = gw
            .cashier_pay(&token, choice(Channel::Alipay))
            .await
            .unwrap();
        assert_eq!(wechat.status.as_str(), "pending");
        let action = serde_json::to_value(&alipay.client_action).unwrap();
        w.buyer_pays(&alipay.out_trade_no, &action).await;
        w.run_jobs().await;
        let (_, other) = get(
            &w.inst.base,
            &format!("/v1/payments/{}", wechat.id),
            &w.keys.sandbox_read,
        )
        .await;
        assert_eq!(other["status"], "closed", "{other}");
        let trade = w.sb.trade_by_out_no(&wechat.out_trade_no).unwrap();
        assert_eq!(trade.wechat_state(), "CLOSED");
        let shown = w.cashier(c["id"].as_str().unwrap()).await;
        assert_eq!(shown["payment_id"], json!(alipay.id));
    }
}

#[tokio::test]
async fn wechat_web_authorization_gives_the_buyers_openid_once_per_code() {
    for w in worlds("cashier_wechat_oauth").await {
        let mut body = cashier_body("OAUTH001");
        body["channel"] = json!("wechat");
        body["accounts"] = json!({"wechat": WECHAT_V3});
        let (status, c, _) = w.create(&body, "oauth-1").await;
        assert_eq!(status, 201, "{c}");
        let token = World::token(&c);
        let gw = &w.inst.gw;
        let state = gw.cashier_by_token(&token).await.unwrap();
        let url = gw
            .wechat_authorize_url(&state.cashier, &state.url, "cashier")
            .unwrap();
        assert!(url.starts_with(&format!(
            "{}/connect/oauth2/authorize?appid=",
            w.sb.base_url()
        )));
        let no_redirects = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        // Outside WeChat, WeChat's authorize page does not send anyone back.
        let outside = no_redirects.get(&url).send().await.unwrap();
        assert_eq!(outside.status(), 400);
        let inside = no_redirects
            .get(&url)
            .header("user-agent", "Mozilla/5.0 (iPhone) MicroMessenger/8.0.50")
            .send()
            .await
            .unwrap();
        assert_eq!(inside.status(), 303, "{:?}", inside.headers());
        let back = url::Url::parse(inside.headers()["location"].to_str().unwrap()).unwrap();
        assert!(back.as_str().starts_with(&state.url), "{back}");
        let pairs: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
        assert_eq!(pairs["state"], "cashier");
        let code = pairs["code"].clone();

        let openid = gw.wechat_openid(&state.cashier, &code).await.unwrap();
        let appid = &w.sb.config().wechat.merchants[0].appid;
        assert_eq!(
            openid,
            paybridge_sandbox::wechat_oauth::sandbox_openid(appid)
        );
        // A code is good once.
        assert!(gw.wechat_openid(&state.cashier, &code).await.is_err());

        // The JSAPI order for that buyer carries the client's bridge parameters.
        let p = gw
            .cashier_pay(
                &token,
                CashierChoice {
                    channel: Channel::Wechat,
                    scene: Scene::Jsapi,
                    payer_id: Some(openid.clone()),
                    client_ip: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(p.scene, Scene::Jsapi);
        assert_eq!(p.status.as_str(), "pending");
        let action = p.client_action.unwrap();
        assert_eq!(action["type"], "client_params", "{action}");
        assert!(action["params"]["package"]
            .as_str()
            .unwrap()
            .starts_with("prepay_id="));
        assert!(w.sb.trade_by_out_no(&p.out_trade_no).is_some());

        // An expired cashier takes no more wallet orders.
        let mut short = cashier_body("OAUTH002");
        short["expires_in"] = json!(60);
        short["accounts"] = json!({"alipay": ALIPAY_CERT, "wechat": WECHAT_V2});
        let (status, s, _) = w.create(&short, "oauth-2").await;
        assert_eq!(status, 201, "{s}");
        let st = gw.cashier_by_token(&World::token(&s)).await.unwrap();
        assert_eq!(st.status, CashierStatus::Open);
        assert!(gw.cashier_by_token("not-a-token").await.is_err());
    }
}
