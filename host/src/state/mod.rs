//! A pipeline's durable keyed state (the `rustmq:etl/state@1.1.0` interface), as the
//! worker and the guest see it between two commits.
//!
//! The whole state of a pipeline is held in memory ([`PipelineState`]): it is
//! bounded by the pipeline's quota, loaded from storage when the pipeline starts,
//! and every read is a map lookup. What a guest changes is kept in three layers:
//! - the **call** layer: changes made by the call in progress. A call whose message
//!   fails is discarded ([`PipelineState::discard_call`]), so a retried message sees
//!   none of its failed attempt's writes;
//! - the **entries**: what every accepted call has made of the state so far,
//!   committed or not (reads see the pipeline's own earlier changes at once);
//! - the **changes** of the batch being built: taken by the worker
//!   ([`PipelineState::take_changes`]) and committed in the same storage
//!   transaction as the batch's outputs and source offset. If that commit fails the
//!   worker stops, and the next start loads the state from storage again: the state
//!   is always exactly what the committed outputs imply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Longest state key, in bytes. Keys are ids (a message key, a user id); the cap
/// bounds what a guest can make the host hash and store per entry.
pub const MAX_STATE_KEY_BYTES: usize = 1024;

/// Largest state value, in bytes: one guest call copies at most this much into the
/// host per `set`.
pub const MAX_STATE_VALUE_BYTES: usize = 1024 * 1024;

/// A pipeline's state quota unless `[etl] state_quota_bytes` says otherwise: keys
/// plus values plus [`ENTRY_OVERHEAD_BYTES`] per key, in bytes. The whole state is
/// held in memory while the pipeline runs.
pub const DEFAULT_STATE_QUOTA_BYTES: u64 = 64 * 1024 * 1024;

/// What one key costs the host beyond its key and value bytes, charged against the
/// quota so that the quota bounds memory, not only payload: the map slot (two
/// 24-byte headers, its control byte, at most half the slots empty after a growth)
/// and the two heap blocks of key and value (each rounded up by the allocator, 32
/// bytes at least). Millions of 8-byte keys measured about 185 bytes each in all;
/// charging only the 16 payload bytes let a 32 MB quota hold 740 MB.
pub const ENTRY_OVERHEAD_BYTES: u64 = 160;

/// One change to a key: the new value, or `None` for a delete.
pub type StateChange = (String, Option<Vec<u8>>);

/// Why a state call was refused (the WIT `state-error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The key is longer than [`MAX_STATE_KEY_BYTES`].
    #[error("a state key of {len} bytes is longer than the limit of {max} bytes")]
    KeyTooLong {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is larger than [`MAX_STATE_VALUE_BYTES`].
    #[error("a state value of {len} bytes is larger than the limit of {max} bytes")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The change would grow the pipeline's state past its quota.
    #[error("the pipeline's state would grow to {would_be} bytes, past its quota of {quota} bytes; delete keys in the module, reset the state (DELETE /api/v1/etl/pipelines/ID/state) or raise [etl] state_quota_bytes")]
    QuotaExceeded {
        /// Keys plus values after the change.
        would_be: u64,
        /// The quota.
        quota: u64,
    },
    /// This pipeline has no durable state.
    #[error("{0}")]
    Unavailable(String),
}

/// Bytes an entry costs against the quota.
fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD_BYTES
}

/// Bytes a deletion waiting for its commit costs against the quota (its key).
fn tombstone_cost(key: &str) -> u64 {
    cost(key, &[])
}

/// The state of one pipeline; see the module docs.
#[derive(Debug)]
pub struct PipelineState {
    entries: HashMap<String, Vec<u8>>,
    /// What `entries` and the deletions in `changes` cost (see [`cost`]).
    bytes: u64,
    quota: u64,
    /// The call in progress: key -> new value (`None`: deleted).
    call: HashMap<String, Option<Vec<u8>>>,
    /// What `call` adds to `bytes` once accepted (may be negative).
    call_delta: i64,
    /// The first refusal of the call in progress.
    refused: Option<StateError>,
    /// Accepted changes not yet taken for a commit.
    changes: HashMap<String, Option<Vec<u8>>>,
}

