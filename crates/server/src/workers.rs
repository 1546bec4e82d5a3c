//! The background workers: one pool per queue (webhook deliveries, jobs, reconciliation), each
//! claiming only as much as it has free slots for and running it concurrently, so one slow
//! merchant endpoint or provider call delays only itself. Jobs renew their leases while they run
//! (see [`Gateway::run_claimed_job`]); shutdown stops claiming and lets what runs finish.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paybridge_store::{EndpointFilter, KindFilter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::service::jobs::{GENERAL_QUEUE, RECONCILE_QUEUE};
use crate::service::Gateway;
use crate::webhook::DELIVERY_LEASE_MS;

/// The pools whose heartbeats `/readyz` checks: each beats once per round of its loop, which
/// is at least once per poll interval.
pub const POOLS: [&str; 3] = ["jobs", "reconciliations", "webhooks"];

/// How much each pool runs at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLimits {
    /// How often each pool looks for due work when nothing wakes it.
    pub poll: Duration,
    /// Jobs (queries, expiries, refunds, recoveries...) in flight per instance.
    pub jobs: usize,
    /// Reconciliations (daily, or asked for) in flight per instance (each downloads and walks a
    /// whole bill).
    pub reconciliations: usize,
    /// Webhook deliveries in flight per instance...
    pub deliveries: usize,
    /// ...and per endpoint, so a hanging endpoint holds at most this many.
    pub deliveries_per_endpoint: usize,
}

impl Default for WorkerLimits {
    fn default() -> Self {
        WorkerLimits {
            poll: Duration::from_millis(1000),
            jobs: 16,
            reconciliations: 1,
            deliveries: 32,
            deliveries_per_endpoint: 4,
        }
    }
}

/// The running pools. [`Workers::shutdown`] stops them gracefully; dropping the handle aborts
/// them at once (what they held is then released by its lease).
pub struct Workers {
    cancel: CancellationToken,
    pools: JoinSet<()>,
}

impl Workers {
    pub fn spawn(gw: Arc<Gateway>, limits: WorkerLimits) -> Workers {
        let cancel = CancellationToken::new();
        let mut pools = JoinSet::new();
        pools.spawn(key_refresh(gw.clone(), cancel.clone()));
        pools.spawn(job_pool(
            gw.clone(),
            "jobs",
            GENERAL_QUEUE,
            limits.jobs,
            limits.poll,
            cancel.clone(),
        ));
        pools.spawn(job_pool(
            gw.clone(),
            "reconciliations",
            RECONCILE_QUEUE,
            limits.reconciliations,
            limits.poll,
            cancel.clone(),
        ));
        pools.spawn(delivery_pool(gw, limits, cancel.clone()));
        Workers { cancel, pools }
    }

    /// Stops claiming and waits for the work in flight to finish (each piece is bounded by
    /// its own provider or HTTP timeouts); what is left unfinished is released by its lease.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        while self.pools.join_next().await.is_some() {}
    }
}

/// How often the channels are asked whether their keys are due for a refresh (each channel
/// decides; WeChat Pay platform certificates refresh every 12 hours).
const KEY_REFRESH_CHECK: Duration = Duration::from_secs(300);

async fn key_refresh(gw: Arc<Gateway>, cancel: CancellationToken) {
    loop {
        gw.refresh_channel_keys().await;
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(KEY_REFRESH_CHECK) => {}
        }
    }
}

