//! What a produce body says: one message or a batch, read and checked without I/O
//! (the message API's handler stores what this returns; the fuzz target `produce_body`
//! feeds it arbitrary bytes).

use axum::http::StatusCode;
use serde::Deserialize;

use super::{parse_json, ApiError};
use crate::message::{HeaderLimits, Message, MessageJson, MessageJsonError};

/// A produce body, read.
#[derive(Debug, PartialEq)]
pub enum ProduceBody {
    /// `{"key","value"|"value_base64","headers","timestamp"}`.
    One(Message),
    /// `{"messages": [...]}`, at least one and at most the batch limit.
    Batch(Vec<Message>),
}

/// Whether a produce body has a `messages` field (the batch form); its other fields
/// and every value are skipped, not kept.
#[derive(Deserialize)]
struct ProduceForm {
    #[serde(default)]
    messages: Option<serde::de::IgnoredAny>,
}

/// The batch form of a produce body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    messages: Vec<MessageJson>,
}

/// Reads a produce body: messages without a timestamp get `now`; headers are held to
/// `limits`; a batch holds at most `max_batch` messages. Every refusal is a 4xx
/// [`ApiError`] saying which message and what was wrong.
pub fn parse(
    body: &[u8],
    now: i64,
    limits: &HeaderLimits,
    max_batch: usize,
) -> Result<ProduceBody, ApiError> {
    // Which form it is, read without building the body as a JSON tree (that tree
    // took many times the body's size).
    if !body.trim_ascii_start().starts_with(b"{") {
        // Malformed JSON is told as such; well-formed JSON of another kind is not
        // an object.
        let _: serde::de::IgnoredAny = parse_json(body)?;
        return Err(ApiError::bad_request(
            "invalid_json_data",
            "the body must be a JSON object: a message or {\"messages\": [...]}",
        ));
    }
    let probe: ProduceForm = parse_json(body)?;
    if probe.messages.is_none() {
        return Ok(ProduceBody::One(to_message(
            parse_json::<MessageJson>(body)?,
            now,
            None,
            limits,
        )?));
    }
    let batch: Batch = parse_json(body)?;
    if batch.messages.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "\"messages\" is empty",
        ));
    }
    if batch.messages.len() > max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "{} messages in one batch; the limit is {max_batch} (server.max_batch_messages)",
                batch.messages.len()
            ),
        ));
    }
    let messages = batch
        .messages
        .into_iter()
        .enumerate()
        .map(|(i, m)| to_message(m, now, Some(i), limits))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ProduceBody::Batch(messages))
}

fn to_message(
    json: MessageJson,
    now: i64,
    at: Option<usize>,
    limits: &HeaderLimits,
) -> Result<Message, ApiError> {
    let which = || match at {
        Some(i) => format!("messages[{i}]: "),
        None => String::new(),
    };
    let message = json.into_message(now).map_err(|e| {
        let code = match e {
            MessageJsonError::MissingValue => "missing_value",
            MessageJsonError::BothValues => "invalid_message",
            MessageJsonError::BadBase64(_) => "invalid_base64",
            MessageJsonError::HeaderNotString(_) => "invalid_header",
        };
        ApiError::bad_request(code, format!("{}{e}", which()))
    })?;
    limits
        .check(&message.headers)
        .map_err(|e| ApiError::bad_request(e.code(), format!("{}{e}", which())))?;
    Ok(message)
}
