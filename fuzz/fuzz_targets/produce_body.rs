//! The message API's produce body (`POST /api/v1/topics/{topic}/messages`): arbitrary
//! bytes never panic; every refusal is a 4xx with the JSON error shape; what is taken
//! keeps to the limits and survives the consume side's JSON (the hand-written writer
//! and the serde one agree) back into the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustmq_etl::api::produce_body::{parse, ProduceBody};
use rustmq_etl::message::{HeaderLimits, Message, MessageOut, MessageOutRef};

const NOW: i64 = 1_700_000_000_000;
const MAX_BATCH: usize = 64;
const LIMITS: HeaderLimits = HeaderLimits {
    max_count: 16,
    max_bytes: 1024,
};

fuzz_target!(|body: &[u8]| {
    let messages = match parse(body, NOW, &LIMITS, MAX_BATCH) {
        Ok(ProduceBody::One(m)) => vec![m],
        Ok(ProduceBody::Batch(ms)) => {
            assert!(!ms.is_empty() && ms.len() <= MAX_BATCH, "batch bounds");
            ms
        }
        Err(e) => {
            assert!(e.status.is_client_error(), "{e:?} is not a 4xx");
            assert!(
                !e.code.is_empty()
                    && e.code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{e:?}: the code must be snake_case"
            );
            assert!(!e.message.is_empty(), "{e:?}: no message");
            return;
        }
    };
    for m in &messages {
        LIMITS
            .check(&m.headers)
            .expect("taken headers keep to the limits");
        consume_side_round_trip(m);
    }
});

/// The consume side writes `m` as JSON (hand-written writer = serde's), and that JSON
/// produced again is `m` (headers by name: the object form keeps a name's last value).
fn consume_side_round_trip(m: &Message) {
    let fast = serde_json::to_vec(&MessageOutRef {
        offset: Some(7),
        message: m,
    })
    .expect("write");
    let slow = serde_json::to_vec(&MessageOut::new(m, Some(7))).expect("write");
    assert_eq!(
        String::from_utf8_lossy(&fast),
        String::from_utf8_lossy(&slow),
        "MessageOutRef and MessageOut disagree"
    );
    let mut json: serde_json::Value = serde_json::from_slice(&fast).expect("own JSON");
    json.as_object_mut().expect("object").remove("offset");
    let again = match parse(&serde_json::to_vec(&json).unwrap(), 0, &LIMITS, MAX_BATCH) {
        Ok(ProduceBody::One(again)) => again,
        other => panic!("the consume side's JSON does not produce again: {other:?}"),
    };
    let by_name = |h: &[(String, String)]| {
        h.iter()
            .cloned()
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(again.key, m.key);
    assert_eq!(again.value, m.value);
    assert_eq!(again.timestamp, m.timestamp);
    assert_eq!(by_name(&again.headers), by_name(&m.headers));
}
