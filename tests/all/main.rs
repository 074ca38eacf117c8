//! Integration tests: one binary, one module per area.

mod broker;
mod faults;
mod hostile;
mod legacy;
mod pipelines;
mod properties;
mod runtime;
