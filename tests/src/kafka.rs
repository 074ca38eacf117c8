//! Kafka-protocol servers for tests, and the few client operations tests need on them.
//!
//! Every test that talks to a Kafka cluster gets it here:
//!
//! ```no_run
//! use rustmq_etl_tests::kafka::{unique_topic, Isolation, KafkaServer, Record};
//! use std::time::Duration;
//! let server = KafkaServer::start();
//! let topic = unique_topic("orders");
//! server.create_topic(&topic, 4);
//! server.produce(&topic, &[Record::keyed("k", "v")]);
//! let read = server.read_all(&topic, Isolation::ReadCommitted, 1, Duration::from_secs(30));
//! assert_eq!(read.len(), 1);
//! ```
//!
//! # Which server
//! [`KafkaServer::start`] runs tansu, the main test server: one static binary, ready in well
//! under a second, everything in memory. [`KafkaServer::start_noida`] runs noida-db's Kafka
//! service, for the tests tansu cannot serve (see the faults below). Each owned server gets
//! a free loopback port and a temporary directory holding its log (stdout and stderr, printed
//! when it fails to start) and, for noida-db, its data; dropping the [`KafkaServer`] kills it.
//!
//! Setting `RUSTMQ_TEST_KAFKA_BOOTSTRAP` (or `RUSTMQ_TEST_KAFKA_EOS_BOOTSTRAP` for
//! [`KafkaServer::start_noida`]) runs the tests against that cluster instead; it is not owned,
//! so it cannot be paused or killed ([`KafkaServer::owned`] tells a test which it has).
//!
//! The binaries come from `RUSTMQ_TEST_TANSU_BIN` and `RUSTMQ_TEST_NOIDA_BIN` (`tests/run.sh`
//! sets them); when unset, `tests/tools/kafka-servers.sh install` is run once per test binary
//! (it installs only what its cache lacks) and its output read.
//!
//! # Faults of the servers, measured, that shape this module and the tests
//! - tansu shows aborted and still-open transactions to `read_committed` readers: tests that
//!   need aborted records hidden use noida-db.
//! - tansu answers ListOffsets "latest" (the high watermark) wrongly, so [`KafkaServer::read_all`]
//!   reads every partition from the beginning and stops when records stop coming, never at a
//!   watermark.
//! - tansu cannot add partitions to a topic.
//! - tansu's group joins take about half the session timeout (more with `group.instance.id`);
//!   noida-db never evicts a dead group member, so a group whose member was killed without
//!   leaving is stuck unless the new member reuses its `group.instance.id`.
//!
//! # Waiting
//! Every wait has a deadline, and every wait is for a condition (a port accepting, a metadata
//! answer, a delivery report), polled; nothing sleeps for a fixed time to let things settle.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long a server may take to accept connections and answer a metadata request. Both
/// servers are ready in well under a second; the margin is for a loaded machine.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How many free ports a start tries: the port is free when picked but is bound by the
/// server only later, so another process may take it in between.
const START_ATTEMPTS: u32 = 3;

/// Deadline of one admin or metadata operation (create a topic, count partitions).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka's `message.timeout.ms` for [`KafkaServer::produce`]: how long a record may go
/// undelivered before its delivery fails (the default, five minutes, would hide a hang).
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// librdkafka's `socket.timeout.ms`: a request to a stopped server fails after this long
/// instead of the default minute.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`KafkaServer::read_all`] waits without a new record, once it has the records
/// it expects, before it takes the topic as fully read.
const QUIET_PERIOD: Duration = Duration::from_millis(1500);

/// How often a condition is polled.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Which server a [`KafkaServer`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// An owned tansu ([`KafkaServer::start`]).
    Tansu,
    /// An owned noida-db ([`KafkaServer::start_noida`]).
    Noida,
    /// A cluster named by `RUSTMQ_TEST_KAFKA_BOOTSTRAP` or `RUSTMQ_TEST_KAFKA_EOS_BOOTSTRAP`.
    External,
}

/// The isolation level of a reader (librdkafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones).
    ReadCommitted,
    /// Every record, aborted or open transactions included.
    ReadUncommitted,
}

