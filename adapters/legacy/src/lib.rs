//! Runs the deployment guide's raw core modules: plain `cdylib`s exporting
//! `process_message(ptr, len)`, `alloc(size)` and `dealloc(ptr, size)` that exchange
//! JSON through linear memory.
//!
//! This crate knows nothing of the broker: it takes a wasmtime `Engine` (configured
//! with epoch interruption by its owner), the module's bytes, limits and a factory for
//! the WASI context, and turns each message into a typed answer or a typed error that
//! says what the guest did.
//!
//! # Layout
//! - [`inspect`]: reads a module's imports and exports without compiling it, decides
//!   whether it speaks the ABI and refuses imports no server can satisfy.
//! - [`module`]: [`LegacyModule`], a checked, compiled, linked module (compile once,
//!   instantiate many; serializable for an on-disk cache).
//! - [`instance`]: [`LegacyInstance`], one live guest with its limits; runs the ABI per
//!   message and recycles the guest after faults or when leaked memory piles up.
//! - [`limiter`]: [`limiter::GuestLimiter`], store limits that remember a refused grow
//!   (shared with the host's component runtime).
//! - `shapes`: the JSON shapes on both sides, defined with serde.
//! - [`abi`]: encoding the input and the bounded reader for the guest's answer.
//! - `codec`: the hand-written encoder and reader the per-message path uses, held to
//!   serde's behaviour.
//! - [`wasi`]: the default locked-down WASI preview 1 context, and [`GuestClock`], the
//!   monotonic clock guests read, with the rule that bounds every guest timer by the
//!   call's deadline ([`bounded_wake`]).
//! - `poll`: `poll_oneoff` linked over wasmtime's, so no sleep outlasts the deadline.
//! - [`error`]: [`LoadError`] (the module is refused) and [`CallError`] (one message
//!   failed).

pub mod abi;
mod codec;
pub mod error;
pub mod inspect;
pub mod instance;
pub mod limiter;
pub mod module;
mod poll;
mod shapes;
mod state;
pub mod wasi;

pub use abi::{LegacyInput, LegacyMessage, LegacyOutput};
pub use error::{AbiFault, CallError, LoadError};
pub use inspect::{LegacyInfo, ProcessAbi};
pub use instance::{LegacyInstance, LegacyLimits};
pub use module::LegacyModule;
pub use wasi::{bounded_wake, locked_down_wasi, GuestClock, WasiFactory};
