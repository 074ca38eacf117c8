//! The component implementation of [`Transform`]: one reusable guest instance per
//! transform, replaced by a fresh one (with `init` run again) after any fault.
//!
//! A call takes an execution slot, makes sure an instance is live, arms the deadline
//! (epochs for wasm code, the same instant for WASI timers: see `timers`), lowers the caller's message straight from its borrowed fields, and lifts
//! the result. Any trap (including a timeout or a refused memory grow) leaves the
//! `Store` unusable, so it is dropped and the next call instantiates again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{Component, ComponentExportIndex, InstancePre, TypedFunc};
use wasmtime::{AsContextMut, Store, StoreLimitsBuilder, Trap};

use super::bindings::{
    BatchContextArg, BatchParams, BatchReturn, BufferContextArg, BufferParams, BufferReturn,
    ContextArg, GuestLimiter, HostState, MessageArg, ProcessParams, ProcessReturn,
    ProcessReturnV11,
};
use super::buffer;
use super::engine::{RuntimeInner, EPOCH_TICK};
use super::output::{BudgetGuard, OutputBudget, MAX_BATCH_OUTPUT_BYTES};
use super::wasi::{self, LogBudget};
use super::{BatchContext, ProcessContext, ProcessOutput, Transform, TransformError};
use crate::message::Message;
use crate::state::SharedState;
use rustmq_etl_legacy::GuestClock;

/// Longest error text kept from a trap or an `init` refusal, in bytes. Trap messages
/// carry a wasm backtrace and refusals are guest-chosen strings; both end up in logs,
/// HTTP answers and error-topic headers.
pub const MAX_ERROR_TEXT_BYTES: usize = 2048;

/// A compiled component: the code plus its pre-linked instance template.
pub(crate) struct ComponentModule {
    pub(crate) runtime: Arc<RuntimeInner>,
    pub(crate) component: Component,
    pub(crate) pre: InstancePre<HostState>,
}

/// A component transform bound to one pipeline.
pub struct ComponentTransform {
    runtime: Arc<RuntimeInner>,
    pre: InstancePre<HostState>,
    exports: Exports,
    module_id: Arc<str>,
    pipeline_id: Arc<str>,
    params: Arc<BTreeMap<String, String>>,
    /// `params` in the form `init` takes, built once.
    init_params: Vec<(String, String)>,
    timeout_ms: u64,
    live: Option<LiveInstance>,
    recycles: u64,
    /// The pipeline's durable state, handed to every instance after its `init`.
    state: SharedState,
    /// The batch layout of the last `process-buffer` call, its capacity reused.
    batch_buffer: Vec<u8>,
}

/// Where the component's exports are.
#[derive(Clone, Copy)]
struct Exports {
    init: ComponentExportIndex,
    process: ComponentExportIndex,
    process_batch: Option<ComponentExportIndex>,
    process_buffer: Option<ComponentExportIndex>,
}

