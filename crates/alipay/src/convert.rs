//! Alipay's vocabulary to the gateway's: statuses (exhaustive matches, no wildcard on provider
//! words), snapshots, notifications and errors.

use paybridge_core::channel::{
    ChannelError, ChannelEvent, PaymentSnapshot, ProviderPaymentStatus, ProviderRefundStatus,
    RefundSnapshot, VerifiedNotification,
};
use paybridge_core::ProviderPayoutStatus;

use crate::api::FundTransStatus;
use crate::api::{RefundQueryResponse, TradePayResponse, TradeQueryResponse, TradeRefundResponse};
use crate::notify::{TradeNotify, TradeStatus};
use crate::{AlipayError, GatewayErrorKind};

/// `refunded`: whether the trade is known to have been paid and refunded (a closed trade that
/// was paid can only have been closed by a full refund).
pub fn payment_status(status: TradeStatus, refunded: bool) -> ProviderPaymentStatus {
    match status {
        TradeStatus::WaitBuyerPay => ProviderPaymentStatus::Pending,
        TradeStatus::TradeSuccess | TradeStatus::TradeFinished => ProviderPaymentStatus::Paid,
        TradeStatus::TradeClosed if refunded => ProviderPaymentStatus::Refunded,
        TradeStatus::TradeClosed => ProviderPaymentStatus::Closed,
    }
}

fn parse_status(method: &str, text: &str) -> Result<TradeStatus, AlipayError> {
    TradeStatus::parse(text).ok_or_else(|| AlipayError::MalformedResponse {
        method: method.to_string(),
        reason: format!("unknown trade_status {text:?}"),
    })
}

pub fn query_snapshot(resp: &TradeQueryResponse) -> Result<PaymentSnapshot, AlipayError> {
    let status = parse_status("alipay.trade.query", &resp.trade_status)?;
    Ok(PaymentSnapshot {
        out_trade_no: resp.out_trade_no.clone(),
        provider_trade_no: Some(resp.trade_no.clone()),
        // `send_pay_date` exists only on trades that were paid.
        status: payment_status(status, resp.send_pay_date.is_some()),
        provider_status: resp.trade_status.clone(),
        amount: Some(resp.total_amount),
        paid_amount: resp.buyer_pay_amount.or(resp.receipt_amount),
        paid_at: resp.send_pay_date.clone(),
        payer_id: resp.buyer_user_id.clone().or(resp.buyer_open_id.clone()),
    })
}

/// The order Alipay does not know.
pub fn not_found_snapshot(out_trade_no: &str) -> PaymentSnapshot {
    PaymentSnapshot {
        out_trade_no: out_trade_no.to_string(),
        provider_trade_no: None,
        status: ProviderPaymentStatus::NotFound,
        provider_status: "ACQ.TRADE_NOT_EXIST".into(),
        amount: None,
        paid_amount: None,
        paid_at: None,
        payer_id: None,
    }
}

/// Barcode pay: 10000 is paid, 10003 waits for the buyer's confirmation.
pub fn pay_snapshot(resp: &TradePayResponse) -> PaymentSnapshot {
    let status = if resp.waiting_for_buyer() {
        ProviderPaymentStatus::UserPaying
    } else {
        ProviderPaymentStatus::Paid
    };
    PaymentSnapshot {
        out_trade_no: resp.out_trade_no.clone(),
        provider_trade_no: resp.trade_no.clone(),
        status,
        provider_status: resp.code.clone(),
        amount: resp.total_amount,
        paid_amount: resp.buyer_pay_amount.or(resp.receipt_amount),
        paid_at: resp.gmt_payment.clone(),
        payer_id: resp.buyer_user_id.clone().or(resp.buyer_open_id.clone()),
    }
}

/// `fund_change=N` answers a repeated `out_request_no` (or a refund still settling): not proof
/// of failure, so it stays Processing until the refund query confirms.
pub fn refund_snapshot(
    out_refund_no: &str,
    amount: paybridge_core::Fen,
    resp: &TradeRefundResponse,
) -> RefundSnapshot {
    let moved = resp.fund_change.as_deref() == Some("Y");
    RefundSnapshot {
        out_refund_no: out_refund_no.to_string(),
        provider_refund_no: None,
        status: if moved {
            ProviderRefundStatus::Succeeded
        } else {
            ProviderRefundStatus::Processing
        },
        provider_status: format!("fund_change={}", resp.fund_change.as_deref().unwrap_or("")),
        amount: Some(amount),
        succeeded_at: if moved {
            resp.gmt_refund_pay.clone()
        } else {
            None
        },
    }
}

