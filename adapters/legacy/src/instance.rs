//! One live legacy guest and the per-message ABI.
//!
//! For each message: `alloc(len)`, write the JSON input, `process_message(ptr, len)`,
//! read the result, `dealloc(ptr, len)`. One deadline covers the whole sequence: an
//! epoch deadline for wasm code, and the same instant for a guest asleep in WASI (see
//! [`crate::poll`]).
//!
//! The guide's module leaks every result (`mem::forget`), so its memory only grows.
//! After each message, if memory has passed [`LegacyLimits::recycle_watermark_bytes`],
//! the instance is dropped and the next message gets a fresh one: the module runs
//! forever without reaching the memory limit. Any fault drops the instance too, since
//! its memory can no longer be trusted.

use std::time::{Duration, Instant};

use wasmtime::{Memory, Store, StoreLimitsBuilder, Trap, TypedFunc};

use crate::limiter::GuestLimiter;

use crate::abi::{read_packed_result, read_pointer_result, LegacyInput, LegacyOutput};
use crate::error::{AbiFault, CallError};
use crate::inspect::{ProcessAbi, INITIALIZE_EXPORT};
use crate::module::LegacyModule;
pub use crate::state::LegacyState;
use crate::wasi::{GuestClock, WasiFactory};

/// Table elements an instance may hold; Rust modules need a few hundred at most, and a
/// guest-grown table is host memory outside the linear-memory limit.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 17;

/// Most header pairs one result may hold, across its messages. Header pairs of empty
/// strings cost nothing against the byte cap yet take host memory (48 bytes each), so
/// they are counted on their own. 256 Ki pairs is 26 per message at the broker's
/// default fan-out cap, and at most 12 MiB of host memory. The broker's components
/// get the same cap.
pub const MAX_OUTPUT_HEADERS: usize = 256 * 1024;

/// The limits one instance runs under. The adapter has no defaults of its own: the
/// broker's runtime fills these in from its limits (`RuntimeLimits::legacy`), so a
/// legacy module gets the caps a component gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyLimits {
    /// Linear memory an instance may grow to; a grow past it fails inside the guest.
    pub memory_limit_bytes: u64,
    /// Once memory is larger than this after a message, the instance is replaced.
    /// Must leave room below the limit for one message's peak use.
    pub recycle_watermark_bytes: u64,
    /// Wall-clock budget for one message (`alloc` + `process_message` + `dealloc`).
    pub execution_timeout_ms: u64,
    /// How often the engine's epoch is incremented; converts the timeout to ticks.
    pub epoch_tick_ms: u64,
    /// Largest result JSON read back, in bytes.
    pub max_output_bytes: usize,
    /// Most messages one result may hold.
    pub max_output_messages: usize,
    /// Most header pairs one result may hold, across its messages.
    pub max_output_headers: usize,
}

impl LegacyLimits {
    /// The timeout in epoch ticks, rounded up, at least one.
    fn deadline_ticks(&self) -> u64 {
        self.execution_timeout_ms
            .div_ceil(self.epoch_tick_ms.max(1))
            .max(1)
    }

    /// The deadline of a call starting now.
    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.execution_timeout_ms)
    }
}

enum ProcessFn {
    Pointer(TypedFunc<(i32, i32), i32>),
    Packed(TypedFunc<(i32, i32), i64>),
}

/// One instantiation: its store and the exports the ABI calls.
struct Live {
    store: Store<LegacyState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    dealloc: TypedFunc<(i32, i32), ()>,
    process: ProcessFn,
}

/// A legacy module bound to limits and a WASI policy, holding at most one live
/// instance and replacing it as needed. Not shared between threads.
pub struct LegacyInstance {
    module: LegacyModule,
    limits: LegacyLimits,
    wasi: WasiFactory,
    live: Option<Live>,
    /// The JSON input buffer, reused across messages.
    input: Vec<u8>,
    recycles: u64,
}

