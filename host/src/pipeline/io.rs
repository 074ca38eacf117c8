//! Where a pipeline reads from and writes to, behind two small traits.
//!
//! The worker only sees [`Source`] and [`Sink`]. Here are the broker's own topics
//! ([`LocalSource`], [`LocalSink`]); Kafka clusters implement the same traits in
//! `crate::kafka`. Exactly-once rests on [`Sink::start_commit`]: the outputs, the
//! error-topic writes and the new source positions land together or not at all, and
//! commits land in the order they were started, which lets the worker process the
//! next batch while one commit is in flight. (A sink that cannot make one atomic
//! step of them, such as local topics written from a Kafka source, writes the
//! outputs first and the positions after: at-least-once, as its status says.)

use std::collections::BTreeMap;
use std::time::Duration;

use crate::message::Message;
use crate::state::StateChange;
use crate::storage::{self, Commit, StateWrites, Storage, StorageError};

/// The most bytes one fetch reads, whatever the batch size: bounds a pipeline's
/// memory when messages are large.
pub const MAX_FETCH_BYTES: usize = 16 * 1024 * 1024;

/// The partition of a local topic (local topics have one).
pub const LOCAL_PARTITION: i32 = 0;

/// Per source partition, the next offset to read.
pub type Positions = BTreeMap<i32, u64>;

/// A message read from a source, with its position there.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The source partition ([`LOCAL_PARTITION`] for local topics).
    pub partition: i32,
    /// The message's offset in its partition.
    pub offset: u64,
    /// The message.
    pub message: Message,
}

/// What one batch writes, atomically.
#[derive(Debug, Default)]
pub struct CommitBatch {
    /// Outputs for the destination topic.
    pub destination: Vec<Message>,
    /// Outputs the module routed to the pipeline's declared `routes`: entry `i`
    /// holds those for route `i` (shorter than the routes when the last ones got
    /// nothing).
    pub routed: Vec<Vec<Message>>,
    /// Messages for the error topic.
    pub errors: Vec<Message>,
    /// The source positions after the batch (per partition, the next offset to
    /// read), for the partitions the batch read from.
    pub positions: Positions,
    /// Headers every written message must carry, replacing any of its own with
    /// those names (the module that produced the batch); the sink adds them as it
    /// writes.
    pub stamp: Vec<(String, String)>,
    /// The pipeline's state changes made by the batch (only sinks that hold the
    /// state in the same transaction get any; see `pipeline::connect`).
    pub state: Vec<StateChange>,
}

/// A source or sink failure (the storage is unavailable, a disk is full ...).
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct IoError {
    reason: String,
    storage_blocked: bool,
}

impl IoError {
    /// An error with this explanation.
    pub fn new(reason: String) -> Self {
        IoError {
            reason,
            storage_blocked: false,
        }
    }

    /// True when the broker's storage refuses writes for now (its disk is full, or
    /// its database is being reopened): the pipeline waits for it, it has not failed.
    pub fn storage_blocked(&self) -> bool {
        self.storage_blocked
    }
}

impl From<StorageError> for IoError {
    fn from(e: StorageError) -> Self {
        IoError {
            storage_blocked: matches!(e, StorageError::Full { .. } | StorageError::Unavailable(_)),
            reason: e.to_string(),
        }
    }
}

/// Where messages come from.
pub trait Source: Send {
    /// Up to `max` messages from the current position, waiting up to `wait` when
    /// there are none yet. Advances the position past what it returns.
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Fetched>, IoError>;
    /// Moves the position (to the committed offset, on start). Sources whose
    /// positions are kept elsewhere (a Kafka group's committed offsets) are never
    /// sought: their sinks report no committed offset.
    fn seek(&mut self, offset: u64);
    /// The oldest and the next-to-be-written offsets: for `start_from` and lag.
    fn bounds(&self) -> Result<(u64, u64), IoError>;
}

/// A commit started by [`Sink::start_commit`] and not yet known to be durable.
pub trait PendingCommit: Send {
    /// Waits until the commit is durable, or reports why nothing of it was stored.
    fn wait(self: Box<Self>) -> Result<(), IoError>;
}

