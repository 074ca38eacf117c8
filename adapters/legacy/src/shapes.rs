//! The JSON shapes that cross the legacy ABI, defined with serde: [`LegacyInput`] as
//! sent to the guest, the guide's `ProcessResult` as read back ([`RawResult`]), and
//! what the adapter answers with ([`LegacyOutput`]). serde's encoding of these is the
//! reference the hand-written `codec` is held to.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::AbiFault;

/// A message as handed to the guest, borrowed from the caller's message so that
/// encoding it copies nothing but the JSON text. Its `Serialize` is the reference for
/// [`LegacyInput::encode`], which writes the same text faster.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LegacyInput<'a> {
    /// The key, or null.
    pub key: Option<&'a str>,
    /// The payload; encoded as an array of numbers, as serde encodes the guide's `Vec<u8>`.
    pub value: &'a [u8],
    /// Header pairs; encoded as an object. When a name repeats, only its last value is
    /// sent (the guide's `HashMap` would keep only one anyway).
    #[serde(serialize_with = "headers_as_object")]
    pub headers: &'a [(String, String)],
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

fn headers_as_object<S: Serializer>(
    headers: &&[(String, String)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    for (k, v) in last_of_each_name(headers) {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// The headers a guest is sent: of each name only the last pair, where that pair is.
/// Linear in the number of headers (a short list is scanned, a long one hashed).
pub(crate) fn last_of_each_name(
    headers: &[(String, String)],
) -> impl Iterator<Item = &(String, String)> {
    /// Up to this many, scanning the rest of the list beats building a set.
    const SCAN_UP_TO: usize = 16;
    let keep: Option<Vec<bool>> = (headers.len() > SCAN_UP_TO).then(|| {
        let mut seen = std::collections::HashSet::with_capacity(headers.len());
        let mut keep = vec![false; headers.len()];
        for (i, (name, _)) in headers.iter().enumerate().rev() {
            keep[i] = seen.insert(name.as_str());
        }
        keep
    });
    headers
        .iter()
        .enumerate()
        .filter(move |(i, (name, _))| match &keep {
            Some(keep) => keep[*i],
            None => !headers[i + 1..].iter().any(|(later, _)| later == name),
        })
        .map(|(_, pair)| pair)
}

/// A message the guest returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    /// The key, or null.
    pub key: Option<String>,
    /// The payload.
    pub value: Vec<u8>,
    /// Header pairs, in the order the guest's JSON object listed them.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the epoch; the input's when the guest left it out.
    pub timestamp: i64,
}

/// The guest's answer to one message (the guide's `ProcessResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyOutput {
    /// 0 = filtered, 1 = transformed, n = fan-out.
    pub messages: Vec<LegacyMessage>,
    /// The guest's `should_continue`.
    pub should_continue: bool,
    /// The guest's `error`, if it reported one.
    pub error: Option<String>,
}

/// `ProcessResult` as it appears in the guest's JSON. Unknown fields are ignored: old
/// modules may carry extra diagnostics.
#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct RawResult {
    pub(crate) transformed_messages: Vec<RawMessage>,
    pub(crate) should_continue: bool,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

#[derive(Debug, PartialEq, Eq, Deserialize)]
pub(crate) struct RawMessage {
    #[serde(default)]
    pub(crate) key: Option<String>,
    #[serde(deserialize_with = "bytes_or_text")]
    pub(crate) value: Vec<u8>,
    #[serde(default, deserialize_with = "object_as_pairs")]
    pub(crate) headers: Vec<(String, String)>,
    #[serde(default)]
    pub(crate) timestamp: Option<i64>,
}

impl RawResult {
    /// The caller-facing answer, checking the message and header-pair counts (header
    /// pairs across all messages, as for components) and filling missing timestamps
    /// with the input's.
    pub(crate) fn into_output(
        self,
        input_timestamp: i64,
        max_messages: usize,
        max_headers: usize,
    ) -> Result<LegacyOutput, AbiFault> {
        let count = self.transformed_messages.len();
        if count > max_messages {
            return Err(AbiFault::TooManyMessages {
                count,
                max: max_messages,
            });
        }
        let headers: usize = self
            .transformed_messages
            .iter()
            .map(|m| m.headers.len())
            .sum();
        if headers > max_headers {
            return Err(AbiFault::TooManyHeaders {
                count: headers,
                max: max_headers,
            });
        }
        Ok(LegacyOutput {
            messages: self
                .transformed_messages
                .into_iter()
                .map(|m| LegacyMessage {
                    key: m.key,
                    value: m.value,
                    headers: m.headers,
                    timestamp: m.timestamp.unwrap_or(input_timestamp),
                })
                .collect(),
            should_continue: self.should_continue,
            error: self.error,
        })
    }
}

fn bytes_or_text<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of byte numbers or a string")
        }
        fn visit_str<E: de::Error>(self, s: &str) -> Result<Vec<u8>, E> {
            Ok(s.as_bytes().to_vec())
        }
        fn visit_string<E: de::Error>(self, s: String) -> Result<Vec<u8>, E> {
            Ok(s.into_bytes())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The JSON length is already capped; no size hint is trusted beyond it.
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}

fn object_as_pairs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, String)>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, String)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of string header values")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(pair) = map.next_entry::<String, String>()? {
                out.push(pair);
            }
            Ok(out)
        }
    }
    d.deserialize_any(V)
}
