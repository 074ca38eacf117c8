//! Reading a module without compiling it: its kind (component or legacy core
//! module), its import and export names (bounded by [`MAX_LISTED_NAMES`]), the world
//! a component implements, and whether its imports are ones the broker provides.

use serde::Serialize;
use wasmparser::{Parser, Payload};

use super::bindings::{HOST_PACKAGE, WORLD, WORLD_1_1, WORLD_1_1_BATCH, WORLD_1_2_BUFFER};
use super::engine::Runtime;
use super::error::LoadError;
use super::module::ModuleKind;

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
    /// For a component: what one instance takes from the runtime's pool, to hold
    /// against its per-component limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub needs: Option<PoolNeeds>,
}

/// What one instance of a component takes from the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolNeeds {
    /// Core module instances it creates.
    pub core_instances: u32,
    /// Linear memories its core modules define.
    pub memories: u32,
    /// Tables its core modules define.
    pub tables: u32,
}

/// Counts what a component's instance takes from the pool: core instantiations,
/// and the memories and tables its core modules define.
fn pool_needs(bytes: &[u8]) -> Result<PoolNeeds, LoadError> {
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());
    let mut needs = PoolNeeds {
        core_instances: 0,
        memories: 0,
        tables: 0,
    };
    let count = |n: u32, into: &mut u32| *into = into.saturating_add(n);
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::InstanceSection(reader) => {
                for instance in reader {
                    if matches!(
                        instance.map_err(invalid)?,
                        wasmparser::Instance::Instantiate { .. }
                    ) {
                        count(1, &mut needs.core_instances);
                    }
                }
            }
            Payload::MemorySection(reader) => count(reader.count(), &mut needs.memories),
            Payload::TableSection(reader) => count(reader.count(), &mut needs.tables),
            _ => {}
        }
    }
    Ok(needs)
}

/// Recognises the kind of a binary from its header.
pub(crate) fn detect_kind(bytes: &[u8]) -> Result<ModuleKind, LoadError> {
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

impl Runtime {
    /// Describes a module without compiling it: its kind, world or ABI, imports and
    /// exports. Fails when the bytes are not WebAssembly or cannot be parsed.
    pub fn inspect(&self, bytes: &[u8]) -> Result<ModuleInfo, LoadError> {
        inspect(bytes)
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
        needs: None,
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
        info.needs = Some(pool_needs(bytes)?);
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

/// The top-level import and export names of a component or core module (nested
/// modules and components are skipped); refuses a module with more than
/// [`MAX_LISTED_NAMES`] of them.
pub(crate) fn top_level_names(bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), LoadError> {
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

/// The `rustmq:etl` world a component with these names implements: 1.2 when it
/// exports `process-buffer`; 1.1 when it imports any 1.1 interface or exports
/// `process-batch`; else 1.0.
fn world_of(imports: &[String], exports: &[String]) -> &'static str {
    if exports.iter().any(|e| e == "process-buffer") {
        return WORLD_1_2_BUFFER;
    }
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

pub(crate) fn missing_exports(exports: &[String]) -> Vec<String> {
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

pub(crate) fn check_imports(imports: &[String]) -> Result<(), LoadError> {
    let unsupported: Vec<String> = imports
        .iter()
        .filter(|i| !is_provided(i))
        .cloned()
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    let mut hint = format!(
        "a transform may import only WASI 0.2.x ({}) and {HOST_PACKAGE}'s host and state interfaces (1.x); \
         remove the code or dependency that needs the rest (`wasm-tools component wit \
         <file>` lists what a component imports)",
        LINKED_WASI_PACKAGES.join(", ")
    );
    if unsupported.iter().any(|i| i.starts_with("wasi:http/")) {
        // What componentize-js does unless told otherwise.
        hint.push_str(
            "; a JavaScript module built with componentize-js imports wasi:http unless built with `-d http fetch-event` (guest-template-js/build.sh does)",
        );
    }
    Err(LoadError::UnsupportedImports {
        imports: unsupported,
        hint,
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
    fn a_wasi_http_import_names_the_componentize_js_flags_that_drop_it() {
        let err = check_imports(&["wasi:http/incoming-handler@0.2.3".into()]).unwrap_err();
        assert!(err.to_string().contains("-d http fetch-event"), "{err}");
        let err = check_imports(&["acme:db/query@1.0.0".into()]).unwrap_err();
        assert!(!err.to_string().contains("fetch-event"), "{err}");
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
