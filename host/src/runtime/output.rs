//! Lifting a guest's `process-result` under the output caps, so that a hostile
//! answer is refused before the host copies it.
//!
//! wasmtime lifts a returned `list<message>` into host memory as one step. If the caps
//! (`max_output_messages`, `max_output_bytes`) were checked only afterwards, a guest
//! could make the broker allocate far more than the guest itself spends: a list of a
//! million empty records costs it 40 MB and the host twice that, and a thousand
//! records whose values all point at the same megabyte cost it one megabyte and the
//! host a gigabyte. Here every list and string of the result is a newtype whose
//! `Lift` reads the length the guest declared, charges it to a per-call
//! [`OutputBudget`], and only then lets wasmtime copy it.
//!
//! The budget is a thread-local set around the call ([`OutputBudget::guard`]):
//! lifting runs synchronously on the calling thread inside `TypedFunc::call`, and
//! `Lift` has no other way to reach per-call state.

use std::cell::Cell;

use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift};
use wasmtime::ValRaw;

use super::ProcessOutput;
use crate::message::Message;

/// Most header pairs one `process` call may return, across all its messages: the
/// legacy adapter's cap, so that components and legacy modules share one (see there
/// for why headers are counted on their own).
pub const MAX_OUTPUT_HEADERS: usize = rustmq_etl_legacy::instance::MAX_OUTPUT_HEADERS;

/// Most bytes one batch answer may make the host copy, whatever the batch size:
/// a batch of `n` messages may answer what `n` calls could, up to this. A batch
/// over it is processed again one message per call, under the per-call caps. The
/// worker also commits a batch in parts of at most this much output (plus the last
/// message's), so a pipeline's memory has a ceiling whatever its batch size.
pub const MAX_BATCH_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

/// What one call's answer may still make the host copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputBudget {
    messages_left: usize,
    bytes_left: usize,
    headers_left: usize,
    /// For a batch call, how many results the answer must hold.
    expected_results: usize,
    limits: (usize, usize),
    bytes_used: usize,
    exceeded: Option<Exceeded>,
}

/// Which cap a result went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exceeded {
    /// The list held `count` messages.
    Messages { count: usize, max: usize },
    /// Keys, values, headers and error text reached `at_least` bytes.
    Bytes { at_least: usize, max: usize },
    /// The messages carried at least `at_least` header pairs.
    Headers { at_least: usize },
    /// A batch answer held `answered` results for `expected` messages.
    Results { answered: usize, expected: usize },
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exceeded::Messages { count, max } => write!(
                f,
                "returned {count} messages, more than the fan-out limit of {max}"
            ),
            Exceeded::Bytes { at_least, max } => write!(
                f,
                "returned at least {at_least} bytes of messages, more than the output limit of {max} bytes"
            ),
            Exceeded::Headers { at_least } => write!(
                f,
                "returned at least {at_least} header pairs, more than the limit of {MAX_OUTPUT_HEADERS}"
            ),
            Exceeded::Results { answered, expected } => write!(
                f,
                "process-batch answered {answered} results for a batch of {expected} messages; it must answer exactly one result per message, in order"
            ),
        }
    }
}

thread_local! {
    static BUDGET: Cell<Option<OutputBudget>> = const { Cell::new(None) };
}

impl OutputBudget {
    /// Installs a budget of `max_messages` messages and `max_bytes` bytes on this
    /// thread until the guard drops.
    pub(crate) fn guard(max_messages: usize, max_bytes: usize) -> BudgetGuard {
        Self::batch_guard(max_messages, max_bytes, 1)
    }

    /// As [`Self::guard`], for a batch call whose answer must hold `results`
    /// results.
    pub(crate) fn batch_guard(
        max_messages: usize,
        max_bytes: usize,
        results: usize,
    ) -> BudgetGuard {
        BUDGET.with(|b| {
            b.set(Some(OutputBudget {
                messages_left: max_messages,
                bytes_left: max_bytes,
                headers_left: MAX_OUTPUT_HEADERS,
                expected_results: results,
                limits: (max_messages, max_bytes),
                bytes_used: 0,
                exceeded: None,
            }))
        });
        BudgetGuard {
            _not_send: std::marker::PhantomData,
        }
    }

