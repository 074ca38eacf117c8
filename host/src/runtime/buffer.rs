//! The two buffers of a 1.2 `process-buffer` call (layout: the `rustmq-etl-buffer`
//! crate, shared with guests): the batch written into one reused host buffer, and
//! the guest's answer checked whole (structure, every range, the output caps) before
//! any message is built from it. `decode` is also a fuzz target (`fuzz/`): the guest
//! writes what it reads.

use rustmq_etl_buffer::{AnswerReader, Kind, MessageIn};

use super::output::MAX_OUTPUT_HEADERS;
use super::{ProcessOutput, TransformError};
use crate::message::Message;

/// What one answer may hold: per input, what one `process` call may return; in all,
/// what a batch answer may.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Outputs per input (`max_output_messages`).
    pub messages: usize,
    /// Bytes of keys, values, headers and error text per input (`max_output_bytes`).
    pub bytes: usize,
    /// Bytes of the whole answer's messages.
    pub batch_bytes: usize,
}

/// Writes `messages` (at `offsets`) into `buf` in the batch layout.
pub fn encode(
    messages: &[&Message],
    offsets: &[u64],
    buf: &mut Vec<u8>,
) -> Result<(), TransformError> {
    rustmq_etl_buffer::write_batch(
        buf,
        messages.len(),
        messages.iter().zip(offsets).map(|(m, offset)| MessageIn {
            offset: *offset,
            timestamp: m.timestamp,
            key: m.key.as_deref().map(str::as_bytes),
            value: &m.value,
            headers: m.headers.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        }),
    )
    .map_err(|e| TransformError::Abi(format!("the batch cannot be laid out: {e}")))
}

fn refused(e: impl std::fmt::Display) -> TransformError {
    TransformError::Abi(format!("process-buffer's answer: {e}"))
}

fn text(bytes: &[u8], what: &str) -> Result<String, TransformError> {
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| refused(format!("{what} is not UTF-8")))
}

fn message_bytes(m: &Message) -> usize {
    m.key.as_ref().map_or(0, String::len)
        + m.value.len()
        + m.headers
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
}

/// Reads the answer to `inputs`: one [`ProcessOutput`] per input, or an error that
/// fails the whole call (the worker then processes the batch one message per call).
/// A *pass* output is a copy of its input.
pub fn decode(
    answer: &[u8],
    inputs: &[&Message],
    caps: Caps,
) -> Result<Vec<ProcessOutput>, TransformError> {
    decode_with(answer, inputs, caps, false)
}

/// As [`decode`], except that the first *pass* output of each answer that repeats
/// that answer's own input is left empty, for the caller to move the input into
/// ([`ProcessOutput::moved_input`]).
pub fn decode_moving(
    answer: &[u8],
    inputs: &[&Message],
    caps: Caps,
) -> Result<Vec<ProcessOutput>, TransformError> {
    decode_with(answer, inputs, caps, true)
}

