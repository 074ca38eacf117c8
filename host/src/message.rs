//! The message record every part of the broker shares, and its JSON wire form.
//!
//! A [`Message`] is what a topic stores, what a transform receives and what it returns.
//! [`MessageJson`] is how a message crosses HTTP and the command line: the value is
//! UTF-8 text when it is text and `value_base64` otherwise, headers are a JSON object.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One message: the same four fields as the deployment guide's `Message` and the WIT
/// `message` record.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Partitioning / identity key.
    pub key: Option<String>,
    /// Payload bytes.
    pub value: Vec<u8>,
    /// Header pairs in producer order.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Message {
    /// The value of the last header named `name`, if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets header `name`, replacing every earlier pair with that name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_string(), value.into()));
    }

    /// What the message takes in memory, roughly: its bytes, plus what the message
    /// and each header cost beyond them (a header is two strings: their headers and
    /// the allocator's rounding). Reads and batches are bounded by this, so that a
    /// message of a thousand tiny headers counts for the ~100 KB it takes, not the
    /// ~10 KB of its text.
    pub fn memory_size(&self) -> usize {
        /// Two `String` headers (24 bytes each) and two allocations' rounding.
        const HEADER_OVERHEAD: usize = 80;
        /// The `Message` itself, its key's and value's allocations, a header vector.
        const MESSAGE_OVERHEAD: usize = 128;
        self.approx_size() + MESSAGE_OVERHEAD + self.headers.len() * HEADER_OVERHEAD
    }

    /// The number of bytes the message occupies, roughly: used for size caps.
    pub fn approx_size(&self) -> usize {
        self.key.as_ref().map_or(0, String::len)
            + self.value.len()
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + 8
    }
}

/// The most headers one message may carry into the broker, in number and in bytes
/// (names and values together): checked when a client produces and when a pipeline
/// reads a record from a Kafka cluster. Every header is a separate allocation, and a
/// module receives all of them on every call, so a producer must not be able to make
/// one message cost the broker and every pipeline unbounded work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Most header pairs (`[server] max_headers_per_message`).
    pub max_count: usize,
    /// Most bytes of header names and values (`[server] max_header_bytes_per_message`).
    pub max_bytes: usize,
}

impl HeaderLimits {
    /// 1,024 headers and 64 KiB: far above what a real message carries (Kafka's
    /// own clients send a handful), far below the body limit.
    pub const DEFAULT: HeaderLimits = HeaderLimits {
        max_count: 1024,
        max_bytes: 64 * 1024,
    };

    /// Whether `headers` are within the limits.
    pub fn check(&self, headers: &[(String, String)]) -> Result<(), HeaderLimitError> {
        if headers.len() > self.max_count {
            return Err(HeaderLimitError::TooMany {
                count: headers.len(),
                max: self.max_count,
            });
        }
        let bytes: usize = headers.iter().map(|(k, v)| k.len() + v.len()).sum();
        if bytes > self.max_bytes {
            return Err(HeaderLimitError::TooLarge {
                bytes,
                max: self.max_bytes,
            });
        }
        Ok(())
    }
}

impl Default for HeaderLimits {
    fn default() -> Self {
        HeaderLimits::DEFAULT
    }
}