/// Where results go, together with the source position.
pub trait Sink: Send {
    /// Starts writing a batch and the new source position in one atomic, durable
    /// step. Commits started one after another land in that order; the worker keeps
    /// at most [`Sink::max_in_flight`] unconfirmed and waits for the oldest before
    /// starting another.
    fn start_commit(&mut self, batch: CommitBatch) -> Result<Box<dyn PendingCommit>, IoError>;
    /// The committed position of a local source, if the pipeline ever committed
    /// one; `None` when the source keeps its own positions (Kafka groups). Read
    /// once, when the worker starts.
    fn committed(&mut self) -> Result<Option<u64>, IoError>;
    /// How many commits may be started before the oldest is confirmed. More than
    /// one only for a sink that refuses a commit whose predecessor did not land, so
    /// that a failure never leaves a gap behind a later commit.
    fn max_in_flight(&self) -> usize {
        1
    }
}

/// Commits a [`LocalSink`] keeps in flight unless `[etl] commits_in_flight` says
/// otherwise: while one is made durable (its fsync) the next is queued behind it,
/// and the writer's group commit makes the ones that queued up durable together.
pub const DEFAULT_COMMITS_IN_FLIGHT: usize = 2;

/// A topic of this broker, read as a pipeline source.
pub struct LocalSource {
    storage: Storage,
    topic: String,
    position: u64,
    /// The incarnation of `topic` its positions belong to, once known.
    topic_id: Option<u64>,
}

impl LocalSource {
    /// A source reading `topic` from offset 0 (seek before use). Its positions
    /// belong to the incarnation `topic_id` of the topic (when `None`, to the first
    /// one it finds); one deleted and created again is an error, never read at an
    /// old position.
    pub fn new(storage: Storage, topic: &str, topic_id: Option<u64>) -> Self {
        LocalSource {
            storage,
            topic: topic.to_string(),
            position: 0,
            topic_id,
        }
    }

    /// Fails if the topic was deleted and created again since its positions were
    /// taken: its offsets started over, so reading on would skip or wait for
    /// messages that are not the ones the position counted.
    fn check_incarnation(&mut self) -> Result<(), IoError> {
        match self.storage.topic(&self.topic)? {
            Some(info) => self.check_topic_id(info.topic_id),
            None => Ok(()),
        }
    }

    /// [`Self::check_incarnation`] against the id of what was just read.
    fn check_topic_id(&mut self, found: u64) -> Result<(), IoError> {
        if found == 0 {
            return Ok(());
        }
        match self.topic_id {
            Some(id) if id != found => Err(IoError::new(format!(
                "the source topic {:?} was deleted and created again (topic id {} is not the {id} this pipeline read): its offsets started over, and this pipeline's position {} belongs to the old topic; start the pipeline again to read the new topic from its first message",
                self.topic, found, self.position
            ))),
            Some(_) => Ok(()),
            None => {
                self.topic_id = Some(found);
                Ok(())
            }
        }
    }
}

impl Source for LocalSource {
    fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<Fetched>, IoError> {
        if self.storage.topic(&self.topic)?.is_none()
            || self.storage.end_offset(&self.topic)? <= self.position
        {
            self.storage
                .wait_for_blocking(&self.topic, self.position, wait);
            if self.storage.topic(&self.topic)?.is_none() {
                return Ok(Vec::new());
            }
        }
        let batch = match self
            .storage
            .read(&self.topic, self.position, max, MAX_FETCH_BYTES)
        {
            Ok(batch) => batch,
            Err(e) => {
                // A topic created again with fewer messages than the position.
                self.check_incarnation()?;
                return Err(e.into());
            }
        };
        // Read in the same snapshot as the messages: exact, whenever the topic
        // was created again.
        self.check_topic_id(batch.topic_id)?;
        self.position = batch.next_offset;
        Ok(batch
            .messages
            .into_iter()
            .map(|(offset, message)| Fetched {
                partition: LOCAL_PARTITION,
                offset,
                message,
            })
            .collect())
    }

    fn seek(&mut self, offset: u64) {
        self.position = offset;
    }

