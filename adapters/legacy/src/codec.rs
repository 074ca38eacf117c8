//! The per-message JSON written and read by hand, because serde's general machinery was
//! most of the host's share of a legacy call: the value crosses as an array of byte
//! numbers (four characters a byte), and serde visits each one as a separate element.
//!
//! serde stays the reference. [`encode_input`] writes byte for byte what
//! `serde_json::to_writer` writes for a [`LegacyInput`] (a property test holds it to
//! that). [`read_result`] reads answers in the shape serde emits for the guide's
//! `ProcessResult` (whitespace allowed, keys in any order) and gives up, returning
//! `None`, on anything else: escapes in strings, unknown or repeated fields, numbers
//! that are not plain integers, the end of the input. The serde reader in
//! `abi` then reads the answer again and words the error, if there is one; so
//! an answer read here is one serde would have read to the same value.
//!
//! Nothing here allocates in proportion to anything but the answer's own contents, and
//! nothing recurses: the shape has a fixed depth.

use crate::shapes::{last_of_each_name, LegacyInput, RawMessage, RawResult};

/// Each byte as a JSON array element: its digits and a comma, padded to four bytes so
/// that one fixed-size copy writes it, and how many of the four count.
const BYTE_ELEMENTS: [([u8; 4], usize); 256] = {
    let mut table = [([0u8; 4], 0usize); 256];
    let mut i = 0;
    while i < 256 {
        let (h, t, o) = (
            b'0' + (i / 100) as u8,
            b'0' + (i / 10 % 10) as u8,
            b'0' + (i % 10) as u8,
        );
        table[i] = if i >= 100 {
            ([h, t, o, b','], 4)
        } else if i >= 10 {
            ([t, o, b',', 0], 3)
        } else {
            ([o, b',', 0, 0], 2)
        };
        i += 1;
    }
    table
};

/// Replaces `out` with the JSON text of `input`, exactly as `serde_json::to_writer`
/// encodes it.
pub(crate) fn encode_input(input: &LegacyInput<'_>, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(b"{\"key\":");
    match input.key {
        Some(key) => string(key, out),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"value\":[");
    byte_elements(input.value, out);
    out.extend_from_slice(b"],\"headers\":{");
    let mut first = true;
    // Only the last value of a repeated name, where serde's `headers_as_object` puts it.
    for (name, value) in last_of_each_name(input.headers) {
        if !first {
            out.push(b',');
        }
        first = false;
        string(name, out);
        out.push(b':');
        string(value, out);
    }
    out.extend_from_slice(b"},\"timestamp\":");
    out.extend_from_slice(itoa::Buffer::new().format(input.timestamp).as_bytes());
    out.push(b'}');
}

/// `bytes` as comma-separated numbers.
fn byte_elements(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    let start = out.len();
    // Four bytes per element at most; the slack is cut off below.
    out.resize(start + bytes.len() * 4, 0);
    let room = &mut out[start..];
    let mut at = 0;
    for &b in bytes {
        let (element, len) = &BYTE_ELEMENTS[b as usize];
        room[at..at + 4].copy_from_slice(element);
        at += len;
    }
    // Without the last comma.
    out.truncate(start + at - 1);
}

