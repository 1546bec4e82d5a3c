//! Provider notifications: verified by the channel, checked against the order, applied exactly
//! once together with their inbox row, answered with the provider's exact reply.

use std::net::IpAddr;
use std::sync::Arc;

use paybridge_core::channel::{
    ChannelEvent, HttpReply, InboundRequest, NotifyOutcome, VerifiedNotification,
};
use paybridge_core::Channel;
use paybridge_store::{Audit, InboxEntry, NewNotification, NotificationOutcome, Payment};

use super::inbox::truncated;
use super::jobs::JobKind;
use super::{Gateway, Protocol};

/// Which endpoint a notification arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    Alipay,
    WechatV2Pay,
    WechatV2Refund,
    WechatV3,
}

impl NotifyKind {
    fn protocol(self) -> Protocol {
        match self {
            NotifyKind::Alipay => Protocol::Alipay,
            NotifyKind::WechatV2Pay | NotifyKind::WechatV2Refund => Protocol::WechatV2,
            NotifyKind::WechatV3 => Protocol::WechatV3,
        }
    }

    fn channel(self) -> Channel {
        match self {
            NotifyKind::Alipay => Channel::Alipay,
            _ => Channel::Wechat,
        }
    }
}

/// The reply to send, or a plain status when no channel can speak for the account.
pub enum NotifyReply {
    Provider(HttpReply),
    Plain(u16, &'static str),
}

/// How processing ended: the inbox outcome (already recorded) and the provider reply.
struct Verdict {
    outcome: &'static str,
    reason: Option<String>,
    reply: NotifyOutcome,
}

/// A refusal the sender learns only as such, not why (which key or serial, our clock): the
/// inbox keeps the reason.
fn refusal(retry: bool) -> NotifyOutcome {
    NotifyOutcome::Rejected {
        retry,
        reason: "notification refused".into(),
    }
}

/// Whether a notification header is kept in the inbox: what verification reads (the body's
/// type and charset, WeChat Pay's `Wechatpay-*` signature headers) and the forwarding chain,
/// nothing else. Whatever a sender adds (`Authorization`, `Cookie`, `Proxy-Authorization`, an
/// API key header...) may be a credential and is never stored.
fn keeps_header(name: &str) -> bool {
    matches!(
        name,
        "content-type" | "user-agent" | "x-forwarded-for" | "forwarded" | "x-real-ip"
    ) || name.starts_with("wechatpay-")
}

fn stored_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(k, _)| keeps_header(&k.to_ascii_lowercase()))
        .cloned()
        .collect()
}

impl Gateway {
    /// A provider notification: checked against the IP allowlist, verified and decoded (pure
    /// CPU), then applied together with its inbox row in ONE transaction, which it shares with
    /// the other notifications its group-commit writer holds (`paybridge_store::GroupCommit`);
    /// the provider is answered "accepted" only after that commit. What changes nothing is
    /// kept bounded (see [`super::inbox`]).
    pub async fn handle_notification(
        self: &Arc<Self>,
        kind: NotifyKind,
        account_id: &str,
        req: InboundRequest,
        peer: Option<IpAddr>,
        forwarded_for: Option<&str>,
    ) -> NotifyReply {
        let Some(account) = self.accounts.get(account_id).cloned() else {
            return NotifyReply::Plain(404, "unknown account");
        };
        let Some(channel) = account.channels.get(&kind.protocol()).cloned() else {
            return NotifyReply::Plain(404, "protocol not configured for this account");
        };
        if account.channel != kind.channel() {
            return NotifyReply::Plain(404, "wrong provider for this account");
        }
        let client_ip = peer.map(|p| self.ip_allowlist.client_ip(p, forwarded_for));
        let raw = NewNotification {
            channel: account.channel,
            account: account.id.clone(),
            path: req.path.clone(),
            headers: stored_headers(&req.headers),
            body: req.body.clone(),
            remote_addr: client_ip.map(|ip| ip.to_string()),
        };
        let verdict = match client_ip {
            Some(ip) if !self.ip_allowlist.allows(account.channel, ip) => {
                self.refuse_sender(raw, ip).await
            }
            _ => {
                let protocol = kind.protocol().as_str();
                self.process(&account, &*channel, raw, &req, client_ip, protocol)
                    .await
            }
        };
        if matches!(verdict.outcome, "unverified" | "signature_probe") {
            // Perhaps the provider rotated its keys: fetch them (rate-limited by the channel) so
            // its retry verifies. In the background: the reply must not wait on the provider.
            let channel = channel.clone();
            let account_id = account.id.clone();
            let refresh = async move {
                if let Err(e) = channel.refresh_keys(true).await {
                    tracing::warn!(account = %account_id, error = %e, "key refresh after an unverifiable notification failed");
                }
            };
            // In the request's span, so its lines carry the request id that caused them.
            tokio::spawn(tracing::Instrument::in_current_span(refresh));
        }
        let protocol = kind.protocol().as_str();
        crate::observe::notification(&account.id, protocol, verdict.outcome);
        // Refusals are what an operator looks for (a key mix-up, a forger, a new provider IP).
        let refused = !matches!(verdict.outcome, "applied" | "duplicate" | "no_change");
        if refused {
            tracing::warn!(
                account = %account.id,
                protocol,
                outcome = verdict.outcome,
                reason = verdict.reason.as_deref().unwrap_or(""),
                "notification refused"
            );
        } else {
            tracing::info!(
                account = %account.id,
                protocol,
                outcome = verdict.outcome,
                "notification"
            );
        }
        NotifyReply::Provider(channel.acknowledge(&verdict.reply))
    }

