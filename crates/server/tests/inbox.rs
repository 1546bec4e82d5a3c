//! Issue 10 item 4: the notification inbox is bounded. A flood of forged notifications stores a
//! rate-limited number of truncated copies (linked to the order they claim, so its timeline
//! shows them) and the gateway keeps answering; a genuine notification still applies, with its
//! inbox row in the same transaction; merchant text echoed back differently is a mismatch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::scripted::*;
use common::*;
use paybridge_server::service::inbox::InboxPolicy;
use serde_json::json;

async fn payment_of(env: &Env, id: &str) -> serde_json::Value {
    let (s, p) = get(
        &env.inst.base,
        &format!("/v1/payments/{id}"),
        &env.keys.sandbox_read,
    )
    .await;
    assert_eq!(s, 200, "{p}");
    p
}

/// The inbox rows linked to payment `id`.
async fn linked_to(env: &Env, id: &str) -> Vec<paybridge_store::Notification> {
    env.inst
        .gw
        .store
        .list_payment_notifications(id)
        .await
        .unwrap()
}

/// Forged notifications sent in this test: far more than one minute's quota of one address.
const FLOOD: usize = 300;
/// Each forged body, padded to close to the notify endpoint's 64 KiB limit.
const FORGED_BYTES: usize = 60 * 1024;

#[tokio::test]
async fn a_forged_flood_stores_a_bounded_truncated_sample_and_the_gateway_keeps_answering() {
    for env in envs("inbox_flood").await {
        let policy = InboxPolicy::default();
        let p = create(&env, "FLOOD-1", 500).await;
        let id = p["id"].as_str().unwrap().to_string();
        let url = format!("{}/notify/alipay/ali-test", env.inst.base);
        let forged = serde_json::to_vec(&json!({
            "notify_id": "N-FLOOD-1", "app_id": APP_ID, "out_trade_no": "FLOOD-1",
            "amount": 500, "padding": "x".repeat(FORGED_BYTES),
        }))
        .unwrap();
        let client = client();
        for batch in 0..FLOOD / 30 {
            let mut sends = tokio::task::JoinSet::new();
            for i in 0..30 {
                let req = client
                    .post(&url)
                    .header("x-sig", format!("forged-{batch}-{i}"))
                    .body(forged.clone());
                sends.spawn(async move { req.send().await.unwrap().status().as_u16() });
            }
            while let Some(status) = sends.join_next().await {
                // Unverifiable: a provider would be told to retry once our keys are fixed.
                assert_eq!(status.unwrap(), 500);
            }
            // In the middle of the flood, health and the merchant API answer.
            let health = client
                .get(format!("{}/healthz", env.inst.base))
                .send()
                .await
                .unwrap();
            assert_eq!(health.status().as_u16(), 200);
            let (s, _) = get(
                &env.inst.base,
                &format!("/v1/payments/{id}"),
                &env.keys.sandbox_read,
            )
            .await;
            assert_eq!(s, 200);
        }

        let stored = env
            .inst
            .gw
            .store
            .list_recent_notifications(Some("ali-test"), 10_000)
            .await
            .unwrap();
        // One address gets one minute's burst; nothing else is written.
        assert_eq!(
            stored.len(),
            policy.unverified_per_address_per_minute as usize,
            "rows stored by the flood"
        );
        let bytes: usize = stored.iter().map(|n| n.body.len()).sum();
        assert!(
            bytes <= stored.len() * policy.unverified_body_bytes,
            "{bytes}"
        );
        assert!(bytes < FLOOD * FORGED_BYTES / 100);
        for n in &stored {
            assert_eq!(n.outcome.as_deref(), Some("unverified"));
            assert_eq!(n.verified, Some(false));
            assert_eq!(n.body.len(), policy.unverified_body_bytes);
        }

        // The copies kept are linked to the order they claim: its timeline shows them.
        let (s, timeline) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}/timeline"),
            &env.keys.sandbox_read,
        )
        .await;
        assert_eq!(s, 200, "{timeline}");
        let shown = timeline["notifications"].as_array().unwrap();
        assert_eq!(shown.len(), stored.len(), "{timeline}");
        assert!(shown.iter().all(|n| n["outcome"] == "unverified"));
        let payment = payment_of(&env, &id).await;
        assert_eq!(payment["status"], "pending", "{payment}");

        // The forger used the genuine notification's id: that must not shadow it.
        let (status, reply) = notify(&env, &paid_notice("FLOOD-1", 500, "N-FLOOD-1"), None).await;
        assert_eq!((status, reply.as_str()), (200, "success"));
        let payment = payment_of(&env, &id).await;
        assert_eq!(payment["status"], "paid", "{payment}");
        let linked = linked_to(&env, &id).await;
        let applied: Vec<_> = linked
            .iter()
            .filter(|n| n.outcome.as_deref() == Some("applied"))
            .collect();
        assert_eq!(applied.len(), 1, "one applied row");
        assert_eq!(applied[0].notify_id.as_deref(), Some("N-FLOOD-1"));
        assert_eq!(applied[0].verified, Some(true));

        // The same genuine notification again is a duplicate: kept, changes nothing.
        let (status, reply) = notify(&env, &paid_notice("FLOOD-1", 500, "N-FLOOD-1"), None).await;
        assert_eq!((status, reply.as_str()), (200, "success"));
        let linked = linked_to(&env, &id).await;
        assert!(linked
            .iter()
            .any(|n| n.outcome.as_deref() == Some("duplicate")));
        let (_, timeline) = get(
            &env.inst.base,
            &format!("/v1/payments/{id}/timeline"),
            &env.keys.sandbox_read,
        )
        .await;
        let paid = timeline["state_changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["to"] == "paid")
            .count();
        assert_eq!(paid, 1, "{timeline}");
    }
}

/// Our own subject, signed back to us, reading differently means the signed string was split
/// another way than it was signed (or the provider mixed orders up): a mismatch that pays
/// nothing and asks the provider.
#[tokio::test]
async fn a_signed_notification_echoing_another_subject_is_a_mismatch() {
    for env in envs("inbox_echo").await {
        let p = create(&env, "ECHO-1", 300).await;
        let id = p["id"].as_str().unwrap().to_string();
        let mut notice = paid_notice("ECHO-1", 300, "N-ECHO-1");
        notice["subject"] = json!("Test order&total_amount=888.00");
        let (status, reply) = notify(&env, &notice, None).await;
        // Final: the provider's signed word will not change by resending it.
        assert_eq!(status, 200);
        assert!(reply.starts_with("stop:"), "{reply}");
        let payment = payment_of(&env, &id).await;
        assert_eq!(payment["status"], "pending", "{payment}");
        let linked = linked_to(&env, &id).await;
        assert_eq!(linked.len(), 1);
        assert_eq!(linked[0].outcome.as_deref(), Some("mismatch"));
        assert!(linked[0].reason.as_deref().unwrap().contains("subject"));
        // ...and the provider is asked directly, at once.
        env.inst
            .gw
            .run_jobs_once(env.inst.gw.now_ms(), 10)
            .await
            .unwrap();
        assert!(env
            .provider
            .calls
            .lock()
            .unwrap()
            .contains(&"query:ECHO-1".to_string()));
        // The same notice with the order's own subject pays it.
        notice["subject"] = json!("Test order");
        notice["notify_id"] = json!("N-ECHO-2");
        let (status, reply) = notify(&env, &notice, None).await;
        assert_eq!((status, reply.as_str()), (200, "success"));
        let payment = payment_of(&env, &id).await;
        assert_eq!(payment["status"], "paid", "{payment}");
    }
}
