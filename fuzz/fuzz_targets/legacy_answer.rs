//! The legacy adapter's reader of a guest's answer (arbitrary guest output): never
//! panics, keeps to the message and header caps, and its hand-written fast path reads
//! exactly what serde reads.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustmq_etl_legacy::abi::{readers_agree, LegacyOutput};

#[derive(Arbitrary, Debug)]
struct Input {
    input_timestamp: i64,
    max_messages: u8,
    max_headers: u8,
    answer: Vec<u8>,
}

fuzz_target!(|input: Input| {
    if let Err(why) = readers_agree(&input.answer) {
        panic!("{why}");
    }
    let (max_messages, max_headers) = (input.max_messages as usize, input.max_headers as usize);
    if let Ok(out) = LegacyOutput::from_json(
        &input.answer,
        input.input_timestamp,
        max_messages,
        max_headers,
    ) {
        assert!(out.messages.len() <= max_messages, "message cap");
        let headers: usize = out.messages.iter().map(|m| m.headers.len()).sum();
        assert!(headers <= max_headers, "header cap");
    }
});
