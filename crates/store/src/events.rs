//! The transactional outbox: events (the merchant's pull feed) and webhook deliveries (the push
//! side, claimed with leases so several instances never send the same attempt twice at once).

use paybridge_core::Mode;
use serde_json::Value;
use sqlx::types::Json;

use crate::db::{with_pool, Dialect};
use crate::error::{Result, StoreError};
use crate::model::{clamp_limit, decode_cursor, encode_cursor, parse};
use crate::Store;

/// An outbox event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Unique event id (`evt_…`) merchants deduplicate on.
    pub id: String,
    pub mode: Mode,
    pub account: String,
    /// `payment.paid`, `refund.succeeded`...
    pub kind: String,
    pub payment_id: Option<String>,
    pub refund_id: Option<String>,
    pub payload: Value,
    pub created_at: i64,
}

/// A page of the events feed.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Where to continue from: the last event's cursor, or the `after` given when the page is
    /// empty (poll again with it later).
    pub cursor: Option<String>,
    /// More events are available right now.
    pub has_more: bool,
}

/// Delivery state of one event to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    /// Given up after the retry schedule ran out (redeliverable by hand).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl std::str::FromStr for DeliveryStatus {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err(()),
        }
    }
}

/// One event's delivery to one webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: String,
    pub event_id: String,
    pub endpoint: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub next_attempt_at: i64,
    /// Set while an instance holds the delivery; expired leases are claimable again.
    pub lease_until: Option<i64>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub delivered_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Which endpoints' deliveries a claim takes.
#[derive(Debug, Clone, Copy)]
pub enum EndpointFilter<'a> {
    Any,
    Only(&'a str),
    NoneOf(&'a [&'a str]),
}

/// A claimed delivery and the event it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub delivery: WebhookDelivery,
    pub event: Event,
}

/// What happened on one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub now: i64,
    /// The endpoint's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Transport error or a short description of a bad answer.
    pub error: Option<String>,
    pub outcome: DeliveryOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at this time (the caller owns the backoff schedule).
    RetryAt(i64),
    /// Stop retrying; the delivery becomes `failed`.
    GiveUp,
}

const EVENT_COLS: &str =
    "id, mode, account, type, payment_id, refund_id, payload, created_at, feed_seq";

/// Advisory lock key serializing feed publication on PostgreSQL ("pbfeed" in ASCII).
const FEED_LOCK: i64 = 0x7062_6665_6564;

/// Numbers every committed, unpublished event after the highest published position, in
/// insertion order. Runs under the feed lock, so positions only ever grow in publication order.
const PUBLISH_FEED: &str = "WITH pending AS (SELECT id, ROW_NUMBER() OVER (ORDER BY seq) AS rn \
     FROM events WHERE feed_seq IS NULL), \
     base AS (SELECT COALESCE(MAX(feed_seq), 0) AS top FROM events) \
     UPDATE events SET feed_seq = (SELECT top FROM base) + pending.rn \
     FROM pending WHERE events.id = pending.id";

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    mode: String,
    account: String,
    #[sqlx(rename = "type")]
    kind: String,
    payment_id: Option<String>,
    refund_id: Option<String>,
    payload: Json<Value>,
    created_at: i64,
    feed_seq: Option<i64>,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;
    fn try_from(r: EventRow) -> Result<Event> {
        Ok(Event {
            mode: parse("event mode", &r.mode)?,
            id: r.id,
            account: r.account,
            kind: r.kind,
            payment_id: r.payment_id,
            refund_id: r.refund_id,
            payload: r.payload.0,
            created_at: r.created_at,
        })
    }
}

