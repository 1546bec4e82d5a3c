//! The provider-neutral contract between the gateway service and a payment channel.
//!
//! Each provider crate implements [`PaymentChannel`]; the service never sees a wire format.
//! Provider statuses map to [`ProviderPaymentStatus`] / [`ProviderRefundStatus`] with exhaustive
//! matches in the provider crates.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{Fen, Scene};

/// Everything needed to open a payment at a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePayment {
    pub out_trade_no: String,
    pub amount: Fen,
    pub subject: String,
    pub description: Option<String>,
    pub scene: Scene,
    /// Unix seconds after which the buyer can no longer pay.
    pub expires_at: Option<i64>,
    pub notify_url: String,
    /// Where the buyer's browser returns after page/wap pay (Alipay) or H5 (WeChat).
    pub return_url: Option<String>,
    pub client_ip: Option<String>,
    /// WeChat `openid` or Alipay `buyer_id`/`buyer_open_id`, for JSAPI / mini-program.
    pub payer_id: Option<String>,
    /// The buyer's barcode, for the barcode scene.
    pub auth_code: Option<String>,
    /// Opaque merchant data echoed back (`passback_params` / `attach`).
    pub attach: Option<String>,
}

/// What the merchant's client needs to let the buyer pay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientAction {
    /// Send the buyer's browser here (Alipay page/wap GET URL, WeChat H5 `h5_url`/`mweb_url`).
    Redirect { url: String },
    /// An auto-submitting HTML form (Alipay page/wap POST form); `url` is the GET equivalent.
    Form { html: String, url: String },
    /// Show this as a QR code (Alipay precreate `qr_code`, WeChat Native `code_url`).
    QrCode { code_url: String },
    /// Alipay App: the signed order string for the App SDK.
    AppOrderString { order_string: String },
    /// WeChat App / JSAPI / mini-program: the signed client invocation parameters.
    ClientParams { params: BTreeMap<String, String> },
    /// Alipay JSAPI / mini-program: the trade number for `my.tradePay`.
    TradeNo { trade_no: String },
    /// Barcode: the provider answered synchronously.
    Barcode { snapshot: PaymentSnapshot },
}

/// Identifies an order at the provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    pub out_trade_no: String,
    pub provider_trade_no: Option<String>,
}

/// The provider's view of a payment, mapped to our vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderPaymentStatus {
    /// The provider does not know the order (never created, or created and expired unseen).
    NotFound,
    /// Waiting for the buyer.
    Pending,
    /// The buyer is entering a password (barcode USERPAYING / Alipay 10003).
    UserPaying,
    Paid,
    /// Paid, then (partly or fully) refunded.
    Refunded,
    /// Closed unpaid (or revoked).
    Closed,
    /// The payment failed (PAYERROR).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentSnapshot {
    pub out_trade_no: String,
    pub provider_trade_no: Option<String>,
    pub status: ProviderPaymentStatus,
    /// The provider's own status word (`TRADE_SUCCESS`, `NOTPAY`...), for people reading logs.
    pub provider_status: String,
    /// Order total as the provider records it.
    pub amount: Option<Fen>,
    /// What the buyer paid (may be less than `amount` with coupons).
    pub paid_amount: Option<Fen>,
    /// Provider payment time, as the provider wrote it.
    pub paid_at: Option<String>,
    /// Alipay `buyer_id`/`buyer_logon_id`, WeChat `openid`.
    pub payer_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRefund {
    pub out_trade_no: String,
    pub provider_trade_no: Option<String>,
    /// Idempotency key at the provider (Alipay `out_request_no`, WeChat `out_refund_no`).
    pub out_refund_no: String,
    pub refund_amount: Fen,
    /// The payment's total (WeChat requires it).
    pub total_amount: Fen,
    pub reason: Option<String>,
    pub notify_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRef {
    pub out_trade_no: String,
    pub provider_trade_no: Option<String>,
    pub out_refund_no: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderRefundStatus {
    NotFound,
    Processing,
    Succeeded,
    /// Closed or abnormal: the money did not go back by this refund.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundSnapshot {
    pub out_refund_no: String,
    pub provider_refund_no: Option<String>,
    pub status: ProviderRefundStatus,
    pub provider_status: String,
    pub amount: Option<Fen>,
    pub succeeded_at: Option<String>,
}

/// A request as received by a notify endpoint, raw.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InboundRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl InboundRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a verified notification says happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChannelEvent {
    Payment {
        snapshot: PaymentSnapshot,
    },
    Refund {
        out_trade_no: String,
        snapshot: RefundSnapshot,
    },
}

/// A verified notification: who sent it, its dedup id, and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedNotification {
    /// Alipay `notify_id`, WeChat v3 `id`; v2 has none (dedup by content then).
    pub notify_id: Option<String>,
    /// Alipay `app_id` / WeChat `appid`.
    pub app_id: Option<String>,
    /// Alipay `seller_id` / WeChat `mch_id`/`mchid`.
    pub merchant_id: Option<String>,
    /// The order's subject as the provider echoes it (Alipay), checked against the order: the
    /// merchant's own text must read back exactly as sent.
    #[serde(default)]
    pub subject: Option<String>,
    pub event: ChannelEvent,
}

