//! The native backend: state in a map, parameters set by [`testing`](crate::testing),
//! log lines on stderr. Everything is per thread, so tests running in parallel (one
//! thread each under `cargo test`) do not see each other's state.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use crate::log::Level;
use crate::{Params, StateError};

thread_local! {
    static STATE: RefCell<BTreeMap<String, Vec<u8>>> = const { RefCell::new(BTreeMap::new()) };
    static PARAMS: RefCell<Params> = RefCell::new(Params::default());
    static IN_INIT: Cell<bool> = const { Cell::new(false) };
}

/// As in the broker, state cannot be used from `init`.
fn available() -> Result<(), StateError> {
    if IN_INIT.get() {
        return Err(StateError::Unavailable {
            reason: "state cannot be used from init".into(),
        });
    }
    Ok(())
}

pub(crate) fn state_get(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    available()?;
    Ok(STATE.with_borrow(|s| s.get(key).cloned()))
}

pub(crate) fn state_set(key: &str, value: &[u8]) -> Result<(), StateError> {
    available()?;
    STATE.with_borrow_mut(|s| s.insert(key.to_string(), value.to_vec()));
    Ok(())
}

pub(crate) fn state_delete(key: &str) -> Result<(), StateError> {
    available()?;
    STATE.with_borrow_mut(|s| s.remove(key));
    Ok(())
}

pub(crate) fn log(level: Level, message: &str) {
    eprintln!("[{level}] {message}");
}

pub(crate) fn get_param(name: &str) -> Option<String> {
    PARAMS.with_borrow(|p| p.get(name).map(str::to_string))
}

pub(crate) fn set_params(params: Params) {
    PARAMS.set(params);
}

/// Runs `f` as the broker runs `init`: with state unavailable.
pub(crate) fn in_init<R>(f: impl FnOnce() -> R) -> R {
    IN_INIT.set(true);
    let r = f();
    IN_INIT.set(false);
    r
}

pub(crate) fn snapshot() -> BTreeMap<String, Vec<u8>> {
    STATE.with_borrow(|s| s.clone())
}

pub(crate) fn restore(state: BTreeMap<String, Vec<u8>>) {
    STATE.set(state);
}
