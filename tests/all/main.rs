//! Integration tests: one binary, one module per area.

mod broker;
mod cli;
mod legacy;
mod packaging;
mod pipelines;
mod runtime;