/// The `init` export (the same in every version).
type InitFunc = TypedFunc<(&'static [(String, String)],), (Result<(), String>,)>;

/// `process`, typed for the contract version the component was built against
/// (the types are checked structurally, so the version need not be guessed from
/// names).
enum ProcessFunc {
    V1_0(TypedFunc<ProcessParams<'static>, ProcessReturn>),
    V1_1(TypedFunc<ProcessParams<'static>, ProcessReturnV11>),
}

/// A running instance and what is needed to call it.
struct LiveInstance {
    store: Store<HostState>,
    /// Typechecked once per instance; `'static` only in name, the parameter borrows
    /// are shortened per call (the types are covariant in their parameters).
    process: ProcessFunc,
    process_batch: Option<TypedFunc<BatchParams<'static>, BatchReturn>>,
    process_buffer: Option<TypedFunc<BufferParams<'static>, BufferReturn>>,
}

impl ComponentTransform {
    /// Creates the transform and its first instance, running `init`.
    pub(crate) fn new(
        module: &ComponentModule,
        module_id: &str,
        pipeline_id: &str,
        params: &BTreeMap<String, String>,
        timeout_ms: u64,
    ) -> Result<Self, TransformError> {
        let export = |name: &str| module.component.get_export_index(None, name);
        let missing =
            |name: &str| TransformError::Abi(format!("the component does not export `{name}`"));
        let exports = Exports {
            init: export("init").ok_or_else(|| missing("init"))?,
            process: export("process").ok_or_else(|| missing("process"))?,
            process_batch: export("process-batch"),
            process_buffer: export("process-buffer"),
        };
        let mut transform = ComponentTransform {
            runtime: Arc::clone(&module.runtime),
            pre: module.pre.clone(),
            exports,
            module_id: Arc::from(module_id),
            pipeline_id: Arc::from(pipeline_id),
            params: Arc::new(params.clone()),
            init_params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            timeout_ms,
            live: None,
            recycles: 0,
            state: SharedState::unavailable(NO_STATE),
            batch_buffer: Vec::new(),
        };
        let runtime = Arc::clone(&transform.runtime);
        let _slot = runtime.slots.acquire();
        transform.live = Some(transform.start_instance()?);
        Ok(transform)
    }

    /// The deadline for each call from now on, in milliseconds (a pipeline may ask
    /// for less than the runtime's `execution_timeout_ms`; 0 is treated as 1).
    pub fn set_timeout_ms(&mut self, ms: u64) {
        self.timeout_ms = ms.max(1);
    }

    /// Starts the deadline of a call that may run `ms`: epochs stop wasm code then,
    /// and no WASI timer the guest sets outlasts it.
    fn arm(store: &mut Store<HostState>, ms: u64) {
        let tick = EPOCH_TICK.as_millis() as u64;
        store.set_epoch_deadline(ms.div_ceil(tick).max(1));
        store.data_mut().deadline = Instant::now() + Duration::from_millis(ms);
    }

    /// The deadline of a batch call of `n` messages: the per-call deadline for
    /// each, but never more than the runtime's `max_batch_call_ms` and
    /// `execution_timeout_ms` (and never less than the per-call deadline), so that
    /// one batch call holds an execution slot no longer than that.
    fn batch_deadline_ms(&self, n: usize) -> u64 {
        let limits = &self.runtime.limits;
        let cap = limits
            .max_batch_call_ms
            .min(limits.execution_timeout_ms)
            .max(self.timeout_ms);
        self.timeout_ms.saturating_mul(n as u64).min(cap)
    }

    /// Bytes a batch answer of `n` messages may hold: what `n` calls could, within
    /// [`MAX_BATCH_OUTPUT_BYTES`] (never under one call's limit).
    fn batch_output_bytes(&self, n: usize) -> usize {
        let per_call = self.runtime.limits.max_output_bytes;
        per_call
            .saturating_mul(n)
            .min(MAX_BATCH_OUTPUT_BYTES.max(per_call))
    }

    /// Instantiates a fresh instance and runs `init` on it.
    fn start_instance(&self) -> Result<LiveInstance, TransformError> {
        let limits = &self.runtime.limits;
        let budget = LogBudget::default();
        let clock = GuestClock::start();
        let wasi = wasi::locked_down_builder(&self.module_id, &budget)
            .monotonic_clock(clock)
            .build();
        let store_limits = StoreLimitsBuilder::new()
            .memory_size(usize::try_from(limits.memory_limit_bytes).unwrap_or(usize::MAX))
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(
            &self.runtime.engine,
            HostState {
                wasi,
                table: wasmtime::component::ResourceTable::new(),
                limits: GuestLimiter::new(store_limits),
                module_id: Arc::clone(&self.module_id),
                pipeline_id: Arc::clone(&self.pipeline_id),
                params: Arc::clone(&self.params),
                log_budget: budget,
                state: SharedState::unavailable("durable state cannot be used from `init`"),
                clock,
                deadline: Instant::now(),
            },
        );
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        // Instantiation runs guest start functions; they get the same deadline.
        Self::arm(&mut store, self.timeout_ms);

        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| self.fault(&store, e, TransformError::Instantiate))?;
        let func = |store: &mut Store<HostState>, index, name: &str| {
            instance
                .get_func(store.as_context_mut(), index)
                .ok_or_else(|| TransformError::Abi(format!("the instance has no `{name}` export")))
        };
        let wrong_type = |name: &str, e: wasmtime::Error| {
            TransformError::Abi(bounded(format!("`{name}` has the wrong type: {e:#}")))
        };
        let init: InitFunc = func(&mut store, self.exports.init, "init")?
            .typed(&store)
            .map_err(|e| wrong_type("init", e))?;
        let process_func = func(&mut store, self.exports.process, "process")?;
        let process = match process_func.typed::<ProcessParams<'static>, ProcessReturnV11>(&store) {
            Ok(typed) => ProcessFunc::V1_1(typed),
            Err(_) => ProcessFunc::V1_0(
                process_func
                    .typed::<ProcessParams<'static>, ProcessReturn>(&store)
                    .map_err(|e| wrong_type("process", e))?,
            ),
        };
        let process_batch = match self.exports.process_batch {
            Some(index) => Some(
                func(&mut store, index, "process-batch")?
                    .typed::<BatchParams<'static>, BatchReturn>(&store)
                    .map_err(|e| wrong_type("process-batch", e))?,
            ),
            None => None,
        };
        let process_buffer = match self.exports.process_buffer {
            Some(index) => Some(
                func(&mut store, index, "process-buffer")?
                    .typed::<BufferParams<'static>, BufferReturn>(&store)
                    .map_err(|e| wrong_type("process-buffer", e))?,
            ),
            None => None,
        };

        Self::arm(&mut store, self.timeout_ms);
        store.data().log_budget.reset();
        let answer = init
            .call(&mut store, (&self.init_params,))
            .map_err(|e| self.fault(&store, e, TransformError::Trap))?;
        self.report_dropped_logs(&store);
        let (answer,) = answer;
        answer.map_err(|refusal| TransformError::InitRefused(bounded(refusal)))?;
        store.data_mut().state = self.state.clone();
        Ok(LiveInstance {
            store,
            process,
            process_batch,
            process_buffer,
        })
    }

    /// Classifies a call failure: an epoch interrupt is a timeout, a refused memory
    /// grow is a memory-limit hit, anything else is reported through `other`.
    fn fault(
        &self,
        store: &Store<HostState>,
        error: wasmtime::Error,
        other: fn(String) -> TransformError,
    ) -> TransformError {
        if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
            TransformError::Timeout {
                limit_ms: self.timeout_ms,
            }
        } else if store.data().limits.memory_refused {
            TransformError::MemoryLimit {
                limit_bytes: self.runtime.limits.memory_limit_bytes,
            }
        } else {
            // The root cause ("wasm trap: ...", a guest panic's `unreachable`) says
            // what happened; the wasm backtrace around it is for the debug log.
            tracing::debug!(
                module_id = &*self.module_id,
                pipeline_id = &*self.pipeline_id,
                error = %format!("{error:#}"),
                "guest call failed"
            );
            other(bounded(error.root_cause().to_string()))
        }
    }

    fn report_dropped_logs(&self, store: &Store<HostState>) {
        let dropped = store.data().log_budget.dropped();
        if dropped > 0 {
            tracing::warn!(
                module_id = &*self.module_id,
                pipeline_id = &*self.pipeline_id,
                dropped,
                "guest log lines over the per-call limit were dropped"
            );
        }
    }

    /// Throws the live instance away; the next call starts a fresh one.
    fn discard(&mut self) {
        if self.live.take().is_some() {
            self.recycles += 1;
        }
    }
}

