//! Kafka end-to-end benchmark: Kafka → identity → Kafka through the pipeline manager,
//! against a native rdkafka loop doing the same work without wasm, both on tansu on
//! loopback (`rustmq_etl_tests::kafka::KafkaServer`).
//!
//! N messages (a 100-byte JSON value, a distinct key each, the benchmarks' three headers)
//! are preloaded into one 4-partition source topic. Every case reads all of it through a
//! fresh consumer group, writes it to a fresh 4-partition destination, and is timed from
//! its start until the group's committed offsets cover all N (outputs acknowledged before
//! their offsets are committed, or committed in the same transaction):
//!
//! 1. tansu alone, the server's ceiling here: the preload (a raw produce of N, sent
//!    pipelined and flushed once) and a raw group consume of N without commits.
//! 2. native, at-least-once: a `BaseConsumer` in the group polls batches of 100, a
//!    `BaseProducer` sends each batch, flushes, and the batch's offsets are committed
//!    synchronously (what `StagedSink` does).
//! 3. native, exactly-once: the same loop, one transaction per batch carrying its
//!    records and offsets (what `TransactionalSink` does).
//! 4. ours, at-least-once and exactly-once: an in-process `PipelineManager`
//!    (`open_with_kafka`) running the identity component, batch_size 100.
//! 5. two workers, at-least-once: two managers with their own data directories (so two
//!    worker ids) running the same pipeline (one consumer group), against two native
//!    threads in one group.
//! 6. after each of ours, the native loop again with the acknowledgements awaited by
//!    polling the delivery reports instead of `flush` (see [`Wait`]): what the loop does
//!    without rdkafka 0.39's 100 ms flush window, which caps the pipeline's sinks and the
//!    native baseline alike at about one batch per 100 ms per worker.
//!
//! The native loop uses the client settings the broker builds (`Clusters::client_config`),
//! so the two differ only in what runs between poll and commit. The untimed checks after
//! each case fail the run instead of printing a number for a broken case: the destination
//! must hold at least N records, the cluster must report the group's committed offsets as
//! N, and ours must report the delivery mode the case is named for. Each row also gives the
//! CPU cores this process and the server used meanwhile, to tell a busy bottleneck from a
//! waiting one.
//!
//! `RUSTMQ_BENCH_KAFKA_MESSAGES` sets N (default 200,000); `RUSTMQ_BENCH_QUICK=1` runs
//! 20,000. Results are printed as markdown and appended to `<target>/criterion/summary.md`.

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use rustmq_etl::kafka::{Clusters, Delivery, KafkaConfig, Role};
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::spec::PipelineSpec;
use rustmq_etl::pipeline::{PipelineManager, PipelineStatus};
use rustmq_etl::runtime::{Runtime, RuntimeLimits};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::guests;
use rustmq_etl_tests::kafka::{unique_topic, Isolation, KafkaServer};
use serde_json::json;

/// Partitions of the source and destination topics.
const PARTITIONS: i32 = 4;
/// Messages per batch, native and ours (the pipeline's `batch_size`).
const BATCH: usize = 100;
/// The value size (the "~100-byte values").
const VALUE_BYTES: usize = 100;
/// The cluster's name in `kafka://CLUSTER/TOPIC`.
const CLUSTER: &str = "bench";
/// How long a case may run before it is reported as stuck: far above a healthy run
/// (seconds at the default N), so hitting it means something is wrong, not slow.
const CASE_TIMEOUT: Duration = Duration::from_secs(600);
/// How often progress is sampled; every timing is within this of the truth.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How long one poll for a batch waits for its first record (the pipeline's read-ahead
/// waits as long).
const POLL_WAIT: Duration = Duration::from_millis(50);
/// Deadline of one librdkafka call (flush, transactional call, committed offsets).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the untimed read of a destination may take.
const VERIFY_TIMEOUT: Duration = Duration::from_secs(300);

