//! Integration tests: one binary, one module per area.

mod broker;
mod e2e_modules;
mod e2e_pipelines;
mod legacy;
mod pipelines;
mod runtime;
mod template;
