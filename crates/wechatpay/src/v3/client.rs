//! The thin APIv3 client: signs [`ApiRequest`]s, sends them through a [`Transport`], verifies
//! the signed responses, and keeps the platform keys fresh.

use std::sync::{Mutex, RwLock};

use paybridge_crypto::{random_string, Secret};
use paybridge_http::{HttpRequest, HttpResponse, Transport, TransportError};

use super::api::{
    self, ApiRequest, BillLink, Merchant, PrepayRequest, PrepayResponse, RefundRequest,
};
use super::certs::{accept_download, CERTIFICATES_PATH};
use super::error::V3Error;
use super::model::{Refund, Transaction};
use super::sign::MerchantSigner;
use super::transfer::{
    self, BillRef, CreateTransferBill, Receipt, ReceiptApplied, TransferBill, TransferBillCancel,
    TransferBillCreated,
};
use super::verify::{SignatureHeaders, Verifier, VerifyError};

pub use crate::clock::{system_clock, Clock};

const WECHATPAY_SERIAL: &str = "Wechatpay-Serial";

/// How often platform certificates are re-downloaded when certificate mode is on.
pub const CERT_REFRESH_SECS: i64 = 12 * 3600;
/// The shortest interval between refreshes prompted by an unverifiable notification.
pub const URGENT_REFRESH_SECS: i64 = 60;

pub struct V3Config {
    pub merchant: Merchant,
    pub apiv3_key: Secret<Vec<u8>>,
    pub base_url: String,
    /// Tried only when repeating is safe (not sent, or an idempotent request).
    pub backup_base_url: Option<String>,
    /// Download platform certificates (`/v3/certificates`). Off for merchants in public-key mode
    /// only; on during a migration.
    pub platform_certificates: bool,
}

impl V3Config {
    pub fn new(merchant: Merchant, apiv3_key: Vec<u8>) -> Self {
        V3Config {
            merchant,
            apiv3_key: Secret::new(apiv3_key),
            base_url: super::BASE_URL.into(),
            backup_base_url: Some(super::BACKUP_BASE_URL.into()),
            platform_certificates: true,
        }
    }
}

pub struct V3Client<T> {
    pub config: V3Config,
    signer: MerchantSigner,
    verifier: RwLock<Verifier>,
    last_refresh: Mutex<Option<i64>>,
    transport: T,
    clock: Clock,
}

