//! Integration tests: one binary, one module per area.

mod bounds;
mod broker;
mod canary;
mod chains;
mod cli;
mod console;
mod contract_1_1;
mod contract_1_2;
mod deadlines;
mod disk_full;
mod e2e_modules;
mod e2e_pipelines;
mod faults;
mod hostile;
mod house;
mod kafka;
mod languages;
mod legacy;
mod lifecycle;
mod openapi;
mod operate;
mod packaging;
mod pipelines;
mod properties;
mod runtime;
mod template;
