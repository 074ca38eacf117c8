//! WASI 0.2 timers that end at the call's deadline.
//!
//! Epoch interruption only stops a guest while it runs wasm code; a guest blocked in
//! a host call is not interrupted. The only blocking calls the locked-down context
//! offers are `wasi:io/poll`'s `poll` and `pollable.block`, and the only pollables
//! that can stay pending are timers (stdin is closed, stdout and stderr never block,
//! there are no files and no sockets). So `subscribe-duration` and
//! `subscribe-instant` are linked over wasmtime's with timers that fire at the
//! requested time or at the call's deadline, whichever comes first
//! ([`bounded_wake`]). `poll` and `pollable.block` are linked over wasmtime's too: a
//! wait that returns at or after the deadline ends the call with the interrupt an
//! epoch deadline gives, so the call fails as a timeout at once, not when the guest
//! next reaches an epoch check (epochs tick every few milliseconds, so a guest woken
//! at its deadline could otherwise finish first). A timer kept from an earlier call is
//! bounded by that call's deadline, already past.

use std::time::{Duration, Instant};

use rustmq_etl_legacy::bounded_wake;
use wasmtime::component::{Linker, Resource};
use wasmtime::{StoreContextMut, Trap};
use wasmtime_wasi::p2::bindings::sync::io::poll::{Host as _, HostPollable as _};
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};

use super::bindings::HostState;

/// The `wasi:clocks` version wasmtime-wasi links; a guest built against any 0.2.x
/// resolves to it.
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";
/// The `wasi:io/poll` version wasmtime-wasi links.
const POLL: &str = "wasi:io/poll@0.2.12";

/// Links the bounded `subscribe-*` functions, and `poll` and `pollable.block` that end
/// the call at its deadline, over wasmtime-wasi's. Call after
/// `wasmtime_wasi::p2::add_to_linker_sync`.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: StoreContextMut<'_, HostState>, (nanos,): (u64,)| {
            let wake = Instant::now().checked_add(Duration::from_nanos(nanos));
            Ok((timer(store.data_mut(), wake)?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: StoreContextMut<'_, HostState>, (when,): (u64,)| {
            let wake = store.data().clock.instant_at(when);
            Ok((timer(store.data_mut(), wake)?,))
        },
    )?;
    let mut poll = linker.instance(POLL)?;
    poll.func_wrap(
        "poll",
        |mut store: StoreContextMut<'_, HostState>, (pollables,): (Vec<Resource<DynPollable>>,)| {
            let state = store.data_mut();
            let ready = state.table.poll(pollables)?;
            within_deadline(state)?;
            Ok((ready,))
        },
    )?;
    poll.func_wrap(
        "[method]pollable.block",
        |mut store: StoreContextMut<'_, HostState>, (pollable,): (Resource<DynPollable>,)| {
            let state = store.data_mut();
            state.table.block(pollable)?;
            within_deadline(state)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// After a wait: the call goes on only if its deadline has not passed.
fn within_deadline(state: &HostState) -> wasmtime::Result<()> {
    if Instant::now() >= state.deadline {
        return Err(Trap::Interrupt.into());
    }
    Ok(())
}

/// A pollable that is ready at `wake`, or at the call's deadline if that is sooner.
fn timer(state: &mut HostState, wake: Option<Instant>) -> wasmtime::Result<Resource<DynPollable>> {
    let at = tokio::time::Instant::from_std(bounded_wake(wake, state.deadline));
    let timer = state.table.push(Timer { at })?;
    subscribe(&mut state.table, timer)
}

struct Timer {
    at: tokio::time::Instant,
}

#[wasmtime_wasi::async_trait]
impl Pollable for Timer {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.at).await;
    }
}
