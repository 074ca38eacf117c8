//! Counts messages per key in the pipeline's durable state, through the SDK.
//!
//! For a message with key `k` (no key counts as `""`), the number stored under `k`
//! (decimal UTF-8 text) goes up by one. The output is the input with the new count
//! as its value (decimal text) and in header `x-count`; key, other headers and
//! timestamp are kept. A value of exactly `trap` panics, so a test can make one
//! message of a batch trap. Batches go through the SDK's default `process_batch`.

use rustmq_etl_guest::{state, Context, Error, Message, Output, Params, Transform};

struct Counter;

impl Transform for Counter {
    fn init(_params: &Params) -> Result<Self, String> {
        Ok(Counter)
    }

    fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
        if msg.value == b"trap" {
            panic!("asked to trap");
        }
        let count = state::incr(msg.key.as_deref().unwrap_or(""))?.to_string();
        Ok(vec![Output::from(msg)
            .with_value(count.clone())
            .with_header("x-count", count)])
    }
}

rustmq_etl_guest::export!(Counter);
