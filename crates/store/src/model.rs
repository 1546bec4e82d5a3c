//! Types shared by several tables, the cursor codec, and the in-transaction writers of events
//! and audit rows used by every state transition.

use std::str::FromStr;

use serde_json::Value;

use crate::error::{Result, StoreError};

/// Who changed a state and why; written to the audit log by the transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// `api:<key id>`, `notify:<notification id>`, `job:<job id>`, `reconcile:<day>`...
    pub actor: String,
    pub reason: String,
}

impl Audit {
    pub fn new(actor: impl Into<String>, reason: impl Into<String>) -> Self {
        Audit {
            actor: actor.into(),
            reason: reason.into(),
        }
    }
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: String,
    /// `payment` or `refund`.
    pub entity: String,
    pub entity_id: String,
    pub from_status: Option<String>,
    pub to_status: String,
    /// The entity's version after the change.
    pub version: i64,
    pub actor: String,
    pub reason: String,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    id: String,
    entity: String,
    entity_id: String,
    from_status: Option<String>,
    to_status: String,
    version: i64,
    actor: String,
    reason: String,
    created_at: i64,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            entity: r.entity,
            entity_id: r.entity_id,
            from_status: r.from_status,
            to_status: r.to_status,
            version: r.version,
            actor: r.actor,
            reason: r.reason,
            created_at: r.created_at,
        }
    }
}

/// An event for the outbox, written in the transaction of the change it reports. Mode, account
/// and the payment/refund ids are taken from the changed row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewEvent {
    /// `payment.paid`, `payment.closed`, `refund.succeeded`...
    pub kind: String,
    /// The `data` the merchant receives.
    pub payload: Value,
    /// Webhook endpoints to deliver to; one pending delivery row is created per endpoint.
    pub endpoints: Vec<String>,
}

impl NewEvent {
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        NewEvent {
            kind: kind.into(),
            payload,
            endpoints: Vec::new(),
        }
    }

    /// Also deliver the event to these webhook endpoints.
    pub fn deliver_to(mut self, endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.endpoints = endpoints.into_iter().map(Into::into).collect();
        self
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `after` for the next page; `None` when this is the last page.
    pub next_cursor: Option<String>,
}

pub(crate) const AUDIT_COLS: &str =
    "id, entity, entity_id, from_status, to_status, version, actor, reason, created_at";

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log \
     (id, entity, entity_id, from_status, to_status, version, actor, reason, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO events \
     (id, mode, account, type, payment_id, refund_id, payload, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (id, event_id, endpoint, status, attempts, next_attempt_at, created_at, updated_at) \
     VALUES ($1, $2, $3, 'pending', 0, $4, $4, $4)";

/// Writes an audit row inside the transaction `$tx`.
macro_rules! insert_audit {
    ($tx:expr, $entity:expr, $entity_id:expr, $from:expr, $to:expr, $version:expr, $audit:expr, $now:expr) => {
        sqlx::query($crate::model::INSERT_AUDIT)
            .bind($crate::new_id("aud"))
            .bind($entity)
            .bind($entity_id)
            .bind($from)
            .bind($to)
            .bind($version)
            .bind(&$audit.actor)
            .bind(&$audit.reason)
            .bind($now)
            .execute(&mut *$tx)
            .await?
    };
}
pub(crate) use insert_audit;

/// Writes an outbox event and its delivery rows inside the transaction `$tx`.
macro_rules! insert_event {
    ($tx:expr, $event:expr, $mode:expr, $account:expr, $payment_id:expr, $refund_id:expr, $now:expr) => {{
        let event: $crate::model::NewEvent = $event;
        let event_id = $crate::new_id("evt");
        sqlx::query($crate::model::INSERT_EVENT)
            .bind(&event_id)
            .bind($mode)
            .bind($account)
            .bind(&event.kind)
            .bind($payment_id)
            .bind($refund_id)
            .bind(sqlx::types::Json(&event.payload))
            .bind($now)
            .execute(&mut *$tx)
            .await?;
        for endpoint in &event.endpoints {
            sqlx::query($crate::model::INSERT_DELIVERY)
                .bind($crate::new_id("whd"))
                .bind(&event_id)
                .bind(endpoint)
                .bind($now)
                .execute(&mut *$tx)
                .await?;
        }
    }};
}
pub(crate) use insert_event;

/// Parses a stored enum string, reporting foreign values as corruption instead of panicking.
pub(crate) fn parse<T: FromStr>(what: &'static str, value: &str) -> Result<T> {
    value.parse().map_err(|_| StoreError::Corrupt {
        what,
        value: value.to_string(),
    })
}

pub(crate) fn parse_opt<T: FromStr>(what: &'static str, value: Option<&str>) -> Result<Option<T>> {
    value.map(|v| parse(what, v)).transpose()
}

/// Opaque keyset cursor: hex of `<number>:<number or id>`.
pub(crate) fn encode_cursor(a: i64, b: &str) -> String {
    hex::encode(format!("{a}:{b}"))
}

pub(crate) fn decode_cursor(cursor: &str) -> Result<(i64, String)> {
    let raw = hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    let text = String::from_utf8(raw).map_err(|_| StoreError::InvalidCursor)?;
    let (a, b) = text.split_once(':').ok_or(StoreError::InvalidCursor)?;
    let a = a.parse().map_err(|_| StoreError::InvalidCursor)?;
    Ok((a, b.to_string()))
}

/// Clamps a caller's page size to 1..=1000.
pub(crate) fn clamp_limit(limit: u32) -> i64 {
    i64::from(limit.clamp(1, 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_garbage() {
        let c = encode_cursor(1_700_000_000_000, "pay_01");
        assert_eq!(
            decode_cursor(&c).ok(),
            Some((1_700_000_000_000, "pay_01".into()))
        );
        for bad in ["", "zz", "00", &hex::encode("x:1")] {
            assert!(
                matches!(decode_cursor(bad), Err(StoreError::InvalidCursor)),
                "{bad}"
            );
        }
    }
}
