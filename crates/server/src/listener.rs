//! The accept loop in front of the router: connection caps (global and per client address),
//! the header and keep-alive idle timeouts, and shedding of connections beyond capacity.
//!
//! `axum::serve` keeps every connection it accepts for as long as the peer likes; on the
//! internet that lets a few hundred idle or slowly-writing sockets starve everyone else. Here a
//! connection must send a complete request head within `header_timeout` (from accept, or from
//! its first byte after a kept-alive response), may sit idle between requests for
//! `idle_timeout`, and is refused outright beyond the caps. Request-level limits (the total
//! deadline, body inactivity, in-flight requests) are tower layers in `runtime`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::error::{ApiError, RETRY_AFTER_SECONDS};

/// What one gateway process accepts from its clients. [`Limits::default`] is the production
/// setting; `[limits]` in the configuration file overrides any of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest merchant API request body.
    pub max_body_bytes: usize,
    /// A connection's complete request head must arrive within this, counted from accept or
    /// from the first byte of a later request on a kept-alive connection.
    pub header_timeout: Duration,
    /// A kept-alive connection with no request in flight and no traffic is closed after this.
    pub idle_timeout: Duration,
    /// A request is answered (503 `timeout`) after this at the latest, body reading included.
    pub request_timeout: Duration,
    /// A request body that sends nothing for this long is answered 408 `request_timeout`.
    pub body_timeout: Duration,
    /// Open connections in all; beyond it a new one is answered 503 and closed.
    pub max_connections: usize,
    /// Open connections from one address (IPv6: one /64); beyond it a new one is closed at once.
    /// Trusted proxies (`ip_allowlist.trusted_proxies`) are exempt.
    pub max_connections_per_ip: usize,
    /// Requests being handled at once; beyond it a request is answered 503 `overloaded`.
    pub max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 64 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(15),
            max_connections: 4096,
            max_connections_per_ip: 64,
            max_in_flight: 1024,
        }
    }
}

