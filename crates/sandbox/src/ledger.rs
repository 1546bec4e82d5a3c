//! The provider-side ledger: trades, refunds and their state machines, as Alipay and WeChat Pay
//! keep them. Pure and synchronous; every operation takes `now`, so expiry is driven by the
//! caller's clock. Errors are provider-neutral and map to each provider's own codes in
//! [`LedgerError::alipay`], [`LedgerError::wechat_v2`] and [`LedgerError::wechat_v3`].

use std::collections::{BTreeMap, HashMap};

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use crate::clock::{beijing_date, Millis};

/// Which wire protocol created a trade (and therefore which notification format it gets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Alipay,
    WechatV2,
    WechatV3,
}

impl Provider {
    /// WeChat APIv2 and APIv3 share one order-number space per merchant.
    pub fn family(self) -> Family {
        match self {
            Provider::Alipay => Family::Alipay,
            Provider::WechatV2 | Provider::WechatV3 => Family::Wechat,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    Alipay,
    Wechat,
}

/// The internal state; each provider shows it under its own name ([`Trade::alipay_status`],
/// [`Trade::wechat_state`]). Refunds do not change it: "refunded" is derived from the refunds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TradeState {
    /// Waiting for the buyer (Alipay WAIT_BUYER_PAY, WeChat NOTPAY).
    Waiting,
    /// Barcode payment waiting for the buyer's password (USERPAYING / Alipay 10003).
    UserPaying,
    Success,
    /// Alipay TRADE_FINISHED: paid and no longer refundable.
    Finished,
    Closed,
    /// WeChat REVOKED (barcode reversed).
    Revoked,
    /// WeChat PAYERROR (barcode payment failed).
    PayError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundState {
    /// WeChat refunds are asynchronous: PROCESSING until the ledger settles them.
    Processing,
    Success,
    Abnormal,
    Closed,
}

impl RefundState {
    pub fn wechat(self) -> &'static str {
        match self {
            RefundState::Processing => "PROCESSING",
            RefundState::Success => "SUCCESS",
            RefundState::Abnormal => "ABNORMAL",
            RefundState::Closed => "CLOSED",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub out_request_no: String,
    /// WeChat `refund_id`; Alipay has no refund id, but one is kept for bills.
    pub refund_id: String,
    pub amount: Fen,
    pub reason: Option<String>,
    pub notify_url: Option<String>,
    pub state: RefundState,
    pub created_at: Millis,
    pub settled_at: Option<Millis>,
}

/// What a merchant asks for when it opens a trade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTrade {
    pub provider: Provider,
    /// Alipay `app_id` or WeChat `mchid`.
    pub account: String,
    /// WeChat `appid` (the merchant's app) or, for Alipay, the same `app_id`.
    pub app_id: String,
    pub out_trade_no: String,
    pub amount: Fen,
    pub subject: String,
    /// Alipay product code / method or WeChat trade type (NATIVE, JSAPI, MICROPAY...).
    pub scene: String,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub expires_at: Option<Millis>,
    pub payer_id: Option<String>,
    pub attach: Option<String>,
    /// Alipay precreate: the trade is unknown to queries until the buyer scans the code.
    pub hidden_until_scanned: bool,
    /// WeChat service-provider mode: the provider merchant that signs for `account` (the
    /// sub-merchant), and the sub-merchant's own app.
    #[serde(default)]
    pub sp_mchid: Option<String>,
    #[serde(default)]
    pub sub_appid: Option<String>,
    /// WeChat APIv2: the `sign_type` of the order request, which its notification reuses.
    #[serde(default)]
    pub sign_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// The sandbox's own id, used by the buyer page and the control API.
    pub id: String,
    pub provider: Provider,
    pub account: String,
    pub app_id: String,
    pub out_trade_no: String,
    /// Alipay `trade_no` / WeChat `transaction_id`.
    pub trade_no: String,
    pub amount: Fen,
    pub subject: String,
    pub scene: String,
    pub notify_url: Option<String>,
    pub return_url: Option<String>,
    pub attach: Option<String>,
    pub state: TradeState,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub paid_at: Option<Millis>,
    pub closed_at: Option<Millis>,
    /// Alipay `buyer_id` / WeChat `openid` of whoever paid (or was named at creation).
    pub buyer_id: String,
    pub visible: bool,
    pub refunds: Vec<Refund>,
    /// WeChat service-provider mode (see [`NewTrade::sp_mchid`]).
    #[serde(default)]
    pub sp_mchid: Option<String>,
    #[serde(default)]
    pub sub_appid: Option<String>,
    #[serde(default)]
    pub sign_type: Option<String>,
}

impl Trade {
    pub fn refunded(&self) -> Fen {
        Fen(self
            .refunds
            .iter()
            .filter(|r| matches!(r.state, RefundState::Success | RefundState::Processing))
            .map(|r| r.amount.0)
            .sum())
    }

    pub fn refundable(&self) -> Fen {
        Fen(self.amount.0 - self.refunded().0)
    }

    pub fn is_paid(&self) -> bool {
        matches!(self.state, TradeState::Success | TradeState::Finished)
    }

    /// Alipay `trade_status`. A fully refunded trade reads TRADE_CLOSED, as at Alipay.
    pub fn alipay_status(&self) -> &'static str {
        match self.state {
            TradeState::Waiting | TradeState::UserPaying => "WAIT_BUYER_PAY",
            TradeState::Success if self.refundable().0 <= 0 => "TRADE_CLOSED",
            TradeState::Success => "TRADE_SUCCESS",
            TradeState::Finished => "TRADE_FINISHED",
            TradeState::Closed | TradeState::Revoked | TradeState::PayError => "TRADE_CLOSED",
        }
    }

    /// WeChat `trade_state`. Any refund turns SUCCESS into REFUND, as at WeChat.
    pub fn wechat_state(&self) -> &'static str {
        match self.state {
            TradeState::Waiting => "NOTPAY",
            TradeState::UserPaying => "USERPAYING",
            TradeState::Success | TradeState::Finished if !self.refunds.is_empty() => "REFUND",
            TradeState::Success | TradeState::Finished => "SUCCESS",
            TradeState::Closed => "CLOSED",
            TradeState::Revoked => "REVOKED",
            TradeState::PayError => "PAYERROR",
        }
    }

