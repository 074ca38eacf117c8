//! Legacy core modules (the deployment guide's `process_message` / `alloc` / `dealloc`
//! ABI) behind [`Transform`]: a thin wrapper over `rustmq-etl-legacy` that converts
//! messages and maps errors.
//!
//! The legacy ABI has no `init`: a pipeline's parameters cannot reach the module and
//! are ignored. Nor does it see [`ProcessContext`].

use rustmq_etl_legacy::{
    CallError, LegacyInput, LegacyInstance, LegacyLimits, LegacyModule, LegacyOutput, WasiFactory,
};

use crate::message::Message;
use crate::runtime::{ProcessContext, ProcessOutput, Transform, TransformError};

/// A legacy module instance bound to its limits, as a [`Transform`].
pub struct LegacyTransform {
    instance: LegacyInstance,
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
        Ok(LegacyTransform { instance })
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
        } = self.instance.process(&input).map_err(transform_error)?;
        Ok(ProcessOutput {
            messages: messages
                .into_iter()
                .map(|m| Message {
                    key: m.key,
                    value: m.value,
                    headers: m.headers,
                    timestamp: m.timestamp,
                })
                .collect(),
            should_continue,
            error,
        })
    }

    fn recycles(&self) -> u64 {
        self.instance.recycles()
    }

    fn memory_bytes(&self) -> u64 {
        self.instance.memory_bytes()
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
