//! The capabilities behind [`state`](crate::state), [`log`](crate::log) and
//! [`param`](crate::param), one backend per kind of target.
//!
//! - `wasm` (wasm32): the broker's imports, through the bindings generated from
//!   `wit/etl.wit`; `glue` converts the WIT records for [`export!`](crate::export).
//! - `buffer` (every target): a `process-buffer` call, from the batch buffer to the
//!   answer buffer, so that native tests run what the module runs.
//! - `native` (every other target): in-memory stand-ins, so that a module's unit
//!   tests run under plain `cargo test`.

pub(crate) mod buffer;
#[cfg(target_arch = "wasm32")]
pub(crate) mod glue;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod native;
#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::{get_param, log, state_delete, state_get, state_set};
#[cfg(target_arch = "wasm32")]
pub use wasm::bindings;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{get_param, log, state_delete, state_get, state_set};