    pub fn refund(&self, out_request_no: &str) -> Option<&Refund> {
        self.refunds
            .iter()
            .find(|r| r.out_request_no == out_request_no)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("trade does not exist")]
    TradeNotExist,
    #[error("out_trade_no already used with different content")]
    OutTradeNoUsed,
    #[error("trade is closed")]
    TradeClosed,
    #[error("trade is already paid")]
    TradeAlreadyPaid,
    #[error("trade is finished and can no longer be refunded")]
    TradeFinished,
    #[error("trade is in state {0:?}, which does not allow this")]
    TradeStatus(TradeState),
    #[error("refund of {requested} exceeds the refundable {refundable}")]
    RefundExceeds { requested: Fen, refundable: Fen },
    #[error("refund request number reused with a different amount")]
    RefundRequestConflict,
    #[error("refund does not exist")]
    RefundNotExist,
    #[error("invalid amount {0}")]
    InvalidAmount(Fen),
}

/// An Alipay business failure: `code` 40004 with its `sub_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlipayError {
    pub code: &'static str,
    pub msg: &'static str,
    pub sub_code: &'static str,
    pub sub_msg: &'static str,
}

/// A WeChat v3 error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatV3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: &'static str,
}

impl LedgerError {
    pub fn alipay(&self) -> AlipayError {
        let (sub_code, sub_msg) = match self {
            LedgerError::TradeNotExist => ("ACQ.TRADE_NOT_EXIST", "交易不存在"),
            LedgerError::OutTradeNoUsed => ("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改"),
            LedgerError::TradeClosed => ("ACQ.TRADE_HAS_CLOSE", "交易已经关闭"),
            LedgerError::TradeAlreadyPaid => ("ACQ.TRADE_HAS_SUCCESS", "交易已被支付"),
            LedgerError::TradeFinished => ("ACQ.TRADE_HAS_FINISHED", "交易已完结"),
            LedgerError::TradeStatus(_) => ("ACQ.TRADE_STATUS_ERROR", "交易状态不合法"),
            LedgerError::RefundExceeds { .. } => ("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限"),
            LedgerError::RefundRequestConflict => {
                ("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致")
            }
            LedgerError::RefundNotExist => ("ACQ.TRADE_NOT_EXIST", "退款不存在"),
            LedgerError::InvalidAmount(_) => ("ACQ.REFUND_AMT_RESTRICTION", "退款金额不合法"),
        };
        AlipayError {
            code: "40004",
            msg: "Business Failed",
            sub_code,
            sub_msg,
        }
    }

