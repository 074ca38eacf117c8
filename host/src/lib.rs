//! RustMQ ETL: a small message broker whose topics are transformed in flight by
//! sandboxed WebAssembly modules.
//!
//! # Layout
//! - [`message`]: the message record and its JSON wire form.
//! - [`config`]: the broker's TOML configuration, environment overrides, validation.
//! - [`storage`]: durable topic logs, consumer offsets and metadata (redb).
//! - [`api`]: the HTTP APIs: messages (`api::data`) and admin (`api::admin`).
//! - [`broker`]: the state every handler and background task shares, opened from a
//!   config.
//! - [`server`]: the two listeners and graceful shutdown.
//! - [`serve`]: serving one HTTP API within its bounds (connections, timeouts,
//!   concurrent requests).
//! - [`runtime`]: wasmtime engine, the `rustmq:etl` bindings and the [`runtime::Transform`]
//!   interface that components and legacy core modules implement.
//! - [`state`]: a pipeline's durable keyed state as the worker and guests see it.
//! - [`kafka`]: external Kafka clusters as pipeline sources and sinks (rdkafka).
//! - [`cli`]: the `rustmq-etl` command line (`run`).
//! - [`wire`]: the HTTP APIs' bodies, defined once for the server and the CLI.
//!
//! The binaries (`rustmq-broker`, `rustmq-etl`) only parse flags, set up tracing and
//! call into this library.

pub mod api;
pub mod broker;
pub mod cli;
pub mod config;
pub mod kafka;
pub mod message;
pub mod modules;
pub mod pipeline;
pub mod runtime;
pub mod serve;
pub mod server;
pub mod state;
pub mod storage;
pub mod wire;
