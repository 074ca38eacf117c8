//! [`StorageError`]: every way a storage call can fail, each saying what to fix.

use std::path::PathBuf;

use super::{DecodeError, EncodeError};

/// Everything that can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The data directory could not be created or opened.
    #[error("cannot use data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened (locked by another broker, corrupt, ...).
    #[error("cannot open database {path}: {reason}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A topic name broke the naming rule.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The name (cut to a sane length).
        name: String,
        /// Which part of the rule it broke.
        reason: &'static str,
    },
    /// The topic does not exist (and was not auto-created).
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),
    /// `create_topic` on an existing name.
    #[error("topic {0:?} already exists")]
    TopicAlreadyExists(String),
    /// A read started past the end of the log.
    #[error(
        "offset {offset} is out of range for topic {topic:?} (stored offsets are {start}..{end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The requested offset.
        offset: u64,
        /// The first stored offset.
        start: u64,
        /// One past the last offset.
        end: u64,
    },
    /// A message could not be encoded.
    #[error("message cannot be stored: {0}")]
    Encode(#[from] EncodeError),
    /// A stored entry could not be decoded.
    #[error("stored message {topic}@{offset} is corrupt: {source}")]
    Corrupt {
        /// The topic.
        topic: String,
        /// The entry's offset.
        offset: u64,
        /// What was wrong.
        source: DecodeError,
    },
    /// A topic's metadata row could not be decoded.
    #[error("metadata of topic {topic:?} is corrupt: {reason}")]
    CorruptMeta {
        /// The topic.
        topic: String,
        /// What was wrong.
        reason: String,
    },
    /// The transaction carrying this write failed; nothing of it was stored.
    #[error("write failed, nothing was stored: {0}")]
    WriteFailed(String),
    /// The write would leave less free space on the data directory's filesystem
    /// than the reserve (or the filesystem ran out); nothing of it was stored.
    #[error("the filesystem of the data directory {dir} is full ({available} bytes free, {reserve} kept in reserve by storage.min_free_bytes): nothing was stored. Free space on that filesystem (or move the data directory to a larger one); writes resume by themselves, with no restart")]
    Full {
        /// The data directory.
        dir: PathBuf,
        /// Bytes free when the write was refused.
        available: u64,
        /// `[storage] min_free_bytes`.
        reserve: u64,
    },
    /// The database is closed after a failed write and is being reopened.
    #[error(
        "storage is unavailable: {0}; the broker reopens it by itself once the cause is fixed"
    )]
    Unavailable(String),
    /// A commit named offsets it follows ([`super::Commit::follows`]) that are not
    /// the stored ones: the commit before it did not land.
    #[error("commit refused, nothing was stored: it follows offset {expected:?} of consumer {consumer:?}, but the stored offset is {found:?} (the commit before it did not land)")]
    CommitOutOfOrder {
        /// The consumer.
        consumer: String,
        /// The offset the commit follows (`None`: none stored).
        expected: Option<u64>,
        /// The stored offset.
        found: Option<u64>,
    },
    /// The store has been closed.
    #[error("storage is closed")]
    Closed,
    /// The database failed (boxed: redb's error is large and this one is rare).
    #[error("database error: {0}")]
    Database(Box<redb::Error>),
}

macro_rules! redb_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StorageError {
            fn from(e: $t) -> Self {
                StorageError::Database(Box::new(e.into()))
            }
        }
    )*};
}
redb_error_from!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