/// Per Alipay: data with `refund_status` empty or `REFUND_SUCCESS` means the refund succeeded;
/// no data means there is no such refund.
pub fn refund_query_snapshot(
    out_refund_no: &str,
    resp: &RefundQueryResponse,
) -> Result<RefundSnapshot, AlipayError> {
    let status = match (resp.refund_amount, resp.refund_status.as_deref()) {
        (None, _) => ProviderRefundStatus::NotFound,
        (Some(_), None | Some("") | Some("REFUND_SUCCESS")) => ProviderRefundStatus::Succeeded,
        (Some(_), Some(other)) => {
            return Err(AlipayError::MalformedResponse {
                method: "alipay.trade.fastpay.refund.query".into(),
                reason: format!("unknown refund_status {other:?}"),
            })
        }
    };
    Ok(RefundSnapshot {
        out_refund_no: out_refund_no.to_string(),
        provider_refund_no: None,
        status,
        provider_status: resp.refund_status.clone().unwrap_or_default(),
        amount: resp.refund_amount,
        succeeded_at: resp.gmt_refund_pay.clone(),
    })
}

/// A verified trade notification as the gateway's event. Refund notifications (they carry the
/// refund's `out_biz_no` and `gmt_refund`/`refund_fee`) become refund events.
pub fn notification(n: &TradeNotify) -> VerifiedNotification {
    let event = match (&n.out_biz_no, n.is_refund()) {
        (Some(out_biz_no), true) => ChannelEvent::Refund {
            out_trade_no: n.out_trade_no.clone(),
            snapshot: RefundSnapshot {
                out_refund_no: out_biz_no.clone(),
                provider_refund_no: None,
                status: ProviderRefundStatus::Succeeded,
                provider_status: n.trade_status.as_str().to_string(),
                // `refund_fee` is the trade's refunded total, not this refund's amount.
                amount: None,
                succeeded_at: n.gmt_refund.as_ref().map(|t| t.text.clone()),
            },
        },
        _ => ChannelEvent::Payment {
            snapshot: PaymentSnapshot {
                out_trade_no: n.out_trade_no.clone(),
                provider_trade_no: Some(n.trade_no.clone()),
                status: payment_status(n.trade_status, n.is_refund()),
                provider_status: n.trade_status.as_str().to_string(),
                amount: Some(n.total_amount),
                paid_amount: n.buyer_pay_amount.or(n.receipt_amount),
                paid_at: n.gmt_payment.as_ref().map(|t| t.text.clone()),
                payer_id: n.buyer_id.clone().or(n.buyer_open_id.clone()),
            },
        },
    };
    VerifiedNotification {
        notify_id: Some(n.notify_id.clone()),
        app_id: Some(n.app_id.clone()),
        merchant_id: n.seller_id.clone(),
        subject: n.subject.clone(),
        event,
    }
}

/// A transfer's status in the gateway's vocabulary. REFUND (退票) and CLOSED leave the money
/// with the payer, so they are failures; INIT and UNKNOWN are not answers yet.
pub fn payout_status(status: FundTransStatus) -> ProviderPayoutStatus {
    match status {
        FundTransStatus::Success => ProviderPayoutStatus::Succeeded,
        FundTransStatus::Fail | FundTransStatus::Refund | FundTransStatus::Closed => {
            ProviderPayoutStatus::Failed
        }
        FundTransStatus::Dealing
        | FundTransStatus::WaitPay
        | FundTransStatus::Init
        | FundTransStatus::Unknown => ProviderPayoutStatus::Processing,
    }
}

/// Whether a fund query's error says Alipay has no such transfer: a signed `ORDER_NOT_EXIST`
/// (the code of the transfer queries; an unsigned answer proves nothing).
pub fn is_payout_not_found(err: &AlipayError) -> bool {
    matches!(err, AlipayError::Gateway(e) if e.signed && e.sub_code == "ORDER_NOT_EXIST")
}