    /// WeChat APIv2 `err_code` and `err_code_des`.
    pub fn wechat_v2(&self) -> (&'static str, &'static str) {
        match self {
            LedgerError::TradeNotExist => ("ORDERNOTEXIST", "此交易订单号不存在"),
            LedgerError::OutTradeNoUsed => ("OUT_TRADE_NO_USED", "商户订单号重复"),
            LedgerError::TradeClosed => ("ORDERCLOSED", "订单已关闭"),
            LedgerError::TradeAlreadyPaid | LedgerError::TradeFinished => {
                ("ORDERPAID", "该订单已支付")
            }
            LedgerError::TradeStatus(TradeState::Revoked) => ("ORDERREVERSED", "订单已撤销"),
            LedgerError::TradeStatus(_) => ("TRADE_STATE_ERROR", "订单状态错误"),
            LedgerError::RefundExceeds { .. } => ("NOT_ENOUGH", "退款金额大于可退金额"),
            LedgerError::RefundRequestConflict => {
                ("INVALID_REQUEST", "订单金额或退款金额与之前请求不一致")
            }
            LedgerError::RefundNotExist => ("REFUNDNOTEXIST", "退款订单查询失败"),
            LedgerError::InvalidAmount(_) => ("INVALID_REQUEST", "金额不合法"),
        }
    }

    pub fn wechat_v3(&self) -> WechatV3Error {
        let (status, code, message) = match self {
            LedgerError::TradeNotExist => (404, "ORDER_NOT_EXIST", "订单不存在"),
            LedgerError::OutTradeNoUsed => (400, "INVALID_REQUEST", "商户订单号重复"),
            LedgerError::TradeClosed => (400, "ORDER_CLOSED", "订单已关闭"),
            LedgerError::TradeAlreadyPaid | LedgerError::TradeFinished => {
                (400, "ORDERPAID", "订单已支付")
            }
            LedgerError::TradeStatus(_) => (400, "INVALID_REQUEST", "订单状态不允许此操作"),
            LedgerError::RefundExceeds { .. } => (403, "NOT_ENOUGH", "退款金额大于可退金额"),
            LedgerError::RefundRequestConflict => {
                (400, "INVALID_REQUEST", "订单金额或退款金额与之前请求不一致")
            }
            LedgerError::RefundNotExist => (404, "RESOURCE_NOT_EXISTS", "退款单不存在"),
            LedgerError::InvalidAmount(_) => (400, "PARAM_ERROR", "金额不合法"),
        };
        WechatV3Error {
            status,
            code,
            message,
        }
    }
}

/// Something the provider would tell the merchant about asynchronously.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LedgerEvent {
    Paid {
        trade_id: String,
    },
    Closed {
        trade_id: String,
    },
    /// Alipay TRADE_FINISHED: the refund period is over.
    Finished {
        trade_id: String,
    },
    RefundSettled {
        trade_id: String,
        out_request_no: String,
    },
}

/// What Alipay cancel / WeChat reverse did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelAction {
    Close,
    Refund,
}

#[derive(Debug, Default)]
pub struct Ledger {
    trades: BTreeMap<String, Trade>,
    by_out_no: HashMap<(Family, String, String), String>,
    by_trade_no: HashMap<String, String>,
    seq: u64,
    /// How long WeChat refunds stay PROCESSING.
    pub wechat_refund_delay_ms: Millis,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger::default()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn get(&self, id: &str) -> Option<&Trade> {
        self.trades.get(id)
    }

    pub fn trades(&self) -> impl Iterator<Item = &Trade> {
        self.trades.values()
    }

    /// Finds a trade by merchant order number or provider trade number, as a query would:
    /// a hidden (unscanned) trade is "not exist".
    pub fn find(
        &self,
        family: Family,
        account: &str,
        out_trade_no: Option<&str>,
        trade_no: Option<&str>,
    ) -> Result<&Trade, LedgerError> {
        let id = match (trade_no, out_trade_no) {
            (Some(t), _) if !t.is_empty() => self.by_trade_no.get(t),
            (_, Some(o)) => self
                .by_out_no
                .get(&(family, account.to_string(), o.to_string())),
            _ => None,
        };
        let trade = id
            .and_then(|id| self.trades.get(id))
            .filter(|t| t.account == account && t.provider.family() == family && t.visible)
            .ok_or(LedgerError::TradeNotExist)?;
        Ok(trade)
    }

