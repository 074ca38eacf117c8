//! Counts messages per key in the pipeline's durable state, through the SDK.
//!
//! For a message with key `k` (no key counts as `""`), the number stored under `k`
//! (decimal UTF-8 text) goes up by one. The output is the input with the new count
//! as its value (decimal text) and in header `x-count`; key, other headers and
//! timestamp are kept. A value of exactly `trap` panics, so a test can make one
//! message of a batch trap; a value `sleep:MS` sleeps MS milliseconds before it
//! counts, so a test can catch the worker in a call; a value `dead-letter` counts,
//! then dead-letters the message; a value `delete-missing:N` first deletes N keys
//! that do not exist (`missing-0`, `missing-1`, ...). Batches go through the SDK's default
//! `process_batch`.

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
        if let Some(n) = msg.value.strip_prefix(b"delete-missing:") {
            let n: u64 = std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(0);
            for i in 0..n {
                state::delete(&format!("missing-{i}"))?;
            }
        }
        if let Some(ms) = msg.value.strip_prefix(b"sleep:") {
            let ms = std::str::from_utf8(ms).ok().and_then(|ms| ms.parse().ok());
            std::thread::sleep(std::time::Duration::from_millis(ms.unwrap_or(0)));
        }
        let count = state::incr(msg.key.as_deref().unwrap_or(""))?.to_string();
        if msg.value == b"dead-letter" {
            return Err(Error::dead_letter(format!("counted {count}, then asked to dead-letter")));
        }
        Ok(vec![Output::from(msg)
            .with_value(count.clone())
            .with_header("x-count", count)])
    }
}

rustmq_etl_guest::export!(Counter);
