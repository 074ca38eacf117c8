//! The single `bindgen!` site for the `rustmq:etl` worlds (`etl@1.0.0`,
//! `etl-batch@1.1.0`, which includes `etl@1.1.0`, and `etl-buffer@1.2.0`), the
//! per-instance host state, and the host side of the `host` (`log`, `get-param`) and
//! `state` interfaces.
//!
//! Guests of every version are linked against one linker: it defines
//! `rustmq:etl/host` at 1.0.0, 1.1.0 and 1.2.0 (the same functions) and
//! `rustmq:etl/state` at 1.1.0 and 1.2.0. The exports are not called through generated code but
//! through typed functions whose parameter and result types are checked
//! structurally against the component (see `component`), so one code path serves
//! both versions.
//!
//! Also here: borrowed mirrors of the `message` and context records
//! ([`MessageArg`], [`ContextArg`], [`BatchContextArg`]) so a call lowers the
//! caller's data straight into guest memory without first cloning it into the
//! generated owned types.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

pub(crate) use rustmq_etl_legacy::limiter::GuestLimiter;
use rustmq_etl_legacy::GuestClock;
use wasmtime::component::{ComponentType, Lower, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::{BoundedBytes, BoundedResults, GuestResult, GuestResultV11};
use super::wasi::{truncate_line, LogBudget};
use crate::message::Message;
use crate::runtime::{BatchContext, ProcessContext};
use crate::state::{SharedState, StateError};

mod generated {
    /// `rustmq:etl@1.0.0`, released and never edited.
    pub(crate) mod v1_0 {
        wasmtime::component::bindgen!({
            path: "../wit/etl.wit",
            world: "etl",
        });
    }
    /// `rustmq:etl@1.1.0`: batches, routed outputs, durable state.
    pub(crate) mod v1_1 {
        wasmtime::component::bindgen!({
            path: "../wit/1.1.0",
            world: "etl-batch",
        });
    }
    /// `rustmq:etl@1.2.0`: a batch as one buffer.
    pub(crate) mod v1_2 {
        wasmtime::component::bindgen!({
            path: "../wit/1.2.0",
            world: "etl-buffer",
        });
    }
}

use generated::v1_0::rustmq::etl::host as host_v1_0;
use generated::v1_1::rustmq::etl::host as host_v1_1;
use generated::v1_1::rustmq::etl::state as state_v1_1;
use generated::v1_2::rustmq::etl::host as host_v1_2;
use generated::v1_2::rustmq::etl::state as state_v1_2;

/// The first world this runtime implements (`inspect` names a component's world).
pub const WORLD: &str = "rustmq:etl/etl@1.0.0";
/// The 1.1 world of modules called once per message.
pub const WORLD_1_1: &str = "rustmq:etl/etl@1.1.0";
/// The 1.1 world of modules that also take batches.
pub const WORLD_1_1_BATCH: &str = "rustmq:etl/etl-batch@1.1.0";
/// The 1.2 world of modules that take a batch as one buffer.
pub const WORLD_1_2_BUFFER: &str = "rustmq:etl/etl-buffer@1.2.0";

/// The package and version of the interfaces the broker provides to guests.
pub const HOST_PACKAGE: &str = "rustmq:etl";

/// Everything one guest instance's `Store` holds.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: GuestLimiter,
    pub(crate) module_id: Arc<str>,
    pub(crate) pipeline_id: Arc<str>,
    pub(crate) params: Arc<BTreeMap<String, String>>,
    pub(crate) log_budget: LogBudget,
    /// The pipeline's durable state; unbound while `init` runs.
    pub(crate) state: SharedState,
    /// The guest's monotonic clock (its WASI context reads the same one).
    pub(crate) clock: GuestClock,
    /// When the current call must end; no WASI timer outlasts it (see `timers`).
    pub(crate) deadline: Instant,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    fn log_line(&mut self, level: LogLevel, message: &str) {
        if !self.log_budget.take() {
            return;
        }
        let text = truncate_line(message);
        let (module_id, pipeline_id) = (&*self.module_id, &*self.pipeline_id);
        // `tracing` levels are static per call site, hence one site per level.
        match level {
            LogLevel::Trace => {
                tracing::trace!(target: "rustmq_etl::guest", module_id, pipeline_id, "{text}")
            }
            LogLevel::Debug => {
                tracing::debug!(target: "rustmq_etl::guest", module_id, pipeline_id, "{text}")
            }
            LogLevel::Info => {
                tracing::info!(target: "rustmq_etl::guest", module_id, pipeline_id, "{text}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "rustmq_etl::guest", module_id, pipeline_id, "{text}")
            }
            LogLevel::Error => {
                tracing::error!(target: "rustmq_etl::guest", module_id, pipeline_id, "{text}")
            }
        }
    }
}

/// A guest's log level, whichever version of the `host` interface it came through.
#[derive(Clone, Copy)]
enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl generated::v1_0::rustmq::etl::types::Host for HostState {}
impl generated::v1_1::rustmq::etl::types::Host for HostState {}
impl generated::v1_2::rustmq::etl::types::Host for HostState {}

/// The `host` interface is the same in 1.0.0 and 1.1.0; each version has its own
/// generated trait and `log-level` type, implemented alike.
macro_rules! impl_host_interface {
    ($host:ident) => {
        impl $host::Host for HostState {
            fn log(&mut self, level: $host::LogLevel, message: String) {
                use $host::LogLevel as L;
                let level = match level {
                    L::Trace => LogLevel::Trace,
                    L::Debug => LogLevel::Debug,
                    L::Info => LogLevel::Info,
                    L::Warn => LogLevel::Warn,
                    L::Error => LogLevel::Error,
                };
                self.log_line(level, &message);
            }

            fn get_param(&mut self, name: String) -> Option<String> {
                self.params.get(&name).cloned()
            }
        }
    };
}

impl_host_interface!(host_v1_0);
impl_host_interface!(host_v1_1);
impl_host_interface!(host_v1_2);

/// The `state` interface is the same in 1.1.0 and 1.2.0; each version has its own
/// generated trait and `state-error` type, implemented alike.
macro_rules! impl_state_interface {
    ($state:ident) => {
        impl From<StateError> for $state::StateError {
            fn from(e: StateError) -> Self {
                use $state::StateError as W;
                match e {
                    StateError::KeyTooLong { max, .. } => W::KeyTooLong(max as u32),
                    StateError::ValueTooLarge { max, .. } => W::ValueTooLarge(max as u32),
                    StateError::QuotaExceeded { quota, .. } => W::QuotaExceeded(quota),
                    StateError::Unavailable(why) => W::Unavailable(why),
                }
            }
        }

        impl $state::Host for HostState {
            fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, $state::StateError> {
                Ok(self.state.get(&key)?)
            }

            fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), $state::StateError> {
                Ok(self.state.set(key, value)?)
            }

            fn delete(&mut self, key: String) -> Result<(), $state::StateError> {
                Ok(self.state.delete(&key)?)
            }
        }
    };
}

