//! Encoding the input and reading the guest's answer through the legacy ABI, bounded.
//! The shapes themselves are in `shapes`.
//!
//! Input is serde's default encoding of the guide's `Message`: `value` as an array of
//! byte numbers, `headers` as an object. The answer is the guide's `ProcessResult`; a
//! message's `value` may come back as a byte array or (from hand-written modules) a
//! string. The guide's `process_message` returns only a pointer, so the reader parses
//! exactly one JSON value starting there, bounded by the end of memory and the output
//! cap, and ignores whatever follows it (no NUL terminator is required).
//!
//! The shapes are defined with serde; the per-message work is done by the
//! hand-written `codec`, and the serde reader here takes over for anything outside
//! the shape serde itself emits.

use crate::codec;
use crate::error::AbiFault;
use crate::shapes::RawResult;
pub use crate::shapes::{LegacyInput, LegacyMessage, LegacyOutput};

/// How many bytes of a non-JSON result an error quotes.
const NEAR_BYTES: usize = 64;

impl LegacyInput<'_> {
    /// Replaces `out` with the JSON the guest receives: exactly `serde_json::to_writer`'s
    /// encoding of `self`, written without serde's per-element visits.
    pub fn encode(&self, out: &mut Vec<u8>) {
        codec::encode_input(self, out);
    }
}

impl LegacyOutput {
    /// Reads an answer of exactly `json` as a guest's packed `(ptr, len)` answer is read,
    /// filling missing timestamps with `input_timestamp` and refusing more than
    /// `max_messages` messages or `max_headers` header pairs.
    pub fn from_json(
        json: &[u8],
        input_timestamp: i64,
        max_messages: usize,
        max_headers: usize,
    ) -> Result<LegacyOutput, AbiFault> {
        read_exact(json)?.into_output(input_timestamp, max_messages, max_headers)
    }
}

/// Reads the one JSON value that starts at `ptr` (the guide's pointer-only result).
///
/// The value may end anywhere before the end of memory and within `cap` bytes; bytes
/// after it are ignored.
pub(crate) fn read_pointer_result(
    memory: &[u8],
    ptr: u32,
    cap: usize,
) -> Result<RawResult, AbiFault> {
    let start = ptr as usize;
    if ptr == 0 {
        return Err(AbiFault::NullOutput);
    }
    if start >= memory.len() {
        return Err(AbiFault::OutputOutOfBounds {
            ptr,
            memory_size: memory.len(),
        });
    }
    let end_by_cap = start.saturating_add(cap);
    let end = end_by_cap.min(memory.len());
    let window = &memory[start..end];
    if let Some((result, _)) = codec::read_result(window) {
        return Ok(result);
    }
    let first = serde_json::Deserializer::from_slice(window)
        .into_iter::<RawResult>()
        .next();
    match first {
        Some(Ok(result)) => Ok(result),
        Some(Err(e)) if !e.is_eof() => Err(classify(e, window)),
        // The window ended inside the value (or held only whitespace).
        _ if end_by_cap <= memory.len() => Err(AbiFault::OutputTooLarge { ptr, cap }),
        _ => Err(AbiFault::OutputRunsOffMemory {
            ptr,
            memory_size: memory.len(),
        }),
    }
}

/// Reads exactly `len` bytes at `ptr` as one JSON value (the packed-i64 result).
pub(crate) fn read_packed_result(
    memory: &[u8],
    ptr: u32,
    len: u32,
    cap: usize,
) -> Result<RawResult, AbiFault> {
    if ptr == 0 {
        return Err(AbiFault::NullOutput);
    }
    if len as usize > cap {
        return Err(AbiFault::OutputTooLarge { ptr, cap });
    }
    let start = ptr as usize;
    let bytes =
        memory
            .get(start..start + len as usize)
            .ok_or(AbiFault::OutputLengthOutOfBounds {
                ptr,
                len,
                memory_size: memory.len(),
            })?;
    read_exact(bytes)
}

/// Whether the hand-written answer reader agrees with serde on `bytes`: where it reads
/// an answer, serde reads the same answer from the same bytes (where it gives up, serde
/// alone decides). For the fuzz target `legacy_answer`; `Err` says how they differ.
#[doc(hidden)]
pub fn readers_agree(bytes: &[u8]) -> Result<(), String> {
    let Some((fast, used)) = codec::read_result(bytes) else {
        return Ok(());
    };
    match serde_json::from_slice::<RawResult>(&bytes[..used]) {
        Ok(slow) if slow == fast => Ok(()),
        Ok(slow) => Err(format!(
            "the hand-written reader read {fast:?}, serde {slow:?}"
        )),
        Err(e) => Err(format!(
            "the hand-written reader read {fast:?} where serde refuses: {e}"
        )),
    }
}

