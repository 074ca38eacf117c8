//! Integration tests: one binary, one module per area.

mod broker;
mod pipelines;
mod runtime;
