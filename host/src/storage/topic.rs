//! Topics: the naming rule, per-topic settings, the metadata record kept for each
//! topic and the redb tables a topic lives in.
//!
//! A topic is one redb table `log:<name>` mapping the offset of a chunk's last entry
//! to the chunk (consecutive encoded entries, see `codec`; offsets are dense from 0),
//! plus a [`TopicMeta`] row in the `topics` table that
//! records the first and next offsets, the stored size and the retention overrides.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::StorageError;

/// The longest topic name accepted (Kafka's limit, so names carry over).
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// `topics`: topic name → JSON [`TopicMeta`].
pub(crate) const TOPICS: TableDefinition<&str, &[u8]> = TableDefinition::new("topics");

/// The name of the redb table holding `topic`'s log.
pub(crate) fn log_table_name(topic: &str) -> String {
    format!("log:{topic}")
}

/// Checks a topic name: 1 to [`MAX_TOPIC_NAME_LEN`] characters from `[A-Za-z0-9._-]`,
/// and not `.` or `..` (so a name is always safe as a path segment or URL segment).
pub fn validate_topic_name(name: &str) -> Result<(), StorageError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_TOPIC_NAME_LEN {
        Some("it is longer than 249 characters")
    } else if name == "." || name == ".." {
        Some("\".\" and \"..\" are reserved")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        Some("only ASCII letters, digits, '.', '_' and '-' are allowed")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(StorageError::InvalidTopicName {
            name: name.chars().take(MAX_TOPIC_NAME_LEN + 1).collect(),
            reason,
        }),
    }
}

/// Retention limits. `0` in either field means "no limit".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Retention {
    /// Messages appended longer ago than this many milliseconds are deleted.
    pub retention_ms: u64,
    /// The oldest messages are deleted while the topic stores more than this many bytes.
    pub retention_bytes: u64,
}

impl Retention {
    /// True when neither limit is set.
    pub fn is_unlimited(&self) -> bool {
        self.retention_ms == 0 && self.retention_bytes == 0
    }
}

/// Settings given when a topic is created; `None` takes the broker's default from
/// `[storage]` (resolved when retention runs, so changing the default applies to
/// existing topics that did not override it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicConfig {
    /// Age limit in ms (`0` = unlimited), or the default.
    #[serde(default)]
    pub retention_ms: Option<u64>,
    /// Size limit in bytes (`0` = unlimited), or the default.
    #[serde(default)]
    pub retention_bytes: Option<u64>,
}

impl TopicConfig {
    /// The limits in force given the broker default.
    pub fn effective(&self, default: Retention) -> Retention {
        Retention {
            retention_ms: self.retention_ms.unwrap_or(default.retention_ms),
            retention_bytes: self.retention_bytes.unwrap_or(default.retention_bytes),
        }
    }
}

/// What the store keeps about a topic besides its log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicMeta {
    /// The first offset still stored (advanced by retention).
    pub start_offset: u64,
    /// The offset the next message will get.
    pub end_offset: u64,
    /// Sum of the encoded sizes of the stored entries.
    pub size_bytes: u64,
    /// The overrides given at creation.
    pub config: TopicConfig,
    /// When the topic was created, ms since the epoch.
    pub created_ms: i64,
    /// This incarnation of the name: a topic deleted and created again gets a new
    /// one, so that a reader can tell its offsets started over. 0 for topics created
    /// before ids existed.
    #[serde(default)]
    pub id: u64,
}

/// A topic id never handed out before in this process and, being the creation time
/// in nanoseconds, none used by an earlier run either.
fn fresh_topic_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let id = now.max(last + 1);
        match LAST.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return id,
            Err(seen) => last = seen,
        }
    }
}

impl TopicMeta {
    pub(crate) fn new(config: TopicConfig, now_ms: i64) -> Self {
        TopicMeta {
            start_offset: 0,
            end_offset: 0,
            size_bytes: 0,
            config,
            created_ms: now_ms,
            id: fresh_topic_id(),
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        // Serialising a struct of integers to JSON cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(topic: &str, bytes: &[u8]) -> Result<Self, StorageError> {
        serde_json::from_slice(bytes).map_err(|e| StorageError::CorruptMeta {
            topic: topic.to_string(),
            reason: e.to_string(),
        })
    }

    pub(crate) fn info(&self, name: &str, default: Retention) -> TopicInfo {
        TopicInfo {
            name: name.to_string(),
            start_offset: self.start_offset,
            end_offset: self.end_offset,
            message_count: self.end_offset - self.start_offset,
            size_bytes: self.size_bytes,
            retention: self.config.effective(default),
            created_ms: self.created_ms,
            topic_id: self.id,
        }
    }
}

/// A topic as callers see it (and as the API returns it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// The first offset still stored.
    pub start_offset: u64,
    /// The offset the next message will get (one past the last).
    pub end_offset: u64,
    /// `end_offset - start_offset`.
    pub message_count: u64,
    /// Bytes the stored entries occupy, encoded.
    pub size_bytes: u64,
    /// Retention limits in force.
    pub retention: Retention,
    /// When the topic was created, ms since the epoch.
    pub created_ms: i64,
    /// This incarnation of the name (see `TopicMeta::id`); 0 for topics from before
    /// ids existed.
    #[serde(default)]
    pub topic_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_documented_rule() {
        for ok in ["raw-events", "a", "A.b_c-9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }
}
