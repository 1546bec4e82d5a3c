//! Shared end-to-end test support: an in-process sandbox with a manual clock, a merchant
//! notification receiver, and the control API over real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::any;
use axum::Router;
use paybridge_http::{ReqwestTransport, TransportConfig};
use paybridge_sandbox::{Clock, ManualClock, Sandbox, SandboxConfig, StartOptions, SystemClock};
use serde_json::Value;

/// A sandbox whose time only moves when the test says so, retries scaled 1/10000.
pub async fn sandbox() -> Sandbox {
    let mut config = SandboxConfig::generate(SystemClock.now_ms() / 1000).unwrap();
    config.time_scale = "1/10000".into();
    let clock = ManualClock::new(SystemClock.now_ms());
    Sandbox::start_with(
        config,
        StartOptions {
            manual_clock: Some(clock),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap()
}

pub fn transport() -> Arc<ReqwestTransport> {
    Arc::new(ReqwestTransport::new(&TransportConfig::default()).unwrap())
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
struct ReceiverState {
    got: Arc<Mutex<Vec<Received>>>,
    reply: Arc<Mutex<(u16, String)>>,
}

/// The merchant's notify endpoint: records every request and answers with a fixed reply.
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    reply: Arc<Mutex<(u16, String)>>,
}

async fn receive(
    State(s): State<ReceiverState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    s.got.lock().unwrap().push(Received {
        path: uri.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        body: body.to_vec(),
    });
    let (status, text) = s.reply.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), text)
}

impl Receiver {
    pub async fn start(status: u16, reply: &str) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(Mutex::new((status, reply.to_string())));
        let app = Router::new()
            .fallback(any(receive))
            .with_state(ReceiverState {
                got: got.clone(),
                reply: reply.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url: format!("http://{addr}/notify"),
            got,
            reply,
        }
    }

    pub fn set_reply(&self, status: u16, reply: &str) {
        *self.reply.lock().unwrap() = (status, reply.to_string());
    }

    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// `POST /_sandbox/trades/{id}/{action}` as a test (or a person) would.
pub async fn control(sb: &Sandbox, id: &str, action: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sandbox/trades/{id}/{action}", sb.base_url()))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn control_json(sb: &Sandbox, method: reqwest::Method, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .request(method, format!("{}{path}", sb.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Drives the manual clock through every scheduled notification attempt.
pub async fn drain(sb: &Sandbox) {
    for _ in 0..200 {
        if sb.run_next().await.is_none() {
            return;
        }
    }
}

/// The trade id behind a merchant order number.
pub fn trade_id(sb: &Sandbox, out_trade_no: &str) -> String {
    sb.trade_by_out_no(out_trade_no).unwrap().id
}
