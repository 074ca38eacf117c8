//! Turns a module's bytes into something runnable: recognises its kind (component or
//! legacy core module), describes it without compiling ([`inspect`]), checks its
//! imports and exports against the contract, and compiles and links it once
//! ([`compile`]) into a [`CompiledModule`] that instantiates many times.
//!
//! Legacy core modules go through [`compile_legacy`] / [`deserialize_legacy`], the one
//! seam where the legacy adapter plugs in.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use wasmparser::{Parser, Payload};
use wasmtime::component::Component;

use wasmtime::component::InstancePre;

use super::bindings::{HostState, HOST_PACKAGE, WORLD, WORLD_1_1, WORLD_1_1_BATCH};
use super::component::ComponentTransform;
use super::engine::{Runtime, RuntimeInner};
use super::{Transform, TransformError};

/// Most import or export names [`inspect`] reports; a module with more is refused.
/// Real transforms have a few dozen; the cap bounds what an upload can make us list.
pub const MAX_LISTED_NAMES: usize = 1024;

/// The exports every component must have.
pub const REQUIRED_EXPORTS: [&str; 2] = ["init", "process"];

/// WASI 0.2 packages the runtime links. Filesystem and sockets are linked (guests
/// built by `cargo component` import them) but the WASI context denies every use.
const LINKED_WASI_PACKAGES: [&str; 6] = [
    "wasi:io",
    "wasi:clocks",
    "wasi:random",
    "wasi:cli",
    "wasi:filesystem",
    "wasi:sockets",
];

/// What kind of WebAssembly binary a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component targeting the `rustmq:etl/etl` world.
    Component,
    /// A core module using the deployment guide's raw `process_message` ABI.
    LegacyCore,
}

/// A description of a module, produced without compiling it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleInfo {
    /// Component or legacy core module.
    pub kind: ModuleKind,
    /// For a component: the world it implements (`rustmq:etl/etl@1.0.0`), when its
    /// exports match it.
    pub world: Option<String>,
    /// For a legacy core module: the ABI it uses (filled in by the legacy adapter).
    pub abi: Option<String>,
    /// Import names (`wasi:cli/stdout@0.2.6`, or `module::name` for core modules).
    pub imports: Vec<String>,
    /// Export names.
    pub exports: Vec<String>,
    /// Problems that will stop the module from loading, or that deserve attention.
    pub warnings: Vec<String>,
}

/// Why a module could not be loaded. Every message says what to change.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum LoadError {
    /// The bytes are not a WebAssembly binary at all.
    #[error("not a WebAssembly binary ({0}); upload the .wasm file the build produced")]
    NotWasm(String),
    /// The binary is malformed or fails validation.
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// The module imports things the runtime does not provide.
    #[error("the module imports {} that the broker does not provide: {}; {hint}", if imports.len() == 1 { "an interface" } else { "interfaces" }, imports.join(", "))]
    UnsupportedImports {
        /// The offending import names.
        imports: Vec<String>,
        /// What the runtime does provide and how to get rid of the imports.
        hint: String,
    },
    /// Required exports are missing (or have the wrong type).
    #[error("the module does not export {}; a transform must implement the {WORLD_1_1} world (export `init` and `process`) or {WORLD_1_1_BATCH}, or the older {WORLD}", .0.join(", "))]
    MissingExports(Vec<String>),
    /// Compilation failed.
    #[error("could not compile the module: {0}")]
    Compile(String),
    /// The module compiled but could not be linked against the broker's imports.
    #[error("could not link the module: {0}")]
    Link(String),
    /// A module kind this build cannot run.
    #[error("unsupported module: {0}")]
    Unsupported(String),
    /// Serializing or deserializing a compiled module failed.
    #[error("compiled module cache: {0}")]
    Cache(String),
    /// A legacy core module was refused by the legacy adapter.
    #[error("legacy module refused: {0}")]
    Legacy(#[from] rustmq_etl_legacy::LoadError),
}

/// A compiled, linked module; instantiate it once per pipeline worker. Cheap to
/// clone.
#[derive(Clone)]
pub struct CompiledModule {
    inner: Arc<CompiledInner>,
}

enum CompiledInner {
    Component(ComponentModule),
    LegacyCore(Box<dyn LegacyModule>),
}

/// A compiled component: the code plus its pre-linked instance template.
pub(crate) struct ComponentModule {
    pub(crate) runtime: Arc<RuntimeInner>,
    pub(crate) component: Component,
    pub(crate) pre: InstancePre<HostState>,
}

/// What the legacy adapter provides for a compiled core module.
pub trait LegacyModule: Send + Sync {
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

    /// Wraps a compiled legacy module (used by the legacy adapter).
    pub fn from_legacy(module: Box<dyn LegacyModule>) -> CompiledModule {
        CompiledModule {
            inner: Arc::new(CompiledInner::LegacyCore(module)),
        }
    }
}

