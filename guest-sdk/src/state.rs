//! The pipeline's durable keyed state.
//!
//! Every pipeline has one key space, shared by every instance and every version of
//! its module and kept across restarts, recycles and hot swaps until the operator
//! resets it. What a message changes becomes durable in the same transaction as that
//! message's outputs and source offset, so after a crash the state is exactly what
//! the committed outputs imply. A message that fails ([`Error::Retry`]) sees none of
//! its failed attempt's changes; a dead letter keeps them. Reads see the pipeline's
//! own earlier changes at once, committed or not.
//!
//! The broker refuses calls with a [`StateError`]: keys and values have size
//! limits and the pipeline a quota, and state needs a pipeline between the broker's
//! own topics (with a Kafka endpoint, and in `init`, every call is `Unavailable`). A
//! refused `set` also fails the message (cause `state_limit`), so that no update is
//! silently lost.
//!
//! Natively (not wasm32) the state is an in-memory map per thread, without limits;
//! see `testing`.
//!
//! [`Error::Retry`]: crate::Error::Retry

use std::fmt;

/// Why a state call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The key is longer than the broker's limit.
    KeyTooLong {
        /// The limit, in bytes.
        limit_bytes: u32,
    },
    /// The value is larger than the broker's limit.
    ValueTooLarge {
        /// The limit, in bytes.
        limit_bytes: u32,
    },
    /// The pipeline's state would grow past its quota.
    QuotaExceeded {
        /// The quota, in bytes.
        quota_bytes: u64,
    },
    /// This pipeline has no durable state.
    Unavailable {
        /// Why, as the broker says it.
        reason: String,
    },
    /// The value under `key` is not what a typed helper ([`get_u64`], [`incr`])
    /// expects: a decimal `u64` in UTF-8.
    NotANumber {
        /// The key read.
        key: String,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::KeyTooLong { limit_bytes } => {
                write!(
                    f,
                    "state key is longer than the limit of {limit_bytes} bytes"
                )
            }
            StateError::ValueTooLarge { limit_bytes } => {
                write!(
                    f,
                    "state value is larger than the limit of {limit_bytes} bytes"
                )
            }
            StateError::QuotaExceeded { quota_bytes } => write!(
                f,
                "the pipeline's state would grow past its quota of {quota_bytes} bytes"
            ),
            StateError::Unavailable { reason } => {
                write!(f, "durable state is unavailable: {reason}")
            }
            StateError::NotANumber { key } => write!(
                f,
                "the state value under key {key:?} is not a decimal number"
            ),
        }
    }
}

impl std::error::Error for StateError {}

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    crate::sys::state_get(key)
}

/// Stores `value` under `key`, replacing any earlier value.
pub fn set(key: &str, value: impl AsRef<[u8]>) -> Result<(), StateError> {
    crate::sys::state_set(key, value.as_ref())
}

/// Removes `key`; removing a key that is not there is not an error.
pub fn delete(key: &str) -> Result<(), StateError> {
    crate::sys::state_delete(key)
}

/// The number stored under `key` as decimal UTF-8 text (by [`set_u64`] or
/// [`incr`]), if any.
pub fn get_u64(key: &str) -> Result<Option<u64>, StateError> {
    get(key)?
        .map(|bytes| {
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| StateError::NotANumber {
                    key: key.to_string(),
                })
        })
        .transpose()
}

/// Stores `n` under `key` as decimal UTF-8 text.
pub fn set_u64(key: &str, n: u64) -> Result<(), StateError> {
    set(key, n.to_string())
}

/// Adds one to the number under `key` (absent counts as 0) and returns the new
/// value, stored as decimal UTF-8 text. Saturates at `u64::MAX`.
pub fn incr(key: &str) -> Result<u64, StateError> {
    let n = get_u64(key)?.unwrap_or(0).saturating_add(1);
    set_u64(key, n)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn set_get_delete_round_trip() {
        testing::reset_state();
        assert_eq!(get("k"), Ok(None));
        set("k", b"v").unwrap();
        assert_eq!(get("k"), Ok(Some(b"v".to_vec())));
        delete("k").unwrap();
        delete("k").unwrap();
        assert_eq!(get("k"), Ok(None));
    }

    #[test]
    fn incr_counts_from_zero_in_decimal_text() {
        testing::reset_state();
        assert_eq!(incr("c"), Ok(1));
        assert_eq!(incr("c"), Ok(2));
        assert_eq!(get("c"), Ok(Some(b"2".to_vec())));
        set_u64("c", u64::MAX).unwrap();
        assert_eq!(incr("c"), Ok(u64::MAX));
    }

    #[test]
    fn typed_helpers_refuse_a_value_that_is_not_a_number() {
        testing::reset_state();
        set("c", "ten").unwrap();
        assert_eq!(
            get_u64("c"),
            Err(StateError::NotANumber { key: "c".into() })
        );
        assert!(incr("c").unwrap_err().to_string().contains("\"c\""));
    }

    #[test]
    fn errors_say_which_limit() {
        assert_eq!(
            StateError::KeyTooLong { limit_bytes: 256 }.to_string(),
            "state key is longer than the limit of 256 bytes"
        );
        assert!(StateError::Unavailable {
            reason: "Kafka endpoint".into()
        }
        .to_string()
        .contains("Kafka endpoint"));
    }
}