/// Timeouts longer than this are a typo (and would overflow deadline arithmetic if huge).
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitsError {
    #[error("{field} must be greater than 0")]
    Zero { field: &'static str },
    #[error("{field} must be at most {max}")]
    TooLarge { field: &'static str, max: String },
}

impl Limits {
    /// Refuses settings that would disable a protection (0) or overflow (huge).
    pub fn validate(&self) -> Result<(), LimitsError> {
        let timeouts = [
            ("limits.header_timeout_ms", self.header_timeout),
            ("limits.idle_timeout_ms", self.idle_timeout),
            ("limits.request_timeout_ms", self.request_timeout),
            ("limits.body_timeout_ms", self.body_timeout),
        ];
        for (field, d) in timeouts {
            if d.is_zero() {
                return Err(LimitsError::Zero { field });
            }
            if d > MAX_TIMEOUT {
                return Err(LimitsError::TooLarge {
                    field,
                    max: format!("{} ms", MAX_TIMEOUT.as_millis()),
                });
            }
        }
        let counts = [
            ("server.max_body_bytes", self.max_body_bytes),
            ("limits.max_connections", self.max_connections),
            ("limits.max_connections_per_ip", self.max_connections_per_ip),
            ("limits.max_in_flight_requests", self.max_in_flight),
        ];
        for (field, n) in counts {
            if n == 0 {
                return Err(LimitsError::Zero { field });
            }
            if n > Semaphore::MAX_PERMITS {
                return Err(LimitsError::TooLarge {
                    field,
                    max: Semaphore::MAX_PERMITS.to_string(),
                });
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Connection caps.

/// The unit one client is counted in: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation; counting single IPv6 addresses would let one host open 2^64 "clients").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    V4(Ipv4Addr),
    V6Prefix(u64),
}

pub(crate) fn client_key(ip: IpAddr) -> ClientKey {
    match ip {
        IpAddr::V4(a) => ClientKey::V4(a),
        IpAddr::V6(a) => match a.to_ipv4_mapped() {
            Some(v4) => ClientKey::V4(v4),
            None => ClientKey::V6Prefix((u128::from(a) >> 64) as u64),
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    PerIp,
    AtCapacity,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::PerIp => "per_ip",
            Refusal::AtCapacity => "max_connections",
        }
    }
}

pub(crate) struct ConnectionLimiter {
    total: Arc<Semaphore>,
    per_client: Mutex<HashMap<ClientKey, usize>>,
    max_per_client: usize,
    exempt: Vec<IpNet>,
}

/// An admitted connection's share of the caps, given back when it is dropped.
pub(crate) struct Admission {
    _permit: OwnedSemaphorePermit,
    client: Option<ClientKey>,
    limiter: Arc<ConnectionLimiter>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(key) = self.client {
            self.limiter.release(key);
        }
    }
}

impl ConnectionLimiter {
    pub(crate) fn new(limits: &Limits, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(ConnectionLimiter {
            total: Arc::new(Semaphore::new(limits.max_connections)),
            per_client: Mutex::new(HashMap::new()),
            max_per_client: limits.max_connections_per_ip,
            exempt,
        })
    }

    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refusal> {
        let client = if self.exempt.iter().any(|n| n.contains(&ip)) {
            None
        } else {
            let key = client_key(ip);
            let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(key).or_insert(0);
            if *n >= self.max_per_client {
                return Err(Refusal::PerIp);
            }
            *n += 1;
            Some(key)
        };
        match self.total.clone().try_acquire_owned() {
            Ok(permit) => Ok(Admission {
                _permit: permit,
                client,
                limiter: self.clone(),
            }),
            Err(_) => {
                if let Some(key) = client {
                    self.release(key);
                }
                Err(Refusal::AtCapacity)
            }
        }
    }

    fn release(&self, key: ClientKey) {
        let mut map = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn tracked_clients(&self) -> usize {
        self.per_client.lock().map(|m| m.len()).unwrap_or(0)
    }
}

// ---------------------------------------------------------------------------------------------
// Per-connection timeouts.

#[derive(Debug, Clone, Copy)]
struct ConnTimeouts {
    header: Duration,
    idle: Duration,
}

/// What the watchdog of one connection knows: fed by the socket wrapper (bytes moved) and by
/// the service wrapper (requests in flight).
struct Activity {
    state: Mutex<ActivityState>,
    /// A request head started arriving: the watchdog's deadline moved closer.
    head_started: Notify,
}

struct ActivityState {
    in_flight: usize,
    /// When the request head now being read began (accept, or its first byte).
    head_since: Option<Instant>,
    last_io: Instant,
}

#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Look again at this instant.
    Open(Instant),
    HeaderTimeout,
    Idle,
}

impl Activity {
    fn new(now: Instant) -> Arc<Self> {
        Arc::new(Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                head_since: Some(now),
                last_io: now,
            }),
            head_started: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ActivityState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_read(&self, n: usize, now: Instant) {
        if n == 0 {
            return;
        }
        let mut s = self.lock();
        s.last_io = now;
        if s.in_flight == 0 && s.head_since.is_none() {
            s.head_since = Some(now);
            drop(s);
            self.head_started.notify_one();
        }
    }

    fn on_write(&self, n: usize, now: Instant) {
        if n > 0 {
            self.lock().last_io = now;
        }
    }

    fn request_started(&self) {
        let mut s = self.lock();
        s.in_flight += 1;
        s.head_since = None;
    }

    fn request_ended(&self, now: Instant) {
        let mut s = self.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.last_io = now;
    }

    fn verdict(&self, now: Instant, t: ConnTimeouts) -> Verdict {
        let s = self.lock();
        if s.in_flight > 0 {
            // The request deadline (a tower layer) governs; look again once it may be over.
            return Verdict::Open(now + t.header.min(t.idle));
        }
        match s.head_since {
            Some(since) if now >= since + t.header => Verdict::HeaderTimeout,
            Some(since) => Verdict::Open(since + t.header),
            None if now >= s.last_io + t.idle => Verdict::Idle,
            None => Verdict::Open(s.last_io + t.idle),
        }
    }
}

/// The socket as hyper sees it, reporting every byte moved to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.activity
                .on_read(buf.filled().len() - before, Instant::now());
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.activity.on_write(n, Instant::now());
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.activity.on_write(n, Instant::now());
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Marks a request in flight on its connection until its response is ready (or it is dropped).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn enter(activity: &Arc<Activity>) -> Self {
        activity.request_started();
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended(Instant::now());
    }
}

// ---------------------------------------------------------------------------------------------
// The loop.

/// Connections beyond `max_connections` being answered 503 at once; past this many, a new one
/// is just closed (answering must not itself become the thing a flood exhausts).
const SHED_ANSWERS: usize = 64;
/// How long answering one shed connection may take.
const SHED_ANSWER_TIME: Duration = Duration::from_secs(1);

fn refused(reason: Refusal) {
    metrics::counter!("paybridge_connections_refused_total", "reason" => reason.label())
        .increment(1);
}

/// The raw HTTP/1.1 answer to a connection over capacity: no request is read, so the answer is
/// the same for every one and written before hyper gets involved.
fn overloaded_answer() -> Vec<u8> {
    let body = ApiError::Overloaded.body().to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: {RETRY_AFTER_SECONDS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn answer_overloaded(mut stream: TcpStream, answer: Arc<[u8]>) {
    let _ = tokio::time::timeout(SHED_ANSWER_TIME, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        // Read what the client sent before closing: closing a socket with unread input makes
        // the kernel reset it, and the client may then never see the answer.
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024usize;
        while left > 0 {
            let n = stream.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Accepts on `listener` and serves `app` on every admitted connection until `shutdown`
/// resolves; then stops accepting, lets each connection finish its request in flight, and
/// returns once all are closed. Connections from `exempt` (trusted proxies, which carry many
/// clients) are not held to the per-address cap. Requests carry `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: &Limits,
    exempt: Vec<IpNet>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limiter = ConnectionLimiter::new(limits, exempt);
    let shedders = Arc::new(Semaphore::new(SHED_ANSWERS));
    let answer: Arc<[u8]> = overloaded_answer().into();
    let timeouts = ConnTimeouts {
        header: limits.header_timeout,
        idle: limits.idle_timeout,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait for connections to close
                    // rather than spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        match limiter.admit(peer.ip()) {
            Ok(admission) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(
                    stream,
                    peer,
                    app.clone(),
                    timeouts,
                    admission,
                    stop_rx.clone(),
                ));
            }
            Err(reason) => {
                refused(reason);
                tracing::debug!(peer = %peer, reason = reason.label(), "connection refused");
                match reason {
                    // One client over its share is closed without a word: answering costs
                    // the server more than it costs the client to ask again.
                    Refusal::PerIp => drop(stream),
                    Refusal::AtCapacity => {
                        if let Ok(permit) = shedders.clone().try_acquire_owned() {
                            let answer = answer.clone();
                            tokio::spawn(async move {
                                answer_overloaded(stream, answer).await;
                                drop(permit);
                            });
                        }
                    }
                }
            }
        }
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver: this resolves once the last one has finished.
    stop_tx.closed().await;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    timeouts: ConnTimeouts,
    _admission: Admission,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Activity::new(Instant::now());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let tracker = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let in_flight = InFlight::enter(&tracker);
        req.extensions_mut().insert(ConnectInfo(peer));
        let answer = app.clone().oneshot(req);
        async move {
            let response = answer.await;
            drop(in_flight);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The watchdog below owns the header timeout: hyper's would also cut kept-alive
    // connections that are merely idle between requests.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let next = match activity.verdict(Instant::now(), timeouts) {
            Verdict::Open(at) => at,
            closed => {
                let reason = if closed == Verdict::Idle {
                    "idle"
                } else {
                    "header_timeout"
                };
                metrics::counter!("paybridge_connections_closed_total", "reason" => reason)
                    .increment(1);
                tracing::debug!(peer = %peer, reason, "connection closed");
                return;
            }
        };
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.head_started.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn limits(per_ip: usize, total: usize) -> Limits {
        Limits {
            max_connections: total,
            max_connections_per_ip: per_ip,
            ..Limits::default()
        }
    }

    #[test]
    fn defaults_are_valid_and_zero_is_refused_by_name() {
        assert_eq!(Limits::default().validate(), Ok(()));
        let zero_header = Limits {
            header_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(
            zero_header.validate(),
            Err(LimitsError::Zero {
                field: "limits.header_timeout_ms"
            })
        );
        let zero_per_ip = limits(0, 10);
        assert_eq!(
            zero_per_ip.validate(),
            Err(LimitsError::Zero {
                field: "limits.max_connections_per_ip"
            })
        );
        let huge = Limits {
            max_in_flight: usize::MAX,
            ..Limits::default()
        };
        assert!(matches!(
            huge.validate(),
            Err(LimitsError::TooLarge {
                field: "limits.max_in_flight_requests",
                ..
            })
        ));
    }

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), client_key(v4));
    }

    #[test]
    fn per_ip_and_total_caps_admit_release_and_exempt_proxies() {
        let proxy: IpNet = "10.0.0.0/8".parse().unwrap();
        let limiter = ConnectionLimiter::new(&limits(2, 4), vec![proxy]);
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let first = limiter.admit(a).unwrap();
        let _second = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refusal::PerIp));
        // The same /64 is one client.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        let _v6 = limiter.admit(v6a).unwrap();
        let _v6b = limiter.admit(v6b).unwrap();
        assert_eq!(limiter.admit(v6a).err(), Some(Refusal::PerIp));
        // Four open: the total cap holds for everyone, trusted proxies included.
        let p: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(limiter.admit(p).err(), Some(Refusal::AtCapacity));
        drop(first);
        let proxied = limiter.admit(p).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refusal::AtCapacity));
        drop(proxied);
        // A refusal at the total cap did not leak a per-client slot.
        let _again = limiter.admit(a).unwrap();
        assert_eq!(limiter.admit(a).err(), Some(Refusal::PerIp));
    }

    #[test]
    fn clients_are_forgotten_when_their_last_connection_closes() {
        let limiter = ConnectionLimiter::new(&limits(3, 100), Vec::new());
        let held: Vec<_> = (1..=20u8)
            .map(|i| limiter.admit(IpAddr::from([198, 51, 100, i])).unwrap())
            .collect();
        assert_eq!(limiter.tracked_clients(), 20);
        drop(held);
        assert_eq!(limiter.tracked_clients(), 0);
    }

    #[test]
    fn watchdog_deadlines_header_then_idle() {
        let t = ConnTimeouts {
            header: Duration::from_secs(10),
            idle: Duration::from_secs(60),
        };
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let a = Activity::new(start);
        // Fresh connection: the head must arrive within the header timeout from accept.
        assert_eq!(a.verdict(start, t), Verdict::Open(at(10)));
        assert_eq!(a.verdict(at(10), t), Verdict::HeaderTimeout);
        // A request in flight is not the watchdog's business, however long.
        a.request_started();
        assert_eq!(a.verdict(at(100), t), Verdict::Open(at(110)));
        a.request_ended(at(100));
        // Kept alive and quiet: the idle timeout, not the header timeout.
        assert_eq!(a.verdict(at(110), t), Verdict::Open(at(160)));
        a.on_write(0, at(120));
        assert_eq!(a.verdict(at(160), t), Verdict::Idle);
        // The next request's first byte starts its header clock; later bytes do not reset it.
        a.on_read(1, at(130));
        assert_eq!(a.verdict(at(130), t), Verdict::Open(at(140)));
        a.on_read(1, at(139));
        assert_eq!(a.verdict(at(140), t), Verdict::HeaderTimeout);
        // Its head complete, the request runs; body bytes while it runs start no header clock.
        a.request_started();
        a.on_read(100, at(141));
        a.request_ended(at(150));
        assert_eq!(a.verdict(at(150), t), Verdict::Open(at(210)));
    }
}