impl PipelineState {
    /// A state holding `entries` (as loaded from storage), limited to `quota` bytes.
    pub fn new(entries: impl IntoIterator<Item = (String, Vec<u8>)>, quota: u64) -> Self {
        let entries: HashMap<String, Vec<u8>> = entries.into_iter().collect();
        let bytes = entries.iter().map(|(k, v)| cost(k, v)).sum();
        PipelineState {
            entries,
            bytes,
            quota,
            call: HashMap::new(),
            call_delta: 0,
            refused: None,
            changes: HashMap::new(),
        }
    }

    /// What the accepted state costs against the quota, in bytes: keys, values and
    /// [`ENTRY_OVERHEAD_BYTES`] per key, and the keys of deletions not yet committed.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How many keys the accepted state holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the accepted state is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key` as the call in progress sees it.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        check_key(key)?;
        Ok(match self.call.get(key) {
            Some(change) => change.clone(),
            None => self.entries.get(key).cloned(),
        })
    }

    /// Sets `key` for the call in progress. A refusal is remembered: the worker
    /// fails the message (see [`Self::refusal`]).
    pub fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        let checked = check_key(&key).and_then(|()| {
            if value.len() > MAX_STATE_VALUE_BYTES {
                return Err(StateError::ValueTooLarge {
                    len: value.len(),
                    max: MAX_STATE_VALUE_BYTES,
                });
            }
            let delta = self.call_delta + cost(&key, &value) as i64 - self.current_cost(&key);
            let would_be = (self.bytes as i64 + delta).max(0) as u64;
            if would_be > self.quota {
                return Err(StateError::QuotaExceeded {
                    would_be,
                    quota: self.quota,
                });
            }
            Ok(delta)
        });
        match checked {
            Ok(delta) => {
                self.call_delta = delta;
                self.call.insert(key, Some(value));
                Ok(())
            }
            Err(e) => Err(self.refuse(e)),
        }
    }

    /// Deletes `key` for the call in progress. Deleting a key the accepted state
    /// does not hold changes nothing and holds nothing, however often a guest does
    /// it; deleting one it holds leaves a deletion for the commit, which costs less
    /// than the entry did. So a delete never grows the state and is never refused
    /// for the quota.
    pub fn delete(&mut self, key: &str) -> Result<(), StateError> {
        if let Err(e) = check_key(key) {
            return Err(self.refuse(e));
        }
        let before = self.current_cost(key);
        if self.entries.contains_key(key) {
            self.call.insert(key.to_string(), None);
        } else {
            // Undoes a `set` of this call, if any: back to the accepted state.
            self.call.remove(key);
        }
        self.call_delta += self.current_cost(key) - before;
        Ok(())
    }

    /// What `key` costs as the call in progress sees it.
    fn current_cost(&self, key: &str) -> i64 {
        let cost = match self.call.get(key) {
            Some(Some(value)) => cost(key, value),
            Some(None) => tombstone_cost(key),
            None => self.accepted_cost(key),
        };
        cost as i64
    }

    /// What `key` costs in the accepted state: its entry, or its deletion waiting for
    /// the commit.
    fn accepted_cost(&self, key: &str) -> u64 {
        match (self.entries.get(key), self.changes.get(key)) {
            (Some(value), _) => cost(key, value),
            (None, Some(None)) => tombstone_cost(key),
            (None, _) => 0,
        }
    }

    fn refuse(&mut self, e: StateError) -> StateError {
        self.refused.get_or_insert_with(|| e.clone());
        e
    }

    /// The first change the call in progress was refused, if any.
    pub fn refusal(&self) -> Option<&StateError> {
        self.refused.as_ref()
    }

    /// Whether the call in progress changed anything.
    pub fn call_changed(&self) -> bool {
        !self.call.is_empty()
    }

    /// Keeps the call in progress's changes: they join the batch being built.
    pub fn accept_call(&mut self) {
        self.refused = None;
        self.bytes = (self.bytes as i64 + self.call_delta).max(0) as u64;
        self.call_delta = 0;
        for (key, change) in self.call.drain() {
            match &change {
                Some(value) => {
                    self.entries.insert(key.clone(), value.clone());
                }
                None => {
                    self.entries.remove(&key);
                }
            }
            self.changes.insert(key, change);
        }
    }

    /// Forgets the call in progress's changes (its message failed).
    pub fn discard_call(&mut self) {
        self.refused = None;
        self.call_delta = 0;
        self.call.clear();
    }

    /// The accepted changes since the last take, for the batch's commit. The
    /// deletions among them stop counting against the quota.
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let changes: Vec<StateChange> = self.changes.drain().collect();
        let tombstones: u64 = changes
            .iter()
            .filter(|(_, change)| change.is_none())
            .map(|(key, _)| tombstone_cost(key))
            .sum();
        self.bytes = self.bytes.saturating_sub(tombstones);
        changes
    }

    /// A copy of the accepted state, sorted by key.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<_> = self
            .entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.len() > MAX_STATE_KEY_BYTES {
        return Err(StateError::KeyTooLong {
            len: key.len(),
            max: MAX_STATE_KEY_BYTES,
        });
    }
    Ok(())
}

