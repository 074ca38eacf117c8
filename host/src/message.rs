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

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Headers as they appear in JSON: an object (`{"k": "v"}`, the guide's form) or a
/// list of pairs (`[["k", "v"]]`, which keeps repeated names).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum HeadersJson {
    /// `{"k": "v"}`; object order is kept.
    Map(serde_json::Map<String, serde_json::Value>),
    /// `[["k", "v"], ...]`.
    Pairs(Vec<(String, String)>),
}

/// A message as a client writes it: in a produce request, a `rustmq-etl run` input
/// line. Exactly one of `value` and `value_base64` must be given.
#[derive(Debug, Clone, Deserialize)]
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
            Some(HeadersJson::Map(map)) => map
                .into_iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k, s)),
                    _ => Err(MessageJsonError::HeaderNotString(k)),
                })
                .collect::<Result<_, _>>()?,
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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

#[cfg(test)]
mod tests {
    use super::*;

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
