//! The guest template builds with `cargo component build` (as well as with plain
//! `cargo build --target wasm32-wasip2`, which `tests/build.rs` does for every run)
//! and the result runs in the broker's runtime. The template depends on the guest SDK
//! by path (`../guest-sdk`), so the SDK is copied beside it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rustmq_etl::message::Message;
use rustmq_etl::runtime::{ModuleKind, ProcessContext, Runtime, RuntimeLimits};
use rustmq_etl_tests::guests::GUEST_TEMPLATE_DIR;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == "bindings.rs" {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(&name));
        } else {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

#[test]
fn cargo_component_builds_the_template_into_a_runnable_component() {
    // `tests/run.sh` installs cargo-component; a missing one is a broken setup.
    let version = Command::new("cargo")
        .args(["component", "--version"])
        .output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo-component is not installed: run tests/run.sh (or `cargo install cargo-component --locked`)"
    );
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("message-processor");
    let template = Path::new(GUEST_TEMPLATE_DIR);
    copy_dir(template, &project);
    // The SDK and the batch layout crate it depends on, where the template's and the
    // SDK's manifests find them.
    for sibling in ["guest-sdk", "batch-buffer"] {
        copy_dir(
            &template.join("..").join(sibling),
            &dir.path().join(sibling),
        );
    }
    // Share compiled dependencies between runs, away from the copied project.
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/guests-component");
    let mut cmd = Command::new("cargo");
    cmd.args(["component", "build", "--release", "--target-dir"])
        .arg(&target)
        .current_dir(&project);
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_") && k != "CARGO_HOME" || k == "RUSTFLAGS" {
            cmd.env_remove(k);
        }
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "cargo component build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = target.join("wasm32-wasip1/release/message_processor.wasm");
    let bytes = std::fs::read(&wasm).unwrap_or_else(|e| panic!("{}: {e}", wasm.display()));

    let runtime = Runtime::new(RuntimeLimits {
        max_instances: 2,
        ..RuntimeLimits::default()
    })
    .unwrap();
    let info = runtime.inspect(&bytes).unwrap();
    assert_eq!(info.kind, ModuleKind::Component);
    assert!(
        info.imports
            .iter()
            .any(|i| i.starts_with("wasi:filesystem")),
        "cargo-component output imports WASI filesystem, which must link: {:?}",
        info.imports
    );
    let module = runtime.compile(&bytes).unwrap();
    let mut t = module
        .instantiate("template", "test", &BTreeMap::new())
        .unwrap();
    let msg = Message {
        key: Some("test-key".into()),
        value: br#"{"temperature_celsius": 25.0, "sensor_id": "temp001"}"#.to_vec(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("source".into(), "sensor-network".into()),
        ],
        timestamp: 1640995200000,
    };
    let out = t.process(&msg, &ProcessContext::default()).unwrap();
    assert_eq!(out.error, None);
    let json: serde_json::Value = serde_json::from_slice(&out.messages[0].value).unwrap();
    assert_eq!(json["temperature_fahrenheit"], 77.0);
    assert_eq!(out.messages[0].header("enriched"), Some("true"));
}
