//! The `rustmq:etl@1.2.0` batch layout: a batch of messages crosses into the guest
//! as one `list<u8>`, and the guest's answer crosses back as one `list<u8>`, so a
//! batch costs one allocation and one copy each way instead of several per message.
//!
//! Everything is little-endian; every offset counts from the start of its buffer and
//! every range must lie inside it. Layout version 1:
//!
//! **Batch** (host → guest):
//!
//! | at | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `RMQB` |
//! | 4 | 2 | layout version (1) |
//! | 6 | 2 | flags (0) |
//! | 8 | 4 | message count `n` |
//! | 12 | 4 | reserved (0) |
//! | 16 | 40 × n | one [entry](MESSAGE_ENTRY) per message |
//! | … | | header entries and the data arena |
//!
//! A message entry: source offset (u64), timestamp (i64), key offset and length
//! (u32 each; offset `u32::MAX` for no key), value offset and length, headers offset
//! and count (u32 each). The headers offset points at `count` [header
//! entries](HEADER_ENTRY) of name offset, name length, value offset, value length
//! (u32 each). Keys, header names and header values are UTF-8.
//!
//! **Answer** (guest → host):
//!
//! | at | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `RMQA` |
//! | 4 | 2 | layout version (1) |
//! | 6 | 2 | flags (0) |
//! | 8 | 4 | result count: the batch's `n` |
//! | 12 | 4 | output count `m` |
//! | 16 | 20 × n | one [result](RESULT_ENTRY) per input, in order |
//! | … | 48 × m | the [outputs](OUTPUT_ENTRY), results' outputs one after another |
//! | … | | header entries and the data arena |
//!
//! A result: kind (u32: 0 outputs, 1 error, 2 dead letter), first output index and
//! output count (u32 each: the outputs of result `i` follow those of result `i - 1`
//! with no gap), error offset and length (u32 each; UTF-8; for kinds 1 and 2).
//!
//! An output: flags (u32: bit 0 *pass*, the input at `input` unchanged; bit 1 has a
//! topic; bit 2 has a key), input index (u32, for *pass*), timestamp (i64), topic
//! offset and length, key offset and length, value offset and length, headers
//! offset and count (u32 each). A *pass* output takes its input's key, value,
//! headers and timestamp, and only its own topic: a filter or a router answers
//! without copying a payload back.

use std::fmt;

/// The batch buffer's magic.
pub const BATCH_MAGIC: [u8; 4] = *b"RMQB";
/// The answer buffer's magic.
pub const ANSWER_MAGIC: [u8; 4] = *b"RMQA";
/// The layout version this crate reads and writes.
pub const LAYOUT_VERSION: u16 = 1;
/// Bytes of either buffer's fixed header.
pub const HEADER: usize = 16;
/// Bytes of a message entry in a batch.
pub const MESSAGE_ENTRY: usize = 40;
/// Bytes of a header entry.
pub const HEADER_ENTRY: usize = 16;
/// Bytes of a result entry in an answer.
pub const RESULT_ENTRY: usize = 20;
/// Bytes of an output entry in an answer.
pub const OUTPUT_ENTRY: usize = 48;
/// A key offset meaning "no key".
pub const NO_KEY: u32 = u32::MAX;

/// An output flag: the output is its input unchanged.
pub const FLAG_PASS: u32 = 1;
/// An output flag: the output names a topic.
pub const FLAG_TOPIC: u32 = 2;
/// An output flag: the output has a key.
pub const FLAG_KEY: u32 = 4;

/// What went wrong reading a buffer: said plainly, for the module's author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayoutError(pub String);

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LayoutError {}

fn bad<T>(message: impl Into<String>) -> Result<T, LayoutError> {
    Err(LayoutError(message.into()))
}

