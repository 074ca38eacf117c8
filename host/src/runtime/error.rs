//! [`LoadError`]: why a module could not be loaded, each saying what to change.

use super::bindings::{WORLD, WORLD_1_1, WORLD_1_1_BATCH, WORLD_1_2_BUFFER};

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
    #[error("the module does not export {}; a transform must implement the {WORLD_1_1} world (export `init` and `process`), {WORLD_1_1_BATCH} or {WORLD_1_2_BUFFER}, or the older {WORLD}", .0.join(", "))]
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
