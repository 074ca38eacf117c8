//! The on-disk encoding of the log: entries (a message plus the broker's append time)
//! stored several to a row in chunks.
//!
//! A topic's log table maps the offset of a row's **last** entry to the row. Rows are
//! chunks (format version 2) of up to [`CHUNK_MAX_ENTRIES`] consecutive entries, so a
//! batch of a thousand messages is one B-tree insert, not a thousand (the insert, not
//! the fsync, was what bounded a pipeline's commit rate). Keying by the last offset
//! makes "the row holding offset n" the first row of the range `n..`: one forward
//! lookup, no search backwards. A row holding a bare v1 entry is a chunk of one (its
//! first and last offset are the same): databases written by builds that stored one
//! entry per row read unchanged.
//!
//! Layout of a chunk (all integers little-endian):
//!
//! ```text
//! u8  version (= 2)
//! u32 entry count (at least 1)
//! per entry: u32 len + a v1 entry
//! ```
//!
//! Layout of entry format version 1:
//!
//! ```text
//! u8  version (= 1)
//! i64 append time, ms since the epoch (what age retention looks at)
//! i64 message timestamp
//! u8  key tag (0 = none, 1 = some) [+ u32 len + UTF-8 bytes]
//! u32 value len + bytes
//! u32 header count, then per header: u32 len + UTF-8 name, u32 len + UTF-8 value
//! ```
//!
//! The leading version byte lets a later format be read next to this one. Decoding
//! never panics: every malformed input is a typed [`DecodeError`].

use crate::message::Message;

/// The format version this build writes.
pub const FORMAT_V1: u8 = 1;

/// The format version of a chunk row.
pub const FORMAT_CHUNK: u8 = 2;

/// The most entries one chunk row holds: bounds what a read of one message decodes.
pub const CHUNK_MAX_ENTRIES: usize = 1024;

/// A chunk is closed once its entries reach this many bytes (a single larger entry
/// gets a chunk of its own). With small messages a chunk then fits one 64 KiB
/// database page: larger rows made redb's page allocator the writer's hot spot (and
/// wasted up to half of each power-of-two page), and a read of one message never
/// loads a big row.
pub const CHUNK_TARGET_BYTES: usize = 56 * 1024;

/// Length of the fixed prefix every v1 entry starts with (version, append time,
/// timestamp).
const V1_PREFIX_LEN: usize = 1 + 8 + 8;

/// Why a stored entry could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The entry was empty or ended in the middle of a field.
    #[error("entry is truncated")]
    Truncated,
    /// The leading version byte is not one this build knows.
    #[error("unknown entry format version {0}")]
    UnknownVersion(u8),
    /// The key tag was neither 0 nor 1.
    #[error("invalid key tag {0}")]
    BadKeyTag(u8),
    /// A key or header was not UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// Bytes were left after the last header (or the last entry of a chunk).
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
    /// A chunk row said it held no entries.
    #[error("chunk holds no entries")]
    EmptyChunk,
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field is longer than a u32 length prefix can describe.
    #[error("{0} is larger than 4 GiB")]
    TooLarge(&'static str),
}

/// One encoded row: consecutive entries ready to insert at the next offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The row's bytes.
    pub bytes: Vec<u8>,
    /// How many entries (offsets) it holds.
    pub count: u64,
    /// The sum of its entries' encoded sizes (what a topic's `size_bytes` counts).
    pub entry_bytes: u64,
}

/// Encodes `messages`, appended at `append_ms`, into chunk rows. Every message is
/// stored with the `stamp` headers added, replacing any of its own with those names
/// (how the broker marks what produced a message without copying it first).
pub fn encode_chunks(
    messages: &[Message],
    append_ms: i64,
    stamp: &[(String, String)],
) -> Result<Vec<Chunk>, EncodeError> {
    let mut chunks = Vec::new();
    let mut rest = messages;
    while !rest.is_empty() {
        let mut bytes = Vec::with_capacity(
            rest.iter()
                .take(CHUNK_MAX_ENTRIES)
                .map(|m| m.approx_size() + 40)
                .sum::<usize>()
                .min(CHUNK_TARGET_BYTES + 64 * 1024),
        );
        bytes.push(FORMAT_CHUNK);
        bytes.extend_from_slice(&[0; 4]);
        let mut count = 0usize;
        let mut entry_bytes = 0u64;
        for message in rest {
            if count == CHUNK_MAX_ENTRIES || (count > 0 && bytes.len() >= CHUNK_TARGET_BYTES) {
                break;
            }
            let len_at = bytes.len();
            bytes.extend_from_slice(&[0; 4]);
            encode_into(&mut bytes, message, append_ms, stamp)?;
            let len = bytes.len() - len_at - 4;
            let len32 = u32::try_from(len).map_err(|_| EncodeError::TooLarge("message"))?;
            bytes[len_at..len_at + 4].copy_from_slice(&len32.to_le_bytes());
            entry_bytes += len as u64;
            count += 1;
        }
        bytes[1..5].copy_from_slice(&(count as u32).to_le_bytes());
        chunks.push(Chunk {
            bytes,
            count: count as u64,
            entry_bytes,
        });
        rest = &rest[count..];
    }
    Ok(chunks)
}