/// `bytes` as one JSON value with nothing but whitespace after it.
fn read_exact(bytes: &[u8]) -> Result<RawResult, AbiFault> {
    if let Some((result, used)) = codec::read_result(bytes) {
        if bytes[used..]
            .iter()
            .all(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        {
            return Ok(result);
        }
    }
    serde_json::from_slice(bytes).map_err(|e| classify(e, bytes))
}

fn classify(e: serde_json::Error, bytes: &[u8]) -> AbiFault {
    match e.classify() {
        serde_json::error::Category::Data => AbiFault::NotProcessResult(e.to_string()),
        _ => AbiFault::NotJson {
            error: e.to_string(),
            near: String::from_utf8_lossy(&bytes[..bytes.len().min(NEAR_BYTES)]).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"{"transformed_messages":[{"key":"k","value":[104,105],"headers":{"a":"1"},"timestamp":5}],"should_continue":true,"error":null}"#;

    /// A memory of `size` zero bytes with `text` at `at`.
    fn memory_with(size: usize, at: usize, text: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; size];
        m[at..at + text.len()].copy_from_slice(text);
        m
    }

    fn output(r: RawResult) -> LegacyOutput {
        r.into_output(0, 100, 100).unwrap()
    }

    #[test]
    fn reads_one_value_without_a_terminator_and_ignores_trailing_garbage() {
        let mut text = OK.as_bytes().to_vec();
        text.extend_from_slice(b"\xff\x00garbage{]");
        let mem = memory_with(1024, 16, &text);
        let out = output(read_pointer_result(&mem, 16, 4096).unwrap());
        assert_eq!(out.messages[0].value, b"hi");
        assert_eq!(out.messages[0].headers, vec![("a".into(), "1".into())]);
        assert!(out.should_continue);

        // The value may end exactly at the end of memory.
        let mem = memory_with(16 + OK.len(), 16, OK.as_bytes());
        assert!(read_pointer_result(&mem, 16, 4096).is_ok());
    }

    #[test]
    fn value_may_be_a_string() {
        let text = br#"{"transformed_messages":[{"key":null,"value":"hi","headers":{}}],"should_continue":false}"#;
        let mem = memory_with(512, 8, text);
        let out = read_pointer_result(&mem, 8, 4096)
            .unwrap()
            .into_output(77, 10, 10)
            .unwrap();
        assert_eq!(out.messages[0].value, b"hi");
        assert_eq!(
            out.messages[0].timestamp, 77,
            "missing timestamp takes the input's"
        );
        assert_eq!(out.error, None);
    }

    #[test]
    fn value_running_off_the_end_of_memory_is_reported() {
        let mem = memory_with(64, 60, b"{\"tr");
        assert_eq!(
            read_pointer_result(&mem, 60, 4096).unwrap_err(),
            AbiFault::OutputRunsOffMemory {
                ptr: 60,
                memory_size: 64
            }
        );
    }

    #[test]
    fn value_longer_than_the_cap_is_reported() {
        let mem = memory_with(1024, 8, OK.as_bytes());
        assert_eq!(
            read_pointer_result(&mem, 8, 20).unwrap_err(),
            AbiFault::OutputTooLarge { ptr: 8, cap: 20 }
        );
    }

    #[test]
    fn wild_and_null_pointers_are_reported() {
        let mem = vec![0u8; 64];
        assert_eq!(
            read_pointer_result(&mem, 0, 10).unwrap_err(),
            AbiFault::NullOutput
        );
        let err = read_pointer_result(&mem, u32::MAX, 10).unwrap_err();
        assert_eq!(
            err,
            AbiFault::OutputOutOfBounds {
                ptr: u32::MAX,
                memory_size: 64
            }
        );
        assert!(err.to_string().contains("-1 as i32"), "{err}");
    }

    #[test]
    fn non_json_and_partial_json_say_what_was_there() {
        let mem = memory_with(256, 4, b"hello, host");
        let err = read_pointer_result(&mem, 4, 4096).unwrap_err();
        assert!(matches!(&err, AbiFault::NotJson { near, .. } if near.starts_with("hello, host")));

        // A truncated value followed by zeroed memory is a syntax error, not a hang.
        let mem = memory_with(256, 4, br#"{"transformed_messages": ["#);
        assert!(matches!(
            read_pointer_result(&mem, 4, 4096).unwrap_err(),
            AbiFault::NotJson { .. }
        ));
    }

    #[test]
    fn json_of_the_wrong_shape_is_not_a_process_result() {
        for text in [
            &br#"{"should_continue":true}"#[..],
            br#"[1,2,3]"#,
            br#"{"transformed_messages":[{"value":[300]}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":"x","headers":{"n":1}}],"should_continue":true}"#,
        ] {
            let mem = memory_with(256, 4, text);
            let err = read_pointer_result(&mem, 4, 4096).unwrap_err();
            assert!(matches!(err, AbiFault::NotProcessResult(_)), "{err:?}");
        }
    }

    #[test]
    fn packed_result_reads_exactly_its_length() {
        let mut mem = memory_with(1024, 8, OK.as_bytes());
        mem[8 + OK.len()] = b'x'; // Trailing bytes beyond the length are not read.
        assert!(read_packed_result(&mem, 8, OK.len() as u32, 4096).is_ok());
        assert!(matches!(
            read_packed_result(&mem, 8, OK.len() as u32 - 1, 4096).unwrap_err(),
            AbiFault::NotJson { .. }
        ));
        assert_eq!(
            read_packed_result(&mem, 1000, 100, 4096).unwrap_err(),
            AbiFault::OutputLengthOutOfBounds {
                ptr: 1000,
                len: 100,
                memory_size: 1024
            }
        );
        assert_eq!(
            read_packed_result(&mem, 8, 5000, 4096).unwrap_err(),
            AbiFault::OutputTooLarge { ptr: 8, cap: 4096 }
        );
    }

    #[test]
    fn too_many_messages_are_refused() {
        let mem = memory_with(1024, 8, OK.as_bytes());
        let raw = read_pointer_result(&mem, 8, 4096).unwrap();
        assert_eq!(
            raw.into_output(0, 0, 0).unwrap_err(),
            AbiFault::TooManyMessages { count: 1, max: 0 }
        );
    }

    #[test]
    fn too_many_header_pairs_across_messages_are_refused() {
        let two = br#"{"transformed_messages":[{"value":[],"headers":{"a":"","b":""}},{"value":[],"headers":{"c":""}}],"should_continue":true}"#;
        assert_eq!(
            LegacyOutput::from_json(two, 0, 10, 2).unwrap_err(),
            AbiFault::TooManyHeaders { count: 3, max: 2 }
        );
        assert_eq!(
            LegacyOutput::from_json(two, 0, 10, 3)
                .unwrap()
                .messages
                .len(),
            2
        );
    }

    #[test]
    fn input_uses_serde_default_encoding_and_last_header_wins() {
        let headers = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "2".to_string()),
            ("a".to_string(), "3".to_string()),
        ];
        let input = LegacyInput {
            key: None,
            value: b"hi",
            headers: &headers,
            timestamp: 9,
        };
        assert_eq!(
            serde_json::to_string(&input).unwrap(),
            r#"{"key":null,"value":[104,105],"headers":{"b":"2","a":"3"},"timestamp":9}"#
        );
    }
}

/// Property tests of the reader: whatever a guest leaves in memory, reading its
/// answer never panics and a refusal is one of the typed faults.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Cases per property: enough to find a panic, few enough for CI in seconds.
    const CASES: u32 = 512;

    /// A memory image biased towards JSON fragments, so the reader gets past the
    /// first byte often.
    fn memory() -> impl Strategy<Value = Vec<u8>> {
        let fragment = prop_oneof![
            Just(br#"{"transformed_messages":["#.to_vec()),
            Just(br#"{"key":"k","value":[1,2,300],"headers":{"a":"b"}}"#.to_vec()),
            Just(br#"],"should_continue":true,"error":null}"#.to_vec()),
            Just(b"\"\\u00".to_vec()),
            Just(b"[[[[[[[[".to_vec()),
            Just(b"-1e999999".to_vec()),
            prop::collection::vec(any::<u8>(), 0..16),
        ];
        prop::collection::vec(fragment, 0..12).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn pointer_reader_never_panics(mem in memory(), ptr in any::<u32>(), cap in 0usize..4096) {
            let ptr = if mem.is_empty() { ptr } else { ptr % (mem.len() as u32 + 8) };
            if let Ok(raw) = read_pointer_result(&mem, ptr, cap) {
                let _ = raw.into_output(0, 4, 4);
            }
        }

        #[test]
        fn packed_reader_never_panics(mem in memory(), ptr in any::<u32>(), len in any::<u32>(), cap in 0usize..4096) {
            let ptr = if mem.is_empty() { ptr } else { ptr % (mem.len() as u32 + 8) };
            let _ = read_packed_result(&mem, ptr, len, cap);
        }

        #[test]
        fn a_valid_answer_anywhere_in_memory_is_read_back(junk in prop::collection::vec(any::<u8>(), 1..64), value in prop::collection::vec(any::<u8>(), 0..32)) {
            let answer = serde_json::json!({
                "transformed_messages": [{"key": null, "value": value, "headers": {}}],
                "should_continue": true,
            }).to_string();
            let mut mem = junk.clone();
            mem.extend_from_slice(answer.as_bytes());
            mem.extend_from_slice(&junk);
            let out = read_pointer_result(&mem, junk.len() as u32, 4096).unwrap().into_output(7, 1, 16).unwrap();
            prop_assert_eq!(&out.messages[0].value, &value);
        }
    }
}
