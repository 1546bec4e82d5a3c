//! Sending an event to the webhook endpoints again, for a merchant (`POST
//! /v1/events/{id}/redeliver`) or an operator: one place, so both are scoped and audited alike.

use paybridge_store::Event;

use super::caller::Caller;
use super::error::ServiceError;
use super::Gateway;

impl Gateway {
    /// Queues a new delivery of the caller's event to every endpoint of its mode and wakes the
    /// delivery worker; the redelivery is in the audit log with who asked. Returns the event and
    /// how many deliveries were queued.
    pub async fn redeliver(
        &self,
        caller: &dyn Caller,
        event_id: &str,
    ) -> Result<(Event, u64), ServiceError> {
        let event = self
            .store
            .get_event(event_id)
            .await?
            .filter(|e| e.mode == caller.mode())
            .ok_or(ServiceError::NotFound("event"))?;
        let n = self
            .store
            .redeliver(&event.id, &self.endpoints_for(event.mode), self.now_ms())
            .await?;
        self.outbox_signal.notify_one();
        self.store
            .record_action(
                &caller.audit("redelivery requested"),
                "event",
                &event.id,
                "redelivered",
            )
            .await?;
        Ok((event, n))
    }
}
