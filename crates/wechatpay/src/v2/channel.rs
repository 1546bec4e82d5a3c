//! [`PaymentChannel`] over APIv2.

use async_trait::async_trait;
use paybridge_core::channel::{
    ChannelError, ChannelEvent, ClientAction, CloseOutcome, CreatePayment, CreateRefund, HttpReply,
    InboundRequest, NotifyOutcome, OrderRef, PaymentChannel, PaymentSnapshot,
    ProviderPaymentStatus, ProviderRefundStatus, RefundRef, RefundSnapshot, VerifiedNotification,
};
use paybridge_core::Scene;
use paybridge_crypto::random_string;

use super::api::{Micropay, OrderId, OrderQueryResponse, RefundRequest, TradeType, UnifiedOrder};
use super::client::V2Client;
use super::client_params;
use super::error::V2Error;
use super::notify::{parse_pay_notify, parse_refund_notify, reply_fail, REPLY_SUCCESS};
use super::xml::parse_xml;
use crate::common::{bad, payment_not_found, refund_not_found, with_redirect};
use crate::status::{TradeState, V2RefundStatus};

pub struct V2Channel {
    pub client: V2Client,
    /// Unix seconds, for client-parameter timestamps.
    pub clock: crate::clock::Clock,
}

impl V2Channel {
    pub fn new(client: V2Client, clock: crate::clock::Clock) -> Self {
        V2Channel { client, clock }
    }
}

/// Unknown outcomes (transport after sending, unverifiable replies, SYSTEMERROR-like codes) are
/// `Unknown`; other business errors are definite `Refused`.
pub fn channel_error(operation: &'static str, e: V2Error) -> ChannelError {
    if e.outcome_unknown() || matches!(e, V2Error::Transport(_)) {
        return ChannelError::Unknown {
            operation,
            reason: e.to_string(),
        };
    }
    let retryable = e.retryable();
    match e {
        V2Error::Business(b) => ChannelError::Refused {
            code: b.code,
            message: b.description,
            retryable,
        },
        V2Error::Return { message } => ChannelError::Refused {
            code: "FAIL".into(),
            message,
            retryable,
        },
        V2Error::Config(m) => ChannelError::Config(m),
        other => ChannelError::Refused {
            code: "ERROR".into(),
            message: other.to_string(),
            retryable,
        },
    }
}

pub fn order_snapshot(q: &OrderQueryResponse) -> Result<PaymentSnapshot, ChannelError> {
    let state = TradeState::parse(&q.trade_state).map_err(|e| ChannelError::Unknown {
        operation: "query",
        reason: e.to_string(),
    })?;
    Ok(PaymentSnapshot {
        out_trade_no: q.out_trade_no.clone(),
        provider_trade_no: q.transaction_id.clone(),
        status: state.to_core(),
        provider_status: q.trade_state.clone(),
        amount: q.total_fee,
        paid_amount: q.cash_fee,
        paid_at: q.time_end.clone(),
        payer_id: q.openid.clone(),
    })
}

fn business_code(e: &V2Error) -> Option<&str> {
    match e {
        V2Error::Business(b) => Some(b.code.as_str()),
        _ => None,
    }
}

