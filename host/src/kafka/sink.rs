//! Pipeline sinks that write to Kafka, or commit a Kafka source's offsets.
//!
//! - [`TransactionalSink`]: source, destination and error topic on one cluster that
//!   supports transactions. Each batch is one Kafka transaction holding its
//!   outputs, its error-topic records and the consumed offsets
//!   (`send_offsets_to_transaction` with the group's metadata): a `read_committed`
//!   reader of the destination sees every source record's results exactly once.
//!   The transactional id is `rustmq-etl.<pipeline>.<worker id>`: a restarted worker
//!   fences its predecessor's unfinished transaction when it starts (with static
//!   membership it also gets the same partitions back), and an offset commit from a
//!   worker whose partitions moved is fenced by the group generation.
//! - [`StagedSink`]: every other combination, at-least-once: the batch's Kafka
//!   records are sent and acknowledged (idempotent producer, `acks=all`) before its
//!   local writes are committed, and the Kafka source's offsets are committed last.
//!   A crash between those steps writes the batch again on restart: no loss, and
//!   duplicates only from that window.
//!
//! Both ride out an outage: librdkafka reconnects, failed sends are sent again,
//! aborted transactions are retried with the same records, and the pipeline's
//! status shows the error meanwhile. They give up only when the worker is asked to
//! stop (the batch then stays uncommitted and is read again), or on a fatal error
//! (fenced by another worker with the same id).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::progress::Progress;
use super::record::Outgoing;
use super::source::GroupConsumer;
use crate::message::Message;
use crate::pipeline::endpoint::Endpoint;
use crate::pipeline::io::{self, CommitBatch, IoError, PendingCommit, Positions, Sink};
use crate::pipeline::worker::Control;
use crate::storage::{Commit, Storage};

/// Timeout of one transactional call; calls that time out are retried.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Wait between two tries while the cluster is unreachable.
const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// How long a stopping worker still tries to finish its commit.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What became of the records of one batch: indexes of the failed ones, and how
/// many are still unconfirmed.
#[derive(Default)]
struct Deliveries {
    failed: Vec<(usize, String)>,
}

/// The producer's callbacks: delivery reports and client errors.
pub struct SinkContext {
    deliveries: Mutex<Deliveries>,
    progress: Option<Arc<Progress>>,
    name: String,
}

impl ClientContext for SinkContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "rustmq::etl::kafka", sink = %self.name, error = %error, reason, "Kafka producer error");
        if let Some(p) = &self.progress {
            p.note_error(&format!("{error}: {reason}"));
        }
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((e, _)) = result {
            self.deliveries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .failed
                .push((index, e.to_string()));
        }
    }
}

/// A producer and what it needs to resend.
pub struct KafkaProducer {
    producer: BaseProducer<SinkContext>,
    progress: Option<Arc<Progress>>,
}

impl KafkaProducer {
    /// A producer from `config` (the cluster's settings plus, for a transactional
    /// one, `transactional.id`). `name` is for the log.
    pub fn new(
        config: &ClientConfig,
        name: &str,
        progress: Option<Arc<Progress>>,
    ) -> Result<Self, IoError> {
        let context = SinkContext {
            deliveries: Mutex::default(),
            progress: progress.clone(),
            name: name.to_string(),
        };
        let producer = config
            .create_with_context(context)
            .map_err(|e| IoError::new(format!("cannot create the Kafka producer: {e}")))?;
        Ok(KafkaProducer { producer, progress })
    }

    fn note_error(&self, e: &str) {
        if let Some(p) = &self.progress {
            p.note_error(e);
        }
    }

