//! Compiling and linking a module once, and the compiled-code cache's two ends:
//! [`Runtime::compile`], [`Runtime::serialize`] and [`Runtime::deserialize`]. A
//! component is checked against the contract (`inspect`) and pre-linked; a legacy
//! core module goes to `legacy`.

use std::sync::Arc;

use wasmtime::component::Component;

use super::component::ComponentModule;
use super::engine::Runtime;
use super::error::LoadError;
use super::inspect::{check_imports, detect_kind, missing_exports, top_level_names};
use super::legacy;
use super::module::{CompiledModule, ModuleKind};

impl Runtime {
    /// Checks a module's imports and exports and compiles it, ready to instantiate.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledModule, LoadError> {
        compile(self, bytes)
    }

    /// Serializes a compiled module for the on-disk cache. Only
    /// [`Runtime::deserialize`] on an engine with the same
    /// [`Runtime::compatibility_fingerprint`] can read it back.
    pub fn serialize(&self, module: &CompiledModule) -> Result<Vec<u8>, LoadError> {
        module.serialize_code()
    }

    /// Loads a module serialized by [`Runtime::serialize`].
    ///
    /// # Safety
    /// `bytes` must come from [`Runtime::serialize`] on a runtime with the same
    /// compatibility fingerprint, unmodified: wasmtime runs the machine code inside
    /// without re-validating it.
    pub unsafe fn deserialize(
        &self,
        kind: ModuleKind,
        bytes: &[u8],
    ) -> Result<CompiledModule, LoadError> {
        // SAFETY: forwarded to the caller.
        unsafe { deserialize(self, kind, bytes) }
    }
}

fn compile(runtime: &Runtime, bytes: &[u8]) -> Result<CompiledModule, LoadError> {
    if detect_kind(bytes)? == ModuleKind::LegacyCore {
        return legacy::compile(runtime, bytes).map(CompiledModule::from_legacy);
    }
    let (imports, exports) = top_level_names(bytes)?;
    check_imports(&imports)?;
    let missing = missing_exports(&exports);
    if !missing.is_empty() {
        return Err(LoadError::MissingExports(missing));
    }
    let component = Component::new(runtime.engine(), bytes)
        .map_err(|e| LoadError::Compile(with_pool_hint(format!("{e:#}"))))?;
    link(runtime, component)
}

/// See [`Runtime::deserialize`].
///
/// # Safety
/// As for [`Runtime::deserialize`].
unsafe fn deserialize(
    runtime: &Runtime,
    kind: ModuleKind,
    bytes: &[u8],
) -> Result<CompiledModule, LoadError> {
    match kind {
        ModuleKind::Component => {
            // SAFETY: the caller guarantees the bytes came from `serialize` on a
            // compatible engine.
            let component = unsafe { Component::deserialize(runtime.engine(), bytes) }
                .map_err(|e| LoadError::Cache(format!("{e:#}")))?;
            link(runtime, component)
        }
        // SAFETY: forwarded to the caller.
        ModuleKind::LegacyCore => {
            unsafe { legacy::deserialize(runtime, bytes) }.map(CompiledModule::from_legacy)
        }
    }
}

fn link(runtime: &Runtime, component: Component) -> Result<CompiledModule, LoadError> {
    let instance_pre = runtime
        .inner
        .linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link(with_pool_hint(format!("{e:#}"))))?;
    Ok(CompiledModule::from_component(ComponentModule {
        runtime: Arc::clone(&runtime.inner),
        component,
        pre: instance_pre,
    }))
}

/// A pooling refusal (the component needs more core instances, memories or tables
/// than the runtime's per-component limits) with the setting to raise.
fn with_pool_hint(message: String) -> String {
    let setting = [
        ("core module instances", "max_core_instances_per_component"),
        ("linear memories", "max_memories_per_component"),
        ("tables, which exceeds", "max_tables_per_component"),
    ]
    .into_iter()
    .find(|(needle, _)| message.contains(needle));
    match setting {
        Some((_, key)) => format!(
            "{message}; raise `{key}` in the broker's [etl] section to at least that number (`rustmq-etl inspect` shows what a module needs)"
        ),
        None => message,
    }
}