fn u32_at(buf: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(buf[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(buf: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(buf[at..at + 8].try_into().expect("eight bytes"))
}

/// `len` bytes at `off` of `buf`, or an error naming `what`.
fn range<'a>(buf: &'a [u8], off: u32, len: u32, what: &str) -> Result<&'a [u8], LayoutError> {
    let start = off as usize;
    match start.checked_add(len as usize) {
        Some(end) if end <= buf.len() => Ok(&buf[start..end]),
        _ => bad(format!(
            "{what}: bytes {off}..{} lie outside the {}-byte buffer",
            u64::from(off) + u64::from(len),
            buf.len()
        )),
    }
}

/// `count` entries of `size` bytes at `off`, or an error naming `what`.
fn table<'a>(
    buf: &'a [u8],
    off: usize,
    count: u32,
    size: usize,
    what: &str,
) -> Result<&'a [u8], LayoutError> {
    let len = (count as usize).checked_mul(size);
    match len.and_then(|len| off.checked_add(len)) {
        Some(end) if end <= buf.len() => Ok(&buf[off..end]),
        _ => bad(format!(
            "{what}: {count} entries of {size} bytes at {off} do not fit the {}-byte buffer",
            buf.len()
        )),
    }
}

fn check_header(buf: &[u8], magic: [u8; 4], what: &str) -> Result<u32, LayoutError> {
    if buf.len() < HEADER {
        return bad(format!(
            "{what}: {} bytes, shorter than the {HEADER}-byte header",
            buf.len()
        ));
    }
    if buf[..4] != magic {
        return bad(format!(
            "{what}: the magic is {:?}, not {:?}",
            String::from_utf8_lossy(&buf[..4]),
            String::from_utf8_lossy(&magic)
        ));
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    if version != LAYOUT_VERSION {
        return bad(format!(
            "{what}: layout version {version}; this reader knows {LAYOUT_VERSION}"
        ));
    }
    Ok(u32_at(buf, 8))
}

/// Header pairs as stored: a table of [`HEADER_ENTRY`]s into a buffer.
#[derive(Clone, Copy)]
pub struct Headers<'a> {
    buf: &'a [u8],
    table: &'a [u8],
}

impl<'a> Headers<'a> {
    fn new(buf: &'a [u8], off: u32, count: u32, what: &str) -> Result<Self, LayoutError> {
        let table = table(buf, off as usize, count, HEADER_ENTRY, what)?;
        Ok(Headers { buf, table })
    }

    /// How many pairs.
    pub fn len(&self) -> usize {
        self.table.len() / HEADER_ENTRY
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Pair `i` as bytes (name, value), checked against the buffer.
    pub fn get(&self, i: usize) -> Result<(&'a [u8], &'a [u8]), LayoutError> {
        let e = &self.table[i * HEADER_ENTRY..][..HEADER_ENTRY];
        let name = range(self.buf, u32_at(e, 0), u32_at(e, 4), "a header name")?;
        let value = range(self.buf, u32_at(e, 8), u32_at(e, 12), "a header value")?;
        Ok((name, value))
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<(&'a [u8], &'a [u8]), LayoutError>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// One message of a batch, borrowed from the buffer.
#[derive(Clone, Copy)]
pub struct MessageRef<'a> {
    /// Its source offset.
    pub offset: u64,
    /// Its timestamp, ms since the epoch.
    pub timestamp: i64,
    /// Its key (UTF-8), if any.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub value: &'a [u8],
    /// Its headers (UTF-8 names and values).
    pub headers: Headers<'a>,
}

/// A batch buffer, its header and entry table checked; each message is checked when
/// it is read.
pub struct BatchReader<'a> {
    buf: &'a [u8],
    entries: &'a [u8],
}

impl<'a> BatchReader<'a> {
    /// Reads `buf`'s header and entry table.
    pub fn new(buf: &'a [u8]) -> Result<Self, LayoutError> {
        let count = check_header(buf, BATCH_MAGIC, "the batch")?;
        let entries = table(buf, HEADER, count, MESSAGE_ENTRY, "the batch's entries")?;
        Ok(BatchReader { buf, entries })
    }

    /// How many messages.
    pub fn len(&self) -> usize {
        self.entries.len() / MESSAGE_ENTRY
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Message `i` (`i < len()`).
    pub fn get(&self, i: usize) -> Result<MessageRef<'a>, LayoutError> {
        let e = &self.entries[i * MESSAGE_ENTRY..][..MESSAGE_ENTRY];
        let key = match u32_at(e, 16) {
            NO_KEY => None,
            off => Some(range(self.buf, off, u32_at(e, 20), "a key")?),
        };
        Ok(MessageRef {
            offset: u64_at(e, 0),
            timestamp: u64_at(e, 8) as i64,
            key,
            value: range(self.buf, u32_at(e, 24), u32_at(e, 28), "a value")?,
            headers: Headers::new(
                self.buf,
                u32_at(e, 32),
                u32_at(e, 36),
                "a message's headers",
            )?,
        })
    }

