//! Test support: paths of the guest modules built from source by `build.rs`.
//!
//! Every crate under `tests/guests/` (and the `guest-template/`) is compiled to
//! WebAssembly when this crate is built; [`guests`] holds one constant per module,
//! named after the crate in SCREAMING_SNAKE_CASE, with the path of its `.wasm` file.
//! [`broker`] starts the real `rustmq-broker` binary for end-to-end tests, and
//! [`http`] talks JSON to it; [`guide`] holds the deployment guide's literal inputs; [`topics`] reads and
//! writes topics in process and [`pipelines`] defines pipelines there; [`kafka`] starts the Kafka-protocol servers (tansu, noida-db) that
//! Kafka-cluster tests run against, and reads and writes their topics.

pub mod broker;
pub mod guide;
pub mod http;
pub mod kafka;
pub mod languages;
pub mod pipelines;
pub mod topics;

/// Paths of the guest modules built for this test run.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Runs `f` on a thread of its own and returns its answer, failing the test if it has
/// not answered within `limit`: for checks that a call ends at all, where the bug
/// would be a hang.
pub fn within<T: Send + 'static>(
    limit: std::time::Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(answer) => answer,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what} did not answer within {limit:?}")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// The `componentize-py` that builds Python guests: `$RUSTMQ_TEST_COMPONENTIZE_PY`
/// (set by `tests/run.sh`, which installs it when missing), else one on the `PATH`.
/// `None` when there is none: the tests that need it then say SKIPPED.
pub fn componentize_py() -> Option<std::path::PathBuf> {
    tool("RUSTMQ_TEST_COMPONENTIZE_PY", "componentize-py")
}

/// The `componentize-js` that builds JavaScript guests, found as
/// [`componentize_py`] is (`$RUSTMQ_TEST_COMPONENTIZE_JS`).
pub fn componentize_js() -> Option<std::path::PathBuf> {
    tool("RUSTMQ_TEST_COMPONENTIZE_JS", "componentize-js")
}

fn tool(var: &str, name: &str) -> Option<std::path::PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        return Some(path.into());
    }
    std::process::Command::new(name)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| name.into())
}
