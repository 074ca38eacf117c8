//! The systemd packaging: the unit starts the installed broker on the installed
//! config, that config loads, and (where `systemd-analyze` exists) the unit verifies.

use std::path::{Path, PathBuf};
use std::process::Command;

use rustmq_etl::config::BrokerConfig;

/// Where `cargo install --path host --root /usr/local` puts the broker.
const INSTALLED_BROKER: &str = "/usr/local/bin/rustmq-broker";
/// Where the deployment guide installs `packaging/broker.toml`.
const INSTALLED_CONFIG: &str = "/etc/rustmq/broker.toml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn unit() -> String {
    std::fs::read_to_string(repo().join("packaging/rustmq-broker.service"))
        .expect("read packaging/rustmq-broker.service")
}

/// The values of `key=` lines in the unit, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn unit_runs_the_installed_broker_on_the_installed_config_as_an_unprivileged_user() {
    let unit = unit();
    assert_eq!(
        values(&unit, "ExecStart"),
        [format!("{INSTALLED_BROKER} --config {INSTALLED_CONFIG}").as_str()]
    );
    assert_eq!(values(&unit, "User"), ["rustmq"]);
    assert_eq!(values(&unit, "StateDirectory"), ["rustmq"]);
    assert_eq!(values(&unit, "NoNewPrivileges"), ["yes"]);
    assert_eq!(values(&unit, "ProtectSystem"), ["strict"]);
    // wasmtime writes machine code at run time.
    assert!(values(&unit, "MemoryDenyWriteExecute").is_empty());
}

#[test]
fn packaged_config_loads_and_keeps_everything_under_var_lib_rustmq() {
    let config = BrokerConfig::load(&repo().join("packaging/broker.toml"))
        .expect("packaging/broker.toml loads");
    assert_eq!(config.etl.modules_path, Path::new("/var/lib/rustmq/wasm"));
    assert!(config.storage.data_dir.starts_with("/var/lib/rustmq"));
    assert!(config.etl.enabled);
}

#[test]
fn unit_passes_systemd_analyze_verify_when_available() {
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        eprintln!("SKIPPED: systemd-analyze is not installed (tests/run.sh installs it on Debian as root), so the unit was not verified");
        return;
    }
    // `verify` insists the ExecStart binary exists; point it at the freshly built one
    // (the path itself is checked by the test above).
    let home = tempfile::tempdir().unwrap();
    let copy = home.path().join("rustmq-broker.service");
    let broker = rustmq_etl_tests::broker::broker_binary();
    std::fs::write(
        &copy,
        unit().replace(INSTALLED_BROKER, &broker.display().to_string()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("run systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    assert!(
        !stderr.contains("rustmq-broker.service"),
        "systemd-analyze warns about the unit:\n{stderr}"
    );
}