    /// Like [`Ledger::find`] but also returns hidden trades (buyer page, control API).
    pub fn find_any(&self, family: Family, account: &str, out_trade_no: &str) -> Option<&Trade> {
        self.by_out_no
            .get(&(family, account.to_string(), out_trade_no.to_string()))
            .and_then(|id| self.trades.get(id))
    }

    /// Opens a trade. Repeating the same order returns the existing trade (`false`); the same
    /// number with other content, or for a paid/closed trade, is refused.
    pub fn create(&mut self, new: NewTrade, now: Millis) -> Result<(String, bool), LedgerError> {
        if new.amount.check_trade_range().is_err() {
            return Err(LedgerError::InvalidAmount(new.amount));
        }
        let key = (
            new.provider.family(),
            new.account.clone(),
            new.out_trade_no.clone(),
        );
        if let Some(id) = self.by_out_no.get(&key) {
            let t = self.trades.get(id).ok_or(LedgerError::TradeNotExist)?;
            return match t.state {
                TradeState::Success | TradeState::Finished => Err(LedgerError::TradeAlreadyPaid),
                TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
                    Err(LedgerError::TradeClosed)
                }
                TradeState::Waiting | TradeState::UserPaying => {
                    if t.amount == new.amount && t.subject == new.subject && t.scene == new.scene {
                        Ok((t.id.clone(), false))
                    } else {
                        Err(LedgerError::OutTradeNoUsed)
                    }
                }
            };
        }
        let seq = self.next_seq();
        let day = beijing_date(now).replace('-', "");
        let trade_no = match new.provider.family() {
            Family::Alipay => format!("{day}22001{seq:011}"),
            Family::Wechat => format!("42000{day}{seq:013}"),
        };
        let id = format!("T{seq:06}");
        let trade = Trade {
            id: id.clone(),
            provider: new.provider,
            buyer_id: new.payer_id.clone().unwrap_or_default(),
            account: new.account,
            app_id: new.app_id,
            out_trade_no: new.out_trade_no,
            trade_no: trade_no.clone(),
            amount: new.amount,
            subject: new.subject,
            scene: new.scene,
            notify_url: new.notify_url,
            return_url: new.return_url,
            attach: new.attach,
            state: TradeState::Waiting,
            created_at: now,
            expires_at: new.expires_at,
            paid_at: None,
            closed_at: None,
            visible: !new.hidden_until_scanned,
            refunds: Vec::new(),
            sp_mchid: new.sp_mchid,
            sub_appid: new.sub_appid,
            sign_type: new.sign_type,
        };
        self.by_out_no.insert(key, id.clone());
        self.by_trade_no.insert(trade_no, id.clone());
        self.trades.insert(id.clone(), trade);
        Ok((id, true))
    }

    fn trade_mut(&mut self, id: &str) -> Result<&mut Trade, LedgerError> {
        self.trades.get_mut(id).ok_or(LedgerError::TradeNotExist)
    }

    /// The buyer opened the payment page / scanned the code.
    pub fn mark_scanned(&mut self, id: &str) -> Result<(), LedgerError> {
        self.trade_mut(id)?.visible = true;
        Ok(())
    }

    /// The buyer pays. Expiry is checked first, so a late payment finds the trade closed.
    pub fn pay(
        &mut self,
        id: &str,
        buyer_id: Option<&str>,
        now: Millis,
    ) -> Result<LedgerEvent, LedgerError> {
        self.expire_one(id, now);
        let t = self.trade_mut(id)?;
        match t.state {
            TradeState::Waiting | TradeState::UserPaying => {
                t.state = TradeState::Success;
                t.paid_at = Some(now);
                t.visible = true;
                if let Some(b) = buyer_id {
                    t.buyer_id = b.to_string();
                }
                if t.buyer_id.is_empty() {
                    t.buyer_id = match t.provider.family() {
                        Family::Alipay => "2088102177846880".to_string(),
                        Family::Wechat => "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".to_string(),
                    };
                }
                Ok(LedgerEvent::Paid {
                    trade_id: t.id.clone(),
                })
            }
            TradeState::Success | TradeState::Finished => Err(LedgerError::TradeAlreadyPaid),
            TradeState::Closed | TradeState::Revoked => Err(LedgerError::TradeClosed),
            TradeState::PayError => Err(LedgerError::TradeStatus(TradeState::PayError)),
        }
    }

    /// A barcode payment now waits for the buyer's password.
    pub fn set_user_paying(&mut self, id: &str) -> Result<(), LedgerError> {
        let t = self.trade_mut(id)?;
        match t.state {
            TradeState::Waiting | TradeState::UserPaying => {
                t.state = TradeState::UserPaying;
                Ok(())
            }
            other => Err(LedgerError::TradeStatus(other)),
        }
    }

    /// The payment failed (barcode declined, buyer cancelled on the page).
    pub fn fail(&mut self, id: &str, now: Millis) -> Result<(), LedgerError> {
        let t = self.trade_mut(id)?;
        match t.state {
            TradeState::Waiting | TradeState::UserPaying => {
                // Alipay closes failed trades; WeChat shows PAYERROR.
                t.state = match t.provider.family() {
                    Family::Alipay => TradeState::Closed,
                    Family::Wechat => TradeState::PayError,
                };
                t.closed_at = Some(now);
                Ok(())
            }
            other => Err(LedgerError::TradeStatus(other)),
        }
    }

    /// The merchant closes an unpaid trade.
    pub fn close(&mut self, id: &str, now: Millis) -> Result<LedgerEvent, LedgerError> {
        self.expire_one(id, now);
        let t = self.trade_mut(id)?;
        match t.state {
            TradeState::Waiting | TradeState::UserPaying | TradeState::PayError => {
                t.state = TradeState::Closed;
                t.closed_at = Some(now);
                Ok(LedgerEvent::Closed {
                    trade_id: t.id.clone(),
                })
            }
            TradeState::Success | TradeState::Finished => Err(LedgerError::TradeAlreadyPaid),
            TradeState::Closed | TradeState::Revoked => Err(LedgerError::TradeClosed),
        }
    }

    /// Alipay cancel / WeChat reverse: closes an unpaid trade, or refunds a paid one in full.
    pub fn cancel(
        &mut self,
        id: &str,
        now: Millis,
    ) -> Result<(CancelAction, Vec<LedgerEvent>), LedgerError> {
        self.expire_one(id, now);
        let seq = self.next_seq();
        let t = self.trade_mut(id)?;
        let revoked = match t.provider.family() {
            Family::Alipay => TradeState::Closed,
            Family::Wechat => TradeState::Revoked,
        };
        match t.state {
            TradeState::Waiting | TradeState::UserPaying | TradeState::PayError => {
                t.state = revoked;
                t.closed_at = Some(now);
                Ok((CancelAction::Close, Vec::new()))
            }
            TradeState::Closed => Ok((CancelAction::Close, Vec::new())),
            TradeState::Revoked => Ok((CancelAction::Close, Vec::new())),
            TradeState::Success if t.refunds.is_empty() => {
                t.refunds.push(Refund {
                    out_request_no: format!("cancel-{}", t.out_trade_no),
                    refund_id: format!("50300{seq:015}"),
                    amount: t.amount,
                    reason: Some("cancel".to_string()),
                    notify_url: None,
                    state: RefundState::Success,
                    created_at: now,
                    settled_at: Some(now),
                });
                t.state = revoked;
                t.closed_at = Some(now);
                Ok((CancelAction::Refund, Vec::new()))
            }
            TradeState::Finished => Err(LedgerError::TradeFinished),
            TradeState::Success => Err(LedgerError::TradeStatus(TradeState::Success)),
        }
    }

    /// Alipay: the refund period is over.
    pub fn finish(&mut self, id: &str) -> Result<LedgerEvent, LedgerError> {
        let t = self.trade_mut(id)?;
        match t.state {
            TradeState::Success => {
                t.state = TradeState::Finished;
                Ok(LedgerEvent::Finished {
                    trade_id: t.id.clone(),
                })
            }
            other => Err(LedgerError::TradeStatus(other)),
        }
    }

    /// A (partial) refund. The same request number with the same amount returns the existing
    /// refund (`false`); with another amount it is refused.
    pub fn refund(
        &mut self,
        id: &str,
        out_request_no: &str,
        amount: Fen,
        reason: Option<String>,
        notify_url: Option<String>,
        now: Millis,
    ) -> Result<(Refund, bool), LedgerError> {
        let seq = self.next_seq();
        let t = self.trade_mut(id)?;
        if let Some(existing) = t.refund(out_request_no) {
            return if existing.amount == amount {
                Ok((existing.clone(), false))
            } else {
                Err(LedgerError::RefundRequestConflict)
            };
        }
        match t.state {
            TradeState::Success => {}
            TradeState::Finished => return Err(LedgerError::TradeFinished),
            TradeState::Closed | TradeState::Revoked => return Err(LedgerError::TradeClosed),
            other => return Err(LedgerError::TradeStatus(other)),
        }
        if amount.0 <= 0 {
            return Err(LedgerError::InvalidAmount(amount));
        }
        let refundable = t.refundable();
        if amount > refundable {
            return Err(LedgerError::RefundExceeds {
                requested: amount,
                refundable,
            });
        }
        // Alipay refunds synchronously; WeChat answers PROCESSING and settles later.
        let (state, settled_at) = match t.provider.family() {
            Family::Alipay => (RefundState::Success, Some(now)),
            Family::Wechat => (RefundState::Processing, None),
        };
        let refund = Refund {
            out_request_no: out_request_no.to_string(),
            refund_id: format!("50300{seq:015}"),
            amount,
            reason,
            notify_url,
            state,
            created_at: now,
            settled_at,
        };
        t.refunds.push(refund.clone());
        Ok((refund, true))
    }

    /// Control API: force a processing WeChat refund into ABNORMAL or CLOSED.
    pub fn set_refund_state(
        &mut self,
        id: &str,
        out_request_no: &str,
        state: RefundState,
        now: Millis,
    ) -> Result<LedgerEvent, LedgerError> {
        let t = self.trade_mut(id)?;
        let r = t
            .refunds
            .iter_mut()
            .find(|r| r.out_request_no == out_request_no)
            .ok_or(LedgerError::RefundNotExist)?;
        r.state = state;
        r.settled_at = Some(now);
        Ok(LedgerEvent::RefundSettled {
            trade_id: id.to_string(),
            out_request_no: out_request_no.to_string(),
        })
    }

    fn expire_one(&mut self, id: &str, now: Millis) -> Option<LedgerEvent> {
        let t = self.trades.get_mut(id)?;
        let due = t.expires_at.is_some_and(|e| e <= now);
        if due && matches!(t.state, TradeState::Waiting | TradeState::UserPaying) {
            t.state = TradeState::Closed;
            t.closed_at = t.expires_at;
            return Some(LedgerEvent::Closed {
                trade_id: t.id.clone(),
            });
        }
        None
    }

    /// The buyer lets the trade expire now (control API): closes it if still unpaid.
    pub fn expire(&mut self, id: &str, now: Millis) -> Result<Option<LedgerEvent>, LedgerError> {
        let t = self.trade_mut(id)?;
        match t.state {
            TradeState::Waiting | TradeState::UserPaying => {
                t.expires_at = Some(now);
                Ok(self.expire_one(id, now))
            }
            other => Err(LedgerError::TradeStatus(other)),
        }
    }

    /// Advances the ledger to `now`: closes expired trades and settles WeChat refunds whose
    /// processing delay has passed. Returns what the merchant should be told.
    pub fn tick(&mut self, now: Millis) -> Vec<LedgerEvent> {
        let ids: Vec<String> = self.trades.keys().cloned().collect();
        let mut events = Vec::new();
        for id in ids {
            events.extend(self.expire_one(&id, now));
        }
        let delay = self.wechat_refund_delay_ms;
        for t in self.trades.values_mut() {
            for r in t.refunds.iter_mut() {
                if r.state == RefundState::Processing && r.created_at + delay <= now {
                    r.state = RefundState::Success;
                    r.settled_at = Some(now);
                    events.push(LedgerEvent::RefundSettled {
                        trade_id: t.id.clone(),
                        out_request_no: r.out_request_no.clone(),
                    });
                }
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn new_trade(provider: Provider, out: &str, fen: i64) -> NewTrade {
        NewTrade {
            provider,
            account: "acct".into(),
            app_id: "app".into(),
            out_trade_no: out.into(),
            amount: Fen(fen),
            subject: "s".into(),
            scene: "NATIVE".into(),
            notify_url: Some("http://n".into()),
            return_url: None,
            expires_at: None,
            payer_id: None,
            attach: None,
            hidden_until_scanned: false,
            sp_mchid: None,
            sub_appid: None,
            sign_type: None,
        }
    }

    #[test]
    fn alipay_lifecycle_and_codes() {
        let mut l = Ledger::new();
        let (id, created) = l
            .create(new_trade(Provider::Alipay, "o1", 1000), 0)
            .unwrap();
        assert!(created);
        assert_eq!(
            l.get(&id).unwrap().alipay_status(),
            "WAIT_BUYER_PAY",
            "new trade waits"
        );
        // Same order again: idempotent. Different amount: refused as Alipay does.
        assert_eq!(
            l.create(new_trade(Provider::Alipay, "o1", 1000), 1)
                .unwrap(),
            (id.clone(), false)
        );
        let err = l
            .create(new_trade(Provider::Alipay, "o1", 999), 1)
            .unwrap_err();
        assert_eq!(err.alipay().sub_code, "ACQ.CONTEXT_INCONSISTENT");

        l.pay(&id, None, 5).unwrap();
        assert_eq!(l.get(&id).unwrap().alipay_status(), "TRADE_SUCCESS");
        assert_eq!(
            l.pay(&id, None, 6).unwrap_err().alipay().sub_code,
            "ACQ.TRADE_HAS_SUCCESS"
        );
        assert_eq!(
            l.close(&id, 6).unwrap_err().alipay().sub_code,
            "ACQ.TRADE_HAS_SUCCESS"
        );

        // Partial refunds, idempotent by out_request_no.
        let (r1, new1) = l.refund(&id, "r1", Fen(300), None, None, 7).unwrap();
        assert!(new1);
        assert_eq!(r1.state, RefundState::Success);
        let (_, again) = l.refund(&id, "r1", Fen(300), None, None, 8).unwrap();
        assert!(!again);
        assert_eq!(l.get(&id).unwrap().refunded(), Fen(300));
        assert_eq!(
            l.refund(&id, "r1", Fen(200), None, None, 8)
                .unwrap_err()
                .alipay()
                .sub_code,
            "ACQ.DISCORDANT_REPEAT_REQUEST"
        );
        let over = l.refund(&id, "r2", Fen(701), None, None, 9).unwrap_err();
        assert_eq!(over.alipay().sub_code, "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL");
        l.refund(&id, "r2", Fen(700), None, None, 9).unwrap();
        // Fully refunded reads TRADE_CLOSED at Alipay.
        assert_eq!(l.get(&id).unwrap().alipay_status(), "TRADE_CLOSED");
    }

    #[test]
    fn closed_trade_cannot_be_paid_or_refunded() {
        let mut l = Ledger::new();
        let (id, _) = l
            .create(new_trade(Provider::WechatV3, "o2", 100), 0)
            .unwrap();
        assert_eq!(
            l.refund(&id, "r", Fen(1), None, None, 1)
                .unwrap_err()
                .wechat_v2()
                .0,
            "TRADE_STATE_ERROR"
        );
        l.close(&id, 1).unwrap();
        assert_eq!(l.get(&id).unwrap().wechat_state(), "CLOSED");
        let e = l.pay(&id, None, 2).unwrap_err();
        assert_eq!(e.wechat_v2().0, "ORDERCLOSED");
        assert_eq!(e.alipay().sub_code, "ACQ.TRADE_HAS_CLOSE");
        assert_eq!(e.wechat_v3().code, "ORDER_CLOSED");
        // Re-creating a closed order is refused too.
        assert_eq!(
            l.create(new_trade(Provider::WechatV2, "o2", 100), 3)
                .unwrap_err()
                .wechat_v2()
                .0,
            "ORDERCLOSED"
        );
    }

    #[test]
    fn wechat_states_and_refund_settlement() {
        let mut l = Ledger::new();
        l.wechat_refund_delay_ms = 1000;
        let (id, _) = l
            .create(new_trade(Provider::WechatV2, "o3", 500), 0)
            .unwrap();
        let e = l
            .create(new_trade(Provider::WechatV3, "o3", 501), 0)
            .unwrap_err();
        assert_eq!(e.wechat_v2().0, "OUT_TRADE_NO_USED");
        assert_eq!(l.get(&id).unwrap().wechat_state(), "NOTPAY");
        l.set_user_paying(&id).unwrap();
        assert_eq!(l.get(&id).unwrap().wechat_state(), "USERPAYING");
        l.pay(&id, Some("openid-1"), 10).unwrap();
        assert_eq!(l.get(&id).unwrap().wechat_state(), "SUCCESS");
        assert_eq!(l.get(&id).unwrap().buyer_id, "openid-1");
        let (r, _) = l.refund(&id, "rf1", Fen(200), None, None, 20).unwrap();
        assert_eq!(r.state, RefundState::Processing);
        assert_eq!(l.get(&id).unwrap().wechat_state(), "REFUND");
        let over = l.refund(&id, "rf2", Fen(301), None, None, 21).unwrap_err();
        assert_eq!(over.wechat_v2().0, "NOT_ENOUGH");
        assert_eq!(over.wechat_v3().status, 403);
        assert!(l.tick(500).is_empty(), "still processing");
        assert_eq!(
            l.tick(1020),
            vec![LedgerEvent::RefundSettled {
                trade_id: id.clone(),
                out_request_no: "rf1".into()
            }]
        );
        assert_eq!(
            l.get(&id).unwrap().refund("rf1").unwrap().state,
            RefundState::Success
        );
    }

    #[test]
    fn expiry_is_driven_by_the_clock() {
        let mut l = Ledger::new();
        let mut n = new_trade(Provider::Alipay, "o4", 100);
        n.expires_at = Some(1000);
        let (id, _) = l.create(n, 0).unwrap();
        assert!(l.tick(999).is_empty());
        assert_eq!(
            l.tick(1000),
            vec![LedgerEvent::Closed {
                trade_id: id.clone()
            }]
        );
        assert_eq!(l.get(&id).unwrap().alipay_status(), "TRADE_CLOSED");
        // Paying after expiry without a tick in between still finds it closed.
        let mut n = new_trade(Provider::WechatV3, "o5", 100);
        n.expires_at = Some(2000);
        let (id2, _) = l.create(n, 0).unwrap();
        assert_eq!(
            l.pay(&id2, None, 2001).unwrap_err(),
            LedgerError::TradeClosed
        );
    }

    #[test]
    fn cancel_and_reverse() {
        let mut l = Ledger::new();
        let (a, _) = l.create(new_trade(Provider::Alipay, "c1", 100), 0).unwrap();
        assert_eq!(l.cancel(&a, 1).unwrap().0, CancelAction::Close);
        assert_eq!(l.get(&a).unwrap().alipay_status(), "TRADE_CLOSED");
        let (w, _) = l
            .create(new_trade(Provider::WechatV2, "c2", 100), 0)
            .unwrap();
        l.pay(&w, None, 1).unwrap();
        assert_eq!(l.cancel(&w, 2).unwrap().0, CancelAction::Refund);
        assert_eq!(l.get(&w).unwrap().wechat_state(), "REVOKED");
        assert_eq!(l.get(&w).unwrap().refunded(), Fen(100));
    }

    #[test]
    fn hidden_precreate_is_not_found_until_scanned() {
        let mut l = Ledger::new();
        let mut n = new_trade(Provider::Alipay, "h1", 100);
        n.hidden_until_scanned = true;
        let (id, _) = l.create(n, 0).unwrap();
        assert_eq!(
            l.find(Family::Alipay, "acct", Some("h1"), None)
                .unwrap_err(),
            LedgerError::TradeNotExist
        );
        l.mark_scanned(&id).unwrap();
        assert_eq!(
            l.find(Family::Alipay, "acct", Some("h1"), None).unwrap().id,
            id
        );
        let no = l.get(&id).unwrap().trade_no.clone();
        assert_eq!(
            l.find(Family::Alipay, "acct", None, Some(&no)).unwrap().id,
            id
        );
        assert!(l.find(Family::Alipay, "other", None, Some(&no)).is_err());
        assert_eq!(
            l.refund(&id, "x", Fen(0), None, None, 1).unwrap_err(),
            LedgerError::TradeStatus(TradeState::Waiting)
        );
    }
}
