//! Messages for in-process tests, and reading and writing topics directly through
//! [`Storage`].

use rustmq_etl::message::Message;
use rustmq_etl::storage::Storage;

/// Appends one message per `(key, value)` pair to `topic`, each with the header
/// `source: test` (the guide's processor filters messages without one).
pub fn append(storage: &Storage, topic: &str, pairs: impl IntoIterator<Item = (String, String)>) {
    let msgs = pairs
        .into_iter()
        .map(|(k, v)| Message {
            key: Some(k),
            value: v.into_bytes(),
            headers: vec![("source".into(), "test".into())],
            timestamp: 1,
        })
        .collect();
    storage.append_blocking(topic, msgs).unwrap();
}

/// Every message of `topic`, in offset order (none when the topic does not exist).
pub fn read_all(storage: &Storage, topic: &str) -> Vec<Message> {
    if storage.topic(topic).unwrap().is_none() {
        return Vec::new();
    }
    let end = storage.end_offset(topic).unwrap();
    storage
        .read(topic, 0, end as usize + 1, usize::MAX)
        .unwrap()
        .messages
        .into_iter()
        .map(|(_, m)| m)
        .collect()
}

/// A message with `key`, text `value` and `headers`, stamped with the timestamp the
/// deployment guide's tests use.
pub fn message(key: &str, value: &str, headers: &[(&str, &str)]) -> Message {
    Message {
        key: Some(key.to_string()),
        value: value.as_bytes().to_vec(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp: 1_640_995_200_000,
    }
}