/// A pipeline's state, shared by its worker and the guest instances it calls. An
/// unbound handle (the default) answers every call with
/// [`StateError::Unavailable`].
#[derive(Debug, Clone, Default)]
pub struct SharedState {
    inner: Option<Arc<Mutex<PipelineState>>>,
    /// Why there is no state, when there is none.
    reason: Option<Arc<str>>,
    /// The prefix of a chain stage's keys (see [`SharedState::scoped`]).
    scope: Option<Arc<str>>,
}

impl SharedState {
    /// A handle on `state`.
    pub fn new(state: PipelineState) -> Self {
        SharedState {
            inner: Some(Arc::new(Mutex::new(state))),
            reason: None,
            scope: None,
        }
    }

    /// A handle whose every call is refused with `reason`.
    pub fn unavailable(reason: &str) -> Self {
        SharedState {
            inner: None,
            reason: Some(Arc::from(reason)),
            scope: None,
        }
    }

    /// Locks the state, or says why there is none.
    pub fn lock(&self) -> Result<MutexGuard<'_, PipelineState>, StateError> {
        match &self.inner {
            Some(state) => Ok(state.lock().unwrap_or_else(|p| p.into_inner())),
            None => Err(StateError::Unavailable(self.reason.as_deref().map_or_else(
                || "durable state is not available here".to_string(),
                str::to_string,
            ))),
        }
    }

    /// The same state as stage `stage` of a chain sees it: its keys are stored
    /// under `\u{1f}<stage>\u{1f}<key>`, so stages never read or overwrite each
    /// other's. Every call is committed with the rest of the chain's batch.
    pub fn scoped(&self, stage: usize) -> SharedState {
        SharedState {
            scope: Some(Arc::from(format!("\u{1f}{stage}\u{1f}"))),
            ..self.clone()
        }
    }

    fn key<'a>(&self, key: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.scope {
            Some(prefix) => std::borrow::Cow::Owned(format!("{prefix}{key}")),
            None => std::borrow::Cow::Borrowed(key),
        }
    }

    /// A guest's `get`, in this handle's scope.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        self.lock()?.get(&self.key(key))
    }

    /// A guest's `set`, in this handle's scope.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), StateError> {
        let key = match &self.scope {
            Some(prefix) => format!("{prefix}{key}"),
            None => key,
        };
        self.lock()?.set(key, value)
    }

    /// A guest's `delete`, in this handle's scope.
    pub fn delete(&self, key: &str) -> Result<(), StateError> {
        self.lock()?.delete(&self.key(key))
    }

    /// Whether there is a state behind the handle.
    pub fn is_available(&self) -> bool {
        self.inner.is_some()
    }

    /// Runs `f` on the state, if there is one.
    pub fn with<T>(&self, f: impl FnOnce(&mut PipelineState) -> T) -> Option<T> {
        self.inner
            .as_ref()
            .map(|s| f(&mut s.lock().unwrap_or_else(|p| p.into_inner())))
    }
}

