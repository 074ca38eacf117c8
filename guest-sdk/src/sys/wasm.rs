//! The wasm32 backend: the broker's `host` and `state` imports.

use crate::log::Level;
use crate::StateError;

/// The bindings of the `etl-buffer` world, generated from the crate's own copy of the
/// contract (`wit/etl.wit`, kept byte for byte equal to the broker's
/// `wit/1.2.0/etl.wit`).
// Generated code: the record-passing functions take one argument per flattened field.
#[allow(clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "etl-buffer",
        // `export!` expands in the module's crate, which names these bindings
        // through `$crate`.
        pub_export_macro: true,
    });
}

use bindings::rustmq::etl::{host, state};

impl From<state::StateError> for StateError {
    fn from(e: state::StateError) -> StateError {
        match e {
            state::StateError::KeyTooLong(limit_bytes) => StateError::KeyTooLong { limit_bytes },
            state::StateError::ValueTooLarge(limit_bytes) => {
                StateError::ValueTooLarge { limit_bytes }
            }
            state::StateError::QuotaExceeded(quota_bytes) => {
                StateError::QuotaExceeded { quota_bytes }
            }
            state::StateError::Unavailable(reason) => StateError::Unavailable { reason },
        }
    }
}

pub(crate) fn state_get(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    Ok(state::get(key)?)
}

pub(crate) fn state_set(key: &str, value: &[u8]) -> Result<(), StateError> {
    Ok(state::set(key, value)?)
}

pub(crate) fn state_delete(key: &str) -> Result<(), StateError> {
    Ok(state::delete(key)?)
}

pub(crate) fn log(level: Level, message: &str) {
    let level = match level {
        Level::Trace => host::LogLevel::Trace,
        Level::Debug => host::LogLevel::Debug,
        Level::Info => host::LogLevel::Info,
        Level::Warn => host::LogLevel::Warn,
        Level::Error => host::LogLevel::Error,
    };
    host::log(level, message);
}

pub(crate) fn get_param(name: &str) -> Option<String> {
    host::get_param(name)
}
