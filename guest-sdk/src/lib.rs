//! Write RustMQ ETL transform modules as plain Rust.
//!
//! A module is a type that implements [`Transform`], exported with [`export!`]. The
//! crate owns the contract (`wit/etl.wit`, the `rustmq:etl/etl-buffer@1.2.0` world),
//! generates its bindings and converts between them and the plain types below, so a
//! module never sees WIT records, the canonical ABI or the batch buffer layout.
//!
//! ```
//! use rustmq_etl_guest::{export, Context, Error, Message, Output, Params, Transform};
//!
//! /// Upper-cases UTF-8 values; anything else is a dead letter.
//! struct Upper;
//!
//! impl Transform for Upper {
//!     fn init(_params: &Params) -> Result<Self, String> {
//!         Ok(Upper)
//!     }
//!
//!     fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
//!         let text = msg.value_str().map_err(|_| Error::dead_letter("value is not UTF-8"))?;
//!         let upper = text.to_uppercase();
//!         Ok(vec![Output::from(msg).with_value(upper)])
//!     }
//! }
//!
//! export!(Upper);
//!
//! // Natively, the same type runs under `cargo test`:
//! let upper = rustmq_etl_guest::testing::init::<Upper>(&[]).unwrap();
//! let out = rustmq_etl_guest::testing::run(&upper, Message::new("hi")).unwrap();
//! assert_eq!(out[0].value, b"HI");
//! ```
//!
//! # Layout
//!
//! - [`Transform`] and [`export!`] (this file): the one entry point.
//! - `message`: [`Message`] (what a module receives) and [`Output`] (what it writes,
//!   optionally to a declared route).
//! - `in_place`: [`MessageRef`] (a message read where the broker wrote it) and
//!   [`Emit`] (an output that may be "the input unchanged"), for
//!   [`Transform::process_ref`].
//! - `context`: [`Context`] and [`BatchContext`], where the messages come from.
//! - `error`: [`Error`], a retried failure or a dead letter.
//! - `params`: [`Params`] given to `init`, and [`param`] for later reads.
//! - [`state`]: the pipeline's durable keyed state.
//! - [`log`]: lines in the broker's log.
//! - `testing` (not on wasm32): runs a transform natively, as the broker would.
//! - `sys`: the two backends, the broker's imports on wasm32 (with the generated
//!   bindings and the glue [`export!`] expands to) and in-memory stand-ins elsewhere,
//!   and the batch buffer's reading and writing (`sys/buffer.rs`, on every target).

mod context;
mod error;
mod in_place;
pub mod log;
mod message;
mod params;
pub mod state;
mod sys;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use context::{BatchContext, Context};
pub use error::Error;
pub use in_place::{process_in_place, Emit, MessageRef};
pub use message::{Message, Output};
pub use params::{param, Params};
pub use state::StateError;

/// A transform module: built once per instance by [`init`](Transform::init), then
/// called for every message.
///
/// Implement it for your type and export the type with [`export!`]. Instances are
/// reused across calls, so `self` may hold settings and caches, but the broker may
/// replace an instance at any time: keep what must last in [`state`].
pub trait Transform: Sized + 'static {
    /// Called once per instance with the pipeline's parameters
    /// (`configuration.params`). An `Err` refuses them: the pipeline fails to start
    /// with that message. [`state`] is unavailable here.
    fn init(params: &Params) -> Result<Self, String>;

    /// Transforms one message. `Ok(vec![])` filters it out, `Ok(vec![one])`
    /// transforms it, several outputs fan it out (written in order). See [`Error`]
    /// for the two ways to fail.
    fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error>;

    /// Whether batch mode hands this transform each message in place, through
    /// [`process_ref`](Transform::process_ref), instead of owned, through
    /// [`process_batch`](Transform::process_batch). Set it to `true` when you
    /// override `process_ref`.
    const IN_PLACE: bool = false;

    /// Transforms one message of a batch where the broker wrote it: `msg` borrows
    /// the batch buffer, so reading it copies nothing, and
    /// [`Emit::unchanged`] (or [`Emit::unchanged_to`] a route) answers "this input
    /// as it is" without copying it back. Called in batch mode, one message at a
    /// time in order, when [`IN_PLACE`](Transform::IN_PLACE) is `true`; single
    /// message mode calls [`process`](Transform::process), which must mean the same.
    /// The answer means what `process`'s would.
    ///
    /// The default copies the message and calls `process`.
    fn process_ref(&self, msg: MessageRef<'_>, ctx: &Context) -> Result<Vec<Emit>, Error> {
        self.process(msg.to_message(), ctx)
            .map(|outputs| outputs.into_iter().map(Emit::New).collect())
    }

    /// Transforms a batch: one result per message, in order. The broker calls it
    /// when the pipeline's `processing_mode` is `batch`, so a whole batch costs one
    /// call into the module: the batch crosses as one buffer (contract 1.2), read
    /// into [`Message`]s here, and the answer goes back as one buffer. An output
    /// equal to its input (`Output::from(msg)`, whatever its topic) goes back as a
    /// reference to the input, so filters and routers copy no payload back.
    ///
    /// The default calls [`process`](Transform::process) for each message inside the
    /// module. Override it to share work across a batch; the answer must still hold
    /// exactly one result per message, or the broker discards the call and processes
    /// the batch again one message per call.
    fn process_batch(
        &self,
        msgs: Vec<Message>,
        ctx: &BatchContext,
    ) -> Vec<Result<Vec<Output>, Error>> {
        let offsets = ctx.source_offsets().len();
        if offsets != msgs.len() {
            let error = format!(
                "the batch context holds {offsets} source offsets for {} messages",
                msgs.len()
            );
            return msgs
                .iter()
                .map(|_| Err(Error::retry(error.clone())))
                .collect();
        }
        msgs.into_iter()
            .zip(ctx.contexts())
            .map(|(msg, ctx)| self.process(msg, &ctx))
            .collect()
    }
}