/// One key of a pipeline's state as the admin API shows it: the value as text
/// when it is UTF-8, else in base64.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StateEntry {
    /// The key.
    pub key: String,
    /// The value, when it is valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The value in standard base64, when it is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_base64: Option<String>,
}

impl StateEntry {
    /// The entry for `(key, value)`.
    pub fn new(key: String, value: Vec<u8>) -> Self {
        match String::from_utf8(value) {
            Ok(text) => StateEntry {
                key,
                value: Some(text),
                value_base64: None,
            },
            Err(e) => {
                use base64::Engine;
                StateEntry {
                    key,
                    value: None,
                    value_base64: Some(
                        base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                    ),
                }
            }
        }
    }
}

/// Entries of one page of `GET /api/v1/etl/pipelines/{id}/state` unless `limit`
/// says otherwise.
pub const DEFAULT_STATE_PAGE_KEYS: usize = 1000;

/// Most entries one page may hold (`limit`).
pub const MAX_STATE_PAGE_KEYS: usize = 10_000;

/// Most bytes of keys and values one page holds (past its first entry): a state of
/// millions of keys is listed page by page, never in one body.
pub const MAX_STATE_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// `GET /api/v1/etl/pipelines/{id}/state`: one page of the committed state of a
/// pipeline, with the size of the whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StateView {
    /// The pipeline.
    pub pipeline_id: String,
    /// How many keys the whole state holds.
    pub keys: usize,
    /// What the quota counts for the whole state, in bytes: keys, values and
    /// [`ENTRY_OVERHEAD_BYTES`] per key.
    pub bytes: u64,
    /// This page's entries, sorted by key.
    pub entries: Vec<StateEntry>,
    /// When more entries follow: pass it as `after` for the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

impl StateView {
    /// The view of one page of `pipeline_id`'s state.
    pub fn new(pipeline_id: String, page: crate::storage::StatePage) -> Self {
        let next_after = if page.more {
            page.entries.last().map(|(k, _)| k.clone())
        } else {
            None
        };
        StateView {
            pipeline_id,
            keys: page.keys,
            bytes: page.payload_bytes + page.keys as u64 * ENTRY_OVERHEAD_BYTES,
            entries: page
                .entries
                .into_iter()
                .map(|(k, v)| StateEntry::new(k, v))
                .collect(),
            next_after,
        }
    }
}

