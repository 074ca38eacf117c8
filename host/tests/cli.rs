//! The `rustmq-etl` binary itself: exit codes and error output. (Running real
//! modules through the CLI is tested in-process in `tests/all/runtime.rs`, where the
//! guests are built.)

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_rustmq-etl");

#[test]
fn run_exits_non_zero_and_explains_when_the_module_is_not_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("not-a-module.wasm");
    std::fs::write(&module, b"hello").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--module"])
        .arg(&module)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a WebAssembly binary"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn run_exits_non_zero_when_the_module_file_is_missing() {
    let out = Command::new(BIN)
        .args(["run", "--module", "/nonexistent/module.wasm"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read module"));
}

#[test]
fn run_rejects_a_param_without_equals_sign() {
    let out = Command::new(BIN)
        .args(["run", "--module", "m.wasm", "--param", "oops"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=VALUE"));
}
