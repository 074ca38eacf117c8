//! Decides, from its imports and exports alone, whether a core module speaks the
//! legacy ABI and whether the host can satisfy its imports.
//!
//! The same rules apply to raw bytes ([`LegacyInfo::inspect`], no compilation) and to a
//! compiled module read back from the cache (`LegacyInfo::of_module`).

use crate::error::{name_imports, LoadError};

/// The WASI preview 1 import module; the only one a legacy module may import from.
pub const WASI_P1_MODULE: &str = "wasi_snapshot_preview1";

/// Import modules emitted by wasm-bindgen: raw `cargo build` output imports
/// `__wbindgen_placeholder__` / `__wbindgen_externref_xform__`; `wasm-bindgen`/`wasm-pack`
/// output imports `wbg` (or a `*_bg.js` file).
const WASM_BINDGEN_MODULES: [&str; 3] = [
    "__wbindgen_placeholder__",
    "__wbindgen_externref_xform__",
    "wbg",
];

/// The WASI reactor initializer; called once after instantiation when exported.
pub const INITIALIZE_EXPORT: &str = "_initialize";

/// How `process_message` hands back its result, read from the export's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessAbi {
    /// `(i32, i32) -> i32`: a pointer to one JSON value and no length (the guide's form).
    Pointer,
    /// `(i32, i32) -> i64`: `(ptr << 32) | len`.
    PackedPointerLength,
}

/// What a legacy module looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyInfo {
    /// How `process_message` returns its result.
    pub abi: ProcessAbi,
    /// Every import as `module::name`.
    pub imports: Vec<String>,
    /// Every export name.
    pub exports: Vec<String>,
    /// Whether the module imports WASI preview 1 (built for `wasm32-wasip1`).
    pub uses_wasi: bool,
    /// Whether it exports the WASI reactor initializer `_initialize`.
    pub has_initialize: bool,
}

/// A value type, reduced to what the ABI checks need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    I32,
    I64,
    Other,
}

/// An export, reduced to what the ABI checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExportShape {
    Func { params: Vec<Ty>, results: Vec<Ty> },
    Memory,
    Other(&'static str),
}

impl ExportShape {
    fn describe(&self) -> String {
        match self {
            ExportShape::Func { params, results } => {
                format!("a function {} -> {}", show_tys(params), show_tys(results))
            }
            ExportShape::Memory => "a memory".to_string(),
            ExportShape::Other(kind) => format!("a {kind}"),
        }
    }
}

fn show_tys(tys: &[Ty]) -> String {
    let names: Vec<&str> = tys
        .iter()
        .map(|t| match t {
            Ty::I32 => "i32",
            Ty::I64 => "i64",
            Ty::Other => "?",
        })
        .collect();
    format!("({})", names.join(", "))
}

impl LegacyInfo {
    /// Reads `bytes`' imports and exports (without compiling) and checks them against
    /// the ABI and the import policy.
    pub fn inspect(bytes: &[u8]) -> Result<LegacyInfo, LoadError> {
        let (imports, exports) = surface_of_bytes(bytes)?;
        check(imports, exports)
    }

    /// The same checks for an already compiled module.
    pub(crate) fn of_module(module: &wasmtime::Module) -> Result<LegacyInfo, LoadError> {
        let imports = module
            .imports()
            .map(|i| (i.module().to_string(), i.name().to_string()))
            .collect();
        let exports = module
            .exports()
            .map(|e| {
                let shape = match e.ty() {
                    wasmtime::ExternType::Func(f) => ExportShape::Func {
                        params: f.params().map(|t| ty_of_wasmtime(&t)).collect(),
                        results: f.results().map(|t| ty_of_wasmtime(&t)).collect(),
                    },
                    wasmtime::ExternType::Memory(_) => ExportShape::Memory,
                    wasmtime::ExternType::Table(_) => ExportShape::Other("table"),
                    wasmtime::ExternType::Global(_) => ExportShape::Other("global"),
                    wasmtime::ExternType::Tag(_) => ExportShape::Other("tag"),
                };
                (e.name().to_string(), shape)
            })
            .collect();
        check(imports, exports)
    }
}

fn ty_of_wasmtime(t: &wasmtime::ValType) -> Ty {
    match t {
        wasmtime::ValType::I32 => Ty::I32,
        wasmtime::ValType::I64 => Ty::I64,
        _ => Ty::Other,
    }
}

fn ty_of_parser(t: &wasmparser::ValType) -> Ty {
    match t {
        wasmparser::ValType::I32 => Ty::I32,
        wasmparser::ValType::I64 => Ty::I64,
        _ => Ty::Other,
    }
}

type Surface = (Vec<(String, String)>, Vec<(String, ExportShape)>);