/// Recognises the kind of a binary from its header.
pub fn detect_kind(bytes: &[u8]) -> Result<ModuleKind, LoadError> {
    if Parser::is_component(bytes) {
        Ok(ModuleKind::Component)
    } else if Parser::is_core_wasm(bytes) {
        Ok(ModuleKind::LegacyCore)
    } else if bytes.starts_with(b"\0asm") {
        Err(LoadError::Invalid(
            "unknown WebAssembly binary version or layer".into(),
        ))
    } else {
        Err(LoadError::NotWasm(
            "the file does not start with the `\\0asm` magic number".into(),
        ))
    }
}

/// See [`Runtime::inspect`].
pub(crate) fn inspect(bytes: &[u8]) -> Result<ModuleInfo, LoadError> {
    let kind = detect_kind(bytes)?;
    let (imports, exports, unlisted) = listed_names(bytes)?;
    // A legacy module's names are informational (the adapter checks the module
    // itself, and explains a refusal better than a count can: a wasm-bindgen build
    // exports thousands of `__wbindgen_describe_*` functions); a component's names
    // are what it is checked against, so they must all be seen.
    if unlisted > 0 && kind == ModuleKind::Component {
        return Err(too_many_names());
    }
    let mut info = ModuleInfo {
        kind,
        world: None,
        abi: None,
        imports,
        exports,
        warnings: Vec::new(),
    };
    if unlisted > 0 {
        info.warnings.push(format!(
            "{unlisted} more imports or exports are not listed (at most {MAX_LISTED_NAMES} are)"
        ));
    }
    if kind == ModuleKind::LegacyCore {
        match super::legacy::describe_abi(bytes) {
            Ok(abi) => info.abi = Some(abi),
            Err(e) => info.warnings.push(e.to_string()),
        }
    }
    if kind == ModuleKind::Component {
        let missing = missing_exports(&info.exports);
        if missing.is_empty() {
            info.world = Some(world_of(&info.imports, &info.exports).to_string());
        } else {
            info.warnings
                .push(LoadError::MissingExports(missing).to_string());
        }
        if let Err(e) = check_imports(&info.imports) {
            info.warnings.push(e.to_string());
        }
    }
    Ok(info)
}

/// See [`Runtime::compile`].
pub(crate) fn compile(runtime: &Runtime, bytes: &[u8]) -> Result<CompiledModule, LoadError> {
    if detect_kind(bytes)? == ModuleKind::LegacyCore {
        return compile_legacy(runtime, bytes).map(CompiledModule::from_legacy);
    }
    let (imports, exports) = top_level_names(bytes)?;
    check_imports(&imports)?;
    let missing = missing_exports(&exports);
    if !missing.is_empty() {
        return Err(LoadError::MissingExports(missing));
    }
    let component = Component::new(runtime.engine(), bytes)
        .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
    link(runtime, component)
}

/// Legacy core modules are checked and compiled by the legacy adapter.
pub fn compile_legacy(runtime: &Runtime, bytes: &[u8]) -> Result<Box<dyn LegacyModule>, LoadError> {
    super::legacy::compile(runtime, bytes)
}

/// Cached legacy core modules are read back by the legacy adapter.
///
/// # Safety
/// As for [`Runtime::deserialize`].
pub unsafe fn deserialize_legacy(
    runtime: &Runtime,
    bytes: &[u8],
) -> Result<Box<dyn LegacyModule>, LoadError> {
    // SAFETY: forwarded to the caller.
    unsafe { super::legacy::deserialize(runtime, bytes) }
}

/// See [`Runtime::serialize`].
pub(crate) fn serialize(module: &CompiledModule) -> Result<Vec<u8>, LoadError> {
    match &*module.inner {
        CompiledInner::Component(c) => c
            .component
            .serialize()
            .map_err(|e| LoadError::Cache(format!("{e:#}"))),
        CompiledInner::LegacyCore(l) => l.serialize(),
    }
}

/// See [`Runtime::deserialize`].
///
/// # Safety
/// As for [`Runtime::deserialize`].
pub(crate) unsafe fn deserialize(
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
            unsafe { deserialize_legacy(runtime, bytes) }.map(CompiledModule::from_legacy)
        }
    }
}

fn link(runtime: &Runtime, component: Component) -> Result<CompiledModule, LoadError> {
    let instance_pre = runtime
        .inner
        .linker
        .instantiate_pre(&component)
        .map_err(|e| LoadError::Link(format!("{e:#}")))?;
    Ok(CompiledModule {
        inner: Arc::new(CompiledInner::Component(ComponentModule {
            runtime: Arc::clone(&runtime.inner),
            component,
            pre: instance_pre,
        })),
    })
}

/// The top-level import and export names of a component or core module (nested
/// modules and components are skipped); refuses a module with more than
/// [`MAX_LISTED_NAMES`] of them.
fn top_level_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), LoadError> {
    match listed_names(bytes)? {
        (imports, exports, 0) => Ok((imports, exports)),
        _ => Err(too_many_names()),
    }
}

