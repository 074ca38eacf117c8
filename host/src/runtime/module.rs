//! [`CompiledModule`]: a compiled, linked module of either kind, instantiated once
//! per pipeline worker. Components are built here from `component`; legacy core
//! modules come from `legacy` behind [`LegacyCompiledModule`].

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::component::{ComponentModule, ComponentTransform};
use super::error::LoadError;
use super::{Transform, TransformError};

/// What kind of WebAssembly binary a module is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component targeting the `rustmq:etl/etl` world.
    Component,
    /// A core module using the deployment guide's raw `process_message` ABI.
    LegacyCore,
}

/// A compiled, linked module; instantiate it once per pipeline worker. Cheap to
/// clone.
#[derive(Clone)]
pub struct CompiledModule {
    inner: Arc<CompiledInner>,
}

enum CompiledInner {
    Component(ComponentModule),
    LegacyCore(Box<dyn LegacyCompiledModule>),
}

/// What the legacy adapter provides for a compiled core module.
pub(crate) trait LegacyCompiledModule: Send + Sync {
    /// Creates a transform for one pipeline whose calls, the first instance's start
    /// included, each get `timeout_ms` (see [`CompiledModule::instantiate_with_timeout`]).
    fn instantiate(
        &self,
        module_id: &str,
        pipeline_id: &str,
        params: &BTreeMap<String, String>,
        timeout_ms: u64,
    ) -> Result<Box<dyn Transform>, TransformError>;

    /// The runtime's deadline per call, in milliseconds.
    fn execution_timeout_ms(&self) -> u64;

    /// Serialized compiled code for the on-disk cache.
    fn serialize(&self) -> Result<Vec<u8>, LoadError>;
}

impl CompiledModule {
    /// Component or legacy core module.
    pub fn kind(&self) -> ModuleKind {
        match &*self.inner {
            CompiledInner::Component(_) => ModuleKind::Component,
            CompiledInner::LegacyCore(_) => ModuleKind::LegacyCore,
        }
    }

    /// Creates a transform bound to one pipeline's parameters, each call under the
    /// runtime's `execution_timeout_ms`. The first instance is created and its `init`
    /// run here, so refused parameters surface at once as
    /// [`TransformError::InitRefused`].
    pub fn instantiate(
        &self,
        module_id: &str,
        pipeline_id: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Box<dyn Transform>, TransformError> {
        let timeout_ms = match &*self.inner {
            CompiledInner::Component(module) => module.runtime.limits.execution_timeout_ms,
            CompiledInner::LegacyCore(module) => module.execution_timeout_ms(),
        };
        self.instantiate_with_timeout(module_id, pipeline_id, params, timeout_ms)
    }

    /// [`Self::instantiate`] for a pipeline whose calls each get `timeout_ms` (its own
    /// `timeout_ms`, at most the runtime's): the first instance's start (a
    /// component's instantiation and `init`, a legacy module's `_initialize` or
    /// `_start`) runs under it too, so a guest that sleeps or loops there fails as a
    /// [`TransformError::Timeout`] of that length.
    pub fn instantiate_with_timeout(
        &self,
        module_id: &str,
        pipeline_id: &str,
        params: &BTreeMap<String, String>,
        timeout_ms: u64,
    ) -> Result<Box<dyn Transform>, TransformError> {
        let timeout_ms = timeout_ms.max(1);
        match &*self.inner {
            CompiledInner::Component(module) => {
                let transform =
                    ComponentTransform::new(module, module_id, pipeline_id, params, timeout_ms)?;
                Ok(Box::new(transform))
            }
            CompiledInner::LegacyCore(module) => {
                module.instantiate(module_id, pipeline_id, params, timeout_ms)
            }
        }
    }

    /// Wraps a compiled legacy module.
    pub(crate) fn from_legacy(module: Box<dyn LegacyCompiledModule>) -> CompiledModule {
        CompiledModule {
            inner: Arc::new(CompiledInner::LegacyCore(module)),
        }
    }

    /// Wraps a compiled, linked component.
    pub(crate) fn from_component(module: ComponentModule) -> CompiledModule {
        CompiledModule {
            inner: Arc::new(CompiledInner::Component(module)),
        }
    }

    /// The compiled code, for the on-disk cache (see [`super::Runtime::serialize`]).
    pub(crate) fn serialize_code(&self) -> Result<Vec<u8>, LoadError> {
        match &*self.inner {
            CompiledInner::Component(c) => c
                .component
                .serialize()
                .map_err(|e| LoadError::Cache(format!("{e:#}"))),
            CompiledInner::LegacyCore(l) => l.serialize(),
        }
    }
}