    /// Every message, in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<MessageRef<'a>, LayoutError>> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

/// The offset at which `len` more bytes would start in `buf`, if they fit the
/// layout's 32-bit offsets.
fn room(buf: &[u8], len: usize) -> Result<u32, LayoutError> {
    u32::try_from(buf.len())
        .ok()
        .filter(|o| u64::from(*o) + len as u64 <= u64::from(u32::MAX - 1))
        .map_or_else(|| bad("the buffer would pass 4 GiB"), Ok)
}

/// Appends `bytes` to the arena at the end of `buf`; returns its offset.
fn put(buf: &mut Vec<u8>, bytes: &[u8]) -> Result<u32, LayoutError> {
    let off = room(buf, bytes.len())?;
    buf.extend_from_slice(bytes);
    Ok(off)
}

/// Appends `len` zero bytes (a table filled in afterwards); returns their offset.
fn put_zeros(buf: &mut Vec<u8>, len: usize) -> Result<u32, LayoutError> {
    let off = room(buf, len)?;
    buf.resize(buf.len() + len, 0);
    Ok(off)
}

fn set_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn start(buf: &mut Vec<u8>, magic: [u8; 4], count: u32, second: u32) {
    buf.clear();
    buf.extend_from_slice(&magic);
    buf.extend_from_slice(&LAYOUT_VERSION.to_le_bytes());
    buf.extend_from_slice(&0u16.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(&second.to_le_bytes());
}

/// Writes the headers of one message or output after the arena so far: the entry
/// table first, then the bytes; returns the table's offset.
fn put_headers<'h>(
    buf: &mut Vec<u8>,
    headers: impl ExactSizeIterator<Item = (&'h [u8], &'h [u8])> + Clone,
) -> Result<(u32, u32), LayoutError> {
    let count = u32::try_from(headers.len()).or_else(|_| bad("too many headers"))?;
    let table = put_zeros(buf, count as usize * HEADER_ENTRY)?;
    for (i, (name, value)) in headers.enumerate() {
        let name_off = put(buf, name)?;
        let value_off = put(buf, value)?;
        let e = table as usize + i * HEADER_ENTRY;
        set_u32(buf, e, name_off);
        set_u32(buf, e + 4, name.len() as u32);
        set_u32(buf, e + 8, value_off);
        set_u32(buf, e + 12, value.len() as u32);
    }
    Ok((table, count))
}

/// One message to put in a batch.
pub struct MessageIn<'a, H> {
    /// Its source offset.
    pub offset: u64,
    /// Its timestamp.
    pub timestamp: i64,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value.
    pub value: &'a [u8],
    /// Its headers.
    pub headers: H,
}

/// Writes a batch of `count` messages into `buf` (cleared first; its capacity is
/// reused).
pub fn write_batch<'a, H>(
    buf: &mut Vec<u8>,
    count: usize,
    messages: impl Iterator<Item = MessageIn<'a, H>>,
) -> Result<(), LayoutError>
where
    H: ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let n = u32::try_from(count).or_else(|_| bad("too many messages"))?;
    start(buf, BATCH_MAGIC, n, 0);
    buf.resize(HEADER + count * MESSAGE_ENTRY, 0);
    let mut written = 0;
    for (i, m) in messages.enumerate() {
        if i >= count {
            return bad("more messages than the count given");
        }
        let (key_off, key_len) = match m.key {
            Some(k) => (put(buf, k)?, k.len() as u32),
            None => (NO_KEY, 0),
        };
        let value_off = put(buf, m.value)?;
        let (headers_off, headers_count) = put_headers(buf, m.headers)?;
        let e = HEADER + i * MESSAGE_ENTRY;
        set_u64(buf, e, m.offset);
        set_u64(buf, e + 8, m.timestamp as u64);
        set_u32(buf, e + 16, key_off);
        set_u32(buf, e + 20, key_len);
        set_u32(buf, e + 24, value_off);
        set_u32(buf, e + 28, m.value.len() as u32);
        set_u32(buf, e + 32, headers_off);
        set_u32(buf, e + 36, headers_count);
        written += 1;
    }
    if written != count {
        return bad("fewer messages than the count given");
    }
    Ok(())
}

