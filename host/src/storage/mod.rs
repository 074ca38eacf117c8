//! Durable embedded storage: topic logs, consumer offsets and the metadata of
//! modules and pipelines, all in one redb database file under the data directory.
//!
//! # Layout
//! - `topic`: the topic naming rule, [`TopicConfig`], [`TopicInfo`] and the tables a
//!   topic lives in.
//! - `error`: [`StorageError`], what every storage call can fail with.
//! - `codec`: the versioned binary encoding of log entries and of the chunk rows
//!   that store several consecutive entries under one key.
//! - `writer`: the single writer thread. Every change to a topic (append, pipeline
//!   commit, create, delete, retention trim) goes through it; requests that arrive
//!   while a transaction is being committed are group-committed together in the next
//!   one, so a loaded broker pays one fsync per group, not per message.
//! - `retention`: the trimming rule and the background thread that applies it.
//! - `offsets`: consumer (pipeline) offsets.
//! - `state`: pipelines' durable keyed state, written inside pipeline commits.
//! - `meta`: the key/value tables the module store and pipelines keep JSON in.
//! - `health`: the free-space reserve, and reopening the database after a failed
//!   write, so a full disk is refused cleanly and recovers without a restart.
//!
//! Reads use redb read transactions directly: they see a consistent snapshot and
//! never wait for the writer.

pub mod codec;
mod error;
mod health;
mod meta;
mod offsets;
mod retention;
mod seek;
mod state;
mod topic;
mod writer;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, TableDefinition};

use health::{DbGuard, Slot};

use crate::message::Message;

pub use codec::{DecodeError, EncodeError};
pub use error::StorageError;
pub use health::{free_bytes, is_out_of_space};
pub use meta::MetaTable;
pub use seek::Seek;
pub use state::{StatePage, StateWrites};
pub use topic::{validate_topic_name, Retention, TopicConfig, TopicInfo, MAX_TOPIC_NAME_LEN};

use topic::{TopicMeta, TOPICS};
use writer::{Reply, Request, Writer};

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "broker.redb";

/// How the store behaves; built from `[storage]` in the broker config.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Retention for topics that do not override it.
    pub default_retention: Retention,
    /// Create a topic on its first append instead of failing with `TopicNotFound`.
    pub auto_create_topics: bool,
    /// How often the retention thread trims; `None` disables the thread (tests call
    /// [`Storage::enforce_retention`] themselves).
    pub retention_check_interval: Option<Duration>,
    /// The database's page cache in bytes; `None` keeps redb's default (1 GiB).
    pub cache_bytes: Option<usize>,
    /// Writes that would leave less than this many bytes free on the data
    /// directory's filesystem are refused with [`StorageError::Full`].
    pub min_free_bytes: u64,
}

/// The default of [`StorageOptions::min_free_bytes`] (`[storage] min_free_bytes`).
pub const DEFAULT_MIN_FREE_BYTES: u64 = 128 * 1024 * 1024;

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            default_retention: Retention::default(),
            auto_create_topics: true,
            retention_check_interval: None,
            cache_bytes: None,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatch {
    /// `(offset, message)` pairs in offset order.
    pub messages: Vec<(u64, Message)>,
    /// The offset to read from next.
    pub next_offset: u64,
    /// The first stored offset when the read happened.
    pub start_offset: u64,
    /// One past the last stored offset when the read happened.
    pub end_offset: u64,
    /// True when the requested offset had already been deleted by retention and the
    /// read started at `start_offset` instead.
    pub skipped_to_start: bool,
    /// The incarnation of the topic read (see [`TopicInfo::topic_id`]).
    pub topic_id: u64,
}

