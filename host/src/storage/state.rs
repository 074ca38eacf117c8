//! Pipelines' durable keyed state: `(pipeline id, key) → value`. Written only inside
//! a pipeline [`super::Commit`], in the same transaction as that batch's outputs and
//! source offset, so the state always matches the committed outputs; read whole when
//! a pipeline starts, and by the admin API.

use redb::{ReadableTable, TableDefinition};

use super::{Storage, StorageError};

/// `pipeline_state`: (pipeline id, key) → value.
pub(crate) const PIPELINE_STATE: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("pipeline_state");

/// The state changes of one pipeline commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateWrites {
    /// The pipeline whose state changes.
    pub pipeline_id: String,
    /// `(key, new value)`, `None` deleting the key.
    pub changes: Vec<(String, Option<Vec<u8>>)>,
}

/// One page of a pipeline's state (see [`Storage::pipeline_state_page`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatePage {
    /// `(key, value)` in key order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// Whether entries follow the last one.
    pub more: bool,
    /// How many keys the whole state holds.
    pub keys: usize,
    /// The bytes of all its keys and values.
    pub payload_bytes: u64,
}

impl Storage {
    /// The entries of `pipeline_id`'s state after key `after` (all, without it), in
    /// key order: at most `limit` of them and, past the first, at most about
    /// `max_bytes` of keys and values. Counts the whole state on the way, without
    /// holding it.
    pub fn pipeline_state_page(
        &self,
        pipeline_id: &str,
        after: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Result<StatePage, StorageError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = match txn.open_table(PIPELINE_STATE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(StatePage::default()),
            Err(e) => return Err(e.into()),
        };
        let mut page = StatePage::default();
        let mut page_bytes = 0usize;
        for row in table.range((pipeline_id, "")..)? {
            let (key, value) = row?;
            let (owner, key) = key.value();
            if owner != pipeline_id {
                break;
            }
            let value = value.value();
            page.keys += 1;
            page.payload_bytes += (key.len() + value.len()) as u64;
            if after.is_some_and(|after| key <= after) {
                continue;
            }
            let size = key.len() + value.len();
            let full = page.entries.len() >= limit
                || (!page.entries.is_empty() && page_bytes + size > max_bytes);
            if full {
                page.more = true;
            } else {
                page_bytes += size;
                page.entries.push((key.to_string(), value.to_vec()));
            }
        }
        Ok(page)
    }

    /// Every `(key, value)` of `pipeline_id`'s state, in key order.
    pub fn pipeline_state(
        &self,
        pipeline_id: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = match txn.open_table(PIPELINE_STATE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut entries = Vec::new();
        for row in table.range((pipeline_id, "")..)? {
            let (key, value) = row?;
            let (owner, key) = key.value();
            if owner != pipeline_id {
                break;
            }
            entries.push((key.to_string(), value.value().to_vec()));
        }
        Ok(entries)
    }

    /// Deletes all of `pipeline_id`'s state (a reset, or its pipeline was deleted);
    /// returns how many keys there were.
    pub fn delete_pipeline_state(&self, pipeline_id: &str) -> Result<usize, StorageError> {
        self.write_txn(0, |txn| {
            let mut table = txn.open_table(PIPELINE_STATE)?;
            // Only the keys are held, never the values.
            let mut keys = Vec::new();
            for row in table.range((pipeline_id, "")..)? {
                let (key, _) = row?;
                let (owner, key) = key.value();
                if owner != pipeline_id {
                    break;
                }
                keys.push(key.to_string());
            }
            for key in &keys {
                table.remove((pipeline_id, key.as_str()))?;
            }
            Ok(keys.len())
        })
    }
}

/// Applies one commit's state changes inside the writer's transaction.
pub(crate) fn apply(
    txn: &redb::WriteTransaction,
    writes: &StateWrites,
) -> Result<(), StorageError> {
    if writes.changes.is_empty() {
        return Ok(());
    }
    let mut table = txn.open_table(PIPELINE_STATE)?;
    for (key, change) in &writes.changes {
        match change {
            Some(value) => {
                table.insert(
                    (writes.pipeline_id.as_str(), key.as_str()),
                    value.as_slice(),
                )?;
            }
            None => {
                table.remove((writes.pipeline_id.as_str(), key.as_str()))?;
            }
        }
    }
    Ok(())
}
