//! [`Error`]: the two ways a message can fail.

use std::fmt;

use crate::{Output, StateError};

/// Why a message was not transformed. The two cases map onto the WIT
/// `process-result`: a failure is retried, a dead letter is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A failure (`should-continue = false`): the message's state changes are
    /// discarded and the call is retried according to the pipeline's retry policy;
    /// once retries are exhausted the original input goes to the error topic and the
    /// pipeline moves on. For faults that may pass (a missing dependency, a refused
    /// state update).
    Retry(String),
    /// A dead letter (`should-continue = true`): `messages`, or the original input
    /// when there are none, go to the pipeline's error topic at once, with no retry;
    /// the pipeline moves on and the call's state changes are kept. For input that
    /// will never be valid. The messages' `topic` plays no part: they all go to the
    /// error topic.
    DeadLetter {
        /// A human-readable description, recorded with the dead letter.
        reason: String,
        /// What to send to the error topic instead of the original input.
        messages: Vec<Output>,
    },
}

impl Error {
    /// A failure that the broker retries.
    pub fn retry(reason: impl Into<String>) -> Error {
        Error::Retry(reason.into())
    }

    /// A dead letter: the original input goes to the error topic, with no retry.
    pub fn dead_letter(reason: impl Into<String>) -> Error {
        Error::DeadLetter {
            reason: reason.into(),
            messages: Vec::new(),
        }
    }

    /// A dead letter that sends `messages` to the error topic instead of the input.
    pub fn dead_letter_with(reason: impl Into<String>, messages: Vec<Output>) -> Error {
        Error::DeadLetter {
            reason: reason.into(),
            messages,
        }
    }

    /// The human-readable description.
    pub fn reason(&self) -> &str {
        match self {
            Error::Retry(reason) | Error::DeadLetter { reason, .. } => reason,
        }
    }

    /// Whether the broker retries the message (a [`Error::Retry`]).
    pub fn is_retried(&self) -> bool {
        matches!(self, Error::Retry(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Retry(reason) => f.write_str(reason),
            Error::DeadLetter { reason, .. } => write!(f, "dead letter: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

/// A refused state call fails the message (so `state::set(..)?` works in
/// `process`). The broker fails the message anyway when a `set` was refused.
impl From<StateError> for Error {
    fn from(e: StateError) -> Error {
        Error::Retry(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_pick_the_case() {
        assert!(Error::retry("later").is_retried());
        assert!(!Error::dead_letter("never").is_retried());
        assert_eq!(Error::dead_letter("never").reason(), "never");
        assert_eq!(
            Error::dead_letter("never").to_string(),
            "dead letter: never"
        );
        let with = Error::dead_letter_with("bad", vec![Output::new("replacement")]);
        assert!(matches!(with, Error::DeadLetter { messages, .. } if messages.len() == 1));
    }

    #[test]
    fn a_state_error_is_a_retried_failure_with_its_message() {
        let e = Error::from(StateError::QuotaExceeded { quota_bytes: 10 });
        assert!(e.is_retried());
        assert!(e.reason().contains("quota of 10 bytes"), "{e}");
    }
}
