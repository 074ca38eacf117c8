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

#[test]
fn broker_commands_exit_3_when_nothing_listens_at_the_address() {
    // Port 1 (tcpmux) is privileged and unused: the connection is refused.
    let out = Command::new(BIN)
        .args(["module", "list", "--admin-url", "http://127.0.0.1:1"])
        .env_remove("RUSTMQ_CLI_ADMIN_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot connect to the broker at http://127.0.0.1:1/"),
        "{stderr}"
    );
}

#[test]
fn an_unreadable_pipeline_definition_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["pipeline", "create", "/nonexistent/etl-pipeline.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/etl-pipeline.json")
    );
}

#[test]
fn unknown_flags_exit_2() {
    let out = Command::new(BIN)
        .args(["consume", "t", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn inspect_reports_a_file_that_is_not_wasm_as_not_runnable_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("notes.wasm");
    std::fs::write(&module, b"plain text").unwrap();
    let out = Command::new(BIN)
        .arg("inspect")
        .arg(&module)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("size:     10 bytes"), "{stdout}");
    assert!(
        stdout.contains("runnable: no: not a WebAssembly binary"),
        "{stdout}"
    );

    let json = Command::new(BIN)
        .arg("inspect")
        .arg(&module)
        .arg("--json")
        .output()
        .unwrap();
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["runnable"], false);
    assert_eq!(
        value["blake3"],
        blake3::hash(b"plain text").to_hex().as_str()
    );
}

#[test]
fn inspect_of_a_missing_file_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["inspect", "/nonexistent/m.wasm"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn new_refuses_an_invalid_name_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["new", "2 bad"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid project name"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn every_command_has_help_with_an_example() {
    let commands: &[&[&str]] = &[
        &["new"],
        &["run"],
        &["inspect"],
        &["module", "upload"],
        &["module", "list"],
        &["module", "get"],
        &["module", "delete"],
        &["pipeline", "create"],
        &["pipeline", "list"],
        &["pipeline", "start"],
        &["pipeline", "stop"],
        &["pipeline", "status"],
        &["pipeline", "metrics"],
        &["pipeline", "update"],
        &["pipeline", "delete"],
        &["produce"],
        &["consume"],
    ];
    for command in commands {
        let out = Command::new(BIN)
            .args(*command)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{command:?} --help failed");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example"),
            "{command:?} --help has no example:\n{help}"
        );
        assert!(help.contains("rustmq-etl "), "{command:?}");
    }
}
