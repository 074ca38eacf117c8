//! The single `bindgen!` site for the `rustmq:etl/etl@1.0.0` world, the per-instance
//! host state, and the host side of the `host` interface (`log`, `get-param`).
//!
//! Also here: borrowed mirrors of the `message` and `process-context` records
//! ([`MessageArg`], [`ContextArg`]) so a `process` call lowers the caller's data
//! straight into guest memory without first cloning it into the generated owned
//! types.

use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) use rustmq_etl_legacy::limiter::GuestLimiter;
use wasmtime::component::{ComponentType, Lower, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::output::GuestResult;
use super::wasi::{truncate_line, LogBudget};
use crate::message::Message;
use crate::runtime::ProcessContext;

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "etl",
    });
}

pub(crate) use generated::rustmq::etl::host::LogLevel;
pub(crate) use generated::{Etl, EtlPre};

/// The world this runtime implements, as reported by `inspect`.
pub const WORLD: &str = "rustmq:etl/etl@1.0.0";

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
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl generated::rustmq::etl::types::Host for HostState {}

impl generated::rustmq::etl::host::Host for HostState {
    fn log(&mut self, level: LogLevel, message: String) {
        if !self.log_budget.take() {
            return;
        }
        let text = truncate_line(&message);
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

    fn get_param(&mut self, name: String) -> Option<String> {
        self.params.get(&name).cloned()
    }
}

/// Adds WASI 0.2 and the `rustmq:etl` host interfaces to `linker`.
pub(crate) fn add_to_linker(
    linker: &mut wasmtime::component::Linker<HostState>,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    Etl::add_to_linker::<HostState, wasmtime::component::HasSelf<HostState>>(linker, |s| s)
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

/// The parameter and result types of the guest's `process` export.
pub(crate) type ProcessParams<'a> = (MessageArg<'a>, ContextArg<'a>);
/// See [`ProcessParams`].
pub(crate) type ProcessReturn = (GuestResult,);