const DELIVERY_COLS: &str = "id, event_id, endpoint, status, attempts, next_attempt_at, \
    lease_until, last_status_code, last_error, delivered_at, created_at, updated_at";

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: String,
    event_id: String,
    endpoint: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    lease_until: Option<i64>,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<DeliveryRow> for WebhookDelivery {
    type Error = StoreError;
    fn try_from(r: DeliveryRow) -> Result<WebhookDelivery> {
        Ok(WebhookDelivery {
            status: parse("delivery status", &r.status)?,
            id: r.id,
            event_id: r.event_id,
            endpoint: r.endpoint,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            lease_until: r.lease_until,
            last_status_code: r.last_status_code,
            last_error: r.last_error,
            delivered_at: r.delivered_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Store {
    /// The event with this id (`evt_…`), if any.
    pub async fn get_event(&self, id: &str) -> Result<Option<Event>> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1");
        let row: Option<EventRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        });
        row.map(Event::try_from).transpose()
    }

    /// The merchant's pull feed: events of `mode` (and `account` when given) after the cursor,
    /// in feed order, at most `limit` (1..=1000).
    ///
    /// Feed positions are assigned to committed events by one publisher at a time (this call,
    /// under a lock), so an event committed late can never appear behind a cursor that already
    /// passed its position, even with several instances writing concurrently.
    pub async fn list_events(
        &self,
        after: Option<&str>,
        limit: u32,
        mode: Mode,
        account: Option<&str>,
    ) -> Result<EventPage> {
        let limit = clamp_limit(limit);
        let position = match after {
            Some(c) => {
                let (position, tag) = decode_cursor(c)?;
                if tag != "feed" {
                    return Err(StoreError::InvalidCursor);
                }
                position
            }
            None => 0,
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE feed_seq > $1 AND mode = $2 \
             AND ($3 IS NULL OR account = $3) ORDER BY feed_seq LIMIT $4"
        );
        let rows: Vec<EventRow> = with_pool!(self, |pool, d| {
            let unpublished: Option<(i64,)> =
                sqlx::query_as("SELECT seq FROM events WHERE feed_seq IS NULL LIMIT 1")
                    .fetch_optional(pool)
                    .await?;
            if unpublished.is_some() {
                let mut tx = pool.begin_with(d.begin_sql()).await?;
                if d == Dialect::Postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock($1)")
                        .bind(FEED_LOCK)
                        .execute(&mut *tx)
                        .await?;
                }
                sqlx::query(PUBLISH_FEED).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            sqlx::query_as(&sql)
                .bind(position)
                .bind(mode.as_str())
                .bind(account)
                .bind(limit + 1)
                .fetch_all(pool)
                .await?
        });
        let has_more = rows.len() as i64 > limit;
        let mut cursor = after.map(str::to_string);
        let mut events = Vec::with_capacity(rows.len());
        for row in rows
            .into_iter()
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
        {
            if let Some(position) = row.feed_seq {
                cursor = Some(encode_cursor(position, "feed"));
            }
            events.push(Event::try_from(row)?);
        }
        Ok(EventPage {
            events,
            cursor,
            has_more,
        })
    }

    /// The newest events of a mode, newest first, optionally only those with a delivery that is
    /// not delivered (pending retry or given up): the console's event and webhook pages.
    pub async fn list_recent_events(
        &self,
        mode: Mode,
        undelivered_only: bool,
        limit: u32,
    ) -> Result<Vec<Event>> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events e WHERE mode = $1 AND ($2 = FALSE OR EXISTS \
             (SELECT 1 FROM webhook_deliveries w WHERE w.event_id = e.id AND w.status <> $3)) \
             ORDER BY seq DESC LIMIT $4"
        );
        let rows: Vec<EventRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(mode.as_str())
                .bind(undelivered_only)
                .bind(DeliveryStatus::Delivered.as_str())
                .bind(clamp_limit(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Event::try_from).collect()
    }

    /// Every event of a payment (its own and its refunds'), oldest first.
    pub async fn list_payment_events(&self, payment_id: &str) -> Result<Vec<Event>> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE payment_id = $1 ORDER BY seq");
        let rows: Vec<EventRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(payment_id)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Event::try_from).collect()
    }

    /// Claims up to `limit` pending deliveries due at `now`, leasing them until `now + lease_ms`.
    /// Safe across instances: PostgreSQL claims with `FOR UPDATE SKIP LOCKED` (in a
    /// materialized CTE, so the candidate set is computed exactly once), SQLite under its single
    /// write lock; a delivery whose lease expired (its instance died) is claimable again.
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<DueDelivery>> {
        self.claim_due_deliveries_of(now, limit, lease_ms, EndpointFilter::Any)
            .await
    }

    /// [`Store::claim_due_deliveries`] of some endpoints only: one endpoint (a worker claims
    /// for each endpoint just what that endpoint's free slots can run, so a slow endpoint's
    /// backlog never takes the slots of the others and nothing claimed waits), or every
    /// endpoint but those listed (deliveries to endpoints no longer configured). The events
    /// come with one query.
    pub async fn claim_due_deliveries_of(
        &self,
        now: i64,
        limit: u32,
        lease_ms: i64,
        endpoints: EndpointFilter<'_>,
    ) -> Result<Vec<DueDelivery>> {
        let (filter, binds): (String, Vec<&str>) = match endpoints {
            EndpointFilter::Any | EndpointFilter::NoneOf([]) => (String::new(), Vec::new()),
            EndpointFilter::Only(one) => ("AND endpoint = $4 ".to_string(), vec![one]),
            EndpointFilter::NoneOf(list) => {
                let marks: Vec<String> = (0..list.len()).map(|i| format!("${}", i + 4)).collect();
                (
                    format!("AND endpoint NOT IN ({}) ", marks.join(", ")),
                    list.to_vec(),
                )
            }
        };
        let rows: Vec<DeliveryRow> = with_pool!(self, |pool, d| {
            let sql = format!(
                "WITH picked AS MATERIALIZED (SELECT id AS picked_id FROM webhook_deliveries \
                   WHERE status = 'pending' AND next_attempt_at <= $1 \
                   AND (lease_until IS NULL OR lease_until <= $1) {filter}\
                   ORDER BY next_attempt_at, id LIMIT $3{}) \
                 UPDATE webhook_deliveries SET lease_until = $1 + $2, updated_at = $1 \
                 FROM picked WHERE webhook_deliveries.id = picked.picked_id \
                 RETURNING {DELIVERY_COLS}",
                d.skip_locked()
            );
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let mut q = sqlx::query_as(&sql)
                .bind(now)
                .bind(lease_ms)
                .bind(clamp_limit(limit));
            for e in &binds {
                q = q.bind(*e);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            tx.commit().await?;
            rows
        });
        let deliveries = rows
            .into_iter()
            .map(WebhookDelivery::try_from)
            .collect::<Result<Vec<_>>>()?;
        let events = self
            .events_by_id(deliveries.iter().map(|d| d.event_id.as_str()))
            .await?;
        let mut out = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            // One event may have a delivery to each endpoint: cloned, not moved.
            let event =
                events
                    .get(&delivery.event_id)
                    .cloned()
                    .ok_or_else(|| StoreError::NotFound {
                        what: "event",
                        id: delivery.event_id.clone(),
                    })?;
            out.push(DueDelivery { delivery, event });
        }
        out.sort_by(|a, b| {
            (a.delivery.next_attempt_at, &a.delivery.id)
                .cmp(&(b.delivery.next_attempt_at, &b.delivery.id))
        });
        Ok(out)
    }

    /// The events with these ids, by id (one statement).
    async fn events_by_id<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> Result<std::collections::HashMap<String, Event>> {
        let mut ids: Vec<&str> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE id IN ({})",
            marks.join(", ")
        );
        let rows: Vec<EventRow> = with_pool!(self, |pool, d| {
            let mut q = sqlx::query_as(&sql);
            for id in &ids {
                q = q.bind(*id);
            }
            q.fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|r| Event::try_from(r).map(|e| (e.id.clone(), e)))
            .collect()
    }

    /// Gives back a claimed delivery untried (its endpoint had no free slot), so any worker
    /// may take it at once.
    pub async fn release_delivery(&self, delivery_id: &str) -> Result<()> {
        let now = self.now_ms();
        with_pool!(self, |pool, _d| {
            sqlx::query(
                "UPDATE webhook_deliveries SET lease_until = NULL, updated_at = $1 \
                 WHERE id = $2 AND status = 'pending'",
            )
            .bind(now)
            .bind(delivery_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(())
    }

    /// Records one attempt on a pending delivery and releases its lease. Returns the updated
    /// delivery, or `None` if it is no longer pending (already delivered or given up).
    pub async fn record_delivery_attempt(
        &self,
        delivery_id: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<Option<WebhookDelivery>> {
        let (status, next_at, delivered_at) = match attempt.outcome {
            DeliveryOutcome::Delivered => (DeliveryStatus::Delivered, None, Some(attempt.now)),
            DeliveryOutcome::RetryAt(at) => (DeliveryStatus::Pending, Some(at), None),
            DeliveryOutcome::GiveUp => (DeliveryStatus::Failed, None, None),
        };
        let sql = format!(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $1, \
             next_attempt_at = COALESCE($2, next_attempt_at), lease_until = NULL, \
             last_status_code = $3, last_error = $4, delivered_at = COALESCE($5, delivered_at), \
             updated_at = $6 WHERE id = $7 AND status = 'pending' RETURNING {DELIVERY_COLS}"
        );
        let row: Option<DeliveryRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql)
                .bind(status.as_str())
                .bind(next_at)
                .bind(attempt.status_code.map(i64::from))
                .bind(&attempt.error)
                .bind(delivered_at)
                .bind(attempt.now)
                .bind(delivery_id)
                .fetch_optional(pool)
                .await?
        });
        row.map(WebhookDelivery::try_from).transpose()
    }

    /// Queues an event again: every existing delivery of it and one per `endpoints` entry
    /// (created if missing) becomes pending and due at `now`. Returns how many deliveries are
    /// now pending for it; [`StoreError::NotFound`] if the event does not exist.
    pub async fn redeliver(&self, event_id: &str, endpoints: &[String], now: i64) -> Result<u64> {
        let reset = "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, \
                     lease_until = NULL, updated_at = $1 WHERE event_id = $2";
        let upsert = "INSERT INTO webhook_deliveries (id, event_id, endpoint, status, attempts, \
                      next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, 'pending', 0, \
                      $4, $4, $4) ON CONFLICT (event_id, endpoint) DO NOTHING";
        with_pool!(self, |pool, d| {
            let mut tx = pool.begin_with(d.begin_sql()).await?;
            let (exists,): (i64,) =
                sqlx::query_as("SELECT CAST(COUNT(*) AS BIGINT) FROM events WHERE id = $1")
                    .bind(event_id)
                    .fetch_one(&mut *tx)
                    .await?;
            if exists == 0 {
                return Err(StoreError::NotFound {
                    what: "event",
                    id: event_id.to_string(),
                });
            }
            let mut count = sqlx::query(reset)
                .bind(now)
                .bind(event_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            for endpoint in endpoints {
                count += sqlx::query(upsert)
                    .bind(crate::new_id("whd"))
                    .bind(event_id)
                    .bind(endpoint)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            }
            tx.commit().await?;
            Ok(count)
        })
    }

    /// The deliveries of one event.
    pub async fn list_deliveries(&self, event_id: &str) -> Result<Vec<WebhookDelivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE event_id = $1 ORDER BY endpoint"
        );
        let rows: Vec<DeliveryRow> = with_pool!(self, |pool, d| {
            sqlx::query_as(&sql).bind(event_id).fetch_all(pool).await?
        });
        rows.into_iter().map(WebhookDelivery::try_from).collect()
    }
}