/// Exports a [`Transform`] as the module's implementation of the
/// `rustmq:etl/etl-buffer@1.2.0` world: `init`, `process` and `process-buffer`.
///
/// Use it once, at the crate root of a `cdylib`:
///
/// ```
/// # use rustmq_etl_guest::{Context, Error, Message, Output, Params, Transform};
/// struct Identity;
///
/// impl Transform for Identity {
///     fn init(_params: &Params) -> Result<Self, String> {
///         Ok(Identity)
///     }
///     fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
///         Ok(vec![Output::from(msg)])
///     }
/// }
///
/// rustmq_etl_guest::export!(Identity);
/// ```
///
/// The instance `init` builds lives in a static of the module. Should the module be
/// called before `init` (the broker never does), it is built from empty parameters,
/// and a refusal answers every message with a retried failure. On targets other
/// than wasm32 the macro only checks that the type implements [`Transform`].
#[macro_export]
macro_rules! export {
    ($transform:ty) => {
        const _: () = {
            fn assert_transform<T: $crate::Transform>() {}
            let _ = assert_transform::<$transform>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::__private::bindings as wit;

            ::std::thread_local! {
                static INSTANCE: ::core::cell::OnceCell<$transform> =
                    const { ::core::cell::OnceCell::new() };
            }

            struct Exports;

            impl wit::Guest for Exports {
                fn init(
                    params: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    INSTANCE.with(|cell| $crate::__private::init(cell, params))
                }

                fn process(msg: wit::Message, ctx: wit::ProcessContext) -> wit::ProcessResult {
                    INSTANCE.with(|cell| $crate::__private::process(cell, msg, ctx))
                }

                fn process_buffer(
                    batch: ::std::vec::Vec<u8>,
                    ctx: wit::BufferContext,
                ) -> ::std::vec::Vec<u8> {
                    INSTANCE.with(|cell| $crate::__private::process_buffer(cell, batch, ctx))
                }
            }

    $crate::__private::bindings::export!(Exports with_types_in $crate::__private::bindings);
        };
    };
}

/// What [`export!`] expands to; not part of the API.
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
pub mod __private {
    pub use crate::sys::bindings;
    pub use crate::sys::glue::{init, process, process_buffer};
}

#[cfg(test)]
mod tests {
    /// The crate's copy of the contract must be the broker's `wit/1.2.0/etl.wit`,
    /// byte for byte. Checked only inside the broker's repository (a copy of the
    /// crate elsewhere has nothing to compare with).
    #[test]
    fn wit_copy_is_the_broker_contract_1_2_0() {
        let crate_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let repo_wit = crate_dir.join("../wit");
        if !repo_wit.is_dir() {
            return;
        }
        let broker = std::fs::read(repo_wit.join("1.2.0/etl.wit")).unwrap();
        let copy = std::fs::read(crate_dir.join("wit/etl.wit")).unwrap();
        assert!(
            broker == copy,
            "guest-sdk/wit/etl.wit differs from wit/1.2.0/etl.wit: copy the broker's file"
        );
    }
}