#[async_trait]
impl PaymentChannel for V2Channel {
    async fn create_payment(&self, req: &CreatePayment) -> Result<ClientAction, ChannelError> {
        let ip = req.client_ip.clone().unwrap_or_else(|| "127.0.0.1".into());
        let trade_type = match req.scene {
            Scene::Pc | Scene::Qr => TradeType::Native { product_id: req.out_trade_no.clone() },
            Scene::Wap => TradeType::Mweb {
                scene_info: serde_json::json!({"h5_info": {"type": "Wap", "wap_url": req.return_url.clone().unwrap_or_default(), "wap_name": req.subject}}).to_string(),
            },
            Scene::App => TradeType::App,
            Scene::Jsapi => TradeType::Jsapi {
                openid: req.payer_id.clone().ok_or_else(|| ChannelError::Invalid("JSAPI needs payer_id (openid)".into()))?,
            },
            Scene::Barcode => {
                let auth_code = req.auth_code.clone().ok_or_else(|| ChannelError::Invalid("barcode needs auth_code".into()))?;
                let m = Micropay {
                    auth_code,
                    body: req.subject.clone(),
                    out_trade_no: req.out_trade_no.clone(),
                    total_fee: req.amount,
                    spbill_create_ip: ip,
                    attach: req.attach.clone(),
                };
                let snapshot = match self.client.micropay(&m).await {
                    Ok(q) => order_snapshot(&q)?,
                    // The buyer is entering a password: not an error, the order is in flight.
                    Err(e) if business_code(&e) == Some("USERPAYING") => PaymentSnapshot {
                        status: ProviderPaymentStatus::UserPaying,
                        provider_status: "USERPAYING".into(),
                        amount: Some(req.amount),
                        ..payment_not_found(&req.out_trade_no, "USERPAYING")
                    },
                    Err(e) => return Err(channel_error("micropay", e)),
                };
                return Ok(ClientAction::Barcode { snapshot });
            }
        };
        let order = UnifiedOrder {
            trade_type: trade_type.clone(),
            body: req.subject.clone(),
            out_trade_no: req.out_trade_no.clone(),
            total_fee: req.amount,
            spbill_create_ip: ip,
            notify_url: req.notify_url.clone(),
            time_expire: req.expires_at,
            attach: req.attach.clone(),
        };
        let resp = self
            .client
            .unified_order(&order)
            .await
            .map_err(|e| channel_error("unifiedorder", e))?;
        let merchant = &self.client.config.merchant;
        let appid = merchant.sub_appid.as_deref().unwrap_or(&merchant.appid);
        let ts = (self.clock)().to_string();
        let nonce = random_string(32);
        let key = self.client.api_key();
        let st = self.client.config.sign_type;
        let missing = |f: &str| ChannelError::Unknown {
            operation: "unifiedorder",
            reason: format!("reply lacks {f}"),
        };
        Ok(match trade_type {
            TradeType::Native { .. } => ClientAction::QrCode {
                code_url: resp.code_url.ok_or_else(|| missing("code_url"))?,
            },
            TradeType::Mweb { .. } => ClientAction::Redirect {
                url: with_redirect(
                    resp.mweb_url.ok_or_else(|| missing("mweb_url"))?,
                    req.return_url.as_deref(),
                ),
            },
            TradeType::App => {
                let partner = merchant.sub_mch_id.as_deref().unwrap_or(&merchant.mch_id);
                ClientAction::ClientParams {
                    params: client_params::app_params(
                        appid,
                        partner,
                        &resp.prepay_id,
                        &ts,
                        &nonce,
                        key,
                        st,
                    ),
                }
            }
            TradeType::Jsapi { .. } => ClientAction::ClientParams {
                params: client_params::jsapi_params(appid, &resp.prepay_id, &ts, &nonce, key, st),
            },
        })
    }

    async fn query_payment(&self, order: &OrderRef) -> Result<PaymentSnapshot, ChannelError> {
        let id = match &order.provider_trade_no {
            Some(t) => OrderId::TransactionId(t.clone()),
            None => OrderId::OutTradeNo(order.out_trade_no.clone()),
        };
        match self.client.order_query(&id).await {
            Ok(q) => order_snapshot(&q),
            Err(e) if business_code(&e) == Some("ORDERNOTEXIST") => {
                Ok(payment_not_found(&order.out_trade_no, "ORDERNOTEXIST"))
            }
            Err(e) => Err(channel_error("orderquery", e)),
        }
    }

    async fn close_payment(&self, order: &OrderRef) -> Result<CloseOutcome, ChannelError> {
        match self.client.close_order(&order.out_trade_no).await {
            Ok(()) => Ok(CloseOutcome::Closed),
            // Closing twice is what a retry after a lost reply looks like.
            Err(e) if business_code(&e) == Some("ORDERCLOSED") => Ok(CloseOutcome::Closed),
            Err(e) if business_code(&e) == Some("ORDERNOTEXIST") => Ok(CloseOutcome::NotFound),
            Err(e) => Err(channel_error("closeorder", e)),
        }
    }

    async fn cancel_payment(&self, order: &OrderRef) -> Result<(), ChannelError> {
        let id = OrderId::OutTradeNo(order.out_trade_no.clone());
        // WeChat asks for the reverse to be repeated (recall=Y) while it is still settling.
        for _ in 0..3 {
            if !self
                .client
                .reverse(&id)
                .await
                .map_err(|e| channel_error("reverse", e))?
            {
                return Ok(());
            }
        }
        Err(ChannelError::Unknown {
            operation: "reverse",
            reason: "WeChat still asks to recall".into(),
        })
    }

