//! The WebAssembly runtime: everything between "here are a module's bytes" and "here
//! is what it made of this message".
//!
//! # Layout
//! - [`Transform`]: the one interface the pipeline calls. Components and legacy core
//!   modules both sit behind it.
//! - `limits`: [`RuntimeLimits`], every guest limit and its one default.
//! - [`chain`]: several modules run as one [`Transform`], stage after stage.
//! - `engine`: the shared wasmtime `Engine` (pooling allocator, epoch ticker).
//! - `bindings`: the single `bindgen!` site for the `rustmq:etl` world.
//! - `component`: the component implementation of [`Transform`].
//! - `legacy`: the legacy core-module implementation (wraps `rustmq-etl-legacy`).
//! - `wasi`: the locked-down WASI context every guest gets.
//! - `timers`: WASI 0.2 timers that end at the call's deadline.
//! - `output`: lifts a guest's answer under the output caps, before copying it.
//! - `inspect`: reads a module without compiling it: kind, names, world, imports.
//! - `compile`: checks and compiles a module once ([`Runtime::compile`]), and the
//!   compiled-code cache's two ends.
//! - `module`: [`CompiledModule`], either kind, instantiated per pipeline.
//! - `error`: [`LoadError`].
//!
//! Dependencies run one way: `compile` → `inspect` → `legacy` → `module` →
//! `component` → `engine` → `bindings`, `timers` → `output`, `wasi`; `limits` and
//! `error` are leaves.

pub mod legacy;

use crate::message::Message;
use crate::state::SharedState;

mod bindings;
pub mod buffer;
pub mod chain;
mod compile;
mod component;
mod engine;
mod error;
mod inspect;
mod limits;
mod module;
mod output;
mod timers;
pub mod wasi;

pub use bindings::{WORLD, WORLD_1_1, WORLD_1_1_BATCH, WORLD_1_2_BUFFER};
pub use component::{ComponentTransform, MAX_ERROR_TEXT_BYTES};
pub use engine::{Runtime, RuntimeError, EPOCH_TICK};
pub use error::LoadError;
pub use inspect::{ModuleInfo, PoolNeeds, MAX_LISTED_NAMES, REQUIRED_EXPORTS};
pub use limits::RuntimeLimits;
pub use module::{CompiledModule, ModuleKind};
pub use output::{MAX_BATCH_OUTPUT_BYTES, MAX_OUTPUT_HEADERS};

/// Where the message being processed comes from; passed with every call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessContext {
    /// The calling pipeline's id.
    pub pipeline_id: String,
    /// The topic the message was read from.
    pub source_topic: String,
    /// The message's offset in that topic.
    pub source_offset: u64,
    /// 1 on the first try, then 2, 3, ... on retries.
    pub attempt: u32,
}

/// What a guest answered for one message (the WIT `process-result`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessOutput {
    /// Output messages: 0 = filtered, 1 = transformed, n = fan-out.
    pub messages: Vec<Message>,
    /// The outputs a 1.1 module routed to a topic of its choosing: (index into
    /// `messages`, the topic as the module spelt it). Empty when every output goes
    /// to the destination topic.
    pub topics: Vec<(usize, String)>,
    /// The guest's `should-continue`.
    pub should_continue: bool,
    /// The guest's error text, if it reported one.
    pub error: Option<String>,
    /// An output left empty for the caller to fill by moving this answer's own input
    /// in, unchanged, rather than copying it: its index in `messages`. Only
    /// [`Transform::process_batch_moving`] leaves one.
    pub moved_input: Option<usize>,
}

/// Where the messages of a batch come from; passed with every batch call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchContext {
    /// The calling pipeline's id.
    pub pipeline_id: String,
    /// The topic the messages were read from.
    pub source_topic: String,
    /// 1 on the first try, then 2, 3, ... on retries.
    pub attempt: u32,
}

/// Why a call produced no answer from the guest. Every variant says what the guest
/// did; none of them is a host bug. After any of them the instance that failed has
/// been discarded and the next call runs on a fresh one.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransformError {
    /// The call ran past its deadline and was interrupted.
    #[error("the module ran longer than the {limit_ms} ms execution timeout and was stopped")]
    Timeout {
        /// The deadline in force.
        limit_ms: u64,
    },
    /// The guest tried to grow its memory past the configured limit.
    #[error(
        "the module tried to use more than the {limit_bytes}-byte memory limit and was stopped"
    )]
    MemoryLimit {
        /// The limit in force.
        limit_bytes: u64,
    },
    /// The guest trapped (panic, unreachable, out-of-bounds access, stack overflow, ...).
    #[error("the module trapped: {0}")]
    Trap(String),
    /// The guest broke the calling convention (bad pointer, garbage output, output
    /// too large, fan-out over the cap, ...).
    #[error("the module broke the calling convention: {0}")]
    Abi(String),
    /// `init` refused the pipeline's parameters.
    #[error("the module's init refused the pipeline parameters: {0}")]
    InitRefused(String),
    /// A fresh instance could not be created.
    #[error("could not instantiate the module: {0}")]
    Instantiate(String),
}

