//! Outgoing webhooks: the signature merchants verify, and the retry schedule.
//!
//! Header: `Paybridge-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//! Several `v1=` entries may appear (secret rotation); any one matching is enough. The timestamp
//! is signed so a captured delivery cannot be replayed outside the tolerance window.

use paybridge_crypto::{constant_time_eq, hmac_sha256};

pub const SIGNATURE_HEADER: &str = "Paybridge-Signature";

/// Attempts after the first delivery, in seconds from the previous attempt. The total spans a bit
/// over three days (like Stripe's), so a merchant outage over a long weekend loses nothing.
pub const RETRY_SCHEDULE: &[i64] = &[
    60,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
];

/// When the attempt after `attempts_made` failures should run, or `None` to give up.
pub fn next_attempt_delay(attempts_made: u32) -> Option<i64> {
    let idx = usize::try_from(attempts_made).ok()?.checked_sub(1)?;
    RETRY_SCHEDULE.get(idx).copied()
}

pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let mut msg = Vec::with_capacity(body.len() + 12);
    msg.extend_from_slice(timestamp.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(hmac_sha256(secret, &msg))
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signature header is malformed")]
    Malformed,
    #[error("timestamp {timestamp} is outside the {tolerance}s tolerance (now {now})")]
    OutsideTolerance {
        timestamp: i64,
        now: i64,
        tolerance: i64,
    },
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Verifies a `Paybridge-Signature` header against the raw body, at time `now`.
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_seconds: i64,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            "v1" => candidates.push(v),
            // Unknown schemes are skipped so new ones can be added without breaking receivers.
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > tolerance_seconds.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance {
            timestamp,
            now,
            tolerance: tolerance_seconds,
        });
    }
    let expected = sign(secret, timestamp, body);
    let expected_hex = expected.rsplit("v1=").next().unwrap_or_default();
    if candidates
        .iter()
        .any(|c| constant_time_eq(c.as_bytes(), expected_hex.as_bytes()))
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Lease on a claimed delivery: longer than the HTTP timeout, so a live worker keeps it.
pub const DELIVERY_LEASE_MS: i64 = 60_000;

impl crate::service::Gateway {
    /// Claims the deliveries due at `now`, POSTs each signed event, records the attempt.
    /// Returns how many were attempted.
    pub async fn deliver_webhooks_once(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<usize, crate::service::ServiceError> {
        let due = self
            .store
            .claim_due_deliveries(now, limit, DELIVERY_LEASE_MS)
            .await?;
        let count = due.len();
        for item in due {
            self.deliver_one(item).await?;
        }
        Ok(count)
    }

    /// POSTs one claimed delivery's signed event and records the attempt (releasing the lease),
    /// in the delivery's span; each attempt is logged and counted.
    pub async fn deliver_one(
        &self,
        item: paybridge_store::DueDelivery,
    ) -> Result<(), crate::service::ServiceError> {
        let span = crate::observe::delivery_span(&item);
        tracing::Instrument::instrument(self.deliver_in_span(item), span).await
    }

    async fn deliver_in_span(
        &self,
        item: paybridge_store::DueDelivery,
    ) -> Result<(), crate::service::ServiceError> {
        use paybridge_store::{DeliveryAttempt, DeliveryOutcome};
        let started = std::time::Instant::now();
        let endpoint = self
            .endpoints
            .iter()
            .find(|e| e.id == item.delivery.endpoint);
        let attempt_no = u32::try_from(item.delivery.attempts + 1).unwrap_or(u32::MAX);
        let (status_code, error) = match endpoint {
            None => (
                None,
                Some(format!(
                    "endpoint {} is no longer configured",
                    item.delivery.endpoint
                )),
            ),
            Some(ep) => {
                let body = crate::service::views::event(&item.event).to_string();
                let t = self.now_ms().div_euclid(1000);
                let signature = sign(ep.secret.expose().as_bytes(), t, body.as_bytes());
                let sent = self
                    .http
                    .post(&ep.url)
                    .header("content-type", "application/json")
                    .header(SIGNATURE_HEADER, signature)
                    .header("Paybridge-Event-Id", &item.event.id)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), None),
                    Ok(r) => (
                        Some(r.status().as_u16()),
                        Some(format!("HTTP {}", r.status().as_u16())),
                    ),
                    Err(e) => (None, Some(e.to_string())),
                }
            }
        };
        let now = self.now_ms();
        let outcome = match (&error, endpoint) {
            (None, _) => DeliveryOutcome::Delivered,
            (Some(_), None) => DeliveryOutcome::GiveUp,
            (Some(_), Some(_)) => match next_attempt_delay(attempt_no) {
                Some(delay) => DeliveryOutcome::RetryAt(now + delay * 1000),
                None => DeliveryOutcome::GiveUp,
            },
        };
        let elapsed = started.elapsed();
        let latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        let label = match outcome {
            DeliveryOutcome::Delivered => "delivered",
            DeliveryOutcome::RetryAt(_) => "retry",
            DeliveryOutcome::GiveUp => "gave_up",
        };
        crate::observe::webhook_attempt(
            &crate::observe::endpoint_label(self, &item.delivery.endpoint),
            label,
            elapsed,
        );
        match (&error, outcome) {
            (None, _) => tracing::info!(status = status_code, latency_ms, "webhook delivered"),
            (Some(err), DeliveryOutcome::RetryAt(at)) => tracing::warn!(
                status = status_code,
                latency_ms,
                error = %err,
                retry_in_ms = at - now,
                "webhook delivery failed; will retry"
            ),
            (Some(err), _) => tracing::error!(
                status = status_code,
                latency_ms,
                error = %err,
                "webhook delivery failed; giving up"
            ),
        }
        self.store
            .record_delivery_attempt(
                &item.delivery.id,
                &DeliveryAttempt {
                    now,
                    status_code,
                    error,
                    outcome,
                },
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_tamper() {
        let body = br#"{"id":"evt_1","type":"payment.paid"}"#;
        let h = sign(b"whsec_test", 1_700_000_000, body);
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify(b"whsec_test", &h, body, 1_700_000_100, 300), Ok(()));
        assert_eq!(
            verify(b"whsec_test", &h, b"{}", 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", &h, body, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify(b"whsec_test", &h, body, 1_700_000_301, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            verify(b"whsec_test", &h, body, 1_699_999_699, 300),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }

    #[test]
    fn rotation_and_malformed_headers() {
        let body = b"x";
        let good = sign(b"new", 10, body);
        let v1 = good.split("v1=").nth(1).unwrap();
        let rotated = format!("t=10,v1={},v1={v1},v0=zz", "0".repeat(64));
        assert_eq!(verify(b"new", &rotated, body, 10, 300), Ok(()));
        for bad in ["", "t=10", "v1=ab", "t=x,v1=ab", "garbage", "t=10;v1=ab"] {
            assert_eq!(
                verify(b"new", bad, body, 10, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn retry_schedule_spans_three_days() {
        let total: i64 = RETRY_SCHEDULE.iter().sum();
        assert!(total >= 3 * 86400, "{total}");
        assert_eq!(next_attempt_delay(1), Some(60));
        assert_eq!(next_attempt_delay(0), None);
        assert_eq!(
            next_attempt_delay(u32::try_from(RETRY_SCHEDULE.len()).unwrap() + 1),
            None
        );
    }
}
