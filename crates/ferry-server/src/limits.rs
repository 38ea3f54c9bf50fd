//! Rate limits of the requests that carry no credential. Enrollment is the one device request
//! anyone can make, and each success creates a device row and a working credential, so it is
//! limited per source address and for the whole server (`[enrollment]` in the configuration).
//! The limiters are `governor`'s GCRA: each key costs a few bytes and a lock-free check.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::EnrollmentConfig;
use crate::error::ApiError;

/// The enrollment limits: one budget per source address and one for everybody.
pub struct EnrollmentLimits {
    per_address: DefaultKeyedRateLimiter<IpAddr>,
    total: DefaultDirectRateLimiter,
    tracked: usize,
    clock: DefaultClock,
}

fn per_minute(rate: u32) -> Quota {
    // Validated as at least 1 when the configuration is loaded.
    Quota::per_minute(NonZeroU32::new(rate.max(1)).expect("at least 1"))
}

impl EnrollmentLimits {
    /// Limits as configured.
    pub fn new(config: &EnrollmentConfig) -> Self {
        Self {
            per_address: RateLimiter::keyed(per_minute(config.per_address_per_minute)),
            total: RateLimiter::direct(per_minute(config.total_per_minute)),
            tracked: config.tracked_addresses,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one enrollment from `peer`'s budget and the server's, or says how long to wait.
    /// The address is checked first, so that one busy address cannot spend everybody's budget.
    pub fn check(&self, peer: IpAddr) -> Result<(), ApiError> {
        let peer = budget_key(peer);
        if self.per_address.len() >= self.tracked {
            // Drop the addresses whose budget is full again (they are as good as new); if the
            // table is still full, new addresses wait rather than grow it without bound.
            self.per_address.retain_recent();
            self.per_address.shrink_to_fit();
            if self.per_address.len() >= self.tracked {
                return Err(ApiError::rate_limited(
                    60,
                    "too many devices are enrolling from different addresses at once; retry later",
                ));
            }
        }
        if let Err(not_until) = self.per_address.check_key(&peer) {
            return Err(ApiError::rate_limited(
                self.wait(not_until.wait_time_from(self.clock.now())),
                format!(
                    "too many enrollments from {peer}; retry later (behind a reverse proxy, raise \
                     enrollment.per_address_per_minute)"
                ),
            ));
        }
        if let Err(not_until) = self.total.check() {
            return Err(ApiError::rate_limited(
                self.wait(not_until.wait_time_from(self.clock.now())),
                "too many devices are enrolling at once; retry later",
            ));
        }
        Ok(())
    }

    fn wait(&self, wait: Duration) -> u64 {
        wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
    }
}

/// Whose budget an address spends: IPv4 addresses each their own, IPv6 addresses their /64
/// (one site's prefix, which a single host can fill with addresses at will).
fn budget_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_budget_waits_and_others_do_not() {
        let limits = EnrollmentLimits::new(&EnrollmentConfig {
            per_address_per_minute: 2,
            total_per_minute: 100,
            ..EnrollmentConfig::default()
        });
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        limits.check(a).unwrap();
        limits.check(a).unwrap();
        let refused = limits.check(a).unwrap_err();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert!((1..=30).contains(&refused.retry_after.unwrap()), "{:?}", refused.retry_after);
        limits.check(b).unwrap();
        // One IPv6 /64 is one budget.
        limits.check("2001:db8::1".parse().unwrap()).unwrap();
        limits.check("2001:db8::2".parse().unwrap()).unwrap();
        assert!(limits.check("2001:db8::3".parse().unwrap()).is_err());
    }

    #[test]
    fn the_address_table_is_bounded() {
        let limits = EnrollmentLimits::new(&EnrollmentConfig {
            per_address_per_minute: 10,
            total_per_minute: 1000,
            tracked_addresses: 3,
            ..EnrollmentConfig::default()
        });
        for i in 1..=3 {
            limits.check(IpAddr::from([192, 0, 2, i])).unwrap();
        }
        // Three addresses are tracked, each with a budget spent: a fourth has to wait.
        let refused = limits.check(IpAddr::from([192, 0, 2, 4])).unwrap_err();
        assert_eq!(refused.retry_after, Some(60));
        assert!(limits.per_address.len() <= 3);
    }
}