/// A record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The partition to write to; `None` lets the producer's partitioner pick by key.
    pub partition: Option<i32>,
    /// The record's key.
    pub key: Option<Vec<u8>>,
    /// The record's value.
    pub value: Vec<u8>,
    /// The record's headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Record {
    /// A record with a text key and value, no headers, partitioned by key.
    pub fn keyed(key: &str, value: &str) -> Record {
        Record {
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            value: value.as_bytes().to_vec(),
            headers: Vec::new(),
        }
    }
}

/// A record as read back by [`KafkaServer::read_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    /// The partition it was read from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Its key.
    pub key: Option<Vec<u8>>,
    /// Its value (empty for a null value).
    pub value: Vec<u8>,
    /// Its headers, in order (a null header value reads as empty).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A Kafka-protocol server for one test: an owned tansu or noida-db process, or an external
/// cluster. See the module documentation.
pub struct KafkaServer {
    bootstrap: String,
    kind: ServerKind,
    /// `None` for an external cluster.
    process: Option<Process>,
}

/// An owned server process and its temporary home; dropping it kills and reaps the process.
struct Process {
    /// `None` once [`KafkaServer::kill`] has reaped it.
    child: Option<Child>,
    home: tempfile::TempDir,
}

impl KafkaServer {
    /// The main test server: the cluster named by `RUSTMQ_TEST_KAFKA_BOOTSTRAP`, else an
    /// owned tansu. Panics, with the server's log, if it is not ready within 30 seconds.
    pub fn start() -> KafkaServer {
        Self::start_kind(ServerKind::Tansu, "RUSTMQ_TEST_KAFKA_BOOTSTRAP")
    }

    /// The server for tests that need aborted transactions hidden from `read_committed`
    /// readers: the cluster named by `RUSTMQ_TEST_KAFKA_EOS_BOOTSTRAP`, else an owned
    /// noida-db with its data in a temporary directory.
    pub fn start_noida() -> KafkaServer {
        Self::start_kind(ServerKind::Noida, "RUSTMQ_TEST_KAFKA_EOS_BOOTSTRAP")
    }

    fn start_kind(kind: ServerKind, external_var: &str) -> KafkaServer {
        if let Some(bootstrap) = std::env::var(external_var).ok().filter(|b| !b.is_empty()) {
            if let Err(e) = wait_for_metadata(&bootstrap, Instant::now() + START_TIMEOUT) {
                panic!("the Kafka cluster {bootstrap} ({external_var}) does not answer: {e}");
            }
            return KafkaServer {
                bootstrap,
                kind: ServerKind::External,
                process: None,
            };
        }
        let home = tempfile::tempdir().expect("create a temporary directory");
        let log_path = home.path().join("server.log");
        let mut process = Process { child: None, home };
        for attempt in 1..=START_ATTEMPTS {
            let port = free_port();
            let bootstrap = format!("127.0.0.1:{port}");
            match process.spawn(kind, port) {
                Started::Ready => {
                    return KafkaServer {
                        bootstrap,
                        kind,
                        process: Some(process),
                    };
                }
                // Most likely the port was taken after `free_port` released it: try another.
                Started::Exited(_) if attempt < START_ATTEMPTS => {}
                Started::Exited(status) => panic!(
                    "{kind:?} exited ({status}) {START_ATTEMPTS} times on start; its log:\n{}",
                    read_log(&log_path)
                ),
                Started::NotReady(why) => panic!(
                    "{kind:?} on {bootstrap} not ready after {START_TIMEOUT:?} ({why}); its log:\n{}",
                    read_log(&log_path)
                ),
            }
        }
        unreachable!("the last attempt panics or returns")
    }

    /// The bootstrap address (`127.0.0.1:<port>` for an owned server).
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Whether this test owns the server process (so may pause, resume or kill it).
    pub fn owned(&self) -> bool {
        self.process.is_some()
    }

