//! Asynchronous notifications: each provider's real retry schedule, a time-scale factor, and
//! faults on demand. Pure and synchronous: [`Notifier::take_due`] hands out what must be sent at
//! `now`, the caller sends it and reports back with [`Notifier::record`]. Tests drive time by
//! calling these with explicit instants; the standalone server calls them from a ticker.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ledger::Provider;

/// Alipay: intervals between attempts after the first one (4m, 10m, 10m, 1h, 2h, 6h, 15h).
pub const ALIPAY_RETRY_SECS: &[i64] = &[240, 600, 600, 3_600, 7_200, 21_600, 54_000];
/// WeChat Pay APIv2 and APIv3: 15s, 15s, 30s, 3m, 10m, 20m, 30m, 30m, 30m, 60m, 3h, 3h, 3h, 6h, 6h.
pub const WECHAT_RETRY_SECS: &[i64] = &[
    15, 15, 30, 180, 600, 1_200, 1_800, 1_800, 1_800, 3_600, 10_800, 10_800, 10_800, 21_600, 21_600,
];

/// WeChat Pay 商家转账 (`MCHTRANSFER.BILL.FINISHED`): "0s/15s（尝试10次）/300s（尝试10次）/
/// 1800s（尝试44次）": after the first attempt, ten at 15 s, ten at 5 min, 44 at 30 min.
pub const WECHAT_TRANSFER_RETRY_SECS: [i64; 64] = transfer_schedule();

const fn transfer_schedule() -> [i64; 64] {
    let mut a = [0i64; 64];
    let mut i = 0;
    while i < 64 {
        a[i] = if i < 10 {
            15
        } else if i < 20 {
            300
        } else {
            1_800
        };
        i += 1;
    }
    a
}

/// Alipay 消息服务 messages (`alipay.fund.trans.order.changed`): 2m, 10m, 10m, 1h, 2h, 6h, 15h.
pub const ALIPAY_MESSAGE_RETRY_SECS: &[i64] = &[120, 600, 600, 3_600, 7_200, 21_600, 54_000];

/// Which retry schedule a notification follows: its protocol's default, or that of a product
/// with its own (payouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetrySchedule {
    #[default]
    Protocol,
    WechatTransfer,
    AlipayMessage,
}

impl RetrySchedule {
    pub fn intervals(self, provider: Provider) -> &'static [i64] {
        match self {
            RetrySchedule::Protocol => retry_intervals(provider),
            RetrySchedule::WechatTransfer => &WECHAT_TRANSFER_RETRY_SECS,
            RetrySchedule::AlipayMessage => ALIPAY_MESSAGE_RETRY_SECS,
        }
    }
}

pub fn retry_intervals(provider: Provider) -> &'static [i64] {
    match provider {
        Provider::Alipay => ALIPAY_RETRY_SECS,
        Provider::WechatV2 | Provider::WechatV3 => WECHAT_RETRY_SECS,
    }
}

/// Multiplies provider delays: `1/10000` runs a day of retries in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeScale {
    pub num: i64,
    pub den: i64,
}

impl Default for TimeScale {
    fn default() -> Self {
        TimeScale { num: 1, den: 1 }
    }
}

impl TimeScale {
    pub fn new(num: i64, den: i64) -> Self {
        TimeScale {
            num: num.max(0),
            den: den.max(1),
        }
    }

    pub fn apply(self, ms: Millis) -> Millis {
        ms.saturating_mul(self.num) / self.den
    }

