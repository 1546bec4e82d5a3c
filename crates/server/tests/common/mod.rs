//! A gateway on 127.0.0.1:0 over a fresh database (SQLite always; PostgreSQL when
//! `PAYBRIDGE_TEST_PG_URL` is set), with a webhook receiver that keeps what it gets.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::HeaderMap;
use paybridge_core::Mode;
use paybridge_crypto::Secret;
use paybridge_server::config::{AccountConfig, Config, WebhookEndpoint};
use paybridge_server::service::Account;
use paybridge_server::Gateway;
use paybridge_store::{ApiScope, NewApiKey, Store};
use serde_json::Value;

#[path = "../../../store/tests/common/mod.rs"]
pub mod db;
pub mod openapi;
#[path = "../../../cli/src/sandbox_accounts.rs"]
pub mod sandbox_accounts;

pub const WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";

#[derive(Clone, Default)]
pub struct Received(pub Arc<Mutex<Vec<(HeaderMap, Bytes)>>>);

impl Received {
    pub fn bodies(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Every delivery must carry a valid signature for its exact body.
    pub fn verify_all(&self, now_unix: i64) {
        for (h, body) in self.0.lock().unwrap().iter() {
            let sig = h
                .get("paybridge-signature")
                .and_then(|v| v.to_str().ok())
                .expect("signature header");
            paybridge_server::webhook::verify(WEBHOOK_SECRET.as_bytes(), sig, body, now_unix, 300)
                .unwrap_or_else(|e| panic!("webhook signature: {e}"));
        }
    }
}

/// Starts a receiver that answers 200 and records every POST.
pub async fn start_receiver() -> (String, Received) {
    let (url, received, _) = start_receiver_with_status(200).await;
    (url, received)
}

/// A receiver whose answer status the test sets (500 = the merchant is down).
pub async fn start_receiver_with_status(
    status: u16,
) -> (String, Received, Arc<std::sync::atomic::AtomicU16>) {
    let received = Received::default();
    let answer = Arc::new(std::sync::atomic::AtomicU16::new(status));
    let (r, a) = (received.clone(), answer.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (r, a) = (r.clone(), a.clone());
            async move {
                r.0.lock().unwrap().push((headers, body));
                let code = a.load(std::sync::atomic::Ordering::SeqCst);
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), received, answer)
}

pub struct Keys {
    pub sandbox_all: String,
    pub sandbox_read: String,
    pub sandbox_write: String,
    pub live_all: String,
}

pub async fn make_keys(store: &Store) -> Keys {
    let mk = |mode, scopes: Vec<ApiScope>| NewApiKey {
        mode,
        merchant: "test".into(),
        scopes,
    };
    let all = vec![ApiScope::Read, ApiScope::Write, ApiScope::Refund];
    let (_, a) = store
        .create_api_key(&mk(Mode::Sandbox, all.clone()))
        .await
        .unwrap();
    let (_, r) = store
        .create_api_key(&mk(Mode::Sandbox, vec![ApiScope::Read]))
        .await
        .unwrap();
    let (_, w) = store
        .create_api_key(&mk(Mode::Sandbox, vec![ApiScope::Read, ApiScope::Write]))
        .await
        .unwrap();
    let (_, l) = store.create_api_key(&mk(Mode::Live, all)).await.unwrap();
    Keys {
        sandbox_all: a.expose().clone(),
        sandbox_read: r.expose().clone(),
        sandbox_write: w.expose().clone(),
        live_all: l.expose().clone(),
    }
}

pub struct Instance {
    pub gw: Arc<Gateway>,
    pub base: String,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// The tests' configuration: every default, webhooks to `hook_url` signed with
/// [`WEBHOOK_SECRET`]; the public URL is set once the gateway's listener is bound.
pub fn test_config(hook_url: &str) -> Config {
    let mut config = Config::minimal("http://127.0.0.1:1").unwrap();
    config.webhook_endpoints = vec![WebhookEndpoint {
        id: "main".into(),
        url: hook_url.to_string(),
        mode: None,
        secret: Secret::new(WEBHOOK_SECRET.to_string()),
    }];
    config
}

/// A gateway with given channels (scripted providers) over the test configuration.
pub async fn start_gateway(store: Store, accounts: Vec<Account>, hook_url: &str) -> Instance {
    start_from_config(store, test_config(hook_url), Some(accounts)).await
}

/// A gateway whose channels and bill sources are built from `accounts` (the sandbox's), as
/// `serve` builds them from its file.
pub async fn start_configured(
    store: Store,
    accounts: Vec<AccountConfig>,
    hook_url: &str,
) -> Instance {
    let mut config = test_config(hook_url);
    config.accounts = accounts.into_iter().map(|a| (a.id.clone(), a)).collect();
    start_from_config(store, config, None).await
}

/// Binds a listener first so the gateway knows its own public URL (for notify URLs), then
/// composes the gateway of `config` through the one composition root; `accounts` replaces the
/// channels `config.accounts` would build.
pub async fn start_from_config(
    store: Store,
    config: Config,
    accounts: Option<Vec<Account>>,
) -> Instance {
    start_from_config_with(store, config, accounts, |_| {}).await
}

/// [`start_from_config`], with what the configuration does not hold (the HTTP client) changed
/// before the gateway starts serving.
pub async fn start_from_config_with(
    store: Store,
    mut config: Config,
    accounts: Option<Vec<Account>>,
    configure: impl FnOnce(&mut Gateway),
) -> Instance {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    config.listen = addr;
    config.public_base_url = base.clone();
    let gw = match accounts {
        Some(accounts) => Gateway::from_config_with_accounts(&config, store, accounts),
        None => Gateway::from_config(&config, store),
    };
    let mut gw = gw.unwrap();
    configure(&mut gw);
    let gw = Arc::new(gw);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let g = gw.clone();
    let limits = config.limits.clone();
    tokio::spawn(async move {
        let _ = paybridge_server::runtime::serve(listener, g, limits, async {
            let _ = rx.await;
        })
        .await;
    });
    Instance {
        gw,
        base,
        _stop: tx,
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

pub async fn post(
    base: &str,
    path: &str,
    key: &str,
    idem: Option<&str>,
    body: &Value,
) -> (u16, Value, HeaderMap) {
    let mut req = client()
        .post(format!("{base}{path}"))
        .bearer_auth(key)
        .json(body);
    if let Some(i) = idem {
        req = req.header("Idempotency-Key", i);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
        headers,
    )
}

pub async fn get(base: &str, path: &str, key: &str) -> (u16, Value) {
    let resp = client()
        .get(format!("{base}{path}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
pub mod scripted;