    /// Queues the records at `indexes` of `records`, waiting for room in the queue.
    fn send(&self, records: &[Outgoing], indexes: impl Iterator<Item = usize>) {
        for i in indexes {
            let r = &records[i];
            let m = &r.message;
            let mut record = BaseRecord::with_opaque_to(&r.topic, i)
                .payload(&m.value[..])
                .headers(r.headers())
                .timestamp(m.timestamp);
            if let Some(k) = &m.key {
                record = record.key(k.as_bytes());
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        // Not queued: count it as a failed delivery, sent again below.
                        self.producer
                            .context()
                            .deliveries
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .failed
                            .push((i, e.to_string()));
                        break;
                    }
                }
            }
        }
    }

    /// Serves delivery reports until nothing is in flight or `limit` passes. Polls
    /// in 1 ms steps rather than calling `flush`, whose wake-ups come ~100 ms apart:
    /// a flush per batch capped a pipeline at ~10 batches a second.
    fn drain(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(1));
        }
    }

    /// Waits until every queued record is acknowledged, sending failed ones again;
    /// gives up only when `give_up` says so.
    fn confirm(&self, records: &[Outgoing], give_up: &dyn Fn() -> bool) -> Result<(), IoError> {
        loop {
            self.drain(Duration::from_millis(500));
            if self.producer.in_flight_count() > 0 {
                if give_up() {
                    return Err(IoError::new(
                        "stopped before the cluster acknowledged the batch's records".into(),
                    ));
                }
                continue;
            }
            let failed = std::mem::take(
                &mut self
                    .producer
                    .context()
                    .deliveries
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .failed,
            );
            if failed.is_empty() {
                if let Some(p) = &self.progress {
                    p.clear_error();
                }
                return Ok(());
            }
            let (first, why) = &failed[0];
            let error = format!(
                "{} record(s) not acknowledged (first to {:?}: {why}); sending them again",
                failed.len(),
                records[*first].topic
            );
            tracing::warn!(target: "rustmq::etl::kafka", "{error}");
            self.note_error(&error);
            if give_up() {
                return Err(IoError::new(error));
            }
            std::thread::sleep(RETRY_BACKOFF);
            self.send(records, failed.into_iter().map(|(i, _)| i));
        }
    }
}

/// Where a pipeline's outputs go.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// The destination topic.
    pub destination: Endpoint,
    /// The declared routes, in order.
    pub routes: Vec<Endpoint>,
    /// The error topic.
    pub error_topic: Option<Endpoint>,
}

/// Appends to local topics: (topic, messages).
type LocalAppends = Vec<(String, Vec<Message>)>;

/// Splits a batch's messages into Kafka records and local appends.
fn route(
    batch: CommitBatch,
    outputs: &Outputs,
) -> Result<(Vec<Outgoing>, LocalAppends, Positions), IoError> {
    let Outputs {
        destination,
        routes,
        error_topic,
    } = outputs;
    let mut kafka = Vec::new();
    let mut local = Vec::new();
    let mut place = |endpoint: &Endpoint, messages: Vec<Message>| match endpoint {
        Endpoint::Kafka { topic, .. } => kafka.extend(
            messages
                .into_iter()
                .map(|m| Outgoing::new(topic, m, &batch.stamp)),
        ),
        Endpoint::Local(topic) => local.push((topic.clone(), messages)),
    };
    if !batch.destination.is_empty() {
        place(destination, batch.destination);
    }
    for (i, messages) in batch.routed.into_iter().enumerate() {
        if messages.is_empty() {
            continue;
        }
        let Some(route) = routes.get(i) else {
            return Err(IoError::new(format!(
                "a message was routed to route {i}, which the pipeline does not declare"
            )));
        };
        place(route, messages);
    }
    if !batch.errors.is_empty() {
        let Some(error_topic) = error_topic else {
            return Err(IoError::new(
                "a message was routed to the error topic but the pipeline has none".into(),
            ));
        };
        place(error_topic, batch.errors);
    }
    Ok((kafka, local, batch.positions))
}

fn offsets_list(topic: &str, positions: &Positions) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in positions {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o as i64))
            .expect("a fresh list takes any offset");
    }
    tpl
}

fn as_i64(positions: &Positions) -> BTreeMap<i32, i64> {
    positions.iter().map(|(p, o)| (*p, *o as i64)).collect()
}

