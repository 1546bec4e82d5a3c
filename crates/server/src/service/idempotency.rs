//! Idempotency-Key semantics for the money-moving POSTs (create payment, create refund).
//!
//! The key is bound to the resource its first request created, in the same transaction (T1 of
//! the money path). A retry finds it and answers with the resource as it now is, replays a stored
//! definite refusal, or resumes the operation from its recovery point when the first request
//! died. While a request works on a key it holds the key's lock and renews it by a heartbeat, so
//! a crashed request frees its key within [`KEY_LOCK_MS`].

use std::future::Future;
use std::time::Duration;

use paybridge_store::{IdempotencyBegin, KeyClaim, StoreError};

use super::Gateway;

/// How long a request holds its key without renewing it.
pub(crate) const KEY_LOCK_MS: i64 = 15_000;
/// Renewal period of a held key (a third of the lock, so one missed beat does not lose it).
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a retry waits for the request holding its key before answering 409.
const LOCKED_WAIT: Duration = Duration::from_secs(20);
const LOCKED_POLL: Duration = Duration::from_millis(250);
/// When the recovery job of a begun operation first looks at it: after the lock of a request
/// that died at once has lapsed, and after any provider call of a live one has timed out.
pub(crate) const RECOVER_AFTER_MS: i64 = 40_000;

/// A request's `Idempotency-Key` and the digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: String,
}

/// How a money-moving POST is answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer<T> {
    /// The operation ran now and its outcome is known.
    Done(T),
    /// A retry: the resource as it now is.
    Replayed(T),
    /// The provider's answer is not known yet (a timeout): the recovery job settles it, and a
    /// retry with the same key resumes it. Answered `202`.
    Unsettled(T),
    /// A stored definite answer (a provider refusal), replayed byte for byte.
    Stored { status: u16, body: Vec<u8> },
}

impl<T> Answer<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Answer::Done(t) => Answer::Done(f(t)),
            Answer::Replayed(t) => Answer::Replayed(f(t)),
            Answer::Unsettled(t) => Answer::Unsettled(f(t)),
            Answer::Stored { status, body } => Answer::Stored { status, body },
        }
    }
}

/// Counts a retry's waits for a held key.
pub(crate) struct LockWait(u32);

impl LockWait {
    pub(crate) fn new() -> Self {
        LockWait(0)
    }

    /// Waits a little; `false` once the retry has waited long enough.
    pub(crate) async fn again(&mut self) -> bool {
        let max = LOCKED_WAIT.as_millis() / LOCKED_POLL.as_millis().max(1);
        if u128::from(self.0) >= max {
            return false;
        }
        self.0 += 1;
        tokio::time::sleep(LOCKED_POLL).await;
        true
    }
}

impl Gateway {
    pub(crate) fn claim<'a>(&self, scope: &'a str, key: &'a IdempotencyKey) -> KeyClaim<'a> {
        KeyClaim {
            scope,
            key: &key.key,
            request_hash: &key.request_hash,
            lock_ms: KEY_LOCK_MS,
        }
    }

    /// Runs `work` (a provider call) while renewing the lock of `(scope, key)`.
    pub(crate) async fn holding_key<F: Future>(
        &self,
        key: Option<(&str, &str)>,
        work: F,
    ) -> F::Output {
        let Some((scope, key)) = key else {
            return work.await;
        };
        renewing(|| self.store.extend_key_lock(scope, key, KEY_LOCK_MS), work).await
    }

    /// Begins a POST that owns no resource of its own (close, redeliver, reconciliation) under
    /// its key. A key whose request still works is waited for; one whose request died (no
    /// renewal for [`KEY_LOCK_MS`]) is taken over, so a retry after a crash runs again rather
    /// than answering 409.
    pub(crate) async fn begin_plain_key(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyBegin, StoreError> {
        let mut wait = LockWait::new();
        loop {
            let begin = self
                .store
                .begin_idempotent(scope, key, request_hash, self.now_ms(), KEY_LOCK_MS)
                .await?;
            if matches!(begin, IdempotencyBegin::InProgress) && wait.again().await {
                continue;
            }
            return Ok(begin);
        }
    }

    /// Runs `work` for a key begun with [`Gateway::begin_plain_key`], renewing it.
    pub(crate) async fn holding_plain_key<F: Future>(
        &self,
        scope: &str,
        key: &str,
        work: F,
    ) -> F::Output {
        renewing(
            || self.store.touch_idempotent(scope, key, self.now_ms()),
            work,
        )
        .await
    }
}

/// Runs `work`, calling `renew` every [`HEARTBEAT`] until it ends.
async fn renewing<F, R, RF>(renew: R, work: F) -> F::Output
where
    F: Future,
    R: Fn() -> RF,
    RF: Future<Output = Result<(), StoreError>>,
{
    let beat = async {
        loop {
            tokio::time::sleep(HEARTBEAT).await;
            if let Err(e) = renew().await {
                tracing::warn!(error = %e, "cannot renew idempotency key lock");
            }
        }
    };
    tokio::pin!(work);
    tokio::pin!(beat);
    tokio::select! {
        out = &mut work => out,
        never = &mut beat => never,
    }
}