/// `DELETE /api/v1/etl/pipelines/{id}/state`: what a reset removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StateReset {
    /// The pipeline.
    pub pipeline_id: String,
    /// How many keys were deleted.
    pub deleted_keys: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discarded_call_leaves_no_trace() {
        let mut s = PipelineState::new([("a".to_string(), b"1".to_vec())], 1024);
        s.set("a".into(), b"2".to_vec()).unwrap();
        s.set("b".into(), b"x".to_vec()).unwrap();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"2"[..]));
        s.discard_call();
        assert_eq!(s.get("a").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get("b").unwrap(), None);
        assert!(s.take_changes().is_empty());
        assert_eq!(s.bytes(), cost("a", b"1"));
    }

    #[test]
    fn accepted_calls_join_the_changes_of_the_batch() {
        let mut s = PipelineState::new([("a".to_string(), b"1".to_vec())], 1024);
        s.set("b".into(), b"22".to_vec()).unwrap();
        s.accept_call();
        s.delete("a").unwrap();
        s.accept_call();
        let mut changes = s.take_changes();
        changes.sort();
        assert_eq!(
            changes,
            vec![
                ("a".to_string(), None),
                ("b".to_string(), Some(b"22".to_vec()))
            ]
        );
        assert_eq!(s.bytes(), cost("b", b"22"));
        assert!(s.take_changes().is_empty());
    }

    #[test]
    fn the_quota_counts_keys_values_and_the_cost_of_each_key_and_a_refusal_is_remembered() {
        let e = ENTRY_OVERHEAD_BYTES;
        let mut s = PipelineState::new([], 10 + e);
        s.set("k".into(), vec![0; 9]).unwrap();
        // Replacing a value is charged the difference only.
        s.set("k".into(), vec![0; 8]).unwrap();
        let err = s.set("j".into(), vec![0; 2]).unwrap_err();
        assert_eq!(
            err,
            StateError::QuotaExceeded {
                would_be: 12 + 2 * e,
                quota: 10 + e
            }
        );
        assert_eq!(s.refusal(), Some(&err));
        s.accept_call();
        assert_eq!(s.refusal(), None);
        assert_eq!(s.bytes(), 9 + e);
    }

    #[test]
    fn many_small_keys_are_charged_what_they_cost_the_host() {
        // 32 MB of quota held 4 M keys of 8 bytes when only payload was charged.
        let quota = 32 << 20;
        let mut s = PipelineState::new([], quota);
        let mut n = 0u64;
        while s.set(format!("{n:08}"), n.to_le_bytes().to_vec()).is_ok() {
            n += 1;
        }
        assert_eq!(n, quota / (16 + ENTRY_OVERHEAD_BYTES));
    }

    #[test]
    fn deleting_missing_keys_holds_nothing() {
        let mut s = PipelineState::new([("a".to_string(), b"1".to_vec())], 1024);
        for i in 0..100_000 {
            s.delete(&format!("missing-{i}")).unwrap();
        }
        // A key set and deleted in the same call leaves nothing either.
        s.set("b".into(), b"2".to_vec()).unwrap();
        s.delete("b").unwrap();
        assert!(s.call.is_empty());
        assert_eq!(s.call_delta, 0);
        s.accept_call();
        assert!(s.take_changes().is_empty());
        assert_eq!(s.bytes(), cost("a", b"1"));
    }

    #[test]
    fn deletions_waiting_for_the_commit_count_against_the_quota() {
        // Set and delete new keys call after call: each deletion is kept for the
        // commit, so the quota stops the churn before the commit takes them.
        let quota = 100 * ENTRY_OVERHEAD_BYTES;
        let mut s = PipelineState::new([], quota);
        let mut refused = false;
        for i in 0..1_000 {
            let key = format!("k{i}");
            if s.set(key.clone(), vec![]).is_err() {
                refused = true;
                break;
            }
            s.accept_call();
            s.delete(&key).unwrap();
            s.accept_call();
        }
        assert!(refused, "a batch held {} deletions", s.changes.len());
        assert!(s.bytes() <= quota);
        assert!(s.changes.len() as u64 <= quota / ENTRY_OVERHEAD_BYTES);
        // The commit takes them, and the quota is free again.
        s.take_changes();
        assert_eq!(s.bytes(), 0);
        s.set("again".into(), vec![]).unwrap();
    }

    #[test]
    fn oversized_keys_and_values_are_refused() {
        let mut s = PipelineState::new([], u64::MAX);
        assert!(matches!(
            s.set("k".repeat(MAX_STATE_KEY_BYTES + 1), vec![]),
            Err(StateError::KeyTooLong { .. })
        ));
        assert!(matches!(
            s.set("k".into(), vec![0; MAX_STATE_VALUE_BYTES + 1]),
            Err(StateError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn an_unbound_handle_says_why() {
        let h = SharedState::unavailable("no state on Kafka pipelines");
        let err = h.lock().unwrap_err();
        assert_eq!(err.to_string(), "no state on Kafka pipelines");
    }
}
