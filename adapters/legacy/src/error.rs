//! The two ways a legacy module can fail: refused at load ([`LoadError`]) or failing one
//! message ([`CallError`], with [`AbiFault`] for broken calling conventions).
//!
//! Every message says what the guest (or its author) did, so it can go straight into an
//! HTTP 422 body or an error-topic header. Errors are built only once something has gone
//! wrong: nothing here is constructed on the success path.

/// Why a module cannot be loaded as a legacy core module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a WebAssembly binary wasmparser can read.
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    /// The bytes are a component, which the component runtime loads instead.
    #[error("this is a WebAssembly component, not a core module")]
    IsComponent,
    /// A required export is absent.
    #[error("the module does not export `{name}`; a legacy module must export {expected}")]
    MissingExport {
        /// The export's name.
        name: &'static str,
        /// What the ABI expects under that name.
        expected: &'static str,
    },
    /// A required export has the wrong kind or signature.
    #[error("the module exports `{name}` as {found}; the ABI needs {expected}")]
    WrongExport {
        /// The export's name.
        name: &'static str,
        /// What the module exports under that name.
        found: String,
        /// What the ABI expects under that name.
        expected: &'static str,
    },
    /// wasm-bindgen JavaScript glue: only a browser (or Node) can satisfy these.
    #[error(
        "the module imports wasm-bindgen JavaScript glue ({}), which only a browser can \
         provide. It was built for wasm32-unknown-unknown with a crate that binds to \
         JavaScript: usually chrono, whose default `wasmbind` feature reads the clock through \
         JavaScript for `Utc::now()`. Build it for wasm32-wasip1 instead \
         (`rustup target add wasm32-wasip1 && cargo build --target wasm32-wasip1 --release`; \
         RustMQ provides WASI clocks), or disable chrono's `wasmbind` feature \
         (`chrono = {{ version = \"0.4\", default-features = false, features = [\"std\"] }}`) \
         and do not read the clock. `wasm-pack build --target web` output is for browsers \
         and cannot run here",
        .imports.join(", ")
    )]
    WasmBindgenImports {
        /// The offending imports as `module::name` (at most [`MAX_NAMED_IMPORTS`]).
        imports: Vec<String>,
    },
    /// Imports the host does not provide.
    #[error(
        "the module imports {}, which RustMQ does not provide; a legacy module may import \
         nothing, or only `wasi_snapshot_preview1` functions (build for wasm32-wasip1)",
        .imports.join(", ")
    )]
    UnsupportedImports {
        /// The offending imports as `module::name` (at most [`MAX_NAMED_IMPORTS`]).
        imports: Vec<String>,
    },
    /// wasmtime could not compile or link the module.
    #[error("could not compile the module: {0}")]
    Compile(String),
    /// A cached compiled module could not be written or read back.
    #[error("could not use the compiled-module cache: {0}")]
    Cache(String),
}

/// How many offending imports an error names before summarising the rest; a module
/// controls its import count, the error text must stay readable.
pub const MAX_NAMED_IMPORTS: usize = 8;

/// Why one message produced no answer. After any of these the instance that failed has
/// been discarded; the next message runs on a fresh one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The guest ran past the execution timeout and was interrupted.
    #[error("the module ran longer than the {limit_ms} ms execution timeout (in `{during}`) and was stopped")]
    Timeout {
        /// The timeout in force.
        limit_ms: u64,
        /// Which export (or `instantiate`) was running.
        during: &'static str,
    },
    /// The guest tried to grow its memory past the limit.
    #[error(
        "the module tried to use more than the {limit_bytes}-byte memory limit (in `{during}`)"
    )]
    MemoryLimit {
        /// The limit in force.
        limit_bytes: u64,
        /// Which export (or `instantiate`) was running.
        during: &'static str,
    },
    /// The guest trapped (panic, `unreachable`, out-of-bounds access, stack overflow...).
    #[error("the module trapped in `{during}`: {message}")]
    Trap {
        /// Which export was running.
        during: &'static str,
        /// wasmtime's description of the trap.
        message: String,
    },
    /// The guest broke the calling convention.
    #[error(transparent)]
    Abi(#[from] AbiFault),
    /// A fresh instance could not be created.
    #[error("could not instantiate the module: {0}")]
    Instantiate(String),
}