impl TransformError {
    /// A short stable name for the cause, used in error-topic headers and metrics
    /// (`timeout`, `memory_limit`, `trap`, `abi`, `init_refused`, `instantiate`).
    pub fn cause(&self) -> &'static str {
        match self {
            TransformError::Timeout { .. } => "timeout",
            TransformError::MemoryLimit { .. } => "memory_limit",
            TransformError::Trap(_) => "trap",
            TransformError::Abi(_) => "abi",
            TransformError::InitRefused(_) => "init_refused",
            TransformError::Instantiate(_) => "instantiate",
        }
    }
}

/// The host loop over [`Transform::process`] that serves a batch for modules
/// without a batch export.
pub fn process_each<T: Transform + ?Sized>(
    transform: &mut T,
    messages: &[&Message],
    offsets: &[u64],
    ctx: &BatchContext,
) -> Result<Vec<ProcessOutput>, TransformError> {
    let mut single = ProcessContext {
        pipeline_id: ctx.pipeline_id.clone(),
        source_topic: ctx.source_topic.clone(),
        source_offset: 0,
        attempt: ctx.attempt,
    };
    messages
        .iter()
        .zip(offsets)
        .map(|(message, &offset)| {
            single.source_offset = offset;
            transform.process(message, &single)
        })
        .collect()
}

/// A live transform: one guest instance (recreated as needed) bound to one
/// pipeline's parameters. Not shared between threads; each pipeline worker owns its
/// own.
pub trait Transform: Send {
    /// Runs the guest on one message.
    fn process(
        &mut self,
        message: &Message,
        ctx: &ProcessContext,
    ) -> Result<ProcessOutput, TransformError>;

    /// Runs the guest on a batch: one answer per message, in order. `offsets` are
    /// the messages' source offsets. A module without a batch export (a 1.0 or 1.1
    /// `etl` component, a legacy module) is called once per message by this default.
    ///
    /// An `Err` fails the whole call: its outputs and state changes are to be
    /// discarded and the batch processed again one message at a time, since the
    /// failure cannot be attributed to a message.
    fn process_batch(
        &mut self,
        messages: &[&Message],
        offsets: &[u64],
        ctx: &BatchContext,
    ) -> Result<Vec<ProcessOutput>, TransformError> {
        process_each(self, messages, offsets, ctx)
    }

    /// As [`process_batch`](Transform::process_batch), except that an output which
    /// repeats its own input unchanged may be left empty for the caller to move
    /// that input into ([`ProcessOutput::moved_input`]) instead of being copied:
    /// for a caller that owns the inputs and no longer needs them once it keeps the
    /// answers. The default copies, as `process_batch`.
    fn process_batch_moving(
        &mut self,
        messages: &[&Message],
        offsets: &[u64],
        ctx: &BatchContext,
    ) -> Result<Vec<ProcessOutput>, TransformError> {
        self.process_batch(messages, offsets, ctx)
    }

    /// Whether the module takes a batch in one call (exports `process-batch`).
    fn takes_batches(&self) -> bool {
        false
    }

    /// The stage of a chain whose failure ended the last call, if this is a chain
    /// and a stage failed.
    fn failed_stage(&self) -> Option<chain::FailedStage> {
        None
    }

    /// Binds the pipeline's durable state; modules that cannot use state (1.0
    /// components, legacy modules) ignore it.
    fn attach_state(&mut self, state: SharedState) {
        let _ = state;
    }

    /// How many times the instance has been replaced (after faults, or to reclaim
    /// memory a legacy module leaked).
    fn recycles(&self) -> u64;

    /// Bytes of linear memory the current instance holds (0 when none is live).
    fn memory_bytes(&self) -> u64;

    /// Sets the deadline for each later call, in milliseconds (a pipeline's
    /// `timeout_ms`, usually shorter than the runtime's `execution_timeout_ms`).
    /// Implementations that cannot change their deadline keep the runtime's.
    fn set_timeout_ms(&mut self, ms: u64) {
        let _ = ms;
    }
}