    /// Which server this is.
    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    /// The owned server's log so far (empty for an external cluster).
    pub fn log(&self) -> String {
        self.process
            .as_ref()
            .map(|p| read_log(&p.log_path()))
            .unwrap_or_default()
    }

    /// Stops the owned server with SIGSTOP: its connections stay open but nothing answers,
    /// as with a hung broker. Panics for an external cluster or a killed server.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Continues a server stopped by [`KafkaServer::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Kills the owned server with SIGKILL (a crash) and reaps it. Its data is lost for
    /// tansu (memory only). Panics for an external cluster or a killed server.
    pub fn kill(&mut self) {
        let process = self
            .process
            .as_mut()
            .expect("an external cluster cannot be killed");
        let mut child = process.child.take().expect("the server was already killed");
        let _ = child.kill();
        child.wait().expect("reap the killed server");
    }

    fn signal(&self, signal: libc::c_int) {
        let process = self
            .process
            .as_ref()
            .expect("an external cluster cannot be signalled");
        let child = process.child.as_ref().expect("the server was killed");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: `kill` has no memory-safety preconditions; the pid is our child, not yet
        // reaped, so it cannot have been reused.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
    }

    /// librdkafka settings for a client of this server: the bootstrap address, IPv4 only
    /// (`localhost` may resolve to `::1`, where nothing listens) and test-sized timeouts.
    /// Tests that build their own clients (transactional producers, group consumers) start
    /// from this.
    pub fn client_config(&self) -> ClientConfig {
        client_config(&self.bootstrap)
    }

