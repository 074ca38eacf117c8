//! Key/value tables for the module store and pipeline definitions. Values are
//! opaque bytes (the callers write JSON); each call is its own durable transaction.
//! These tables never touch topic data, so they bypass the group-commit writer
//! (redb still serialises them with it).

use redb::{ReadableTable, TableDefinition};

use super::{Storage, StorageError};

/// Which metadata table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaTable {
    /// Uploaded modules, by module id.
    Modules,
    /// Pipeline definitions, by pipeline id.
    Pipelines,
    /// Counters that must never go back, such as the last pipeline id handed out.
    Counters,
}

impl MetaTable {
    fn definition(self) -> TableDefinition<'static, &'static str, &'static [u8]> {
        match self {
            MetaTable::Modules => TableDefinition::new("meta:modules"),
            MetaTable::Pipelines => TableDefinition::new("meta:pipelines"),
            MetaTable::Counters => TableDefinition::new("meta:counters"),
        }
    }
}

impl Storage {
    /// Stores `value` under `key`, replacing any earlier value.
    pub fn meta_put(&self, table: MetaTable, key: &str, value: &[u8]) -> Result<(), StorageError> {
        let grows = (key.len() + value.len()) as u64;
        self.write_txn(grows, |txn| {
            txn.open_table(table.definition())?.insert(key, value)?;
            Ok(())
        })
    }

    /// The value under `key`.
    pub fn meta_get(&self, table: MetaTable, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        match txn.open_table(table.definition()) {
            Ok(t) => Ok(t.get(key)?.map(|v| v.value().to_vec())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every `(key, value)`, in key order.
    pub fn meta_list(&self, table: MetaTable) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let t = match txn.open_table(table.definition()) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in t.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Deletes `key`; true if it existed.
    pub fn meta_delete(&self, table: MetaTable, key: &str) -> Result<bool, StorageError> {
        self.write_txn(0, |txn| {
            Ok(txn.open_table(table.definition())?.remove(key)?.is_some())
        })
    }
}