/// What a result says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Outputs (none: filtered).
    Outputs,
    /// An error: retried, then the error topic.
    Error,
    /// A dead letter: straight to the error topic (with its outputs, if any).
    DeadLetter,
}

impl Kind {
    fn code(self) -> u32 {
        match self {
            Kind::Outputs => 0,
            Kind::Error => 1,
            Kind::DeadLetter => 2,
        }
    }
}

/// One output, borrowed from an answer.
#[derive(Clone, Copy)]
pub struct OutputRef<'a> {
    /// For a *pass* output, the input it repeats unchanged.
    pub pass: Option<u32>,
    /// The topic it names, if any (UTF-8 unchecked).
    pub topic: Option<&'a [u8]>,
    /// Its key (ignored for *pass*).
    pub key: Option<&'a [u8]>,
    /// Its value (empty for *pass*).
    pub value: &'a [u8],
    /// Its headers (empty for *pass*).
    pub headers: Headers<'a>,
    /// Its timestamp (ignored for *pass*).
    pub timestamp: i64,
}

/// One input's result, borrowed from an answer.
pub struct ResultRef<'a> {
    /// What it says.
    pub kind: Kind,
    /// The error text, for [`Kind::Error`] and [`Kind::DeadLetter`].
    pub error: Option<&'a [u8]>,
    /// Its outputs' indexes in the answer.
    pub outputs: std::ops::Range<u32>,
}

/// An answer buffer, its structure checked: the count, every result, the outputs'
/// tables and every range inside the buffer.
pub struct AnswerReader<'a> {
    buf: &'a [u8],
    results: &'a [u8],
    outputs: &'a [u8],
    inputs: u32,
}

impl<'a> AnswerReader<'a> {
    /// Checks `buf` as the answer to a batch of `inputs` messages.
    pub fn new(buf: &'a [u8], inputs: usize) -> Result<Self, LayoutError> {
        let count = check_header(buf, ANSWER_MAGIC, "the answer")?;
        if count as usize != inputs {
            return bad(format!(
                "the answer has {count} results for a batch of {inputs} messages"
            ));
        }
        let output_count = u32_at(buf, 12);
        let results = table(buf, HEADER, count, RESULT_ENTRY, "the answer's results")?;
        let outputs = table(
            buf,
            HEADER + results.len(),
            output_count,
            OUTPUT_ENTRY,
            "the answer's outputs",
        )?;
        let reader = AnswerReader {
            buf,
            results,
            outputs,
            inputs: count,
        };
        // Results own consecutive, non-overlapping runs of outputs, all of them.
        let mut next = 0u32;
        for i in 0..count as usize {
            let e = &results[i * RESULT_ENTRY..][..RESULT_ENTRY];
            let (first, n) = (u32_at(e, 4), u32_at(e, 8));
            if first != next {
                return bad(format!(
                    "result {i}: its outputs start at {first}, but the outputs before it end at {next} (outputs must follow one another, without gaps or overlaps)"
                ));
            }
            next = match first.checked_add(n) {
                Some(end) if end <= output_count => end,
                _ => {
                    return bad(format!(
                        "result {i}: outputs {first}..{first}+{n} pass the answer's {output_count}"
                    ))
                }
            };
            reader.result(i)?;
        }
        if next != output_count {
            return bad(format!(
                "the answer declares {output_count} outputs, its results use {next}"
            ));
        }
        for o in 0..output_count {
            reader.output(o)?;
        }
        Ok(reader)
    }

    /// How many outputs in all.
    pub fn output_count(&self) -> u32 {
        (self.outputs.len() / OUTPUT_ENTRY) as u32
    }

