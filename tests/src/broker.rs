//! Running the real `rustmq-broker` binary in a test.
//!
//! [`BrokerProcess::start`] builds the binary once per test run ([`host_binary`]:
//! `cargo build -p rustmq-etl --bin rustmq-broker`, into `$CARGO_TARGET_DIR` or the
//! workspace's `target/`; set `RUSTMQ_BROKER_BIN` to use a prebuilt one), writes a config file
//! into a fresh temporary directory, and starts the broker with both listeners on
//! port 0 and its data directory inside that temporary directory. It then reads the
//! broker's `rustmq-broker listening admin=.. messages=..` stdout line, so the URLs
//! are known and the broker is accepting when `start` returns — no polling, no
//! fixed ports. The broker's stderr (its log) goes to `broker.log` in the temporary
//! directory and is printed when a start fails.
//!
//! ```no_run
//! use rustmq_etl_tests::broker::BrokerProcess;
//! let mut broker = BrokerProcess::start("[admin]\ntoken = \"t\"\n");
//! let url = format!("{}/api/v1/status", broker.admin_url);
//! broker.sigkill();
//! broker.restart(); // same data directory, new ports
//! ```
//!
//! The helper fills `[server] admin_addr/messages_addr` and `[storage] data_dir`
//! through `RUSTMQ_*` environment overrides, so the TOML a test passes may contain
//! any section (its values for those three keys are ignored).
//!
//! [`cli_binary`] builds the `rustmq-etl` command line the same way
//! (`RUSTMQ_CLI_BIN` overrides), for tests that drive the broker through it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// How long a broker may take to print its listening line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The path of a freshly built `rustmq-broker` (`RUSTMQ_BROKER_BIN` overrides).
pub fn broker_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| host_binary("rustmq-broker", "RUSTMQ_BROKER_BIN"))
}

/// The path of a freshly built `rustmq-etl` CLI (`RUSTMQ_CLI_BIN` overrides).
pub fn cli_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| host_binary("rustmq-etl", "RUSTMQ_CLI_BIN"))
}

/// Runs the `rustmq-etl` CLI against `broker` with `args` (its URLs in the
/// environment, no admin token unless `env` gives one), plus `env`.
pub fn run_cli(
    broker: &BrokerProcess,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new(cli_binary());
    cmd.args(args)
        .env("RUSTMQ_CLI_ADMIN_URL", &broker.admin_url)
        .env("RUSTMQ_CLI_URL", &broker.data_url)
        .env_remove("RUSTMQ_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run rustmq-etl")
}

/// Builds the binary `name` of the host crate (`cargo build -p rustmq-etl --bin
/// <name>`, into `$CARGO_TARGET_DIR` or the workspace's `target/`) and returns its
/// path; when the environment variable `override_var` is set, returns its value
/// instead, unbuilt. Call it once per binary and test run (the wrappers above cache).
pub fn host_binary(name: &str, override_var: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(override_var) {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "rustmq-etl", "--bin", name])
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &target)
        .status()
        .unwrap_or_else(|e| panic!("run cargo build for {name}: {e}"));
    assert!(status.success(), "building {name} failed");
    target.join("debug").join(name)
}

/// A running broker (or one stopped by a test) and its temporary home.
pub struct BrokerProcess {
    /// `http://127.0.0.1:<port>` of the admin API.
    pub admin_url: String,
    /// `http://127.0.0.1:<port>` of the message API.
    pub data_url: String,
    /// The broker's data directory (inside [`BrokerProcess::home`]).
    pub data_dir: PathBuf,
    home: tempfile::TempDir,
    config_path: PathBuf,
    env: Vec<(String, String)>,
    /// A command the broker runs under (program and arguments), if any.
    wrapper: Vec<String>,
    child: Option<Child>,
    // Kept open so the broker never writes to a closed pipe.
    _stdout: Option<BufReader<ChildStdout>>,
}

impl BrokerProcess {
    /// Starts a broker whose config file is `config_toml` (may be empty).
    pub fn start(config_toml: &str) -> BrokerProcess {
        Self::start_with_env(config_toml, &[])
    }

    /// Starts a broker with extra environment variables (e.g. `RUSTMQ_ADMIN_TOKEN`).
    pub fn start_with_env(config_toml: &str, env: &[(&str, &str)]) -> BrokerProcess {
        let home = tempfile::tempdir().expect("create temp dir");
        let config_path = home.path().join("broker.toml");
        std::fs::write(&config_path, config_toml).expect("write config");
        let mut broker = BrokerProcess {
            admin_url: String::new(),
            data_url: String::new(),
            data_dir: home.path().join("data"),
            config_path,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            home,
            wrapper: Vec::new(),
            child: None,
            _stdout: None,
        };
        broker.spawn();
        broker
    }

