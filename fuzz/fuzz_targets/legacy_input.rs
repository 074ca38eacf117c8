//! The legacy adapter's hand-written encoder of a message for the guest writes byte for
//! byte what serde writes, for any message.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rustmq_etl_legacy::abi::LegacyInput;

#[derive(Arbitrary, Debug)]
struct Input {
    key: Option<String>,
    value: Vec<u8>,
    headers: Vec<(String, String)>,
    timestamp: i64,
}

fuzz_target!(|m: Input| {
    let input = LegacyInput {
        key: m.key.as_deref(),
        value: &m.value,
        headers: &m.headers,
        timestamp: m.timestamp,
    };
    let mut fast = Vec::new();
    input.encode(&mut fast);
    let slow = serde_json::to_vec(&input).expect("serde");
    assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&slow),
        "the hand-written encoder and serde disagree"
    );
});