/// One atomic pipeline step: appends to any topics (created when missing) and
/// consumer offsets, made durable together or not at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// `(topic, messages)` to append, in order.
    pub appends: Vec<(String, Vec<Message>)>,
    /// `(consumer id, next offset to read)` to store.
    pub offsets: Vec<(String, u64)>,
    /// `(consumer id, offset)` pairs that must be stored as given (`None`: no
    /// offset stored) for the commit to apply; otherwise it is refused with
    /// [`StorageError::CommitOutOfOrder`] and stores nothing. A pipeline that starts
    /// a commit before the previous one is known to be durable names that one's
    /// offsets here, so the later commit can never land after a failed one.
    pub follows: Vec<(String, Option<u64>)>,
    /// Headers set on every appended message as it is stored, replacing any of its
    /// own with those names (a pipeline's `x-rustmq-module`, without a copy per
    /// message).
    pub stamp: Vec<(String, String)>,
    /// A pipeline's state changes, made durable with the rest.
    pub state: Option<StateWrites>,
}

/// Whether the store accepts writes (`GET /api/v1/status` shows it as `storage`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StorageHealth {
    /// False while the filesystem is below the reserve (plus the smallest write
    /// refused since data was last added: it must fit too) or the database is
    /// being reopened after a failed write.
    pub writable: bool,
    /// Bytes free on the data directory's filesystem (when it could be asked).
    pub free_bytes: Option<u64>,
    /// `[storage] min_free_bytes`.
    pub min_free_bytes: u64,
    /// Why writes are refused, while they are.
    pub fault: Option<String>,
}

/// A request handed to the writer whose answer has not been waited for yet.
#[must_use = "a write is only known to be durable once waited for"]
pub struct Pending<T> {
    rx: std::sync::mpsc::Receiver<Result<T, StorageError>>,
}

impl<T> Pending<T> {
    /// Waits until the write is durable (or failed, in which case nothing of it was
    /// stored) and returns its answer.
    pub fn wait(self) -> Result<T, StorageError> {
        self.rx.recv().map_err(|_| StorageError::Closed)?
    }
}

/// A [`Commit`] handed to the writer; its answer is the offset range of each append,
/// in order.
pub type PendingCommit = Pending<Vec<Range<u64>>>;

/// The store. Cheap to clone; every clone talks to the same database and writer.
#[derive(Clone)]
pub struct Storage {
    inner: Arc<Inner>,
}

struct Inner {
    slot: Arc<Slot>,
    dir: PathBuf,
    file: PathBuf,
    options: StorageOptions,
    shared: Arc<Shared>,
    writer: Writer,
    retention: Mutex<Option<retention::Ticker>>,
}

/// State the writer thread and the readers share.
pub(crate) struct Shared {
    /// Topic metadata as of the last commit (the writer is its only writer).
    topics: RwLock<BTreeMap<String, TopicMeta>>,
    /// Bumped after every commit; long-polls wait on it.
    generation: Mutex<u64>,
    changed: Condvar,
    changed_async: tokio::sync::Notify,
}

impl Shared {
    fn end_offset(&self, topic: &str) -> Option<u64> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
            .map(|m| m.end_offset)
    }

    /// Wakes every long-poll; called by the writer after each commit.
    pub(crate) fn notify(&self) {
        let mut g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        *g = g.wrapping_add(1);
        self.changed.notify_all();
        self.changed_async.notify_waiters();
    }
}

