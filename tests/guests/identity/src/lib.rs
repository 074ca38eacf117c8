//! A component that hands every message back unchanged: the floor of the component
//! path (lowering the message in, lifting it back out), used by the benchmarks.

wit_bindgen::generate!({ path: "../../../wit", world: "etl" });

struct Identity;

impl Guest for Identity {
    fn init(_params: Vec<(String, String)>) -> Result<(), String> {
        Ok(())
    }

    fn process(msg: Message, _ctx: ProcessContext) -> ProcessResult {
        ProcessResult { transformed_messages: vec![msg], should_continue: true, error: None }
    }
}

export!(Identity);