/// A give-up rule: never while the worker runs; once it is asked to stop, after
/// [`STOP_GRACE`].
fn give_up_rule(control: &Arc<Control>) -> impl Fn() -> bool + '_ {
    let since = Mutex::new(None::<Instant>);
    move || {
        if !control.stop_requested() {
            return false;
        }
        let mut since = since.lock().unwrap_or_else(|p| p.into_inner());
        since.get_or_insert_with(Instant::now).elapsed() >= STOP_GRACE
    }
}

/// The Kafka source a sink commits offsets for.
#[derive(Clone)]
pub struct SourceOffsets {
    /// The group consumer.
    pub consumer: Arc<GroupConsumer>,
    /// The source topic on the cluster.
    pub topic: String,
    /// Shared with the source.
    pub progress: Arc<Progress>,
}

/// Exactly-once: one Kafka transaction per batch (see the module docs).
pub struct TransactionalSink {
    inner: Arc<TxnInner>,
}

struct TxnInner {
    producer: KafkaProducer,
    source: SourceOffsets,
    outputs: Outputs,
    control: Arc<Control>,
}

/// What starting a transactional producer found.
pub enum TxnStart {
    /// Transactions work.
    Ready(TransactionalSink),
    /// The cluster does not support them (its answer).
    Unsupported(String),
}

impl TransactionalSink {
    /// Creates the transactional producer and runs `init_transactions`, which fences
    /// any earlier producer with the same transactional id; retries while the
    /// cluster is unreachable, until the worker is asked to stop.
    pub fn start(
        config: &ClientConfig,
        source: SourceOffsets,
        outputs: Outputs,
        control: Arc<Control>,
    ) -> Result<TxnStart, IoError> {
        let producer = KafkaProducer::new(
            config,
            &source.progress.source,
            Some(Arc::clone(&source.progress)),
        )?;
        loop {
            match producer.producer.init_transactions(TXN_CALL_TIMEOUT) {
                Ok(()) => break,
                Err(e) if unsupported(&e) => return Ok(TxnStart::Unsupported(e.to_string())),
                Err(e) if fatal(&e) => {
                    return Err(IoError::new(format!(
                        "cannot start Kafka transactions: {e}"
                    )))
                }
                Err(e) => {
                    producer.note_error(&format!("starting transactions: {e}"));
                    if control.stop_requested() {
                        return Err(IoError::new(format!(
                            "stopped while starting Kafka transactions: {e}"
                        )));
                    }
                    std::thread::sleep(RETRY_BACKOFF);
                }
            }
        }
        Ok(TxnStart::Ready(TransactionalSink {
            inner: Arc::new(TxnInner {
                producer,
                source,
                outputs,
                control,
            }),
        }))
    }
}

fn code(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

fn unsupported(e: &KafkaError) -> bool {
    matches!(
        code(e),
        Some(
            RDKafkaErrorCode::UnsupportedVersion
                | RDKafkaErrorCode::UnsupportedFeature
                | RDKafkaErrorCode::NotImplemented
                | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed
        )
    )
}

fn fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(t) => t.is_fatal(),
        _ => matches!(
            code(e),
            Some(
                RDKafkaErrorCode::Fatal
                    | RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
            )
        ),
    }
}

fn requires_abort(e: &KafkaError) -> bool {
    matches!(e, KafkaError::Transaction(t) if t.txn_requires_abort())
}

impl Sink for TransactionalSink {
    fn start_commit(&mut self, batch: CommitBatch) -> Result<Box<dyn PendingCommit>, IoError> {
        let inner = &self.inner;
        let (records, local, positions) = route(batch, &inner.outputs)?;
        debug_assert!(local.is_empty(), "a transactional sink writes Kafka only");
        inner
            .producer
            .producer
            .begin_transaction()
            .map_err(|e| IoError::new(format!("cannot begin a Kafka transaction: {e}")))?;
        inner.producer.send(&records, 0..records.len());
        Ok(Box::new(TxnPending {
            inner: Arc::clone(&self.inner),
            records,
            positions,
        }))
    }

