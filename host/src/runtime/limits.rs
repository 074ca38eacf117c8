//! Every limit a guest runs under, with its one default. The broker's config
//! (`[etl]`), `rustmq-etl run` and the legacy adapter all take them from here, so a
//! module gets the same verdict from the local runner as from a default broker.

use rustmq_etl_legacy::LegacyLimits;

use super::MAX_OUTPUT_HEADERS;

/// Resource limits for every guest run by a [`Runtime`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeLimits {
    /// Largest linear memory one guest instance may grow to, in bytes.
    pub memory_limit_bytes: u64,
    /// Deadline for one call (`init` or `process`), in milliseconds.
    pub execution_timeout_ms: u64,
    /// How many guest calls may run at the same time across the runtime; further calls
    /// wait for a slot.
    pub max_concurrent_executions: usize,
    /// How many guest instances may be alive at once (the pooling allocator's size).
    /// Every live transform holds one.
    pub max_instances: u32,
    /// Most messages one `process` call may return (fan-out cap; `[etl]
    /// max_output_messages`).
    pub max_output_messages: usize,
    /// Most bytes (keys, values, headers) one `process` call may return.
    pub max_output_bytes: usize,
    /// Core module instances one component may create (`[etl]
    /// max_core_instances_per_component`): rustc's `wasm32-wasip2` output needs a
    /// few, componentize-js 4, componentize-py (CPython and its libraries) 14.
    pub max_core_instances_per_component: u32,
    /// Linear memories one component may define (`[etl] max_memories_per_component`).
    pub max_memories_per_component: u32,
    /// Tables one component may define (`[etl] max_tables_per_component`).
    pub max_tables_per_component: u32,
    /// Longest a `process-batch` call may run, in milliseconds, whatever the batch
    /// size: what one batch call can take from other pipelines waiting for an
    /// execution slot. A batch that needs longer is processed one message per call.
    pub max_batch_call_ms: u64,
}

impl Default for RuntimeLimits {
    /// The deployment guide's defaults: 64 MiB, 5 s, 100 concurrent executions.
    fn default() -> Self {
        RuntimeLimits {
            memory_limit_bytes: 64 * 1024 * 1024,
            execution_timeout_ms: 5000,
            max_concurrent_executions: 100,
            max_instances: 100,
            max_output_messages: 1000,
            max_output_bytes: 16 * 1024 * 1024,
            max_batch_call_ms: 1000,
            max_core_instances_per_component: 20,
            max_memories_per_component: 4,
            max_tables_per_component: 20,
        }
    }
}

impl RuntimeLimits {
    /// The limits of a legacy instance whose calls end after `timeout_ms` (a
    /// pipeline may lower the runtime's deadline), with the engine's epoch tick; it
    /// is recycled once its memory passes half the limit.
    pub fn legacy(&self, timeout_ms: u64, epoch_tick_ms: u64) -> LegacyLimits {
        LegacyLimits {
            memory_limit_bytes: self.memory_limit_bytes,
            recycle_watermark_bytes: self.memory_limit_bytes / 2,
            execution_timeout_ms: timeout_ms,
            epoch_tick_ms,
            max_output_bytes: self.max_output_bytes,
            max_output_messages: self.max_output_messages,
            max_output_headers: MAX_OUTPUT_HEADERS,
        }
    }
}
