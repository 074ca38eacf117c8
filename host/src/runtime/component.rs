//! The component implementation of [`Transform`]: one reusable guest instance per
//! transform, replaced by a fresh one (with `init` run again) after any fault.
//!
//! A call takes an execution slot, makes sure an instance is live, arms the epoch
//! deadline, lowers the caller's message straight from its borrowed fields, and lifts
//! the result. Any trap (including a timeout or a refused memory grow) leaves the
//! `Store` unusable, so it is dropped and the next call instantiates again.

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{ComponentExportIndex, TypedFunc};
use wasmtime::{Store, StoreLimitsBuilder, Trap};

use super::bindings::{
    ContextArg, Etl, EtlPre, GuestLimiter, HostState, MessageArg, ProcessParams, ProcessReturn,
};
use super::engine::{RuntimeInner, EPOCH_TICK};
use super::loader::ComponentModule;
use super::output::OutputBudget;
use super::wasi::{self, LogBudget};
use super::{ProcessContext, ProcessOutput, Transform, TransformError};
use crate::message::Message;

/// Longest error text kept from a trap or an `init` refusal, in bytes. Trap messages
/// carry a wasm backtrace and refusals are guest-chosen strings; both end up in logs,
/// HTTP answers and error-topic headers.
pub const MAX_ERROR_TEXT_BYTES: usize = 2048;

/// A component transform bound to one pipeline.
pub struct ComponentTransform {
    runtime: Arc<RuntimeInner>,
    pre: EtlPre<HostState>,
    process_export: ComponentExportIndex,
    module_id: Arc<str>,
    pipeline_id: Arc<str>,
    params: Arc<BTreeMap<String, String>>,
    /// `params` in the form `init` takes, built once.
    init_params: Vec<(String, String)>,
    timeout_ms: u64,
    live: Option<LiveInstance>,
    recycles: u64,
}

/// A running instance and what is needed to call it.
struct LiveInstance {
    store: Store<HostState>,
    /// Typechecked once per instance; `'static` only in name, the parameter borrows
    /// are shortened per call (the type is covariant in its parameters).
    process: TypedFunc<ProcessParams<'static>, ProcessReturn>,
}

impl ComponentTransform {
    /// Creates the transform and its first instance, running `init`.
    pub(crate) fn new(
        module: &ComponentModule,
        module_id: &str,
        pipeline_id: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Self, TransformError> {
        let process_export = module
            .component
            .get_export_index(None, "process")
            .ok_or_else(|| TransformError::Abi("the component does not export `process`".into()))?;
        let mut transform = ComponentTransform {
            runtime: Arc::clone(&module.runtime),
            pre: module.pre.clone(),
            process_export,
            module_id: Arc::from(module_id),
            pipeline_id: Arc::from(pipeline_id),
            params: Arc::new(params.clone()),
            init_params: params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            timeout_ms: module.runtime.limits.execution_timeout_ms,
            live: None,
            recycles: 0,
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

    fn deadline_ticks(&self) -> u64 {
        let tick = EPOCH_TICK.as_millis() as u64;
        self.timeout_ms.div_ceil(tick).max(1)
    }

    /// Instantiates a fresh instance and runs `init` on it.
    fn start_instance(&self) -> Result<LiveInstance, TransformError> {
        let limits = &self.runtime.limits;
        let budget = LogBudget::default();
        let wasi = wasi::locked_down_builder(&self.module_id, &budget).build();
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
            },
        );
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_trap();
        // Instantiation runs guest start functions; they get the same deadline.
        store.set_epoch_deadline(self.deadline_ticks());

        let instance = self
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|e| self.fault(&store, e, TransformError::Instantiate))?;
        let bindings = Etl::new(&mut store, &instance)
            .map_err(|e| TransformError::Instantiate(bounded(format!("{e:#}"))))?;
        let process = instance
            .get_func(&mut store, self.process_export)
            .ok_or_else(|| TransformError::Abi("the instance has no `process` export".into()))?
            .typed::<ProcessParams<'static>, ProcessReturn>(&store)
            .map_err(|e| {
                TransformError::Abi(bounded(format!("`process` has the wrong type: {e:#}")))
            })?;

        store.set_epoch_deadline(self.deadline_ticks());
        store.data().log_budget.reset();
        let answer = bindings
            .call_init(&mut store, &self.init_params)
            .map_err(|e| self.fault(&store, e, TransformError::Trap))?;
        self.report_dropped_logs(&store);
        answer.map_err(|refusal| TransformError::InitRefused(bounded(refusal)))?;
        Ok(LiveInstance { store, process })
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

impl Transform for ComponentTransform {
    fn process(
        &mut self,
        message: &Message,
        ctx: &ProcessContext,
    ) -> Result<ProcessOutput, TransformError> {
        let runtime = Arc::clone(&self.runtime);
        let _slot = runtime.slots.acquire();
        let ticks = self.deadline_ticks();
        let mut live = match self.live.take() {
            Some(live) => live,
            None => self.start_instance()?,
        };
        live.store.set_epoch_deadline(ticks);
        live.store.data().log_budget.reset();
        // The output caps are enforced while wasmtime lifts the answer, before it is
        // copied into host memory (see `output`).
        let limits = &self.runtime.limits;
        let budget = OutputBudget::guard(limits.max_output_messages, limits.max_output_bytes);
        let call = live.process.call(
            &mut live.store,
            (MessageArg::new(message), ContextArg::new(ctx)),
        );
        let over_cap = budget.exceeded();
        drop(budget);
        self.report_dropped_logs(&live.store);
        let result = match call {
            Ok((result,)) => result,
            Err(error) => {
                let fault = match over_cap {
                    Some(over) => TransformError::Abi(over.to_string()),
                    None => self.fault(&live.store, error, TransformError::Trap),
                };
                self.live = Some(live);
                self.discard();
                return Err(fault);
            }
        };
        self.live = Some(live);
        Ok(ProcessOutput {
            messages: result
                .transformed_messages
                .0
                .into_iter()
                .map(Message::from)
                .collect(),
            should_continue: result.should_continue,
            error: result.error.map(|e| e.0),
        })
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
