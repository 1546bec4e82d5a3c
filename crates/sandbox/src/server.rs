//! The running sandbox: shared state, the axum router, request recording, notification
//! dispatch, and the [`Sandbox`] handle tests start in-process.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use paybridge_http::{HttpRequest, ReqwestTransport, Transport, TransportConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::bills::Discrepancy;
use crate::clock::{Clock, ManualClock, Millis, SystemClock};
use crate::config::{BarcodeMode, ConfigError, Keys, SandboxConfig};
use crate::ledger::{Family, Ledger, LedgerEvent, Provider, Trade};
use crate::notifier::{
    accepted, AttemptOutcome, FaultBook, Faults, NotificationRecord, Notifier, RetrySchedule,
};
use crate::payouts::{Payout, PayoutFault, PayoutFaultBook, PayoutFinished, PayoutLedger};

/// Bodies larger than this are refused (the providers cap requests too).
pub(crate) const MAX_BODY: usize = 1 << 20;
/// How many exchanges `GET /_sandbox/requests` remembers.
const MAX_RECORDED: usize = 10_000;

/// One HTTP exchange the sandbox served, for `GET /_sandbox/requests`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestRecord {
    pub at: Millis,
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
}

/// A bill file waiting to be downloaded.
#[derive(Debug, Clone)]
pub(crate) struct BillFile {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub expires_at: Millis,
    /// WeChat v3 downloads need the merchant's signature.
    pub mchid: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    pub ledger: Ledger,
    pub notifier: Notifier,
    pub faults: FaultBook,
    pub requests: Vec<RequestRecord>,
    pub barcode: HashMap<String, BarcodeMode>,
    pub discrepancies: Vec<Discrepancy>,
    pub bill_files: HashMap<String, BillFile>,
    /// WeChat prepay id -> trade id.
    pub prepay: HashMap<String, String>,
    pub payouts: PayoutLedger,
    pub payout_faults: PayoutFaultBook,
    /// WeChat web-authorization codes not yet exchanged.
    pub oauth_codes: HashMap<String, crate::wechat_oauth::IssuedCode>,
}

pub(crate) struct Inner {
    pub config: SandboxConfig,
    pub keys: Keys,
    pub base_url: String,
    pub clock: Arc<dyn Clock>,
    pub state: Mutex<State>,
    pub transport: Arc<dyn Transport>,
}

