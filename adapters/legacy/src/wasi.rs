//! The WASI preview 1 context a legacy module gets: clocks and random, nothing else.
//!
//! The host hands its own policy in as a [`WasiFactory`] so components and legacy
//! modules share one; [`locked_down_wasi`] is this crate's default and the tests'.
//! Every instance's context is built with a [`GuestClock`], whose origin the instance
//! keeps, so that `poll_oneoff` (see `poll`) can turn a guest's absolute
//! monotonic time into an [`Instant`] and bound its sleep by the call's deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime_wasi::{HostMonotonicClock, WasiCtxBuilder};

/// Makes the WASI context builder for each new instance; the instance adds its clock
/// and builds it.
pub type WasiFactory = Arc<dyn Fn() -> WasiCtxBuilder + Send + Sync>;

/// A builder with no preopened directories, no environment or arguments, stdin
/// closed, stdout and stderr discarded, and no network: only clocks and random
/// numbers (what `chrono::Utc::now()` and hash-map seeding need).
pub fn locked_down_wasi() -> WasiCtxBuilder {
    let mut builder = WasiCtxBuilder::new();
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder
}

/// [`locked_down_wasi`] as a [`WasiFactory`].
pub fn locked_down_factory() -> WasiFactory {
    Arc::new(locked_down_wasi)
}

/// A guest's monotonic clock: nanoseconds since the instance was created.
///
/// Guests (components and legacy modules) get this clock instead of WASI's default so
/// that the host knows its origin: an absolute wake-up time a guest asks for can then
/// be compared with the call's deadline.
#[derive(Debug, Clone, Copy)]
pub struct GuestClock {
    origin: Instant,
}

impl GuestClock {
    /// A clock reading 0 now.
    pub fn start() -> GuestClock {
        GuestClock {
            origin: Instant::now(),
        }
    }

    /// The instant at which this clock reads `nanos`; `None` past what `Instant` holds.
    pub fn instant_at(&self, nanos: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_nanos(nanos))
    }
}

impl HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// When a guest that asked to sleep until `wake` (`None`: longer than `Instant` holds)
/// is woken: at `wake`, or at `deadline` if that comes first. The one rule for every
/// timer a guest can set, components' and legacy modules' alike.
pub fn bounded_wake(wake: Option<Instant>, deadline: Instant) -> Instant {
    wake.map_or(deadline, |wake| wake.min(deadline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_bounds_every_wake() {
        let deadline = Instant::now() + Duration::from_secs(1);
        let earlier = deadline - Duration::from_millis(10);
        let later = deadline + Duration::from_secs(60);
        assert_eq!(bounded_wake(Some(earlier), deadline), earlier);
        assert_eq!(bounded_wake(Some(later), deadline), deadline);
        assert_eq!(bounded_wake(None, deadline), deadline);
    }

    #[test]
    fn the_guest_clock_reads_from_its_origin() {
        let clock = GuestClock::start();
        let at = clock.instant_at(5_000_000).unwrap();
        assert_eq!(at.duration_since(clock.origin), Duration::from_millis(5));
        assert!(clock.now() < 60_000_000_000);
    }
}
