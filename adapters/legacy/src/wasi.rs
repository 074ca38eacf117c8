//! The WASI preview 1 context a legacy module gets: clocks and random, nothing else.
//!
//! The host hands its own policy in as a [`WasiFactory`] so components and legacy
//! modules share one; [`locked_down_wasi`] is this crate's default and the tests'.

use std::sync::Arc;

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::WasiCtxBuilder;

/// Makes a fresh WASI context for each new instance.
pub type WasiFactory = Arc<dyn Fn() -> WasiP1Ctx + Send + Sync>;

/// A context with no preopened directories, no environment or arguments, stdin
/// closed, stdout and stderr discarded, and no network: only clocks and random
/// numbers (what `chrono::Utc::now()` and hash-map seeding need).
pub fn locked_down_wasi() -> WasiP1Ctx {
    WasiCtxBuilder::new()
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build_p1()
}

/// [`locked_down_wasi`] as a [`WasiFactory`].
pub fn locked_down_factory() -> WasiFactory {
    Arc::new(locked_down_wasi)
}
