//! Messages to and from Kafka records.
//!
//! The broker's [`Message`] has a text key and text header values (the deployment
//! guide's model and the WIT `message` record); Kafka's are bytes. Records read from
//! Kafka whose key or header values are not UTF-8 are decoded with replacement
//! characters, and get the header [`LOSSY_HEADER`] so that a module or an operator
//! can tell.

use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::Message as _;

use crate::message::Message;

/// Set on a message whose Kafka key or header values were not valid UTF-8.
pub const LOSSY_HEADER: &str = "x-rustmq-lossy-utf8";

/// A message read from Kafka, as the pipeline sees it.
pub fn from_kafka(m: &BorrowedMessage<'_>) -> Message {
    let mut lossy = false;
    let mut text = |bytes: &[u8]| match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(_) => {
            lossy = true;
            String::from_utf8_lossy(bytes).into_owned()
        }
    };
    let key = m.key().map(&mut text);
    let headers = match m.headers() {
        Some(h) => h
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    h.value.map(&mut text).unwrap_or_default(),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    let mut message = Message {
        key,
        value: m.payload().unwrap_or_default().to_vec(),
        headers,
        timestamp: m
            .timestamp()
            .to_millis()
            .unwrap_or_else(crate::message::now_millis),
    };
    if lossy {
        message.set_header(LOSSY_HEADER, "true");
    }
    message
}

/// A record on its way to Kafka, kept until its batch is durable so that a failed
/// send or an aborted transaction can be sent again.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The topic on the cluster.
    pub topic: String,
    /// The message, with the batch's stamp applied.
    pub message: Message,
}

impl Outgoing {
    /// `message` for `topic`, with the `stamp` headers replacing any of its own.
    pub fn new(topic: &str, mut message: Message, stamp: &[(String, String)]) -> Self {
        for (k, v) in stamp {
            message.set_header(k, v.as_str());
        }
        Outgoing {
            topic: topic.to_string(),
            message,
        }
    }

    /// The record's headers in Kafka's form.
    pub fn headers(&self) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(self.message.headers.len());
        for (k, v) in &self.message.headers {
            h = h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_replaces_headers_of_the_same_name() {
        let m = Message {
            key: Some("k".into()),
            value: b"v".to_vec(),
            headers: vec![
                ("x-rustmq-module".into(), "forged".into()),
                ("a".into(), "1".into()),
            ],
            timestamp: 5,
        };
        let out = Outgoing::new("t", m, &[("x-rustmq-module".into(), "m-v1.0.0".into())]);
        assert_eq!(out.message.header("x-rustmq-module"), Some("m-v1.0.0"));
        assert_eq!(out.message.headers.len(), 2);
        assert_eq!(out.headers().count(), 2);
    }
}
