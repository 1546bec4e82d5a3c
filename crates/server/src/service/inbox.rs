//! What the notification inbox keeps, so that no sender can fill the disk: refused senders leave
//! a sampled trace, unverified notifications a rate-limited, truncated copy that expires; only
//! verified notifications are kept whole, for as long as configured.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How much of each kind of notification the inbox keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxPolicy {
    /// Unverified copies stored per account and sender address, per minute (and burst).
    pub unverified_per_address_per_minute: u32,
    /// Unverified copies stored per account, per minute, whatever the addresses.
    pub unverified_per_account_per_minute: u32,
    /// The longest body prefix kept of a notification that did not verify.
    pub unverified_body_bytes: usize,
    /// Samples kept per account and minute of senders outside the IP allowlist.
    pub refused_samples_per_minute: u32,
    /// The longest body prefix kept of such a sample.
    pub refused_sample_body_bytes: usize,
    /// How long notifications that never verified are kept.
    pub unverified_retention_ms: i64,
    /// How long every other notification (and its dedup row) is kept.
    pub verified_retention_ms: i64,
}

impl Default for InboxPolicy {
    fn default() -> Self {
        InboxPolicy {
            unverified_per_address_per_minute: 20,
            unverified_per_account_per_minute: 60,
            unverified_body_bytes: 2048,
            refused_samples_per_minute: 6,
            refused_sample_body_bytes: 256,
            unverified_retention_ms: 3 * 86_400_000,
            verified_retention_ms: 90 * 86_400_000,
        }
    }
}

impl InboxPolicy {
    /// The most body bytes this policy lets senders that never verified store for one account
    /// and process before the retention job removes them: what an attacker can cost the disk at
    /// most (each limiter admits one burst of a minute's quota, hence the extra minute).
    pub fn unverified_bytes_bound(&self) -> u128 {
        let minutes = (self.unverified_retention_ms / 60_000).max(1) as u128 + 1;
        let unverified =
            u128::from(self.unverified_per_account_per_minute) * self.unverified_body_bytes as u128;
        let samples =
            u128::from(self.refused_samples_per_minute) * self.refused_sample_body_bytes as u128;
        (unverified + samples) * minutes
    }
}

/// Keyed limiters grow with the senders seen; past this many keys the idle ones are dropped.
const MAX_TRACKED_KEYS: usize = 10_000;

/// The rate limiters that enforce an [`InboxPolicy`]. In memory and per process: several
/// instances each admit their share, which still bounds the total.
pub struct InboxGuard {
    pub policy: InboxPolicy,
    by_address: DefaultKeyedRateLimiter<(String, IpAddr)>,
    by_account: DefaultKeyedRateLimiter<String>,
    samples: DefaultKeyedRateLimiter<String>,
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN))
}

/// The key of a sender: IPv6 clients commonly own a whole /64, so it counts as one address.
fn sender_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

impl InboxGuard {
    pub fn new(policy: InboxPolicy) -> InboxGuard {
        InboxGuard {
            by_address: RateLimiter::keyed(per_minute(policy.unverified_per_address_per_minute)),
            by_account: RateLimiter::keyed(per_minute(policy.unverified_per_account_per_minute)),
            samples: RateLimiter::keyed(per_minute(policy.refused_samples_per_minute)),
            policy,
        }
    }

    fn bound_memory(&self) {
        if self.by_address.len() > MAX_TRACKED_KEYS {
            self.by_address.retain_recent();
            self.by_address.shrink_to_fit();
        }
        if self.by_account.len() > MAX_TRACKED_KEYS {
            self.by_account.retain_recent();
        }
        if self.samples.len() > MAX_TRACKED_KEYS {
            self.samples.retain_recent();
        }
    }

    /// Whether a copy of an unverified notification to `account` from `ip` may be stored.
    pub fn admit_unverified(&self, account: &str, ip: Option<IpAddr>) -> bool {
        self.bound_memory();
        let address_ok = match ip {
            Some(ip) => self
                .by_address
                .check_key(&(account.to_string(), sender_key(ip)))
                .is_ok(),
            None => true,
        };
        address_ok && self.by_account.check_key(&account.to_string()).is_ok()
    }

    /// Whether a sample of a refused sender's request to `account` may be stored.
    pub fn admit_refused_sample(&self, account: &str) -> bool {
        self.bound_memory();
        self.samples.check_key(&account.to_string()).is_ok()
    }
}

/// The first `max` bytes of `body`.
pub fn truncated(body: &[u8], max: usize) -> Vec<u8> {
    body[..body.len().min(max)].to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn limits_per_address_and_per_account() {
        let guard = InboxGuard::new(InboxPolicy {
            unverified_per_address_per_minute: 3,
            unverified_per_account_per_minute: 5,
            ..InboxPolicy::default()
        });
        let a: IpAddr = "203.0.113.1".parse().unwrap();
        let b: IpAddr = "203.0.113.2".parse().unwrap();
        let admitted_a = (0..10)
            .filter(|_| guard.admit_unverified("shop", Some(a)))
            .count();
        assert_eq!(admitted_a, 3);
        // Another address still gets in, up to the account's budget.
        let admitted_b = (0..10)
            .filter(|_| guard.admit_unverified("shop", Some(b)))
            .count();
        assert_eq!(admitted_b, 2);
        // Another account has its own budget.
        assert!(guard.admit_unverified("other", Some(a)));
    }

    #[test]
    fn an_ipv6_prefix_counts_as_one_sender() {
        let guard = InboxGuard::new(InboxPolicy {
            unverified_per_address_per_minute: 2,
            ..InboxPolicy::default()
        });
        let admitted = (0..10u16)
            .filter(|i| {
                let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
                guard.admit_unverified("shop", Some(ip))
            })
            .count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn samples_and_truncation() {
        let guard = InboxGuard::new(InboxPolicy {
            refused_samples_per_minute: 2,
            ..InboxPolicy::default()
        });
        assert_eq!(
            (0..5)
                .filter(|_| guard.admit_refused_sample("shop"))
                .count(),
            2
        );
        assert_eq!(truncated(b"abcdef", 4), b"abcd");
        assert_eq!(truncated(b"ab", 4), b"ab");
    }

    #[test]
    fn the_default_policy_bounds_what_an_attacker_can_store() {
        // 60 copies a minute of at most 2 KiB each and 6 samples of 256 bytes, for three days:
        // about half a GiB per account.
        let bound = InboxPolicy::default().unverified_bytes_bound();
        assert!(bound < 600 << 20, "{bound}");
        assert!(bound > 0);
    }
}