    /// Starts a broker whose data directory is a tmpfs of `size_bytes`, mounted in a
    /// mount namespace of its own (`unshare`), so the test can fill its disk without
    /// touching the machine's. `None`, said loudly on stderr, where this machine
    /// does not let a test mount one. See [`BrokerProcess::data_view`].
    pub fn start_on_tmpfs(config_toml: &str, size_bytes: u64) -> Option<BrokerProcess> {
        // SAFETY: `geteuid` has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let unshare = if root { "-m" } else { "-rm" };
        let mount = format!("mount -t tmpfs -o size={size_bytes} tmpfs \"$0\"");
        let probe = tempfile::tempdir().expect("create temp dir");
        let permitted = Command::new("unshare")
            .args([unshare, "--propagation", "private", "sh", "-c", &mount])
            .arg(probe.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !permitted {
            eprintln!("SKIPPED: this machine does not let a test mount a tmpfs in a mount namespace of its own (`unshare {unshare}` and `mount -t tmpfs` failed)");
            return None;
        }
        let home = tempfile::tempdir().expect("create temp dir");
        let config_path = home.path().join("broker.toml");
        std::fs::write(&config_path, config_toml).expect("write config");
        let data_dir = home.path().join("data");
        std::fs::create_dir_all(&data_dir).expect("create the mount point");
        let mut broker = BrokerProcess {
            admin_url: String::new(),
            data_url: String::new(),
            data_dir,
            config_path,
            env: Vec::new(),
            home,
            wrapper: [
                "unshare",
                unshare,
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs -o size=$RUSTMQ_TEST_TMPFS_BYTES tmpfs \"$RUSTMQ_STORAGE_DATA_DIR\" && exec \"$@\"",
                "sh",
            ]
            .map(String::from)
            .to_vec(),
            child: None,
            _stdout: None,
        };
        broker
            .env
            .push(("RUSTMQ_TEST_TMPFS_BYTES".into(), size_bytes.to_string()));
        broker.spawn();
        Some(broker)
    }

    /// The data directory as the broker sees it: for a broker on its own tmpfs, the
    /// view into its mount namespace (`/proc/<pid>/root/...`), where the test can
    /// write and delete files on that filesystem.
    pub fn data_view(&self) -> PathBuf {
        match (self.wrapper.is_empty(), self.pid()) {
            (false, Some(pid)) => Path::new(&format!("/proc/{pid}/root"))
                .join(self.data_dir.strip_prefix("/").unwrap_or(&self.data_dir)),
            _ => self.data_dir.clone(),
        }
    }

    /// Runs the broker with `config_toml` expecting it to exit by itself (a config
    /// error); returns its exit status and stderr.
    pub fn run_to_exit(config_toml: &str, env: &[(&str, &str)]) -> (ExitStatus, String) {
        let home = tempfile::tempdir().expect("create temp dir");
        let config_path = home.path().join("broker.toml");
        std::fs::write(&config_path, config_toml).expect("write config");
        let mut cmd = Command::new(broker_binary());
        cmd.arg("--config").arg(&config_path);
        base_env(&mut cmd, &home.path().join("data"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run rustmq-broker");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The temporary directory holding the config, data and log.
    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The broker's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.home.path().join("broker.log")).unwrap_or_default()
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("broker.log"))
            .expect("open broker.log");
        let mut cmd = match self.wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(broker_binary());
                cmd
            }
            None => Command::new(broker_binary()),
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        base_env(&mut cmd, &self.data_dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn rustmq-broker");
        let stdout = child.stdout.take().expect("piped stdout");
        // Read the listening line on a thread so a broker that hangs fails the test
        // after START_TIMEOUT instead of blocking it forever.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let read = reader.read_line(&mut line).map(|_| line);
            let _ = tx.send((read, reader));
        });
        let (line, reader) = match rx.recv_timeout(START_TIMEOUT) {
            Ok((Ok(line), reader)) if !line.is_empty() => (line, reader),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("rustmq-broker did not start; its log:\n{}", self.log());
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(|addr| format!("http://{addr}"))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        self.admin_url = field("admin=");
        self.data_url = field("messages=");
        self.child = Some(child);
        self._stdout = Some(reader);
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn sigterm(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM)
    }

    /// Sends SIGINT and waits for the exit.
    pub fn sigint(&mut self) -> ExitStatus {
        self.signal(libc::SIGINT)
    }

    /// Kills with SIGKILL (a crash) and waits for the exit.
    pub fn sigkill(&mut self) -> ExitStatus {
        self.signal(libc::SIGKILL)
    }

    fn signal(&mut self, signal: libc::c_int) -> ExitStatus {
        let mut child = self.child.take().expect("broker is running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: `kill` has no memory-safety preconditions; the pid is our child,
        // not yet reaped, so it cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
        let status = child.wait().expect("wait for rustmq-broker");
        self._stdout = None;
        status
    }

    /// Starts the broker again on the same config and data directory (new ports).
    /// Stops it with SIGTERM first if it is running.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.sigterm();
        }
        self.spawn();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn base_env(cmd: &mut Command, data_dir: &Path) {
    cmd.env("RUSTMQ_SERVER_ADMIN_ADDR", "127.0.0.1:0")
        .env("RUSTMQ_SERVER_MESSAGES_ADDR", "127.0.0.1:0")
        .env("RUSTMQ_STORAGE_DATA_DIR", data_dir)
        .env_remove("RUST_LOG");
}
