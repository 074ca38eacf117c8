//! `poll_oneoff` for the locked-down context, never sleeping past the call's deadline.
//!
//! Epoch interruption only stops a guest while it runs wasm code: a guest blocked in a
//! host call is not interrupted, and wasmtime's own `poll_oneoff` sleeps for as long as
//! the guest asks. So a module calling `std::thread::sleep` held its worker (and its
//! execution slot) for the whole sleep, far past its deadline. This replacement is
//! linked over wasmtime's and serves what the context offers:
//!
//! - clock subscriptions (realtime and monotonic, relative or absolute);
//! - reads of stdin (fd 0), which is closed, so always ready at end of file;
//! - writes to stdout and stderr (fd 1, 2), which never block.
//!
//! Any other descriptor is `EBADF` and any other clock `EINVAL`, as in wasmtime. When
//! nothing is ready it sleeps until the earliest clock, bounded by the deadline (see
//! [`crate::wasi::bounded_wake`]); a guest still asleep at its deadline ends with the
//! same interrupt an epoch deadline gives, so the call fails as a timeout.

use std::time::{Duration, Instant, SystemTime};

use wasmtime::{Caller, Extern, Linker, Trap};

use crate::state::LegacyState;
use crate::wasi::bounded_wake;

const SUBSCRIPTION_SIZE: usize = 48;
const EVENT_SIZE: usize = 32;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: i32 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

const EVENTTYPE_CLOCK: u8 = 0;
const EVENTTYPE_FD_READ: u8 = 1;
const EVENTTYPE_FD_WRITE: u8 = 2;

const CLOCKID_REALTIME: u32 = 0;
const CLOCKID_MONOTONIC: u32 = 1;
const SUBCLOCKFLAGS_ABSTIME: u16 = 1;
const EVENTRWFLAGS_HANGUP: u16 = 1;

