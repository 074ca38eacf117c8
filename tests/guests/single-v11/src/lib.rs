//! A 1.1 module without a batch export: the `etl` world of `rustmq:etl@1.1.0`
//! (`init` and `process` only), returning every message unchanged. Raw bindings,
//! not the SDK (which always exports `process-batch`).

wit_bindgen::generate!({ path: "../../../wit/1.1.0", world: "etl" });

use rustmq::etl::types::OutputMessage;

struct SingleV11;

impl Guest for SingleV11 {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
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
}

export!(SingleV11);
