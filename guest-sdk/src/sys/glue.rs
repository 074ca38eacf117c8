//! What [`export!`](crate::export) calls: the WIT records converted to and from the
//! crate's types around the module's [`Transform`].

use std::cell::OnceCell;

use super::bindings as wit;
use crate::{BatchContext, Context, Error, Message, Output, Params, Transform};
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

/// The `process-batch` export.
pub fn process_batch<T: Transform>(
    cell: &OnceCell<T>,
    msgs: Vec<wit::Message>,
    ctx: wit::BatchContext,
) -> Vec<wit::ProcessResult> {
    match instance(cell) {
        Ok(transform) => {
            let ctx = BatchContext::new(&ctx.pipeline_id, &ctx.source_topic, ctx.source_offsets)
                .with_attempt(ctx.attempt);
            let msgs = msgs.into_iter().map(Message::from).collect();
            transform
                .process_batch(msgs, &ctx)
                .into_iter()
                .map(to_process_result)
                .collect()
        }
        Err(e) => msgs
            .iter()
            .map(|_| to_process_result(Err(Error::Retry(e.clone()))))
            .collect(),
    }
}
