//! The shared wasmtime [`Engine`] and everything that lives as long as it: the
//! configured limits, the pooling instance allocator, the epoch ticker thread that
//! enforces per-call deadlines, and the semaphore bounding concurrent guest calls.
//!
//! One [`Runtime`] exists per broker (or per `rustmq-etl run`). It is cheap to clone.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use wasmtime::component::Linker;

use super::bindings::{self, HostState};
use super::limits::RuntimeLimits;
use super::timers;

/// How often the epoch advances. A deadline is enforced to within one tick; a shorter
/// tick costs a wake-up per tick on an otherwise idle broker.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Bytes of each pooled table slot reset with `memset` instead of `madvise` when an
/// instance is dropped. A component's tables are a few KiB; the `madvise` calls were
/// about half of the cost of a fresh instance.
const TABLE_KEEP_RESIDENT: usize = 64 * 1024;
/// Bytes of each pooled linear-memory slot kept resident (reset in place) between
/// instances when Linux's `PAGEMAP_SCAN` (6.7+) is available: only the pages the guest
/// dirtied are reset, and the next instance in the slot finds its stack and heap
/// pages already mapped instead of faulting them in (a fresh component instance:
/// 27 µs without, 13 µs with). Covers the heap a typical guest touches.
const MEMORY_KEEP_RESIDENT_SCANNED: usize = 16 * 1024 * 1024;
/// The same without `PAGEMAP_SCAN`: then the whole prefix is `memset` on every drop,
/// so only a small one pays off.
const MEMORY_KEEP_RESIDENT_MEMSET: usize = 64 * 1024;

/// Why a [`Runtime`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A limit is zero or out of range.
    #[error("invalid runtime limit: {0}")]
    InvalidLimit(&'static str),
    /// wasmtime refused the configuration.
    #[error("could not create the WebAssembly engine: {0}")]
    Engine(String),
    /// The epoch ticker thread could not be started.
    #[error("could not start the epoch ticker thread: {0}")]
    Ticker(String),
}

/// The WebAssembly runtime: one wasmtime engine plus its limits. Clone freely; the
/// ticker thread stops when the last clone (and every module compiled by it) is gone.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

/// The shared state behind [`Runtime`]; compiled modules and live transforms hold it
/// too, so deadlines keep being enforced while any of them exists.
pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) limits: RuntimeLimits,
    pub(crate) slots: ExecutionSlots,
    /// WASI 0.2 plus the `rustmq:etl` host interfaces; shared by every component.
    pub(crate) linker: Linker<HostState>,
    /// Dropping this sender (with the last `RuntimeInner`) stops the ticker thread.
    _stop_ticker: mpsc::Sender<()>,
}

impl Runtime {
    /// Builds the engine (component model, Cranelift, pooling allocator with an
    /// on-demand fallback, epoch interruption) and starts the epoch ticker.
    pub fn new(limits: RuntimeLimits) -> Result<Runtime, RuntimeError> {
        validate(&limits)?;
        let engine = build_engine(&limits)?;
        let mut linker = Linker::new(&engine);
        bindings::add_to_linker(&mut linker)
            .and_then(|()| timers::add_to_linker(&mut linker))
            .map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let ticker_engine = engine.clone();
        std::thread::Builder::new()
            .name("wasm-epoch-ticker".into())
            .spawn(move || {
                // Ends when every sender is gone, i.e. the runtime was dropped.
                while let Err(RecvTimeoutError::Timeout) = stop_rx.recv_timeout(EPOCH_TICK) {
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Ticker(e.to_string()))?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                slots: ExecutionSlots::new(limits.max_concurrent_executions),
                limits,
                linker,
                _stop_ticker: stop_tx,
            }),
        })
    }

    /// The wasmtime engine (shared with the legacy adapter).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The limits every guest runs under.
    pub fn limits(&self) -> &RuntimeLimits {
        &self.inner.limits
    }

    /// A hex fingerprint of everything that makes compiled code compatible (wasmtime
    /// version, target, engine settings). Key the compiled cache with it.
    pub fn compatibility_fingerprint(&self) -> String {
        use std::hash::Hash as _;
        let mut hasher = Blake3Hasher(blake3::Hasher::new());
        self.inner
            .engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        hasher.0.finalize().to_hex().to_string()
    }
}

fn validate(limits: &RuntimeLimits) -> Result<(), RuntimeError> {
    if limits.memory_limit_bytes == 0 || usize::try_from(limits.memory_limit_bytes).is_err() {
        return Err(RuntimeError::InvalidLimit(
            "memory_limit_bytes must be between 1 and the address space size",
        ));
    }
    if limits.execution_timeout_ms == 0 {
        return Err(RuntimeError::InvalidLimit(
            "execution_timeout_ms must be at least 1",
        ));
    }
    if limits.max_concurrent_executions == 0 {
        return Err(RuntimeError::InvalidLimit(
            "max_concurrent_executions must be at least 1",
        ));
    }
    let per_component = [
        limits.max_core_instances_per_component,
        limits.max_memories_per_component,
        limits.max_tables_per_component,
    ];
    if per_component.contains(&0) {
        return Err(RuntimeError::InvalidLimit(
            "the core instances, memories and tables per component must be at least 1",
        ));
    }
    if limits.max_instances == 0
        || per_component
            .iter()
            .any(|&per| limits.max_instances.checked_mul(per).is_none())
    {
        return Err(RuntimeError::InvalidLimit(
            "max_instances times the per-component limits must fit in 32 bits",
        ));
    }
    Ok(())
}

