//! Canary versions: a share of a pipeline's messages runs on another version of its
//! module, beside the pinned one, with the counts of both side by side, and is
//! rolled back by itself when its error rate over a window passes a bound.
//!
//! - Which messages: `percent` of them, chosen by a hash of the message's source
//!   position (`by: "message"`), or of its key (`by: "key"`: a key always sees one
//!   version; keyless messages are chosen by position).
//! - A canary never costs a message: a message the canary fails (a trap, a timeout,
//!   an error answer) counts as the canary's failure and is then processed by the
//!   pinned version, with its retries, as if the canary were not there.
//! - Rollback: with `max_error_rate`, once the canary has handled `min_messages`
//!   within the last `window_secs` and more than that share of them failed, the
//!   worker stops sending it messages at once, and the pipeline's definition drops
//!   the canary, recording the event (status `canary_event`, and the log).
//! - `POST …/promote` pins the canary's version and ends the canary.
//!
//! Here: a canary's definition and the numbers shown for it. Its counters are in
//! `metrics` (`Sides`), its instance beside the pinned one in `loaded` (`Canary`).
//!
//! Outputs carry the version that made them (`x-rustmq-module`,
//! `x-rustmq-module-version`), as always. While a canary runs, a batch-mode pipeline
//! calls its modules one message at a time (each side's share of a batch is not
//! contiguous).

use serde::{Deserialize, Serialize};

use crate::message::Message;

/// The longest window a rollback may look at: the metrics keep five minutes.
pub const MAX_WINDOW_SECS: u64 =
    (super::window::BUCKETS as u64 - 1) * super::window::BUCKET_MS / 1000;

/// How a canary's share is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SplitBy {
    /// By the message's source position: `percent` of all messages.
    #[default]
    Message,
    /// By the message's key: a key always sees one version.
    Key,
}

/// `"canary"` in a pipeline's definition (and in a `PATCH`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanarySpec {
    /// The version to try: a requirement when set, the exact version it resolved to
    /// once stored.
    pub module_version: String,
    /// The share of messages it gets, 1 ..= 99.
    pub percent: u8,
    /// How the share is chosen (default `message`).
    #[serde(default)]
    pub by: SplitBy,
    /// Roll back once more than this share (0 ..= 1) of the canary's messages in the
    /// window failed. Without it the canary stays until removed or promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// The window the error rate is taken over, seconds (default 60; 5 ..= 295).
    #[serde(default = "default_window_secs")]
    pub window_secs: u64,
    /// Messages the canary must have handled within the window before it is judged
    /// (default 20; 1 ..= 1000000).
    #[serde(default = "default_min_messages")]
    pub min_messages: u64,
}

fn default_window_secs() -> u64 {
    60
}

fn default_min_messages() -> u64 {
    20
}

impl CanarySpec {
    /// Checks the bounds (the version is resolved by the caller); the error says
    /// what to give instead.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |message: String| Err(message);
        if !(1..=99).contains(&self.percent) {
            return bad(format!(
                "percent is {}; give 1 ..= 99 (to move every message, PATCH module_version or promote)",
                self.percent
            ));
        }
        if let Some(rate) = self.max_error_rate {
            if !(0.0..=1.0).contains(&rate) {
                return bad(format!(
                    "max_error_rate is {rate}; give a share of the canary's messages, 0 ..= 1 (0.05 = 5 %)"
                ));
            }
        }
        if !(5..=MAX_WINDOW_SECS).contains(&self.window_secs) {
            return bad(format!(
                "window_secs is {}; give 5 ..= {MAX_WINDOW_SECS}",
                self.window_secs
            ));
        }
        if !(1..=1_000_000).contains(&self.min_messages) {
            return bad(format!(
                "min_messages is {}; give 1 ..= 1000000",
                self.min_messages
            ));
        }
        Ok(())
    }

    /// Whether the message at `offset` of `partition` with `message`'s key goes to
    /// the canary.
    pub fn takes(&self, message: &Message, partition: i32, offset: u64) -> bool {
        let hash = match (&self.by, &message.key) {
            (SplitBy::Key, Some(key)) => fnv1a(key.as_bytes()),
            _ => {
                let mut position = [0u8; 12];
                position[..4].copy_from_slice(&partition.to_le_bytes());
                position[4..].copy_from_slice(&offset.to_le_bytes());
                fnv1a(&position)
            }
        };
        hash % 100 < u64::from(self.percent)
    }
}