/// Splits a stored row into its entries (a bare v1 entry is a chunk of one).
pub fn split_chunk(row: &[u8]) -> Result<Vec<&[u8]>, DecodeError> {
    match row.first() {
        None => Err(DecodeError::Truncated),
        Some(&FORMAT_V1) => Ok(vec![row]),
        Some(&FORMAT_CHUNK) => {
            let mut r = Reader { bytes: &row[1..] };
            let count = r.u32()? as usize;
            if count == 0 {
                return Err(DecodeError::EmptyChunk);
            }
            // Each entry needs at least a 4-byte length; checking first keeps a
            // corrupt count from reserving a huge vector.
            if count > r.bytes.len() / 4 {
                return Err(DecodeError::Truncated);
            }
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(r.bytes()?);
            }
            if !r.bytes.is_empty() {
                return Err(DecodeError::TrailingBytes(r.bytes.len()));
            }
            Ok(entries)
        }
        Some(&v) => Err(DecodeError::UnknownVersion(v)),
    }
}

/// The offset of a row's first entry, given its key (the last offset) and entries
/// (never empty: [`split_chunk`] refuses an empty chunk).
pub fn first_offset(last: u64, entries: &[&[u8]]) -> u64 {
    (last + 1).saturating_sub(entries.len() as u64)
}

/// Encodes `message`, appended at `append_ms`, as one v1 entry.
#[cfg(test)]
pub fn encode(message: &Message, append_ms: i64) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(message.approx_size() + 32);
    encode_into(&mut out, message, append_ms, &[])?;
    Ok(out)
}

/// Appends `message`, with the `stamp` headers set, as one v1 entry to `out`.
fn encode_into(
    out: &mut Vec<u8>,
    message: &Message,
    append_ms: i64,
    stamp: &[(String, String)],
) -> Result<(), EncodeError> {
    out.push(FORMAT_V1);
    out.extend_from_slice(&append_ms.to_le_bytes());
    out.extend_from_slice(&message.timestamp.to_le_bytes());
    match &message.key {
        None => out.push(0),
        Some(key) => {
            out.push(1);
            put_bytes(out, key.as_bytes(), "key")?;
        }
    }
    put_bytes(out, &message.value, "value")?;
    let own = message
        .headers
        .iter()
        .filter(|(name, _)| !stamp.iter().any(|(s, _)| s == name));
    put_len(out, own.clone().count() + stamp.len(), "header count")?;
    for (name, value) in own.chain(stamp) {
        put_bytes(out, name.as_bytes(), "header name")?;
        put_bytes(out, value.as_bytes(), "header value")?;
    }
    Ok(())
}

/// Decodes an entry into its message and append time.
pub fn decode(bytes: &[u8]) -> Result<(Message, i64), DecodeError> {
    let append_ms = append_time(bytes)?;
    let mut r = Reader {
        bytes: &bytes[V1_PREFIX_LEN..],
    };
    let timestamp = i64::from_le_bytes(fixed8(&bytes[9..17])?);
    let key = match r.u8()? {
        0 => None,
        1 => Some(r.string("key")?),
        tag => return Err(DecodeError::BadKeyTag(tag)),
    };
    let value = r.bytes()?.to_vec();
    let count = r.u32()? as usize;
    // Each header needs at least 8 bytes of length prefixes; checking first keeps a
    // corrupt count from reserving a huge vector.
    if count > r.bytes.len() / 8 {
        return Err(DecodeError::Truncated);
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let name = r.string("header name")?;
        let value = r.string("header value")?;
        headers.push((name, value));
    }
    if !r.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(r.bytes.len()));
    }
    Ok((
        Message {
            key,
            value,
            headers,
            timestamp,
        },
        append_ms,
    ))
}

/// Reads only the append time of an entry: what retention needs, without decoding
/// the whole message.
pub fn append_time(bytes: &[u8]) -> Result<i64, DecodeError> {
    match bytes.first() {
        None => Err(DecodeError::Truncated),
        Some(&FORMAT_V1) if bytes.len() >= V1_PREFIX_LEN => {
            Ok(i64::from_le_bytes(fixed8(&bytes[1..9])?))
        }
        Some(&FORMAT_V1) => Err(DecodeError::Truncated),
        Some(&v) => Err(DecodeError::UnknownVersion(v)),
    }
}

fn fixed8(bytes: &[u8]) -> Result<[u8; 8], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::Truncated)
}

fn put_len(out: &mut Vec<u8>, len: usize, what: &'static str) -> Result<(), EncodeError> {
    let len = u32::try_from(len).map_err(|_| EncodeError::TooLarge(what))?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8], what: &'static str) -> Result<(), EncodeError> {
    put_len(out, bytes.len(), what)?;
    out.extend_from_slice(bytes);
    Ok(())
}

