//! Returns every message unchanged, through the SDK: the cost of the SDK's
//! conversions and of its batch export, for the benchmarks.

use rustmq_etl_guest::{Context, Error, Message, Output, Params, Transform};

struct Identity;

impl Transform for Identity {
    fn init(_params: &Params) -> Result<Self, String> {
        Ok(Identity)
    }

    fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
        Ok(vec![Output::from(msg)])
    }
}

rustmq_etl_guest::export!(Identity);