    fn committed(&mut self) -> Result<Option<u64>, IoError> {
        Ok(None)
    }
}

impl Drop for TransactionalSink {
    fn drop(&mut self) {
        self.inner.source.progress.abandon();
    }
}

struct TxnPending {
    inner: Arc<TxnInner>,
    records: Vec<Outgoing>,
    positions: Positions,
}

impl TxnPending {
    fn try_commit(&self) -> Result<(), KafkaError> {
        let producer = &self.inner.producer.producer;
        let consumer = &self.inner.source.consumer;
        // Acknowledged before the commit, which would otherwise wait for them in
        // flush's ~100 ms steps.
        self.inner.producer.drain(TXN_CALL_TIMEOUT);
        let metadata = consumer.group_metadata().ok_or_else(|| {
            KafkaError::ClientCreation("the consumer has no group metadata".into())
        })?;
        producer.send_offsets_to_transaction(
            &offsets_list(&self.inner.source.topic, &self.positions),
            &metadata,
            TXN_CALL_TIMEOUT,
        )?;
        producer.commit_transaction(TXN_CALL_TIMEOUT)
    }
}

impl PendingCommit for TxnPending {
    fn wait(self: Box<Self>) -> Result<(), IoError> {
        let inner = &self.inner;
        let progress = &inner.source.progress;
        let give_up = give_up_rule(&inner.control);
        loop {
            let err = match self.try_commit() {
                Ok(()) => {
                    progress.committed(&as_i64(&self.positions));
                    progress.clear_error();
                    return Ok(());
                }
                Err(e) => e,
            };
            if fatal(&err) {
                return Err(IoError::new(format!(
                    "the Kafka transaction failed for good ({err}); another worker may be running with the same worker id"
                )));
            }
            tracing::warn!(target: "rustmq::etl::kafka", source = %progress.source, error = %err, "Kafka transaction not committed; retrying");
            progress.note_error(&format!("committing a transaction: {err}"));
            if give_up() {
                let _ = inner.producer.producer.abort_transaction(TXN_CALL_TIMEOUT);
                return Err(IoError::new(format!(
                    "stopped before the Kafka transaction committed: {err}"
                )));
            }
            std::thread::sleep(RETRY_BACKOFF);
            if !requires_abort(&err) {
                continue;
            }
            let producer = &inner.producer.producer;
            if let Err(e) = producer.abort_transaction(TXN_CALL_TIMEOUT) {
                progress.note_error(&format!("aborting a transaction: {e}"));
                continue;
            }
            if !self.positions.keys().all(|p| progress.owns(*p)) {
                // The partitions moved while the batch was unfinished: its records
                // are the next owner's to process (from the committed offsets), so
                // the aborted batch is dropped, not retried.
                tracing::warn!(target: "rustmq::etl::kafka", source = %progress.source, "batch aborted after a rebalance; its records are read again by their new owner");
                return Ok(());
            }
            producer
                .begin_transaction()
                .map_err(|e| IoError::new(format!("cannot begin a Kafka transaction: {e}")))?;
            inner.producer.send(&self.records, 0..self.records.len());
        }
    }
}

/// At-least-once: Kafka records acknowledged, then local writes, then the Kafka
/// source's offsets (see the module docs).
pub struct StagedSink {
    inner: Arc<StagedParts>,
}

/// What a [`StagedSink`] writes to and commits.
pub struct StagedParts {
    /// The producer for Kafka outputs, when the destination or error topic is one.
    pub producer: Option<KafkaProducer>,
    /// The broker's storage, for local outputs and a local source's position.
    pub storage: Storage,
    /// The consumer id of a local source, whose offset goes with the local writes.
    pub local_consumer: Option<String>,
    /// The Kafka source, whose offsets are committed last.
    pub source: Option<SourceOffsets>,
    /// Where outputs and failures go.
    pub outputs: Outputs,
    /// The worker's stop requests (a stop ends the retries of an outage).
    pub control: Arc<Control>,
}

