//! The log's chunk codec (`rustmq_etl::storage::codec`): decoding arbitrary rows never
//! panics, and messages encoded into chunk rows split and decode back to themselves
//! with their append time and the broker's stamp headers.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustmq_etl::message::Message;
use rustmq_etl::storage::codec::{decode, encode_chunks, split_chunk};

#[derive(Arbitrary, Debug)]
struct FuzzMessage {
    key: Option<String>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
    timestamp: i64,
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// A stored row as the database could hand it back, corrupt or not.
    Row(Vec<u8>),
    /// Messages to encode, their append time and the stamp headers.
    Encode {
        messages: Vec<FuzzMessage>,
        append_ms: i64,
        stamp: Vec<(String, String)>,
    },
}

fuzz_target!(|input: Input| match input {
    Input::Row(row) => {
        if let Ok(entries) = split_chunk(&row) {
            assert!(!entries.is_empty());
            for entry in entries {
                let _ = decode(entry);
            }
        }
    }
    Input::Encode {
        messages,
        append_ms,
        stamp,
    } => {
        let messages: Vec<Message> = messages
            .into_iter()
            .map(|m| Message {
                key: m.key,
                value: m.value,
                headers: m.headers,
                timestamp: m.timestamp,
            })
            .collect();
        let chunks = encode_chunks(&messages, append_ms, &stamp).expect("encode");
        let mut decoded = Vec::new();
        for chunk in &chunks {
            let entries = split_chunk(&chunk.bytes).expect("split own chunk");
            assert_eq!(entries.len() as u64, chunk.count);
            assert_eq!(
                entries.iter().map(|e| e.len() as u64).sum::<u64>(),
                chunk.entry_bytes
            );
            for entry in entries {
                let (m, at) = decode(entry).expect("decode own entry");
                assert_eq!(at, append_ms);
                decoded.push(m);
            }
        }
        assert_eq!(decoded.len(), messages.len());
        for (got, sent) in decoded.iter().zip(&messages) {
            let mut want = sent.clone();
            want.headers
                .retain(|(k, _)| !stamp.iter().any(|(s, _)| s == k));
            want.headers.extend(stamp.iter().cloned());
            assert_eq!(got, &want);
        }
    }
});