    /// A sender outside the allowlist: nothing is stored but, a few times a minute, a truncated
    /// sample for the operator. A real provider from a new range gets through once the list is
    /// fixed, so it is told to retry.
    async fn refuse_sender(&self, mut raw: NewNotification, ip: IpAddr) -> Verdict {
        let reason = format!("{ip} is not in the {} allowlist", raw.channel);
        if self.inbox.admit_refused_sample(&raw.account) {
            raw.body = truncated(&raw.body, self.inbox.policy.refused_sample_body_bytes);
            let outcome = rejected_outcome(false, "ip_not_allowed", &reason, None);
            self.keep(&raw, &outcome).await;
        }
        Verdict {
            outcome: "ip_not_allowed",
            reason: Some(reason),
            reply: refusal(true),
        }
    }

    /// Records a notification that changes nothing (best effort: it has no effect to make
    /// durable, and the reply does not depend on it).
    async fn keep(&self, raw: &NewNotification, outcome: &NotificationOutcome) {
        if let Err(e) = self.store.record_notification(raw, outcome).await {
            tracing::error!(error = %e, account = %raw.account, outcome = %outcome.outcome, "cannot record notification");
        }
    }

    /// A verified notification that is refused (another app, no such order): kept whole.
    async fn refuse_verified(
        &self,
        raw: &NewNotification,
        outcome: &'static str,
        reason: String,
        payment_id: Option<String>,
    ) -> Verdict {
        self.keep(raw, &rejected_outcome(true, outcome, &reason, payment_id))
            .await;
        Verdict {
            outcome,
            reason: Some(reason),
            reply: refusal(false),
        }
    }

