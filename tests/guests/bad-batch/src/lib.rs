//! A 1.1 `etl-batch` component whose `process-batch` breaks the contract: it answers
//! one result more than it was given (identity results, then an empty one), so the
//! tests can check that the broker refuses a batch answer of the wrong length.
//! `process` is the identity. Raw bindings, not the SDK, so the answer can be wrong.

wit_bindgen::generate!({ path: "../../../wit/1.1.0", world: "etl-batch" });

use rustmq::etl::types::OutputMessage;

struct BadBatch;

fn identity(msg: Message) -> ProcessResult {
    let out = OutputMessage {
        topic: None,
        key: msg.key,
        value: msg.value,
        headers: msg.headers,
        timestamp: msg.timestamp,
    };
    ProcessResult {
        transformed_messages: vec![out],
        should_continue: true,
        error: None,
    }
}

impl Guest for BadBatch {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
        identity(msg)
    }

    fn process_batch(msgs: Vec<Message>, _ctx: BatchContext) -> Vec<ProcessResult> {
        let mut results: Vec<ProcessResult> = msgs.into_iter().map(identity).collect();
        results.push(ProcessResult {
            transformed_messages: vec![],
            should_continue: true,
            error: None,
        });
        results
    }
}

export!(BadBatch);
