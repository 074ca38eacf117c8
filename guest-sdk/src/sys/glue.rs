//! What [`export!`](crate::export) calls: the WIT records converted to and from the
//! crate's types around the module's [`Transform`].

use std::cell::{OnceCell, RefCell};

use rustmq_etl_buffer::AnswerWriter;

use super::bindings as wit;
use super::buffer::{self, Origin};
use crate::{Context, Error, Message, Output, Params, Transform};
use wit::rustmq::etl::types::OutputMessage;

impl From<wit::Message> for Message {
    fn from(m: wit::Message) -> Message {
        Message {
            key: m.key,
            value: m.value,
            headers: m.headers,
            timestamp: m.timestamp,
        }
    }
}

impl From<Output> for OutputMessage {
    fn from(o: Output) -> OutputMessage {
        OutputMessage {
            topic: o.topic,
            key: o.key,
            value: o.value,
            headers: o.headers,
            timestamp: o.timestamp,
        }
    }
}

fn to_process_result(answer: Result<Vec<Output>, Error>) -> wit::ProcessResult {
    let (messages, should_continue, error) = match answer {
        Ok(outputs) => (outputs, true, None),
        Err(Error::Retry(reason)) => (Vec::new(), false, Some(reason)),
        Err(Error::DeadLetter { reason, messages }) => (messages, true, Some(reason)),
    };
    wit::ProcessResult {
        transformed_messages: messages.into_iter().map(Into::into).collect(),
        should_continue,
        error,
    }
}

/// The instance `init` built; built from empty parameters if `init` has not run.
fn instance<T: Transform>(cell: &OnceCell<T>) -> Result<&T, String> {
    if let Some(transform) = cell.get() {
        return Ok(transform);
    }
    let transform = T::init(&Params::default()).map_err(|e| {
        format!("the module was called before init and refuses empty parameters: {e}")
    })?;
    Ok(cell.get_or_init(|| transform))
}

/// The `init` export.
pub fn init<T: Transform>(cell: &OnceCell<T>, params: Vec<(String, String)>) -> Result<(), String> {
    let transform = T::init(&Params::new(params))?;
    // The broker calls `init` once per instance; were it called again, the first
    // instance would stay.
    let _ = cell.set(transform);
    Ok(())
}

/// The `process` export.
pub fn process<T: Transform>(
    cell: &OnceCell<T>,
    msg: wit::Message,
    ctx: wit::ProcessContext,
) -> wit::ProcessResult {
    let answer = instance(cell).map_err(Error::Retry).and_then(|transform| {
        let ctx = Context::new(&ctx.pipeline_id, &ctx.source_topic, ctx.source_offset)
            .with_attempt(ctx.attempt);
        transform.process(msg.into(), &ctx)
    });
    to_process_result(answer)
}

/// The `process-buffer` export. The answer's tables are built in a buffer kept
/// across calls; the answer itself is handed to the broker.
pub fn process_buffer<T: Transform>(
    cell: &OnceCell<T>,
    batch: Vec<u8>,
    ctx: wit::BufferContext,
) -> Vec<u8> {
    thread_local! {
        static WRITER: RefCell<AnswerWriter> = RefCell::new(AnswerWriter::new());
    }
    let origin = Origin {
        pipeline_id: &ctx.pipeline_id,
        source_topic: &ctx.source_topic,
        attempt: ctx.attempt,
    };
    let mut answer = Vec::new();
    let written = WRITER.with_borrow_mut(|writer| {
        buffer::process_buffer(instance(cell), &batch, &origin, writer, &mut answer)
    });
    if let Err(e) = written {
        // Only a batch the broker did not lay out, or an answer past 4 GiB: the
        // trap makes the broker process the batch again one message per call.
        panic!("process-buffer: {e}");
    }
    answer
}
