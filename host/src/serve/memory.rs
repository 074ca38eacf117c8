//! The message API's memory budget: each produce and consume reserves what it may
//! take in memory before it takes it, and waits while the budget is spent, so that
//! any number of concurrent requests stays within `[server]
//! max_request_memory_bytes` (see docs/configuration.md).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many times its own size a produce body may take while it is parsed and
/// appended: a body of tiny headers becomes two strings per header (measured at
/// about 12 times the JSON's bytes), on top of the body itself.
pub const PRODUCE_MEMORY_FACTOR: usize = 13;

/// How many times its read bytes a consume may take: the messages read (their
/// [`crate::message::Message::memory_size`], which the read is bounded by) and the
/// JSON answer written from them.
pub const CONSUME_MEMORY_FACTOR: usize = 2;

/// The budget, in KiB so that its count stays small.
#[derive(Debug, Clone)]
pub struct RequestMemory {
    permits: Arc<Semaphore>,
    capacity_kib: usize,
}

impl RequestMemory {
    /// A budget of `bytes`.
    pub fn new(bytes: u64) -> Self {
        let capacity_kib = usize::try_from(bytes / 1024)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        RequestMemory {
            permits: Arc::new(Semaphore::new(capacity_kib)),
            capacity_kib,
        }
    }

    /// Reserves `bytes` (at most the whole budget: a request larger than the budget
    /// runs alone), waiting until they are free; they are given back when the
    /// returned guard is dropped.
    pub async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let kib = bytes.div_ceil(1024).clamp(1, self.capacity_kib);
        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(kib)
            .await
            .expect("the budget's semaphore is never closed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reservations_wait_for_the_budget_and_a_large_one_runs_alone() {
        let budget = RequestMemory::new(1024 * 1024);
        let big = budget.reserve(10 * 1024 * 1024).await;
        // The whole budget is taken: a small reservation waits.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(50), budget.reserve(1)).await;
        assert!(waiting.is_err());
        drop(big);
        let _small = budget.reserve(512 * 1024).await;
        let _other = budget.reserve(512 * 1024).await;
    }
}