    async fn process(
        self: &Arc<Self>,
        account: &super::Account,
        channel: &dyn paybridge_core::channel::PaymentChannel,
        mut raw: NewNotification,
        req: &InboundRequest,
        client_ip: Option<IpAddr>,
        protocol: &'static str,
    ) -> Verdict {
        let now_unix = self.now_ms().div_euclid(1000);
        let started = std::time::Instant::now();
        let decoded = channel.decode_notification(req, now_unix);
        crate::observe::notification_verified(&account.id, protocol, started.elapsed());
        let verified = match decoded {
            Ok(v) => v,
            Err(e) => {
                // Same bytes, same answer, unless our keys change (certificate rotation): let
                // the provider retry; a forger's retries change nothing either. Its copy is
                // rate-limited, truncated and expires; past the limit it is only counted.
                let reason = e.to_string();
                if self.inbox.admit_unverified(&account.id, client_ip) {
                    raw.body = truncated(&raw.body, self.inbox.policy.unverified_body_bytes);
                    let claimed = self.claimed_payment(account, channel, req).await;
                    let outcome = rejected_outcome(false, "unverified", &reason, claimed);
                    self.keep(&raw, &outcome).await;
                } else {
                    metrics::counter!("paybridge_notifications_dropped_total",
                        "account" => account.id.clone(), "reason" => "rate_limited")
                    .increment(1);
                }
                return Verdict {
                    outcome: if signature_probe(req) {
                        "signature_probe"
                    } else {
                        "unverified"
                    },
                    reason: Some(reason),
                    reply: refusal(true),
                };
            }
        };
        let out_trade_no = match &verified.event {
            ChannelEvent::Payment { snapshot } => &snapshot.out_trade_no,
            ChannelEvent::Refund { out_trade_no, .. } => out_trade_no,
        };
        tracing::Span::current().record("out_trade_no", out_trade_no.as_str());
        let payment = match self
            .store
            .get_payment_by_out_trade_no(&account.id, out_trade_no)
            .await
        {
            Ok(p) => p,
            Err(e) => return self.failed(&raw, e.to_string()).await,
        };
        // Correctly signed yet naming another app or merchant: not a key problem (no refresh),
        // and linked to the order it names so its timeline shows it.
        let foreign = match (
            &verified.app_id,
            &verified.merchant_id,
            &account.merchant_id,
        ) {
            (Some(app_id), _, _) if app_id != &account.app_id => {
                Some(format!("app id {app_id} is not this account's"))
            }
            (_, Some(theirs), Some(ours)) if theirs != ours => {
                Some(format!("merchant id {theirs} is not this account's"))
            }
            _ => None,
        };
        if let Some(reason) = foreign {
            return self
                .refuse_verified(&raw, "mismatch", reason, payment.map(|p| p.id))
                .await;
        }
        let Some(payment) = payment else {
            let reason = format!("no order {out_trade_no} in account {}", account.id);
            return self
                .refuse_verified(&raw, "unknown_order", reason, None)
                .await;
        };
        crate::observe::record_payment(&payment.id, &payment.out_trade_no);
        if let Some(reason) = echo_mismatch(&verified, &payment) {
            // Our own text, signed back to us, reads differently: the parse was tampered with
            // or the provider mixed orders up. Ask the provider directly.
            if let Err(e) = self
                .schedule(JobKind::Query, &payment.id, None, self.now_ms())
                .await
            {
                tracing::warn!(error = %e, "cannot schedule query");
            }
            return self
                .refuse_verified(&raw, "mismatch", reason, Some(payment.id))
                .await;
        }
        let entry = InboxEntry::new(raw.clone(), verified.notify_id.clone());
        let audit = Audit::new(format!("notify:{}", entry.id), "provider notification");
        let recorded = match &verified.event {
            ChannelEvent::Payment { snapshot } => {
                self.apply_notified_payment(&payment, snapshot, &audit, entry)
                    .await
            }
            ChannelEvent::Refund { snapshot, .. } => {
                match self
                    .store
                    .get_refund_by_out_refund_no(&payment.id, &snapshot.out_refund_no)
                    .await
                {
                    Ok(Some(refund)) => {
                        self.apply_notified_refund(&refund, snapshot, &audit, entry)
                            .await
                    }
                    Ok(None) => {
                        let reason =
                            format!("no refund {} on {}", snapshot.out_refund_no, payment.id);
                        return self
                            .refuse_verified(&raw, "unknown_refund", reason, Some(payment.id))
                            .await;
                    }
                    Err(e) => Err(e.into()),
                }
            }
        };
        match recorded {
            Ok(r) => Verdict {
                outcome: r.outcome,
                // A mismatch is the provider's own signed word against ours: no retry will
                // change it, and the query scheduled with it settles the truth.
                reply: if r.outcome == "mismatch" {
                    refusal(false)
                } else {
                    NotifyOutcome::Accepted
                },
                reason: r.reason,
            },
            Err(e) => self.failed(&raw, e.to_string()).await,
        }
    }

    /// The payment an unverified notification claims to be about, to link its inbox row to
    /// that payment's timeline. Never trusted for anything else.
    async fn claimed_payment(
        &self,
        account: &super::Account,
        channel: &dyn paybridge_core::channel::PaymentChannel,
        req: &InboundRequest,
    ) -> Option<String> {
        let out_trade_no = channel.claimed_order(req)?;
        match self
            .store
            .get_payment_by_out_trade_no(&account.id, &out_trade_no)
            .await
        {
            Ok(p) => p.map(|p| p.id),
            Err(_) => None,
        }
    }

    /// Applying failed (storage): keep the raw copy alone, if the store takes it, and ask the
    /// provider to send it again; nothing took effect.
    async fn failed(&self, raw: &NewNotification, reason: String) -> Verdict {
        tracing::error!(%reason, account = %raw.account, "notification processing failed");
        self.keep(raw, &rejected_outcome(true, "error", &reason, None))
            .await;
        Verdict {
            outcome: "error",
            reason: Some(reason),
            // The provider sees a generic message; the inbox keeps the real one.
            reply: NotifyOutcome::Failed,
        }
    }
}

/// WeChat Pay's signature probe: a `Wechatpay-Signature` starting `WECHATPAY/SIGNTEST/`, sent
/// to check that the merchant really verifies (it must fail, and does).
fn signature_probe(req: &InboundRequest) -> bool {
    req.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("wechatpay-signature") && v.starts_with("WECHATPAY/SIGNTEST/")
    })
}

fn rejected_outcome(
    verified: bool,
    outcome: &str,
    reason: &str,
    payment_id: Option<String>,
) -> NotificationOutcome {
    NotificationOutcome {
        verified,
        outcome: outcome.to_string(),
        reason: Some(reason.to_string()),
        notify_id: None,
        payment_id,
    }
}

/// Merchant text the provider echoes in a signed notification must read back exactly as the
/// order holds it; otherwise the signed string was split differently from what was signed.
fn echo_mismatch(v: &VerifiedNotification, payment: &Payment) -> Option<String> {
    match &v.subject {
        Some(subject) if *subject != payment.subject => Some(format!(
            "the notification's subject {subject:?} is not the order's {:?}",
            payment.subject
        )),
        _ => None,
    }
}
