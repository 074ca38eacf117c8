//! The single writer thread and group commit.
//!
//! Every change to topics goes through one thread. It takes the first queued request,
//! then everything else already queued (up to [`GROUP_MAX_ENTRIES`] messages), applies
//! them all in one redb write transaction with `Durability::Immediate`, commits, and
//! only then answers each caller. Under load the queue fills while a commit's fsync
//! runs, so the next transaction carries many callers' messages for one fsync; with
//! one caller it degenerates to one transaction per request. Because there is one
//! writer, appends and pipeline commits are totally ordered and no offset is lost or
//! given out twice.
//!
//! A request that is wrong on its own (a missing topic with auto-creation off, a
//! duplicate create) is detected before it writes anything, so it fails alone; a
//! database failure fails the whole group. Before a group is written, the requests
//! that add data are held to the free-space reserve ([`Space`]); after an I/O
//! failure the writer reopens the database and reloads the topic table from it
//! (see `health`).

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Durability, ReadableTable, TableDefinition, WriteTransaction};

use super::codec::{self, Chunk};
use super::health::{self, Slot};
use super::offsets::CONSUMER_OFFSETS;
use super::state::StateWrites;
use super::topic::{log_table_name, Retention, TopicConfig, TopicMeta, TOPICS};
use super::{Shared, StorageError};

/// The most messages one group transaction carries; bounds the memory and latency
/// of a single commit.
pub const GROUP_MAX_ENTRIES: usize = 10_000;

/// The most entries one retention pass deletes from one topic, so a huge backlog is
/// trimmed over several short transactions instead of one long one.
pub const TRIM_MAX_PER_PASS: usize = 100_000;

/// Where the writer sends a request's result.
pub(crate) enum Reply<T> {
    /// An async caller.
    Async(tokio::sync::oneshot::Sender<Result<T, StorageError>>),
    /// A blocking caller.
    Blocking(mpsc::SyncSender<Result<T, StorageError>>),
}

impl<T> Reply<T> {
    fn send(self, result: Result<T, StorageError>) {
        // A caller that gave up (dropped its receiver) needs no answer.
        match self {
            Reply::Async(tx) => drop(tx.send(result)),
            Reply::Blocking(tx) => drop(tx.send(result)),
        }
    }
}

/// One change for the writer. Entries are already encoded by the caller.
pub(crate) enum Request {
    Append {
        topic: String,
        chunks: Vec<Chunk>,
        reply: Reply<Range<u64>>,
    },
    Commit {
        appends: Vec<(String, Vec<Chunk>)>,
        offsets: Vec<(String, u64)>,
        follows: Vec<(String, Option<u64>)>,
        state: Option<StateWrites>,
        reply: Reply<Vec<Range<u64>>>,
    },
    CreateTopic {
        name: String,
        config: TopicConfig,
        reply: Reply<()>,
    },
    DeleteTopic {
        name: String,
        reply: Reply<()>,
    },
    Trim {
        now_ms: i64,
        default: Retention,
        reply: Reply<u64>,
    },
    /// A write outside the writer failed with an I/O error: reopen the database.
    Reopen {
        why: String,
    },
}

/// The bytes a create adds to the file at most (its table and metadata rows).
const CREATE_BYTES: u64 = 64 * 1024;

impl Request {
    fn weight(&self) -> usize {
        match self {
            Request::Append { chunks, .. } => messages(chunks),
            Request::Commit { appends, .. } => appends.iter().map(|(_, c)| messages(c)).sum(),
            _ => 1,
        }
    }