/// `[kafka]` of a broker.toml declaring `server` as cluster [`CLUSTER`], written as JSON
/// (serde reads it the same way): group settings that make tansu's joins quick (it takes
/// about half the session timeout to settle a group), IPv4 only.
fn kafka_config(server: &KafkaServer, transactions: &str) -> KafkaConfig {
    let config: KafkaConfig = serde_json::from_value(json!({
        "clusters": {
            CLUSTER: {
                "bootstrap_servers": server.bootstrap(),
                "transactions": transactions,
                "properties": {"broker.address.family": "v4"},
                "consumer_properties": {
                    "session.timeout.ms": "6000",
                    "heartbeat.interval.ms": "500"
                }
            }
        }
    }))
    .expect("the bench's [kafka] table");
    if let Err((key, why)) = config.validate() {
        panic!("the bench's [kafka] table: {key}: {why}");
    }
    config
}

/// The consumer settings the broker gives a pipeline's group consumer.
fn consumer_config(clusters: &Clusters, group: &str) -> ClientConfig {
    let mut config = clusters
        .client_config(CLUSTER, Role::Consumer)
        .expect("declared");
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest");
    config
}

fn kafka_endpoint(topic: &str) -> String {
    format!("kafka://{CLUSTER}/{topic}")
}

// ---------------------------------------------------------------------------
// Shared by the native loops and the raw consume: positions and group assignment.

/// What the native threads report to the sampler.
#[derive(Default)]
struct Tally {
    /// Set when any member got partitions.
    assigned: AtomicBool,
    /// Per partition, the highest next-offset committed (or, for the raw consume, read).
    positions: Mutex<BTreeMap<i32, i64>>,
    /// Set by the sampler when the case is done.
    stop: AtomicBool,
}

impl Tally {
    fn advance(&self, positions: &BTreeMap<i32, i64>) {
        let mut mine = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        for (p, o) in positions {
            let at = mine.entry(*p).or_insert(0);
            *at = (*at).max(*o);
        }
    }

    fn sample(&self) -> Sample {
        let positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        Sample {
            assigned: self.assigned.load(Ordering::Relaxed),
            progress: positions.values().map(|o| *o as u64).sum(),
            finished: None,
        }
    }

    fn describe(&self) -> String {
        format!(
            "assigned: {}, positions: {:?}",
            self.assigned.load(Ordering::Relaxed),
            self.positions.lock().unwrap_or_else(|p| p.into_inner())
        )
    }
}

/// Notes in the [`Tally`] when the group gives this member partitions.
struct GroupContext {
    tally: Arc<Tally>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            if tpl.count() > 0 {
                self.tally.assigned.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// A group member subscribed to `source`.
fn group_consumer(
    clusters: &Clusters,
    group: &str,
    source: &str,
    tally: &Arc<Tally>,
) -> BaseConsumer<GroupContext> {
    let consumer: BaseConsumer<GroupContext> = consumer_config(clusters, group)
        .create_with_context(GroupContext {
            tally: Arc::clone(tally),
        })
        .expect("create a consumer");
    consumer.subscribe(&[source]).expect("subscribe");
    consumer
}

/// Up to [`BATCH`] records: waits up to [`POLL_WAIT`] for the first, then takes what is
/// already there, as the pipeline's Kafka source does.
fn poll_batch(consumer: &BaseConsumer<GroupContext>) -> Vec<BorrowedMessage<'_>> {
    let deadline = Instant::now() + POLL_WAIT;
    let mut batch = Vec::with_capacity(BATCH);
    while batch.len() < BATCH {
        let timeout = if batch.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::ZERO
        };
        match consumer.poll(timeout) {
            Some(Ok(m)) => batch.push(m),
            // librdkafka retries by itself; the case's checks catch what this costs.
            Some(Err(e)) => {
                eprintln!("poll: {e}");
                if !batch.is_empty() {
                    break;
                }
            }
            None if !batch.is_empty() || Instant::now() >= deadline => break,
            None => {}
        }
    }
    batch
}

/// Per partition, the offset after the batch's last record.
fn next_offsets(batch: &[BorrowedMessage<'_>]) -> BTreeMap<i32, i64> {
    batch
        .iter()
        .map(|m| (m.partition(), m.offset() + 1))
        .collect()
}

fn offsets_list(topic: &str, positions: &BTreeMap<i32, i64>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in positions {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("a fresh list takes any offset");
    }
    tpl
}

/// Delivery reports: failures (the run stops on one) and records per partition.
#[derive(Default)]
struct Acks {
    /// When the first record was acknowledged.
    first: std::sync::OnceLock<Instant>,
    per_partition: [AtomicU64; PARTITIONS as usize],
    failed: AtomicU64,
    first_failure: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                self.first.get_or_init(Instant::now);
                if let Some(n) = usize::try_from(m.partition())
                    .ok()
                    .and_then(|p| self.per_partition.get(p))
                {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert_with(|| e.to_string());
            }
        }
    }
}