/// Our errors in the channel contract's terms: anything that leaves the outcome open is
/// `Unknown` (query before assuming); only a signed business answer is `Refused`.
pub fn channel_error(operation: &'static str, err: AlipayError) -> ChannelError {
    let unknown = |reason: String| ChannelError::Unknown { operation, reason };
    match err {
        AlipayError::Gateway(e) => match e.kind() {
            GatewayErrorKind::Configuration => ChannelError::Config(e.to_string()),
            GatewayErrorKind::RetrySafe => unknown(e.to_string()),
            GatewayErrorKind::Refused if !e.signed => unknown(format!("unsigned answer: {e}")),
            GatewayErrorKind::Refused => ChannelError::Refused {
                code: if e.sub_code.is_empty() {
                    e.code.clone()
                } else {
                    e.sub_code.clone()
                },
                message: if e.sub_msg.is_empty() {
                    e.msg.clone()
                } else {
                    e.sub_msg.clone()
                },
                retryable: false,
            },
        },
        AlipayError::Transport(e) => unknown(e.to_string()),
        e @ (AlipayError::HttpStatus { .. }
        | AlipayError::MalformedResponse { .. }
        | AlipayError::BadResponseSignature { .. }
        | AlipayError::UnknownCertSn { .. }
        // The answer to the real request could not be checked: it may have been carried out.
        | AlipayError::CertNotTrusted { .. }
        | AlipayError::Bill(_)) => unknown(e.to_string()),
        e @ (AlipayError::Key(_)
        | AlipayError::Crypto(_)
        | AlipayError::CertModeRequired { .. }) => ChannelError::Config(e.to_string()),
        AlipayError::InvalidRequest(r) => ChannelError::Invalid(r),
        AlipayError::MalformedNotify(r) => ChannelError::BadNotification(r),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::error::GatewayError;
    use paybridge_http::TransportError;

    fn gw(code: &str, sub: &str, signed: bool) -> AlipayError {
        GatewayError {
            method: "m".into(),
            code: code.into(),
            msg: "msg".into(),
            sub_code: sub.into(),
            sub_msg: "sub".into(),
            signed,
        }
        .into()
    }

    #[test]
    fn statuses() {
        use ProviderPaymentStatus as P;
        assert_eq!(payment_status(TradeStatus::WaitBuyerPay, false), P::Pending);
        assert_eq!(payment_status(TradeStatus::TradeSuccess, false), P::Paid);
        assert_eq!(payment_status(TradeStatus::TradeFinished, true), P::Paid);
        assert_eq!(payment_status(TradeStatus::TradeClosed, false), P::Closed);
        assert_eq!(payment_status(TradeStatus::TradeClosed, true), P::Refunded);
    }

    #[test]
    fn errors() {
        assert!(matches!(
            channel_error("q", gw("40004", "ACQ.TRADE_NOT_EXIST", true)),
            ChannelError::Refused { ref code, retryable: false, .. } if code == "ACQ.TRADE_NOT_EXIST"
        ));
        assert!(matches!(
            channel_error("q", gw("40004", "ACQ.TRADE_NOT_EXIST", false)),
            ChannelError::Unknown { .. }
        ));
        assert!(matches!(
            channel_error("q", gw("40004", "ACQ.SYSTEM_ERROR", true)),
            ChannelError::Unknown { .. }
        ));
        assert!(matches!(
            channel_error("q", gw("40002", "isv.invalid-signature", true)),
            ChannelError::Config(_)
        ));
        let t = TransportError::Unknown {
            url: "u".into(),
            reason: "r".into(),
        };
        assert!(matches!(
            channel_error("q", t.into()),
            ChannelError::Unknown { .. }
        ));
        assert!(matches!(
            channel_error(
                "q",
                AlipayError::BadResponseSignature { method: "m".into() }
            ),
            ChannelError::Unknown { .. }
        ));
        assert!(matches!(
            channel_error(
                "q",
                AlipayError::HttpStatus {
                    method: "m".into(),
                    status: 503
                }
            ),
            ChannelError::Unknown { .. }
        ));
    }

    #[test]
    fn refund_query_states() {
        let mut r = RefundQueryResponse {
            trade_no: None,
            out_trade_no: None,
            out_request_no: None,
            refund_amount: None,
            total_amount: None,
            refund_status: None,
            gmt_refund_pay: None,
        };
        assert_eq!(
            refund_query_snapshot("r", &r).unwrap().status,
            ProviderRefundStatus::NotFound
        );
        r.refund_amount = Some(paybridge_core::Fen(5));
        assert_eq!(
            refund_query_snapshot("r", &r).unwrap().status,
            ProviderRefundStatus::Succeeded
        );
        r.refund_status = Some("REFUND_SUCCESS".into());
        assert_eq!(
            refund_query_snapshot("r", &r).unwrap().status,
            ProviderRefundStatus::Succeeded
        );
        r.refund_status = Some("WEIRD".into());
        assert!(refund_query_snapshot("r", &r).is_err());
    }
}
