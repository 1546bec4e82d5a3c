//! The edge of the HTTP server over real loopback HTTP: 401 challenges, a panicking handler
//! answered as a problem (and the server still serving), absurd reconciliation dates refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::sandbox_accounts::{sandbox_accounts, ALIPAY};
use common::*;
use paybridge_core::Mode;
use paybridge_sandbox::{Sandbox, SandboxConfig};
use paybridge_server::config::Config;
use paybridge_server::service::reconcile::beijing_date;
use paybridge_server::Gateway;
use paybridge_store::{Store, StoreOptions};
use serde_json::json;

#[tokio::test]
async fn unauthenticated_answers_carry_a_bearer_challenge() {
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let (hook, _) = start_receiver().await;
    let inst = start_gateway(store, Vec::new(), &hook).await;
    let c = client();
    let missing = c
        .get(format!("{}/v1/payments", inst.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(missing.headers().get("www-authenticate").unwrap(), "Bearer");
    let wrong = c
        .get(format!("{}/v1/payments", inst.base))
        .bearer_auth("pk_not_a_key")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let challenge = wrong.headers().get("www-authenticate").unwrap();
    assert!(challenge.to_str().unwrap().starts_with("Bearer"));
}

#[tokio::test]
async fn a_panicking_handler_is_a_problem_500_and_the_server_keeps_serving() {
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let config = Config::minimal("http://127.0.0.1").unwrap();
    let gw = Arc::new(Gateway::from_config(&config, store).unwrap());
    let extra = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            let v: Vec<u8> = Vec::new();
            // An out-of-bounds index: the kind of bug the layer is there for.
            #[allow(clippy::indexing_slicing)]
            let b = v[usize::from(v.is_empty())];
            b.to_string()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (_stop, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(paybridge_server::runtime::serve_with(
        listener,
        gw,
        paybridge_server::runtime::Limits::default(),
        extra,
        async {
            let _ = rx.await;
        },
    ));
    let c = client();
    for _ in 0..3 {
        let r = c.get(format!("{base}/boom")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 500);
        assert_eq!(
            r.headers().get("content-type").unwrap(),
            "application/problem+json"
        );
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("index out of bounds"));
    }
    let h = c.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(h.status().as_u16(), 200);
}

#[tokio::test]
async fn reconciliation_refuses_days_that_cannot_have_a_bill() {
    let sb = Sandbox::start(
        SandboxConfig::generate(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let db = db::sqlite_db().await;
    let store = Store::open_with(&db.url, StoreOptions::default())
        .await
        .unwrap();
    let keys = make_keys(&store).await;
    let configs: Vec<_> = sandbox_accounts(&sb, Mode::Sandbox)
        .unwrap()
        .into_iter()
        .filter(|a| a.id == ALIPAY)
        .collect();
    let (hook, _) = start_receiver().await;
    let inst = start_configured(store.clone(), configs, &hook).await;
    for (i, date) in ["9999-12-31", "0000-01-01", "1999-01-01"]
        .iter()
        .enumerate()
    {
        let (status, body, _) = post(
            &inst.base,
            "/v1/reconciliations",
            &keys.sandbox_all,
            Some(&format!("absurd-{i}")),
            &json!({"account": ALIPAY, "date": date}),
        )
        .await;
        assert_eq!(status, 400, "{date}: {body}");
        assert_eq!(body["code"], "validation_failed", "{date}: {body}");
        assert!(store
            .list_reconciliations(ALIPAY, date)
            .await
            .unwrap()
            .is_empty());
    }
    let today = beijing_date(inst.gw.now_ms()).unwrap().to_string();
    let (status, body, _) = post(
        &inst.base,
        "/v1/reconciliations",
        &keys.sandbox_all,
        Some("today"),
        &json!({"account": ALIPAY, "date": today}),
    )
    .await;
    assert_ne!(status, 400, "{body}");
}
