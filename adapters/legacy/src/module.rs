//! A checked, compiled and linked legacy module: compile once, instantiate many.

use wasmtime::{Engine, InstancePre, Linker, Module};

use crate::error::LoadError;
use crate::inspect::LegacyInfo;
use crate::state::LegacyState;

/// A core module that passed the ABI and import checks, compiled for one engine.
/// Cloning is cheap (the compiled code is shared).
#[derive(Clone)]
pub struct LegacyModule {
    module: Module,
    info: LegacyInfo,
    pre: InstancePre<LegacyState>,
}

impl LegacyModule {
    /// Checks `bytes` (exports, signatures, imports) and compiles them for `engine`.
    ///
    /// The engine should have `epoch_interruption(true)` and a thread ticking its
    /// epoch: that is how [`crate::LegacyLimits::execution_timeout_ms`] is enforced.
    pub fn new(engine: &Engine, bytes: &[u8]) -> Result<LegacyModule, LoadError> {
        let info = LegacyInfo::inspect(bytes)?;
        let module =
            Module::new(engine, bytes).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        Self::link(module, info)
    }

    /// Checks `bytes` without compiling them: ABI shape, imports, exports.
    pub fn inspect(bytes: &[u8]) -> Result<LegacyInfo, LoadError> {
        LegacyInfo::inspect(bytes)
    }

    /// The compiled form, for an on-disk cache (read back with [`Self::deserialize`]).
    pub fn serialize(&self) -> Result<Vec<u8>, LoadError> {
        self.module
            .serialize()
            .map_err(|e| LoadError::Cache(format!("{e:#}")))
    }

    /// Reads back what [`Self::serialize`] wrote, for the same engine configuration.
    ///
    /// # Safety
    /// `bytes` must come from [`Self::serialize`] (wasmtime runs them as machine code
    /// without validating them); keep the cache where only the broker can write.
    pub unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<LegacyModule, LoadError> {
        // SAFETY: the caller guarantees the bytes are our own serialized module.
        let module = unsafe { Module::deserialize(engine, bytes) }
            .map_err(|e| LoadError::Cache(format!("{e:#}")))?;
        let info = LegacyInfo::of_module(&module)?;
        Self::link(module, info)
    }

    /// What the module imports and exports, and which result form it uses.
    pub fn info(&self) -> &LegacyInfo {
        &self.info
    }

    /// The compiled wasmtime module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<LegacyState> {
        &self.pre
    }

    fn link(module: Module, info: LegacyInfo) -> Result<LegacyModule, LoadError> {
        let mut linker: Linker<LegacyState> = Linker::new(module.engine());
        if info.uses_wasi {
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut LegacyState| &mut s.wasi)
                .and_then(|()| crate::poll::add_to_linker(&mut linker))
                .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        }
        // Fails, naming the import, for a WASI function wasmtime does not provide.
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::UnsupportedImports {
                imports: vec![format!("{e:#}")],
            })?;
        Ok(LegacyModule { module, info, pre })
    }
}

impl std::fmt::Debug for LegacyModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyModule")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}