    /// Charges `n` against one allowance; fails (and remembers why) when it runs out.
    fn charge(kind: Kind, n: usize) -> wasmtime::Result<()> {
        BUDGET.with(|cell| {
            // No budget installed: the type is being lifted outside a guarded call,
            // which this module never does.
            let Some(mut b) = cell.get() else {
                return Ok(());
            };
            let over = match kind {
                Kind::Messages => (n > b.messages_left).then_some(Exceeded::Messages {
                    count: n,
                    max: b.limits.0,
                }),
                Kind::Bytes => (n > b.bytes_left).then(|| Exceeded::Bytes {
                    at_least: b.bytes_used.saturating_add(n),
                    max: b.limits.1,
                }),
                Kind::Headers => (n > b.headers_left).then(|| Exceeded::Headers {
                    at_least: MAX_OUTPUT_HEADERS - b.headers_left + n,
                }),
                Kind::Results => (n != b.expected_results).then_some(Exceeded::Results {
                    answered: n,
                    expected: b.expected_results,
                }),
            };
            if let Some(over) = over {
                b.exceeded = Some(over);
                cell.set(Some(b));
                return Err(wasmtime::Error::msg(over.to_string()));
            }
            match kind {
                Kind::Messages => b.messages_left -= n,
                Kind::Bytes => {
                    b.bytes_left -= n;
                    b.bytes_used += n;
                }
                Kind::Headers => b.headers_left -= n,
                Kind::Results => {}
            }
            cell.set(Some(b));
            Ok(())
        })
    }
}

/// Removes the thread's budget when dropped; [`BudgetGuard::exceeded`] says whether a
/// cap stopped the lift.
pub(crate) struct BudgetGuard {
    /// The budget is this thread's.
    _not_send: std::marker::PhantomData<*const ()>,
}

impl BudgetGuard {
    /// The cap the answer went over, if lifting was stopped by one.
    pub(crate) fn exceeded(&self) -> Option<Exceeded> {
        BUDGET.with(|b| b.get().and_then(|b| b.exceeded))
    }
}

impl Drop for BudgetGuard {
    fn drop(&mut self) {
        BUDGET.with(|b| b.set(None));
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Messages,
    Bytes,
    Headers,
    Results,
}

/// The length half of a lowered (pointer, length) pair, flat or in memory.
fn flat_len(src: &[ValRaw; 2]) -> usize {
    src[1].get_u32() as usize
}

fn memory_len(bytes: &[u8]) -> usize {
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[4..8]);
    u32::from_le_bytes(len) as usize
}

/// Defines a newtype over `$inner` (a list or string) that charges `$charge(len)` to
/// the budget before lifting.
macro_rules! bounded {
    ($(#[$doc:meta])* $name:ident($inner:ty), typecheck = $check:ty, $kind:expr, $cost:expr) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub(crate) struct $name(pub(crate) $inner);

        // SAFETY: same representation and type check as the wrapped type, whose
        // lifting does the work.
        unsafe impl ComponentType for $name {
            type Lower = [ValRaw; 2];
            const ABI: CanonicalAbiInfo = CanonicalAbiInfo::POINTER_PAIR;

            fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
                <$check as ComponentType>::typecheck(ty, types)
            }
        }

        // SAFETY: delegates to the wrapped type after the budget check.
        unsafe impl Lift for $name {
            fn linear_lift_from_flat(
                cx: &mut LiftContext<'_>,
                ty: InterfaceType,
                src: &Self::Lower,
            ) -> wasmtime::Result<Self> {
                let cost: fn(usize) -> usize = $cost;
                OutputBudget::charge($kind, cost(flat_len(src)))?;
                <$inner as Lift>::linear_lift_from_flat(cx, ty, src).map($name)
            }

            fn linear_lift_from_memory(
                cx: &mut LiftContext<'_>,
                ty: InterfaceType,
                bytes: &[u8],
            ) -> wasmtime::Result<Self> {
                let cost: fn(usize) -> usize = $cost;
                OutputBudget::charge($kind, cost(memory_len(bytes)))?;
                <$inner as Lift>::linear_lift_from_memory(cx, ty, bytes).map($name)
            }
        }
    };
}

