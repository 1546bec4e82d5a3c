//! Provider notifications: stored raw first, then verified by the channel, checked against the
//! order, applied exactly once, answered with the provider's exact reply.

use std::net::IpAddr;

use paybridge_core::channel::{ChannelEvent, HttpReply, InboundRequest, NotifyOutcome};
use paybridge_core::Channel;
use paybridge_store::{Audit, NewNotification, NotificationOutcome};

use super::jobs::JobKind;
use super::payments::Applied;
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

/// How processing ended; becomes the inbox outcome and the provider reply.
struct Verdict {
    verified: bool,
    outcome: &'static str,
    reason: Option<String>,
    notify_id: Option<String>,
    payment_id: Option<String>,
    reply: NotifyOutcome,
}

impl Verdict {
    fn rejected(verified: bool, outcome: &'static str, reason: String, retry: bool) -> Verdict {
        Verdict {
            verified,
            outcome,
            reason: Some(reason),
            notify_id: None,
            payment_id: None,
            // The sender learns that it was refused, not why (which key or serial, our clock):
            // the inbox keeps the reason.
            reply: NotifyOutcome::Rejected {
                retry,
                reason: "notification refused".into(),
            },
        }
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
    pub async fn handle_notification(
        &self,
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
        // The raw request is stored before anything else can fail.
        let notification_id = match self
            .store
            .insert_notification(&NewNotification {
                channel: account.channel,
                account: account.id.clone(),
                path: req.path.clone(),
                headers: stored_headers(&req.headers),
                body: req.body.clone(),
                remote_addr: client_ip.map(|ip| ip.to_string()),
            })
            .await
        {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, "cannot store notification");
                return NotifyReply::Provider(channel.acknowledge(&NotifyOutcome::Failed));
            }
        };
        let verdict = match client_ip {
            Some(ip) if !self.ip_allowlist.allows(account.channel, ip) => Verdict::rejected(
                false,
                "ip_not_allowed",
                format!("{ip} is not in the {} allowlist", account.channel),
                // A real provider from a new range gets through once the list is fixed.
                true,
            ),
            _ => {
                self.process(&account, &*channel, &notification_id, &req)
                    .await
            }
        };
        if verdict.outcome == "unverified" {
            // Perhaps the provider rotated its keys: fetch them (rate-limited by the channel) so
            // its retry verifies. In the background: the reply must not wait on the provider.
            let channel = channel.clone();
            let account_id = account.id.clone();
            tokio::spawn(async move {
                if let Err(e) = channel.refresh_keys(true).await {
                    tracing::warn!(account = %account_id, error = %e, "key refresh after an unverifiable notification failed");
                }
            });
        }
        let outcome = NotificationOutcome {
            verified: verdict.verified,
            outcome: verdict.outcome.to_string(),
            reason: verdict.reason.clone(),
            notify_id: verdict.notify_id.clone(),
            payment_id: verdict.payment_id.clone(),
        };
        if let Err(e) = self
            .store
            .record_notification_outcome(&notification_id, &outcome)
            .await
        {
            tracing::error!(error = %e, notification = %notification_id, "cannot record outcome");
        }
        tracing::info!(
            notification = %notification_id,
            account = %account.id,
            outcome = verdict.outcome,
            reason = verdict.reason.as_deref().unwrap_or(""),
            "notification"
        );
        NotifyReply::Provider(channel.acknowledge(&verdict.reply))
    }

    async fn process(
        &self,
        account: &super::Account,
        channel: &dyn paybridge_core::channel::PaymentChannel,
        notification_id: &str,
        req: &InboundRequest,
    ) -> Verdict {
        let now_unix = self.now_ms().div_euclid(1000);
        let verified = match channel.decode_notification(req, now_unix) {
            Ok(v) => v,
            // Same bytes, same answer, unless our keys change (certificate rotation): let the
            // provider retry; a forger's retries change nothing either.
            Err(e) => return Verdict::rejected(false, "unverified", e.to_string(), true),
        };
        let out_trade_no = match &verified.event {
            ChannelEvent::Payment { snapshot } => &snapshot.out_trade_no,
            ChannelEvent::Refund { out_trade_no, .. } => out_trade_no,
        };
        let payment = match self
            .store
            .get_payment_by_out_trade_no(&account.id, out_trade_no)
            .await
        {
            Ok(p) => p,
            Err(e) => return self.failed(e.to_string()),
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
            let mut verdict = Verdict::rejected(true, "mismatch", reason, false);
            verdict.payment_id = payment.map(|p| p.id);
            return verdict;
        }
        let Some(payment) = payment else {
            return Verdict::rejected(
                true,
                "unknown_order",
                format!("no order {out_trade_no} in account {}", account.id),
                false,
            );
        };
        let audit = Audit::new(format!("notify:{notification_id}"), "provider notification");
        let mut verdict = match &verified.event {
            ChannelEvent::Payment { snapshot } => {
                match self.apply_snapshot(payment.clone(), snapshot, &audit).await {
                    Ok((_, Applied::Changed)) => Verdict {
                        verified: true,
                        outcome: "applied",
                        reason: None,
                        notify_id: None,
                        payment_id: None,
                        reply: NotifyOutcome::Accepted,
                    },
                    Ok((_, Applied::NoChange)) => Verdict {
                        verified: true,
                        outcome: "no_change",
                        reason: None,
                        notify_id: None,
                        payment_id: None,
                        reply: NotifyOutcome::Accepted,
                    },
                    Ok((_, Applied::Mismatch(reason))) => {
                        // Signed by the provider yet contradicting the order: ask the provider
                        // directly rather than trust or ignore it.
                        if let Err(e) = self
                            .schedule(JobKind::Query, &payment.id, None, self.now_ms())
                            .await
                        {
                            tracing::warn!(error = %e, "cannot schedule query");
                        }
                        Verdict::rejected(true, "mismatch", reason, false)
                    }
                    Err(e) => self.failed(e.to_string()),
                }
            }
            ChannelEvent::Refund { snapshot, .. } => {
                match self
                    .store
                    .get_refund_by_out_refund_no(&payment.id, &snapshot.out_refund_no)
                    .await
                {
                    Ok(Some(refund)) if snapshot.amount.is_some_and(|a| a != refund.amount) => {
                        // Signed by the provider yet contradicting the refund: ask the provider
                        // directly, as the payment path does.
                        if let Err(e) = self
                            .schedule(
                                JobKind::RefundQuery,
                                &refund.id,
                                Some(&payment.id),
                                self.now_ms(),
                            )
                            .await
                        {
                            tracing::warn!(error = %e, "cannot schedule refund query");
                        }
                        Verdict::rejected(
                            true,
                            "mismatch",
                            format!(
                                "refund {} is {} fen, the notification says {} fen",
                                refund.id,
                                refund.amount.as_i64(),
                                snapshot.amount.map_or(0, |a| a.as_i64())
                            ),
                            false,
                        )
                    }
                    Ok(Some(refund)) => {
                        let before = refund.status;
                        match self.apply_refund_snapshot(refund, snapshot, &audit).await {
                            Ok(r) => Verdict {
                                verified: true,
                                outcome: if r.status != before {
                                    "applied"
                                } else {
                                    "no_change"
                                },
                                reason: None,
                                notify_id: None,
                                payment_id: None,
                                reply: NotifyOutcome::Accepted,
                            },
                            Err(e) => self.failed(e.to_string()),
                        }
                    }
                    Ok(None) => Verdict::rejected(
                        true,
                        "unknown_refund",
                        format!("no refund {} on {}", snapshot.out_refund_no, payment.id),
                        false,
                    ),
                    Err(e) => self.failed(e.to_string()),
                }
            }
        };
        if matches!(verdict.outcome, "applied" | "no_change") {
            verdict.notify_id = verified.notify_id.clone();
        }
        // Duplicates are harmless (the transition is conditional); the id only labels them.
        // It never short-circuits processing: a provider reusing an id for another trade must
        // not make us skip a payment.
        if verdict.outcome == "no_change" {
            if let Some(nid) = &verified.notify_id {
                if let Ok(true) = self.store.notification_seen(&account.id, nid).await {
                    verdict.outcome = "duplicate";
                }
            }
        }
        verdict.payment_id = Some(payment.id.clone());
        verdict
    }

    fn failed(&self, reason: String) -> Verdict {
        tracing::error!(%reason, "notification processing failed");
        Verdict {
            verified: true,
            outcome: "error",
            reason: Some(reason),
            notify_id: None,
            payment_id: None,
            // The provider sees a generic message; the inbox keeps the real one.
            reply: NotifyOutcome::Failed,
        }
    }
}
