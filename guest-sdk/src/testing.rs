//! Runs a [`Transform`] natively, the way the broker would, for unit tests under
//! plain `cargo test` (no WebAssembly, no broker). Not built for wasm32.
//!
//! State, parameters and the in-`init` flag are per thread: each test (one thread
//! each under `cargo test`) starts from empty state and no parameters.
//!
//! ```
//! use rustmq_etl_guest::{state, testing, Context, Error, Message, Output, Params, Transform};
//!
//! struct Seen;
//!
//! impl Transform for Seen {
//!     fn init(_params: &Params) -> Result<Self, String> {
//!         Ok(Seen)
//!     }
//!     fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
//!         let n = state::incr("seen")?;
//!         Ok(vec![Output::from(msg).with_header("seen", n.to_string())])
//!     }
//! }
//!
//! let seen = testing::init::<Seen>(&[]).unwrap();
//! testing::run(&seen, Message::new("a")).unwrap();
//! let out = testing::run(&seen, Message::new("b")).unwrap();
//! assert_eq!(out[0].header("seen"), Some("2"));
//! assert_eq!(testing::state_snapshot()["seen"], b"2");
//! ```

use std::collections::BTreeMap;

use crate::sys::native;
use crate::{BatchContext, Context, Error, Message, Output, Params, Transform};

/// The pipeline id in the contexts [`run`] and [`run_batch`] pass.
pub const PIPELINE_ID: &str = "test-pipeline";
/// The source topic in the contexts [`run`] and [`run_batch`] pass.
pub const SOURCE_TOPIC: &str = "test-input";

/// Sets the parameters [`param`](crate::param) answers, and builds the transform
/// from them as the broker's `init` would (with [`state`](crate::state) unavailable).
pub fn init<T: Transform>(params: &[(&str, &str)]) -> Result<T, String> {
    let params: Params = params.iter().copied().collect();
    native::set_params(params.clone());
    native::in_init(|| T::init(&params))
}

/// Sets the parameters [`param`](crate::param) answers, without calling `init`.
pub fn set_params(params: &[(&str, &str)]) {
    native::set_params(params.iter().copied().collect());
}

/// The context [`run`] passes: pipeline [`PIPELINE_ID`], topic [`SOURCE_TOPIC`],
/// offset 0, first attempt.
pub fn context() -> Context {
    Context::new(PIPELINE_ID, SOURCE_TOPIC, 0)
}

/// Processes one message with [`context()`]; see [`run_with`].
pub fn run<T: Transform>(transform: &T, msg: Message) -> Result<Vec<Output>, Error> {
    run_with(transform, msg, &context())
}

/// Processes one message. As in the broker, a failure ([`Error::Retry`]) discards
/// the state changes the call made; success and dead letters keep them. There is no
/// retry: the failure is returned.
pub fn run_with<T: Transform>(
    transform: &T,
    msg: Message,
    ctx: &Context,
) -> Result<Vec<Output>, Error> {
    let before = native::snapshot();
    let answer = transform.process(msg, ctx);
    if matches!(answer, Err(Error::Retry(_))) {
        native::restore(before);
    }
    answer
}

/// Processes one message through [`process_ref`](Transform::process_ref), as batch
/// mode does for a transform that sets [`IN_PLACE`](Transform::IN_PLACE), with
/// [`context()`]; each [`Emit`] comes back as the output it stands for. As in
/// [`run_with`], a failure discards the call's state changes.
pub fn run_ref<T: Transform>(transform: &T, msg: Message) -> Result<Vec<Output>, Error> {
    let before = native::snapshot();
    let answer = crate::process_in_place(transform, msg, &context());
    if matches!(answer, Err(Error::Retry(_))) {
        native::restore(before);
    }
    answer
}

/// Processes a batch in one [`process_batch`](Transform::process_batch) call
/// (offsets 0, 1, ...), with the broker's rule for failures: when one message of
/// the batch fails ([`Error::Retry`]), or the answer does not hold one result per
/// message, the call's state changes are discarded and every message is processed
/// again in a batch of its own, each keeping or discarding its own changes.
pub fn run_batch<T: Transform>(
    transform: &T,
    msgs: Vec<Message>,
) -> Vec<Result<Vec<Output>, Error>> {
    let before = native::snapshot();
    let offsets = (0..msgs.len() as u64).collect();
    let ctx = BatchContext::new(PIPELINE_ID, SOURCE_TOPIC, offsets);
    let answers = transform.process_batch(msgs.clone(), &ctx);
    let failed = answers.iter().any(|a| matches!(a, Err(Error::Retry(_))));
    if answers.len() == msgs.len() && !failed {
        return answers;
    }
    native::restore(before);
    msgs.into_iter()
        .zip(ctx.source_offsets().to_vec())
        .map(|(msg, offset)| {
            let before = native::snapshot();
            let ctx = BatchContext::new(PIPELINE_ID, SOURCE_TOPIC, vec![offset]);
            let mut answer = transform.process_batch(vec![msg], &ctx);
            let answer = match (answer.pop(), answer.is_empty()) {
                (Some(answer), true) => answer,
                _ => Err(Error::retry(
                    "process-batch answered a batch of one message with other than one result",
                )),
            };
            if matches!(answer, Err(Error::Retry(_))) {
                native::restore(before);
            }
            answer
        })
        .collect()
}