    /// About how many bytes the request adds to the database file; 0 for those
    /// that only remove (and are never refused for space).
    fn grows(&self) -> u64 {
        let chunks = |c: &[Chunk]| c.iter().map(|c| c.bytes.len() as u64).sum::<u64>();
        match self {
            Request::Append { chunks: c, .. } => chunks(c).max(1),
            Request::Commit {
                appends,
                offsets,
                state,
                ..
            } => {
                let appended: u64 = appends.iter().map(|(_, c)| chunks(c)).sum();
                let offsets: u64 = offsets.iter().map(|(k, _)| k.len() as u64 + 8).sum();
                let state: u64 = state.as_ref().map_or(0, |s| {
                    s.changes
                        .iter()
                        .map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len)) as u64)
                        .sum()
                });
                (appended + offsets + state).max(1)
            }
            Request::CreateTopic { .. } => CREATE_BYTES,
            Request::DeleteTopic { .. } | Request::Trim { .. } | Request::Reopen { .. } => 0,
        }
    }

    fn fail(self, failure: &Failure) {
        match self {
            Request::Append { reply, .. } => reply.send(Err(failure.error())),
            Request::Commit { reply, .. } => reply.send(Err(failure.error())),
            Request::CreateTopic { reply, .. } | Request::DeleteTopic { reply, .. } => {
                reply.send(Err(failure.error()))
            }
            Request::Trim { reply, .. } => reply.send(Err(failure.error())),
            Request::Reopen { .. } => {}
        }
    }
}

/// Why a group's requests failed, for each of them to be answered with.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The transaction failed; nothing of it was stored.
    Write(String),
    /// Refused for space, or the disk filled up during the write.
    Full {
        dir: PathBuf,
        available: u64,
        reserve: u64,
    },
    /// The database is closed until it can be reopened.
    Unavailable(String),
}

impl Failure {
    fn error(&self) -> StorageError {
        match self {
            Failure::Write(why) => StorageError::WriteFailed(why.clone()),
            Failure::Full {
                dir,
                available,
                reserve,
            } => StorageError::Full {
                dir: dir.clone(),
                available: *available,
                reserve: *reserve,
            },
            Failure::Unavailable(why) => StorageError::Unavailable(why.clone()),
        }
    }
}