/// Links [`poll_oneoff`] over wasmtime's. Call after `wasmtime_wasi::p1::add_to_linker_sync`.
pub(crate) fn add_to_linker(linker: &mut Linker<LegacyState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker.func_wrap("wasi_snapshot_preview1", "poll_oneoff", poll_oneoff)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// When one subscription is ready.
enum Ready {
    /// Now, reporting `nbytes` and `flags` (an fd event).
    Now { nbytes: u64, flags: u16 },
    /// At this instant (`None`: later than `Instant` holds; a clock event).
    At(Option<Instant>),
}

struct Subscription {
    userdata: u64,
    kind: u8,
    ready: Ready,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(bytes[at..at + 2].try_into().expect("two bytes"))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// `[at, at + len)` inside `size`, or `None`.
fn span(at: i32, len: usize, size: usize) -> Option<std::ops::Range<usize>> {
    let start = at as u32 as usize;
    let end = start.checked_add(len)?;
    (end <= size).then_some(start..end)
}

/// Reads one subscription; `Err(errno)` for what the context does not offer.
fn parse(raw: &[u8], clock: &crate::wasi::GuestClock) -> Result<Subscription, i32> {
    let userdata = u64_at(raw, 0);
    let kind = raw[8];
    let ready = match kind {
        EVENTTYPE_CLOCK => {
            let (id, timeout, flags) = (u32_at(raw, 16), u64_at(raw, 24), u16_at(raw, 40));
            let now = Instant::now();
            let after = |nanos: u64| now.checked_add(Duration::from_nanos(nanos));
            let wake = match (id, flags & SUBCLOCKFLAGS_ABSTIME != 0) {
                (CLOCKID_MONOTONIC, true) => clock.instant_at(timeout),
                (CLOCKID_REALTIME, true) => {
                    let wall = SystemTime::now()
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
                    after(timeout.saturating_sub(wall))
                }
                (CLOCKID_MONOTONIC | CLOCKID_REALTIME, false) => after(timeout),
                _ => return Err(ERRNO_INVAL),
            };
            Ready::At(wake)
        }
        EVENTTYPE_FD_READ => match u32_at(raw, 16) {
            // stdin is closed: a read returns end of file at once.
            0 => Ready::Now {
                nbytes: 0,
                flags: EVENTRWFLAGS_HANGUP,
            },
            _ => return Err(ERRNO_BADF),
        },
        EVENTTYPE_FD_WRITE => match u32_at(raw, 16) {
            // stdout and stderr are captured and never block.
            1 | 2 => Ready::Now {
                nbytes: 1,
                flags: 0,
            },
            _ => return Err(ERRNO_BADF),
        },
        _ => return Err(ERRNO_INVAL),
    };
    Ok(Subscription {
        userdata,
        kind,
        ready,
    })
}

fn poll_oneoff(
    mut caller: Caller<'_, LegacyState>,
    subscriptions: i32,
    events: i32,
    count: i32,
    events_written: i32,
) -> wasmtime::Result<i32> {
    let Some(Extern::Memory(memory)) = caller.get_export("memory") else {
        return Err(wasmtime::format_err!(
            "poll_oneoff: the module exports no `memory`"
        ));
    };
    let count = count as u32 as usize;
    if count == 0 {
        // Sleeping forever is not offered (nor by wasmtime).
        return Ok(ERRNO_INVAL);
    }
    let (clock, deadline) = {
        let state = caller.data();
        (state.clock, state.deadline)
    };
    let size = memory.data_size(&caller);
    let spans = (
        count
            .checked_mul(SUBSCRIPTION_SIZE)
            .and_then(|len| span(subscriptions, len, size)),
        count
            .checked_mul(EVENT_SIZE)
            .and_then(|len| span(events, len, size)),
        span(events_written, 4, size),
    );
    let (Some(subs_span), Some(events_span), Some(written_span)) = spans else {
        return Ok(ERRNO_FAULT);
    };

    let mut subs = Vec::with_capacity(count);
    for raw in memory.data(&caller)[subs_span].chunks_exact(SUBSCRIPTION_SIZE) {
        match parse(raw, &clock) {
            Ok(sub) => subs.push(sub),
            Err(errno) => return Ok(errno),
        }
    }

    let any_now = subs.iter().any(|s| matches!(s.ready, Ready::Now { .. }));
    if !any_now {
        let earliest = subs
            .iter()
            .filter_map(|s| match s.ready {
                Ready::At(wake) => Some(wake),
                Ready::Now { .. } => None,
            })
            .map(|wake| wake.unwrap_or(deadline))
            .min()
            .expect("at least one subscription, every one a clock");
        let wake = bounded_wake(Some(earliest), deadline);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        if earliest > deadline {
            // Asleep at the deadline: the call is over, as an epoch deadline ends it.
            return Err(Trap::Interrupt.into());
        }
    }

    let now = Instant::now();
    let mut out = Vec::with_capacity(count * EVENT_SIZE);
    for sub in &subs {
        let (nbytes, flags) = match sub.ready {
            Ready::Now { nbytes, flags } => (nbytes, flags),
            Ready::At(Some(wake)) if wake <= now => (0, 0),
            Ready::At(_) => continue,
        };
        let mut event = [0u8; EVENT_SIZE];
        event[0..8].copy_from_slice(&sub.userdata.to_le_bytes());
        // error (u16 at 8) stays 0: success.
        event[10] = sub.kind;
        event[16..24].copy_from_slice(&nbytes.to_le_bytes());
        event[24..26].copy_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&event);
    }
    let written = (out.len() / EVENT_SIZE) as u32;
    let data = memory.data_mut(&mut caller);
    data[events_span.start..events_span.start + out.len()].copy_from_slice(&out);
    data[written_span].copy_from_slice(&written.to_le_bytes());
    Ok(ERRNO_SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wasi::GuestClock;

    fn clock_sub(id: u32, timeout: u64, flags: u16) -> [u8; SUBSCRIPTION_SIZE] {
        let mut raw = [0u8; SUBSCRIPTION_SIZE];
        raw[0..8].copy_from_slice(&7u64.to_le_bytes());
        raw[8] = EVENTTYPE_CLOCK;
        raw[16..20].copy_from_slice(&id.to_le_bytes());
        raw[24..32].copy_from_slice(&timeout.to_le_bytes());
        raw[40..42].copy_from_slice(&flags.to_le_bytes());
        raw
    }

    fn fd_sub(kind: u8, fd: u32) -> [u8; SUBSCRIPTION_SIZE] {
        let mut raw = [0u8; SUBSCRIPTION_SIZE];
        raw[8] = kind;
        raw[16..20].copy_from_slice(&fd.to_le_bytes());
        raw
    }

    #[test]
    fn an_absolute_monotonic_time_is_read_on_the_guest_clock() {
        let clock = GuestClock::start();
        let sub = parse(
            &clock_sub(CLOCKID_MONOTONIC, 3_000_000_000, SUBCLOCKFLAGS_ABSTIME),
            &clock,
        )
        .unwrap();
        let Ready::At(Some(wake)) = sub.ready else {
            panic!("a clock subscription")
        };
        assert_eq!(Some(wake), clock.instant_at(3_000_000_000));
        assert_eq!(sub.userdata, 7);
    }

    #[test]
    fn descriptors_the_context_lacks_are_ebadf_and_cpu_clocks_einval() {
        let clock = GuestClock::start();
        assert!(matches!(
            parse(&fd_sub(EVENTTYPE_FD_READ, 0), &clock).map(|s| s.ready),
            Ok(Ready::Now {
                nbytes: 0,
                flags: EVENTRWFLAGS_HANGUP
            })
        ));
        assert!(matches!(
            parse(&fd_sub(EVENTTYPE_FD_WRITE, 2), &clock).map(|s| s.ready),
            Ok(Ready::Now { .. })
        ));
        assert_eq!(
            parse(&fd_sub(EVENTTYPE_FD_READ, 3), &clock).err(),
            Some(ERRNO_BADF)
        );
        assert_eq!(
            parse(&fd_sub(EVENTTYPE_FD_WRITE, 0), &clock).err(),
            Some(ERRNO_BADF)
        );
        assert_eq!(parse(&clock_sub(2, 1, 0), &clock).err(), Some(ERRNO_INVAL));
        assert_eq!(parse(&fd_sub(9, 0), &clock).err(), Some(ERRNO_INVAL));
    }
}
