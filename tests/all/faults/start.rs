//! Bad storage at start: a clear error and a non-zero exit, never a panic.

use rustmq_etl_tests::broker::BrokerProcess;

fn assert_clear_failure(status: std::process::ExitStatus, stderr: &str, needle: &str) {
    assert!(!status.success(), "the broker started anyway: {stderr}");
    assert!(
        status.code().is_some(),
        "the broker died of a signal: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(needle), "{stderr}");
}

#[test]
fn modules_path_that_cannot_be_created_fails_start_clearly() {
    // A regular file where the directory should be: refused even to root, which
    // ignores permission bits.
    let home = tempfile::tempdir().unwrap();
    let blocker = home.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let config = format!(
        "[etl]\nenabled = true\nmodules_path = {:?}\n",
        blocker.join("wasm")
    );
    let (status, stderr) = BrokerProcess::run_to_exit(&config, &[]);
    assert_clear_failure(status, &stderr, "not-a-dir");
}

#[test]
fn data_dir_that_cannot_be_written_fails_start_clearly() {
    let home = tempfile::tempdir().unwrap();
    let blocker = home.path().join("data-file");
    std::fs::write(&blocker, b"x").unwrap();
    let data_dir = blocker.join("data");
    let (status, stderr) = BrokerProcess::run_to_exit(
        "",
        &[("RUSTMQ_STORAGE_DATA_DIR", data_dir.to_str().unwrap())],
    );
    assert_clear_failure(status, &stderr, "data-file");
}