fn too_many_names() -> LoadError {
    LoadError::Invalid(format!("more than {MAX_LISTED_NAMES} imports or exports"))
}

/// The first [`MAX_LISTED_NAMES`] top-level import and export names, and how many
/// more there are.
fn listed_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>, usize), LoadError> {
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let mut unlisted = 0usize;
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => break,
            },
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(invalid)?;
                    // Type imports (the world's `use`d records) are not capabilities.
                    if !matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        list(&mut imports, &exports, &mut unlisted, || {
                            import.name.name.to_string()
                        });
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    if export.kind != wasmparser::ComponentExternalKind::Type {
                        list(&mut exports, &imports, &mut unlisted, || {
                            export.name.name.to_string()
                        });
                    }
                }
            }
            Payload::ImportSection(reader) if depth == 0 => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    list(&mut imports, &exports, &mut unlisted, || {
                        format!("{}::{}", import.module, import.name)
                    });
                }
            }
            Payload::ExportSection(reader) if depth == 0 => {
                for export in reader {
                    let name = export.map_err(invalid)?.name;
                    list(&mut exports, &imports, &mut unlisted, || name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok((imports, exports, unlisted))
}

/// Adds a name to `into` while both lists together stay within
/// [`MAX_LISTED_NAMES`]; counts it in `unlisted` otherwise.
fn list(
    into: &mut Vec<String>,
    other: &[String],
    unlisted: &mut usize,
    name: impl FnOnce() -> String,
) {
    if into.len() + other.len() < MAX_LISTED_NAMES {
        into.push(name());
    } else {
        *unlisted += 1;
    }
}

/// The `rustmq:etl` world a component with these names implements: 1.1 when it
/// imports any 1.1 interface or exports `process-batch`, else 1.0.
fn world_of(imports: &[String], exports: &[String]) -> &'static str {
    let batch = exports.iter().any(|e| e == "process-batch");
    let v1_1 = imports
        .iter()
        .any(|i| i.starts_with(HOST_PACKAGE) && i.ends_with("@1.1.0"));
    match (batch, v1_1) {
        (true, _) => WORLD_1_1_BATCH,
        (false, true) => WORLD_1_1,
        (false, false) => WORLD,
    }
}

fn missing_exports(exports: &[String]) -> Vec<String> {
    REQUIRED_EXPORTS
        .iter()
        .filter(|want| !exports.iter().any(|e| e == *want))
        .map(|s| s.to_string())
        .collect()
}

/// Whether the runtime links an import of this name: WASI 0.2.x in the packages
/// above, or this world's own interfaces at a 1.x version.
fn is_provided(import: &str) -> bool {
    let Some((path, version)) = import.split_once('@') else {
        return false;
    };
    let Some((package, _interface)) = path.split_once('/') else {
        return false;
    };
    if LINKED_WASI_PACKAGES.contains(&package) {
        return version.starts_with("0.2.");
    }
    package == HOST_PACKAGE && version.starts_with("1.")
}

fn check_imports(imports: &[String]) -> Result<(), LoadError> {
    let unsupported: Vec<String> = imports
        .iter()
        .filter(|i| !is_provided(i))
        .cloned()
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(LoadError::UnsupportedImports {
        imports: unsupported,
        hint: format!(
            "a transform may import only WASI 0.2.x ({}) and {HOST_PACKAGE}'s host and state interfaces (1.x); \
             remove the code or dependency that needs the rest (`wasm-tools component wit \
             <file>` lists what a component imports)",
            LINKED_WASI_PACKAGES.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_is_read_from_the_header() {
        assert_eq!(
            detect_kind(b"\0asm\x01\0\0\0").unwrap(),
            ModuleKind::LegacyCore
        );
        assert_eq!(
            detect_kind(b"\0asm\x0d\0\x01\0").unwrap(),
            ModuleKind::Component
        );
        assert!(matches!(
            detect_kind(b"PK\x03\x04"),
            Err(LoadError::NotWasm(_))
        ));
    }

    #[test]
    fn wasi_02_and_host_imports_are_provided_others_are_not() {
        assert!(is_provided("wasi:cli/environment@0.2.6"));
        assert!(is_provided("wasi:filesystem/preopens@0.2.3"));
        assert!(is_provided("rustmq:etl/host@1.0.0"));
        assert!(!is_provided("wasi:http/outgoing-handler@0.2.6"));
        assert!(!is_provided("wasi:cli/environment@0.3.0"));
        assert!(!is_provided("rustmq:etl/host@2.0.0"));
        assert!(!is_provided("env"));
    }

    #[test]
    fn unsupported_import_error_names_the_import() {
        let err = check_imports(&["wasi:io/streams@0.2.6".into(), "acme:db/query@1.0.0".into()])
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("acme:db/query@1.0.0"), "{text}");
        assert!(!text.contains("wasi:io/streams"), "{text}");
    }
}