impl Acks {
    /// Panics if any record was not delivered: a baseline that drops records would
    /// measure nothing.
    fn assert_all_delivered(&self, what: &str) {
        let failed = self.failed.load(Ordering::Relaxed);
        assert_eq!(
            failed,
            0,
            "{what}: {failed} record(s) not delivered, first: {:?}",
            self.first_failure.lock().unwrap_or_else(|p| p.into_inner())
        );
    }
}

/// Sends `record`, waiting for room in the producer's queue.
fn send(producer: &BaseProducer<Acks>, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                back,
            )) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => panic!("queue a record: {e}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Timing.

/// One progress reading.
struct Sample {
    /// Whether any member owns partitions yet.
    assigned: bool,
    /// Source records covered by committed offsets (read, for the raw consume).
    progress: u64,
    /// Whether the case is complete; `None`: when `progress` reaches N.
    finished: Option<bool>,
}

/// When a case reached its milestones, from its start.
struct Timing {
    /// First partition assignment (the group join); for the preload, the first
    /// acknowledgement.
    join: Option<Duration>,
    /// The first sample with progress, and that progress.
    first: Option<(Duration, u64)>,
    /// Every record committed.
    total: Duration,
}

impl Timing {
    /// N over the whole run, group join included.
    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.total.as_secs_f64()
    }

    /// From the first commit to the last: the data path without the group join.
    fn steady_rate(&self, n: u64) -> f64 {
        match self.first {
            Some((at, done)) if self.total > at && n > done => {
                (n - done) as f64 / (self.total - at).as_secs_f64()
            }
            _ => self.rate(n),
        }
    }
}

/// Samples `probe` from `started` until it reports the case finished. `probe` returns an
/// error when the case failed; `stuck` describes it when [`CASE_TIMEOUT`] passes.
fn measure(
    what: &str,
    n: u64,
    started: Instant,
    mut probe: impl FnMut() -> Result<Sample, String>,
    stuck: impl Fn() -> String,
) -> Timing {
    let mut join = None;
    let mut first = None;
    loop {
        let sample = probe().unwrap_or_else(|e| panic!("{what} failed: {e}"));
        let at = started.elapsed();
        if sample.assigned && join.is_none() {
            join = Some(at);
        }
        if sample.progress > 0 && first.is_none() {
            first = Some((at, sample.progress));
        }
        if sample.finished.unwrap_or(sample.progress >= n) {
            return Timing {
                join,
                first,
                total: at,
            };
        }
        assert!(
            at < CASE_TIMEOUT,
            "{what}: not done after {CASE_TIMEOUT:?}, {} of {n} committed:\n{}",
            sample.progress,
            stuck()
        );
        std::thread::sleep(SAMPLE_EVERY);
    }
}

/// CPU time used by this process and by the Kafka server, to tell which one the run
/// was bound by.
struct Cpu {
    server_pid: Option<u32>,
}

impl Cpu {
    /// The server is the child of this process named `tansu` (none for an external
    /// cluster).
    fn new() -> Cpu {
        let me = std::process::id().to_string();
        let server_pid = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .find(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                // `pid (comm) state ppid ...`
                stat.rsplit_once(')').is_some_and(|(head, tail)| {
                    head.contains("(tansu") && tail.split_whitespace().nth(1) == Some(me.as_str())
                })
            });
        Cpu { server_pid }
    }

    /// CPU seconds (user + system) of this process and of the server so far.
    fn now(&self) -> (f64, Option<f64>) {
        (
            cpu_seconds("self"),
            self.server_pid.map(|pid| cpu_seconds(&pid.to_string())),
        )
    }
}

fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: state is the first, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, tail)| tail.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i)?.parse::<f64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / per_second
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

// ---------------------------------------------------------------------------
// The cases.

/// Average cores used during a case by this process and by the server (none for an
/// external cluster).
type Cores = (f64, Option<f64>);