    /// Parses `1/10000`, `0.5` is not accepted (no floats): `N` or `N/D`.
    pub fn parse(text: &str) -> Option<TimeScale> {
        let (n, d) = match text.split_once('/') {
            Some((n, d)) => (n.trim().parse().ok()?, d.trim().parse().ok()?),
            None => (text.trim().parse().ok()?, 1),
        };
        if n < 0 || d <= 0 {
            return None;
        }
        Some(TimeScale::new(n, d))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DropFault {
    #[default]
    None,
    All,
    /// Drop this percentage of attempts, deterministically spread (every attempt where
    /// `floor((n+1)·p/100)` steps up).
    Percent(u8),
}

/// How a notification body is spoiled for negative tests. The protocol layer builds the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BodyFault {
    #[default]
    None,
    /// Signed with a key that is not the provider's.
    Forged,
    /// The amount changed after signing.
    TamperedAmount,
    /// The app id / mchid changed after signing.
    TamperedAppId,
    /// WeChat Pay's signature probe: `Wechatpay-Signature` starts `WECHATPAY/SIGNTEST/` and
    /// must fail verification (other providers: signed with a key nobody trusts).
    SignTestProbe,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Faults {
    pub drop: DropFault,
    /// Copies sent per attempt (0 and 1 both mean one).
    pub duplicate: u32,
    /// Extra delay before the first attempt, in sandbox milliseconds (not scaled).
    pub delay_ms: i64,
    /// Hold notifications until this many are waiting, then send them newest first
    /// (0 and 1 mean no reordering). `POST /_sandbox/notifications/release` flushes early.
    pub reorder: u32,
    pub body: BodyFault,
}

impl Faults {
    pub fn is_clean(&self) -> bool {
        *self == Faults::default()
    }
}

/// Faults by account (Alipay app_id / WeChat mchid) and by trade; a trade's setting wins.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FaultBook {
    pub by_account: HashMap<String, Faults>,
    pub by_trade: HashMap<String, Faults>,
}

impl FaultBook {
    pub fn lookup(&self, account: &str, trade_id: &str) -> Faults {
        self.by_trade
            .get(trade_id)
            .or_else(|| self.by_account.get(account))
            .cloned()
            .unwrap_or_default()
    }
}

/// One HTTP request the sandbox will send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outgoing {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The fault injector swallowed it: nothing reached the merchant.
    Dropped,
    Replied {
        status: u16,
        body: String,
        accepted: bool,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub number: usize,
    /// 1..=copies when duplicated.
    pub copy: u32,
    pub at: Millis,
    /// Milliseconds since the first attempt of this notification.
    pub offset_ms: Millis,
    pub outcome: AttemptOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for a reorder window.
    Held,
    Pending,
    Delivered,
    /// The schedule ran out without a success reply.
    GaveUp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub id: u64,
    pub provider: Provider,
    pub account: String,
    pub trade_id: String,
    /// What happened: `TRADE_SUCCESS`, `TRANSACTION.SUCCESS`, `REFUND.SUCCESS`...
    pub kind: String,
    pub request: Outgoing,
    pub faults: Faults,
    #[serde(default)]
    pub schedule: RetrySchedule,
    pub created_at: Millis,
    pub state: DeliveryState,
    pub next_due: Option<Millis>,
    pub first_attempt_at: Option<Millis>,
    pub attempts: Vec<AttemptRecord>,
    /// Sending order among notifications due at the same instant (reordering flips it).
    order: u64,
}

/// A request the caller must send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    pub notification_id: u64,
    pub attempt: usize,
    pub copy: u32,
    pub request: Outgoing,
    /// When true the caller must not send it; it is recorded as dropped.
    pub drop: bool,
}

#[derive(Debug, Default)]
pub struct Notifier {
    pub scale: TimeScale,
    records: Vec<NotificationRecord>,
    next_id: u64,
    next_order: u64,
    drop_counter: u64,
}

/// Whether a reply is the provider's "stop retrying" answer.
pub fn accepted(provider: Provider, status: u16, body: &str) -> bool {
    match provider {
        // Alipay wants exactly the seven characters `success`.
        Provider::Alipay => status == 200 && body == "success",
        Provider::WechatV2 => {
            status == 200
                && (body.contains("<return_code><![CDATA[SUCCESS]]></return_code>")
                    || body.contains("<return_code>SUCCESS</return_code>"))
        }
        Provider::WechatV3 => status == 200 || status == 204,
    }
}

impl Notifier {
    pub fn new(scale: TimeScale) -> Self {
        Notifier {
            scale,
            ..Notifier::default()
        }
    }

    pub fn records(&self) -> &[NotificationRecord] {
        &self.records
    }

    pub fn get(&self, id: u64) -> Option<&NotificationRecord> {
        self.records.iter().find(|r| r.id == id)
    }

    /// Queues a notification; the first attempt is due at `now` plus the fault's delay.
    #[allow(clippy::too_many_arguments)] // each is one recorded fact of the notification
    pub fn enqueue(
        &mut self,
        provider: Provider,
        account: &str,
        trade_id: &str,
        kind: &str,
        request: Outgoing,
        faults: Faults,
        now: Millis,
    ) -> u64 {
        self.enqueue_with(
            RetrySchedule::Protocol,
            provider,
            account,
            trade_id,
            kind,
            request,
            faults,
            now,
        )
    }