impl Storage {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path, options: StorageOptions) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir).map_err(|source| StorageError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let file = dir.join(DATABASE_FILE);
        let slot = Arc::new(Slot::open(file.clone(), options.cache_bytes)?);
        let topics = load_topics(&*slot.get()?)?;
        tracing::info!(target: "rustmq::storage", path = %file.display(), topics = topics.len(), "storage opened");
        let shared = Arc::new(Shared {
            topics: RwLock::new(topics),
            generation: Mutex::new(0),
            changed: Condvar::new(),
            changed_async: tokio::sync::Notify::new(),
        });
        let space = writer::Space {
            dir: dir.to_path_buf(),
            reserve: options.min_free_bytes,
            refused: Default::default(),
        };
        let writer = Writer::spawn(
            slot.clone(),
            shared.clone(),
            options.auto_create_topics,
            space,
        )
        .map_err(|source| StorageError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let storage = Storage {
            inner: Arc::new(Inner {
                slot,
                dir: dir.to_path_buf(),
                file,
                options,
                shared,
                writer,
                retention: Mutex::new(None),
            }),
        };
        if let Some(every) = storage.inner.options.retention_check_interval {
            let ticker = retention::Ticker::spawn(&storage, every).map_err(|source| {
                StorageError::DataDir {
                    path: dir.to_path_buf(),
                    source,
                }
            })?;
            *storage
                .inner
                .retention
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(ticker);
        }
        Ok(storage)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The database file's size on disk.
    pub fn size_bytes(&self) -> u64 {
        std::fs::metadata(&self.inner.file)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StorageOptions {
        &self.inner.options
    }

    /// Checks a topic name; see [`validate_topic_name`].
    pub fn validate_topic_name(name: &str) -> Result<(), StorageError> {
        validate_topic_name(name)
    }

    /// Creates a topic. Fails with `TopicAlreadyExists` if it exists.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<TopicInfo, StorageError> {
        validate_topic_name(name)?;
        let owned = name.to_string();
        self.call_blocking(|reply| Request::CreateTopic {
            name: owned,
            config,
            reply,
        })?;
        self.topic(name)?
            .ok_or_else(|| StorageError::TopicNotFound(name.to_string()))
    }

    /// Deletes a topic and its log. Consumer offsets are left to their owners.
    pub fn delete_topic(&self, name: &str) -> Result<(), StorageError> {
        validate_topic_name(name)?;
        let name = name.to_string();
        self.call_blocking(|reply| Request::DeleteTopic { name, reply })
    }

    /// A topic's current state, or `None` if it does not exist.
    pub fn topic(&self, name: &str) -> Result<Option<TopicInfo>, StorageError> {
        let default = self.inner.options.default_retention;
        Ok(self.topics().get(name).map(|m| m.info(name, default)))
    }

    /// Every topic, by name.
    pub fn list_topics(&self) -> Result<Vec<TopicInfo>, StorageError> {
        let default = self.inner.options.default_retention;
        Ok(self
            .topics()
            .iter()
            .map(|(name, m)| m.info(name, default))
            .collect())
    }

    /// Appends `messages` to `topic` (created first if missing and auto-creation is
    /// on) and returns their offsets. Returns only once the messages are durable.
    /// Messages without a timestamp should carry the caller's "now"; the broker's
    /// append time is recorded separately for retention.
    pub async fn append(
        &self,
        topic: &str,
        messages: Vec<Message>,
    ) -> Result<Range<u64>, StorageError> {
        let request = self.append_request(topic, &messages)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.writer.send(request(Reply::Async(tx)))?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    /// [`Storage::append`] for a thread that is not async.
    pub fn append_blocking(
        &self,
        topic: &str,
        messages: Vec<Message>,
    ) -> Result<Range<u64>, StorageError> {
        let request = self.append_request(topic, &messages)?;
        self.call_blocking(request)
    }

    /// Validates and encodes on the caller's thread so the writer only inserts.
    fn append_request(
        &self,
        topic: &str,
        messages: &[Message],
    ) -> Result<impl FnOnce(Reply<Range<u64>>) -> Request, StorageError> {
        validate_topic_name(topic)?;
        let chunks = codec::encode_chunks(messages, crate::message::now_millis(), &[])?;
        let topic = topic.to_string();
        Ok(move |reply| Request::Append {
            topic,
            chunks,
            reply,
        })
    }

    /// Applies a pipeline [`Commit`] in one durable transaction; returns the offset
    /// range of each append, in order. Serialised with every other write.
    pub fn commit(&self, commit: Commit) -> Result<Vec<Range<u64>>, StorageError> {
        self.start_commit(commit)?.wait()
    }

    /// Hands a [`Commit`] to the writer and returns at once; the commit is durable
    /// when [`PendingCommit::wait`] says so. Commits (and appends) land in the order
    /// they were started, so a pipeline can process its next batch while the previous
    /// one is being written and still never commit out of order.
    pub fn start_commit(&self, commit: Commit) -> Result<PendingCommit, StorageError> {
        let now = crate::message::now_millis();
        let mut appends = Vec::with_capacity(commit.appends.len());
        for (topic, messages) in commit.appends {
            validate_topic_name(&topic)?;
            appends.push((topic, codec::encode_chunks(&messages, now, &commit.stamp)?));
        }
        let offsets = commit.offsets;
        let state = commit.state.filter(|s| !s.changes.is_empty());
        self.send(|reply| Request::Commit {
            appends,
            offsets,
            follows: commit.follows,
            state,
            reply,
        })
    }

    /// Reads up to `max_messages` messages (and about `max_bytes` of values, but
    /// always at least one message when one is available) from `from`.
    pub fn read(
        &self,
        topic: &str,
        from: u64,
        max_messages: usize,
        max_bytes: usize,
    ) -> Result<ReadBatch, StorageError> {
        validate_topic_name(topic)?;
        let db = self.db()?;
        let txn = db.begin_read()?;
        let meta = topic_meta(&txn, topic)?;
        if from > meta.end_offset {
            return Err(StorageError::OffsetOutOfRange {
                topic: topic.to_string(),
                offset: from,
                start: meta.start_offset,
                end: meta.end_offset,
            });
        }
        let start = from.max(meta.start_offset);
        let mut batch = ReadBatch {
            messages: Vec::new(),
            next_offset: start,
            start_offset: meta.start_offset,
            end_offset: meta.end_offset,
            skipped_to_start: from < meta.start_offset,
            topic_id: meta.id,
        };
        if start == meta.end_offset || max_messages == 0 {
            return Ok(batch);
        }
        let name = topic::log_table_name(topic);
        let log = txn.open_table(TableDefinition::<u64, &[u8]>::new(&name))?;
        let corrupt = |offset, source| StorageError::Corrupt {
            topic: topic.to_string(),
            offset,
            source,
        };
        let mut bytes = 0usize;
        // Rows are keyed by their last offset, so the first row at or after `start`
        // is the one holding it.
        'rows: for row in log.range(start..meta.end_offset)? {
            let (last, row) = row?;
            let last = last.value();
            let entries = codec::split_chunk(row.value()).map_err(|e| corrupt(last, e))?;
            let base = codec::first_offset(last, &entries);
            for (offset, entry) in (base..meta.end_offset).zip(entries) {
                if offset < start {
                    continue;
                }
                let (message, _) = codec::decode(entry).map_err(|e| corrupt(offset, e))?;
                bytes += message.memory_size();
                if bytes > max_bytes && !batch.messages.is_empty() {
                    break 'rows;
                }
                batch.messages.push((offset, message));
                batch.next_offset = offset + 1;
                if batch.messages.len() >= max_messages || bytes >= max_bytes {
                    break 'rows;
                }
            }
        }
        Ok(batch)
    }

    /// The offset the next message appended to `topic` will get.
    pub fn end_offset(&self, topic: &str) -> Result<u64, StorageError> {
        self.inner
            .shared
            .end_offset(topic)
            .ok_or_else(|| StorageError::TopicNotFound(topic.to_string()))
    }

    /// Waits until `topic` has a message at `offset` (its end offset is past it) or
    /// `timeout` passes; true if the message exists. A missing topic is waited for too.
    pub async fn wait_for(&self, topic: &str, offset: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let shared = &self.inner.shared;
        loop {
            let notified = shared.changed_async.notified();
            tokio::pin!(notified);
            // Registered before the check, so a commit between the check and the
            // await still wakes us.
            notified.as_mut().enable();
            if shared.end_offset(topic).is_some_and(|end| end > offset) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return shared.end_offset(topic).is_some_and(|end| end > offset);
            }
        }
    }

    /// [`Storage::wait_for`] for a std thread (a pipeline's worker).
    pub fn wait_for_blocking(&self, topic: &str, offset: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let shared = &self.inner.shared;
        let mut generation = shared.generation.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            // The writer bumps `generation` under this lock after updating the
            // topic cache, so no commit can slip between this check and the wait.
            if shared.end_offset(topic).is_some_and(|end| end > offset) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            generation = shared
                .changed
                .wait_timeout(generation, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Applies retention to every topic once, as of `now_ms`; returns how many
    /// messages were deleted. The background thread calls this periodically.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<u64, StorageError> {
        let default = self.inner.options.default_retention;
        self.call_blocking(|reply| Request::Trim {
            now_ms,
            default,
            reply,
        })
    }

    /// Stops the retention thread and the writer, after the writer has committed
    /// every request already sent. Later writes fail with `Closed`; reads keep working.
    /// Every commit is already durable, so nothing else needs flushing.
    pub fn close(&self) {
        if let Some(ticker) = self
            .inner
            .retention
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            ticker.stop();
        }
        self.inner.writer.close();
        tracing::info!(target: "rustmq::storage", "storage closed");
    }

    fn call_blocking<T>(
        &self,
        request: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<T, StorageError> {
        self.send(request)?.wait()
    }

    /// Queues a request for the writer; its answer comes through the returned handle.
    fn send<T>(
        &self,
        request: impl FnOnce(Reply<T>) -> Request,
    ) -> Result<Pending<T>, StorageError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.writer.send(request(Reply::Blocking(tx)))?;
        Ok(Pending { rx })
    }

    /// The in-memory topic table, read-locked (a poisoned lock still holds
    /// consistent metadata: writers replace entries whole).
    fn topics(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, TopicMeta>> {
        self.inner
            .shared
            .topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The open database, held for as long as the guard lives (a transaction must
    /// not outlive it); `Unavailable` while it is being reopened after a failure.
    pub(crate) fn db(&self) -> Result<DbGuard<'_>, StorageError> {
        self.inner.slot.get()
    }

    /// Runs one write transaction outside the writer (metadata, deletes): refused
    /// while the filesystem is below the reserve when it `grows` the file, and an
    /// I/O failure hands the database to the writer to reopen.
    pub(crate) fn write_txn<T>(
        &self,
        grows: u64,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        if grows > 0 {
            self.inner.writer.space().check(grows)?;
        }
        let result = (|| {
            let db = self.db()?;
            let mut txn = db.begin_write()?;
            txn.set_durability(redb::Durability::Immediate);
            let value = f(&txn)?;
            txn.commit()?;
            Ok(value)
        })();
        if let Err(e) = &result {
            if matches!(e, StorageError::Database(_)) && health::io_failure(e).is_some() {
                // Best effort: a closed writer means the broker is stopping.
                let _ = self
                    .inner
                    .writer
                    .send(Request::Reopen { why: e.to_string() });
            }
        }
        result.map_err(|e| self.inner.writer.space().explain(e))
    }

    /// Whether writes are accepted now, and why not when they are not.
    pub fn health(&self) -> StorageHealth {
        let space = self.inner.writer.space();
        let free_bytes = health::free_bytes(&space.dir).ok();
        let fault = self.inner.slot.fault();
        let full = free_bytes.is_some_and(|free| free < space.needed());
        StorageHealth {
            writable: fault.is_none() && !full,
            free_bytes,
            min_free_bytes: space.reserve,
            fault: fault.or_else(|| full.then(|| space.full(free_bytes.unwrap_or(0)).to_string())),
        }
    }
}

fn load_topics(db: &Database) -> Result<BTreeMap<String, TopicMeta>, StorageError> {
    let txn = db.begin_write()?;
    txn.open_table(TOPICS)?;
    txn.commit()?;
    let txn = db.begin_read()?;
    let table = txn.open_table(TOPICS)?;
    let mut topics = BTreeMap::new();
    for row in table.iter()? {
        let (name, meta) = row?;
        let name = name.value().to_string();
        let meta = TopicMeta::decode(&name, meta.value())?;
        topics.insert(name, meta);
    }
    Ok(topics)
}

/// The metadata of `topic` as `txn` sees it; a topic that does not exist is
/// [`StorageError::TopicNotFound`].
fn topic_meta(txn: &redb::ReadTransaction, topic: &str) -> Result<TopicMeta, StorageError> {
    match txn.open_table(TOPICS)?.get(topic)? {
        Some(row) => TopicMeta::decode(topic, row.value()),
        None => Err(StorageError::TopicNotFound(topic.to_string())),
    }
}

#[cfg(test)]
mod tests;