/// A measured case: a table row.
struct Row {
    case: String,
    timing: Timing,
    cores: Cores,
    /// Records found in the destination afterwards.
    destination: Option<usize>,
    /// The row of the native baseline this case is compared with.
    baseline: Option<usize>,
}

/// Runs `body`, returning its timing and the cores used meanwhile.
fn timed(cpu: &Cpu, body: impl FnOnce() -> Timing) -> (Timing, Cores) {
    let (me0, server0) = cpu.now();
    let timing = body();
    let (me1, server1) = cpu.now();
    let wall = timing.total.as_secs_f64();
    let server = server0.zip(server1).map(|(a, b)| (b - a) / wall);
    (timing, ((me1 - me0) / wall, server))
}

/// Where a case reads and writes, and its group.
struct Topics {
    source: String,
    destination: String,
    group: String,
}

/// Preloads `n` messages into `topic`: a raw produce, sent pipelined with the broker's
/// producer settings and flushed once at the end.
fn preload(clusters: &Clusters, topic: &str, n: usize, cpu: &Cpu) -> Row {
    let producer: BaseProducer<Acks> = clusters
        .client_config(CLUSTER, Role::Producer)
        .expect("declared")
        .create_with_context(Acks::default())
        .expect("create the preload producer");
    let template = support::sample_message(VALUE_BYTES);
    let mut headers = OwnedHeaders::new_with_capacity(template.headers.len());
    for (k, v) in &template.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let started = Instant::now();
    let (timing, cores) = timed(cpu, || {
        for i in 0..n {
            // A distinct key each: murmur2 spreads them evenly over the partitions.
            let key = format!("sensor-{i:07}");
            let record = BaseRecord::to(topic)
                .key(key.as_bytes())
                .payload(&template.value[..])
                .headers(headers.clone());
            send(&producer, record);
        }
        producer.flush(CALL_TIMEOUT).expect("flush the preload");
        // The time to the first acknowledgement (metadata, the idempotent producer's id)
        // takes the place of a group join.
        let first = producer.context().first.get().map(|at| *at - started);
        Timing {
            join: first,
            first: first.map(|at| (at, 1)),
            total: started.elapsed(),
        }
    });
    producer.context().assert_all_delivered("preload");
    let spread: Vec<u64> = producer
        .context()
        .per_partition
        .iter()
        .map(|a| a.load(Ordering::Relaxed))
        .collect();
    Row {
        case: format!("tansu alone: produce N, pipelined (the preload; per partition {spread:?})"),
        timing,
        cores,
        destination: None,
        baseline: None,
    }
}

/// A group consumer reading all `n` records of `source`, committing nothing.
fn raw_consume(clusters: &Clusters, source: &str, n: u64, cpu: &Cpu) -> Row {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let (timing, cores) = timed(cpu, || {
        let reader = {
            let (clusters, source, tally) =
                (clusters.clone(), source.to_string(), Arc::clone(&tally));
            std::thread::spawn(move || {
                let consumer =
                    group_consumer(&clusters, &unique_topic("bench-raw"), &source, &tally);
                while !tally.stop.load(Ordering::Relaxed) {
                    tally.advance(&next_offsets(&poll_batch(&consumer)));
                }
            })
        };
        let timing = measure(
            "raw consume",
            n,
            started,
            || Ok(tally.sample()),
            || tally.describe(),
        );
        tally.stop.store(true, Ordering::Relaxed);
        reader.join().expect("raw consumer thread");
        timing
    });
    Row {
        case: "tansu alone: consume N in a group, no commits".into(),
        timing,
        cores,
        destination: None,
        baseline: None,
    }
}

/// How a native member waits for its batch's records to be acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// `Producer::flush` (and, exactly-once, `commit_transaction`, which flushes first),
    /// as the pipeline's sinks do. rdkafka 0.39's flush calls `rd_kafka_flush` with no
    /// wait and then polls the delivery reports for a 100 ms window that it does not
    /// leave early, so a flush with a record in flight takes at least 100 ms.
    Flush,
    /// Delivery reports served in 1 ms polls until none is outstanding; exactly-once,
    /// before `commit_transaction`, whose own flush then has nothing to wait for. The
    /// records still wait out `linger.ms` (librdkafka's default, 5 ms) before they are
    /// sent, which a flush would skip.
    PollReports,
}