impl StagedSink {
    /// A sink over `parts`.
    pub fn new(parts: StagedParts) -> Self {
        StagedSink {
            inner: Arc::new(parts),
        }
    }
}

impl Drop for StagedSink {
    fn drop(&mut self) {
        if let Some(s) = &self.inner.source {
            s.progress.abandon();
        }
    }
}

impl Sink for StagedSink {
    fn start_commit(&mut self, batch: CommitBatch) -> Result<Box<dyn PendingCommit>, IoError> {
        let inner = &self.inner;
        let stamp = batch.stamp.clone();
        let (records, local, positions) = route(batch, &inner.outputs)?;
        if !records.is_empty() {
            let Some(producer) = &inner.producer else {
                return Err(IoError::new("no producer for Kafka outputs".into()));
            };
            producer.send(&records, 0..records.len());
        }
        Ok(Box::new(StagedPending {
            inner: Arc::clone(&self.inner),
            records,
            local,
            stamp,
            positions,
        }))
    }

    fn committed(&mut self) -> Result<Option<u64>, IoError> {
        match &self.inner.local_consumer {
            Some(c) => Ok(self.inner.storage.consumer_offset(c)?),
            None => Ok(None),
        }
    }
}

struct StagedPending {
    inner: Arc<StagedParts>,
    records: Vec<Outgoing>,
    local: LocalAppends,
    stamp: Vec<(String, String)>,
    positions: Positions,
}

impl PendingCommit for StagedPending {
    fn wait(self: Box<Self>) -> Result<(), IoError> {
        let inner = &self.inner;
        let give_up = give_up_rule(&inner.control);
        if let Some(producer) = &inner.producer {
            if !self.records.is_empty() {
                producer.confirm(&self.records, &give_up)?;
            }
        }
        let offsets = match &inner.local_consumer {
            Some(c) => vec![(c.clone(), io::local_position(&self.positions)?)],
            None => Vec::new(),
        };
        if !self.local.is_empty() || !offsets.is_empty() {
            inner.storage.commit(Commit {
                appends: self.local,
                offsets,
                stamp: self.stamp,
                ..Commit::default()
            })?;
        }
        if let Some(source) = &inner.source {
            commit_offsets(source, &self.positions, &give_up)?;
        }
        Ok(())
    }
}

/// Commits a Kafka source's offsets for the partitions it still owns (those it
/// lost are re-read by their new owner: at-least-once).
fn commit_offsets(
    source: &SourceOffsets,
    positions: &Positions,
    give_up: &dyn Fn() -> bool,
) -> Result<(), IoError> {
    let owned: Positions = positions
        .iter()
        .filter(|(p, _)| source.progress.owns(**p))
        .map(|(p, o)| (*p, *o))
        .collect();
    if owned.is_empty() {
        return Ok(());
    }
    loop {
        match source.consumer.commit(
            &offsets_list(&source.topic, &owned),
            rdkafka::consumer::CommitMode::Sync,
        ) {
            Ok(()) => {
                source.progress.committed(&as_i64(&owned));
                return Ok(());
            }
            Err(e)
                if matches!(
                    code(&e),
                    Some(
                        RDKafkaErrorCode::RebalanceInProgress
                            | RDKafkaErrorCode::IllegalGeneration
                            | RDKafkaErrorCode::UnknownMemberId
                    )
                ) =>
            {
                tracing::warn!(target: "rustmq::etl::kafka", source = %source.progress.source, error = %e, "offsets not committed: the group rebalanced; the records are read again");
                return Ok(());
            }
            Err(e) => {
                source
                    .progress
                    .note_error(&format!("committing offsets: {e}"));
                if give_up() {
                    return Err(IoError::new(format!(
                        "stopped before the offsets were committed: {e}"
                    )));
                }
                std::thread::sleep(RETRY_BACKOFF);
            }
        }
    }
}
