//! One bill row in provider-neutral terms, converted from each provider's typed record.

use paybridge_alipay::bill::{BillKind, BillRecord};
use paybridge_core::Fen;
use paybridge_wechatpay::bill::TradeBillRecord;

use crate::ReconcileError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Payment,
    Refund,
}

/// What the row says happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillStatus {
    /// Paid (payment row) or refunded (refund row).
    Success,
    /// Any other status the provider wrote (`REVOKED`, `PROCESSING`...), as written.
    Other(String),
}

impl BillStatus {
    pub fn as_str(&self) -> &str {
        match self {
            BillStatus::Success => "SUCCESS",
            BillStatus::Other(s) => s,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillLine {
    pub kind: LineKind,
    pub out_trade_no: String,
    pub provider_trade_no: String,
    /// Refund rows: the merchant refund number.
    pub out_refund_no: Option<String>,
    /// The order amount (payment) or refund amount (refund), positive.
    pub amount: Fen,
    /// The provider's service fee on the row, as the bill signs it (negative on refunds when
    /// the fee is returned).
    pub fee: Fen,
    pub status: BillStatus,
}

/// Statuses Alipay's detail table can carry in `备注` when a row is not a plain success: the table
/// has no status column, and only these words are read as one (a merchant's free-text remark is
/// not a status).
const ALIPAY_STATUS_REMARKS: &[&str] = &[
    "TRADE_CLOSED",
    "WAIT_BUYER_PAY",
    "CLOSED",
    "REVOKED",
    "NOTPAY",
    "PAYERROR",
];

impl BillLine {
    pub fn from_alipay(r: &BillRecord) -> Result<BillLine, ReconcileError> {
        if r.out_trade_no.is_empty() {
            return Err(ReconcileError::Bill(format!(
                "Alipay row of trade {} has no merchant order number",
                r.trade_no
            )));
        }
        let status = match ALIPAY_STATUS_REMARKS.iter().find(|s| **s == r.remark) {
            Some(s) => BillStatus::Other((*s).to_string()),
            None => BillStatus::Success,
        };
        Ok(match r.kind {
            BillKind::Payment => BillLine {
                kind: LineKind::Payment,
                out_trade_no: r.out_trade_no.clone(),
                provider_trade_no: r.trade_no.clone(),
                out_refund_no: None,
                amount: r.order_amount,
                fee: r.service_fee,
                status,
            },
            BillKind::Refund => BillLine {
                kind: LineKind::Refund,
                out_trade_no: r.out_trade_no.clone(),
                provider_trade_no: r.trade_no.clone(),
                // A refund made without out_request_no is keyed by the order number itself.
                out_refund_no: Some(if r.refund_request_no.is_empty() {
                    r.out_trade_no.clone()
                } else {
                    r.refund_request_no.clone()
                }),
                amount: Fen(r.order_amount.0.saturating_abs()),
                fee: r.service_fee,
                status,
            },
        })
    }

    pub fn from_wechat(r: TradeBillRecord) -> Result<BillLine, ReconcileError> {
        let out_trade_no = r.out_trade_no.ok_or_else(|| {
            ReconcileError::Bill(format!(
                "WeChat row at {} has no merchant order number",
                r.trade_time.as_deref().unwrap_or("?")
            ))
        })?;
        // Payment rows carry "0" in the refund number columns.
        let refund_no = r.out_refund_no.filter(|n| n != "0" && !n.is_empty());
        let fee = r.service_fee.unwrap_or(Fen(0));
        let provider_trade_no = r.transaction_id.unwrap_or_default();
        Ok(match refund_no {
            Some(no) => BillLine {
                kind: LineKind::Refund,
                out_trade_no,
                provider_trade_no,
                out_refund_no: Some(no),
                amount: Fen(r
                    .applied_refund
                    .filter(|f| f.0 != 0)
                    .or(r.refund_fee)
                    .unwrap_or(Fen(0))
                    .0
                    .saturating_abs()),
                fee,
                status: match r.refund_status {
                    None => BillStatus::Success,
                    Some(s) if s == "SUCCESS" => BillStatus::Success,
                    Some(other) => BillStatus::Other(other),
                },
            },
            None => BillLine {
                kind: LineKind::Payment,
                out_trade_no,
                provider_trade_no,
                out_refund_no: None,
                amount: r.order_total.or(r.settlement_total).unwrap_or(Fen(0)),
                fee,
                status: match r.trade_state {
                    Some(s) if s == "SUCCESS" => BillStatus::Success,
                    other => BillStatus::Other(other.unwrap_or_default()),
                },
            },
        })
    }
}