/// FNV-1a, 64 bits, finished with a mix so nearby positions spread over the range:
/// stable across versions and machines, unlike the standard library's hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// What ended a canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CanaryEvent {
    /// `rolled_back` (by its error rate), `promoted` or `removed`.
    pub event: String,
    /// The canary's version.
    pub module_version: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Why, for a rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One version's numbers, in a pipeline's status and metrics while a canary runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VersionMetrics {
    /// `stable` or `canary`.
    pub role: String,
    /// The version.
    pub module_version: String,
    /// Inputs it handled since the canary started.
    pub messages_handled: u64,
    /// Of those, the ones it failed.
    pub messages_failed: u64,
    /// Failed over handled within the canary's window (0 without messages).
    pub window_error_rate: f64,
    /// Inputs handled within the window.
    pub window_messages: u64,
    /// 99th percentile module time within the window, ms (null without calls).
    pub window_p99_processing_time_ms: Option<f64>,
    /// Median module time since the canary started, ms.
    pub p50_processing_time_ms: f64,
    /// 99th percentile module time since the canary started, ms.
    pub p99_processing_time_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(percent: u8, by: SplitBy) -> CanarySpec {
        CanarySpec {
            module_version: "1.1.0".into(),
            percent,
            by,
            max_error_rate: None,
            window_secs: 60,
            min_messages: 20,
        }
    }

    fn keyed(key: Option<&str>) -> Message {
        Message {
            key: key.map(str::to_string),
            ..Message::default()
        }
    }

    #[test]
    fn a_canary_takes_about_its_share_of_positions() {
        for percent in [1u8, 10, 50, 90] {
            let s = spec(percent, SplitBy::Message);
            let taken = (0..20_000u64)
                .filter(|o| s.takes(&keyed(None), 0, *o))
                .count() as f64
                / 20_000.0;
            let want = f64::from(percent) / 100.0;
            assert!((taken - want).abs() < 0.015, "{percent}%: took {taken}");
        }
    }

    #[test]
    fn by_key_a_key_always_sees_one_version() {
        let s = spec(50, SplitBy::Key);
        let keys: Vec<String> = (0..1000).map(|k| format!("user-{k}")).collect();
        let mut canary = 0;
        for k in &keys {
            let first = s.takes(&keyed(Some(k)), 0, 0);
            assert!(
                (1..500).all(|o| s.takes(&keyed(Some(k)), 3, o) == first),
                "{k}"
            );
            canary += usize::from(first);
        }
        assert!((400..600).contains(&canary), "{canary} of 1000 keys");
    }

    #[test]
    fn out_of_bounds_settings_are_refused_with_the_bounds() {
        for (change, words) in [
            (
                Box::new(|s: &mut CanarySpec| s.percent = 0) as Box<dyn Fn(&mut CanarySpec)>,
                "1 ..= 99",
            ),
            (Box::new(|s: &mut CanarySpec| s.percent = 100), "promote"),
            (
                Box::new(|s: &mut CanarySpec| s.max_error_rate = Some(5.0)),
                "0 ..= 1",
            ),
            (
                Box::new(|s: &mut CanarySpec| s.window_secs = 1000),
                "5 ..= 295",
            ),
            (
                Box::new(|s: &mut CanarySpec| s.min_messages = 0),
                "1 ..= 1000000",
            ),
        ] {
            let mut s = spec(10, SplitBy::Message);
            change(&mut s);
            let e = s.validate().unwrap_err();
            assert!(e.contains(words), "{e}");
        }
        spec(10, SplitBy::Key).validate().unwrap();
    }
}