/// `s` as a JSON string, escaped as serde_json escapes it.
fn string(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Reads one `ProcessResult` object at the start of `text` (after optional whitespace).
/// Returns it with the number of bytes it took, or `None` where the serde reader must
/// decide.
pub(crate) fn read_result(text: &[u8]) -> Option<(RawResult, usize)> {
    let mut c = Cursor { text, at: 0 };
    let mut messages = None;
    let mut should_continue = None;
    let mut error = None;
    c.object(|c, field| {
        match field {
            "transformed_messages" if messages.is_none() => messages = Some(c.messages()?),
            "should_continue" if should_continue.is_none() => should_continue = Some(c.boolean()?),
            "error" if error.is_none() => error = Some(c.string_or_null()?.map(str::to_owned)),
            _ => return None,
        }
        Some(())
    })?;
    let result = RawResult {
        transformed_messages: messages?,
        should_continue: should_continue?,
        error: error.flatten(),
    };
    Some((result, c.at))
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The next byte after JSON whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        let at = self.skip_whitespace();
        self.text.get(at).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.at += 1)
    }

    /// Consumes `word` (`null`, `true`, `false`) if it comes next.
    fn word(&mut self, word: &[u8]) -> bool {
        let hit = self.peek().is_some() && self.text[self.at..].starts_with(word);
        if hit {
            self.at += word.len();
        }
        hit
    }

    /// An object, calling `member` with the cursor after each name's colon. Empty
    /// objects are allowed; trailing commas are not (serde refuses them).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let name = self.string()?;
            self.eat(b':')?;
            member(self, name)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array, calling `element` with the cursor before each element.
    fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            element(self)?;
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes or control characters, valid UTF-8 (what serde would
    /// borrow as is).
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let rest = &self.text[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        let s = std::str::from_utf8(&rest[..len]).ok()?;
        self.at += len + 1;
        Some(s)
    }

    fn string_or_null(&mut self) -> Option<Option<&'a str>> {
        if self.word(b"null") {
            return Some(None);
        }
        self.string().map(Some)
    }

    fn boolean(&mut self) -> Option<bool> {
        if self.word(b"true") {
            Some(true)
        } else if self.word(b"false") {
            Some(false)
        } else {
            None
        }
    }

    /// The digits of a non-negative integer, starting right here, as serde reads one:
    /// no leading zeros, and no fraction or exponent after it.
    fn digits(&mut self) -> Option<&'a [u8]> {
        let rest = &self.text[self.at..];
        let len = rest
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        let digits = &rest[..len];
        if len == 0
            || (len > 1 && digits[0] == b'0')
            || matches!(rest.get(len), Some(b'.' | b'e' | b'E') | None)
        {
            return None;
        }
        self.at += len;
        Some(digits)
    }

    /// An integer that fits an `i64`, or null.
    fn timestamp(&mut self) -> Option<Option<i64>> {
        if self.word(b"null") {
            return Some(None);
        }
        // No whitespace between the sign and the digits.
        let negative = self.peek()? == b'-';
        self.at += usize::from(negative);
        let mut magnitude: u64 = 0;
        for &d in self.digits()? {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(d - b'0'))?;
        }
        if negative {
            // serde reads `-0` as a float, which an `i64` refuses.
            if magnitude == 0 || magnitude > i64::MIN.unsigned_abs() {
                return None;
            }
            Some(Some((magnitude as i64).wrapping_neg()))
        } else {
            i64::try_from(magnitude).ok().map(Some)
        }
    }

    /// An array of byte numbers, or a string taken as its UTF-8 bytes.
    fn value(&mut self) -> Option<Vec<u8>> {
        if self.peek()? == b'"' {
            return self.string().map(|s| s.as_bytes().to_vec());
        }
        self.eat(b'[')?;
        let mut bytes = Vec::new();
        if self.eat(b']').is_some() {
            return Some(bytes);
        }
        // One tight loop per element, on a local position: the value is most of an
        // answer's text.
        let text = self.text;
        let is_space = |b: &u8| matches!(b, b' ' | b'\n' | b'\t' | b'\r');
        let mut at = self.at;
        loop {
            while text.get(at).is_some_and(is_space) {
                at += 1;
            }
            let mut n = u32::from(text.get(at)?.wrapping_sub(b'0'));
            if n > 9 {
                return None;
            }
            at += 1;
            // No leading zeros: serde refuses `01`.
            if n != 0 {
                while let Some(d) = text
                    .get(at)
                    .map(|b| b.wrapping_sub(b'0'))
                    .filter(|d| *d <= 9)
                {
                    n = n * 10 + u32::from(d);
                    at += 1;
                    if n > 255 {
                        return None;
                    }
                }
            }
            if matches!(text.get(at)?, b'0'..=b'9' | b'.' | b'e' | b'E') {
                return None;
            }
            bytes.push(n as u8);
            while text.get(at).is_some_and(is_space) {
                at += 1;
            }
            match text.get(at)? {
                b',' => at += 1,
                b']' => {
                    self.at = at + 1;
                    return Some(bytes);
                }
                _ => return None,
            }
        }
    }

    /// Moves past JSON whitespace; returns the new position.
    fn skip_whitespace(&mut self) -> usize {
        while matches!(self.text.get(self.at), Some(b' ' | b'\n' | b'\t' | b'\r')) {
            self.at += 1;
        }
        self.at
    }

    /// An object of string values as pairs in order (repeats kept), or null.
    fn headers(&mut self) -> Option<Vec<(String, String)>> {
        let mut pairs = Vec::new();
        if self.word(b"null") {
            return Some(pairs);
        }
        self.object(|c, name| {
            pairs.push((name.to_owned(), c.string()?.to_owned()));
            Some(())
        })?;
        Some(pairs)
    }

    fn messages(&mut self) -> Option<Vec<RawMessage>> {
        let mut messages = Vec::new();
        self.array(|c| {
            messages.push(c.message()?);
            Some(())
        })?;
        Some(messages)
    }

    fn message(&mut self) -> Option<RawMessage> {
        let (mut key, mut value, mut headers, mut timestamp) = (None, None, None, None);
        self.object(|c, field| {
            match field {
                "key" if key.is_none() => key = Some(c.string_or_null()?.map(str::to_owned)),
                "value" if value.is_none() => value = Some(c.value()?),
                "headers" if headers.is_none() => headers = Some(c.headers()?),
                "timestamp" if timestamp.is_none() => timestamp = Some(c.timestamp()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(RawMessage {
            key: key.flatten(),
            value: value?,
            headers: headers.unwrap_or_default(),
            timestamp: timestamp.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the serde reader makes of `text`, and where it stopped.
    pub(super) fn serde_read(text: &[u8]) -> Option<(RawResult, usize)> {
        let mut values = serde_json::Deserializer::from_slice(text).into_iter::<RawResult>();
        let first = values.next()?.ok()?;
        Some((first, values.byte_offset()))
    }

    #[test]
    fn encodes_what_serde_encodes() {
        let headers = [
            ("content-type".to_string(), "application/json".to_string()),
            (
                "q\"uo\\te".to_string(),
                "tab\tnl\ncr\r\u{1}\u{1f}\u{7f}é".to_string(),
            ),
            ("content-type".to_string(), "text/plain".to_string()),
        ];
        for (key, value, timestamp) in [
            (Some("sensor-temp001"), &b"{\"a\":1}"[..], 1_700_000_000_000),
            (None, &[0u8, 9, 10, 99, 100, 255][..], i64::MIN),
            (Some(""), &[][..], i64::MAX),
            (Some("\u{8}\u{c}"), &[7][..], -1),
        ] {
            let input = LegacyInput {
                key,
                value,
                headers: &headers,
                timestamp,
            };
            let mut out = b"stale".to_vec();
            encode_input(&input, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&input).unwrap()
            );
        }
    }

    #[test]
    fn keeps_the_last_pair_of_each_name_in_short_and_long_lists() {
        // The quadratic definition, against the scan (short lists) and the set (long).
        let reference = |headers: &[(String, String)]| -> Vec<(String, String)> {
            (0..headers.len())
                .filter(|&i| !headers[i + 1..].iter().any(|(k, _)| *k == headers[i].0))
                .map(|i| headers[i].clone())
                .collect()
        };
        for len in [0usize, 1, 2, 15, 16, 17, 40, 300] {
            for names in [1usize, 3, 7, 1000] {
                let headers: Vec<(String, String)> = (0..len)
                    .map(|i| (format!("h{}", (i * 7 + len) % names), i.to_string()))
                    .collect();
                let kept: Vec<(String, String)> = last_of_each_name(&headers).cloned().collect();
                assert_eq!(kept, reference(&headers), "{len} headers, {names} names");
            }
        }
    }

    #[test]
    fn reads_the_guides_answer_as_serde_does() {
        let text = br#"{"transformed_messages":[{"key":"sensor-temp001","value":[123,34,97,34,58,49,125],"headers":{"source":"s","enriched":"true"},"timestamp":1700000000000}],"should_continue":true,"error":null}"#;
        let fast = read_result(text).expect("the guide's shape is read by hand");
        assert_eq!(Some(&fast), serde_read(text).as_ref());
        assert_eq!(fast.0.transformed_messages[0].value, br#"{"a":1}"#);
        assert_eq!(fast.1, text.len());
    }

    #[test]
    fn reads_whitespace_any_key_order_and_the_optional_forms() {
        for text in [
            &b" {\n \"should_continue\" : false , \"transformed_messages\" : [ ] }trailing"[..],
            br#"{"transformed_messages":[{"value":"text","key":null,"headers":null,"timestamp":null}],"should_continue":true}"#,
            br#"{"error":"bad","should_continue":false,"transformed_messages":[{"value":[],"timestamp":-9223372036854775808},{"value":[0,255],"headers":{}}]}"#,
            br#"{"transformed_messages":[{"value":[1],"headers":{"a":"1","a":"2"}}],"should_continue":true}"#,
        ] {
            let fast = read_result(text);
            assert!(fast.is_some(), "{}", String::from_utf8_lossy(text));
            assert_eq!(fast, serde_read(text), "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn leaves_to_serde_what_it_does_not_recognise() {
        for text in [
            // Escapes, unknown and repeated fields, the sequence form of a struct.
            &br#"{"transformed_messages":[{"value":"a\nb"}],"should_continue":true}"#[..],
            br#"{"transformed_messages":[{"k\u0065y":"k","value":[]}],"should_continue":true}"#,
            br#"{"transformed_messages":[],"should_continue":true,"extra":1}"#,
            br#"{"transformed_messages":[],"should_continue":true,"should_continue":false}"#,
            br#"[[],true,null]"#,
            // Numbers serde refuses or reads as floats.
            br#"{"transformed_messages":[{"value":[256]}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[01]}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[1.0]}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[-1]}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[],"timestamp":-0}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[],"timestamp":- 5}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[],"timestamp":9223372036854775808}],"should_continue":true}"#,
            br#"{"transformed_messages":[{"value":[],"timestamp":1e3}],"should_continue":true}"#,
            // Missing fields, trailing commas, a cut-off answer.
            br#"{"transformed_messages":[{"key":"k"}],"should_continue":true}"#,
            br#"{"transformed_messages":[]}"#,
            br#"{"transformed_messages":[{"value":[1,]}],"should_continue":true}"#,
            br#"{"transformed_messages":[],"should_continue":true,}"#,
            br#"{"transformed_messages":[{"value":[1,2"#,
            b"{\"transformed_messages\":[],\"should_continue\":true,\"error\":\"\xff\"}",
        ] {
            assert_eq!(read_result(text), None, "{}", String::from_utf8_lossy(text));
        }
    }
}

/// Property tests: the encoder is serde's encoding, and whatever the reader accepts,
/// serde reads to the same value and stops at the same byte.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Cases per property: enough to reach the rare branches, few enough for CI.
    const CASES: u32 = 1024;

    /// Text with the characters JSON strings treat specially.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\n'),
                Just('\u{0}'),
                Just('\u{1f}'),
                Just('é'),
                Just('a'),
            ],
            0..6,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    /// A valid answer as a guest might write it, then cut, spliced or padded.
    fn answer() -> impl Strategy<Value = Vec<u8>> {
        let message = (
            prop::option::of("[a-z]{0,4}"),
            prop::collection::vec(any::<u8>(), 0..6),
            prop::collection::vec(("[a-c]{1,2}", "[a-z]{0,3}"), 0..3),
            prop::option::of(any::<i64>()),
        )
            .prop_map(|(key, value, headers, timestamp)| {
                let headers: serde_json::Map<_, _> = headers
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                let mut m = serde_json::json!({ "key": key, "value": value, "headers": headers });
                if let Some(t) = timestamp {
                    m["timestamp"] = t.into();
                }
                m
            });
        let valid = (
            prop::collection::vec(message, 0..3),
            any::<bool>(),
            prop::option::of("[a-z]{0,3}"),
        )
            .prop_map(|(messages, should_continue, error)| {
                serde_json::to_vec(&serde_json::json!({
                    "transformed_messages": messages,
                    "should_continue": should_continue,
                    "error": error,
                }))
                .unwrap()
            });
        let splice = prop_oneof![
            Just(&b" "[..]),
            Just(&b","[..]),
            Just(&b"\\"[..]),
            Just(&b"0"[..]),
            Just(&b"-"[..]),
            Just(&b"."[..]),
            Just(&b"}"[..]),
            Just(&b"]"[..]),
            Just(&b"null"[..]),
            Just(&b"\"value\":[1],"[..]),
            Just(&b"\xff"[..]),
        ];
        (
            valid,
            prop::collection::vec((any::<prop::sample::Index>(), 0usize..3, splice), 0..3),
        )
            .prop_map(|(mut text, edits)| {
                for (at, how, piece) in edits {
                    let at = at.index(text.len() + 1);
                    match how {
                        0 => text.truncate(at),
                        1 if at < text.len() => {
                            text.remove(at);
                        }
                        _ => text.splice(at..at, piece.iter().copied()).for_each(drop),
                    }
                }
                text
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn encoder_writes_serdes_text(
            key in prop::option::of(text()),
            value in prop::collection::vec(any::<u8>(), 0..16),
            headers in prop::collection::vec((prop_oneof![Just("a".to_string()), text()], text()), 0..4),
            timestamp in any::<i64>(),
        ) {
            let input = LegacyInput { key: key.as_deref(), value: &value, headers: &headers, timestamp };
            let mut out = Vec::new();
            encode_input(&input, &mut out);
            prop_assert_eq!(out, serde_json::to_vec(&input).unwrap());
        }

        #[test]
        fn reader_accepts_only_what_serde_reads_the_same(text in answer()) {
            if let Some(fast) = read_result(&text) {
                prop_assert_eq!(Some(fast), tests::serde_read(&text));
            }
        }

        #[test]
        fn reader_reads_every_unedited_answer(
            messages in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..8), any::<i64>()), 0..3),
            should_continue in any::<bool>(),
        ) {
            let messages: Vec<_> = messages
                .into_iter()
                .map(|(value, timestamp)| serde_json::json!({"key": "k", "value": value, "headers": {"h": "v"}, "timestamp": timestamp}))
                .collect();
            let text = serde_json::to_vec(&serde_json::json!({
                "transformed_messages": messages,
                "should_continue": should_continue,
                "error": null,
            })).unwrap();
            let fast = read_result(&text);
            prop_assert!(fast.is_some());
            prop_assert_eq!(fast, tests::serde_read(&text));
        }
    }
}
