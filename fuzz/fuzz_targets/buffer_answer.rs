//! The broker's reader of a 1.2 `process-buffer` answer (written by the guest): never
//! panics, and what it accepts keeps to the caps it was given.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustmq_etl::message::Message;
use rustmq_etl::runtime::buffer::{decode, Caps};

#[derive(Arbitrary, Debug)]
struct Input {
    inputs: Vec<(Option<String>, Vec<u8>, Vec<(String, String)>)>,
    max_messages: u8,
    max_bytes: u16,
    answer: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let inputs: Vec<Message> = input
        .inputs
        .into_iter()
        .take(16)
        .map(|(key, value, headers)| Message {
            key,
            value,
            headers,
            timestamp: 0,
        })
        .collect();
    let refs: Vec<&Message> = inputs.iter().collect();
    let caps = Caps {
        messages: input.max_messages as usize,
        bytes: input.max_bytes as usize,
        batch_bytes: input.max_bytes as usize * 4,
    };
    if let Ok(outputs) = decode(&input.answer, &refs, caps) {
        assert_eq!(outputs.len(), refs.len(), "one result per input");
        for out in &outputs {
            assert!(out.messages.len() <= caps.messages, "fan-out cap");
        }
    }
});
