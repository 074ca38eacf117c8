//! Pipelines' durable keyed state: `(pipeline id, key) → value`. Written only inside
//! a pipeline [`super::Commit`], in the same transaction as that batch's outputs and
//! source offset, so the state always matches the committed outputs; read whole when
//! a pipeline starts, and by the admin API.

use redb::{Durability, TableDefinition};

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

impl Storage {
    /// Every `(key, value)` of `pipeline_id`'s state, in key order.
    pub fn pipeline_state(
        &self,
        pipeline_id: &str,
    ) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let txn = self.db().begin_read()?;
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
        let keys: Vec<String> = self
            .pipeline_state(pipeline_id)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let mut txn = self.db().begin_write()?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn.open_table(PIPELINE_STATE)?;
            for key in &keys {
                table.remove((pipeline_id, key.as_str()))?;
            }
        }
        txn.commit()?;
        Ok(keys.len())
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
