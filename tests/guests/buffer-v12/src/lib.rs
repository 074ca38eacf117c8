//! A 1.2 `etl-buffer` component on raw bindings and the batch layout crate. Each
//! message's value picks its result, in `process-buffer` and `process` alike:
//!
//! - `pass`, or any value with header `mode: pass` → the input unchanged (a pass
//!   output); `route:T` → the same, to topic T
//! - `drop` → no output
//! - `fail` → an error (retried, then the error topic); `dead` → a dead letter
//! - `count` → the number stored under the message's key in the durable state goes
//!   up by one (decimal text, as the SDK's `state::incr` and the `counter` guest
//!   keep it); the output is the input with that count as its value and in header
//!   `x-count`
//! - `trap` → panics
//! - `bad:count`, `bad:range`, `bad:overlap`, `bad:magic` → in `process-buffer`, the
//!   whole answer breaks the layout that way; in `process`, as anything else
//! - anything else → a copy of the input written out as a new output

wit_bindgen::generate!({ path: "../../../wit/1.2.0", world: "etl-buffer" });

use rustmq::etl::state;
use rustmq::etl::types::OutputMessage;
use rustmq_etl_buffer::{AnswerWriter, BatchReader, Kind, OutputIn, HEADER, RESULT_ENTRY};

struct BufferV12;

fn count(key: &str) -> Result<String, String> {
    let now = match state::get(key).map_err(|e| format!("{e:?}"))? {
        Some(v) => String::from_utf8(v)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0),
        None => 0,
    };
    let next = (now + 1).to_string();
    state::set(key, next.as_bytes()).map_err(|e| format!("{e:?}"))?;
    Ok(next)
}

fn ok(messages: Vec<OutputMessage>) -> ProcessResult {
    ProcessResult { transformed_messages: messages, should_continue: true, error: None }
}

fn output(msg: &Message, topic: Option<String>) -> OutputMessage {
    OutputMessage {
        topic,
        key: msg.key.clone(),
        value: msg.value.clone(),
        headers: msg.headers.clone(),
        timestamp: msg.timestamp,
    }
}

impl Guest for BufferV12 {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
        let value = msg.value.clone();
        if msg.headers.iter().any(|(k, v)| k == "mode" && v == "pass") {
            return ok(vec![output(&msg, None)]);
        }
        match value.as_slice() {
            b"drop" => ok(vec![]),
            b"fail" => ProcessResult {
                transformed_messages: vec![],
                should_continue: false,
                error: Some("asked to fail".into()),
            },
            b"dead" => ProcessResult {
                transformed_messages: vec![],
                should_continue: true,
                error: Some("asked to dead-letter".into()),
            },
            b"trap" => panic!("asked to trap"),
            b"count" => match count(msg.key.as_deref().unwrap_or("")) {
                Ok(n) => {
                    let mut out = output(&msg, None);
                    out.value = n.clone().into_bytes();
                    out.headers.push(("x-count".into(), n));
                    ok(vec![out])
                }
                Err(e) => ProcessResult { transformed_messages: vec![], should_continue: false, error: Some(e) },
            },
            v => {
                let topic = v
                    .strip_prefix(b"route:")
                    .map(|t| String::from_utf8_lossy(t).into_owned());
                ok(vec![output(&msg, topic)])
            }
        }
    }

    fn process_buffer(batch: Vec<u8>, _ctx: BufferContext) -> Vec<u8> {
        let reader = BatchReader::new(&batch).expect("the broker writes the layout");
        let mut answer = AnswerWriter::new();
        let mut broken = None;
        let mut counts = Vec::new();
        for (i, m) in reader.iter().enumerate() {
            let m = m.expect("the broker writes the layout");
            let headers: Vec<(&[u8], &[u8])> =
                m.headers.iter().map(|h| h.expect("the broker writes the layout")).collect();
            let i = i as u32;
            let pass = headers.iter().any(|(k, v)| *k == b"mode" && *v == b"pass");
            let written = match m.value {
                _ if pass => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(
                    Kind::Outputs,
                    None,
                    [OutputIn::Pass { input: i, topic: None }],
                ),
                b"pass" => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(
                    Kind::Outputs,
                    None,
                    [OutputIn::Pass { input: i, topic: None }],
                ),
                b"drop" => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(Kind::Outputs, None, []),
                b"fail" => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(Kind::Error, Some(b"asked to fail"), []),
                b"dead" => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(Kind::DeadLetter, Some(b"asked to dead-letter"), []),
                b"trap" => panic!("asked to trap"),
                b"count" => {
                    let key = std::str::from_utf8(m.key.unwrap_or(b"")).expect("UTF-8 keys");
                    match count(key) {
                        Ok(n) => {
                            counts.push(n);
                            let n = counts.last().expect("just pushed").as_bytes();
                            let mut with_count = headers.clone();
                            with_count.push((b"x-count", n));
                            answer.result(
                                Kind::Outputs,
                                None,
                                [OutputIn::New {
                                    topic: None,
                                    key: m.key,
                                    value: n,
                                    headers: with_count.into_iter(),
                                    timestamp: m.timestamp,
                                }],
                            )
                        }
                        Err(e) => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(Kind::Error, Some(e.as_bytes()), []),
                    }
                }
                v if v.starts_with(b"route:") => answer.result::<std::vec::IntoIter<(&[u8], &[u8])>>(
                    Kind::Outputs,
                    None,
                    [OutputIn::Pass { input: i, topic: Some(&v[6..]) }],
                ),
                v => {
                    if let Some(how) = v.strip_prefix(b"bad:") {
                        broken = Some(how.to_vec());
                    }
                    answer.result(
                        Kind::Outputs,
                        None,
                        [OutputIn::New {
                            topic: None,
                            key: m.key,
                            value: m.value,
                            headers: headers.clone().into_iter(),
                            timestamp: m.timestamp,
                        }],
                    )
                }
            };
            written.expect("the answer fits the layout");
        }
        let mut out = Vec::new();
        answer.finish(&mut out).expect("the answer fits the layout");
        if let Some(how) = broken {
            let result = |i: usize| HEADER + i * RESULT_ENTRY;
            match how.as_slice() {
                // One result fewer than the batch has messages.
                b"count" => {
                    let n = u32::from_le_bytes(out[8..12].try_into().unwrap());
                    out[8..12].copy_from_slice(&(n - 1).to_le_bytes());
                }
                // The first output's value runs past the buffer.
                b"range" => {
                    let results = u32::from_le_bytes(out[8..12].try_into().unwrap()) as usize;
                    let value_len = result(results) + 36;
                    out[value_len..value_len + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                }
                // The second result claims the first result's outputs too.
                b"overlap" => {
                    let first = result(1) + 4;
                    out[first..first + 4].copy_from_slice(&0u32.to_le_bytes());
                }
                _ => out[0] = b'X',
            }
        }
        out
    }
}

export!(BufferV12);