/// What a native group member does per batch.
#[derive(Debug, Clone, Copy)]
struct NativeLoop {
    delivery: Delivery,
    wait: Wait,
}

/// Waits until every record sent by `producer` is acknowledged, as `wait` says.
fn await_acks(producer: &BaseProducer<Acks>, wait: Wait) {
    match wait {
        Wait::Flush => producer.flush(CALL_TIMEOUT).expect("flush"),
        Wait::PollReports => {
            let deadline = Instant::now() + CALL_TIMEOUT;
            while producer.in_flight_count() > 0 {
                assert!(
                    Instant::now() < deadline,
                    "records unacknowledged after {CALL_TIMEOUT:?}"
                );
                producer.poll(Duration::from_millis(1));
            }
        }
    }
}

/// One native group member: poll a batch, produce it, then commit its offsets (after the
/// acknowledgements, or in the batch's transaction), until the sampler says stop.
fn native_member(
    clusters: &Clusters,
    topics: &Topics,
    how: NativeLoop,
    member: usize,
    tally: &Arc<Tally>,
) {
    let consumer = group_consumer(clusters, &topics.group, &topics.source, tally);
    let mut config = clusters
        .client_config(CLUSTER, Role::Producer)
        .expect("declared");
    let transactional = how.delivery == Delivery::ExactlyOnce;
    if transactional {
        config.set(
            "transactional.id",
            format!("{}.native-{member}", topics.group),
        );
    }
    let producer: BaseProducer<Acks> = config
        .create_with_context(Acks::default())
        .expect("create the native producer");
    if transactional {
        producer
            .init_transactions(CALL_TIMEOUT)
            .expect("init_transactions");
    }
    while !tally.stop.load(Ordering::Relaxed) {
        let batch = poll_batch(&consumer);
        if batch.is_empty() {
            continue;
        }
        if transactional {
            producer.begin_transaction().expect("begin_transaction");
        }
        for m in &batch {
            let mut record =
                BaseRecord::to(&topics.destination).payload(m.payload().unwrap_or_default());
            if let Some(key) = m.key() {
                record = record.key(key);
            }
            if let Some(headers) = m.headers() {
                record = record.headers(headers.detach());
            }
            if let Some(ms) = m.timestamp().to_millis() {
                record = record.timestamp(ms);
            }
            send(&producer, record);
        }
        let positions = next_offsets(&batch);
        let offsets = offsets_list(&topics.source, &positions);
        if transactional {
            if how.wait == Wait::PollReports {
                await_acks(&producer, how.wait);
            }
            let metadata = consumer.group_metadata().expect("group metadata");
            producer
                .send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)
                .expect("send_offsets_to_transaction");
            producer
                .commit_transaction(CALL_TIMEOUT)
                .expect("commit_transaction");
            producer
                .context()
                .assert_all_delivered("native exactly-once");
        } else {
            await_acks(&producer, how.wait);
            producer
                .context()
                .assert_all_delivered("native at-least-once");
            match consumer.commit(&offsets, CommitMode::Sync) {
                Ok(()) => {}
                // The group rebalanced under the batch: its new owner reads it again
                // (at-least-once), as the pipeline's sink does.
                Err(e)
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::RebalanceInProgress
                                | RDKafkaErrorCode::IllegalGeneration
                                | RDKafkaErrorCode::UnknownMemberId
                        )
                    ) =>
                {
                    continue
                }
                Err(e) => panic!("native commit: {e}"),
            }
        }
        tally.advance(&positions);
    }
}