/// Waits for the next reason to look for work: a slot freed, a signal, the poll interval.
async fn idle<T: 'static>(
    running: &mut JoinSet<T>,
    signal: Option<&tokio::sync::Notify>,
    poll: Duration,
    cancel: &CancellationToken,
) -> bool {
    let wake = async {
        match signal {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => false,
        Some(_) = running.join_next(), if !running.is_empty() => true,
        _ = wake => true,
        _ = tokio::time::sleep(poll) => true,
    }
}

async fn job_pool(
    gw: Arc<Gateway>,
    name: &'static str,
    filter: KindFilter<'static>,
    slots: usize,
    poll: Duration,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(slots.max(1)));
    let mut running = JoinSet::new();
    if filter == GENERAL_QUEUE {
        if let Err(e) = gw.ensure_recurring_jobs().await {
            tracing::error!(error = %e, "cannot schedule the recurring jobs");
        }
    }
    loop {
        gw.observe.beat(name);
        let free = u32::try_from(slots.available_permits()).unwrap_or(u32::MAX);
        if free > 0 {
            match gw
                .store
                .claim_jobs_of(&gw.instance, gw.now_ms(), free, gw.job_lease_ms, filter)
                .await
            {
                Ok(jobs) => {
                    for job in jobs {
                        let Ok(permit) = slots.clone().try_acquire_owned() else {
                            break;
                        };
                        let gw = gw.clone();
                        running.spawn(async move {
                            gw.run_claimed_job(job).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot claim jobs"),
            }
        }
        if !idle(&mut running, None, poll, &cancel).await {
            break;
        }
    }
    gw.observe.stopped(name);
    while running.join_next().await.is_some() {}
}

/// Per-endpoint slots, made on first use.
struct EndpointSlots {
    per_endpoint: usize,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl EndpointSlots {
    fn of(&self, endpoint: &str) -> Arc<Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(endpoint.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_endpoint.max(1))))
            .clone()
    }
}

async fn delivery_pool(gw: Arc<Gateway>, limits: WorkerLimits, cancel: CancellationToken) {
    let slots = Arc::new(Semaphore::new(limits.deliveries.max(1)));
    let endpoints = EndpointSlots {
        per_endpoint: limits.deliveries_per_endpoint,
        slots: Mutex::new(HashMap::new()),
    };
    let mut running: JoinSet<()> = JoinSet::new();
    let configured: Vec<String> = gw.endpoints.iter().map(|e| e.id.clone()).collect();
    let configured_ids: Vec<&str> = configured.iter().map(String::as_str).collect();
    let mut orphans_due = tokio::time::Instant::now();
    loop {
        gw.observe.beat("webhooks");
        // Each endpoint claims what its own free slots can run, then (once a poll interval:
        // they are rare) the deliveries to endpoints no longer configured, given up at once.
        // Nothing claimed has to wait or be handed back, and a hanging endpoint's backlog is
        // never claimed at all.
        let orphans = tokio::time::Instant::now() >= orphans_due;
        if orphans {
            orphans_due = tokio::time::Instant::now() + limits.poll;
        }
        let lanes = configured_ids
            .iter()
            .map(|id| Some(*id))
            .chain(orphans.then_some(None));
        for lane in lanes {
            let free = slots.available_permits();
            if free == 0 {
                break;
            }
            let (want, filter) = match lane {
                Some(id) => (
                    endpoints.of(id).available_permits().min(free),
                    EndpointFilter::Only(id),
                ),
                None => (free, EndpointFilter::NoneOf(&configured_ids)),
            };
            if want == 0 {
                continue;
            }
            let want = u32::try_from(want).unwrap_or(u32::MAX);
            match gw
                .store
                .claim_due_deliveries_of(gw.now_ms(), want, DELIVERY_LEASE_MS, filter)
                .await
            {
                Ok(due) => {
                    for item in due {
                        let permits = slots.clone().try_acquire_owned().ok().and_then(|p| {
                            let e = endpoints.of(&item.delivery.endpoint).try_acquire_owned();
                            e.ok().map(|e| (p, e))
                        });
                        match permits {
                            Some(permits) => {
                                running.spawn(deliver(gw.clone(), item, permits));
                            }
                            // Only for an unconfigured endpoint's backlog beyond its slots.
                            None => {
                                if let Err(e) = gw.store.release_delivery(&item.delivery.id).await {
                                    tracing::warn!(error = %e, "cannot release a delivery");
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot claim webhook deliveries"),
            }
        }
        if !idle(&mut running, Some(&gw.outbox_signal), limits.poll, &cancel).await {
            break;
        }
    }
    gw.observe.stopped("webhooks");
    while running.join_next().await.is_some() {}
}

async fn deliver(
    gw: Arc<Gateway>,
    item: paybridge_store::DueDelivery,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
) {
    if let Err(e) = gw.deliver_one(item).await {
        tracing::error!(error = %e, "webhook worker");
    }
    drop(permits);
}
