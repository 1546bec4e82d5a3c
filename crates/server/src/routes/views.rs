//! The JSON shapes merchants see, as typed structs: the same types serialize the responses and
//! generate the OpenAPI schemas, so the document cannot drift from the wire. Event payloads and
//! webhook bodies are built from them too (see `service::views`).

use paybridge_store::{Event, Payment, ProviderCall, Refund};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A payment. Amounts are integer fen, times unix milliseconds.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Payment)]
pub struct PaymentView {
    pub id: String,
    #[schema(value_type = String, pattern = "^payment$")]
    pub object: &'static str,
    #[schema(value_type = String)]
    pub mode: paybridge_core::Mode,
    pub account: String,
    #[schema(value_type = String)]
    pub channel: paybridge_core::Channel,
    #[schema(value_type = String)]
    pub scene: paybridge_core::Scene,
    pub out_trade_no: String,
    pub amount: i64,
    pub currency: String,
    pub subject: String,
    pub description: Option<String>,
    #[schema(value_type = String)]
    pub status: paybridge_core::PaymentStatus,
    pub provider_trade_no: Option<String>,
    /// What the buyer's client needs to pay (redirect, form, QR code, SDK parameters).
    #[schema(value_type = Option<Object>)]
    pub client_action: Option<Value>,
    pub payer_id: Option<String>,
    pub paid_amount: Option<i64>,
    pub refunded_amount: i64,
    pub paid_at: Option<i64>,
    pub late_payment: bool,
    pub expires_at: Option<i64>,
    #[schema(value_type = Object)]
    pub metadata: Value,
    /// The hosted cashier this payment is one wallet order of (`GET /v1/cashiers/{id}`).
    pub cashier_id: Option<String>,
    /// Incremented by every state change.
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        PaymentView {
            id: p.id.clone(),
            object: "payment",
            mode: p.mode,
            account: p.account.clone(),
            channel: p.channel,
            scene: p.scene,
            out_trade_no: p.out_trade_no.clone(),
            amount: p.amount.0,
            currency: p.currency.clone(),
            subject: p.subject.clone(),
            description: p.description.clone(),
            status: p.status,
            provider_trade_no: p.provider_trade_no.clone(),
            client_action: p.client_action.clone(),
            payer_id: p.payer_id.clone(),
            paid_amount: p.paid_amount.map(|f| f.0),
            refunded_amount: p.refunded_amount.0,
            paid_at: p.paid_at,
            late_payment: p.late_payment,
            expires_at: p.expires_at,
            metadata: p.metadata.clone(),
            cashier_id: p.cashier_id.clone(),
            version: p.version,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// Which account each wallet of a cashier pays into; `null`: the wallet is not offered.
#[derive(Debug, Serialize, ToSchema)]
pub struct CashierAccountsView {
    pub alipay: Option<String>,
    pub wechat: Option<String>,
}

/// A hosted cashier (收银台): the merchant's order, payable in either wallet at `cashier_url`.
/// Each wallet order the buyer starts is a payment of its own (`payments`); `payment_id` names
/// the one that keeps the money. Any other payment that is paid too is refunded in full
/// automatically.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Cashier)]
pub struct CashierView {
    pub id: String,
    #[schema(value_type = String, pattern = "^cashier$")]
    pub object: &'static str,
    #[schema(value_type = String, pattern = "^cashier$")]
    pub scene: &'static str,
    #[schema(value_type = String)]
    pub mode: paybridge_core::Mode,
    /// `open`, `paid` or `expired`, from what the gateway knows of its payments.
    #[schema(pattern = "^(open|paid|expired)$")]
    pub status: String,
    /// The page to send the buyer to (or to show as a QR code).
    pub cashier_url: String,
    pub out_trade_no: String,
    pub amount: i64,
    pub currency: String,
    pub subject: String,
    pub description: Option<String>,
    pub return_url: Option<String>,
    pub accounts: CashierAccountsView,
    /// The payment that keeps the money, once paid.
    pub payment_id: Option<String>,
    pub payments: Vec<PaymentView>,
    pub expires_at: i64,
    #[schema(value_type = Object)]
    pub metadata: Value,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&crate::service::CashierState> for CashierView {
    fn from(s: &crate::service::CashierState) -> Self {
        let c = &s.cashier;
        let payment_id = match &s.status {
            crate::service::CashierStatus::Paid { payment_id } => Some(payment_id.clone()),
            crate::service::CashierStatus::Open | crate::service::CashierStatus::Expired => None,
        };
        CashierView {
            id: c.id.clone(),
            object: "cashier",
            scene: "cashier",
            mode: c.mode,
            status: s.status.as_str().to_string(),
            cashier_url: s.url.clone(),
            out_trade_no: c.out_trade_no.clone(),
            amount: c.amount.0,
            currency: c.currency.clone(),
            subject: c.subject.clone(),
            description: c.description.clone(),
            return_url: c.return_url.clone(),
            accounts: CashierAccountsView {
                alipay: c.alipay_account.clone(),
                wechat: c.wechat_account.clone(),
            },
            payment_id,
            payments: s.payments.iter().map(PaymentView::from).collect(),
            expires_at: c.expires_at,
            metadata: c.metadata.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// What `POST /v1/payments` answers: a payment, or a cashier for `scene: "cashier"`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CreatedPayment {
    Payment(PaymentView),
    Cashier(CashierView),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub data: Vec<PaymentView>,
    /// `after` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A refund of part or all of a payment.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Refund)]
pub struct RefundView {
    pub id: String,
    #[schema(value_type = String, pattern = "^refund$")]
    pub object: &'static str,
    pub payment_id: String,
    #[schema(value_type = String)]
    pub mode: paybridge_core::Mode,
    pub account: String,
    pub out_refund_no: String,
    pub amount: i64,
    pub reason: Option<String>,
    #[schema(value_type = String)]
    pub status: paybridge_core::RefundStatus,
    pub provider_refund_no: Option<String>,
    pub failure_reason: Option<String>,
    pub succeeded_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        RefundView {
            id: r.id.clone(),
            object: "refund",
            payment_id: r.payment_id.clone(),
            mode: r.mode,
            account: r.account.clone(),
            out_refund_no: r.out_refund_no.clone(),
            amount: r.amount.0,
            reason: r.reason.clone(),
            status: r.status,
            provider_refund_no: r.provider_refund_no.clone(),
            failure_reason: r.failure_reason.clone(),
            succeeded_at: r.succeeded_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RefundList {
    pub data: Vec<RefundView>,
}

/// The event envelope, identical in the pull feed and in webhook bodies.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Event)]
pub struct EventView {
    pub id: String,
    #[schema(value_type = String, pattern = "^event$")]
    pub object: &'static str,
    /// `payment.paid`, `refund.succeeded`...
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: i64,
    #[schema(value_type = String)]
    pub mode: paybridge_core::Mode,
    pub account: String,
    /// The payment or refund as it was when the event happened.
    #[schema(value_type = Object)]
    pub data: Value,
}

impl From<&Event> for EventView {
    fn from(e: &Event) -> Self {
        EventView {
            id: e.id.clone(),
            object: "event",
            kind: e.kind.clone(),
            created: e.created_at.div_euclid(1000),
            mode: e.mode,
            account: e.account.clone(),
            data: e.payload.clone(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub data: Vec<EventView>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

/// One call made to the provider, redacted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ProviderCall)]
pub struct ProviderCallView {
    pub id: String,
    pub operation: String,
    #[schema(value_type = String)]
    pub channel: paybridge_core::Channel,
    pub account: String,
    pub refund_id: Option<String>,
    pub request: String,
    pub response: Option<String>,
    pub http_status: Option<i64>,
    pub latency_ms: i64,
    pub outcome: String,
    pub created_at: i64,
}

impl From<&ProviderCall> for ProviderCallView {
    fn from(c: &ProviderCall) -> Self {
        ProviderCallView {
            id: c.id.clone(),
            operation: c.operation.clone(),
            channel: c.channel,
            account: c.account.clone(),
            refund_id: c.refund_id.clone(),
            request: c.request.clone(),
            response: c.response.clone(),
            http_status: c.http_status,
            latency_ms: c.latency_ms,
            outcome: c.outcome.clone(),
            created_at: c.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderCallList {
    pub data: Vec<ProviderCallView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redelivery {
    pub event_id: String,
    /// Webhook deliveries queued.
    pub deliveries: u64,
}

/// An RFC 9457 problem with a stable `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub code: String,
    pub detail: String,
    /// Only on `refund_exceeds_payment`: what refunds may still take (fen).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = i64, required = false)]
    pub refundable: Option<i64>,
}

/// What happened to one payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    /// Queries, notes and follow-ups, oldest first.
    pub data: Vec<TimelineEntry>,
    pub state_changes: Vec<StateChange>,
    pub notifications: Vec<NotificationSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEntry {
    pub at: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub detail: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateChange {
    pub at: i64,
    pub from: Option<String>,
    pub to: String,
    pub actor: String,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationSummary {
    pub id: String,
    pub received_at: i64,
    /// Null until the notification has been processed.
    pub verified: Option<bool>,
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

impl From<&crate::service::Timeline> for Timeline {
    fn from(t: &crate::service::Timeline) -> Self {
        Timeline {
            data: t
                .entries
                .iter()
                .map(|e| TimelineEntry {
                    at: e.created_at,
                    kind: e.kind.clone(),
                    detail: e.detail.clone(),
                })
                .collect(),
            state_changes: t
                .state_changes
                .iter()
                .map(|a| StateChange {
                    at: a.created_at,
                    from: a.from_status.clone(),
                    to: a.to_status.clone(),
                    actor: a.actor.clone(),
                    reason: a.reason.clone(),
                })
                .collect(),
            notifications: t
                .notifications
                .iter()
                .map(|n| NotificationSummary {
                    id: n.id.clone(),
                    received_at: n.received_at,
                    verified: n.verified,
                    outcome: n.outcome.clone(),
                    reason: n.reason.clone(),
                })
                .collect(),
        }
    }
}

/// A reconciliation run, its totals and its discrepancies.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Reconciliation)]
pub struct ReconciliationView {
    pub id: String,
    #[schema(value_type = String, pattern = "^reconciliation$")]
    pub object: &'static str,
    pub account: String,
    /// `YYYY-MM-DD`, the provider's (Beijing) day.
    pub date: String,
    /// `queued`, `running`, `completed` or `failed`.
    pub state: String,
    /// Bill rows read so far.
    pub rows_read: i64,
    /// Bill rows that found their local payment or refund (known once matched).
    pub rows_matched: i64,
    /// SHA-256 (hex) of the bill the run read.
    pub bill_sha256: Option<String>,
    /// Bill rows, payments, refunds and fees (fen); local counts and sums; matched;
    /// discrepancies by kind; healed, heal_failed, open.
    #[schema(value_type = Object)]
    pub totals: Value,
    pub error: Option<String>,
    pub created_at: i64,
    /// When its job began (the creation time while queued).
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub discrepancies: Vec<DiscrepancyView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Discrepancy)]
pub struct DiscrepancyView {
    pub id: String,
    /// `missing_locally`, `missing_at_provider`, `amount_mismatch`, `status_mismatch`.
    pub kind: String,
    /// `payment` or `refund`.
    pub entity: String,
    pub out_trade_no: String,
    pub out_refund_no: Option<String>,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub provider_trade_no: Option<String>,
    pub bill_amount: Option<i64>,
    pub local_amount: Option<i64>,
    pub bill_status: Option<String>,
    pub local_status: Option<String>,
    pub healable: bool,
    /// `open`, `healed` or `heal_failed`.
    pub resolution: String,
    pub detail: Option<String>,
}

impl From<&crate::service::Reconciliation> for ReconciliationView {
    fn from(r: &crate::service::Reconciliation) -> Self {
        let run = &r.run;
        ReconciliationView {
            id: run.id.clone(),
            object: "reconciliation",
            account: run.account.clone(),
            date: run.bill_date.clone(),
            state: run.state.clone(),
            rows_read: run.rows_read,
            rows_matched: run.rows_matched,
            bill_sha256: run.bill_sha256.clone(),
            totals: run.totals.clone(),
            error: run.error.clone(),
            created_at: run.created_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            discrepancies: r
                .discrepancies
                .iter()
                .map(|rec| {
                    let d = &rec.discrepancy;
                    DiscrepancyView {
                        id: rec.id.clone(),
                        kind: d.kind.clone(),
                        entity: d.entity.clone(),
                        out_trade_no: d.out_trade_no.clone(),
                        out_refund_no: d.out_refund_no.clone(),
                        payment_id: d.payment_id.clone(),
                        refund_id: d.refund_id.clone(),
                        provider_trade_no: d.provider_trade_no.clone(),
                        bill_amount: d.bill_amount.map(|f| f.0),
                        local_amount: d.local_amount.map(|f| f.0),
                        bill_status: d.bill_status.clone(),
                        local_status: d.local_status.clone(),
                        healable: d.healable,
                        resolution: rec.resolution.clone(),
                        detail: rec.detail.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// `{"status": "ok"}`: the process is alive and serving (the database is not asked).
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// What `/readyz` checked: `status` is `ready` when every check passed, else `not_ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    pub status: String,
    pub checks: Vec<ReadinessCheck>,
}

/// One readiness check: `database`, `migrations`, or `workers:<pool>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadinessCheck {
    pub name: String,
    pub ok: bool,
    /// Why it failed, or `disabled` for workers this process does not run (`[jobs] enabled =
    /// false`); `null` when it passed.
    pub detail: Option<String>,
}
