//! The providers' ledger of payouts (WeChat Pay 商家转账 bills, Alipay 单笔转账 orders) and the
//! merchants' balances they draw on. Pure and synchronous, like [`crate::ledger`]: every
//! operation takes `now`. A payout exists once per (provider, account, merchant number): the
//! same request again answers with the existing payout, other parameters under the same number
//! are refused, so nothing is ever paid twice.

use std::collections::HashMap;

use paybridge_core::Fen;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ledger::Family;

/// Every account starts with 1,000,000.00 yuan until the control API sets another balance.
pub const DEFAULT_BALANCE_FEN: i64 = 100_000_000;
/// WeChat closes a bill the payee has not collected after 24 hours.
pub const CONFIRM_WINDOW_MS: Millis = 24 * 3_600_000;

/// The sandbox's fail reason when the payee refuses on the wallet page. WeChat's confirmation
/// page has no refusal of its own (the payee simply does not collect), so the sandbox uses
/// WeChat's catch-all word.
pub const REFUSED_REASON: &str = "OTHER_FAIL_REASON_TYPE";
/// The fail reason of a bill that expired uncollected ("超过系统重试期关闭").
pub const EXPIRED_REASON: &str = "OVERDUE_CLOSE";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// WeChat WAIT_USER_CONFIRM: the payee has the package and may collect.
    AwaitingConfirmation,
    Succeeded,
    Failed,
    Cancelled,
}

impl PayoutState {
    pub fn is_final(self) -> bool {
        match self {
            PayoutState::AwaitingConfirmation => false,
            PayoutState::Succeeded | PayoutState::Failed | PayoutState::Cancelled => true,
        }
    }

    /// The transfer-bill `state`.
    pub fn wechat(self) -> &'static str {
        match self {
            PayoutState::AwaitingConfirmation => "WAIT_USER_CONFIRM",
            PayoutState::Succeeded => "SUCCESS",
            PayoutState::Failed => "FAIL",
            PayoutState::Cancelled => "CANCELLED",
        }
    }

    /// The Alipay transfer `status` (Alipay account transfers never wait for the payee; a
    /// bill that does is shown as still dealing).
    pub fn alipay(self) -> &'static str {
        match self {
            PayoutState::AwaitingConfirmation => "DEALING",
            PayoutState::Succeeded => "SUCCESS",
            PayoutState::Failed | PayoutState::Cancelled => "FAIL",
        }
    }
}

/// A failure on demand, set through the control API for an account or one merchant number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PayoutFault {
    /// The merchant's balance does not cover it (also happens for real when it does not).
    InsufficientBalance,
    PayeeNotFound,
    /// The real name sent does not match the account.
    NameMismatch,
    /// The payee's per-day collection limit is reached.
    DailyLimit,
    /// The provider executes the payout, then the answer is lost: it comes `delay_ms` late as
    /// a 504 without a body.
    Timeout {
        #[serde(default = "default_timeout_ms")]
        delay_ms: u64,
    },
}

fn default_timeout_ms() -> u64 {
    15_000
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PayoutFaultBook {
    pub by_account: HashMap<String, PayoutFault>,
    pub by_out_no: HashMap<String, PayoutFault>,
}

impl PayoutFaultBook {
    pub fn lookup(&self, account: &str, out_no: &str) -> Option<PayoutFault> {
        self.by_out_no
            .get(out_no)
            .or_else(|| self.by_account.get(account))
            .copied()
    }
}

/// What a create asks for. `fingerprint` holds the parameters that must be the same when the
/// number is used again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPayout {
    pub family: Family,
    pub account: String,
    pub app_id: String,
    pub out_no: String,
    pub amount: Fen,
    /// openid, or the Alipay identity.
    pub payee: String,
    /// `openid`, `ALIPAY_USER_ID`, `ALIPAY_LOGON_ID`, `ALIPAY_OPEN_ID`.
    pub payee_type: String,
    /// The real name the merchant sent (checked, and shown encrypted in queries).
    pub name: Option<String>,
    pub remark: String,
    pub scene: String,
    pub notify_url: Option<String>,
    pub fingerprint: String,
}

