//! The benchmark transforms as an Extism plugin. Extism passes bytes, so the message
//! crosses as JSON (`{"key", "value", "headers": [[k, v]], "timestamp"}`, value as a
//! UTF-8 string), both ways.

use extism_pdk::*;
use serde::{Deserialize, Serialize};

#[path = "../../../../guest-template/src/processor.rs"]
#[allow(dead_code, unused_imports)]
mod processor;

#[derive(Serialize, Deserialize)]
struct Wire {
    key: Option<String>,
    value: String,
    headers: Vec<(String, String)>,
    timestamp: i64,
}

/// Hands the message back unchanged (decoded and re-encoded, as a transform must).
#[plugin_fn]
pub fn identity(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let m: Wire = serde_json::from_slice(&input)?;
    Ok(serde_json::to_vec(&[m])?)
}

/// The guide's transform.
#[plugin_fn]
pub fn guide(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let m: Wire = serde_json::from_slice(&input)?;
    let message = processor::Message {
        key: m.key,
        value: m.value.into_bytes(),
        headers: m.headers,
        timestamp: m.timestamp,
    };
    let result = processor::transform_message(message, &processor::Settings::default(), 1_700_000_000)
        .map_err(|e| Error::msg(e))?;
    let out: Vec<Wire> = result
        .transformed_messages
        .into_iter()
        .map(|m| Wire {
            key: m.key,
            value: String::from_utf8_lossy(&m.value).into_owned(),
            headers: m.headers,
            timestamp: m.timestamp,
        })
        .collect();
    Ok(serde_json::to_vec(&out)?)
}
