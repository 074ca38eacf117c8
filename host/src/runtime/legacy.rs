//! Legacy core modules (the deployment guide's `process_message` / `alloc` / `dealloc`
//! ABI) behind [`Transform`]: a thin wrapper over `rustmq-etl-legacy` that converts
//! messages and maps errors.
//!
//! The legacy ABI has no `init`: a pipeline's parameters cannot reach the module and
//! are ignored. Nor does it see [`ProcessContext`].

use std::collections::BTreeMap;
use std::sync::Arc;

use rustmq_etl_legacy::{
    CallError, LegacyInput, LegacyInstance, LegacyLimits, LegacyMessage, LegacyModule,
    LegacyOutput, WasiFactory,
};

use super::engine::{Runtime, RuntimeInner, EPOCH_TICK};
use super::error::LoadError;
use super::module::LegacyCompiledModule;
use super::wasi::{locked_down_builder, LogBudget};
use crate::message::Message;
use crate::runtime::{ProcessContext, ProcessOutput, Transform, TransformError};

/// A legacy module instance bound to its limits, as a [`Transform`].
pub struct LegacyTransform {
    instance: LegacyInstance,
    /// Present when the transform runs under a [`Runtime`]: its execution slots bound
    /// concurrent calls across components and legacy modules alike.
    runtime: Option<Arc<RuntimeInner>>,
}

/// A compiled legacy module as the runtime's loader sees it.
struct CompiledLegacy {
    module: LegacyModule,
    runtime: Arc<RuntimeInner>,
}

/// Checks and compiles a legacy core module for `runtime` (the loader's seam).
pub(crate) fn compile(
    runtime: &Runtime,
    bytes: &[u8],
) -> Result<Box<dyn LegacyCompiledModule>, LoadError> {
    let module = LegacyModule::new(runtime.engine(), bytes).map_err(LoadError::Legacy)?;
    Ok(Box::new(CompiledLegacy {
        module,
        runtime: Arc::clone(&runtime.inner),
    }))
}

/// Reads back a compiled legacy module from the cache.
///
/// # Safety
/// `bytes` must come from [`LegacyCompiledModule::serialize`] on a compatible engine.
pub(crate) unsafe fn deserialize(
    runtime: &Runtime,
    bytes: &[u8],
) -> Result<Box<dyn LegacyCompiledModule>, LoadError> {
    // SAFETY: forwarded to the caller.
    let module =
        unsafe { LegacyModule::deserialize(runtime.engine(), bytes) }.map_err(LoadError::Legacy)?;
    Ok(Box::new(CompiledLegacy {
        module,
        runtime: Arc::clone(&runtime.inner),
    }))
}

/// The ABI a legacy module speaks, for listings (`process_message(ptr,len)->ptr` ...).
pub(crate) fn describe_abi(bytes: &[u8]) -> Result<String, rustmq_etl_legacy::LoadError> {
    let info = LegacyModule::inspect(bytes)?;
    Ok(match info.abi {
        rustmq_etl_legacy::ProcessAbi::Pointer => {
            "rustmq-legacy-json: process_message(ptr, len) -> ptr".to_string()
        }
        rustmq_etl_legacy::ProcessAbi::PackedPointerLength => {
            "rustmq-legacy-json: process_message(ptr, len) -> i64 (ptr << 32 | len)".to_string()
        }
    })
}

impl LegacyCompiledModule for CompiledLegacy {
    fn instantiate(
        &self,
        module_id: &str,
        _pipeline_id: &str,
        _params: &BTreeMap<String, String>,
        timeout_ms: u64,
    ) -> Result<Box<dyn Transform>, TransformError> {
        let legacy_limits = self
            .runtime
            .limits
            .legacy(timeout_ms, EPOCH_TICK.as_millis() as u64);
        let module_id: Arc<str> = Arc::from(module_id);
        let budget = LogBudget::default();
        let wasi: WasiFactory = Arc::new(move || locked_down_builder(&module_id, &budget));
        let instance = {
            let _slot = self.runtime.slots.acquire();
            LegacyInstance::new(&self.module, legacy_limits, wasi).map_err(transform_error)?
        };
        Ok(Box::new(LegacyTransform {
            instance,
            runtime: Some(Arc::clone(&self.runtime)),
        }))
    }

    fn execution_timeout_ms(&self) -> u64 {
        self.runtime.limits.execution_timeout_ms
    }

    fn serialize(&self) -> Result<Vec<u8>, LoadError> {
        self.module.serialize().map_err(LoadError::Legacy)
    }
}

impl LegacyTransform {
    /// Instantiates `module` under `limits`, giving each instance a WASI context from
    /// `wasi` (the runtime's locked-down policy).
    pub fn new(
        module: &LegacyModule,
        limits: LegacyLimits,
        wasi: WasiFactory,
    ) -> Result<LegacyTransform, TransformError> {
        let instance = LegacyInstance::new(module, limits, wasi).map_err(transform_error)?;
        Ok(LegacyTransform {
            instance,
            runtime: None,
        })
    }
}

impl Transform for LegacyTransform {
    fn process(
        &mut self,
        message: &Message,
        _ctx: &ProcessContext,
    ) -> Result<ProcessOutput, TransformError> {
        let input = LegacyInput {
            key: message.key.as_deref(),
            value: &message.value,
            headers: &message.headers,
            timestamp: message.timestamp,
        };
        let LegacyOutput {
            messages,
            should_continue,
            error,
        } = {
            let _slot = self.runtime.as_ref().map(|r| r.slots.acquire());
            self.instance.process(&input).map_err(transform_error)?
        };
        Ok(ProcessOutput {
            topics: Vec::new(),
            messages: messages.into_iter().map(Message::from).collect(),
            should_continue,
            error,
            moved_input: None,
        })
    }

    fn recycles(&self) -> u64 {
        self.instance.recycles()
    }

    fn memory_bytes(&self) -> u64 {
        self.instance.memory_bytes()
    }

    fn set_timeout_ms(&mut self, ms: u64) {
        self.instance.set_timeout_ms(ms);
    }
}

/// The adapter's per-message error as the runtime's.
pub fn transform_error(e: CallError) -> TransformError {
    match e {
        CallError::Timeout { limit_ms, .. } => TransformError::Timeout { limit_ms },
        CallError::MemoryLimit { limit_bytes, .. } => TransformError::MemoryLimit { limit_bytes },
        CallError::Trap { during, message } => {
            TransformError::Trap(format!("in `{during}`: {message}"))
        }
        CallError::Abi(fault) => TransformError::Abi(fault.to_string()),
        CallError::Instantiate(msg) => TransformError::Instantiate(msg),
    }
}

impl From<LegacyMessage> for Message {
    fn from(m: LegacyMessage) -> Self {
        Message {
            key: m.key,
            value: m.value,
            headers: m.headers,
            timestamp: m.timestamp,
        }
    }
}