/// How a new payout starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// WeChat: waiting for the payee; the funds are locked now.
    AwaitConfirmation,
    /// Alipay account transfers: paid at once.
    Succeed,
    /// Created and failed at once (WeChat's name check, per-day limits), nothing moved.
    Fail(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    pub id: String,
    pub family: Family,
    pub account: String,
    pub app_id: String,
    pub out_no: String,
    /// WeChat `transfer_bill_no`, Alipay `order_id`.
    pub provider_no: String,
    /// Alipay `pay_fund_order_id`.
    pub fund_order_no: String,
    pub amount: Fen,
    pub payee: String,
    pub payee_type: String,
    pub named: bool,
    /// Personal data: kept out of the control API's JSON and of `Debug`.
    #[serde(skip)]
    pub name: Option<paybridge_crypto::Secret<String>>,
    pub remark: String,
    pub scene: String,
    pub notify_url: Option<String>,
    pub state: PayoutState,
    pub fail_reason: Option<String>,
    /// WeChat `package_info`, while the payee may collect.
    pub package_info: Option<String>,
    #[serde(skip)]
    fingerprint: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
    pub expires_at: Option<Millis>,
    /// When the electronic receipt was applied for.
    pub receipt_applied_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayoutError {
    #[error("no such payout")]
    NotFound,
    #[error("the number is already used with other parameters")]
    Inconsistent,
    #[error("the balance {available} does not cover {requested}")]
    InsufficientBalance { available: Fen, requested: Fen },
    #[error("the payout is {0:?}, which does not allow this")]
    State(PayoutState),
}

/// A payout reached a final state: its notification is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayoutFinished {
    pub id: String,
}

#[derive(Debug, Default)]
pub struct PayoutLedger {
    payouts: Vec<Payout>,
    balances: HashMap<String, i64>,
    seq: u64,
}

impl PayoutLedger {
    pub fn get(&self, id: &str) -> Option<&Payout> {
        self.payouts.iter().find(|p| p.id == id)
    }

    pub fn all(&self) -> &[Payout] {
        &self.payouts
    }

    pub fn by_out_no(&self, family: Family, account: &str, out_no: &str) -> Option<&Payout> {
        self.payouts
            .iter()
            .find(|p| p.family == family && p.account == account && p.out_no == out_no)
    }

    pub fn by_provider_no(&self, family: Family, account: &str, no: &str) -> Option<&Payout> {
        self.payouts.iter().find(|p| {
            p.family == family
                && p.account == account
                && (p.provider_no == no || p.fund_order_no == no)
        })
    }

    /// A sandbox id, a provider number or a WeChat package.
    pub fn resolve(&self, key: &str) -> Option<&Payout> {
        self.payouts.iter().find(|p| {
            p.id == key
                || p.provider_no == key
                || p.out_no == key
                || p.package_info.as_deref() == Some(key)
        })
    }

    pub fn balance(&self, account: &str) -> Fen {
        Fen(*self.balances.get(account).unwrap_or(&DEFAULT_BALANCE_FEN))
    }

    pub fn set_balance(&mut self, account: &str, fen: Fen) {
        self.balances.insert(account.to_string(), fen.as_i64());
    }

    fn credit(&mut self, account: &str, fen: Fen) {
        let b = self.balance(account).as_i64().saturating_add(fen.as_i64());
        self.balances.insert(account.to_string(), b);
    }

