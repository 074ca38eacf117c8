//! Stores every value in durable state and passes the message on, through the SDK;
//! used to fill a pipeline's state up to its quota.
//!
//! The value is stored under the message key (no key counts as `""`). A refused
//! `set` is answered as a retried failure (the broker fails the message anyway).

use rustmq_etl_guest::{state, Context, Error, Message, Output, Params, Transform};

struct Stash;

impl Transform for Stash {
    fn init(_params: &Params) -> Result<Self, String> {
        Ok(Stash)
    }

    fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
        // `?` turns a refused `set` into `Error::Retry`.
        state::set(msg.key.as_deref().unwrap_or(""), &msg.value)?;
        Ok(vec![Output::from(msg)])
    }
}

rustmq_etl_guest::export!(Stash);