    fn bounds(&self) -> Result<(u64, u64), IoError> {
        Ok(match self.storage.topic(&self.topic)? {
            Some(info) => (info.start_offset, info.end_offset),
            None => (0, 0),
        })
    }
}

/// Topics of this broker as a pipeline sink; the source position is a consumer
/// offset in the same store, so one transaction covers all three.
pub struct LocalSink {
    storage: Storage,
    pipeline_id: String,
    consumer: String,
    destination: String,
    routes: Vec<String>,
    error_topic: Option<String>,
    /// The source position the last commit started will store, once known: the
    /// next commit follows it ([`Commit::follows`]), so that it is refused if that
    /// one did not land.
    last: Option<Option<u64>>,
    /// [`Sink::max_in_flight`].
    in_flight: usize,
}

/// The topics a [`LocalSink`] writes.
pub struct LocalTopics<'a> {
    /// Where outputs go.
    pub destination: &'a str,
    /// The declared routes, in order.
    pub routes: Vec<&'a str>,
    /// Where failures go.
    pub error_topic: Option<&'a str>,
}

impl LocalSink {
    /// A sink writing to `topics`, committing the position as consumer `consumer`
    /// and the state of pipeline `pipeline_id`, with up to `in_flight` commits
    /// (at least one) started and not yet durable.
    pub fn new(
        storage: Storage,
        pipeline_id: &str,
        consumer: &str,
        topics: LocalTopics<'_>,
        in_flight: usize,
    ) -> Self {
        LocalSink {
            storage,
            pipeline_id: pipeline_id.to_string(),
            consumer: consumer.to_string(),
            destination: topics.destination.to_string(),
            routes: topics.routes.iter().map(|t| t.to_string()).collect(),
            error_topic: topics.error_topic.map(str::to_string),
            last: None,
            in_flight: in_flight.max(1),
        }
    }
}

impl PendingCommit for storage::PendingCommit {
    fn wait(self: Box<Self>) -> Result<(), IoError> {
        storage::PendingCommit::wait(*self)?;
        Ok(())
    }
}

impl Sink for LocalSink {
    fn start_commit(&mut self, batch: CommitBatch) -> Result<Box<dyn PendingCommit>, IoError> {
        let mut appends = Vec::with_capacity(2 + batch.routed.len());
        if !batch.destination.is_empty() {
            appends.push((self.destination.clone(), batch.destination));
        }
        for (i, messages) in batch.routed.into_iter().enumerate() {
            if messages.is_empty() {
                continue;
            }
            let topic = self.routes.get(i).ok_or_else(|| {
                IoError::new(format!(
                    "a message was routed to route {i}, which the pipeline does not declare"
                ))
            })?;
            appends.push((topic.clone(), messages));
        }
        if !batch.errors.is_empty() {
            let topic = self.error_topic.clone().ok_or_else(|| {
                IoError::new(
                    "a message was routed to the error topic but the pipeline has none".into(),
                )
            })?;
            appends.push((topic, batch.errors));
        }
        let position = local_position(&batch.positions)?;
        let follows = match self.last {
            Some(last) => last,
            None => self.storage.consumer_offset(&self.consumer)?,
        };
        let pending = self.storage.start_commit(Commit {
            appends,
            offsets: vec![(self.consumer.clone(), position)],
            follows: vec![(self.consumer.clone(), follows)],
            stamp: batch.stamp,
            state: Some(StateWrites {
                pipeline_id: self.pipeline_id.clone(),
                changes: batch.state,
            }),
        })?;
        self.last = Some(Some(position));
        Ok(Box::new(pending))
    }

    fn committed(&mut self) -> Result<Option<u64>, IoError> {
        let committed = self.storage.consumer_offset(&self.consumer)?;
        self.last = Some(committed);
        Ok(committed)
    }

    fn max_in_flight(&self) -> usize {
        self.in_flight
    }
}

/// The one position of a local source in a batch's positions.
pub fn local_position(positions: &Positions) -> Result<u64, IoError> {
    match positions.iter().next() {
        Some((&LOCAL_PARTITION, &offset)) if positions.len() == 1 => Ok(offset),
        _ => Err(IoError::new(format!(
            "a local source has one partition, but the batch has positions {positions:?}"
        ))),
    }
}