fn base_config() -> Config {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .strategy(wasmtime::Strategy::Cranelift)
        .epoch_interruption(true);
    config
}

fn build_engine(limits: &RuntimeLimits) -> Result<Engine, RuntimeError> {
    let memory_limit = usize::try_from(limits.memory_limit_bytes)
        .map_err(|_| RuntimeError::InvalidLimit("memory_limit_bytes is too large"))?;
    let pooled = |scan: bool| {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(limits.max_instances)
            .total_core_instances(limits.max_instances * limits.max_core_instances_per_component)
            .total_memories(limits.max_instances * limits.max_memories_per_component)
            .total_tables(limits.max_instances * limits.max_tables_per_component)
            .max_memories_per_component(limits.max_memories_per_component)
            .max_tables_per_component(limits.max_tables_per_component)
            .max_core_instances_per_component(limits.max_core_instances_per_component)
            .max_memory_size(memory_limit)
            .table_keep_resident(TABLE_KEEP_RESIDENT);
        if scan {
            pool.pagemap_scan(wasmtime::Enabled::Yes)
                .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_SCANNED);
        } else {
            pool.linear_memory_keep_resident(MEMORY_KEEP_RESIDENT_MEMSET);
        }
        let mut config = base_config();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        Engine::new(&config)
    };
    // `Enabled::Yes` fails where the kernel lacks `PAGEMAP_SCAN`; then the pool
    // without it.
    match pooled(true).or_else(|_| pooled(false)) {
        Ok(engine) => Ok(engine),
        Err(pooling_error) => {
            // Typically the machine (or a ulimit) refuses the virtual address space the
            // pool reserves up front. On-demand allocation works everywhere, only
            // instantiation is slower.
            tracing::warn!(
                error = %format!("{pooling_error:#}"),
                max_instances = limits.max_instances,
                "pooling instance allocator unavailable; falling back to on-demand allocation"
            );
            let mut config = base_config();
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).map_err(|e| RuntimeError::Engine(format!("{e:#}")))
        }
    }
}

/// Feeds `Hash` output into blake3 so the fingerprint is stable across Rust versions
/// (unlike `DefaultHasher`).
struct Blake3Hasher(blake3::Hasher);

impl std::hash::Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let hash = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_le_bytes(first)
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// A counting semaphore for synchronous guest calls. A std `Mutex` + `Condvar` is
/// enough: guest calls are blocking, and the critical section is a counter update.
/// Releasing only signals the condvar when someone is waiting: `notify_one` is a
/// futex syscall even with no waiter, and it was a measurable share of a guest call.
pub(crate) struct ExecutionSlots {
    state: Mutex<SlotState>,
    released: Condvar,
}

struct SlotState {
    free: usize,
    waiting: usize,
}

impl ExecutionSlots {
    fn new(slots: usize) -> Self {
        ExecutionSlots {
            state: Mutex::new(SlotState {
                free: slots,
                waiting: 0,
            }),
            released: Condvar::new(),
        }
    }

    /// Waits for a free slot; the slot is returned when the guard drops.
    pub(crate) fn acquire(&self) -> SlotGuard<'_> {
        // A poisoned lock only means another thread panicked while holding it; the
        // counters themselves are always consistent.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.free == 0 {
            state.waiting += 1;
            while state.free == 0 {
                state = self.released.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.waiting -= 1;
        }
        state.free -= 1;
        SlotGuard { slots: self }
    }
}

/// One held execution slot.
pub(crate) struct SlotGuard<'a> {
    slots: &'a ExecutionSlots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock().unwrap_or_else(|p| p.into_inner());
        state.free += 1;
        let someone_waits = state.waiting > 0;
        drop(state);
        if someone_waits {
            self.slots.released.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_limits_are_rejected() {
        let limits = RuntimeLimits {
            execution_timeout_ms: 0,
            ..RuntimeLimits::default()
        };
        assert!(matches!(
            Runtime::new(limits),
            Err(RuntimeError::InvalidLimit(_))
        ));
    }

    #[test]
    fn fingerprint_is_stable_for_one_configuration() {
        let limits = RuntimeLimits {
            max_instances: 2,
            ..RuntimeLimits::default()
        };
        let a = Runtime::new(limits.clone()).unwrap();
        let b = Runtime::new(limits).unwrap();
        assert_eq!(a.compatibility_fingerprint(), b.compatibility_fingerprint());
        assert_eq!(a.compatibility_fingerprint().len(), 64);
    }

    #[test]
    fn execution_slots_block_until_released() {
        let slots = Arc::new(ExecutionSlots::new(1));
        let held = slots.acquire();
        let (tx, rx) = mpsc::channel();
        let waiter = {
            let slots = Arc::clone(&slots);
            std::thread::spawn(move || {
                let _slot = slots.acquire();
                tx.send(()).unwrap();
            })
        };
        // The waiter cannot get a slot while we hold the only one.
        assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
        drop(held);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}