impl ComponentTransform {
    /// Takes the live instance (starting one if needed) with its deadline armed.
    fn ready(&mut self) -> Result<LiveInstance, TransformError> {
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.start_instance()?,
        };
        Self::arm(&mut live.store, self.timeout_ms);
        live.store.data().log_budget.reset();
        Ok(live)
    }

    /// Puts the instance back after a call; on a failure, classifies it and
    /// discards the instance.
    fn finish<T>(
        &mut self,
        live: LiveInstance,
        budget: BudgetGuard,
        call: wasmtime::Result<T>,
    ) -> Result<T, TransformError> {
        let over_cap = budget.exceeded();
        drop(budget);
        self.report_dropped_logs(&live.store);
        match call {
            Ok(answer) => {
                self.live = Some(live);
                Ok(answer)
            }
            Err(error) => {
                let fault = match over_cap {
                    Some(over) => TransformError::Abi(over.to_string()),
                    None => self.fault(&live.store, error, TransformError::Trap),
                };
                self.live = Some(live);
                self.discard();
                Err(fault)
            }
        }
    }
}

impl ComponentTransform {
    /// A batch through the 1.2 `process-buffer` export: the batch written into one
    /// reused buffer and lowered with one copy; the answer lifted with one copy
    /// (charged to the output budget first) and checked whole before any message is
    /// built from it.
    fn process_buffer(
        &mut self,
        messages: &[&Message],
        offsets: &[u64],
        ctx: &BatchContext,
        moving: bool,
    ) -> Result<Vec<ProcessOutput>, TransformError> {
        let runtime = Arc::clone(&self.runtime);
        let _slot = runtime.slots.acquire();
        let mut batch = std::mem::take(&mut self.batch_buffer);
        buffer::encode(messages, offsets, &mut batch)?;
        let mut live = self.ready()?;
        let n = messages.len();
        Self::arm(&mut live.store, self.batch_deadline_ms(n));
        let limits = &self.runtime.limits;
        let caps = buffer::Caps {
            messages: limits.max_output_messages,
            bytes: limits.max_output_bytes,
            batch_bytes: self.batch_output_bytes(n),
        };
        // The answer's tables come on top of its messages' bytes: at most the
        // fan-out limit of outputs per input, each with its entry.
        let tables = rustmq_etl_buffer::HEADER
            + n * rustmq_etl_buffer::RESULT_ENTRY
            + n.saturating_mul(limits.max_output_messages)
                .saturating_mul(rustmq_etl_buffer::OUTPUT_ENTRY + rustmq_etl_buffer::HEADER_ENTRY);
        let budget = OutputBudget::guard(usize::MAX, caps.batch_bytes.saturating_add(tables));
        let process_buffer = live.process_buffer.expect("typed with the instance");
        let call = process_buffer
            .call(&mut live.store, (&batch, BufferContextArg::new(ctx)))
            .map(|(answer,)| answer.0);
        self.batch_buffer = batch;
        let answer = self.finish(live, budget, call)?;
        match moving {
            true => buffer::decode_moving(&answer, messages, caps),
            false => buffer::decode(&answer, messages, caps),
        }
    }
}