    /// Creates the payout, or answers with the one already made under this number (`false`).
    pub fn create(
        &mut self,
        new: NewPayout,
        start: Start,
        now: Millis,
    ) -> Result<(Payout, bool), PayoutError> {
        if let Some(p) = self.by_out_no(new.family, &new.account, &new.out_no) {
            return if p.fingerprint == new.fingerprint {
                Ok((p.clone(), false))
            } else {
                Err(PayoutError::Inconsistent)
            };
        }
        let moves_money = !matches!(start, Start::Fail(_));
        let available = self.balance(&new.account);
        if moves_money && available < new.amount {
            return Err(PayoutError::InsufficientBalance {
                available,
                requested: new.amount,
            });
        }
        self.seq += 1;
        let seq = self.seq;
        let day = crate::clock::beijing_date(now).replace('-', "");
        let (provider_no, fund_order_no) = match new.family {
            Family::Wechat => (format!("1330000071100{day}{seq:019}"), String::new()),
            Family::Alipay => (
                format!("{day}110070000006{seq:012}"),
                format!("{day}110070001506{seq:012}"),
            ),
        };
        let (state, fail_reason, finished_at, expires_at, package_info) = match &start {
            Start::AwaitConfirmation => (
                PayoutState::AwaitingConfirmation,
                None,
                None,
                Some(now + CONFIRM_WINDOW_MS),
                Some(format!(
                    "ABBQO+oYAAABAAAAAAB{}/{}==",
                    paybridge_crypto::random_string(24),
                    seq
                )),
            ),
            Start::Succeed => (PayoutState::Succeeded, None, Some(now), None, None),
            Start::Fail(r) => (PayoutState::Failed, Some(r.clone()), Some(now), None, None),
        };
        if moves_money {
            self.credit(&new.account, Fen(-new.amount.as_i64()));
        }
        let p = Payout {
            id: format!("P{seq:08}"),
            family: new.family,
            account: new.account,
            app_id: new.app_id,
            out_no: new.out_no,
            provider_no,
            fund_order_no,
            amount: new.amount,
            payee: new.payee,
            payee_type: new.payee_type,
            named: new.name.is_some(),
            name: new.name.map(paybridge_crypto::Secret::new),
            remark: new.remark,
            scene: new.scene,
            notify_url: new.notify_url,
            state,
            fail_reason,
            package_info,
            fingerprint: new.fingerprint,
            created_at: now,
            updated_at: now,
            finished_at,
            expires_at,
            receipt_applied_at: None,
        };
        self.payouts.push(p.clone());
        Ok((p, true))
    }

    fn finish(
        &mut self,
        id: &str,
        to: PayoutState,
        reason: Option<&str>,
        now: Millis,
    ) -> Result<PayoutFinished, PayoutError> {
        let p = self
            .payouts
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or(PayoutError::NotFound)?;
        if p.state != PayoutState::AwaitingConfirmation {
            return Err(PayoutError::State(p.state));
        }
        p.state = to;
        p.fail_reason = reason.map(str::to_string);
        p.package_info = None;
        p.updated_at = now;
        p.finished_at = Some(now);
        let (account, amount) = (p.account.clone(), p.amount);
        if to != PayoutState::Succeeded {
            // The locked funds go back to the merchant.
            self.credit(&account, amount);
        }
        Ok(PayoutFinished { id: id.to_string() })
    }

    /// The payee collects on the confirmation page.
    pub fn confirm(&mut self, id: &str, now: Millis) -> Result<PayoutFinished, PayoutError> {
        self.finish(id, PayoutState::Succeeded, None, now)
    }

    pub fn refuse(&mut self, id: &str, now: Millis) -> Result<PayoutFinished, PayoutError> {
        self.finish(id, PayoutState::Failed, Some(REFUSED_REASON), now)
    }

    /// The confirmation window runs out (also by [`PayoutLedger::tick`] after 24 hours).
    pub fn expire(&mut self, id: &str, now: Millis) -> Result<PayoutFinished, PayoutError> {
        self.finish(id, PayoutState::Failed, Some(EXPIRED_REASON), now)
    }

    /// The merchant cancels before the payee collects.
    pub fn cancel(&mut self, id: &str, now: Millis) -> Result<PayoutFinished, PayoutError> {
        self.finish(id, PayoutState::Cancelled, Some("MCH_CANCEL"), now)
    }

    pub fn apply_receipt(&mut self, id: &str, now: Millis) -> Result<Payout, PayoutError> {
        let p = self
            .payouts
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or(PayoutError::NotFound)?;
        if p.state != PayoutState::Succeeded {
            return Err(PayoutError::State(p.state));
        }
        p.receipt_applied_at.get_or_insert(now);
        Ok(p.clone())
    }

