//! The thin I/O shell: runs the pure request builders and parsers through a [`Transport`],
//! retrying only where a repeat is harmless, and traces every exchange with secrets and personal
//! fields redacted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use paybridge_http::{redact, HttpRequest, Transport, TransportError};
use serde_json::Value;

use crate::api::{self, AlipayApi, BillDownloadUrlQuery, GenericRequest};
use crate::config::AlipayConfig;
use crate::request::{CallOptions, SignedRequest};
use crate::time_fmt::{Clock, SystemClock};
use crate::AlipayError;

/// A loggable copy of request parameters: the gateway's one redaction
/// ([`paybridge_http::redact`]) applied to each value (`biz_content` redacted inside).
pub fn redact_params(params: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    params
        .iter()
        .map(|(k, v)| {
            let shown = if redact::is_sensitive(k) {
                redact::MASK.to_string()
            } else if k == "biz_content" {
                redact::redact_text(v)
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// The largest file [`AlipayClient::download_into`] takes (a bill ZIP of a busy day is tens of MB).
pub const MAX_DOWNLOAD_BYTES: u64 = 512 * 1024 * 1024;

/// Counts what reached the sink, so a download cut midway is not repeated into it.
struct Written<'a> {
    sink: &'a mut (dyn std::io::Write + Send),
    bytes: u64,
}

impl std::io::Write for Written<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.sink.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.sink.flush()
    }
}

pub struct AlipayClient {
    config: Arc<AlipayConfig>,
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    max_attempts: u32,
    backoff: Duration,
}

impl AlipayClient {
    pub fn new(config: AlipayConfig, transport: Arc<dyn Transport>) -> Self {
        AlipayClient {
            config: Arc::new(config),
            transport,
            clock: Arc::new(SystemClock),
            max_attempts: 3,
            backoff: Duration::from_millis(200),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// `max_attempts` counts the first try; `backoff` grows linearly per attempt.
    pub fn with_retry(mut self, max_attempts: u32, backoff: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.backoff = backoff;
        self
    }

    pub fn config(&self) -> &AlipayConfig {
        &self.config
    }

    pub fn now_unix(&self) -> i64 {
        self.clock.now_unix()
    }

    /// Builds and signs a request without sending it (page/wap forms, App order strings).
    pub fn sign<A: AlipayApi>(
        &self,
        req: &A,
        opts: &CallOptions,
    ) -> Result<SignedRequest, AlipayError> {
        api::prepare(&self.config, req, opts, self.clock.now_unix())
    }

    async fn pause(&self, attempt: u32) {
        if !self.backoff.is_zero() {
            tokio::time::sleep(self.backoff * attempt).await;
        }
    }

    /// Sends `req` and returns its verified, typed answer.
    pub async fn execute<A: AlipayApi>(
        &self,
        req: &A,
        opts: &CallOptions,
    ) -> Result<A::Response, AlipayError> {
        let method = req.method().to_string();
        let mut attempt = 1;
        loop {
            let signed = self.sign(req, opts)?;
            let last = attempt >= self.max_attempts;
            // Debug, as every provider call is (the gateway's call log logs the same exchange).
            tracing::debug!(
                method = %method,
                attempt,
                params = ?redact_params(&signed.params),
                "alipay request"
            );
            let result = self.transport.send(signed.to_http_request()).await;
            match result {
                Err(e) => {
                    tracing::warn!(method = %method, attempt, error = %e, "alipay transport error");
                    // A request that never left can always go again; one that may have
                    // arrived only when repeating it is harmless.
                    let again = match &e {
                        TransportError::Connect { .. } => true,
                        TransportError::Unknown { .. } => signed.idempotent,
                        TransportError::Build(_) => false,
                    };
                    if !again || last {
                        return Err(e.into());
                    }
                }
                Ok(resp) => {
                    let body = String::from_utf8_lossy(&resp.body);
                    tracing::debug!(
                        method = %method,
                        attempt,
                        status = resp.status,
                        body = %redact::redact_text(&body),
                        "alipay response"
                    );
                    if resp.status >= 500 && signed.idempotent && !last {
                        // Retried below.
                    } else if resp.status != 200 {
                        return Err(AlipayError::HttpStatus {
                            method,
                            status: resp.status,
                        });
                    } else {
                        match self.parse_learning_certs(req, &body).await {
                            Err(AlipayError::Gateway(e))
                                if e.retry_safe() && signed.idempotent && !last =>
                            {
                                tracing::warn!(method = %method, attempt, code = %e.code, sub_code = %e.sub_code, "alipay retryable error");
                            }
                            other => return other,
                        }
                    }
                }
            }
            self.pause(attempt).await;
            attempt += 1;
        }
    }

    /// Reads an answer; when it is signed with an Alipay certificate we do not hold yet (Alipay
    /// rotated it), fetches that certificate, trusts it only if it chains to the configured
    /// root, and reads the same answer again (the request is never sent twice for this).
    async fn parse_learning_certs<A: AlipayApi>(
        &self,
        req: &A,
        body: &str,
    ) -> Result<A::Response, AlipayError> {
        match api::parse(&self.config, req, body) {
            Err(AlipayError::UnknownCertSn { sn, .. })
                if self.config.keys.certificates().is_some() =>
            {
                self.fetch_alipay_cert(&sn).await?;
                api::parse(&self.config, req, body)
            }
            other => other,
        }
    }

    /// `alipay.open.app.alipaycert.download` of `sn`, trusted per
    /// [`api::cert_download::accept_download`]. Returns the SN now trusted.
    pub async fn fetch_alipay_cert(&self, sn: &str) -> Result<String, AlipayError> {
        let req = api::AlipayCertDownload {
            alipay_cert_sn: sn.to_string(),
        };
        let mut attempt = 1;
        loop {
            let signed = self.sign(&req, &CallOptions::default())?;
            let last = attempt >= self.max_attempts;
            tracing::info!(alipay_cert_sn = %sn, attempt, "alipay certificate download");
            match self.transport.send(signed.to_http_request()).await {
                Ok(resp) if resp.status == 200 => {
                    let body = String::from_utf8_lossy(&resp.body);
                    let trusted = api::cert_download::accept_download(
                        &self.config,
                        &body,
                        sn,
                        self.clock.now_unix(),
                    );
                    match &trusted {
                        Ok(_) => tracing::info!(alipay_cert_sn = %sn, "alipay certificate trusted"),
                        Err(e) => {
                            tracing::warn!(alipay_cert_sn = %sn, error = %e, "alipay certificate refused")
                        }
                    }
                    return trusted;
                }
                Ok(resp) if resp.status < 500 || last => {
                    return Err(AlipayError::HttpStatus {
                        method: api::cert_download::METHOD.into(),
                        status: resp.status,
                    })
                }
                Err(e) if last || matches!(e, TransportError::Build(_)) => return Err(e.into()),
                Ok(_) | Err(_) => {}
            }
            self.pause(attempt).await;
            attempt += 1;
        }
    }

    /// Any gateway method, answered as the verified response node.
    pub async fn call(
        &self,
        method: &str,
        biz_content: Value,
        opts: &CallOptions,
        idempotent: bool,
    ) -> Result<Value, AlipayError> {
        let mut req = GenericRequest::new(method, biz_content);
        req.idempotent = idempotent;
        self.execute(&req, opts).await
    }

    /// Downloads a file (the bill ZIP) with a plain GET into memory.
    pub async fn download(&self, url: &str) -> Result<Vec<u8>, AlipayError> {
        let mut body = Vec::new();
        self.download_into(url, &mut body).await?;
        Ok(body)
    }

    /// Streams a file (the bill ZIP) into `sink` as it arrives (at most [`MAX_DOWNLOAD_BYTES`]);
    /// repeated while nothing has been written, since a GET is safe to repeat. Returns its size.
    pub async fn download_into(
        &self,
        url: &str,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, AlipayError> {
        let mut sink = Written { sink, bytes: 0 };
        let mut attempt = 1;
        loop {
            let last = attempt >= self.max_attempts;
            let req = HttpRequest::new("GET", url).idempotent(true);
            match self
                .transport
                .send_streaming(req, &mut sink, MAX_DOWNLOAD_BYTES)
                .await
            {
                Ok((resp, n)) if resp.status == 200 => return Ok(n),
                Ok((resp, _)) if resp.status < 500 || last => {
                    return Err(AlipayError::HttpStatus {
                        method: "bill download".into(),
                        status: resp.status,
                    })
                }
                Err(e) if last || sink.bytes > 0 || matches!(e, TransportError::Build(_)) => {
                    return Err(e.into())
                }
                Ok(_) | Err(_) => {}
            }
            self.pause(attempt).await;
            attempt += 1;
        }
    }

    /// The bill ZIP of one day (`yyyy-MM-dd`), ready for [`crate::bill::BillArchive`].
    pub async fn download_trade_bill(
        &self,
        bill_date: &str,
        opts: &CallOptions,
    ) -> Result<Vec<u8>, AlipayError> {
        let url = self
            .execute(&BillDownloadUrlQuery::trade(bill_date), opts)
            .await?
            .bill_download_url;
        self.download(&url).await
    }

    /// [`AlipayClient::download_trade_bill`] streamed into `sink` (a temporary file).
    pub async fn download_trade_bill_into(
        &self,
        bill_date: &str,
        opts: &CallOptions,
        sink: &mut (dyn std::io::Write + Send),
    ) -> Result<u64, AlipayError> {
        let url = self
            .execute(&BillDownloadUrlQuery::trade(bill_date), opts)
            .await?
            .bill_download_url;
        self.download_into(&url, sink).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use paybridge_core::Fen;
    use paybridge_http::HttpResponse;

    use super::*;
    use crate::api::testutil::{respond, test_config, NOW};
    use crate::api::{OrderInfo, TradePay, TradeQuery, TradeRef, TradeRefund};
    use crate::notify::NotifyForm;
    use crate::time_fmt::FixedClock;

    /// Replays scripted answers and records what was sent.
    #[derive(Default)]
    pub struct ScriptedTransport {
        pub answers: Mutex<VecDeque<Result<HttpResponse, TransportError>>>,
        pub sent: Mutex<Vec<HttpRequest>>,
    }

    impl ScriptedTransport {
        pub fn new(answers: Vec<Result<HttpResponse, TransportError>>) -> Arc<Self> {
            Arc::new(ScriptedTransport {
                answers: Mutex::new(answers.into()),
                sent: Mutex::new(Vec::new()),
            })
        }

        pub fn sent_count(&self) -> usize {
            self.sent.lock().unwrap().len()
        }
    }

    #[async_trait]
    impl Transport for ScriptedTransport {
        async fn send(&self, req: HttpRequest) -> Result<HttpResponse, TransportError> {
            self.sent.lock().unwrap().push(req);
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| panic!("no scripted answer left"))
        }
    }

    pub fn ok(body: String) -> Result<HttpResponse, TransportError> {
        Ok(HttpResponse {
            status: 200,
            headers: vec![],
            body: body.into_bytes(),
        })
    }

    pub fn unknown() -> Result<HttpResponse, TransportError> {
        Err(TransportError::Unknown {
            url: "u".into(),
            reason: "timeout".into(),
        })
    }

    pub fn connect() -> Result<HttpResponse, TransportError> {
        Err(TransportError::Connect {
            url: "u".into(),
            reason: "refused".into(),
        })
    }

    fn client(
        transport: Arc<ScriptedTransport>,
    ) -> (AlipayClient, paybridge_crypto::RsaPrivateKey) {
        let (config, alipay) = test_config();
        let c = AlipayClient::new(config, transport)
            .with_clock(Arc::new(FixedClock(NOW)))
            .with_retry(3, Duration::ZERO);
        (c, alipay)
    }

    const QUERY_OK: &str = r#"{"code":"10000","msg":"Success","out_trade_no":"Q1","trade_no":"1","trade_status":"WAIT_BUYER_PAY","total_amount":"1.00","buyer_logon_id":"a***@b.c"}"#;

    #[tokio::test]
    async fn query_retries_unknown_and_20000() {
        let (config, alipay) = test_config();
        drop(config);
        let busy = respond(
            &alipay,
            "alipay.trade.query",
            r#"{"code":"20000","msg":"Service Currently Unavailable","sub_code":"isp.unknow-error","sub_msg":"系统繁忙"}"#,
        );
        let t = ScriptedTransport::new(vec![
            unknown(),
            ok(busy),
            ok(respond(&alipay, "alipay.trade.query", QUERY_OK)),
        ]);
        let (c, _) = client(t.clone());
        let resp = c
            .execute(
                &TradeQuery {
                    trade: TradeRef::out_trade_no("Q1"),
                },
                &CallOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(resp.trade_status, "WAIT_BUYER_PAY");
        assert_eq!(t.sent_count(), 3);
        let sent = t.sent.lock().unwrap();
        let form = NotifyForm::parse(&sent[0].body).unwrap();
        assert_eq!(form.get("timestamp"), Some("2026-11-26 20:00:00"));
        assert!(sent[0].idempotent);
    }

    #[tokio::test]
    async fn pay_is_not_retried_after_it_may_have_arrived() {
        let t = ScriptedTransport::new(vec![unknown()]);
        let (c, _) = client(t.clone());
        let err = c
            .execute(
                &TradePay::new(OrderInfo::new("B1", Fen(1), "s"), "28"),
                &CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            AlipayError::Transport(TransportError::Unknown { .. })
        ));
        assert_eq!(t.sent_count(), 1);
    }

    #[tokio::test]
    async fn connect_errors_are_retried_for_any_method() {
        let (_, alipay) = test_config();
        let paid = respond(
            &alipay,
            "alipay.trade.pay",
            r#"{"code":"10000","msg":"Success","out_trade_no":"B1","trade_no":"1","total_amount":"0.01"}"#,
        );
        let t = ScriptedTransport::new(vec![connect(), ok(paid)]);
        let (c, _) = client(t.clone());
        let resp = c
            .execute(
                &TradePay::new(OrderInfo::new("B1", Fen(1), "s"), "28"),
                &CallOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(resp.trade_no.as_deref(), Some("1"));
        assert_eq!(t.sent_count(), 2);
    }

    #[tokio::test]
    async fn refund_with_request_number_is_retried_and_gives_up_after_max() {
        let t = ScriptedTransport::new(vec![unknown(), unknown(), unknown()]);
        let (c, _) = client(t.clone());
        let err = c
            .execute(
                &TradeRefund::new(TradeRef::out_trade_no("R1"), "R1-1", Fen(1)),
                &CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AlipayError::Transport(_)));
        assert_eq!(t.sent_count(), 3);
    }

    #[tokio::test]
    async fn http_5xx_on_non_idempotent_is_an_error_at_once() {
        let t = ScriptedTransport::new(vec![Ok(HttpResponse {
            status: 502,
            headers: vec![],
            body: b"bad gateway".to_vec(),
        })]);
        let (c, _) = client(t.clone());
        let err = c
            .execute(
                &TradePay::new(OrderInfo::new("B1", Fen(1), "s"), "28"),
                &CallOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, AlipayError::HttpStatus { status: 502, .. }));
    }

    #[tokio::test]
    async fn bill_is_fetched_through_the_transport() {
        use crate::bill::{write_trade_bill_zip, BillArchive, BillKind, BillRecord};
        let (_, alipay) = test_config();
        let record = BillRecord {
            trade_no: "2026112522001411111111111111".into(),
            out_trade_no: "T1".into(),
            kind: BillKind::Payment,
            subject: "书".into(),
            created_at: "2026-11-25 10:00:00".into(),
            finished_at: "2026-11-25 10:00:05".into(),
            store_id: String::new(),
            store_name: String::new(),
            operator: String::new(),
            terminal_id: String::new(),
            counterparty: "a***@b.c".into(),
            order_amount: Fen(1050),
            merchant_received: Fen(1050),
            alipay_red_packet: Fen(0),
            jifenbao: Fen(0),
            alipay_discount: Fen(0),
            merchant_discount: Fen(0),
            coupon_amount: Fen(0),
            coupon_name: String::new(),
            merchant_red_packet: Fen(0),
            card_amount: Fen(0),
            refund_request_no: String::new(),
            service_fee: Fen(-6),
            profit_share: Fen(0),
            remark: String::new(),
        };
        let zip =
            write_trade_bill_zip("2088", "2026-11-25", std::slice::from_ref(&record)).unwrap();
        let url_answer = respond(
            &alipay,
            "alipay.data.dataservice.bill.downloadurl.query",
            r#"{"code":"10000","msg":"Success","bill_download_url":"https:\/\/bills.example\/b.zip?token=1"}"#,
        );
        let t = ScriptedTransport::new(vec![
            ok(url_answer),
            unknown(),
            Ok(HttpResponse {
                status: 200,
                headers: vec![],
                body: zip,
            }),
        ]);
        let (c, _) = client(t.clone());
        let bytes = c
            .download_trade_bill("2026-11-25", &CallOptions::default())
            .await
            .unwrap();
        let sent = t.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[2].method, "GET");
        assert_eq!(sent[2].url, "https://bills.example/b.zip?token=1");
        let mut archive = BillArchive::new(bytes).unwrap();
        let rows: Vec<BillRecord> = archive.detail().unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows, vec![record]);
    }

    /// Collects formatted log output.
    #[derive(Clone, Default)]
    struct LogBuf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for LogBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn traces_redact_signatures_tokens_and_buyers() {
        let logs = LogBuf::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let (_, alipay) = test_config();
        let answer = respond(&alipay, "alipay.trade.query", QUERY_OK);
        let sign = serde_json::from_str::<Value>(&answer).unwrap()["sign"]
            .as_str()
            .unwrap()
            .to_string();
        let t = ScriptedTransport::new(vec![ok(answer)]);
        let (c, _) = client(t.clone());
        let opts = CallOptions {
            app_auth_token: Some("isv-token-123".into()),
            ..CallOptions::default()
        };
        c.execute(
            &TradeQuery {
                trade: TradeRef::out_trade_no("Q1"),
            },
            &opts,
        )
        .await
        .unwrap();
        let request_sign = NotifyForm::parse(&t.sent.lock().unwrap()[0].body)
            .unwrap()
            .get("sign")
            .unwrap()
            .to_string();
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("alipay request") && text.contains("alipay response"),
            "{text}"
        );
        assert!(text.contains("WAIT_BUYER_PAY"));
        for secret in [
            sign.as_str(),
            request_sign.as_str(),
            "isv-token-123",
            "a***@b.c",
        ] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
    }

    #[test]
    fn redaction() {
        let mut params = BTreeMap::new();
        params.insert("sign".to_string(), "SECRETSIG".to_string());
        params.insert("app_auth_token".to_string(), "tok".to_string());
        params.insert(
            "biz_content".to_string(),
            r#"{"auth_code":"2876","out_trade_no":"X","buyer_id":"2088"}"#.to_string(),
        );
        let shown = format!("{:?}", redact_params(&params));
        assert!(
            !shown.contains("SECRETSIG") && !shown.contains("tok\"") && !shown.contains("2876")
        );
        assert!(shown.contains("out_trade_no") && !shown.contains("\\\"2088"));
        let body = redact::redact_text(QUERY_OK);
        assert!(!body.contains("a***@b.c"));
        assert!(body.contains("WAIT_BUYER_PAY"));
    }
}