/// Why a pipeline's state calls are refused until the worker binds its state.
const NO_STATE: &str =
    "this pipeline has no durable state: state needs a pipeline between this broker's own topics";

impl Transform for ComponentTransform {
    fn process(
        &mut self,
        message: &Message,
        ctx: &ProcessContext,
    ) -> Result<ProcessOutput, TransformError> {
        let runtime = Arc::clone(&self.runtime);
        let _slot = runtime.slots.acquire();
        let mut live = self.ready()?;
        // The output caps are enforced while wasmtime lifts the answer, before it is
        // copied into host memory (see `output`).
        let limits = &self.runtime.limits;
        let budget = OutputBudget::guard(limits.max_output_messages, limits.max_output_bytes);
        let args = (MessageArg::new(message), ContextArg::new(ctx));
        let call = match &live.process {
            ProcessFunc::V1_0(f) => f.call(&mut live.store, args).map(|(r,)| r.into()),
            ProcessFunc::V1_1(f) => f.call(&mut live.store, args).map(|(r,)| r.into()),
        };
        self.finish(live, budget, call)
    }

    fn process_batch_moving(
        &mut self,
        messages: &[&Message],
        offsets: &[u64],
        ctx: &BatchContext,
    ) -> Result<Vec<ProcessOutput>, TransformError> {
        if self.exports.process_buffer.is_some() {
            return self.process_buffer(messages, offsets, ctx, true);
        }
        self.process_batch(messages, offsets, ctx)
    }

    fn process_batch(
        &mut self,
        messages: &[&Message],
        offsets: &[u64],
        ctx: &BatchContext,
    ) -> Result<Vec<ProcessOutput>, TransformError> {
        if self.exports.process_buffer.is_some() {
            return self.process_buffer(messages, offsets, ctx, false);
        }
        if self.exports.process_batch.is_none() {
            return super::process_each(self, messages, offsets, ctx);
        }
        let runtime = Arc::clone(&self.runtime);
        let _slot = runtime.slots.acquire();
        let mut live = self.ready()?;
        let n = messages.len();
        Self::arm(&mut live.store, self.batch_deadline_ms(n));
        // A batch answer may hold what `n` calls could, but its bytes stay within
        // MAX_BATCH_OUTPUT_BYTES; a batch over it is processed again one message
        // per call, where the per-call caps apply.
        let limits = &self.runtime.limits;
        let budget = OutputBudget::batch_guard(
            limits.max_output_messages.saturating_mul(n),
            self.batch_output_bytes(n),
            n,
        );
        let args: Vec<MessageArg<'_>> = messages.iter().map(|m| MessageArg::new(m)).collect();
        let process_batch = live.process_batch.expect("typed with the instance");
        let call = process_batch
            .call(&mut live.store, (&args, BatchContextArg::new(ctx, offsets)))
            .map(|(results,)| results.0.into_iter().map(ProcessOutput::from).collect());
        self.finish(live, budget, call)
    }

    fn takes_batches(&self) -> bool {
        self.exports.process_batch.is_some() || self.exports.process_buffer.is_some()
    }

    fn attach_state(&mut self, state: SharedState) {
        if let Some(live) = &mut self.live {
            live.store.data_mut().state = state.clone();
        }
        self.state = state;
    }

    fn recycles(&self) -> u64 {
        self.recycles
    }

    fn memory_bytes(&self) -> u64 {
        self.live
            .as_ref()
            .map_or(0, |live| live.store.data().limits.memory_bytes as u64)
    }

    fn set_timeout_ms(&mut self, ms: u64) {
        ComponentTransform::set_timeout_ms(self, ms);
    }
}

/// Cuts guest-influenced error text to [`MAX_ERROR_TEXT_BYTES`].
fn bounded(mut text: String) -> String {
    if text.len() > MAX_ERROR_TEXT_BYTES {
        let mut end = MAX_ERROR_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}