/// How a guest broke the `alloc` / `process_message` / `dealloc` convention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AbiFault {
    /// The JSON input does not fit a 32-bit length.
    #[error("the {len}-byte input is too large for a 32-bit module")]
    InputTooLarge {
        /// The input's length.
        len: usize,
    },
    /// `alloc` returned 0.
    #[error("`alloc({len})` returned 0: the module could not allocate room for the input")]
    AllocReturnedNull {
        /// The requested size.
        len: u32,
    },
    /// `alloc` returned a pointer the input does not fit behind.
    #[error("`alloc({len})` returned pointer {}, but the input would end past the memory size of {memory_size} bytes", show_ptr(*.ptr))]
    AllocOutOfBounds {
        /// The pointer returned.
        ptr: u32,
        /// The requested size.
        len: u32,
        /// The memory size at the time.
        memory_size: usize,
    },
    /// `process_message` returned 0.
    #[error("`process_message` returned a null pointer instead of its result")]
    NullOutput,
    /// The result pointer is outside memory.
    #[error("`process_message` returned pointer {}, outside the memory of {memory_size} bytes", show_ptr(*.ptr))]
    OutputOutOfBounds {
        /// The pointer returned.
        ptr: u32,
        /// The memory size at the time.
        memory_size: usize,
    },
    /// The packed `(ptr << 32) | len` result names bytes past the end of memory.
    #[error("`process_message` returned {len} bytes at pointer {}, which run past the memory size of {memory_size} bytes", show_ptr(*.ptr))]
    OutputLengthOutOfBounds {
        /// The pointer returned.
        ptr: u32,
        /// The length returned.
        len: u32,
        /// The memory size at the time.
        memory_size: usize,
    },
    /// The result is longer than the output cap.
    #[error("the result at pointer {} is larger than the {cap}-byte output limit", show_ptr(*.ptr))]
    OutputTooLarge {
        /// The pointer returned.
        ptr: u32,
        /// The cap in force.
        cap: usize,
    },
    /// The result's JSON value was still open at the end of memory.
    #[error("the result at pointer {} runs off the end of memory ({memory_size} bytes) before its JSON value ends", show_ptr(*.ptr))]
    OutputRunsOffMemory {
        /// The pointer returned.
        ptr: u32,
        /// The memory size at the time.
        memory_size: usize,
    },
    /// The result is not JSON.
    #[error("the result is not JSON: {error} near \"{near}\"")]
    NotJson {
        /// serde_json's description (with line and column).
        error: String,
        /// The first bytes of the result, lossily decoded.
        near: String,
    },
    /// The result is JSON, but not a `ProcessResult`.
    #[error("the result is not a ProcessResult ({{\"transformed_messages\": [...], \"should_continue\": bool, \"error\": string|null}}): {0}")]
    NotProcessResult(String),
    /// More output messages than allowed.
    #[error("the result has {count} messages, more than the limit of {max}")]
    TooManyMessages {
        /// How many the guest returned.
        count: usize,
        /// The limit in force.
        max: usize,
    },
    /// More header pairs, across the result's messages, than allowed.
    #[error("the result has {count} header pairs, more than the limit of {max}")]
    TooManyHeaders {
        /// How many the guest returned.
        count: usize,
        /// The limit in force.
        max: usize,
    },
}

/// A guest pointer as both the unsigned address and, when the guest probably meant a
/// negative `i32`, that value.
fn show_ptr(ptr: u32) -> String {
    if (ptr as i32) < 0 {
        format!("{ptr:#x} ({} as i32)", ptr as i32)
    } else {
        format!("{ptr:#x}")
    }
}

/// Names at most [`MAX_NAMED_IMPORTS`] imports, then how many more there are.
pub(crate) fn name_imports(mut imports: Vec<String>) -> Vec<String> {
    if imports.len() > MAX_NAMED_IMPORTS {
        let more = imports.len() - MAX_NAMED_IMPORTS;
        imports.truncate(MAX_NAMED_IMPORTS);
        imports.push(format!("and {more} more"));
    }
    imports
}