    /// The result of input `i`.
    pub fn result(&self, i: usize) -> Result<ResultRef<'a>, LayoutError> {
        let e = &self.results[i * RESULT_ENTRY..][..RESULT_ENTRY];
        let kind = match u32_at(e, 0) {
            0 => Kind::Outputs,
            1 => Kind::Error,
            2 => Kind::DeadLetter,
            other => return bad(format!("result {i}: kind {other} is not 0, 1 or 2")),
        };
        let error = match kind {
            Kind::Outputs => None,
            _ => Some(range(
                self.buf,
                u32_at(e, 12),
                u32_at(e, 16),
                "an error text",
            )?),
        };
        let (first, n) = (u32_at(e, 4), u32_at(e, 8));
        Ok(ResultRef {
            kind,
            error,
            outputs: first..first.saturating_add(n),
        })
    }

    /// Output `o` of the answer.
    pub fn output(&self, o: u32) -> Result<OutputRef<'a>, LayoutError> {
        let e = &self.outputs[o as usize * OUTPUT_ENTRY..][..OUTPUT_ENTRY];
        let flags = u32_at(e, 0);
        if flags & !(FLAG_PASS | FLAG_TOPIC | FLAG_KEY) != 0 {
            return bad(format!("output {o}: unknown flags {flags:#x}"));
        }
        let topic = if flags & FLAG_TOPIC != 0 {
            Some(range(self.buf, u32_at(e, 16), u32_at(e, 20), "a topic")?)
        } else {
            None
        };
        if flags & FLAG_PASS != 0 {
            let input = u32_at(e, 4);
            if input >= self.inputs {
                return bad(format!(
                    "output {o} repeats input {input}, but the batch has {} messages",
                    self.inputs
                ));
            }
            return Ok(OutputRef {
                pass: Some(input),
                topic,
                key: None,
                value: &[],
                headers: Headers {
                    buf: self.buf,
                    table: &[],
                },
                timestamp: 0,
            });
        }
        let key = if flags & FLAG_KEY != 0 {
            Some(range(self.buf, u32_at(e, 24), u32_at(e, 28), "a key")?)
        } else {
            None
        };
        let headers = Headers::new(
            self.buf,
            u32_at(e, 40),
            u32_at(e, 44),
            "an output's headers",
        )?;
        for h in headers.iter() {
            h?;
        }
        Ok(OutputRef {
            pass: None,
            topic,
            key,
            value: range(self.buf, u32_at(e, 32), u32_at(e, 36), "a value")?,
            headers,
            timestamp: u64_at(e, 8) as i64,
        })
    }
}

/// One output to write in an answer.
pub enum OutputIn<'a, H> {
    /// Input `input` unchanged, to the destination or to `topic`.
    Pass {
        /// The input it repeats.
        input: u32,
        /// The topic it goes to, if not the destination.
        topic: Option<&'a [u8]>,
    },
    /// A new message.
    New {
        /// The topic it goes to, if not the destination.
        topic: Option<&'a [u8]>,
        /// Its key.
        key: Option<&'a [u8]>,
        /// Its value.
        value: &'a [u8],
        /// Its headers.
        headers: H,
        /// Its timestamp.
        timestamp: i64,
    },
}

/// Builds an answer in a reused buffer: tables at the front, data behind them.
/// Call [`AnswerWriter::result`] once per input, in order, then
/// [`AnswerWriter::finish`].
pub struct AnswerWriter {
    results: Vec<u8>,
    outputs: Vec<u8>,
    arena: Vec<u8>,
    count: u32,
    output_count: u32,
}

impl Default for AnswerWriter {
    fn default() -> Self {
        AnswerWriter::new()
    }
}

impl AnswerWriter {
    /// An empty answer.
    pub fn new() -> Self {
        AnswerWriter {
            results: Vec::new(),
            outputs: Vec::new(),
            arena: Vec::new(),
            count: 0,
            output_count: 0,
        }
    }

