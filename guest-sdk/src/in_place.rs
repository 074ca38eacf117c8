//! Messages processed in place: [`MessageRef`], a message borrowed from the
//! broker's batch buffer, and [`Emit`], an output that may be "the input unchanged".
//!
//! For [`Transform::process_ref`](crate::Transform::process_ref), which batch mode
//! calls instead of [`process_batch`](crate::Transform::process_batch) when a
//! transform sets [`IN_PLACE`](crate::Transform::IN_PLACE): a filter or a router
//! then reads each message where the broker wrote it and answers without copying a
//! byte of it, in either direction.

use rustmq_etl_buffer::{Headers, LayoutError};

use crate::{Context, Error, Message, Output, Transform};

/// Where a [`MessageRef`]'s headers are.
#[derive(Clone, Copy)]
enum Pairs<'a> {
    /// In the batch buffer, checked to be UTF-8 when the view was made.
    Buffer(Headers<'a>),
    /// In an owned [`Message`].
    Owned(&'a [(String, String)]),
}

/// A message borrowed from where the broker wrote it: reading it copies nothing.
/// [`to_message`](MessageRef::to_message) makes an owned [`Message`] of it.
#[derive(Clone, Copy)]
pub struct MessageRef<'a> {
    key: Option<&'a str>,
    value: &'a [u8],
    headers: Pairs<'a>,
    timestamp: i64,
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, LayoutError> {
    std::str::from_utf8(bytes).map_err(|_| LayoutError(format!("{what} in the batch is not UTF-8")))
}

impl<'a> MessageRef<'a> {
    /// A view of one message of a batch buffer, its key and headers checked to be
    /// UTF-8.
    pub(crate) fn from_buffer(
        m: &rustmq_etl_buffer::MessageRef<'a>,
    ) -> Result<MessageRef<'a>, LayoutError> {
        for pair in m.headers.iter() {
            let (name, value) = pair?;
            utf8(name, "a header name")?;
            utf8(value, "a header value")?;
        }
        Ok(MessageRef {
            key: m.key.map(|k| utf8(k, "a key")).transpose()?,
            value: m.value,
            headers: Pairs::Buffer(m.headers),
            timestamp: m.timestamp,
        })
    }

    /// The key, if the producer set one.
    pub fn key(&self) -> Option<&'a str> {
        self.key
    }

    /// The payload.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }

    /// The value as UTF-8 text, or why it is not.
    pub fn value_str(&self) -> Result<&'a str, std::str::Utf8Error> {
        std::str::from_utf8(self.value)
    }

    /// Milliseconds since the Unix epoch.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// How many header pairs.
    pub fn header_count(&self) -> usize {
        match self.headers {
            Pairs::Buffer(h) => h.len(),
            Pairs::Owned(h) => h.len(),
        }
    }

    /// Header pair `i` (`i < header_count()`).
    fn pair(&self, i: usize) -> (&'a str, &'a str) {
        match self.headers {
            // Checked when the view was made; an impossible failure reads as empty.
            Pairs::Buffer(h) => match h.get(i) {
                Ok((name, value)) => (
                    std::str::from_utf8(name).unwrap_or_default(),
                    std::str::from_utf8(value).unwrap_or_default(),
                ),
                Err(_) => ("", ""),
            },
            Pairs::Owned(h) => (h[i].0.as_str(), h[i].1.as_str()),
        }
    }

    /// The headers, in order (names are not unique).
    pub fn headers(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a str)> + 'a {
        let this = *self;
        (0..self.header_count()).map(move |i| this.pair(i))
    }

    /// The value of the last header named `name`, as [`Message::header`].
    pub fn header(&self, name: &str) -> Option<&'a str> {
        (0..self.header_count())
            .rev()
            .map(|i| self.pair(i))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// An owned copy.
    pub fn to_message(&self) -> Message {
        Message {
            key: self.key.map(str::to_string),
            value: self.value.to_vec(),
            headers: self
                .headers()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            timestamp: self.timestamp,
        }
    }
}

impl<'a> From<&'a Message> for MessageRef<'a> {
    /// A view of an owned message: how native tests call
    /// [`process_ref`](crate::Transform::process_ref).
    fn from(msg: &'a Message) -> MessageRef<'a> {
        MessageRef {
            key: msg.key.as_deref(),
            value: &msg.value,
            headers: Pairs::Owned(&msg.headers),
            timestamp: msg.timestamp,
        }
    }
}

impl std::fmt::Debug for MessageRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRef")
            .field("key", &self.key)
            .field("value", &String::from_utf8_lossy(self.value))
            .field("headers", &self.headers().collect::<Vec<_>>())
            .field("timestamp", &self.timestamp)
            .finish()
    }
}