/// How the service judged a notification; the channel turns it into the provider's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    Accepted,
    /// `retry`: whether the provider should send it again (true when a later attempt can succeed).
    Rejected {
        retry: bool,
        reason: String,
    },
    /// Our fault (storage, processing): the sender did nothing wrong and should send it again.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// Why a channel call failed. The split that matters: `Unknown` means the provider may or may
/// not have acted (query before assuming anything); `Refused` is a definite answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("outcome unknown ({operation}): {reason}")]
    Unknown {
        operation: &'static str,
        reason: String,
    },
    #[error("refused by provider: {code}: {message}")]
    Refused {
        code: String,
        message: String,
        retryable: bool,
    },
    #[error("configuration fault: {0}")]
    Config(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("notification rejected: {0}")]
    BadNotification(String),
    #[error("{0} is not supported by this channel")]
    Unsupported(String),
}

/// What a close did at the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseOutcome {
    Closed,
    /// The provider does not know the order (yet).
    NotFound,
}

#[async_trait]
pub trait PaymentChannel: Send + Sync {
    /// Whether this channel can take payments of `scene` at all: checked before anything is
    /// written, so an impossible request is a plain validation error.
    fn supports_scene(&self, scene: Scene) -> bool {
        let _ = scene;
        true
    }
    async fn create_payment(&self, req: &CreatePayment) -> Result<ClientAction, ChannelError>;
    async fn query_payment(&self, order: &OrderRef) -> Result<PaymentSnapshot, ChannelError>;
    /// Closes an unpaid order. [`CloseOutcome::NotFound`] means the provider has no such order
    /// yet, which is not the same as closed: an Alipay QR order exists only once scanned, and
    /// stays payable until its `time_expire`.
    async fn close_payment(&self, order: &OrderRef) -> Result<CloseOutcome, ChannelError>;
    /// Barcode payments waiting for a password are cancelled (Alipay cancel / WeChat reverse).
    async fn cancel_payment(&self, order: &OrderRef) -> Result<(), ChannelError>;
    async fn refund(&self, req: &CreateRefund) -> Result<RefundSnapshot, ChannelError>;
    async fn query_refund(&self, refund: &RefundRef) -> Result<RefundSnapshot, ChannelError>;
    /// Verifies and decodes a notification. Pure: no I/O beyond key material already loaded
    /// (WeChat v3 certificate refresh happens outside).
    fn decode_notification(
        &self,
        req: &InboundRequest,
        now_unix: i64,
    ) -> Result<VerifiedNotification, ChannelError>;
    /// The provider's exact reply for an outcome.
    fn acknowledge(&self, outcome: &NotifyOutcome) -> HttpReply;

    /// The merchant order number a notification that did NOT verify claims to be about, read
    /// without trusting it, only to show the refused notification on that order's timeline.
    /// `None` where the protocol hides it (encrypted) or the body does not parse.
    fn claimed_order(&self, req: &InboundRequest) -> Option<String> {
        let _ = req;
        None
    }

    /// Refreshes the provider's verification keys where the protocol rotates them (WeChat Pay
    /// platform certificates). `urgent` is set after a notification could not be verified: a
    /// rotation may have just happened. Implementations rate-limit urgent refreshes, since
    /// anyone can send an unverifiable notification. Returns whether keys were downloaded.
    async fn refresh_keys(&self, urgent: bool) -> Result<bool, ChannelError> {
        let _ = urgent;
        Ok(false)
    }
}