    async fn refund(&self, req: &CreateRefund) -> Result<RefundSnapshot, ChannelError> {
        let r = RefundRequest {
            order: match &req.provider_trade_no {
                Some(t) => OrderId::TransactionId(t.clone()),
                None => OrderId::OutTradeNo(req.out_trade_no.clone()),
            },
            out_refund_no: req.out_refund_no.clone(),
            total_fee: req.total_amount,
            refund_fee: req.refund_amount,
            refund_desc: req.reason.clone(),
            notify_url: req.notify_url.clone(),
        };
        let resp = self
            .client
            .refund(&r)
            .await
            .map_err(|e| channel_error("refund", e))?;
        // An accepted APIv2 refund is in progress; its result comes by notify or refundquery.
        Ok(RefundSnapshot {
            out_refund_no: resp.out_refund_no,
            provider_refund_no: resp.refund_id,
            status: ProviderRefundStatus::Processing,
            provider_status: "PROCESSING".into(),
            amount: Some(resp.refund_fee),
            succeeded_at: None,
        })
    }

    async fn query_refund(&self, refund: &RefundRef) -> Result<RefundSnapshot, ChannelError> {
        match self.client.refund_query(&refund.out_refund_no).await {
            Ok(item) => {
                let status = V2RefundStatus::parse(&item.refund_status).map_err(|e| {
                    ChannelError::Unknown {
                        operation: "refundquery",
                        reason: e.to_string(),
                    }
                })?;
                Ok(RefundSnapshot {
                    out_refund_no: item.out_refund_no,
                    provider_refund_no: item.refund_id,
                    status: status.to_core(),
                    provider_status: item.refund_status,
                    amount: Some(item.refund_fee),
                    succeeded_at: item.refund_success_time,
                })
            }
            Err(e) if business_code(&e) == Some("REFUNDNOTEXIST") => {
                Ok(refund_not_found(&refund.out_refund_no, "REFUNDNOTEXIST"))
            }
            Err(e) => Err(channel_error("refundquery", e)),
        }
    }

    fn decode_notification(
        &self,
        req: &InboundRequest,
        _now_unix: i64,
    ) -> Result<VerifiedNotification, ChannelError> {
        let doc = parse_xml(&req.body).map_err(bad)?;
        let key = self.client.api_key();
        if super::notify::is_refund_notify(&doc) {
            let n = parse_refund_notify(&req.body, key).map_err(bad)?;
            let status = V2RefundStatus::parse(&n.refund_status).map_err(bad)?;
            return Ok(VerifiedNotification {
                notify_id: None,
                subject: None,
                app_id: Some(n.appid),
                merchant_id: Some(n.mch_id),
                event: ChannelEvent::Refund {
                    out_trade_no: n.out_trade_no,
                    snapshot: RefundSnapshot {
                        out_refund_no: n.out_refund_no,
                        provider_refund_no: n.refund_id,
                        status: status.to_core(),
                        provider_status: n.refund_status,
                        amount: Some(n.refund_fee),
                        succeeded_at: n.success_time,
                    },
                },
            });
        }
        let n = parse_pay_notify(&req.body, key).map_err(bad)?;
        let (status, word) = if n.result_code == "SUCCESS" {
            (ProviderPaymentStatus::Paid, "SUCCESS".to_string())
        } else {
            (
                ProviderPaymentStatus::Failed,
                n.err_code.clone().unwrap_or_else(|| "PAYERROR".into()),
            )
        };
        Ok(VerifiedNotification {
            notify_id: None,
            subject: None,
            app_id: Some(n.appid.clone()),
            merchant_id: Some(n.mch_id.clone()),
            event: ChannelEvent::Payment {
                snapshot: PaymentSnapshot {
                    out_trade_no: n.out_trade_no,
                    provider_trade_no: n.transaction_id,
                    status,
                    provider_status: word,
                    amount: Some(n.total_fee),
                    paid_amount: n.cash_fee,
                    paid_at: n.time_end,
                    payer_id: n.openid,
                },
            },
        })
    }

    fn claimed_order(&self, req: &InboundRequest) -> Option<String> {
        // A refund notification's order number is inside the encrypted `req_info`.
        let doc = parse_xml(&req.body).ok()?;
        doc.get("out_trade_no").map(str::to_string)
    }

    fn acknowledge(&self, outcome: &NotifyOutcome) -> HttpReply {
        let body = match outcome {
            NotifyOutcome::Accepted => REPLY_SUCCESS.to_string(),
            NotifyOutcome::Rejected { reason, .. } => reply_fail(reason),
            NotifyOutcome::Failed => reply_fail("temporarily unavailable"),
        };
        HttpReply {
            status: 200,
            content_type: "text/xml; charset=utf-8",
            body: body.into_bytes(),
        }
    }
}