impl_state_interface!(state_v1_1);
impl_state_interface!(state_v1_2);

/// Adds WASI 0.2 and the `rustmq:etl` host interfaces of every version to `linker`
/// (the engine then links `timers` over WASI's).
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    generated::v1_0::Etl::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    generated::v1_1::EtlBatch::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)?;
    generated::v1_2::EtlBuffer::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
}

/// The WIT `message` record, borrowed from a [`Message`].
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct MessageArg<'a> {
    key: Option<&'a str>,
    value: &'a [u8],
    headers: &'a [(String, String)],
    timestamp: i64,
}

impl<'a> MessageArg<'a> {
    pub(crate) fn new(message: &'a Message) -> Self {
        MessageArg {
            key: message.key.as_deref(),
            value: &message.value,
            headers: &message.headers,
            timestamp: message.timestamp,
        }
    }
}

/// The WIT `process-context` record, borrowed from a [`ProcessContext`].
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct ContextArg<'a> {
    #[component(name = "pipeline-id")]
    pipeline_id: &'a str,
    #[component(name = "source-topic")]
    source_topic: &'a str,
    #[component(name = "source-offset")]
    source_offset: u64,
    attempt: u32,
}

impl<'a> ContextArg<'a> {
    pub(crate) fn new(ctx: &'a ProcessContext) -> Self {
        ContextArg {
            pipeline_id: &ctx.pipeline_id,
            source_topic: &ctx.source_topic,
            source_offset: ctx.source_offset,
            attempt: ctx.attempt,
        }
    }
}

/// The 1.1 WIT `batch-context` record, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct BatchContextArg<'a> {
    #[component(name = "pipeline-id")]
    pipeline_id: &'a str,
    #[component(name = "source-topic")]
    source_topic: &'a str,
    #[component(name = "source-offsets")]
    source_offsets: &'a [u64],
    attempt: u32,
}

impl<'a> BatchContextArg<'a> {
    pub(crate) fn new(ctx: &'a BatchContext, offsets: &'a [u64]) -> Self {
        BatchContextArg {
            pipeline_id: &ctx.pipeline_id,
            source_topic: &ctx.source_topic,
            source_offsets: offsets,
            attempt: ctx.attempt,
        }
    }
}

/// The 1.2 WIT `buffer-context` record, borrowed.
#[derive(ComponentType, Lower)]
#[component(record)]
pub(crate) struct BufferContextArg<'a> {
    #[component(name = "pipeline-id")]
    pipeline_id: &'a str,
    #[component(name = "source-topic")]
    source_topic: &'a str,
    attempt: u32,
}

impl<'a> BufferContextArg<'a> {
    pub(crate) fn new(ctx: &'a BatchContext) -> Self {
        BufferContextArg {
            pipeline_id: &ctx.pipeline_id,
            source_topic: &ctx.source_topic,
            attempt: ctx.attempt,
        }
    }
}

/// The parameter types of the guest's `process` export (both versions).
pub(crate) type ProcessParams<'a> = (MessageArg<'a>, ContextArg<'a>);
/// The result of a 1.0 `process`.
pub(crate) type ProcessReturn = (GuestResult,);
/// The result of a 1.1 `process`.
pub(crate) type ProcessReturnV11 = (GuestResultV11,);
/// The parameter types of the 1.1 `process-batch` export.
pub(crate) type BatchParams<'a> = (&'a [MessageArg<'a>], BatchContextArg<'a>);
/// The result of `process-batch`.
pub(crate) type BatchReturn = (BoundedResults,);
/// The parameter types of the 1.2 `process-buffer` export: the batch layout's bytes.
pub(crate) type BufferParams<'a> = (&'a [u8], BufferContextArg<'a>);
/// The result of `process-buffer`: the answer's bytes, charged to the output budget
/// before wasmtime copies them out (the guest frees them right after the call).
pub(crate) type BufferReturn = (BoundedBytes,);
