//! [`LegacyState`]: what a legacy instance's store holds, shared by the instance
//! that runs it, the module whose linker is built for it, and `poll`.

use std::time::Instant;

use wasmtime_wasi::p1::WasiP1Ctx;

use crate::limiter::GuestLimiter;
use crate::wasi::GuestClock;

/// Store data of a legacy instance.
pub struct LegacyState {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limiter: GuestLimiter,
    /// The guest's monotonic clock (its WASI context reads the same one).
    pub(crate) clock: GuestClock,
    /// When the current call must end; no WASI sleep lasts past it.
    pub(crate) deadline: Instant,
}
