//! Hostile and malformed input at every endpoint, with the real channels: never a panic, never a
//! 5xx from the API for bad input, nothing changes, and the gateway keeps serving. Also the IP
//! allowlist behind a trusted proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY, WECHAT_V2, WECHAT_V3};
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{Sandbox, SandboxConfig};
use paybridge_server::config::IpAllowlist;
use paybridge_store::{Store, StoreOptions};

const BODIES: &[&[u8]] = &[
    b"",
    b"\xff\xfe\x00garbage",
    b"sign=&sign_type=RSA2&notify_id=1&out_trade_no=X&total_amount=1e309",
    b"app_id=%ZZ&sign=%%%",
    b"<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><xml><a>&e;</a></xml>",
    b"<xml><return_code><![CDATA[SUCCESS]]></return_code><sign>00</sign></xml>",
    b"<xml><xml><xml>",
    b"{\"id\":\"x\",\"resource\":{\"ciphertext\":\"AA==\",\"nonce\":\"short\",\"associated_data\":\"\"}}",
    b"{\"resource\":null}",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
];

#[tokio::test]
async fn malformed_input_everywhere_changes_nothing_and_never_panics() {
    let sb = Sandbox::start(SandboxConfig::generate(1_790_000_000).unwrap())
        .await
        .unwrap();
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let keys = make_keys(&store).await;
    let (hook, _) = start_receiver().await;
    let inst = start_configured(store, sandbox_accounts(&sb, Mode::Sandbox).unwrap(), &hook).await;
    let paths = [
        format!("/notify/alipay/{ALIPAY}"),
        format!("/notify/wechat/v2/{WECHAT_V2}/pay"),
        format!("/notify/wechat/v2/{WECHAT_V2}/refund"),
        format!("/notify/wechat/v3/{WECHAT_V3}"),
    ];
    let c = client();
    for path in &paths {
        for body in BODIES {
            let r = c
                .post(format!("{}{path}", inst.base))
                .header("wechatpay-timestamp", "99999999999999999999")
                .header("wechatpay-signature", "WECHATPAY/SIGNTEST/abc")
                .header("wechatpay-serial", "PUB_KEY_ID_unknown")
                .header("wechatpay-nonce", "n")
                .body(body.to_vec())
                .send()
                .await
                .unwrap();
            // Each channel answers in its own format; nothing is accepted.
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert!(
                text != "success" || status != 200,
                "{path} accepted {body:?}"
            );
        }
        let huge = c
            .post(format!("{}{path}", inst.base))
            .body(vec![b'a'; 70 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(huge.status().as_u16(), 413, "{path}");
    }
    let stored = inst
        .gw
        .store
        .list_recent_notifications(None, 200)
        .await
        .unwrap();
    assert_eq!(
        stored.len(),
        paths.len() * BODIES.len(),
        "every attempt kept"
    );
    assert!(stored
        .iter()
        .all(|n| n.verified == Some(false) && n.reason.is_some()));
    assert!(inst
        .gw
        .store
        .list_events(None, 10, Mode::Sandbox, None)
        .await
        .unwrap()
        .events
        .is_empty());

    // The API: bad JSON, wrong types, odd ids and queries give 4xx problems, never 5xx.
    let k = &keys.sandbox_all;
    for body in [
        serde_json::json!(null),
        serde_json::json!({"channel": "bitcoin"}),
        serde_json::json!({"channel": "alipay", "scene": "qr", "amount": -5, "out_trade_no": "A1", "subject": "s"}),
        serde_json::json!({"channel": "alipay", "scene": "qr", "amount": 9_223_372_036_854_775_807_i64, "out_trade_no": "A1", "subject": "s"}),
        serde_json::json!({"channel": "alipay", "scene": "qr", "amount": 1, "out_trade_no": "A1", "subject": "\u{0}"}),
        serde_json::json!({"channel": "alipay", "scene": "qr", "amount": 1, "out_trade_no": "A1", "subject": "s", "expires_in": 1}),
        serde_json::json!({"channel": "alipay", "scene": "qr", "amount": 1, "out_trade_no": "A1", "subject": "s", "unknown": 1}),
    ] {
        let (s, b, _) = post(
            &inst.base,
            "/v1/payments",
            k,
            Some(&body.to_string()),
            &body,
        )
        .await;
        assert!((400..500).contains(&s), "{body}: {s} {b}");
        assert!(b["code"].is_string(), "{b}");
    }
    for path in [
        "/v1/payments/%00",
        "/v1/payments/../../etc",
        "/v1/payments?limit=abc",
        "/v1/payments?status=nope",
        "/v1/payments?after=!!!",
        "/v1/events?after=zzz",
        "/v1/refunds/x",
        "/v1/nothing",
    ] {
        let (s, b) = get(&inst.base, path, k).await;
        assert!((400..500).contains(&s), "{path}: {s} {b}");
    }
    let (s, _) = get(&inst.base, "/healthz", "").await;
    assert_eq!(s, 200, "still serving");
}

#[tokio::test]
async fn ip_allowlist_trusts_forwarded_for_only_from_proxies() {
    let db = db::sqlite_db().await;
    let store = db.open().await;
    let allow = IpAllowlist {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        alipay: vec!["203.0.113.0/24".parse().unwrap()],
        wechat: Vec::new(),
    };
    let sb = Sandbox::start(SandboxConfig::generate(1_790_000_000).unwrap())
        .await
        .unwrap();
    let mut config = test_config("http://127.0.0.1:9/");
    config.ip_allowlist = allow;
    config.accounts = sandbox_accounts(&sb, Mode::Sandbox)
        .unwrap()
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect();
    let inst = start_from_config(store, config, None).await;
    let (base, gw) = (inst.base.clone(), &inst.gw);
    let send = |xff: &'static str| {
        let url = format!("{base}/notify/alipay/{ALIPAY}");
        async move {
            client()
                .post(url)
                .header("x-forwarded-for", xff)
                .body("notify_id=1")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    send("198.51.100.9").await;
    send("198.51.100.9, 203.0.113.5").await;
    // Issue 10 item 6: the client writes an allowed address in its own line; the proxy appends
    // the real one in a second line. The lines form one list, whose right end is the proxy's.
    // Issue 10 item 5: credentials sent along are not stored.
    client()
        .post(format!("{base}/notify/alipay/{ALIPAY}"))
        .header("x-forwarded-for", "203.0.113.5")
        .header("x-forwarded-for", "198.51.100.10")
        .header("authorization", "Bearer sk_live_secret")
        .header("cookie", "session=secret")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("x-api-key", "secret")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("notify_id=1")
        .send()
        .await
        .unwrap();
    let stored = gw
        .store
        .list_recent_notifications(Some(ALIPAY), 10)
        .await
        .unwrap();
    let outcomes: Vec<_> = stored
        .iter()
        .rev()
        .map(|n| (n.remote_addr.clone(), n.outcome.clone()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (
                Some("198.51.100.9".to_string()),
                Some("ip_not_allowed".to_string())
            ),
            // Allowed address: reaches verification (and fails it: the body is not signed).
            (
                Some("203.0.113.5".to_string()),
                Some("unverified".to_string())
            ),
            (
                Some("198.51.100.10".to_string()),
                Some("ip_not_allowed".to_string())
            ),
        ]
    );
    let last = &stored[0];
    let names: Vec<&str> = last.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"content-type"), "{names:?}");
    assert!(names.contains(&"x-forwarded-for"), "{names:?}");
    for banned in [
        "authorization",
        "cookie",
        "proxy-authorization",
        "x-api-key",
    ] {
        assert!(!names.contains(&banned), "{banned} stored: {names:?}");
    }
    for (k, v) in &last.headers {
        assert!(!v.contains("secret"), "{k} stored: {v}");
    }

    // Issue 10 item 4: senders outside the allowlist are refused before any full write; only
    // a few truncated samples a minute are kept for the operator.
    for _ in 0..40 {
        client()
            .post(format!("{base}/notify/alipay/{ALIPAY}"))
            .header("x-forwarded-for", "198.51.100.11")
            .body(format!("notify_id=1&pad={}", "x".repeat(30_000)))
            .send()
            .await
            .unwrap();
    }
    let policy = gw.inbox_policy();
    let refused: Vec<_> = gw
        .store
        .list_recent_notifications(Some(ALIPAY), 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.outcome.as_deref() == Some("ip_not_allowed"))
        .collect();
    assert_eq!(refused.len(), policy.refused_samples_per_minute as usize);
    assert!(refused
        .iter()
        .all(|n| n.body.len() <= policy.refused_sample_body_bytes));
}
