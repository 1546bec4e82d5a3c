//! [`PaymentChannel`] over APIv3.

use async_trait::async_trait;
use paybridge_core::channel::{
    ChannelError, ChannelEvent, ClientAction, CloseOutcome, CreatePayment, CreateRefund, HttpReply,
    InboundRequest, NotifyOutcome, OrderRef, PaymentChannel, PaymentSnapshot, RefundRef,
    RefundSnapshot, VerifiedNotification,
};
use paybridge_core::{CreatePayout, PayoutNotification, PayoutSnapshot, Scene};
use paybridge_crypto::random_string;
use paybridge_http::Transport;

use super::api::{PrepayKind, PrepayRequest, PrepayResponse, RefundRequest};
use super::client::{V3Client, CERT_REFRESH_SECS, URGENT_REFRESH_SECS};
use super::client_params;
use super::error::V3Error;
use super::model::{Refund, Transaction};
use super::notify::{failure_body, parse_notify, NotifyEvent};
use super::transfer::{self, CreateTransferBill};
use super::verify::SignatureHeaders;
use crate::common::{bad, payment_not_found, refund_not_found, with_redirect};
use crate::status::{TradeState, V3RefundStatus};

pub struct V3Channel<T> {
    pub client: V3Client<T>,
}

impl<T: Transport> V3Channel<T> {
    pub fn new(client: V3Client<T>) -> Self {
        V3Channel { client }
    }

    /// 商家转账: creates the bill (or answers with the bill this `out_no` already made). A
    /// create that may have arrived is `Unknown`: query, never send another number.
    pub async fn create_payout(&self, p: &CreatePayout) -> Result<PayoutSnapshot, ChannelError> {
        let bill =
            CreateTransferBill::from_payout(p).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        match self.client.create_transfer_bill(&bill).await {
            Ok(created) => Ok(created.snapshot()),
            Err(V3Error::Transfer(e)) => Err(ChannelError::Invalid(e.to_string())),
            Err(e) => Err(channel_error("transfer bill create", e)),
        }
    }

    /// The bill as WeChat has it; one it does not have is
    /// [`paybridge_core::ProviderPayoutStatus::NotFound`].
    pub async fn query_payout(&self, out_bill_no: &str) -> Result<PayoutSnapshot, ChannelError> {
        match self.client.query_transfer_bill(out_bill_no).await {
            Ok(bill) => Ok(bill.snapshot()),
            Err(e) if transfer::is_not_found(&e) => {
                let word = e.code().unwrap_or("NOT_FOUND").to_string();
                Ok(transfer::not_found_snapshot(out_bill_no, &word))
            }
            Err(e) => Err(channel_error("transfer bill query", e)),
        }
    }

    /// Cancels before the payee collects; the answer is CANCELING or CANCELLED.
    pub async fn cancel_payout(&self, out_bill_no: &str) -> Result<PayoutSnapshot, ChannelError> {
        self.client
            .cancel_transfer_bill(out_bill_no)
            .await
            .map(|c| c.snapshot())
            .map_err(|e| channel_error("transfer bill cancel", e))
    }

    /// Verifies and decrypts `MCHTRANSFER.BILL.FINISHED`. Acknowledge it with
    /// [`PaymentChannel::acknowledge`], which answers every v3 notification alike.
    pub fn decode_payout_notification(
        &self,
        req: &InboundRequest,
        now_unix: i64,
    ) -> Result<PayoutNotification, ChannelError> {
        let headers = SignatureHeaders::from_lookup(|n| req.header(n)).map_err(bad)?;
        let n = self
            .client
            .with_verifier(|v| {
                parse_notify(v, &headers, &req.body, self.client.apiv3_key(), now_unix)
            })
            .map_err(bad)?;
        let bill = n.transfer_bill().map_err(bad)?;
        Ok(PayoutNotification {
            notify_id: Some(n.envelope.id.clone()),
            merchant_id: bill.mch_id.clone(),
            snapshot: bill.snapshot(),
        })
    }
}

/// Maps a client error: unknown outcomes (and requests that never left) are `Unknown`, so the
/// caller queries before assuming; WeChat's definite answers are `Refused` with retry advice.
pub fn channel_error(operation: &'static str, e: V3Error) -> ChannelError {
    let retryable = e.retryable();
    if e.outcome_unknown() || matches!(e, V3Error::Transport(_)) {
        return ChannelError::Unknown {
            operation,
            reason: e.to_string(),
        };
    }
    match e {
        V3Error::Api { code, message, .. } => ChannelError::Refused {
            code,
            message,
            retryable,
        },
        V3Error::Config(m) | V3Error::Crypto(m) => ChannelError::Config(m),
        other => ChannelError::Refused {
            code: "ERROR".into(),
            message: other.to_string(),
            retryable,
        },
    }
}