    /// Creates `name` with `partitions` partitions and the cluster's default replication,
    /// and waits until metadata shows all of them. Panics if either fails within 30 seconds.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .unwrap_or_else(|e| panic!("create an admin client: {e}"));
        let options = AdminOptions::new()
            .request_timeout(Some(ADMIN_TIMEOUT))
            .operation_timeout(Some(ADMIN_TIMEOUT));
        // -1: the cluster's default, so the same call fits a one-broker test server and a
        // real cluster.
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
        let deadline = Instant::now() + ADMIN_TIMEOUT;
        let results = block_on(admin.create_topics([&topic], &options), deadline)
            .unwrap_or_else(|| panic!("creating topic {name} took over {ADMIN_TIMEOUT:?}"))
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
        for result in results {
            if let Err((topic, code)) = result {
                panic!("create topic {topic}: {code}");
            }
        }
        // CreateTopics may answer before every broker's metadata has the topic.
        while self.partitions(name) != partitions {
            assert!(
                Instant::now() < deadline,
                "topic {name} created but its {partitions} partitions never showed in metadata"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// How many partitions `topic` has, from metadata; 0 when it does not exist. Panics if
    /// the server does not answer within 30 seconds.
    pub fn partitions(&self, topic: &str) -> i32 {
        let consumer = self.consumer(&[]);
        let metadata = consumer
            .fetch_metadata(Some(topic), ADMIN_TIMEOUT)
            .unwrap_or_else(|e| panic!("metadata of topic {topic}: {e}"));
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() => {
                i32::try_from(t.partitions().len()).expect("partition count fits")
            }
            _ => 0,
        }
    }

    /// Writes `records` to `topic`, in order, with `acks=all` and idempotence on, and waits
    /// for every delivery. Panics if any record is not delivered (librdkafka gives up on a
    /// record after 30 seconds).
    pub fn produce(&self, topic: &str, records: &[Record]) {
        let producer: FutureProducer = self
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", millis(MESSAGE_TIMEOUT))
            .create()
            .unwrap_or_else(|e| panic!("create a producer: {e}"));
        let deliveries: Vec<_> = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (key, value) in &record.headers {
                    headers = headers.insert(Header {
                        key,
                        value: Some(value.as_slice()),
                    });
                }
                let mut future_record = FutureRecord::<[u8], [u8]>::to(topic)
                    .payload(&record.value)
                    .headers(headers);
                if let Some(key) = &record.key {
                    future_record = future_record.key(key);
                }
                if let Some(partition) = record.partition {
                    future_record = future_record.partition(partition);
                }
                producer
                    .send_result(future_record)
                    .unwrap_or_else(|(e, _)| panic!("queue record {i} for {topic}: {e}"))
            })
            .collect();
        // A second of margin past librdkafka's own timeout, so its error is what we report.
        let deadline = Instant::now() + MESSAGE_TIMEOUT + Duration::from_secs(1);
        for (i, delivery) in deliveries.into_iter().enumerate() {
            match block_on(delivery, deadline) {
                Some(Ok(Ok(_))) => {}
                Some(Ok(Err((e, _)))) => panic!("record {i} to {topic} not delivered: {e}"),
                Some(Err(_)) => panic!("record {i} to {topic}: the producer dropped its report"),
                None => panic!("record {i} to {topic}: no delivery report"),
            }
        }
    }

    /// Reads `topic` from the beginning of every partition, with an assigned consumer (no
    /// group, nothing committed), until at least `expect_at_least` records were read and
    /// none arrived for 1.5 seconds, or until `timeout`; then returns what was read, sorted
    /// by (partition, offset), for the caller to assert on. A topic that does not exist yet
    /// is waited for within the same `timeout`.
    pub fn read_all(
        &self,
        topic: &str,
        isolation: Isolation,
        expect_at_least: usize,
        timeout: Duration,
    ) -> Vec<Consumed> {
        let deadline = Instant::now() + timeout;
        let partitions = loop {
            let partitions = self.partitions(topic);
            if partitions > 0 {
                break partitions;
            }
            if Instant::now() >= deadline {
                return Vec::new();
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        let isolation = match isolation {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        };
        let consumer = self.consumer(&[("isolation.level", isolation)]);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .expect("a valid offset");
        }
        consumer
            .assign(&assignment)
            .unwrap_or_else(|e| panic!("assign the partitions of {topic}: {e}"));
        let mut read = Vec::new();
        let mut last_record = Instant::now();
        let mut last_error = None;
        loop {
            let now = Instant::now();
            let quiet = now.duration_since(last_record) >= QUIET_PERIOD;
            if now >= deadline || (read.len() >= expect_at_least && quiet) {
                break;
            }
            match consumer.poll(POLL_INTERVAL.min(deadline - now)) {
                Some(Ok(message)) => {
                    read.push(consumed(&message));
                    last_record = Instant::now();
                }
                // Transient errors (a paused or restarting server) are retried by librdkafka;
                // each distinct one is shown in the test's output in case the read comes up
                // short.
                Some(Err(e)) => {
                    let e = e.to_string();
                    if last_error.as_ref() != Some(&e) {
                        eprintln!("reading {topic}: {e}");
                        last_error = Some(e);
                    }
                }
                None => {}
            }
        }
        read.sort_by_key(|c| (c.partition, c.offset));
        read
    }

    /// A consumer for metadata and assigned reads: no group, nothing committed, and no topic
    /// created by asking about it.
    fn consumer(&self, settings: &[(&str, &str)]) -> BaseConsumer {
        let mut config = self.client_config();
        // librdkafka refuses `assign` without a group id ("Unknown group"); the
        // group is never joined or committed to, so a fresh name is enough.
        config
            .set("group.id", unique_topic("rustmq-test-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("allow.auto.create.topics", "false");
        for (key, value) in settings {
            config.set(*key, *value);
        }
        config
            .create()
            .unwrap_or_else(|e| panic!("create a consumer: {e}"))
    }
}

/// A topic name no other test (in this or another test process, or an earlier run against
/// the same external cluster) uses: `<prefix>-<pid>-<milliseconds>-<counter>`.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{millis}-{n}", std::process::id())
}

/// How a start attempt ended.
enum Started {
    Ready,
    /// The process exited before it was ready (a port taken, a bad binary).
    Exited(ExitStatus),
    /// It kept running but was not ready by the deadline; why.
    NotReady(String),
}

impl Process {
    fn log_path(&self) -> PathBuf {
        self.home.path().join("server.log")
    }

    /// Starts `kind` on `port` and waits until it accepts connections and answers a
    /// metadata request. A process that is not ready is reaped before this returns.
    fn spawn(&mut self, kind: ServerKind, port: u16) -> Started {
        let mut command = Command::new(kind.binary());
        kind.args(&mut command, port, self.home.path());
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the server log");
        // One header per attempt, so a failed start's log says what was run, even when the
        // server printed nothing.
        writeln!(log, "== {command:?}").expect("write the server log");
        let stderr = log.try_clone().expect("clone the server log handle");
        // Nothing from the test's environment changes what the server does or logs.
        command
            .env_remove("RUST_LOG")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("SCHEMA_REGISTRY")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", kind.binary().display()));
        let child = self.child.insert(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = loop {
            if let Some(status) = child.try_wait().expect("poll the server process") {
                break Started::Exited(status);
            }
            if TcpStream::connect_timeout(&addr, POLL_INTERVAL).is_ok() {
                match wait_for_metadata(&format!("127.0.0.1:{port}"), deadline) {
                    Err(e) => break Started::NotReady(e.to_string()),
                    // Another process may own the port if ours failed to bind it; then
                    // ours has exited by now.
                    Ok(()) => match child.try_wait().expect("poll the server process") {
                        Some(status) => break Started::Exited(status),
                        None => break Started::Ready,
                    },
                }
            }
            if Instant::now() >= deadline {
                break Started::NotReady("its port never accepted a connection".into());
            }
            std::thread::sleep(POLL_INTERVAL);
        };
        if !matches!(started, Started::Ready) {
            let mut child = self.child.take().expect("just spawned");
            let _ = child.kill();
            let _ = child.wait();
        }
        started
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // SIGKILL also ends a process stopped by `pause`.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ServerKind {
    /// The server's binary: the environment's override, else the installer's.
    fn binary(self) -> PathBuf {
        let (var, key) = match self {
            ServerKind::Tansu => ("RUSTMQ_TEST_TANSU_BIN", "TANSU_BIN"),
            ServerKind::Noida => ("RUSTMQ_TEST_NOIDA_BIN", "NOIDA_BIN"),
            ServerKind::External => unreachable!("an external cluster has no binary"),
        };
        if let Some(path) = std::env::var_os(var) {
            return PathBuf::from(path);
        }
        installed()
            .get(key)
            .cloned()
            .unwrap_or_else(|| panic!("tests/tools/kafka-servers.sh printed no {key}= line"))
    }

    /// The command line of a one-node server on 127.0.0.1:`port`, keeping any data in `home`.
    fn args(self, command: &mut Command, port: u16, home: &Path) {
        let url = format!("tcp://127.0.0.1:{port}");
        match self {
            ServerKind::Tansu => command
                .args(["broker", "--listener-url", &url])
                .args(["--advertised-listener-url", &url])
                .args(["--storage-engine", "memory://tansu/"]),
            ServerKind::Noida => command
                .args(["start", "--only", "kafka", "--host", "127.0.0.1"])
                .args(["--kafka-port", &port.to_string()])
                .arg("--data-dir")
                .arg(home.join("data")),
            ServerKind::External => unreachable!("an external cluster is not started"),
        };
    }
}

/// The `NAME=path` lines of `tests/tools/kafka-servers.sh install`, run once per test binary.
fn installed() -> &'static HashMap<String, PathBuf> {
    static INSTALLED: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/kafka-servers.sh");
        let output = Command::new(&script)
            .arg("install")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} install failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, path)| (key.to_string(), PathBuf::from(path)))
            .collect()
    })
}

fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", millis(SOCKET_TIMEOUT));
    config
}

/// Waits until `bootstrap` answers a metadata request that names at least one broker.
fn wait_for_metadata(bootstrap: &str, deadline: Instant) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = client_config(bootstrap).create()?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let answer = fetch_metadata(&consumer, left.min(Duration::from_secs(2)));
        match answer {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// Metadata of every topic, as an error when it names no broker.
fn fetch_metadata(consumer: &BaseConsumer, timeout: Duration) -> Result<Metadata, KafkaError> {
    let metadata = consumer.fetch_metadata(None, timeout)?;
    if metadata.brokers().is_empty() {
        return Err(KafkaError::MetadataFetch(
            rdkafka::types::RDKafkaErrorCode::BrokerNotAvailable,
        ));
    }
    Ok(metadata)
}

fn consumed(message: &impl Message) -> Consumed {
    let headers = message
        .headers()
        .map(|headers| {
            headers
                .iter()
                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default();
    Consumed {
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().unwrap_or_default().to_vec(),
        headers,
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a free loopback port")
        .port()
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// Polls `future` on this thread until it completes, or gives up at `deadline`. rdkafka's
/// admin and delivery futures are completed by the client's own background thread, so waking
/// this thread is all an executor has to do: no async runtime needed.
fn block_on<F: Future>(future: F, deadline: Instant) -> Option<F::Output> {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return Some(output);
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        std::thread::park_timeout(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough for a loaded machine; a healthy read finishes in about two seconds.
    const READ_TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn tansu_round_trips_records_on_four_partitions() {
        let server = KafkaServer::start();
        let topic = unique_topic("round-trip");
        server.create_topic(&topic, 4);
        assert_eq!(server.partitions(&topic), 4);
        let records: Vec<Record> = (0..100)
            .map(|i| Record {
                // The first four name their partition; the rest go by key.
                partition: (i < 4).then_some(i),
                headers: vec![("n".into(), i.to_string().into_bytes())],
                ..Record::keyed(&format!("key-{i}"), &format!("value-{i}"))
            })
            .collect();
        server.produce(&topic, &records);

        let read = server.read_all(&topic, Isolation::ReadCommitted, 100, READ_TIMEOUT);
        assert_eq!(read.len(), 100);
        let by_key: HashMap<_, _> = read.iter().map(|c| (c.key.clone(), c)).collect();
        for (i, record) in records.iter().enumerate() {
            let consumed = by_key[&record.key];
            assert_eq!(consumed.value, record.value, "record {i}");
            assert_eq!(consumed.headers, record.headers, "record {i}");
            if let Some(partition) = record.partition {
                assert_eq!(consumed.partition, partition, "record {i}");
            }
        }
        // Each partition holds offsets 0, 1, 2, ... in the order they were written.
        for partition in 0..4 {
            let offsets: Vec<i64> = read
                .iter()
                .filter(|c| c.partition == partition)
                .map(|c| c.offset)
                .collect();
            let expected: Vec<i64> = (0..offsets.len() as i64).collect();
            assert_eq!(offsets, expected, "partition {partition}");
            assert!(!offsets.is_empty(), "partition {partition} got no record");
        }
    }

    #[test]
    fn noida_round_trips_records() {
        let server = KafkaServer::start_noida();
        let topic = unique_topic("noida-round-trip");
        server.create_topic(&topic, 2);
        let records: Vec<Record> = (0..10)
            .map(|i| Record::keyed(&format!("key-{i}"), &format!("value-{i}")))
            .collect();
        server.produce(&topic, &records);

        let read = server.read_all(&topic, Isolation::ReadCommitted, 10, READ_TIMEOUT);
        let mut values: Vec<_> = read.iter().map(|c| c.value.clone()).collect();
        values.sort();
        let mut expected: Vec<_> = records.iter().map(|r| r.value.clone()).collect();
        expected.sort();
        assert_eq!(values, expected);
    }

    #[test]
    fn a_paused_server_resumes() {
        let server = KafkaServer::start();
        if !server.owned() {
            eprintln!("an external cluster cannot be paused; nothing to test");
            return;
        }
        let topic = unique_topic("paused");
        server.create_topic(&topic, 1);

        server.pause();
        let consumer: BaseConsumer = server.client_config().create().unwrap();
        let answer = fetch_metadata(&consumer, Duration::from_secs(1));
        assert!(answer.is_err(), "a paused server answered metadata");

        server.resume();
        server.produce(&topic, &[Record::keyed("k", "after the pause")]);
        let read = server.read_all(&topic, Isolation::ReadUncommitted, 1, READ_TIMEOUT);
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].value, b"after the pause");
    }
}