impl<T: Transport> V3Client<T> {
    /// `verifier` holds the keys already trusted (configured public keys and/or certificates).
    pub fn new(
        config: V3Config,
        signer: MerchantSigner,
        verifier: Verifier,
        transport: T,
        clock: Clock,
    ) -> Self {
        V3Client {
            config,
            signer,
            verifier: RwLock::new(verifier),
            last_refresh: Mutex::new(None),
            transport,
            clock,
        }
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn signer(&self) -> &MerchantSigner {
        &self.signer
    }

    /// A snapshot of the current keys (for notification verification).
    pub fn verifier(&self) -> Verifier {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` with the current keys, without copying them.
    pub fn with_verifier<R>(&self, f: impl FnOnce(&Verifier) -> R) -> R {
        f(&self.verifier.read().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn apiv3_key(&self) -> &[u8] {
        self.config.apiv3_key.expose()
    }

    /// Signs and sends, with the backup host when repeating is safe.
    pub async fn send(
        &self,
        req: &ApiRequest,
        extra_headers: &[(String, String)],
    ) -> Result<HttpResponse, V3Error> {
        let primary = self.http_request(&self.config.base_url, req, extra_headers)?;
        match self.transport.send(primary).await {
            Ok(resp) => Ok(resp),
            Err(e) => {
                let safe = matches!(e, TransportError::Connect { .. }) || req.idempotent;
                match (&self.config.backup_base_url, safe) {
                    (Some(backup), true) => {
                        tracing::warn!(error = %e, "WeChat Pay primary host failed; trying backup");
                        let again = self.http_request(backup, req, extra_headers)?;
                        Ok(self.transport.send(again).await?)
                    }
                    _ => Err(e.into()),
                }
            }
        }
    }

    fn http_request(
        &self,
        base: &str,
        req: &ApiRequest,
        extra: &[(String, String)],
    ) -> Result<HttpRequest, V3Error> {
        let ts = self.now().to_string();
        let nonce = random_string(32);
        let signed = self
            .signer
            .sign_request(req.method, &req.path, &req.body, &ts, &nonce)
            .map_err(|e| V3Error::Crypto(e.to_string()))?;
        let mut http = HttpRequest::new(
            req.method,
            format!("{}{}", base.trim_end_matches('/'), req.path),
        )
        .header("Authorization", signed.authorization)
        .header("Accept", "application/json")
        .header(
            "User-Agent",
            concat!("paybridge-wechatpay/", env!("CARGO_PKG_VERSION")),
        )
        .idempotent(req.idempotent);
        if !req.body.is_empty() {
            http = http
                .header("Content-Type", "application/json")
                .body(req.body.clone().into_bytes());
        }
        for (k, v) in extra {
            http = http.header(k.clone(), v.clone());
        }
        // Every request names the key we want answers signed with (see
        // `Verifier::preferred_serial`); one that encrypted fields already names its key.
        if !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(WECHATPAY_SERIAL))
        {
            let now = self.now();
            if let Some(serial) =
                self.with_verifier(|v| v.preferred_serial(now).map(str::to_string))
            {
                http = http.header(WECHATPAY_SERIAL, serial);
            }
        }
        Ok(http)
    }

    /// Sends, then: non-2xx → typed error; 2xx → verified (refreshing certificates once when
    /// the serial is unknown) and returned.
    pub async fn call(&self, req: &ApiRequest) -> Result<HttpResponse, V3Error> {
        let resp = self.send(req, &[]).await?;
        self.check(resp).await
    }

    async fn check(&self, resp: HttpResponse) -> Result<HttpResponse, V3Error> {
        if !(200..300).contains(&resp.status) {
            return Err(V3Error::from_response(resp.status, &resp.body));
        }
        let headers = SignatureHeaders::from_pairs(&resp.headers)?;
        let now = self.now();
        let first = self
            .verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verify(&headers, &resp.body, now);
        match first {
            Ok(()) => Ok(resp),
            Err(VerifyError::UnknownSerial(_)) if self.config.platform_certificates => {
                self.refresh_certificates().await?;
                self.verifier
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .verify(&headers, &resp.body, now)?;
                Ok(resp)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Downloads `/v3/certificates` and adds the certificates once the download verifies.
    pub async fn refresh_certificates(&self) -> Result<Vec<String>, V3Error> {
        let req = ApiRequest {
            method: "GET",
            path: CERTIFICATES_PATH.into(),
            body: String::new(),
            idempotent: true,
        };
        let resp = self.send(&req, &[]).await?;
        if !(200..300).contains(&resp.status) {
            return Err(V3Error::from_response(resp.status, &resp.body));
        }
        let headers = SignatureHeaders::from_pairs(&resp.headers)?;
        let now = self.now();
        let added = {
            let mut v = self.verifier.write().unwrap_or_else(|e| e.into_inner());
            accept_download(&mut v, &headers, &resp.body, self.apiv3_key(), now)?
        };
        *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        tracing::info!(serials = ?added, "WeChat Pay platform certificates refreshed");
        Ok(added)
    }

    /// The periodic job: refreshes when certificate mode is on and the last refresh is older
    /// than [`CERT_REFRESH_SECS`]. Returns whether it refreshed.
    pub async fn refresh_if_due(&self) -> Result<bool, V3Error> {
        self.refresh_if_older_than(CERT_REFRESH_SECS).await
    }

    /// Refreshes (certificate mode only) unless the last refresh is younger than `secs`: the
    /// gate that keeps unverifiable notifications, which anyone can send, from turning into a
    /// stream of certificate downloads.
    pub async fn refresh_if_older_than(&self, secs: i64) -> Result<bool, V3Error> {
        if !self.config.platform_certificates {
            return Ok(false);
        }
        let last = *self.last_refresh.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| self.now() - t < secs) {
            return Ok(false);
        }
        self.refresh_certificates().await.map(|_| true)
    }

    pub async fn prepay(&self, r: &PrepayRequest) -> Result<PrepayResponse, V3Error> {
        let resp = self.call(&api::prepay(&self.config.merchant, r)?).await?;
        api::parse_prepay(&r.kind, &resp.body)
    }

    pub async fn query_by_out_trade_no(&self, out_trade_no: &str) -> Result<Transaction, V3Error> {
        let resp = self
            .call(&api::query_by_out_trade_no(
                &self.config.merchant,
                out_trade_no,
            ))
            .await?;
        api::parse_transaction(&resp.body)
    }

    pub async fn query_by_transaction_id(&self, id: &str) -> Result<Transaction, V3Error> {
        let resp = self
            .call(&api::query_by_transaction_id(&self.config.merchant, id))
            .await?;
        api::parse_transaction(&resp.body)
    }

    pub async fn close(&self, out_trade_no: &str) -> Result<(), V3Error> {
        let resp = self
            .call(&api::close(&self.config.merchant, out_trade_no))
            .await?;
        if resp.status == 204 {
            Ok(())
        } else {
            Err(V3Error::Status {
                status: resp.status,
            })
        }
    }

    pub async fn refund(&self, r: &RefundRequest) -> Result<Refund, V3Error> {
        let resp = self.call(&api::refund(&self.config.merchant, r)).await?;
        api::parse_refund(&resp.body)
    }

    pub async fn query_refund(&self, out_refund_no: &str) -> Result<Refund, V3Error> {
        let resp = self
            .call(&api::query_refund(&self.config.merchant, out_refund_no))
            .await?;
        api::parse_refund(&resp.body)
    }

    /// Asks for a bill link, downloads it with a signed GET (the download itself is unsigned)
    /// and checks its SHA-1; returns the bill text bytes for [`crate::bill::BillReader`].
    pub async fn download_bill(
        &self,
        link_request: &ApiRequest,
        gzip: bool,
    ) -> Result<Vec<u8>, V3Error> {
        let mut out = Vec::new();
        self.download_bill_into(link_request, gzip, &mut out)
            .await?;
        Ok(out)
    }

    /// [`V3Client::download_bill`] into `out` (a temporary file): the download is streamed,
    /// decompressed and SHA-1 checked as it arrives ([`api::BillCheck`]), never held whole.
    pub async fn download_bill_into(
        &self,
        link_request: &ApiRequest,
        gzip: bool,
        out: &mut (impl std::io::Write + Send),
    ) -> Result<u64, V3Error> {
        let resp = self.call(link_request).await?;
        let link: BillLink = api::parse_bill_link(&resp.body)?;
        let path = api::download_path(&link.download_url)?;
        let req = ApiRequest {
            method: "GET",
            path,
            body: String::new(),
            idempotent: true,
        };
        let mut check = api::BillCheck::new(&link, gzip, out)?;
        let http = self.http_request(&self.config.base_url, &req, &[])?;
        let (file, _) = self
            .transport
            .send_streaming(http, &mut check, api::MAX_BILL_BYTES)
            .await?;
        if !(200..300).contains(&file.status) {
            return Err(V3Error::from_response(file.status, &file.body));
        }
        check.finish()
    }

    /// Sends a request carrying RSA-OAEP encrypted fields: `Wechatpay-Serial` names the key.
    pub async fn call_with_encrypted_fields(
        &self,
        req: &ApiRequest,
        serial: &str,
    ) -> Result<HttpResponse, V3Error> {
        let resp = self
            .send(req, &[(WECHATPAY_SERIAL.to_string(), serial.to_string())])
            .await?;
        self.check(resp).await
    }

    /// Encrypts a sensitive field with the current encryption key; returns (ciphertext, serial).
    pub fn encrypt_sensitive(&self, plaintext: &str) -> Result<(String, String), V3Error> {
        let v = self.verifier.read().unwrap_or_else(|e| e.into_inner());
        let key = v
            .encryption_key(self.now())
            .ok_or_else(|| V3Error::Config("no platform key to encrypt with".into()))?;
        let ct = super::sensitive::encrypt(&key.key, plaintext)
            .map_err(|e| V3Error::Crypto(e.to_string()))?;
        Ok((ct, key.serial.clone()))
    }

    /// 商家转账: creates the bill (or, for an `out_bill_no` already used, answers with the bill
    /// it made). `user_name` is encrypted under the current WeChat Pay key, whose serial goes
    /// out as `Wechatpay-Serial`.
    pub async fn create_transfer_bill(
        &self,
        r: &CreateTransferBill,
    ) -> Result<TransferBillCreated, V3Error> {
        let mut key = self.with_verifier(|v| v.encryption_key(self.now()).cloned());
        if key.is_none() && r.user_name.is_some() && self.config.platform_certificates {
            self.refresh_certificates().await?;
            key = self.with_verifier(|v| v.encryption_key(self.now()).cloned());
        }
        let req = transfer::create_transfer_bill(&self.config.merchant, r, key.as_ref())?;
        let resp = match &req.wechatpay_serial {
            Some(serial) => {
                self.call_with_encrypted_fields(&req.request, serial)
                    .await?
            }
            None => self.call(&req.request).await?,
        };
        transfer::parse_created(&resp.body)
    }

    pub async fn query_transfer_bill(&self, out_bill_no: &str) -> Result<TransferBill, V3Error> {
        let resp = self
            .call(&transfer::query_by_out_bill_no(out_bill_no))
            .await?;
        transfer::parse_transfer_bill(&resp.body)
    }

    pub async fn query_transfer_bill_by_no(
        &self,
        transfer_bill_no: &str,
    ) -> Result<TransferBill, V3Error> {
        let resp = self
            .call(&transfer::query_by_transfer_bill_no(transfer_bill_no))
            .await?;
        transfer::parse_transfer_bill(&resp.body)
    }

    pub async fn cancel_transfer_bill(
        &self,
        out_bill_no: &str,
    ) -> Result<TransferBillCancel, V3Error> {
        let resp = self
            .call(&transfer::cancel_transfer_bill(out_bill_no))
            .await?;
        transfer::parse_cancel(&resp.body)
    }

    pub async fn apply_transfer_receipt(&self, bill: &BillRef) -> Result<ReceiptApplied, V3Error> {
        let resp = self.call(&transfer::apply_receipt(bill)).await?;
        transfer::parse_receipt_applied(&resp.body)
    }

    pub async fn query_transfer_receipt(&self, bill: &BillRef) -> Result<Receipt, V3Error> {
        let resp = self.call(&transfer::query_receipt(bill)).await?;
        transfer::parse_receipt(&resp.body)
    }

    /// Downloads a FINISHED receipt's PDF with a signed GET (the download is unsigned) and
    /// checks it against `hash_value`.
    pub async fn download_transfer_receipt(&self, receipt: &Receipt) -> Result<Vec<u8>, V3Error> {
        let url = receipt
            .download_url
            .as_deref()
            .ok_or_else(|| V3Error::Json("receipt has no download_url (not FINISHED)".into()))?;
        let req = ApiRequest {
            method: "GET",
            path: api::download_path(url)?,
            body: String::new(),
            idempotent: true,
        };
        let file = self.send(&req, &[]).await?;
        if !(200..300).contains(&file.status) {
            return Err(V3Error::from_response(file.status, &file.body));
        }
        transfer::check_receipt(receipt, &file.body)?;
        Ok(file.body)
    }
}
