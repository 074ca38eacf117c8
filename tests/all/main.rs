//! Integration tests: one binary, one module per area.

mod broker;
mod legacy;
mod pipelines;
mod runtime;
mod template;