    /// Expires every bill whose confirmation window is over.
    pub fn tick(&mut self, now: Millis) -> Vec<PayoutFinished> {
        let due: Vec<String> = self
            .payouts
            .iter()
            .filter(|p| {
                p.state == PayoutState::AwaitingConfirmation
                    && p.expires_at.is_some_and(|e| e <= now)
            })
            .map(|p| p.id.clone())
            .collect();
        due.iter()
            .filter_map(|id| self.expire(id, now).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn new(no: &str, fen: i64, fp: &str) -> NewPayout {
        NewPayout {
            family: Family::Wechat,
            account: "m".into(),
            app_id: "wx".into(),
            out_no: no.into(),
            amount: Fen(fen),
            payee: "op".into(),
            payee_type: "openid".into(),
            name: None,
            remark: "r".into(),
            scene: "1000".into(),
            notify_url: None,
            fingerprint: fp.into(),
        }
    }

    #[test]
    fn one_payout_per_number_and_balances_move_once() {
        let mut l = PayoutLedger::default();
        l.set_balance("m", Fen(1_000));
        let (p, created) = l
            .create(new("a1", 600, "x"), Start::AwaitConfirmation, 0)
            .unwrap();
        assert!(created && p.package_info.is_some());
        assert_eq!(l.balance("m"), Fen(400));
        let (again, created) = l
            .create(new("a1", 600, "x"), Start::AwaitConfirmation, 5)
            .unwrap();
        assert!(!created);
        assert_eq!(again.id, p.id);
        assert_eq!(l.balance("m"), Fen(400), "a repeat moves nothing");
        assert_eq!(
            l.create(new("a1", 601, "y"), Start::AwaitConfirmation, 5),
            Err(PayoutError::Inconsistent)
        );
        assert!(matches!(
            l.create(new("a2", 600, "x"), Start::AwaitConfirmation, 5),
            Err(PayoutError::InsufficientBalance { .. })
        ));
        assert_eq!(l.all().len(), 1);
        l.confirm(&p.id, 10).unwrap();
        assert_eq!(l.get(&p.id).unwrap().state, PayoutState::Succeeded);
        assert_eq!(l.get(&p.id).unwrap().package_info, None);
        assert_eq!(
            l.confirm(&p.id, 11),
            Err(PayoutError::State(PayoutState::Succeeded))
        );
        assert_eq!(
            l.cancel(&p.id, 11),
            Err(PayoutError::State(PayoutState::Succeeded))
        );
        assert_eq!(l.balance("m"), Fen(400));
    }

    #[test]
    fn refusal_expiry_and_cancel_give_the_money_back() {
        let mut l = PayoutLedger::default();
        let start = l.balance("m");
        let (a, _) = l
            .create(new("a", 100, "x"), Start::AwaitConfirmation, 0)
            .unwrap();
        let (b, _) = l
            .create(new("b", 100, "x"), Start::AwaitConfirmation, 0)
            .unwrap();
        let (c, _) = l
            .create(new("c", 100, "x"), Start::AwaitConfirmation, 1_000)
            .unwrap();
        l.refuse(&a.id, 1).unwrap();
        l.cancel(&c.id, 2).unwrap();
        assert!(l.tick(CONFIRM_WINDOW_MS - 1).is_empty());
        assert_eq!(
            l.tick(CONFIRM_WINDOW_MS),
            vec![PayoutFinished { id: b.id.clone() }]
        );
        let reasons: Vec<_> = [&a, &b, &c]
            .iter()
            .map(|p| {
                let p = l.get(&p.id).unwrap();
                (p.state, p.fail_reason.clone().unwrap_or_default())
            })
            .collect();
        assert_eq!(
            reasons,
            vec![
                (PayoutState::Failed, REFUSED_REASON.to_string()),
                (PayoutState::Failed, EXPIRED_REASON.to_string()),
                (PayoutState::Cancelled, "MCH_CANCEL".to_string()),
            ]
        );
        assert_eq!(l.balance("m"), start);
        // Failing at creation moves nothing.
        let (f, _) = l
            .create(
                new("d", 100, "x"),
                Start::Fail("NAME_NOT_CORRECT".into()),
                3,
            )
            .unwrap();
        assert_eq!((f.state, l.balance("m")), (PayoutState::Failed, start));
    }
}