/// Empties this thread's state.
pub fn reset_state() {
    native::restore(BTreeMap::new());
}

/// A copy of this thread's state.
pub fn state_snapshot() -> BTreeMap<String, Vec<u8>> {
    native::snapshot()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{param, state};

    /// Counts messages in state; fails messages whose value is `fail` after
    /// counting them, and dead-letters `bad` after counting them.
    struct Counting {
        tag: String,
    }

    impl Transform for Counting {
        fn init(params: &Params) -> Result<Self, String> {
            if state::get("x").is_ok() {
                return Err("state must be unavailable in init".into());
            }
            Ok(Counting {
                tag: params.get("tag").unwrap_or("none").to_string(),
            })
        }

        fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
            let n = state::incr("count")?;
            match msg.value_str() {
                Ok("fail") => Err(Error::retry("asked to fail")),
                Ok("bad") => Err(Error::dead_letter("asked to dead-letter")),
                _ => Ok(vec![Output::from(msg)
                    .with_header("n", n.to_string())
                    .with_header("tag", self.tag.clone())
                    .with_header("offset", ctx.source_offset().to_string())]),
            }
        }
    }

    #[test]
    fn init_reads_params_and_cannot_use_state() {
        let t = init::<Counting>(&[("tag", "blue")]).unwrap();
        assert_eq!(t.tag, "blue");
        assert_eq!(param("tag").as_deref(), Some("blue"));
        assert_eq!(param("other"), None);
        set_params(&[]);
        assert_eq!(param("tag"), None);
    }

    #[test]
    fn a_retried_failure_discards_its_state_changes_and_a_dead_letter_keeps_them() {
        let t = init::<Counting>(&[]).unwrap();
        run(&t, Message::new("ok")).unwrap();
        assert!(run(&t, Message::new("fail")).unwrap_err().is_retried());
        assert_eq!(state::get_u64("count"), Ok(Some(1)));
        assert!(!run(&t, Message::new("bad")).unwrap_err().is_retried());
        assert_eq!(state::get_u64("count"), Ok(Some(2)));
        reset_state();
        assert!(state_snapshot().is_empty());
    }

    #[test]
    fn the_default_batch_loops_over_process_with_each_offset() {
        let t = init::<Counting>(&[]).unwrap();
        let out = run_batch(&t, vec![Message::new("a"), Message::new("b")]);
        let offsets: Vec<_> = out
            .iter()
            .map(|r| r.as_ref().unwrap()[0].header("offset").unwrap().to_string())
            .collect();
        assert_eq!(offsets, ["0", "1"]);
        assert_eq!(state::get_u64("count"), Ok(Some(2)));
    }

    #[test]
    fn a_failure_in_a_batch_replays_it_one_message_per_call() {
        let t = init::<Counting>(&[]).unwrap();
        let out = run_batch(
            &t,
            vec![Message::new("a"), Message::new("fail"), Message::new("b")],
        );
        assert_eq!(out[0].as_ref().unwrap()[0].header("n"), Some("1"));
        assert!(out[1].as_ref().unwrap_err().is_retried());
        // The failed message's increment was discarded in the replay.
        assert_eq!(out[2].as_ref().unwrap()[0].header("n"), Some("2"));
        assert_eq!(state::get_u64("count"), Ok(Some(2)));
    }

    /// Passes messages on in place, to `audit` when they have header `audit`.
    struct Router;

    impl Transform for Router {
        const IN_PLACE: bool = true;

        fn init(_params: &Params) -> Result<Self, String> {
            Ok(Router)
        }

        fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
            crate::process_in_place(self, msg, ctx)
        }

        fn process_ref(
            &self,
            msg: crate::MessageRef<'_>,
            _ctx: &Context,
        ) -> Result<Vec<crate::Emit>, Error> {
            Ok(vec![match msg.header("audit") {
                Some(_) => crate::Emit::unchanged_to("audit"),
                None => crate::Emit::unchanged(),
            }])
        }
    }

    #[test]
    fn run_ref_gives_each_unchanged_emit_as_its_input() {
        let t = init::<Router>(&[]).unwrap();
        let msg = Message::new("v").with_key("k").with_header("audit", "1");
        let out = run_ref(&t, msg.clone()).unwrap();
        assert_eq!(out, vec![Output::from(msg.clone()).to("audit")]);
        assert_eq!(run(&t, msg.clone()).unwrap(), out);
        let plain = Message::new("w");
        assert_eq!(
            run_ref(&t, plain.clone()).unwrap(),
            vec![Output::from(plain)]
        );
    }

    #[test]
    fn process_batch_with_mismatched_offsets_fails_every_message() {
        let t = init::<Counting>(&[]).unwrap();
        let ctx = BatchContext::new(PIPELINE_ID, SOURCE_TOPIC, vec![0]);
        let out = t.process_batch(vec![Message::new("a"), Message::new("b")], &ctx);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|r| r.as_ref().is_err_and(Error::is_retried)));
    }
}