impl LegacyInstance {
    /// Instantiates `module` now, so a module that cannot start fails here rather than
    /// on its first message.
    pub fn new(
        module: &LegacyModule,
        limits: LegacyLimits,
        wasi: WasiFactory,
    ) -> Result<LegacyInstance, CallError> {
        let mut instance = LegacyInstance {
            module: module.clone(),
            limits,
            wasi,
            live: None,
            input: Vec::new(),
            recycles: 0,
        };
        instance.live = Some(instance.instantiate()?);
        Ok(instance)
    }

    /// Runs the guest on one message.
    pub fn process(&mut self, input: &LegacyInput<'_>) -> Result<LegacyOutput, CallError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.instantiate()?,
        };
        input.encode(&mut self.input);
        match self.call(&mut live, input.timestamp) {
            Ok(output) => {
                if (live.memory.data_size(&live.store) as u64) > self.limits.recycle_watermark_bytes
                {
                    self.recycles += 1;
                } else {
                    self.live = Some(live);
                }
                Ok(output)
            }
            Err(e) => {
                self.recycles += 1;
                Err(e)
            }
        }
    }

    /// How many times the instance has been replaced (after faults, or to reclaim
    /// leaked memory).
    pub fn recycles(&self) -> u64 {
        self.recycles
    }

    /// Bytes of linear memory the live instance holds (0 when none is live).
    pub fn memory_bytes(&self) -> u64 {
        self.live
            .as_ref()
            .map_or(0, |l| l.memory.data_size(&l.store) as u64)
    }

    /// Changes the per-message deadline for later calls (a pipeline's `timeout_ms`).
    pub fn set_timeout_ms(&mut self, ms: u64) {
        self.limits.execution_timeout_ms = ms.max(1);
    }

    /// The limits in force.
    pub fn limits(&self) -> &LegacyLimits {
        &self.limits
    }

    fn instantiate(&self) -> Result<Live, CallError> {
        const DURING: &str = "instantiate";
        let engine = self.module.module().engine();
        let limiter = GuestLimiter::new(
            StoreLimitsBuilder::new()
                .memory_size(usize::try_from(self.limits.memory_limit_bytes).unwrap_or(usize::MAX))
                .table_elements(MAX_TABLE_ELEMENTS)
                .instances(1)
                .memories(1)
                .tables(1)
                .build(),
        );
        let clock = GuestClock::start();
        let mut store = Store::new(
            engine,
            LegacyState {
                wasi: (self.wasi)().monotonic_clock(clock).build_p1(),
                limiter,
                clock,
                deadline: self.limits.deadline(),
            },
        );
        store.limiter(|s| &mut s.limiter);
        self.arm(&mut store);
        let instance = self
            .module
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| {
                self.fault(&store, e, DURING)
                    .unwrap_or_else(|e| CallError::Instantiate(format!("{e:#}")))
            })?;
        let missing = |what: &str| {
            CallError::Instantiate(format!("export `{what}` is missing or has the wrong type"))
        };
        if self.module.info().has_initialize {
            let init = instance
                .get_typed_func::<(), ()>(&mut store, INITIALIZE_EXPORT)
                .map_err(|_| missing(INITIALIZE_EXPORT))?;
            init.call(&mut store, ())
                .map_err(|e| self.call_fault(&store, e, INITIALIZE_EXPORT))?;
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| missing("memory"))?;
        let alloc = instance
            .get_typed_func(&mut store, "alloc")
            .map_err(|_| missing("alloc"))?;
        let dealloc = instance
            .get_typed_func(&mut store, "dealloc")
            .map_err(|_| missing("dealloc"))?;
        let process = match self.module.info().abi {
            ProcessAbi::Pointer => instance
                .get_typed_func(&mut store, "process_message")
                .map(ProcessFn::Pointer),
            ProcessAbi::PackedPointerLength => instance
                .get_typed_func(&mut store, "process_message")
                .map(ProcessFn::Packed),
        }
        .map_err(|_| missing("process_message"))?;
        Ok(Live {
            store,
            memory,
            alloc,
            dealloc,
            process,
        })
    }

    /// The ABI sequence for the JSON already in `self.input`.
    fn call(&self, live: &mut Live, input_timestamp: i64) -> Result<LegacyOutput, CallError> {
        let bytes = self.input.as_slice();
        let len =
            i32::try_from(bytes.len()).map_err(|_| AbiFault::InputTooLarge { len: bytes.len() })?;
        live.store.data_mut().limiter.memory_refused = false;
        self.arm(&mut live.store);

        let ptr = live
            .alloc
            .call(&mut live.store, len)
            .map_err(|e| self.call_fault(&live.store, e, "alloc"))?;
        if ptr == 0 {
            if live.store.data().limiter.memory_refused {
                return Err(self.memory_limit("alloc"));
            }
            return Err(AbiFault::AllocReturnedNull { len: len as u32 }.into());
        }
        live.memory
            .write(&mut live.store, ptr as u32 as usize, bytes)
            .map_err(|_| AbiFault::AllocOutOfBounds {
                ptr: ptr as u32,
                len: len as u32,
                memory_size: live.memory.data_size(&live.store),
            })?;

        let cap = self.limits.max_output_bytes;
        let raw = match &live.process {
            ProcessFn::Pointer(f) => {
                let out = f
                    .call(&mut live.store, (ptr, len))
                    .map_err(|e| self.call_fault(&live.store, e, "process_message"))?;
                read_pointer_result(live.memory.data(&live.store), out as u32, cap)?
            }
            ProcessFn::Packed(f) => {
                let out = f
                    .call(&mut live.store, (ptr, len))
                    .map_err(|e| self.call_fault(&live.store, e, "process_message"))?
                    as u64;
                let (out_ptr, out_len) = ((out >> 32) as u32, out as u32);
                read_packed_result(live.memory.data(&live.store), out_ptr, out_len, cap)?
            }
        };
        // The result is parsed (owned) before the input is freed, so `dealloc` cannot
        // disturb it.
        live.dealloc
            .call(&mut live.store, (ptr, len))
            .map_err(|e| self.call_fault(&live.store, e, "dealloc"))?;
        Ok(raw.into_output(
            input_timestamp,
            self.limits.max_output_messages,
            self.limits.max_output_headers,
        )?)
    }

    /// Starts the deadline of a call: for wasm code (epochs) and for WASI sleeps.
    fn arm(&self, store: &mut Store<LegacyState>) {
        store.set_epoch_deadline(self.limits.deadline_ticks());
        store.data_mut().deadline = self.limits.deadline();
    }

    fn memory_limit(&self, during: &'static str) -> CallError {
        CallError::MemoryLimit {
            limit_bytes: self.limits.memory_limit_bytes,
            during,
        }
    }

    /// Turns an error from a guest call into what the guest did.
    fn call_fault(
        &self,
        store: &Store<LegacyState>,
        e: wasmtime::Error,
        during: &'static str,
    ) -> CallError {
        self.fault(store, e, during)
            .unwrap_or_else(|e| CallError::Trap {
                during,
                message: format!("{e:#}"),
            })
    }

    /// Timeout and memory limit, recognised; anything else handed back.
    fn fault(
        &self,
        store: &Store<LegacyState>,
        e: wasmtime::Error,
        during: &'static str,
    ) -> Result<CallError, wasmtime::Error> {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Ok(CallError::Timeout {
                limit_ms: self.limits.execution_timeout_ms,
                during,
            }),
            _ if store.data().limiter.memory_refused => Ok(self.memory_limit(during)),
            Some(trap) => Ok(CallError::Trap {
                during,
                message: trap.to_string(),
            }),
            None => Err(e),
        }
    }
}