impl Inner {
    pub fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    /// The state lock. Never held across an `.await`; a poisoned lock (a panic elsewhere) is
    /// recovered, since every mutation leaves the state consistent.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    pub fn barcode_mode(&self, st: &State, account: &str) -> BarcodeMode {
        st.barcode
            .get(account)
            .copied()
            .unwrap_or_else(|| self.config.barcode_mode(account))
    }

    pub fn pay_page_url(&self, trade_id: &str) -> String {
        format!("{}/_sandbox/pay/{trade_id}", self.base_url)
    }

    /// Turns ledger events into queued notifications (signed per protocol, faults applied).
    pub fn notify_events(&self, st: &mut State, events: Vec<LedgerEvent>, now: Millis) {
        for ev in events {
            let trade_id = match &ev {
                LedgerEvent::Paid { trade_id }
                | LedgerEvent::Closed { trade_id }
                | LedgerEvent::Finished { trade_id }
                | LedgerEvent::RefundSettled { trade_id, .. } => trade_id.clone(),
            };
            let Some(trade) = st.ledger.get(&trade_id).cloned() else {
                continue;
            };
            let faults = st.faults.lookup(&trade.account, &trade.id);
            let built = match trade.provider {
                Provider::Alipay => {
                    crate::alipay::notification(self, &trade, &ev, faults.body, now)
                }
                Provider::WechatV2 => {
                    crate::wechat_v2::notification(self, &trade, &ev, faults.body, now)
                }
                Provider::WechatV3 => {
                    crate::wechat_v3::notification(self, &trade, &ev, faults.body, now)
                }
            };
            match built {
                Ok(Some((kind, out))) => {
                    st.notifier.enqueue(
                        trade.provider,
                        &trade.account,
                        &trade.id,
                        &kind,
                        out,
                        faults,
                        now,
                    );
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(trade = %trade.id, error = %e, "cannot build notification")
                }
            }
        }
    }

    /// Queues the notification of each payout that reached a final state, on its product's
    /// retry schedule (faults by account or payout id applied).
    pub fn notify_payouts(&self, st: &mut State, finished: Vec<PayoutFinished>, now: Millis) {
        for f in finished {
            let Some(p) = st.payouts.get(&f.id).cloned() else {
                continue;
            };
            let faults = st.faults.lookup(&p.account, &p.id);
            let (provider, schedule, kind, built) = match p.family {
                Family::Wechat => (
                    Provider::WechatV3,
                    RetrySchedule::WechatTransfer,
                    paybridge_wechatpay::v3::transfer::FINISHED_EVENT,
                    crate::wechat_transfer::notification(self, &p, faults.body, now),
                ),
                Family::Alipay => (
                    Provider::Alipay,
                    RetrySchedule::AlipayMessage,
                    paybridge_alipay::fund_notify::ORDER_CHANGED,
                    crate::alipay_fund::notification(self, &p, faults.body, now),
                ),
            };
            match built {
                Ok(Some(out)) => {
                    st.notifier.enqueue_with(
                        schedule, provider, &p.account, &p.id, kind, out, faults, now,
                    );
                }
                Ok(None) => {}
                Err(e) => tracing::error!(payout = %p.id, error = %e, "cannot build notification"),
            }
        }
    }

    /// Applies the clock to the ledger (expiry, refund settlement), then sends every due
    /// notification. Returns how many requests were attempted (dropped ones included).
    pub async fn run_due(&self) -> usize {
        let now = self.now();
        {
            let mut st = self.lock();
            let events = st.ledger.tick(now);
            self.notify_events(&mut st, events, now);
            let expired = st.payouts.tick(now);
            self.notify_payouts(&mut st, expired, now);
            st.bill_files.retain(|_, f| f.expires_at > now);
        }
        let mut count = 0;
        // Bounded: each round either finds nothing or consumes one step of a finite schedule.
        for _ in 0..64 {
            let due = self.lock().notifier.take_due(now);
            if due.is_empty() {
                break;
            }
            for d in due {
                count += 1;
                let provider = self
                    .lock()
                    .notifier
                    .get(d.notification_id)
                    .map(|r| r.provider)
                    .unwrap_or(Provider::Alipay);
                let outcome = if d.drop {
                    AttemptOutcome::Dropped
                } else {
                    let mut req = HttpRequest::new("POST", d.request.url.clone())
                        .body(d.request.body.clone().into_bytes());
                    for (k, v) in &d.request.headers {
                        req = req.header(k.clone(), v.clone());
                    }
                    match self.transport.send(req).await {
                        Ok(resp) => {
                            let body = String::from_utf8_lossy(&resp.body).into_owned();
                            AttemptOutcome::Replied {
                                status: resp.status,
                                accepted: accepted(provider, resp.status, &body),
                                body,
                            }
                        }
                        Err(e) => AttemptOutcome::Failed {
                            error: e.to_string(),
                        },
                    }
                };
                self.lock()
                    .notifier
                    .record(d.notification_id, d.attempt, d.copy, outcome, now);
            }
        }
        count
    }
}

/// An error reply in plain text (control API and pages).
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

pub(crate) fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json; charset=utf-8")],
        value.to_string(),
    )
        .into_response()
}