    /// Starts again, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.results.clear();
        self.outputs.clear();
        self.arena.clear();
        self.count = 0;
        self.output_count = 0;
    }

    /// The bytes [`finish`](AnswerWriter::finish) will write.
    pub fn len(&self) -> usize {
        HEADER + self.results.len() + self.outputs.len() + self.arena.len()
    }

    /// Whether no result has been written yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The next input's result.
    pub fn result<'a, H>(
        &mut self,
        kind: Kind,
        error: Option<&[u8]>,
        outputs: impl IntoIterator<Item = OutputIn<'a, H>>,
    ) -> Result<(), LayoutError>
    where
        H: ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let first = self.output_count;
        for out in outputs {
            self.output(out)?;
        }
        let (error_off, error_len) = match error {
            Some(e) => (put(&mut self.arena, e)?, e.len() as u32),
            None => (0, 0),
        };
        for v in [
            kind.code(),
            first,
            self.output_count - first,
            error_off,
            error_len,
        ] {
            self.results.extend_from_slice(&v.to_le_bytes());
        }
        self.count += 1;
        Ok(())
    }

    fn output<'a, H>(&mut self, out: OutputIn<'a, H>) -> Result<(), LayoutError>
    where
        H: ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let mut e = [0u8; OUTPUT_ENTRY];
        let topic_of = |arena: &mut Vec<u8>, e: &mut [u8; OUTPUT_ENTRY], topic: Option<&[u8]>| {
            if let Some(t) = topic {
                set_u32(e, 16, put(arena, t)?);
                set_u32(e, 20, t.len() as u32);
                return Ok(FLAG_TOPIC);
            }
            Ok::<u32, LayoutError>(0)
        };
        let flags = match out {
            OutputIn::Pass { input, topic } => {
                set_u32(&mut e, 4, input);
                FLAG_PASS | topic_of(&mut self.arena, &mut e, topic)?
            }
            OutputIn::New {
                topic,
                key,
                value,
                headers,
                timestamp,
            } => {
                let mut flags = topic_of(&mut self.arena, &mut e, topic)?;
                set_u64(&mut e, 8, timestamp as u64);
                if let Some(k) = key {
                    set_u32(&mut e, 24, put(&mut self.arena, k)?);
                    set_u32(&mut e, 28, k.len() as u32);
                    flags |= FLAG_KEY;
                }
                set_u32(&mut e, 32, put(&mut self.arena, value)?);
                set_u32(&mut e, 36, value.len() as u32);
                let (off, count) = put_headers(&mut self.arena, headers)?;
                set_u32(&mut e, 40, off);
                set_u32(&mut e, 44, count);
                flags
            }
        };
        set_u32(&mut e, 0, flags);
        self.outputs.extend_from_slice(&e);
        self.output_count += 1;
        Ok(())
    }

    /// The answer: header, results, outputs, then the data, with every data offset
    /// moved past the tables.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), LayoutError> {
        let base = HEADER + self.results.len() + self.outputs.len();
        let shift = |v: u32| -> Result<u32, LayoutError> {
            u32::try_from(base as u64 + u64::from(v))
                .or_else(|_| bad("the answer would pass 4 GiB"))
        };
        start(out, ANSWER_MAGIC, self.count, self.output_count);
        out.reserve(self.len() - HEADER);
        let results_at = out.len();
        out.extend_from_slice(&self.results);
        for i in 0..self.count as usize {
            let e = results_at + i * RESULT_ENTRY;
            if u32_at(out, e) != 0 {
                let v = shift(u32_at(out, e + 12))?;
                set_u32(out, e + 12, v);
            }
        }
        let outputs_at = out.len();
        out.extend_from_slice(&self.outputs);
        for o in 0..self.output_count as usize {
            let e = outputs_at + o * OUTPUT_ENTRY;
            let flags = u32_at(out, e);
            let mut moved = vec![];
            if flags & FLAG_TOPIC != 0 {
                moved.push(16);
            }
            if flags & FLAG_PASS == 0 {
                if flags & FLAG_KEY != 0 {
                    moved.push(24);
                }
                moved.push(32);
                moved.push(40);
            }
            for at in moved {
                let v = shift(u32_at(out, e + at))?;
                set_u32(out, e + at, v);
            }
        }
        // Header entries inside the arena point into the arena too.
        let arena_at = out.len();
        out.extend_from_slice(&self.arena);
        for o in 0..self.output_count as usize {
            let e = outputs_at + o * OUTPUT_ENTRY;
            if u32_at(out, e) & FLAG_PASS != 0 {
                continue;
            }
            let (table, count) = (u32_at(out, e + 40) as usize, u32_at(out, e + 44) as usize);
            for h in 0..count {
                let he = table + h * HEADER_ENTRY;
                for at in [0, 8] {
                    let v = shift(u32_at(out, he + at))?;
                    set_u32(out, he + at, v);
                }
            }
        }
        debug_assert_eq!(arena_at, base);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
