//! RustMQ ETL: a small message broker whose topics are transformed in flight by
//! sandboxed WebAssembly modules.
//!
//! # Layout
//! - [`message`]: the message record and its JSON wire form.
//! - [`runtime`]: wasmtime engine, the `rustmq:etl` bindings and the [`runtime::Transform`]
//!   interface that components and legacy core modules implement.
//! - [`cli`]: the `rustmq-etl` command line (`run`).
//!
//! The binaries (`rustmq-broker`, `rustmq-etl`) only parse flags, set up tracing and
//! call into this library.

pub mod cli;
pub mod message;
pub mod modules;
pub mod pipeline;
pub mod runtime;
pub mod storage;
