//! Drops repeated keys, remembering them in durable state, through the SDK.
//!
//! The first message with a given key passes unchanged and stores `"1"` under that
//! key; later messages with the same key are filtered out. Messages without a key
//! always pass.

use rustmq_etl_guest::{state, Context, Error, Message, Output, Params, Transform};

struct Dedup;

impl Transform for Dedup {
    fn init(_params: &Params) -> Result<Self, String> {
        Ok(Dedup)
    }

    fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
        if let Some(key) = msg.key.as_deref() {
            if state::get(key)?.is_some() {
                return Ok(vec![]);
            }
            state::set(key, "1")?;
        }
        Ok(vec![Output::from(msg)])
    }
}

rustmq_etl_guest::export!(Dedup);
