//! The module's side of a 1.2 batch buffer (`process-buffer`): the batch read into
//! [`Message`]s, the [`Transform`]'s answers written back in the answer layout.
//!
//! An output equal to its input (same key, value, headers and timestamp; the topic
//! may differ) is written as *pass*: the broker takes the input's bytes, and the
//! payload is never copied back. So `Output::from(msg)` in a filter or a router
//! costs no copy, however the output was built.
//!
//! Target-independent, so that native unit tests run the same code as the module.

use rustmq_etl_buffer::{AnswerWriter, BatchReader, Kind, LayoutError, MessageRef, OutputIn};

use crate::{BatchContext, Context, Emit, Error, Message, Output, Transform};

/// Where a buffer batch comes from: the `buffer-context` record.
pub(crate) struct Origin<'a> {
    pub pipeline_id: &'a str,
    pub source_topic: &'a str,
    pub attempt: u32,
}

fn text(bytes: &[u8], what: &str) -> Result<String, LayoutError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| LayoutError(format!("{what} in the batch is not UTF-8")))
}

/// One message of the batch, owned.
fn message(m: &MessageRef<'_>) -> Result<Message, LayoutError> {
    let mut headers = Vec::with_capacity(m.headers.len());
    for h in m.headers.iter() {
        let (name, value) = h?;
        headers.push((text(name, "a header name")?, text(value, "a header value")?));
    }
    Ok(Message {
        key: m.key.map(|k| text(k, "a key")).transpose()?,
        value: m.value.to_vec(),
        headers,
        timestamp: m.timestamp,
    })
}

/// Whether `out` repeats `input` unchanged (its topic aside).
fn unchanged(input: &MessageRef<'_>, out: &Output) -> bool {
    input.timestamp == out.timestamp
        && input.value.len() == out.value.len()
        && input.headers.len() == out.headers.len()
        && input.key == out.key.as_deref().map(str::as_bytes)
        && input.value == out.value.as_slice()
        && input
            .headers
            .iter()
            .zip(&out.headers)
            .all(|(h, (name, value))| {
                h.is_ok_and(|(n, v)| n == name.as_bytes() && v == value.as_bytes())
            })
}

