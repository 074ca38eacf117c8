//! Consumer offsets: for each consumer (a pipeline, by id) the next offset it will
//! read. They are written only inside a pipeline [`super::Commit`], in the same
//! transaction as that step's output, so output and progress never disagree.

use redb::TableDefinition;

use super::{Storage, StorageError};

/// `consumer_offsets`: consumer id → next offset to read.
pub(crate) const CONSUMER_OFFSETS: TableDefinition<&str, u64> =
    TableDefinition::new("consumer_offsets");

impl Storage {
    /// The stored offset of `consumer`, if it ever committed one.
    pub fn consumer_offset(&self, consumer: &str) -> Result<Option<u64>, StorageError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let table = match txn.open_table(CONSUMER_OFFSETS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(table.get(consumer)?.map(|v| v.value()))
    }

    /// Sets `consumer`'s offset outside a pipeline commit: a reset, made while the
    /// pipeline's worker is stopped, so no commit of its can race it.
    pub fn set_consumer_offset(&self, consumer: &str, offset: u64) -> Result<(), StorageError> {
        self.write_txn(0, |txn| {
            txn.open_table(CONSUMER_OFFSETS)?.insert(consumer, offset)?;
            Ok(())
        })
    }

    /// Forgets `consumer`'s offset (when its pipeline is deleted).
    pub fn delete_consumer_offset(&self, consumer: &str) -> Result<(), StorageError> {
        self.write_txn(0, |txn| {
            txn.open_table(CONSUMER_OFFSETS)?.remove(consumer)?;
            Ok(())
        })
    }
}