/// The native loop with `members` threads in one group.
fn native(
    server: &KafkaServer,
    clusters: &Clusters,
    source: &str,
    how: NativeLoop,
    members: usize,
    n: u64,
    cpu: &Cpu,
) -> (Row, Topics) {
    let topics = Arc::new(Topics {
        source: source.to_string(),
        destination: unique_topic("bench-native-out"),
        group: unique_topic("bench-native"),
    });
    server.create_topic(&topics.destination, PARTITIONS);
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let (timing, cores) = timed(cpu, || {
        let threads: Vec<_> = (0..members)
            .map(|member| {
                let (clusters, topics, tally) =
                    (clusters.clone(), Arc::clone(&topics), Arc::clone(&tally));
                std::thread::spawn(move || native_member(&clusters, &topics, how, member, &tally))
            })
            .collect();
        let what = format!("native {how:?} x{members}");
        let timing = measure(
            &what,
            n,
            started,
            || Ok(tally.sample()),
            || tally.describe(),
        );
        tally.stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().expect("native member thread");
        }
        timing
    });
    let waits = match how.wait {
        Wait::Flush => "",
        Wait::PollReports => ", acks awaited by polling, no flush",
    };
    let threads = match members {
        1 => String::new(),
        k => format!(", {k} threads in one group"),
    };
    let row = Row {
        case: format!("native, {}{waits}{threads}", how.delivery.as_str()),
        timing,
        cores,
        destination: None,
        baseline: None,
    };
    let topics = Arc::try_unwrap(topics).unwrap_or_else(|_| unreachable!("threads joined"));
    (row, topics)
}

/// The broker's pieces in process, wired as `rustmq-broker` wires them.
struct Broker {
    _dir: tempfile::TempDir,
    pipelines: PipelineManager,
}

impl Broker {
    fn start(config: &KafkaConfig) -> Broker {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let storage = Storage::open(&data, StorageOptions::default()).expect("storage");
        let runtime = Runtime::new(RuntimeLimits::default()).expect("runtime");
        let modules =
            ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).expect("modules");
        let bytes = std::fs::read(guests::IDENTITY).expect("identity module bytes");
        modules.upload("identity", "1.0.0", &bytes).expect("upload");
        let clusters = Clusters::new(config, &data).expect("clusters");
        let pipelines =
            PipelineManager::open_with_kafka(storage, modules, clusters).expect("manager");
        Broker {
            _dir: dir,
            pipelines,
        }
    }

    fn status(&self, name: &str) -> PipelineStatus {
        self.pipelines.status(name).expect("status")
    }
}

/// The pipeline every "ours" case runs, as a user would post it.
fn pipeline_spec(name: &str, topics: &Topics) -> PipelineSpec {
    serde_json::from_value(json!({
        "pipeline_name": name,
        "source_topic": kafka_endpoint(&topics.source),
        "destination_topic": kafka_endpoint(&topics.destination),
        "module_name": "identity",
        "module_version": "^1",
        "configuration": {"batch_size": BATCH},
        "start_from": "earliest"
    }))
    .expect("the bench's pipeline definition")
}

/// Progress of pipeline `name` across `brokers`: finished when the four partitions are
/// owned once each, their committed offsets sum to N and N messages were processed.
fn pipeline_sample(brokers: &[Broker], name: &str, n: u64) -> Result<Sample, String> {
    let mut owners: BTreeMap<i32, Vec<Option<i64>>> = BTreeMap::new();
    let mut processed = 0;
    let mut assigned = false;
    for b in brokers {
        let status = b.status(name);
        if status.status != rustmq_etl::pipeline::RunStatus::Running {
            return Err(describe(brokers, name));
        }
        if let Some(k) = &status.kafka {
            assigned |= !k.assigned_partitions.is_empty();
            for p in &k.partitions {
                owners
                    .entry(p.partition)
                    .or_default()
                    .push(p.committed_offset);
            }
        }
        processed += b
            .pipelines
            .metrics(name)
            .expect("metrics")
            .messages_processed;
    }
    let progress: u64 = owners
        .values()
        .flatten()
        .map(|c| c.unwrap_or(0) as u64)
        .sum();
    let settled = owners.len() == PARTITIONS as usize && owners.values().all(|o| o.len() == 1);
    Ok(Sample {
        assigned,
        progress,
        finished: Some(settled && progress == n && processed >= n),
    })
}