    /// [`Notifier::enqueue`] on a product's own retry schedule.
    #[allow(clippy::too_many_arguments)]
    pub fn enqueue_with(
        &mut self,
        schedule: RetrySchedule,
        provider: Provider,
        account: &str,
        trade_id: &str,
        kind: &str,
        request: Outgoing,
        faults: Faults,
        now: Millis,
    ) -> u64 {
        self.next_id += 1;
        self.next_order += 1;
        let held = faults.reorder > 1;
        let id = self.next_id;
        self.records.push(NotificationRecord {
            id,
            provider,
            account: account.to_string(),
            trade_id: trade_id.to_string(),
            kind: kind.to_string(),
            request,
            created_at: now,
            state: if held {
                DeliveryState::Held
            } else {
                DeliveryState::Pending
            },
            next_due: if held {
                None
            } else {
                Some(now.saturating_add(faults.delay_ms.max(0)))
            },
            first_attempt_at: None,
            attempts: Vec::new(),
            order: self.next_order,
            faults: faults.clone(),
            schedule,
        });
        if held {
            let waiting = self
                .records
                .iter()
                .filter(|r| r.state == DeliveryState::Held && r.account == account)
                .count();
            if waiting >= faults.reorder as usize {
                self.release_held(now);
            }
        }
        id
    }

    /// Releases held notifications, newest first.
    pub fn release_held(&mut self, now: Millis) -> usize {
        let mut held: Vec<&mut NotificationRecord> = self
            .records
            .iter_mut()
            .filter(|r| r.state == DeliveryState::Held)
            .collect();
        held.sort_by_key(|r| std::cmp::Reverse(r.order));
        let n = held.len();
        for r in held {
            self.next_order += 1;
            r.order = self.next_order;
            r.state = DeliveryState::Pending;
            r.next_due = Some(now.saturating_add(r.faults.delay_ms.max(0)));
        }
        n
    }

    /// The earliest instant something is due, so a driver knows how far to move time.
    pub fn next_due(&self) -> Option<Millis> {
        self.records
            .iter()
            .filter(|r| r.state == DeliveryState::Pending)
            .filter_map(|r| r.next_due)
            .min()
    }

    fn should_drop(&mut self, fault: DropFault) -> bool {
        match fault {
            DropFault::None => false,
            DropFault::All => true,
            DropFault::Percent(p) => {
                let p = u64::from(p.min(100));
                let n = self.drop_counter;
                self.drop_counter += 1;
                (n + 1) * p / 100 != n * p / 100
            }
        }
    }