pub fn transaction_snapshot(t: &Transaction) -> Result<PaymentSnapshot, ChannelError> {
    let state = TradeState::parse(&t.trade_state).map_err(|e| ChannelError::Unknown {
        operation: "query",
        reason: e.to_string(),
    })?;
    Ok(PaymentSnapshot {
        out_trade_no: t.out_trade_no.clone(),
        provider_trade_no: t.transaction_id.clone(),
        status: state.to_core(),
        provider_status: t.trade_state.clone(),
        amount: t.amount.as_ref().and_then(|a| a.total),
        paid_amount: t.amount.as_ref().and_then(|a| a.payer_total),
        paid_at: t.success_time.clone(),
        payer_id: t
            .payer
            .as_ref()
            .and_then(|p| p.any_openid())
            .map(str::to_string),
    })
}

pub fn refund_snapshot(r: &Refund) -> Result<RefundSnapshot, ChannelError> {
    let status = V3RefundStatus::parse(&r.status).map_err(|e| ChannelError::Unknown {
        operation: "refund",
        reason: e.to_string(),
    })?;
    Ok(RefundSnapshot {
        out_refund_no: r.out_refund_no.clone(),
        provider_refund_no: r.refund_id.clone(),
        status: status.to_core(),
        provider_status: r.status.clone(),
        amount: r.amount.as_ref().and_then(|a| a.refund),
        succeeded_at: r.success_time.clone(),
    })
}

#[async_trait]
impl<T: Transport> PaymentChannel for V3Channel<T> {
    async fn create_payment(&self, req: &CreatePayment) -> Result<ClientAction, ChannelError> {
        let kind = match req.scene {
            Scene::Pc | Scene::Qr => PrepayKind::Native,
            Scene::Wap => PrepayKind::H5,
            Scene::App => PrepayKind::App,
            Scene::Jsapi => PrepayKind::Jsapi {
                openid: req
                    .payer_id
                    .clone()
                    .ok_or_else(|| ChannelError::Invalid("JSAPI needs payer_id (openid)".into()))?,
            },
            Scene::Barcode => {
                return Err(ChannelError::Unsupported(
                    "barcode (micropay) on WeChat Pay APIv3".into(),
                ))
            }
        };
        let prepay = PrepayRequest {
            kind: kind.clone(),
            out_trade_no: req.out_trade_no.clone(),
            description: req.subject.clone(),
            amount: req.amount,
            notify_url: req.notify_url.clone(),
            time_expire: req.expires_at,
            attach: req.attach.clone(),
            payer_client_ip: req.client_ip.clone(),
        };
        let resp = self
            .client
            .prepay(&prepay)
            .await
            .map_err(|e| channel_error("prepay", e))?;
        let merchant = &self.client.config.merchant;
        let key = self.client.signer().private_key();
        let ts = self.client.now().to_string();
        let nonce = random_string(32);
        let sign_err = |e: paybridge_crypto::CryptoError| ChannelError::Config(e.to_string());
        Ok(match resp {
            PrepayResponse::CodeUrl(code_url) => ClientAction::QrCode { code_url },
            PrepayResponse::H5Url(url) => ClientAction::Redirect {
                url: with_redirect(url, req.return_url.as_deref()),
            },
            PrepayResponse::PrepayId(id) => {
                let params = if matches!(kind, PrepayKind::App) {
                    client_params::app_params(
                        key,
                        merchant.client_appid(),
                        merchant.payee_mchid(),
                        &id,
                        &ts,
                        &nonce,
                    )
                } else {
                    client_params::jsapi_params(key, merchant.client_appid(), &id, &ts, &nonce)
                };
                ClientAction::ClientParams {
                    params: params.map_err(sign_err)?,
                }
            }
        })
    }

    async fn query_payment(&self, order: &OrderRef) -> Result<PaymentSnapshot, ChannelError> {
        let r = match &order.provider_trade_no {
            Some(id) => self.client.query_by_transaction_id(id).await,
            None => self.client.query_by_out_trade_no(&order.out_trade_no).await,
        };
        match r {
            Ok(t) => transaction_snapshot(&t),
            Err(V3Error::Api { code, .. }) if code == "ORDER_NOT_EXIST" => {
                Ok(payment_not_found(&order.out_trade_no, &code))
            }
            Err(e) => Err(channel_error("query", e)),
        }
    }

