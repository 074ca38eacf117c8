//! A 1.1 `etl-batch` identity on raw bindings: each message written out unchanged, by
//! `process` and `process-batch` alike. The 1.1 batch path as a module built before
//! the SDK moved to 1.2 takes it, beside the SDK's 1.2 modules in the same tests and
//! benchmarks.

wit_bindgen::generate!({ path: "../../../wit/1.1.0", world: "etl-batch" });

use rustmq::etl::types::OutputMessage;

struct BatchV11;

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

impl Guest for BatchV11 {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
        identity(msg)
    }

    fn process_batch(msgs: Vec<Message>, _ctx: BatchContext) -> Vec<ProcessResult> {
        msgs.into_iter().map(identity).collect()
    }
}

export!(BatchV11);
