//! Hostile guests against the sandbox, in process: each attack runs in its own
//! pipeline next to a healthy one, on one shared runtime, and must end with the
//! attacking message in the error topic (its cause in `x-rustmq-error-cause`), the
//! next message processed by a fresh instance, the healthy pipeline still flowing and
//! guest memory within the limit. Also: the WASI context grants nothing, the output
//! caps hold before the host copies anything, and `max_concurrent_executions` holds
//! across many pipelines on one module.
//!
//! - `calls`: one call at a time against the runtime: output caps, WASI grants, a
//!   looping `init`.
//! - `pipelines`: attacks in pipelines on a shared runtime, each contained.
//! - `concurrency`: `max_concurrent_executions` across many pipelines.

mod calls;
mod concurrency;
mod pipelines;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes each thread allocates, so a test can tell what one guest call
/// made the host allocate (guest calls run on the calling thread).
struct Metered;

thread_local! {
    static ALLOCATED: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the counter is a const thread-local
// without a destructor, usable from inside the allocator.
unsafe impl GlobalAlloc for Metered {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size() as u64));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size() as u64));
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + new_size as u64));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static METER: Metered = Metered;

/// Bytes this thread allocated while running `f`.
pub(crate) fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}