pub(crate) fn header_pairs(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Records every exchange outside the control API.
async fn record(AxState(inner): AxState<Arc<Inner>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    if path.starts_with("/_sandbox/")
        && !path.starts_with("/_sandbox/pay/")
        && !path.starts_with("/_sandbox/wallet/")
    {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let bytes = match to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let mut rec = RequestRecord {
        at: inner.now(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: header_pairs(&parts.headers),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        status: 0,
        response_headers: Vec::new(),
        response_body: String::new(),
    };
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (rparts, rbody) = resp.into_parts();
    let rbytes = to_bytes(rbody, 64 * MAX_BODY).await.unwrap_or_default();
    rec.status = rparts.status.as_u16();
    rec.response_headers = header_pairs(&rparts.headers);
    // Bill downloads are binary; keep the log readable.
    rec.response_body = match std::str::from_utf8(&rbytes) {
        Ok(s) => s.to_string(),
        Err(_) => format!("<{} binary bytes>", rbytes.len()),
    };
    let mut st = inner.lock();
    // A long-running sandbox keeps the most recent exchanges only.
    if st.requests.len() >= MAX_RECORDED {
        st.requests.drain(..MAX_RECORDED / 10);
    }
    st.requests.push(rec);
    drop(st);
    Response::from_parts(rparts, Body::from(rbytes))
}

pub(crate) fn router(inner: Arc<Inner>) -> Router {
    Router::new()
        .route("/gateway.do", any(crate::alipay::gateway))
        .route("/pay/unifiedorder", post(crate::wechat_v2::unifiedorder))
        .route("/pay/orderquery", post(crate::wechat_v2::orderquery))
        .route("/pay/closeorder", post(crate::wechat_v2::closeorder))
        .route("/pay/micropay", post(crate::wechat_v2::micropay))
        .route("/secapi/pay/reverse", post(crate::wechat_v2::reverse))
        .route("/secapi/pay/refund", post(crate::wechat_v2::refund))
        .route("/pay/refundquery", post(crate::wechat_v2::refundquery))
        .route("/pay/downloadbill", post(crate::wechat_v2::downloadbill))
        .route("/v3/*path", any(crate::wechat_v3::dispatch))
        .route(
            "/connect/oauth2/authorize",
            get(crate::wechat_oauth::authorize),
        )
        .route(
            "/sns/oauth2/access_token",
            get(crate::wechat_oauth::access_token),
        )
        .merge(crate::buyer::routes())
        .merge(crate::wallet::routes())
        .layer(axum::middleware::from_fn_with_state(inner.clone(), record))
        .with_state(inner)
}

/// How an in-process sandbox keeps time.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Drive time by hand (no background ticker): expiry and notifications only move when the
    /// test calls [`Sandbox::run_due`] after advancing this clock.
    pub manual_clock: Option<ManualClock>,
    /// Background tick period with the system clock (default 50 ms).
    pub tick: Option<Duration>,
    /// The address to bind; `127.0.0.1:0` when absent.
    pub listen: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}: {reason}")]
    Bind { addr: String, reason: String },
    #[error("notification client: {0}")]
    Transport(String),
}

/// A running sandbox. Dropping it stops the server.
pub struct Sandbox {
    inner: Arc<Inner>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    manual: Option<ManualClock>,
}

impl Sandbox {
    /// Starts on `127.0.0.1:0` with the system clock and a background ticker.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, StartError> {
        Sandbox::start_with(config, StartOptions::default()).await
    }

    pub async fn start_with(
        config: SandboxConfig,
        options: StartOptions,
    ) -> Result<Sandbox, StartError> {
        let keys = Keys::from_config(&config)?;
        let scale = config.scale()?;
        let addr_text = options
            .listen
            .clone()
            .unwrap_or_else(|| "127.0.0.1:0".to_string());
        let listener = tokio::net::TcpListener::bind(&addr_text)
            .await
            .map_err(|e| StartError::Bind {
                addr: addr_text.clone(),
                reason: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| StartError::Bind {
            addr: addr_text.clone(),
            reason: e.to_string(),
        })?;
        let base_url = config
            .public_url
            .clone()
            .map(|u| u.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("http://{addr}"));
        let clock: Arc<dyn Clock> = match &options.manual_clock {
            Some(c) => Arc::new(c.clone()),
            None => Arc::new(SystemClock),
        };
        let transport = ReqwestTransport::new(&TransportConfig {
            timeout: Duration::from_secs(10),
            ..TransportConfig::default()
        })
        .map_err(|e| StartError::Transport(e.to_string()))?;
        let mut state = State {
            notifier: Notifier::new(scale),
            ..State::default()
        };
        state.ledger.wechat_refund_delay_ms = config.wechat_refund_delay_ms;
        let inner = Arc::new(Inner {
            config,
            keys,
            base_url,
            clock,
            state: Mutex::new(state),
            transport: Arc::new(transport),
        });
        let app = router(inner.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "sandbox server stopped");
            }
        });
        if options.manual_clock.is_none() {
            let period = options.tick.unwrap_or(Duration::from_millis(50));
            let weak = Arc::downgrade(&inner);
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(period);
                loop {
                    interval.tick().await;
                    let Some(inner) = weak.upgrade() else { break };
                    inner.run_due().await;
                }
            });
        }
        Ok(Sandbox {
            inner,
            addr,
            shutdown: Some(tx),
            manual: options.manual_clock,
        })
    }

    /// `http://127.0.0.1:PORT` (or the configured public URL): Alipay's gateway is
    /// `{base_url}/gateway.do`, WeChat Pay's base URL is `{base_url}`.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn gateway_url(&self) -> String {
        format!("{}/gateway.do", self.inner.base_url)
    }

    /// The configuration, merchant-side keys included (`app_private_key`, API keys...).
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// Alipay's public key as the console shows it (bare base64 SPKI).
    pub fn alipay_public_key(&self) -> String {
        self.inner.keys.alipay_public_key.to_base64()
    }

    /// WeChat Pay's public key (PEM) and the serial it signs under.
    pub fn wechat_public_key_pem(&self) -> String {
        paybridge_crypto::encode_pem("PUBLIC KEY", self.inner.keys.wechat_public_key.spki_der())
    }

    pub fn wechat_serial(&self) -> &str {
        &self.inner.keys.wechat_serial
    }

    /// During a migration ([`crate::WechatKeyMode::Migrating`]): the public key's id and PEM,
    /// as the merchant console shows them.
    pub fn wechat_migration_public_key(&self) -> Option<(String, String)> {
        let (key, id) = self.inner.keys.wechat_migration.as_ref()?;
        let public = key.public_key().ok()?;
        Some((
            id.clone(),
            paybridge_crypto::encode_pem("PUBLIC KEY", public.spki_der()),
        ))
    }

    pub fn now(&self) -> Millis {
        self.inner.now()
    }

    /// The sandbox's clock, for clients that must sign with sandbox time (WeChat APIv3's
    /// 300-second window) once a test has moved the manual clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.inner.clock.clone()
    }

    /// Moves the manual clock (no-op with the system clock) and returns the new time.
    pub fn advance(&self, ms: Millis) -> Millis {
        match &self.manual {
            Some(c) => c.advance(ms),
            None => self.inner.now(),
        }
    }

    /// Runs expiry, refund settlement and due notifications at the current sandbox time.
    pub async fn run_due(&self) -> usize {
        self.inner.run_due().await
    }

    /// Advances the manual clock to the next due notification and sends it; `None` when
    /// nothing is scheduled.
    pub async fn run_next(&self) -> Option<Millis> {
        let due = self.inner.lock().notifier.next_due()?;
        if let Some(c) = &self.manual {
            if c.now_ms() < due {
                c.set(due);
            }
        }
        self.inner.run_due().await;
        Some(due)
    }

    pub fn trade(&self, id: &str) -> Option<Trade> {
        self.inner.lock().ledger.get(id).cloned()
    }

    /// The trade a merchant opened with `out_trade_no` (any provider, any account).
    pub fn trade_by_out_no(&self, out_trade_no: &str) -> Option<Trade> {
        self.inner
            .lock()
            .ledger
            .trades()
            .find(|t| t.out_trade_no == out_trade_no)
            .cloned()
    }

    /// The buyer scans the QR code (opens the pay page) without paying: from now on the
    /// provider knows the trade, so queries and closes find it.
    pub fn scan(&self, trade_id: &str) -> Result<(), crate::ledger::LedgerError> {
        self.inner.lock().ledger.mark_scanned(trade_id)
    }

    /// The buyer pays (as the pay page's button or `POST /_sandbox/trades/{id}/pay`).
    pub fn pay(&self, trade_id: &str) -> Result<(), crate::ledger::LedgerError> {
        crate::buyer::pay(&self.inner, trade_id, None)
    }

    /// Every payout (transfer bill / transfer order) in the providers' ledger.
    pub fn payouts(&self) -> Vec<Payout> {
        self.inner.lock().payouts.all().to_vec()
    }

    /// The payout a merchant made under `out_no` (`out_bill_no` / `out_biz_no`).
    pub fn payout_by_out_no(&self, out_no: &str) -> Option<Payout> {
        self.inner
            .lock()
            .payouts
            .all()
            .iter()
            .find(|p| p.out_no == out_no)
            .cloned()
    }

    /// A failure on demand for one merchant number, or (without one) for the whole account.
    pub fn set_payout_fault(&self, account: &str, out_no: Option<&str>, fault: PayoutFault) {
        let mut st = self.inner.lock();
        match out_no {
            Some(no) => st.payout_faults.by_out_no.insert(no.to_string(), fault),
            None => st
                .payout_faults
                .by_account
                .insert(account.to_string(), fault),
        };
    }

    pub fn clear_payout_faults(&self) {
        self.inner.lock().payout_faults = PayoutFaultBook::default();
    }

    /// The balance payouts of `account` (mchid / app_id) draw on.
    pub fn set_payout_balance(&self, account: &str, fen: paybridge_core::Fen) {
        self.inner.lock().payouts.set_balance(account, fen);
    }

    pub fn payout_balance(&self, account: &str) -> paybridge_core::Fen {
        self.inner.lock().payouts.balance(account)
    }

    pub fn set_faults(&self, account: Option<&str>, trade_id: Option<&str>, faults: Faults) {
        let mut st = self.inner.lock();
        if let Some(t) = trade_id {
            st.faults.by_trade.insert(t.to_string(), faults);
        } else if let Some(a) = account {
            st.faults.by_account.insert(a.to_string(), faults);
        }
    }

    pub fn set_barcode_mode(&self, account: &str, mode: BarcodeMode) {
        self.inner.lock().barcode.insert(account.to_string(), mode);
    }

    pub fn add_discrepancy(&self, d: Discrepancy) {
        self.inner.lock().discrepancies.push(d);
    }

    pub fn release_held(&self) -> usize {
        let now = self.inner.now();
        self.inner.lock().notifier.release_held(now)
    }

    pub fn notifications(&self) -> Vec<NotificationRecord> {
        self.inner.lock().notifier.records().to_vec()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.lock().requests.clone()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