fn decode_with(
    answer: &[u8],
    inputs: &[&Message],
    caps: Caps,
    moving: bool,
) -> Result<Vec<ProcessOutput>, TransformError> {
    let reader = AnswerReader::new(answer, inputs.len()).map_err(refused)?;
    // Every cap is checked on the answer as it lies, before anything is copied.
    let mut batch_bytes = 0usize;
    for i in 0..inputs.len() {
        let result = reader.result(i).map_err(refused)?;
        let count = result.outputs.len();
        if count > caps.messages {
            return Err(refused(format!(
                "input {i} returned {count} messages, more than the fan-out limit of {}",
                caps.messages
            )));
        }
        let mut bytes = result.error.map_or(0, <[u8]>::len);
        let mut headers = 0usize;
        for o in result.outputs.clone() {
            let out = reader.output(o).map_err(refused)?;
            bytes += out.topic.map_or(0, <[u8]>::len);
            match out.pass {
                Some(input) => {
                    let m = inputs[input as usize];
                    bytes += message_bytes(m);
                    headers += m.headers.len();
                }
                None => {
                    bytes += out.key.map_or(0, <[u8]>::len) + out.value.len();
                    for h in out.headers.iter() {
                        let (name, value) = h.map_err(refused)?;
                        bytes += name.len() + value.len();
                    }
                    headers += out.headers.len();
                }
            }
        }
        if bytes > caps.bytes {
            return Err(refused(format!(
                "input {i} returned {bytes} bytes of messages, more than the output limit of {} bytes",
                caps.bytes
            )));
        }
        if headers > MAX_OUTPUT_HEADERS {
            return Err(refused(format!(
                "input {i} returned {headers} header pairs, more than the limit of {MAX_OUTPUT_HEADERS}"
            )));
        }
        batch_bytes += bytes;
        if batch_bytes > caps.batch_bytes {
            return Err(refused(format!(
                "the answer holds more than {} bytes of messages",
                caps.batch_bytes
            )));
        }
    }
    (0..inputs.len())
        .map(|i| {
            let result = reader.result(i).map_err(refused)?;
            let mut messages = Vec::with_capacity(result.outputs.len());
            let mut topics = Vec::new();
            let mut moved_input = None;
            for (k, o) in result.outputs.enumerate() {
                let out = reader.output(o).map_err(refused)?;
                if let Some(topic) = out.topic {
                    topics.push((k, text(topic, "a topic")?));
                }
                messages.push(match out.pass {
                    Some(input) if moving && moved_input.is_none() && input as usize == i => {
                        moved_input = Some(k);
                        Message::default()
                    }
                    Some(input) => inputs[input as usize].clone(),
                    None => Message {
                        key: out.key.map(|k| text(k, "a key")).transpose()?,
                        value: out.value.to_vec(),
                        headers: out
                            .headers
                            .iter()
                            .map(|h| {
                                let (name, value) = h.map_err(refused)?;
                                Ok((text(name, "a header name")?, text(value, "a header value")?))
                            })
                            .collect::<Result<_, TransformError>>()?,
                        timestamp: out.timestamp,
                    },
                });
            }
            let error = result
                .error
                .map(|e| String::from_utf8_lossy(e).into_owned());
            Ok(ProcessOutput {
                messages,
                topics,
                should_continue: result.kind != Kind::Error,
                error,
                moved_input,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rustmq_etl_buffer::{AnswerWriter, OutputIn};

    use super::*;

    type NoHeaders<'a> = std::iter::Empty<(&'a [u8], &'a [u8])>;

    fn caps() -> Caps {
        Caps {
            messages: 4,
            bytes: 1024,
            batch_bytes: 4096,
        }
    }

    fn input(value: &str) -> Message {
        Message {
            key: Some("k".into()),
            value: value.as_bytes().to_vec(),
            headers: vec![("h".into(), "v".into())],
            timestamp: 7,
        }
    }

    fn answer(build: impl FnOnce(&mut AnswerWriter)) -> Vec<u8> {
        let mut w = AnswerWriter::new();
        build(&mut w);
        let mut out = Vec::new();
        w.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn a_pass_output_is_its_input_byte_for_byte_and_kinds_map_as_in_1_1() {
        let inputs = [input("a"), input("b"), input("c")];
        let refs: Vec<&Message> = inputs.iter().collect();
        let buf = answer(|w| {
            w.result::<NoHeaders>(
                Kind::Outputs,
                None,
                [OutputIn::Pass {
                    input: 0,
                    topic: None,
                }],
            )
            .unwrap();
            w.result::<NoHeaders>(Kind::Error, Some(b"bad"), [])
                .unwrap();
            w.result::<NoHeaders>(
                Kind::DeadLetter,
                Some(b"dead"),
                [OutputIn::Pass {
                    input: 2,
                    topic: Some(b"audit"),
                }],
            )
            .unwrap();
        });
        let out = decode(&buf, &refs, caps()).unwrap();
        assert_eq!(out[0].messages, vec![inputs[0].clone()]);
        assert!(out[0].should_continue && out[0].error.is_none());
        assert!(!out[1].should_continue);
        assert_eq!(out[1].error.as_deref(), Some("bad"));
        assert!(out[2].should_continue);
        assert_eq!(out[2].topics, vec![(0, "audit".to_string())]);
    }

    #[test]
    fn moving_leaves_only_each_answers_first_pass_of_its_own_input_to_the_caller() {
        let inputs = [input("a"), input("b")];
        let refs: Vec<&Message> = inputs.iter().collect();
        let pass = |input: u32| OutputIn::Pass { input, topic: None };
        let buf = answer(|w| {
            // Its own input twice, then the other input.
            w.result::<NoHeaders>(Kind::Outputs, None, [pass(0), pass(0), pass(1)])
                .unwrap();
            // The other input only.
            w.result::<NoHeaders>(Kind::Outputs, None, [pass(0)])
                .unwrap();
        });
        let copied = decode(&buf, &refs, caps()).unwrap();
        let moving = decode_moving(&buf, &refs, caps()).unwrap();
        assert_eq!(copied[0].moved_input, None);
        assert_eq!(moving[0].moved_input, Some(0));
        assert_eq!(moving[0].messages[0], Message::default());
        assert_eq!(moving[0].messages[1..], copied[0].messages[1..]);
        assert_eq!(moving[1], copied[1], "a pass of another input is copied");
        let mut filled = moving[0].clone();
        filled.messages[0] = inputs[0].clone();
        filled.moved_input = None;
        assert_eq!(filled, copied[0]);
    }

    #[test]
    fn an_answer_over_the_caps_is_refused_before_it_is_copied() {
        let inputs = [input("a")];
        let refs: Vec<&Message> = inputs.iter().collect();
        let fan_out = answer(|w| {
            w.result::<NoHeaders>(
                Kind::Outputs,
                None,
                (0..5).map(|_| OutputIn::Pass {
                    input: 0,
                    topic: None,
                }),
            )
            .unwrap();
        });
        let e = decode(&fan_out, &refs, caps()).unwrap_err().to_string();
        assert!(
            e.contains("5 messages, more than the fan-out limit of 4"),
            "{e}"
        );
        let big = vec![0u8; 2000];
        let too_big = answer(|w| {
            w.result::<NoHeaders>(
                Kind::Outputs,
                None,
                [OutputIn::New {
                    topic: None,
                    key: None,
                    value: &big,
                    headers: std::iter::empty(),
                    timestamp: 0,
                }],
            )
            .unwrap();
        });
        let e = decode(&too_big, &refs, caps()).unwrap_err().to_string();
        assert!(e.contains("2000 bytes"), "{e}");
    }

    #[test]
    fn a_key_that_is_not_utf8_is_refused() {
        let inputs = [input("a")];
        let refs: Vec<&Message> = inputs.iter().collect();
        let buf = answer(|w| {
            w.result::<NoHeaders>(
                Kind::Outputs,
                None,
                [OutputIn::New {
                    topic: None,
                    key: Some(&[0xff, 0xfe]),
                    value: b"v",
                    headers: std::iter::empty(),
                    timestamp: 0,
                }],
            )
            .unwrap();
        });
        let e = decode(&buf, &refs, caps()).unwrap_err().to_string();
        assert!(e.contains("a key is not UTF-8"), "{e}");
    }
}
