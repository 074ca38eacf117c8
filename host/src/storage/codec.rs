//! The on-disk encoding of one log entry: a message plus the broker's append time.
//!
//! Layout of format version 1 (all integers little-endian):
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
    /// Bytes were left after the last header.
    #[error("{0} unexpected trailing bytes")]
    TrailingBytes(usize),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field is longer than a u32 length prefix can describe.
    #[error("{0} is larger than 4 GiB")]
    TooLarge(&'static str),
}

/// Encodes `message`, appended at `append_ms`, in the current format.
pub fn encode(message: &Message, append_ms: i64) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(message.approx_size() + 32);
    out.push(FORMAT_V1);
    out.extend_from_slice(&append_ms.to_le_bytes());
    out.extend_from_slice(&message.timestamp.to_le_bytes());
    match &message.key {
        None => out.push(0),
        Some(key) => {
            out.push(1);
            put_bytes(&mut out, key.as_bytes(), "key")?;
        }
    }
    put_bytes(&mut out, &message.value, "value")?;
    put_len(&mut out, message.headers.len(), "header count")?;
    for (name, value) in &message.headers {
        put_bytes(&mut out, name.as_bytes(), "header name")?;
        put_bytes(&mut out, value.as_bytes(), "header value")?;
    }
    Ok(out)
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
    fn a_corrupt_header_count_does_not_allocate() {
        let mut bytes = encode(&Message::default(), 1).unwrap();
        let n = bytes.len();
        bytes[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::Truncated));
    }
}