    /// Everything due at `now`, in sending order. Each returned dispatch must be reported with
    /// [`Notifier::record`] (dropped ones too) before the next call.
    pub fn take_due(&mut self, now: Millis) -> Vec<Dispatch> {
        let mut due: Vec<(Millis, u64, usize)> = self
            .records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.state == DeliveryState::Pending)
            .filter_map(|(i, r)| r.next_due.filter(|d| *d <= now).map(|d| (d, r.order, i)))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, _, i) in due {
            let Some(r) = self.records.get_mut(i) else {
                continue;
            };
            r.next_due = None;
            let attempt = r.attempts.iter().map(|a| a.number).max().unwrap_or(0) + 1;
            let copies = r.faults.duplicate.max(1);
            let drop_fault = r.faults.drop;
            let (id, request) = (r.id, r.request.clone());
            for copy in 1..=copies {
                let drop = self.should_drop(drop_fault);
                out.push(Dispatch {
                    notification_id: id,
                    attempt,
                    copy,
                    request: request.clone(),
                    drop,
                });
            }
        }
        out
    }

    /// Records one sent (or dropped) copy; once every copy of an attempt is in, schedules the
    /// next attempt unless one copy was accepted.
    pub fn record(
        &mut self,
        notification_id: u64,
        attempt: usize,
        copy: u32,
        outcome: AttemptOutcome,
        now: Millis,
    ) {
        let scale = self.scale;
        let Some(r) = self.records.iter_mut().find(|r| r.id == notification_id) else {
            return;
        };
        let first = *r.first_attempt_at.get_or_insert(now);
        r.attempts.push(AttemptRecord {
            number: attempt,
            copy,
            at: now,
            offset_ms: now - first,
            outcome,
        });
        let copies = r.faults.duplicate.max(1) as usize;
        let this_attempt: Vec<&AttemptRecord> =
            r.attempts.iter().filter(|a| a.number == attempt).collect();
        if this_attempt.len() < copies {
            return;
        }
        let ok = this_attempt
            .iter()
            .any(|a| matches!(a.outcome, AttemptOutcome::Replied { accepted: true, .. }));
        if ok {
            r.state = DeliveryState::Delivered;
            r.next_due = None;
            return;
        }
        let intervals = r.schedule.intervals(r.provider);
        match intervals.get(attempt.saturating_sub(1)) {
            Some(secs) => {
                // The schedule runs from the start of the attempt.
                let started = this_attempt.iter().map(|a| a.at).min().unwrap_or(now);
                r.next_due = Some(started.saturating_add(scale.apply(secs * 1000)));
            }
            None => {
                r.state = DeliveryState::GaveUp;
                r.next_due = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn out() -> Outgoing {
        Outgoing {
            url: "http://m/notify".into(),
            headers: vec![],
            body: "b".into(),
        }
    }

    /// Drives a notifier to exhaustion with a merchant that always fails; returns offsets.
    fn run_to_end(n: &mut Notifier, reply: (u16, &str)) -> Vec<Millis> {
        let mut now = 0;
        while let Some(due) = n.next_due() {
            now = now.max(due);
            for d in n.take_due(now) {
                let outcome = if d.drop {
                    AttemptOutcome::Dropped
                } else {
                    AttemptOutcome::Replied {
                        status: reply.0,
                        body: reply.1.into(),
                        accepted: accepted(n.records()[0].provider, reply.0, reply.1),
                    }
                };
                n.record(d.notification_id, d.attempt, d.copy, outcome, now);
            }
        }
        n.records()[0]
            .attempts
            .iter()
            .map(|a| a.offset_ms)
            .collect()
    }

    fn cumulative(intervals: &[i64], scale: TimeScale) -> Vec<Millis> {
        let mut acc = 0;
        let mut v = vec![0];
        for s in intervals {
            acc += scale.apply(s * 1000);
            v.push(acc);
        }
        v
    }

    #[test]
    fn alipay_schedule_is_the_providers() {
        let scale = TimeScale::new(1, 10_000);
        let mut n = Notifier::new(scale);
        n.enqueue(
            Provider::Alipay,
            "a",
            "t",
            "TRADE_SUCCESS",
            out(),
            Faults::default(),
            0,
        );
        let offsets = run_to_end(&mut n, (200, "fail"));
        assert_eq!(offsets.len(), 8);
        assert_eq!(offsets, cumulative(ALIPAY_RETRY_SECS, scale));
        // About 24.4 hours of retries in under 9 seconds.
        assert_eq!(*offsets.last().unwrap(), 8_784);
        assert_eq!(n.records()[0].state, DeliveryState::GaveUp);
    }

    #[test]
    fn payout_schedules_are_the_providers() {
        let scale = TimeScale::new(1, 1);
        let mut n = Notifier::new(scale);
        n.enqueue_with(
            RetrySchedule::WechatTransfer,
            Provider::WechatV3,
            "m",
            "p",
            "MCHTRANSFER.BILL.FINISHED",
            out(),
            Faults::default(),
            0,
        );
        let offsets = run_to_end(&mut n, (500, ""));
        // 1 + 10 + 10 + 44 attempts: 150 s of 15 s, 50 min of 5 min, then 22 h of 30 min.
        assert_eq!(offsets.len(), 65);
        assert_eq!(offsets[10], 150_000);
        assert_eq!(offsets[20], 150_000 + 3_000_000);
        assert_eq!(
            *offsets.last().unwrap(),
            150_000 + 3_000_000 + 44 * 1_800_000
        );
        let mut n = Notifier::new(scale);
        n.enqueue_with(
            RetrySchedule::AlipayMessage,
            Provider::Alipay,
            "a",
            "p",
            "alipay.fund.trans.order.changed",
            out(),
            Faults::default(),
            0,
        );
        let offsets = run_to_end(&mut n, (200, "fail"));
        assert_eq!(offsets, cumulative(ALIPAY_MESSAGE_RETRY_SECS, scale));
        assert_eq!(offsets[1], 120_000);
    }

    #[test]
    fn wechat_schedule_is_the_providers() {
        let scale = TimeScale::new(1, 1);
        let mut n = Notifier::new(scale);
        n.enqueue(
            Provider::WechatV3,
            "m",
            "t",
            "TRANSACTION.SUCCESS",
            out(),
            Faults::default(),
            0,
        );
        let offsets = run_to_end(&mut n, (500, ""));
        assert_eq!(offsets.len(), 16);
        assert_eq!(offsets, cumulative(WECHAT_RETRY_SECS, scale));
    }

    #[test]
    fn stops_on_the_exact_success_reply() {
        assert!(accepted(Provider::Alipay, 200, "success"));
        assert!(!accepted(Provider::Alipay, 200, "SUCCESS"));
        assert!(!accepted(Provider::Alipay, 200, "success\n"));
        assert!(!accepted(Provider::Alipay, 500, "success"));
        assert!(accepted(Provider::WechatV3, 204, ""));
        assert!(!accepted(Provider::WechatV3, 400, ""));
        assert!(accepted(
            Provider::WechatV2,
            200,
            "<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
        ));
        assert!(!accepted(
            Provider::WechatV2,
            200,
            "<xml><return_code>FAIL</return_code></xml>"
        ));
        let mut n = Notifier::new(TimeScale::default());
        n.enqueue(Provider::Alipay, "a", "t", "k", out(), Faults::default(), 0);
        assert_eq!(run_to_end(&mut n, (200, "success")), vec![0]);
        assert_eq!(n.records()[0].state, DeliveryState::Delivered);
    }

    #[test]
    fn drop_all_and_duplicate_and_delay() {
        let mut n = Notifier::new(TimeScale::new(1, 1000));
        let faults = Faults {
            drop: DropFault::All,
            ..Faults::default()
        };
        n.enqueue(Provider::Alipay, "a", "t", "k", out(), faults, 0);
        let offsets = run_to_end(&mut n, (200, "success"));
        assert_eq!(
            offsets.len(),
            8,
            "dropped attempts still follow the schedule"
        );
        assert!(n.records()[0]
            .attempts
            .iter()
            .all(|a| a.outcome == AttemptOutcome::Dropped));

        let mut n = Notifier::new(TimeScale::default());
        let faults = Faults {
            duplicate: 3,
            delay_ms: 5_000,
            ..Faults::default()
        };
        n.enqueue(Provider::WechatV3, "m", "t", "k", out(), faults, 100);
        assert!(n.take_due(5_099).is_empty(), "delayed");
        let d = n.take_due(5_100);
        assert_eq!(d.len(), 3);
        assert_eq!(d.iter().map(|d| d.copy).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    #[test]
    fn drop_percent_is_deterministic() {
        let mut n = Notifier::new(TimeScale::default());
        let dropped = (0..100)
            .filter(|_| n.should_drop(DropFault::Percent(30)))
            .count();
        assert_eq!(dropped, 30);
    }

    #[test]
    fn reorder_sends_newest_first() {
        let mut n = Notifier::new(TimeScale::default());
        let f = Faults {
            reorder: 3,
            ..Faults::default()
        };
        let a = n.enqueue(Provider::WechatV2, "m", "t1", "k", out(), f.clone(), 0);
        let b = n.enqueue(Provider::WechatV2, "m", "t2", "k", out(), f.clone(), 1);
        assert!(n.take_due(10).is_empty(), "held until the window fills");
        let c = n.enqueue(Provider::WechatV2, "m", "t3", "k", out(), f, 2);
        let order: Vec<u64> = n.take_due(10).iter().map(|d| d.notification_id).collect();
        assert_eq!(order, vec![c, b, a]);
    }

    #[test]
    fn time_scale_parses() {
        assert_eq!(TimeScale::parse("1/10000"), Some(TimeScale::new(1, 10_000)));
        assert_eq!(TimeScale::parse("2"), Some(TimeScale::new(2, 1)));
        assert_eq!(TimeScale::parse("1/0"), None);
        assert_eq!(TimeScale::parse("x"), None);
    }
}
