//! A RustMQ ETL transform module, ready to copy and adapt.
//!
//! - [`processor`] holds the logic: plain functions over a plain [`processor::Message`],
//!   unit tested natively with `cargo test`. Edit this.
//! - `export` (WebAssembly builds only) is the thin layer that implements the
//!   `rustmq:etl/etl` world on top of it. You rarely need to touch it.

pub mod processor;

#[cfg(target_arch = "wasm32")]
mod export;