/// A message over [`HeaderLimits`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HeaderLimitError {
    /// More header pairs than allowed.
    #[error("{count} headers; the limit is {max} per message (server.max_headers_per_message): carry the rest in the value, or raise the limit")]
    TooMany {
        /// How many the message has.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// More header bytes than allowed.
    #[error("{bytes} bytes of header names and values; the limit is {max} per message (server.max_header_bytes_per_message): carry the rest in the value, or raise the limit")]
    TooLarge {
        /// How many the message has.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

impl HeaderLimitError {
    /// The stable code: the API's error code and the error topic's cause.
    pub fn code(&self) -> &'static str {
        match self {
            HeaderLimitError::TooMany { .. } => "too_many_headers",
            HeaderLimitError::TooLarge { .. } => "headers_too_large",
        }
    }
}

/// A JSON object's pairs as serde_json reads them: a repeated name keeps its first
/// place and its last value. Linear in the number of pairs.
fn last_wins(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    if !has_repeated_names(&pairs) {
        return pairs;
    }
    let mut seen: std::collections::HashMap<String, usize> =
        std::collections::HashMap::with_capacity(pairs.len());
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs.drain(..) {
        match seen.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                seen.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

/// Whether a name occurs twice among `pairs`: the common answer, no, costs no
/// allocation for a short list (scanned) and one set for a long one (hashed).
fn has_repeated_names(pairs: &[(String, String)]) -> bool {
    /// Up to this many, comparing each pair with the later ones beats hashing.
    const SCAN_UP_TO: usize = 16;
    if pairs.len() <= SCAN_UP_TO {
        return pairs
            .iter()
            .enumerate()
            .any(|(i, (k, _))| pairs[i + 1..].iter().any(|(later, _)| later == k));
    }
    let mut names = std::collections::HashSet::with_capacity(pairs.len());
    pairs.iter().any(|(k, _)| !names.insert(k.as_str()))
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Headers as they appear in JSON: an object (`{"k": "v"}`, the guide's form) or a
/// list of pairs (`[["k", "v"]]`, which keeps repeated names). Read straight into
/// pairs, without an intermediate JSON tree: a produce of many headers costs their
/// strings and no more.
#[derive(Debug, Clone)]
pub enum HeadersJson {
    /// `{"k": "v"}`, in object order; a value that is not a string is kept as the
    /// first such name, to be refused with it.
    Map(Vec<(String, String)>, Option<String>),
    /// `[["k", "v"], ...]`.
    Pairs(Vec<(String, String)>),
}

impl utoipa::PartialSchema for HeadersJson {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        OneOfBuilder::new()
            .description(Some(
                "An object of string values, or a list of [name, value] pairs (which keeps repeated names).",
            ))
            .item(ObjectBuilder::new().additional_properties(Some(string())))
            .item(
                ArrayBuilder::new().items(
                    ArrayBuilder::new()
                        .items(string())
                        .min_items(Some(2))
                        .max_items(Some(2)),
                ),
            )
            .into()
    }
}

impl utoipa::ToSchema for HeadersJson {}

impl<'de> Deserialize<'de> for HeadersJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        /// A header value: a string, or anything else (refused later, by name).
        enum Value {
            Text(String),
            Other,
        }
        impl<'de> Deserialize<'de> for Value {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = Value;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("a header value")
                    }
                    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                        Ok(Value::Text(s.to_string()))
                    }
                    fn visit_string<E>(self, s: String) -> Result<Value, E> {
                        Ok(Value::Text(s))
                    }
                    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                    fn visit_unit<E>(self) -> Result<Value, E> {
                        Ok(Value::Other)
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<Value, A::Error> {
                        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                        Ok(Value::Other)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<Value, A::Error> {
                        while map
                            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                            .is_some()
                        {}
                        Ok(Value::Other)
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeadersJson;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of string values, or a list of [name, value] pairs")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<HeadersJson, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
                let mut not_text = None;
                while let Some((name, value)) = map.next_entry::<String, Value>()? {
                    match value {
                        Value::Text(text) => pairs.push((name, text)),
                        Value::Other => {
                            not_text.get_or_insert(name);
                        }
                    }
                }
                Ok(HeadersJson::Map(pairs, not_text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<HeadersJson, A::Error> {
                let mut pairs = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(pair) = seq.next_element::<(String, String)>()? {
                    pairs.push(pair);
                }
                Ok(HeadersJson::Pairs(pairs))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A message as a client writes it: in a produce request, a `rustmq-etl run` input
/// line. Exactly one of `value` and `value_base64` must be given.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageJson {
    /// The key, or null.
    #[serde(default)]
    pub key: Option<String>,
    /// The value as UTF-8 text.
    #[serde(default)]
    pub value: Option<String>,
    /// The value as standard base64, for binary payloads.
    #[serde(default)]
    pub value_base64: Option<String>,
    /// Headers; absent means none.
    #[serde(default)]
    pub headers: Option<HeadersJson>,
    /// Milliseconds since the epoch; absent means "now" (the broker's append time).
    #[serde(default)]
    pub timestamp: Option<i64>,
}

/// Why a [`MessageJson`] could not become a [`Message`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageJsonError {
    /// Neither `value` nor `value_base64`.
    #[error("the message has no value: give \"value\" (text) or \"value_base64\" (binary)")]
    MissingValue,
    /// Both were given.
    #[error("the message has both \"value\" and \"value_base64\": give only one")]
    BothValues,
    /// `value_base64` was not base64.
    #[error("\"value_base64\" is not valid standard base64: {0}")]
    BadBase64(String),
    /// A header value was not a string.
    #[error("header \"{0}\" must have a string value")]
    HeaderNotString(String),
}

impl MessageJson {
    /// Converts into a [`Message`], stamping `default_timestamp` when none was given.
    pub fn into_message(self, default_timestamp: i64) -> Result<Message, MessageJsonError> {
        let value = match (self.value, self.value_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .map_err(|e| MessageJsonError::BadBase64(e.to_string()))?,
            (None, None) => return Err(MessageJsonError::MissingValue),
            (Some(_), Some(_)) => return Err(MessageJsonError::BothValues),
        };
        let headers = match self.headers {
            None => Vec::new(),
            Some(HeadersJson::Pairs(pairs)) => pairs,
            Some(HeadersJson::Map(_, Some(name))) => {
                return Err(MessageJsonError::HeaderNotString(name))
            }
            Some(HeadersJson::Map(pairs, None)) => last_wins(pairs),
        };
        Ok(Message {
            key: self.key,
            value,
            headers,
            timestamp: self.timestamp.unwrap_or(default_timestamp),
        })
    }
}

/// A message as the broker writes it in JSON: `value` when the bytes are UTF-8,
/// `value_base64` otherwise; headers as an object (a repeated name keeps its last
/// value).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct MessageOut {
    /// The offset in its topic, when the message was read from one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// The key, or null.
    pub key: Option<String>,
    /// The value as text, when it is UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<String>,
    /// The value as base64, when it is not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value_base64: Option<String>,
    /// Headers.
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
}

impl MessageOut {
    /// The JSON form of `message`, read at `offset` if it came from a topic.
    pub fn new(message: &Message, offset: Option<u64>) -> Self {
        let (value, value_base64) = match std::str::from_utf8(&message.value) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&message.value)),
            ),
        };
        let headers = message
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        MessageOut {
            offset,
            key: message.key.clone(),
            value,
            value_base64,
            headers,
            timestamp: message.timestamp,
        }
    }
}

/// [`MessageOut`]'s JSON written straight from a borrowed [`Message`], copying
/// nothing but what base64 needs: what a consume answers with, so that an answer
/// costs its own bytes and not a tree of copies.
#[derive(Debug, Clone, Copy)]
pub struct MessageOutRef<'a> {
    /// The offset in its topic, when the message was read from one.
    pub offset: Option<u64>,
    /// The message.
    pub message: &'a Message,
}

impl Serialize for MessageOutRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeStruct};
        struct Headers<'a>(&'a [(String, String)]);
        impl Serialize for Headers<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                // Written from the message as it is unless a name repeats.
                if !has_repeated_names(self.0) {
                    let mut map = s.serialize_map(Some(self.0.len()))?;
                    for (k, v) in self.0 {
                        map.serialize_entry(k, v)?;
                    }
                    return map.end();
                }
                let pairs = last_wins_borrowed(self.0);
                let mut map = s.serialize_map(Some(pairs.len()))?;
                for (k, v) in pairs {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
        let m = self.message;
        let text = std::str::from_utf8(&m.value).ok();
        let fields = 4 + usize::from(self.offset.is_some());
        let mut out = serializer.serialize_struct("MessageOut", fields)?;
        if let Some(offset) = self.offset {
            out.serialize_field("offset", &offset)?;
        }
        out.serialize_field("key", &m.key)?;
        match text {
            Some(text) => out.serialize_field("value", text)?,
            None => out.serialize_field(
                "value_base64",
                &base64::engine::general_purpose::STANDARD.encode(&m.value),
            )?,
        }
        out.serialize_field("headers", &Headers(&m.headers))?;
        out.serialize_field("timestamp", &m.timestamp)?;
        out.end()
    }
}