    async fn close_payment(&self, order: &OrderRef) -> Result<CloseOutcome, ChannelError> {
        self.client
            .close(&order.out_trade_no)
            .await
            .map(|()| CloseOutcome::Closed)
            .map_err(|e| channel_error("close", e))
    }

    /// Micropay exists only in APIv2.
    fn supports_scene(&self, scene: Scene) -> bool {
        scene != Scene::Barcode
    }

    async fn cancel_payment(&self, _order: &OrderRef) -> Result<(), ChannelError> {
        Err(ChannelError::Unsupported(
            "reverse (barcode cancel) on WeChat Pay APIv3".into(),
        ))
    }

    async fn refund(&self, req: &CreateRefund) -> Result<RefundSnapshot, ChannelError> {
        let r = RefundRequest {
            out_trade_no: req.out_trade_no.clone(),
            transaction_id: req.provider_trade_no.clone(),
            out_refund_no: req.out_refund_no.clone(),
            refund: req.refund_amount,
            total: req.total_amount,
            reason: req.reason.clone(),
            notify_url: req.notify_url.clone(),
        };
        let refund = self
            .client
            .refund(&r)
            .await
            .map_err(|e| channel_error("refund", e))?;
        refund_snapshot(&refund)
    }

    async fn query_refund(&self, refund: &RefundRef) -> Result<RefundSnapshot, ChannelError> {
        match self.client.query_refund(&refund.out_refund_no).await {
            Ok(r) => refund_snapshot(&r),
            Err(V3Error::Api { code, .. })
                if code == "RESOURCE_NOT_EXISTS" || code == "ORDER_NOT_EXIST" =>
            {
                Ok(refund_not_found(&refund.out_refund_no, &code))
            }
            Err(e) => Err(channel_error("refund query", e)),
        }
    }

    fn decode_notification(
        &self,
        req: &InboundRequest,
        now_unix: i64,
    ) -> Result<VerifiedNotification, ChannelError> {
        let headers = SignatureHeaders::from_lookup(|n| req.header(n)).map_err(bad)?;
        let n = self
            .client
            .with_verifier(|v| {
                parse_notify(v, &headers, &req.body, self.client.apiv3_key(), now_unix)
            })
            .map_err(bad)?;
        match n.event().map_err(bad)? {
            NotifyEvent::Transaction(t) => Ok(VerifiedNotification {
                notify_id: Some(n.envelope.id.clone()),
                subject: None,
                app_id: t.app_id().map(str::to_string),
                merchant_id: t.merchant_id().map(str::to_string),
                event: ChannelEvent::Payment {
                    snapshot: transaction_snapshot(&t).map_err(bad)?,
                },
            }),
            NotifyEvent::Refund(r) => Ok(VerifiedNotification {
                notify_id: Some(n.envelope.id.clone()),
                subject: None,
                app_id: None,
                merchant_id: r.mchid.clone().or(r.sp_mchid.clone()),
                event: ChannelEvent::Refund {
                    out_trade_no: r
                        .out_trade_no
                        .clone()
                        .ok_or_else(|| bad("refund notification without out_trade_no"))?,
                    snapshot: refund_snapshot(&r).map_err(bad)?,
                },
            }),
            NotifyEvent::Other(event_type) => {
                Err(bad(format!("unsupported event_type {event_type}")))
            }
        }
    }

    fn acknowledge(&self, outcome: &NotifyOutcome) -> HttpReply {
        match outcome {
            NotifyOutcome::Accepted => HttpReply {
                status: 204,
                content_type: "application/json",
                body: Vec::new(),
            },
            // WeChat Pay resends after any non-2xx answer, so a sender fault is a 4xx even when
            // a later attempt may pass (our keys may be refreshed by then); 5xx only for ours.
            NotifyOutcome::Rejected { reason, .. } => HttpReply {
                status: 400,
                content_type: "application/json",
                body: failure_body(reason).into_bytes(),
            },
            NotifyOutcome::Failed => HttpReply {
                status: 500,
                content_type: "application/json",
                body: failure_body("temporarily unavailable").into_bytes(),
            },
        }
    }

    async fn refresh_keys(&self, urgent: bool) -> Result<bool, ChannelError> {
        let min_age = if urgent {
            URGENT_REFRESH_SECS
        } else {
            CERT_REFRESH_SECS
        };
        self.client
            .refresh_if_older_than(min_age)
            .await
            .map_err(|e| channel_error("refresh platform certificates", e))
    }
}
