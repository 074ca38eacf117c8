//! A filter and router written in place with the SDK (`IN_PLACE`, `process_ref`):
//! a message whose value is `drop` is filtered out, one with header `route` goes
//! unchanged to the topic it names, and any other goes unchanged to the
//! destination. In batch mode nothing of a message is copied in either direction;
//! in single-message mode `process` gives the same answers.

use rustmq_etl_guest::{Context, Emit, Error, Message, MessageRef, Output, Params, Transform};

struct Router;

impl Transform for Router {
    const IN_PLACE: bool = true;

    fn init(_params: &Params) -> Result<Self, String> {
        Ok(Router)
    }

    fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
        rustmq_etl_guest::process_in_place(self, msg, ctx)
    }

    fn process_ref(&self, msg: MessageRef<'_>, _ctx: &Context) -> Result<Vec<Emit>, Error> {
        if msg.value() == b"drop" {
            return Ok(vec![]);
        }
        Ok(vec![match msg.header("route") {
            Some(topic) => Emit::unchanged_to(topic),
            None => Emit::unchanged(),
        }])
    }
}

rustmq_etl_guest::export!(Router);