// A string's length word carries a UTF-16 tag bit in other encodings; the mask keeps
// the charge to the real unit count.
const STRING_LEN_MASK: usize = (1 << 31) - 1;

bounded!(
    /// A guest string, charged to the byte budget.
    BoundedString(String), typecheck = String, Kind::Bytes, |len| len & STRING_LEN_MASK
);
bounded!(
    /// A message value, charged to the byte budget.
    BoundedBytes(Vec<u8>), typecheck = Vec<u8>, Kind::Bytes, |len| len
);
bounded!(
    /// A message's headers, charged to the header budget.
    BoundedHeaders(Vec<(BoundedString, BoundedString)>),
    typecheck = Vec<(String, String)>, Kind::Headers, |len| len
);
bounded!(
    /// The returned messages, charged to the fan-out budget.
    BoundedMessages(Vec<GuestMessage>), typecheck = Vec<GuestMessage>, Kind::Messages, |len| len
);

bounded!(
    /// The returned 1.1 output messages, charged to the fan-out budget.
    BoundedOutputs(Vec<GuestOutput>), typecheck = Vec<GuestOutput>, Kind::Messages, |len| len
);
bounded!(
    /// A batch answer: its length must be the batch's.
    BoundedResults(Vec<GuestResultV11>), typecheck = Vec<GuestResultV11>, Kind::Results, |len| len
);

/// The WIT `message` record as lifted from a guest's answer.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct GuestMessage {
    key: Option<BoundedString>,
    value: BoundedBytes,
    headers: BoundedHeaders,
    timestamp: i64,
}

/// The WIT `process-result` record as lifted from a guest's answer.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct GuestResult {
    #[component(name = "transformed-messages")]
    pub(crate) transformed_messages: BoundedMessages,
    #[component(name = "should-continue")]
    pub(crate) should_continue: bool,
    pub(crate) error: Option<BoundedString>,
}

/// The 1.1 WIT `output-message` record as lifted from a guest's answer.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct GuestOutput {
    topic: Option<BoundedString>,
    key: Option<BoundedString>,
    value: BoundedBytes,
    headers: BoundedHeaders,
    timestamp: i64,
}

/// The 1.1 WIT `process-result` record as lifted from a guest's answer.
#[derive(ComponentType, Lift, Debug)]
#[component(record)]
pub(crate) struct GuestResultV11 {
    #[component(name = "transformed-messages")]
    pub(crate) transformed_messages: BoundedOutputs,
    #[component(name = "should-continue")]
    pub(crate) should_continue: bool,
    pub(crate) error: Option<BoundedString>,
}

impl From<GuestResult> for ProcessOutput {
    fn from(result: GuestResult) -> ProcessOutput {
        ProcessOutput {
            messages: result
                .transformed_messages
                .0
                .into_iter()
                .map(Message::from)
                .collect(),
            topics: Vec::new(),
            should_continue: result.should_continue,
            error: result.error.map(|e| e.0),
            moved_input: None,
        }
    }
}

impl From<GuestResultV11> for ProcessOutput {
    fn from(result: GuestResultV11) -> ProcessOutput {
        let outputs = result.transformed_messages.0;
        let mut topics = Vec::new();
        let mut messages = Vec::with_capacity(outputs.len());
        for (i, m) in outputs.into_iter().enumerate() {
            if let Some(topic) = m.topic {
                topics.push((i, topic.0));
            }
            messages.push(Message {
                key: m.key.map(|k| k.0),
                value: m.value.0,
                headers: m.headers.0.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
                timestamp: m.timestamp,
            });
        }
        ProcessOutput {
            messages,
            topics,
            should_continue: result.should_continue,
            error: result.error.map(|e| e.0),
            moved_input: None,
        }
    }
}

impl From<GuestMessage> for Message {
    fn from(m: GuestMessage) -> Message {
        Message {
            key: m.key.map(|k| k.0),
            value: m.value.0,
            headers: m.headers.0.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
            timestamp: m.timestamp,
        }
    }
}
