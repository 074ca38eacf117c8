//! A [`StoreLimits`] that also remembers what it refused.
//!
//! When a guest is refused memory it usually traps right after (Rust aborts on a
//! failed allocation). Remembering the refusal lets the host report that trap as a
//! memory-limit hit. The host's component runtime uses the same type.

use wasmtime::{ResourceLimiter, StoreLimits};

/// [`StoreLimits`] plus a record of refused memory growth and of the memory granted.
pub struct GuestLimiter {
    inner: StoreLimits,
    /// Set when a `memory.grow` was refused; clear it before each call.
    pub memory_refused: bool,
    /// Linear memory granted so far, across the instance's memories.
    pub memory_bytes: usize,
}

impl GuestLimiter {
    /// Wraps `inner`.
    pub fn new(inner: StoreLimits) -> Self {
        GuestLimiter {
            inner,
            memory_refused: false,
            memory_bytes: 0,
        }
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let answer = self.inner.memory_growing(current, desired, maximum);
        if matches!(answer, Ok(true)) {
            self.memory_bytes += desired.saturating_sub(current);
        } else {
            self.memory_refused = true;
        }
        answer
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}