/// [`last_wins`] over borrowed pairs.
fn last_wins_borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut seen: std::collections::HashMap<&str, usize> =
        std::collections::HashMap::with_capacity(pairs.len());
    let mut out: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        match seen.get(k.as_str()) {
            Some(&i) => out[i].1 = v,
            None => {
                seen.insert(k, out.len());
                out.push((k, v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_borrowed_answer_is_the_owned_one_to_the_byte() {
        for m in [
            parse(r#"{"key":"k","value":"hi","headers":{"a":"1","b":"2","a":"3"}}"#).unwrap(),
            Message {
                key: None,
                value: vec![0xff, 0, 1],
                headers: vec![("x".into(), "1".into()), ("x".into(), "2".into())],
                timestamp: -5,
            },
        ] {
            for offset in [None, Some(9)] {
                assert_eq!(
                    serde_json::to_string(&MessageOutRef {
                        offset,
                        message: &m
                    })
                    .unwrap(),
                    serde_json::to_string(&MessageOut::new(&m, offset)).unwrap()
                );
            }
        }
    }

    #[test]
    fn repeated_header_names_keep_their_first_place_and_last_value() {
        let m = parse(r#"{"value":"v","headers":{"a":"1","b":"2","a":"3"}}"#).unwrap();
        assert_eq!(
            m.headers,
            vec![("a".into(), "3".into()), ("b".into(), "2".into())]
        );
        let err = parse(r#"{"value":"v","headers":{"a":"1","b":2}}"#).unwrap_err();
        assert_eq!(err, MessageJsonError::HeaderNotString("b".into()));
    }

    fn parse(json: &str) -> Result<Message, MessageJsonError> {
        serde_json::from_str::<MessageJson>(json)
            .unwrap()
            .into_message(7)
    }

    #[test]
    fn text_value_and_header_object_round_trip() {
        let m = parse(r#"{"key":"k","value":"hi","headers":{"a":"1","b":"2"}}"#).unwrap();
        assert_eq!(m.value, b"hi");
        assert_eq!(
            m.headers,
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        assert_eq!(m.timestamp, 7);
        let out = serde_json::to_value(MessageOut::new(&m, Some(3))).unwrap();
        assert_eq!(out["value"], "hi");
        assert_eq!(out["offset"], 3);
        assert_eq!(out["headers"]["b"], "2");
    }

    #[test]
    fn binary_value_comes_back_as_base64() {
        let m = parse(r#"{"value_base64":"/wA="}"#).unwrap();
        assert_eq!(m.value, vec![0xff, 0x00]);
        let out = MessageOut::new(&m, None);
        assert_eq!(out.value, None);
        assert_eq!(out.value_base64.as_deref(), Some("/wA="));
    }

    #[test]
    fn value_is_required_once() {
        assert_eq!(parse(r#"{"key":"k"}"#), Err(MessageJsonError::MissingValue));
        assert_eq!(
            parse(r#"{"value":"a","value_base64":"YQ=="}"#),
            Err(MessageJsonError::BothValues)
        );
        assert!(matches!(
            parse(r#"{"value_base64":"***"}"#),
            Err(MessageJsonError::BadBase64(_))
        ));
        assert_eq!(
            parse(r#"{"value":"a","headers":{"n":1}}"#),
            Err(MessageJsonError::HeaderNotString("n".into()))
        );
    }
}