/// A cursor over the variable-length part of an entry.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError::InvalidUtf8(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        Message {
            key: Some("sensor-001".into()),
            value: vec![0, 159, 146, 150, b'x'],
            headers: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            timestamp: -5,
        }
    }

    #[test]
    fn entries_round_trip_with_key_headers_and_binary_value() {
        let bytes = encode(&sample(), 1234).unwrap();
        assert_eq!(decode(&bytes).unwrap(), (sample(), 1234));
        assert_eq!(append_time(&bytes).unwrap(), 1234);
        let bare = Message::default();
        assert_eq!(decode(&encode(&bare, 0).unwrap()).unwrap().0, bare);
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = encode(&sample(), 1).unwrap();
        for len in 0..bytes.len() {
            assert!(
                decode(&bytes[..len]).is_err(),
                "prefix of {len} bytes decoded"
            );
        }
    }

    #[test]
    fn unknown_versions_tags_and_trailing_bytes_are_rejected() {
        let mut bytes = encode(&sample(), 1).unwrap();
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingBytes(1)));
        bytes[0] = 9;
        assert_eq!(decode(&bytes), Err(DecodeError::UnknownVersion(9)));
        let mut bytes = encode(&sample(), 1).unwrap();
        bytes[17] = 7;
        assert_eq!(decode(&bytes), Err(DecodeError::BadKeyTag(7)));
    }

    #[test]
    fn chunks_split_back_into_the_entries_they_were_made_of() {
        // Small enough that the entry cap, not the byte target, closes the chunks.
        let messages: Vec<Message> = (0..2500)
            .map(|i| Message {
                value: vec![b'v'; i % 7],
                timestamp: i as i64,
                ..Message::default()
            })
            .collect();
        let chunks = encode_chunks(&messages, 9, &[]).unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.count).collect::<Vec<_>>(),
            [1024, 1024, 452]
        );
        let mut decoded = Vec::new();
        for chunk in &chunks {
            let entries = split_chunk(&chunk.bytes).unwrap();
            assert_eq!(entries.len() as u64, chunk.count);
            assert_eq!(
                entries.iter().map(|e| e.len() as u64).sum::<u64>(),
                chunk.entry_bytes
            );
            decoded.extend(entries.into_iter().map(|e| decode(e).unwrap().0));
        }
        assert_eq!(decoded, messages);
    }

    #[test]
    fn a_chunk_closes_at_its_byte_target_and_a_big_message_gets_its_own() {
        let big = Message {
            value: vec![0; CHUNK_TARGET_BYTES * 2],
            ..Message::default()
        };
        let chunks = encode_chunks(&[sample(), big.clone(), sample()], 1, &[]).unwrap();
        assert_eq!(
            chunks.iter().map(|c| c.count).collect::<Vec<_>>(),
            [2, 1],
            "the big message closes the first chunk"
        );
        let chunks = encode_chunks(&[big.clone(), big], 1, &[]).unwrap();
        assert_eq!(chunks.len(), 2);
    }

    #[test]
    fn stamped_headers_replace_the_message_s_own_and_come_last() {
        let stamp = [
            ("a".to_string(), "stamped".to_string()),
            ("z".to_string(), "new".to_string()),
        ];
        let chunk = encode_chunks(&[sample()], 1, &stamp).unwrap().remove(0);
        let stored = decode(split_chunk(&chunk.bytes).unwrap()[0]).unwrap().0;
        assert_eq!(
            stored.headers,
            [("a".into(), "stamped".into()), ("z".into(), "new".into())],
            "both of the message's own `a` headers are replaced"
        );
        let unstamped = Message {
            headers: vec![("b".into(), "1".into())],
            ..sample()
        };
        let chunk = encode_chunks(&[unstamped], 1, &stamp).unwrap().remove(0);
        let stored = decode(split_chunk(&chunk.bytes).unwrap()[0]).unwrap().0;
        assert_eq!(
            stored.headers,
            [
                ("b".into(), "1".into()),
                ("a".into(), "stamped".into()),
                ("z".into(), "new".into())
            ]
        );
    }

    #[test]
    fn a_bare_v1_row_is_a_chunk_of_one() {
        let entry = encode(&sample(), 3).unwrap();
        assert_eq!(split_chunk(&entry).unwrap(), [entry.as_slice()]);
    }

    #[test]
    fn every_chunk_truncation_and_a_lying_count_are_typed_errors() {
        let chunk = encode_chunks(&[sample(), sample()], 1, &[])
            .unwrap()
            .remove(0);
        for len in 0..chunk.bytes.len() {
            assert!(
                split_chunk(&chunk.bytes[..len]).is_err(),
                "prefix of {len} bytes split"
            );
        }
        let mut lying = chunk.bytes.clone();
        lying[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(split_chunk(&lying), Err(DecodeError::Truncated));
        lying[1..5].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(split_chunk(&lying), Err(DecodeError::EmptyChunk));
        let mut extra = chunk.bytes;
        extra.push(0);
        assert_eq!(split_chunk(&extra), Err(DecodeError::TrailingBytes(1)));
    }

    #[test]
    fn a_corrupt_header_count_does_not_allocate() {
        let mut bytes = encode(&Message::default(), 1).unwrap();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::Truncated));
    }
}