/// One output of [`process_ref`](crate::Transform::process_ref).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Emit {
    /// The input unchanged (key, value, headers, timestamp), to the destination
    /// (`None`) or to one of the pipeline's declared `routes`. The broker takes the
    /// input's own bytes: nothing is copied back.
    Unchanged {
        /// Where it goes: `None` for the destination, else a declared route.
        topic: Option<String>,
    },
    /// A new message.
    New(Output),
}

impl Emit {
    /// The input unchanged, to the destination.
    pub fn unchanged() -> Emit {
        Emit::Unchanged { topic: None }
    }

    /// The input unchanged, to `topic`, one of the pipeline's declared `routes`.
    pub fn unchanged_to(topic: impl Into<String>) -> Emit {
        Emit::Unchanged {
            topic: Some(topic.into()),
        }
    }

    /// The output this stands for, given its input.
    pub fn into_output(self, input: &MessageRef<'_>) -> Output {
        match self {
            Emit::Unchanged { topic } => Output {
                topic,
                ..Output::from(input.to_message())
            },
            Emit::New(output) => output,
        }
    }
}

/// Runs `transform`'s [`process_ref`](Transform::process_ref) on an owned message
/// and gives each [`Emit`] as the output it stands for: how a transform written in
/// place answers [`process`](Transform::process) in single-message mode with the same
/// logic.
///
/// Call it only from a `process` whose transform overrides `process_ref`: the
/// default `process_ref` calls `process`, and the two would call each other forever.
///
/// ```
/// use rustmq_etl_guest::{process_in_place, Context, Emit, Error, Message, MessageRef, Output, Params, Transform};
///
/// struct Pass;
///
/// impl Transform for Pass {
///     const IN_PLACE: bool = true;
///     fn init(_params: &Params) -> Result<Self, String> {
///         Ok(Pass)
///     }
///     fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
///         process_in_place(self, msg, ctx)
///     }
///     fn process_ref(&self, _msg: MessageRef<'_>, _ctx: &Context) -> Result<Vec<Emit>, Error> {
///         Ok(vec![Emit::unchanged()])
///     }
/// }
///
/// let msg = Message::new("v").with_key("k");
/// let out = rustmq_etl_guest::testing::run(&Pass, msg.clone()).unwrap();
/// assert_eq!(out, vec![Output::from(msg)]);
/// ```
pub fn process_in_place<T: Transform>(
    transform: &T,
    msg: Message,
    ctx: &Context,
) -> Result<Vec<Output>, Error> {
    let view = MessageRef::from(&msg);
    let emits = transform.process_ref(view, ctx)?;
    Ok(emits.into_iter().map(|e| e.into_output(&view)).collect())
}

impl From<Output> for Emit {
    fn from(output: Output) -> Emit {
        Emit::New(output)
    }
}

#[cfg(test)]
mod tests {
    use rustmq_etl_buffer::{write_batch, BatchReader, MessageIn};

    use super::*;

    #[test]
    fn a_view_of_a_buffer_reads_as_the_message_it_was_written_from() {
        let msg = Message::new("v")
            .with_key("k")
            .with_header("a", "1")
            .with_header("b", "2")
            .with_timestamp(9);
        let mut buf = Vec::new();
        let headers = msg
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        write_batch(
            &mut buf,
            1,
            std::iter::once(MessageIn {
                offset: 3,
                timestamp: msg.timestamp,
                key: msg.key.as_deref().map(str::as_bytes),
                value: &msg.value,
                headers,
            }),
        )
        .unwrap();
        let reader = BatchReader::new(&buf).unwrap();
        let view = MessageRef::from_buffer(&reader.get(0).unwrap()).unwrap();
        assert_eq!(view.to_message(), msg);
        assert_eq!(view.header("b"), Some("2"));
        assert_eq!(view.header("c"), None);
        assert_eq!(view.value_str(), Ok("v"));
        let owned = MessageRef::from(&msg);
        assert_eq!(
            owned.headers().collect::<Vec<_>>(),
            view.headers().collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_view_refuses_a_key_that_is_not_utf8() {
        let mut buf = Vec::new();
        write_batch(
            &mut buf,
            1,
            std::iter::once(MessageIn {
                offset: 0,
                timestamp: 0,
                key: Some(&[0xff][..]),
                value: b"v",
                headers: std::iter::empty::<(&[u8], &[u8])>(),
            }),
        )
        .unwrap();
        let reader = BatchReader::new(&buf).unwrap();
        let err = MessageRef::from_buffer(&reader.get(0).unwrap()).unwrap_err();
        assert!(err.0.contains("a key"), "{err}");
    }

    #[test]
    fn an_unchanged_emit_is_its_input_with_the_topic_it_names() {
        let msg = Message::new("v").with_key("k").with_header("h", "1");
        let view = MessageRef::from(&msg);
        let out = Emit::unchanged_to("audit").into_output(&view);
        assert_eq!(out, Output::from(msg.clone()).to("audit"));
        let new = Output::new("x");
        assert_eq!(Emit::from(new.clone()).into_output(&view), new);
    }
}