/// An output's headers as the answer writer takes them.
type Pairs<'a> = std::iter::Map<
    std::slice::Iter<'a, (String, String)>,
    fn(&'a (String, String)) -> (&'a [u8], &'a [u8]),
>;

fn pair_bytes(pair: &(String, String)) -> (&[u8], &[u8]) {
    (pair.0.as_bytes(), pair.1.as_bytes())
}

/// The answer entry of `out`, an output of input `i` (when there is one): a pass
/// when it repeats the input.
fn output_in<'a>(
    input: Option<(u32, &MessageRef<'_>)>,
    out: &'a Output,
) -> OutputIn<'a, Pairs<'a>> {
    let topic = out.topic.as_deref().map(str::as_bytes);
    match input {
        Some((i, input)) if unchanged(input, out) => OutputIn::Pass { input: i, topic },
        _ => OutputIn::New {
            topic,
            key: out.key.as_deref().map(str::as_bytes),
            value: &out.value,
            headers: out
                .headers
                .iter()
                .map(pair_bytes as fn(&'a (String, String)) -> _),
            timestamp: out.timestamp,
        },
    }
}

/// The answer entry of `emit`, an output of input `i`.
fn emit_in<'a>(i: u32, input: &MessageRef<'_>, emit: &'a Emit) -> OutputIn<'a, Pairs<'a>> {
    match emit {
        Emit::Unchanged { topic } => OutputIn::Pass {
            input: i,
            topic: topic.as_deref().map(str::as_bytes),
        },
        Emit::New(out) => output_in(Some((i, input)), out),
    }
}

/// How a result is written: its kind, its error text and its outputs.
fn parts<T>(answer: &Result<Vec<T>, Error>) -> (Kind, Option<&[u8]>, &[T], &[Output]) {
    match answer {
        Ok(outputs) => (Kind::Outputs, None, outputs, &[]),
        Err(Error::Retry(reason)) => (Kind::Error, Some(reason.as_bytes()), &[], &[]),
        Err(Error::DeadLetter { reason, messages }) => {
            (Kind::DeadLetter, Some(reason.as_bytes()), &[], messages)
        }
    }
}

/// Writes `answers`, one per input of `batch` in order, into `writer` (cleared
/// first) and then `out`.
pub(crate) fn write_answers(
    batch: &BatchReader<'_>,
    answers: &[Result<Vec<Output>, Error>],
    writer: &mut AnswerWriter,
    out: &mut Vec<u8>,
) -> Result<(), LayoutError> {
    writer.clear();
    for (i, answer) in answers.iter().enumerate() {
        let input = match i < batch.len() {
            true => Some((i as u32, batch.get(i)?)),
            false => None,
        };
        let input = input.as_ref().map(|(i, m)| (*i, m));
        let (kind, error, outputs, dead) = parts(answer);
        let outputs = outputs.iter().chain(dead);
        writer.result(kind, error, outputs.map(|o| output_in(input, o)))?;
    }
    writer.finish(out)
}

/// The messages of `reader`, owned, and their source offsets.
fn owned(reader: &BatchReader<'_>) -> Result<(Vec<Message>, Vec<u64>), LayoutError> {
    let mut messages = Vec::with_capacity(reader.len());
    let mut offsets = Vec::with_capacity(reader.len());
    for m in reader.iter() {
        let m = m?;
        offsets.push(m.offset);
        messages.push(message(&m)?);
    }
    Ok((messages, offsets))
}

/// Runs [`Transform::process_ref`] on each message of `reader` where it lies, and
/// writes each answer as it comes.
fn in_place<T: Transform>(
    transform: &T,
    reader: &BatchReader<'_>,
    origin: &Origin<'_>,
    writer: &mut AnswerWriter,
    out: &mut Vec<u8>,
) -> Result<(), LayoutError> {
    writer.clear();
    let pipeline_id: std::sync::Arc<str> = origin.pipeline_id.into();
    let source_topic: std::sync::Arc<str> = origin.source_topic.into();
    for (i, m) in reader.iter().enumerate() {
        let m = m?;
        let view = crate::MessageRef::from_buffer(&m)?;
        let ctx = Context::shared(&pipeline_id, &source_topic, m.offset, origin.attempt);
        let answer = transform.process_ref(view, &ctx);
        let (kind, error, emits, dead) = parts(&answer);
        let i = i as u32;
        let outputs = emits
            .iter()
            .map(|e| emit_in(i, &m, e))
            .chain(dead.iter().map(|o| output_in(Some((i, &m)), o)));
        writer.result(kind, error, outputs)?;
    }
    writer.finish(out)
}

/// Runs a `process-buffer` call: reads `batch`, gives its messages to the
/// transform — in place to [`Transform::process_ref`] when it sets
/// [`Transform::IN_PLACE`], else owned to [`Transform::process_batch`] — or
/// answers each with a failure naming why when there is no instance, and writes
/// the answer into `out`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
pub(crate) fn process_buffer<T: Transform>(
    transform: Result<&T, String>,
    batch: &[u8],
    origin: &Origin<'_>,
    writer: &mut AnswerWriter,
    out: &mut Vec<u8>,
) -> Result<(), LayoutError> {
    let reader = BatchReader::new(batch)?;
    let answers = match transform {
        Ok(transform) if T::IN_PLACE => return in_place(transform, &reader, origin, writer, out),
        Ok(transform) => {
            let (messages, offsets) = owned(&reader)?;
            let ctx = BatchContext::new(origin.pipeline_id, origin.source_topic, offsets)
                .with_attempt(origin.attempt);
            transform.process_batch(messages, &ctx)
        }
        Err(unusable) => (0..reader.len())
            .map(|_| Err(Error::Retry(unusable.clone())))
            .collect(),
    };
    write_answers(&reader, &answers, writer, out)
}

#[cfg(test)]
mod tests {
    use rustmq_etl_buffer::{write_batch, AnswerReader, MessageIn};

    use super::*;
    use crate::{Context, Params};

    /// Answers by value: `same` → the input, `route` → the input to `audit`, `drop`
    /// → nothing, `edit` → a new value, `fail` → a failure, `dead` → a dead letter
    /// holding the input; any other value gets a header added.
    struct ByValue;

    impl Transform for ByValue {
        fn init(_params: &Params) -> Result<Self, String> {
            Ok(ByValue)
        }

        fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
            assert_eq!(ctx.pipeline_id(), "p");
            assert_eq!(ctx.attempt(), 3);
            match msg.value.as_slice() {
                b"same" => Ok(vec![Output::from(msg)]),
                b"route" => Ok(vec![Output::from(msg).to("audit")]),
                b"drop" => Ok(vec![]),
                b"edit" => Ok(vec![Output::from(msg).with_value("edited")]),
                b"fail" => Err(Error::retry("no")),
                b"dead" => Err(Error::dead_letter_with("bad", vec![Output::from(msg)])),
                _ => Ok(vec![Output::from(msg).with_header("seen", "1")]),
            }
        }
    }

    fn batch(values: &[&str]) -> Vec<u8> {
        let headers: [(&[u8], &[u8]); 1] = [(b"h", b"v")];
        let mut buf = Vec::new();
        write_batch(
            &mut buf,
            values.len(),
            values.iter().enumerate().map(|(i, v)| MessageIn {
                offset: 10 + i as u64,
                timestamp: 7,
                key: Some(b"k".as_slice()),
                value: v.as_bytes(),
                headers: headers.iter().copied(),
            }),
        )
        .unwrap();
        buf
    }

    fn run(values: &[&str]) -> Vec<u8> {
        let origin = Origin {
            pipeline_id: "p",
            source_topic: "in",
            attempt: 3,
        };
        let mut out = Vec::new();
        process_buffer(
            Ok(&ByValue),
            &batch(values),
            &origin,
            &mut AnswerWriter::new(),
            &mut out,
        )
        .unwrap();
        out
    }

    #[test]
    fn an_unchanged_output_is_written_as_a_pass_and_a_changed_one_in_full() {
        let answer = run(&["same", "route", "drop", "edit", "other"]);
        let reader = AnswerReader::new(&answer, 5).unwrap();
        let outputs = |i| {
            let r = reader.result(i).unwrap();
            assert_eq!(r.kind, Kind::Outputs);
            r.outputs
                .map(|o| reader.output(o).unwrap())
                .collect::<Vec<_>>()
        };
        let same = outputs(0);
        assert_eq!((same[0].pass, same[0].topic), (Some(0), None));
        let routed = outputs(1);
        assert_eq!(
            (routed[0].pass, routed[0].topic),
            (Some(1), Some(&b"audit"[..]))
        );
        assert!(outputs(2).is_empty());
        let edited = outputs(3);
        assert_eq!((edited[0].pass, edited[0].value), (None, &b"edited"[..]));
        assert_eq!(edited[0].key, Some(&b"k"[..]));
        assert_eq!(edited[0].timestamp, 7);
        let other = outputs(4);
        assert_eq!(other[0].pass, None);
        let headers: Vec<_> = other[0].headers.iter().map(Result::unwrap).collect();
        assert_eq!(headers, [(&b"h"[..], &b"v"[..]), (b"seen", b"1")]);
    }

    /// [`ByValue`] in place: the same answers, unchanged ones as [`Emit::unchanged`].
    struct InPlace;

    impl Transform for InPlace {
        const IN_PLACE: bool = true;

        fn init(_params: &Params) -> Result<Self, String> {
            Ok(InPlace)
        }

        fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
            ByValue.process(msg, ctx)
        }

        fn process_ref(
            &self,
            msg: crate::MessageRef<'_>,
            ctx: &Context,
        ) -> Result<Vec<Emit>, Error> {
            assert_eq!((ctx.source_topic(), ctx.attempt()), ("in", 3));
            match msg.value() {
                b"same" => Ok(vec![Emit::unchanged()]),
                b"route" => Ok(vec![Emit::unchanged_to("audit")]),
                _ => self
                    .process(msg.to_message(), ctx)
                    .map(|o| o.into_iter().map(Emit::from).collect()),
            }
        }
    }

    #[test]
    fn in_place_answers_are_the_same_as_owned_ones_with_unchanged_inputs_as_passes() {
        let values = ["same", "route", "drop", "edit", "other", "fail", "dead"];
        let origin = Origin {
            pipeline_id: "p",
            source_topic: "in",
            attempt: 3,
        };
        let mut in_place = Vec::new();
        process_buffer(
            Ok(&InPlace),
            &batch(&values),
            &origin,
            &mut AnswerWriter::new(),
            &mut in_place,
        )
        .unwrap();
        assert_eq!(in_place, run(&values), "the same answer, byte for byte");
        let reader = AnswerReader::new(&in_place, values.len()).unwrap();
        let first = reader.result(0).unwrap().outputs.start;
        assert_eq!(reader.output(first).unwrap().pass, Some(0));
    }

    #[test]
    fn failures_and_dead_letters_keep_their_reasons_and_outputs() {
        let answer = run(&["fail", "dead"]);
        let reader = AnswerReader::new(&answer, 2).unwrap();
        let fail = reader.result(0).unwrap();
        assert_eq!((fail.kind, fail.error), (Kind::Error, Some(&b"no"[..])));
        assert!(fail.outputs.is_empty());
        let dead = reader.result(1).unwrap();
        assert_eq!(
            (dead.kind, dead.error),
            (Kind::DeadLetter, Some(&b"bad"[..]))
        );
        assert_eq!(reader.output(dead.outputs.start).unwrap().pass, Some(1));
    }

    #[test]
    fn without_an_instance_every_message_is_a_failure_naming_why() {
        let origin = Origin {
            pipeline_id: "p",
            source_topic: "in",
            attempt: 1,
        };
        let mut out = Vec::new();
        process_buffer::<ByValue>(
            Err("refused".into()),
            &batch(&["a", "b"]),
            &origin,
            &mut AnswerWriter::new(),
            &mut out,
        )
        .unwrap();
        let reader = AnswerReader::new(&out, 2).unwrap();
        for i in 0..2 {
            let r = reader.result(i).unwrap();
            assert_eq!((r.kind, r.error), (Kind::Error, Some(&b"refused"[..])));
        }
    }

    #[test]
    fn a_batch_that_breaks_the_layout_is_an_error_not_a_panic() {
        let mut buf = batch(&["a"]);
        buf[0] = b'X';
        let origin = Origin {
            pipeline_id: "p",
            source_topic: "in",
            attempt: 1,
        };
        let err = process_buffer(
            Ok(&ByValue),
            &buf,
            &origin,
            &mut AnswerWriter::new(),
            &mut Vec::new(),
        );
        assert!(err.is_err());
    }
}