fn surface_of_bytes(bytes: &[u8]) -> Result<Surface, LoadError> {
    use wasmparser::{Encoding, ExternalKind, Parser, Payload, TypeRef};
    let invalid = |e: wasmparser::BinaryReaderError| LoadError::Invalid(e.to_string());

    let mut func_types: Vec<wasmparser::FuncType> = Vec::new();
    // Type index of every function, imported ones first (the function index space).
    let mut func_type_of: Vec<u32> = Vec::new();
    let mut imports = Vec::new();
    let mut raw_exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(invalid)? {
            Payload::Version {
                encoding: Encoding::Component,
                ..
            } => return Err(LoadError::IsComponent),
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    func_types.push(ty.map_err(invalid)?);
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    if let TypeRef::Func(t) | TypeRef::FuncExact(t) = import.ty {
                        func_type_of.push(t);
                    }
                    imports.push((import.module.to_string(), import.name.to_string()));
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    func_type_of.push(t.map_err(invalid)?);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    raw_exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    let exports = raw_exports
        .into_iter()
        .map(|(name, kind, index)| {
            let shape = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => {
                    let ty = func_type_of
                        .get(index as usize)
                        .and_then(|t| func_types.get(*t as usize));
                    match ty {
                        Some(ty) => ExportShape::Func {
                            params: ty.params().iter().map(ty_of_parser).collect(),
                            results: ty.results().iter().map(ty_of_parser).collect(),
                        },
                        None => {
                            return Err(LoadError::Invalid(format!(
                                "export `{name}` names function {index}, which has no type"
                            )))
                        }
                    }
                }
                ExternalKind::Memory => ExportShape::Memory,
                ExternalKind::Table => ExportShape::Other("table"),
                ExternalKind::Global => ExportShape::Other("global"),
                ExternalKind::Tag => ExportShape::Other("tag"),
            };
            Ok((name, shape))
        })
        .collect::<Result<_, _>>()?;
    Ok((imports, exports))
}

fn check(
    imports: Vec<(String, String)>,
    exports: Vec<(String, ExportShape)>,
) -> Result<LegacyInfo, LoadError> {
    let is_bindgen = |m: &str| WASM_BINDGEN_MODULES.contains(&m) || m.ends_with("_bg.js");
    let bindgen: Vec<String> = imports
        .iter()
        .filter(|(m, _)| is_bindgen(m))
        .map(|(m, n)| format!("{m}::{n}"))
        .collect();
    if !bindgen.is_empty() {
        return Err(LoadError::WasmBindgenImports {
            imports: name_imports(bindgen),
        });
    }
    let unsupported: Vec<String> = imports
        .iter()
        .filter(|(m, _)| m != WASI_P1_MODULE)
        .map(|(m, n)| format!("{m}::{n}"))
        .collect();
    if !unsupported.is_empty() {
        return Err(LoadError::UnsupportedImports {
            imports: name_imports(unsupported),
        });
    }

    let find = |name: &str| exports.iter().find(|(n, _)| n == name).map(|(_, s)| s);
    let func = |params: &[Ty], results: &[Ty]| ExportShape::Func {
        params: params.to_vec(),
        results: results.to_vec(),
    };
    let require = |name: &'static str,
                   expected: &'static str,
                   ok: &dyn Fn(&ExportShape) -> bool| match find(name) {
        None => Err(LoadError::MissingExport { name, expected }),
        Some(shape) if ok(shape) => Ok(shape.clone()),
        Some(shape) => Err(LoadError::WrongExport {
            name,
            found: shape.describe(),
            expected,
        }),
    };
    require("memory", "a memory", &|s| *s == ExportShape::Memory)?;
    let pointer = func(&[Ty::I32, Ty::I32], &[Ty::I32]);
    let packed = func(&[Ty::I32, Ty::I32], &[Ty::I64]);
    let process = require(
        "process_message",
        "a function (i32, i32) -> i32 or (i32, i32) -> i64",
        &|s| *s == pointer || *s == packed,
    )?;
    let abi = if process == pointer {
        ProcessAbi::Pointer
    } else {
        ProcessAbi::PackedPointerLength
    };
    require("alloc", "a function (i32) -> i32", &|s| {
        *s == func(&[Ty::I32], &[Ty::I32])
    })?;
    require("dealloc", "a function (i32, i32) -> ()", &|s| {
        *s == func(&[Ty::I32, Ty::I32], &[])
    })?;
    if let Some(init) = find(INITIALIZE_EXPORT) {
        if *init != func(&[], &[]) {
            return Err(LoadError::WrongExport {
                name: INITIALIZE_EXPORT,
                found: init.describe(),
                expected: "a function () -> ()",
            });
        }
    }

    Ok(LegacyInfo {
        abi,
        uses_wasi: !imports.is_empty(),
        has_initialize: find(INITIALIZE_EXPORT).is_some(),
        imports: imports
            .into_iter()
            .map(|(m, n)| format!("{m}::{n}"))
            .collect(),
        exports: exports.into_iter().map(|(n, _)| n).collect(),
    })
}