/// Every broker's status and metrics of `name`, as JSON, for a failure report.
fn describe(brokers: &[Broker], name: &str) -> String {
    brokers
        .iter()
        .map(|b| {
            json!({
                "status": b.pipelines.status(name).ok(),
                "metrics": b.pipelines.metrics(name).ok(),
            })
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Our pipeline on `workers` in-process brokers, compared with row `baseline`.
#[allow(clippy::too_many_arguments)]
fn ours(
    server: &KafkaServer,
    config: &KafkaConfig,
    source: &str,
    delivery: Delivery,
    workers: usize,
    n: u64,
    cpu: &Cpu,
    baseline: usize,
) -> (Row, Topics) {
    let brokers: Vec<Broker> = (0..workers).map(|_| Broker::start(config)).collect();
    let name = unique_topic("bench");
    let mut topics = Topics {
        source: source.to_string(),
        destination: unique_topic("bench-ours-out"),
        group: String::new(),
    };
    let spec = pipeline_spec(&name, &topics);
    topics.group = rustmq_etl::pipeline::connect::consumer_group(&spec);
    server.create_topic(&topics.destination, PARTITIONS);
    let started = Instant::now();
    let (timing, cores) = timed(cpu, || {
        for b in &brokers {
            b.pipelines
                .create(spec.clone())
                .expect("create the pipeline");
        }
        let what = format!("ours {} x{workers}", delivery.as_str());
        measure(
            &what,
            n,
            started,
            || pipeline_sample(&brokers, &name, n),
            || describe(&brokers, &name),
        )
    });
    let mut rebalances = Vec::new();
    for b in &brokers {
        let status = b.status(&name);
        assert_eq!(
            status.delivery,
            delivery,
            "ours ran {}, not the case's mode:\n{}",
            status.delivery.as_str(),
            describe(&brokers, &name)
        );
        rebalances.extend(status.kafka.map(|k| k.rebalances));
        b.pipelines.delete(&name).expect("delete the pipeline");
    }
    println!(
        "ours, {} x{workers}: rebalances per worker {rebalances:?}",
        delivery.as_str()
    );
    let case = match workers {
        1 => format!("**ours**, {}", delivery.as_str()),
        k => format!(
            "**ours**, {}, {k} workers on one pipeline",
            delivery.as_str()
        ),
    };
    let row = Row {
        case,
        timing,
        cores,
        destination: None,
        baseline: Some(baseline),
    };
    (row, topics)
}

/// The untimed checks: the destination holds at least N records, and the cluster
/// reports the group's committed offsets on the source as N. Returns the count.
fn verify(server: &KafkaServer, clusters: &Clusters, case: &str, topics: &Topics, n: u64) -> usize {
    let read = server
        .read_all(
            &topics.destination,
            Isolation::ReadCommitted,
            n as usize,
            VERIFY_TIMEOUT,
        )
        .len();
    assert!(
        read as u64 >= n,
        "{case}: the destination {} holds {read} of {n} records",
        topics.destination
    );
    let consumer: BaseConsumer = consumer_config(clusters, &topics.group)
        .create()
        .expect("create a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(&topics.source, p);
    }
    let committed: i64 = consumer
        .committed_offsets(tpl, CALL_TIMEOUT)
        .expect("the group's committed offsets")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        })
        .sum();
    assert_eq!(
        committed as u64, n,
        "{case}: the cluster reports {committed} of {n} source records committed by group {}",
        topics.group
    );
    read
}

// ---------------------------------------------------------------------------
// Report.

const TABLE_HEAD: &str = "| case | messages/s | × native | messages/s after the first commit | × native | group join (preload: first ack) s | seconds | destination records | CPU cores: bench process / tansu |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// One table line; `rows` holds its baseline.
fn line(row: &Row, rows: &[Row], n: u64) -> String {
    let (rate, steady) = (row.timing.rate(n), row.timing.steady_rate(n));
    let base = row.baseline.map(|i| &rows[i].timing);
    let ratio = |x: f64, b: Option<f64>| b.map_or("–".into(), |b| format!("{:.2}", x / b));
    let dash = || "–".to_string();
    format!(
        "| {} | {rate:.0} | {} | {steady:.0} | {} | {} | {:.2} | {} | {:.2} / {} |",
        row.case,
        ratio(rate, base.map(|b| b.rate(n))),
        ratio(steady, base.map(|b| b.steady_rate(n))),
        row.timing
            .join
            .map_or_else(dash, |j| format!("{:.2}", j.as_secs_f64())),
        row.timing.total.as_secs_f64(),
        row.destination.map_or_else(dash, |d| d.to_string()),
        row.cores.0,
        row.cores.1.map_or_else(dash, |c| format!("{c:.2}")),
    )
}

/// `row` with its destination count, after [`verify`].
fn checked(
    mut row: Row,
    server: &KafkaServer,
    clusters: &Clusters,
    topics: &Topics,
    n: u64,
) -> Row {
    row.destination = Some(verify(server, clusters, &row.case, topics, n));
    row
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    let quick = std::env::var_os("RUSTMQ_BENCH_QUICK").is_some();
    let n: usize = std::env::var("RUSTMQ_BENCH_KAFKA_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 200_000 });
    let n64 = n as u64;
    let load_before = load_average();
    let server = KafkaServer::start();
    let cpu = Cpu::new();
    let at_least_once = kafka_config(&server, "off");
    let exactly_once = kafka_config(&server, "auto");
    let clients_dir = tempfile::tempdir().expect("tempdir");
    let clusters = Clusters::new(&at_least_once, clients_dir.path()).expect("clusters");

    let source = unique_topic("bench-in");
    server.create_topic(&source, PARTITIONS);
    let mut rows = vec![preload(&clusters, &source, n, &cpu)];
    println!("{}", line(&rows[0], &rows, n64));
    rows.push(raw_consume(&clusters, &source, n64, &cpu));
    println!("{}", line(&rows[1], &rows, n64));
    // Each of ours between its native baseline and the same loop without flush's
    // 100 ms window, so all three see the same machine.
    let cases = [
        (Delivery::AtLeastOnce, 1, &at_least_once),
        (Delivery::ExactlyOnce, 1, &exactly_once),
        (Delivery::AtLeastOnce, 2, &at_least_once),
    ];
    // Per case: the rows of native (flush), ours, native (polling the reports).
    let mut triples = Vec::new();
    for (delivery, workers, config) in cases {
        let first = rows.len();
        for wait in [Wait::Flush, Wait::PollReports] {
            if wait == Wait::PollReports {
                let (row, topics) = ours(
                    &server, config, &source, delivery, workers, n64, &cpu, first,
                );
                rows.push(checked(row, &server, &clusters, &topics, n64));
                println!("{}", line(rows.last().expect("pushed"), &rows, n64));
            }
            let how = NativeLoop { delivery, wait };
            let (row, topics) = native(&server, &clusters, &source, how, workers, n64, &cpu);
            rows.push(checked(row, &server, &clusters, &topics, n64));
            println!("{}", line(rows.last().expect("pushed"), &rows, n64));
        }
        triples.push((first, first + 1, first + 2));
    }
    let load_after = load_average();

    let mut out = format!(
        "\n### Kafka → identity → Kafka\n\nN = {n} messages ({VALUE_BYTES}-byte JSON value, a distinct key each, 3 headers) in a {PARTITIONS}-partition source topic on tansu ({}); batch {BATCH}; a fresh consumer group and destination topic per case. Load average {load_before} before, {load_after} after.\n\n{TABLE_HEAD}",
        server.bootstrap()
    );
    for row in &rows {
        let _ = writeln!(out, "{}", line(row, &rows, n64));
    }
    let rate = |i: usize| (rows[i].timing.rate(n64), rows[i].timing.steady_rate(n64));
    let ratio = |a: usize, b: usize| {
        let ((a0, a1), (b0, b1)) = (rate(a), rate(b));
        format!("{:.2} | {:.2}", a0 / b0, a1 / b1)
    };
    out.push_str("\n| ours / native without flush's 100 ms window | whole run | after the first commit |\n|---|---:|---:|\n");
    for (_, ours, polled) in &triples {
        let _ = writeln!(out, "| {} | {} |", rows[*ours].case, ratio(*ours, *polled));
    }
    if let [(flush1, ours1, polled1), _, (flush2, ours2, polled2)] = triples[..] {
        out.push_str("\n| 2 workers / 1 worker, at-least-once | whole run | after the first commit |\n|---|---:|---:|\n");
        for (label, one, two) in [
            ("ours", ours1, ours2),
            ("native (flush)", flush1, flush2),
            ("native, acks awaited by polling", polled1, polled2),
        ] {
            let _ = writeln!(out, "| {label} | {} |", ratio(two, one));
        }
    }
    print!("{out}");
    let dir = support::criterion_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("summary.md");
    let mut previous = std::fs::read_to_string(&path).unwrap_or_default();
    previous.push_str(&out);
    let _ = std::fs::write(path, previous);
}
