//! The messages a module receives ([`Message`]) and writes ([`Output`]).
//!
//! Both are plain structs with public fields mirroring the WIT records, plus helpers
//! for the common cases: headers by name, the value as text, builders for outputs.

/// Milliseconds since the Unix epoch, from the wall clock (WASI's in a module).
fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The value of the last header named `name`.
fn last_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Replaces every header named `name` with one pair at the end.
fn replace_header(headers: &mut Vec<(String, String)>, name: &str, value: String) {
    headers.retain(|(k, _)| k != name);
    headers.push((name.to_string(), value));
}

/// One message of the source topic, as the module receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The partitioning / identity key, if the producer set one.
    pub key: Option<String>,
    /// The payload: arbitrary bytes (often UTF-8 JSON, but never assumed).
    pub value: Vec<u8>,
    /// Headers in the order the producer gave them; names are not unique.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch: the producer's, else the broker's append
    /// time.
    pub timestamp: i64,
}

impl Message {
    /// A message with this value, no key, no headers, stamped now. Meant for tests:
    /// in a module, messages come from the broker.
    pub fn new(value: impl Into<Vec<u8>>) -> Message {
        Message {
            key: None,
            value: value.into(),
            headers: Vec::new(),
            timestamp: now_millis(),
        }
    }

    /// The message with this key.
    pub fn with_key(mut self, key: impl Into<String>) -> Message {
        self.key = Some(key.into());
        self
    }

    /// The message with header `name` set to `value` (see [`set_header`](Self::set_header)).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Message {
        self.set_header(name, value);
        self
    }

    /// The message with this timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Message {
        self.timestamp = timestamp;
        self
    }

    /// The value as UTF-8 text, or why it is not.
    pub fn value_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.value)
    }

    /// The value of the last header named `name` (names are not unique; the last one
    /// wins, as after [`set_header`](Self::set_header)).
    pub fn header(&self, name: &str) -> Option<&str> {
        last_header(&self.headers, name)
    }

    /// Sets header `name`, replacing every earlier pair with that name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        replace_header(&mut self.headers, name, value.into());
    }

    /// Appends a header pair, keeping any earlier pair with the same name.
    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_string(), value.into()));
    }

    /// Removes every header named `name`.
    pub fn remove_header(&mut self, name: &str) {
        self.headers.retain(|(k, _)| k != name);
    }
}

/// One message the module writes.
///
/// `topic` is `None` for the pipeline's destination topic, or one of the topics the
/// pipeline declares in `routes` (spelt as declared); any other topic fails the input
/// message with the cause `undeclared_route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Where it goes: `None` for the destination, else a declared route.
    pub topic: Option<String>,
    /// The key.
    pub key: Option<String>,
    /// The payload.
    pub value: Vec<u8>,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl From<Message> for Output {
    /// The message written unchanged to the destination topic.
    fn from(msg: Message) -> Output {
        Output {
            topic: None,
            key: msg.key,
            value: msg.value,
            headers: msg.headers,
            timestamp: msg.timestamp,
        }
    }
}

impl Output {
    /// A new message for the destination topic: this value, no key, no headers,
    /// stamped now.
    pub fn new(value: impl Into<Vec<u8>>) -> Output {
        Output {
            topic: None,
            key: None,
            value: value.into(),
            headers: Vec::new(),
            timestamp: now_millis(),
        }
    }

    /// The output routed to `topic`, one of the pipeline's declared `routes`.
    pub fn to(mut self, topic: impl Into<String>) -> Output {
        self.topic = Some(topic.into());
        self
    }

    /// The output with this key.
    pub fn with_key(mut self, key: impl Into<String>) -> Output {
        self.key = Some(key.into());
        self
    }

    /// The output without a key.
    pub fn without_key(mut self) -> Output {
        self.key = None;
        self
    }

    /// The output with this value.
    pub fn with_value(mut self, value: impl Into<Vec<u8>>) -> Output {
        self.value = value.into();
        self
    }

    /// The output with header `name` set to `value`, replacing every earlier pair
    /// with that name.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Output {
        replace_header(&mut self.headers, name, value.into());
        self
    }

    /// The output with this timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp: i64) -> Output {
        self.timestamp = timestamp;
        self
    }

    /// The value as UTF-8 text, or why it is not.
    pub fn value_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.value)
    }

    /// The value of the last header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        last_header(&self.headers, name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_header_replaces_every_pair_with_that_name() {
        let mut msg = Message::new("v");
        msg.add_header("a", "1");
        msg.add_header("b", "2");
        msg.add_header("a", "3");
        assert_eq!(msg.header("a"), Some("3"));
        msg.set_header("a", "4");
        assert_eq!(
            msg.headers,
            vec![
                ("b".to_string(), "2".to_string()),
                ("a".to_string(), "4".to_string())
            ]
        );
        msg.remove_header("a");
        assert_eq!(msg.header("a"), None);
    }

    #[test]
    fn output_from_message_keeps_every_field_and_goes_to_the_destination() {
        let msg = Message::new("v")
            .with_key("k")
            .with_header("h", "1")
            .with_timestamp(42);
        let out = Output::from(msg.clone());
        assert_eq!(out.topic, None);
        assert_eq!(out.key.as_deref(), Some("k"));
        assert_eq!(out.value, msg.value);
        assert_eq!(out.headers, msg.headers);
        assert_eq!(out.timestamp, 42);
    }

    #[test]
    fn output_builders_route_and_rewrite() {
        let out = Output::new("x")
            .to("alerts")
            .with_key("k")
            .with_header("h", "1")
            .with_header("h", "2")
            .with_value("y");
        assert_eq!(out.topic.as_deref(), Some("alerts"));
        assert_eq!(out.header("h"), Some("2"));
        assert_eq!(out.headers.len(), 1);
        assert_eq!(out.value_str(), Ok("y"));
        assert_eq!(out.without_key().key, None);
    }

    #[test]
    fn value_str_refuses_invalid_utf8() {
        assert!(Message::new(vec![0xff, 0xfe]).value_str().is_err());
        assert_eq!(Message::new("ok").value_str(), Ok("ok"));
    }
}