/// The free-space rule: the data directory, and the bytes always kept free on its
/// filesystem (`[storage] min_free_bytes`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Space {
    pub(crate) dir: PathBuf,
    pub(crate) reserve: u64,
    /// The size of the smallest write refused since the last one that added data:
    /// the store is writable again once that much fits above the reserve.
    pub(crate) refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Space {
    /// The error for a write refused with `available` bytes free.
    pub(crate) fn full(&self, available: u64) -> StorageError {
        self.full_failure(available).error()
    }

    fn full_failure(&self, available: u64) -> Failure {
        Failure::Full {
            dir: self.dir.clone(),
            available,
            reserve: self.reserve,
        }
    }

    /// Bytes free now; `None` (and a warning) when the filesystem cannot be asked,
    /// in which case writes are not held back.
    fn free(&self) -> Option<u64> {
        match health::free_bytes(&self.dir) {
            Ok(free) => Some(free),
            Err(e) => {
                tracing::warn!(target: "rustmq::storage", dir = %self.dir.display(), error = %e, "cannot ask the filesystem for free space");
                None
            }
        }
    }

    /// Refuses a write of about `bytes` that would leave less than the reserve.
    pub(crate) fn check(&self, bytes: u64) -> Result<(), StorageError> {
        match self.free() {
            Some(free) if free < self.reserve.saturating_add(bytes) => {
                self.note_refused(bytes);
                Err(self.full(free))
            }
            _ => Ok(()),
        }
    }

    fn note_refused(&self, bytes: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .refused
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| {
                Some(if r == 0 { bytes } else { r.min(bytes) })
            });
    }

    fn note_written(&self) {
        self.refused.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// The free space writes need now: the reserve, plus the smallest write refused
    /// since data was last added.
    pub(crate) fn needed(&self) -> u64 {
        self.reserve
            .saturating_add(self.refused.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// `e`, or [`StorageError::Full`] when it is the filesystem running out.
    pub(crate) fn explain(&self, e: StorageError) -> StorageError {
        if matches!(e, StorageError::Database(_)) && health::io_failure(&e) == Some(true) {
            self.full(self.free().unwrap_or(0))
        } else {
            e
        }
    }
}

/// The handle to the writer thread.
pub(crate) struct Writer {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    space: Space,
}

impl Writer {
    pub(crate) fn spawn(
        slot: Arc<Slot>,
        shared: Arc<Shared>,
        auto_create: bool,
        space: Space,
    ) -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel();
        let thread = {
            let space = space.clone();
            std::thread::Builder::new()
                .name("rustmq-storage-writer".into())
                .spawn(move || {
                    let ctx = Env {
                        slot: &slot,
                        shared: &shared,
                        auto_create,
                        space: &space,
                    };
                    run(&ctx, rx)
                })?
        };
        Ok(Writer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            space,
        })
    }

    /// The free-space rule writes are held to.
    pub(crate) fn space(&self) -> &Space {
        &self.space
    }

    pub(crate) fn send(&self, request: Request) -> Result<(), StorageError> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        tx.as_ref()
            .ok_or(StorageError::Closed)?
            .send(request)
            .map_err(|_| StorageError::Closed)
    }

    /// Lets the thread drain what is queued, then waits for it to exit.
    pub(crate) fn close(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if thread.join().is_err() {
                tracing::error!(target: "rustmq::storage", "storage writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

/// What the writer thread works with.
struct Env<'a> {
    slot: &'a Slot,
    shared: &'a Shared,
    auto_create: bool,
    space: &'a Space,
}

impl Env<'_> {
    /// Reopens the database after `why` and reloads the topic table from it: a
    /// commit whose answer was lost to the failure may have landed after all, and
    /// the next offsets must follow what is stored, not what was cached.
    /// True when the database is open again with its topics reloaded.
    fn reopen(&self, why: &str) -> bool {
        if self.slot.reopen(why).is_err() {
            return false;
        }
        let loaded = self.slot.get().and_then(|db| super::load_topics(&db));
        match loaded {
            Ok(topics) => {
                *self
                    .shared
                    .topics
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = topics;
                self.shared.notify();
                true
            }
            Err(e) => {
                tracing::error!(target: "rustmq::storage", error = %e, "reading topics after reopening failed");
                // Closed again: the next request or tick retries.
                let _ = self.slot.reopen(&format!("{why}; {e}"));
                false
            }
        }
    }

    /// Whether a group whose commit reported a failure is in the reopened database
    /// after all (the failure came after the commit was durable): every topic it
    /// changed reads back as it would have left it.
    fn landed(&self, staged: &Staged) -> bool {
        let topics = self.shared.topics.read().unwrap_or_else(|e| e.into_inner());
        !staged.is_empty()
            && staged.iter().all(|(name, meta)| match meta {
                Some(meta) => topics.get(name) == Some(meta),
                None => !topics.contains_key(name),
            })
    }
}

fn run(env: &Env<'_>, rx: mpsc::Receiver<Request>) {
    // `recv` keeps returning queued requests after every sender is gone, so closing
    // drains the queue before the thread exits.
    loop {
        let first = if env.slot.is_closed() {
            match rx.recv_timeout(health::RETRY_REOPEN) {
                Ok(first) => Some(first),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(first) => Some(first),
                Err(_) => break,
            }
        };
        if env.slot.is_closed() {
            let why = env.slot.fault().unwrap_or_default();
            env.reopen(&why);
        }
        let Some(first) = first else {
            continue;
        };
        let mut weight = first.weight();
        let mut group = vec![first];
        while weight < GROUP_MAX_ENTRIES {
            match rx.try_recv() {
                Ok(next) => {
                    weight += next.weight();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        commit_group(env, group);
    }
}

/// A request's answer, held until the transaction's fate is known.
type Pending = Box<dyn FnOnce(Option<&Failure>) + Send>;

/// The group's view of topic metadata: `None` marks a deletion.
type Staged = BTreeMap<String, Option<TopicMeta>>;

/// Answers the requests of `group` that the database cannot take now (closed, or
/// adding data past the reserve) and returns the others.
fn admit(env: &Env<'_>, group: Vec<Request>) -> Vec<Request> {
    let mut reopen = None;
    let group: Vec<Request> = group
        .into_iter()
        .filter_map(|r| match r {
            Request::Reopen { why } => {
                reopen = Some(why);
                None
            }
            r => Some(r),
        })
        .collect();
    if let Some(why) = reopen {
        env.reopen(&why);
    }
    if env.slot.is_closed() {
        let failure = Failure::Unavailable(env.slot.fault().unwrap_or_default());
        group.into_iter().for_each(|r| r.fail(&failure));
        return Vec::new();
    }
    let adds: u64 = group.iter().map(Request::grows).sum();
    if adds == 0 {
        return group;
    }
    match env.space.free() {
        Some(free) if free < env.space.reserve.saturating_add(adds) => {
            let failure = env.space.full_failure(free);
            let (refused, admitted): (Vec<_>, Vec<_>) =
                group.into_iter().partition(|r| r.grows() > 0);
            if let Some(smallest) = refused.iter().map(Request::grows).min() {
                env.space.note_refused(smallest);
            }
            tracing::warn!(target: "rustmq::storage", free, reserve = env.space.reserve, refused = refused.len(), "writes refused: the data directory's filesystem is below its free-space reserve");
            refused.into_iter().for_each(|r| r.fail(&failure));
            admitted
        }
        _ => group,
    }
}

fn commit_group(env: &Env<'_>, group: Vec<Request>) {
    let group = admit(env, group);
    if group.is_empty() {
        return;
    }
    let shared = env.shared;
    let messages = group.iter().map(Request::weight).sum::<usize>();
    let requests = group.len();
    let adds = group.iter().any(|r| r.grows() > 0);
    let mut staged = Staged::new();
    let mut pending: Vec<Pending> = Vec::with_capacity(group.len());
    let result = (|| {
        let db = env.slot.get()?;
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        let mut group = group.into_iter();
        for request in group.by_ref() {
            let ctx = Ctx {
                txn: &txn,
                shared,
                auto_create: env.auto_create,
            };
            if let Err(e) = apply(&ctx, &mut staged, request, &mut pending) {
                let failure = failure_of(env, &e);
                group.for_each(|r| r.fail(&failure));
                return Err(e);
            }
        }
        {
            let mut topics = txn.open_table(TOPICS)?;
            for (name, meta) in &staged {
                match meta {
                    Some(meta) => topics.insert(name.as_str(), meta.encode().as_slice())?,
                    None => topics.remove(name.as_str())?,
                };
            }
        }
        txn.commit()?;
        Ok::<_, StorageError>(())
    })();
    match result {
        Ok(()) => {
            {
                let mut topics = shared.topics.write().unwrap_or_else(|e| e.into_inner());
                for (name, meta) in staged {
                    match meta {
                        Some(meta) => topics.insert(name, meta),
                        None => topics.remove(&name),
                    };
                }
            }
            shared.notify();
            if adds {
                env.space.note_written();
            }
            tracing::trace!(target: "rustmq::storage", requests, messages, "group committed");
            pending.into_iter().for_each(|p| p(None));
        }
        Err(e) => {
            tracing::error!(target: "rustmq::storage", error = %e, requests, "write transaction failed");
            let failure = failure_of(env, &e);
            // After an I/O failure the answers wait for the reopened database: a
            // commit that failed late may be durable after all, and its callers must
            // hear so rather than write it again.
            let reopened = health::io_failure(&e).is_some()
                && !matches!(failure, Failure::Unavailable(_))
                && env.reopen(&format!("a write failed: {e}"));
            if reopened && env.landed(&staged) {
                tracing::warn!(target: "rustmq::storage", requests, "the failed write is in the reopened database: answered as stored");
                pending.into_iter().for_each(|p| p(None));
            } else if health::io_failure(&e).is_some() && !reopened {
                let unknown = Failure::Unavailable(format!(
                    "a write failed ({e}) and the database could not be reopened yet, so whether it was stored is known only once it is: read back before writing it again"
                ));
                pending.into_iter().for_each(|p| p(Some(&unknown)));
            } else {
                pending.into_iter().for_each(|p| p(Some(&failure)));
            }
        }
    }
}

/// How the requests of a group that failed with `e` are answered.
fn failure_of(env: &Env<'_>, e: &StorageError) -> Failure {
    match (e, health::io_failure(e)) {
        (StorageError::Unavailable(why), _) => Failure::Unavailable(why.clone()),
        (_, Some(true)) => env.space.full_failure(env.space.free().unwrap_or(0)),
        // Any other I/O failure: the database is reopened, the caller may retry.
        (_, Some(false)) => Failure::Unavailable(format!("a write failed: {e}")),
        _ => Failure::Write(e.to_string()),
    }
}

struct Ctx<'a> {
    txn: &'a WriteTransaction,
    shared: &'a Shared,
    auto_create: bool,
}

impl Ctx<'_> {
    fn current(&self, staged: &Staged, name: &str) -> Option<TopicMeta> {
        match staged.get(name) {
            Some(meta) => meta.clone(),
            None => self
                .shared
                .topics
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(name)
                .cloned(),
        }
    }

    fn append(
        &self,
        staged: &mut Staged,
        topic: &str,
        chunks: Vec<Chunk>,
        create: bool,
    ) -> Result<Result<Range<u64>, StorageError>, StorageError> {
        let mut meta = match self.current(staged, topic) {
            Some(meta) => meta,
            None if create => TopicMeta::new(TopicConfig::default(), crate::message::now_millis()),
            None => return Ok(Err(StorageError::TopicNotFound(topic.to_string()))),
        };
        let first = meta.end_offset;
        let name = log_table_name(topic);
        let mut log = self
            .txn
            .open_table(TableDefinition::<u64, &[u8]>::new(&name))?;
        for chunk in chunks {
            // Keyed by the chunk's last offset: see `codec`.
            log.insert(meta.end_offset + chunk.count - 1, chunk.bytes.as_slice())?;
            meta.end_offset += chunk.count;
            meta.size_bytes += chunk.entry_bytes;
        }
        let range = first..meta.end_offset;
        staged.insert(topic.to_string(), Some(meta));
        Ok(Ok(range))
    }

    fn trim(
        &self,
        staged: &mut Staged,
        now_ms: i64,
        default: Retention,
    ) -> Result<u64, StorageError> {
        let names: Vec<String> = {
            let cached = self.shared.topics.read().unwrap_or_else(|e| e.into_inner());
            cached.keys().chain(staged.keys()).cloned().collect()
        };
        let mut deleted = 0;
        for name in names {
            let Some(mut meta) = self.current(staged, &name) else {
                continue;
            };
            let limits = meta.config.effective(default);
            if limits.is_unlimited() || meta.start_offset == meta.end_offset {
                continue;
            }
            let oldest_kept =
                now_ms.saturating_sub(i64::try_from(limits.retention_ms).unwrap_or(i64::MAX));
            let table = log_table_name(&name);
            let mut log = self
                .txn
                .open_table(TableDefinition::<u64, &[u8]>::new(&table))?;
            let mut cut = meta.start_offset;
            let mut freed = 0u64;
            // Rows whose every entry falls below the new start: deleted. A row cut in
            // the middle stays until retention passes its last entry; reads start at
            // the topic's start offset, so its trimmed entries are never returned.
            let mut emptied = Vec::new();
            'rows: for row in log.range(meta.start_offset..meta.end_offset)? {
                let (last, row) = row?;
                let last = last.value();
                // An undecodable row is kept: retention must not hide corruption.
                let Ok(entries) = codec::split_chunk(row.value()) else {
                    break;
                };
                let base = codec::first_offset(last, &entries);
                for (offset, entry) in (base..).zip(entries) {
                    if offset < meta.start_offset {
                        continue;
                    }
                    if cut - meta.start_offset >= TRIM_MAX_PER_PASS as u64 {
                        break 'rows;
                    }
                    let too_big = limits.retention_bytes != 0
                        && meta.size_bytes - freed > limits.retention_bytes;
                    let too_old = limits.retention_ms != 0
                        && codec::append_time(entry).is_ok_and(|t| t < oldest_kept);
                    if !(too_big || too_old) {
                        break 'rows;
                    }
                    freed += entry.len() as u64;
                    cut += 1;
                }
                emptied.push(last);
            }
            if cut == meta.start_offset {
                continue;
            }
            for last in emptied {
                log.remove(last)?;
            }
            tracing::debug!(target: "rustmq::storage", topic = %name, from = meta.start_offset, to = cut, "retention trimmed");
            deleted += cut - meta.start_offset;
            meta.start_offset = cut;
            meta.size_bytes -= freed;
            staged.insert(name, Some(meta));
        }
        Ok(deleted)
    }
}

/// How many messages a list of chunks carries.
fn messages(chunks: &[Chunk]) -> usize {
    chunks.iter().map(|c| c.count as usize).sum()
}

/// Applies one request inside the group transaction. `Err` is a database failure
/// that dooms the whole group; a request's own error is queued as its answer.
fn apply(
    ctx: &Ctx<'_>,
    staged: &mut Staged,
    request: Request,
    pending: &mut Vec<Pending>,
) -> Result<(), StorageError> {
    match request {
        Request::Append {
            topic,
            chunks,
            reply,
        } => {
            let result = ctx.append(staged, &topic, chunks, ctx.auto_create);
            settle(result, reply, pending)
        }
        Request::Commit {
            appends,
            offsets,
            follows,
            state,
            reply,
        } => {
            let result = (|| {
                if let Err(e) = check_follows(ctx.txn, &follows)? {
                    return Ok(Err(e));
                }
                let mut ranges = Vec::with_capacity(appends.len());
                for (topic, chunks) in appends {
                    match ctx.append(staged, &topic, chunks, true)? {
                        Ok(range) => ranges.push(range),
                        Err(e) => return Ok(Err(e)),
                    }
                }
                let mut table = ctx.txn.open_table(CONSUMER_OFFSETS)?;
                for (consumer, offset) in &offsets {
                    table.insert(consumer.as_str(), *offset)?;
                }
                if let Some(state) = &state {
                    super::state::apply(ctx.txn, state)?;
                }
                Ok(Ok(ranges))
            })();
            settle(result, reply, pending)
        }
        Request::CreateTopic {
            name,
            config,
            reply,
        } => {
            let result = if ctx.current(staged, &name).is_some() {
                Ok(Err(StorageError::TopicAlreadyExists(name)))
            } else {
                ctx.txn
                    .open_table(TableDefinition::<u64, &[u8]>::new(&log_table_name(&name)))?;
                staged.insert(
                    name,
                    Some(TopicMeta::new(config, crate::message::now_millis())),
                );
                Ok(Ok(()))
            };
            settle(result, reply, pending)
        }
        Request::DeleteTopic { name, reply } => {
            let result = if ctx.current(staged, &name).is_none() {
                Ok(Err(StorageError::TopicNotFound(name)))
            } else {
                ctx.txn
                    .delete_table(TableDefinition::<u64, &[u8]>::new(&log_table_name(&name)))?;
                staged.insert(name, None);
                Ok(Ok(()))
            };
            settle(result, reply, pending)
        }
        Request::Trim {
            now_ms,
            default,
            reply,
        } => {
            let result = ctx.trim(staged, now_ms, default).map(Ok);
            settle(result, reply, pending)
        }
        // Taken out of the group before it is applied (see `admit`).
        Request::Reopen { .. } => Ok(()),
    }
}

/// Whether the stored consumer offsets are those a commit follows (the inner
/// error names the first that is not); checked before the commit writes anything,
/// so a refused commit fails alone.
fn check_follows(
    txn: &WriteTransaction,
    follows: &[(String, Option<u64>)],
) -> Result<Result<(), StorageError>, StorageError> {
    if follows.is_empty() {
        return Ok(Ok(()));
    }
    let table = txn.open_table(CONSUMER_OFFSETS)?;
    for (consumer, expected) in follows {
        let found = table.get(consumer.as_str())?.map(|v| v.value());
        if found != *expected {
            return Ok(Err(StorageError::CommitOutOfOrder {
                consumer: consumer.clone(),
                expected: *expected,
                found,
            }));
        }
    }
    Ok(Ok(()))
}

/// Queues a request's answer; a database failure is both queued (as a failure) and
/// returned so the group aborts.
fn settle<T: Send + 'static>(
    result: Result<Result<T, StorageError>, StorageError>,
    reply: Reply<T>,
    pending: &mut Vec<Pending>,
) -> Result<(), StorageError>
where
    Reply<T>: Send,
{
    match result {
        Ok(answer) => {
            pending.push(Box::new(move |failure| match failure {
                None => reply.send(answer),
                Some(failure) => reply.send(Err(failure.error())),
            }));
            Ok(())
        }
        Err(e) => {
            let why = e.to_string();
            pending.push(Box::new(move |failure| {
                reply.send(Err(
                    failure.map_or_else(|| StorageError::WriteFailed(why), Failure::error)
                ))
            }));
            Err(e)
        }
    }
}
