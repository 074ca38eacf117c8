//! Finding an offset in a topic by position or by time: where a pipeline reset
//! (`POST /api/v1/etl/pipelines/{id}/reset`) moves a pipeline's committed position.

use redb::TableDefinition;

use super::{codec, topic, topic_meta, validate_topic_name, Storage, StorageError};

/// A position in a topic, by what a caller knows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// The first offset still stored.
    Earliest,
    /// The end: only messages appended from now on.
    Latest,
    /// That offset (from the first stored one to the end).
    Offset(u64),
    /// The first message appended at or after this time (ms since the epoch); the end
    /// when none was.
    AppendedAt(i64),
}

impl Storage {
    /// The offset `seek` names in `topic`. An offset outside the stored range is
    /// refused with [`StorageError::OffsetOutOfRange`], saying the range.
    ///
    /// A time is found by bisecting the offsets by append time: the broker stamps
    /// each message as it appends it, so append times never decrease along the log
    /// (a message's own `timestamp` is its producer's and need not be ordered).
    pub fn seek(&self, topic: &str, seek: Seek) -> Result<u64, StorageError> {
        validate_topic_name(topic)?;
        let db = self.db()?;
        let txn = db.begin_read()?;
        let meta = topic_meta(&txn, topic)?;
        let at_ms = match seek {
            Seek::Earliest => return Ok(meta.start_offset),
            Seek::Latest => return Ok(meta.end_offset),
            Seek::Offset(offset) if (meta.start_offset..=meta.end_offset).contains(&offset) => {
                return Ok(offset)
            }
            Seek::Offset(offset) => {
                return Err(StorageError::OffsetOutOfRange {
                    topic: topic.to_string(),
                    offset,
                    start: meta.start_offset,
                    end: meta.end_offset,
                })
            }
            Seek::AppendedAt(at_ms) => at_ms,
        };
        let name = topic::log_table_name(topic);
        let log = txn.open_table(TableDefinition::<u64, &[u8]>::new(&name))?;
        let corrupt = |offset, source| StorageError::Corrupt {
            topic: topic.to_string(),
            offset,
            source,
        };
        // The append time of the message at `offset` (stored: start <= offset < end).
        let appended = |offset: u64| -> Result<i64, StorageError> {
            // Rows are keyed by their last offset: the first at or after `offset` holds it.
            let (last, row) = log.range(offset..)?.next().ok_or(StorageError::Corrupt {
                topic: topic.to_string(),
                offset,
                source: codec::DecodeError::Truncated,
            })??;
            let last = last.value();
            let entries = codec::split_chunk(row.value()).map_err(|e| corrupt(last, e))?;
            let base = codec::first_offset(last, &entries);
            let entry = usize::try_from(offset - base)
                .ok()
                .and_then(|i| entries.get(i))
                .ok_or_else(|| corrupt(offset, codec::DecodeError::Truncated))?;
            codec::append_time(entry).map_err(|e| corrupt(offset, e))
        };
        let (mut lo, mut hi) = (meta.start_offset, meta.end_offset);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if appended(mid)? < at_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }
}
