//! `rustmq-etl produce`: writes messages to a topic through the message API
//! (`POST /api/v1/topics/{topic}/messages`, the deployment guide's Step 6.1).
//!
//! One message from `--value`, or many from standard input / `--input`: one value per
//! line, or with `--jsonl` one message object per line in the API's form (the same
//! lines `rustmq-etl run` reads). Many messages are sent in batches; each batch is
//! stored atomically.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Map, Value};

use super::client::{segment, Api, Client, ClientArgs};
use super::{output, CliError};
use crate::wire::{Produced, ProducedBatch};

/// The largest `--batch-size`: the broker's default `server.max_batch_messages`.
pub const MAX_BATCH: usize = 10_000;

/// Arguments of `produce`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rustmq-etl produce raw-events --key sensor-001 \\
      -H content-type=application/json -H source=iot-sensors -H client_ip=192.168.1.100 \\
      --value '{\"temperature_celsius\": 23.5, \"humidity\": 65.2, \"sensor_id\": \"env001\"}'
  seq 1 1000 | rustmq-etl produce numbers
  rustmq-etl produce raw-events --jsonl --input samples.jsonl

Prints the offset(s) the broker assigned; the answer comes once the messages are durable.")]
pub struct ProduceArgs {
    /// Where the broker is.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The topic (created on first produce unless the broker disables it).
    pub topic: String,
    /// The value of a single message. Without it, messages are read from standard
    /// input (or --input), one per line.
    #[arg(long, conflicts_with_all = ["input", "jsonl"])]
    pub value: Option<String>,
    /// Read messages from this file instead of standard input.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Each input line is a message object (`{"key","value"|"value_base64","headers",
    /// "timestamp"}`) rather than a bare value.
    #[arg(long)]
    pub jsonl: bool,
    /// The key of every message given by --value or by plain lines.
    #[arg(long, short)]
    pub key: Option<String>,
    /// A header `NAME=VALUE` on every message given by --value or by plain lines
    /// (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME=VALUE", value_parser = super::run::parse_param)]
    pub headers: Vec<(String, String)>,
    /// Messages per request when reading many.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH as i64))]
    pub batch_size: u16,
}

impl ProduceArgs {
    /// The message object for one plain value.
    fn message(&self, value: &str) -> Value {
        let headers: Vec<Value> = self.headers.iter().map(|(k, v)| json!([k, v])).collect();
        let mut m = Map::new();
        if let Some(key) = &self.key {
            m.insert("key".into(), json!(key));
        }
        m.insert("value".into(), json!(value));
        if !headers.is_empty() {
            m.insert("headers".into(), Value::Array(headers));
        }
        Value::Object(m)
    }

    /// One input line as a message object.
    fn line_message(&self, line: &str, number: usize) -> Result<Value, CliError> {
        if !self.jsonl {
            return Ok(self.message(line));
        }
        let value: Value = serde_json::from_str(line)
            .map_err(|e| CliError::Usage(format!("input line {number}: not JSON: {e}")))?;
        if !value.is_object() {
            return Err(CliError::Usage(format!(
                "input line {number}: expected a message object like {{\"key\": \"k\", \"value\": \"v\"}}"
            )));
        }
        Ok(value)
    }
}

/// Runs `produce`, reading messages from `stdin` when neither --value nor --input is
/// given.
pub fn run(
    produce: &ProduceArgs,
    args: &ClientArgs,
    stdin: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let client = Client::new(args)?;
    let path = format!("/api/v1/topics/{}/messages", segment(&produce.topic));
    if let Some(value) = &produce.value {
        let answer = client.post_json(Api::Data, &path, &produce.message(value))?;
        if args.json {
            return Ok(output::json(out, &answer)?);
        }
        let produced: Produced = output::decode(&answer)?;
        writeln!(
            out,
            "produced to {} at offset {}",
            produced.topic, produced.offset
        )?;
        return Ok(());
    }

    let mut file_input;
    let input: &mut dyn BufRead = match &produce.input {
        Some(file) => {
            let opened = File::open(file).map_err(|source| CliError::ReadFile {
                path: file.clone(),
                source,
            })?;
            file_input = BufReader::new(opened);
            &mut file_input
        }
        None => stdin,
    };
    let mut offsets: Vec<u64> = Vec::new();
    let mut batch: Vec<Value> = Vec::new();
    let mut send = |batch: &mut Vec<Value>| -> Result<(), CliError> {
        let answer = client.post_json(Api::Data, &path, &json!({ "messages": batch }))?;
        let produced: ProducedBatch = output::decode(&answer)?;
        offsets.extend(produced.offsets);
        batch.clear();
        Ok(())
    };
    let mut line = String::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = input
            .read_line(&mut line)
            .map_err(|source| CliError::ReadFile {
                path: produce
                    .input
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("<stdin>")),
                source,
            })?;
        if read == 0 {
            break;
        }
        number += 1;
        let text = line.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        batch.push(produce.line_message(text, number)?);
        if batch.len() >= usize::from(produce.batch_size) {
            send(&mut batch)?;
        }
    }
    if !batch.is_empty() {
        send(&mut batch)?;
    }
    if offsets.is_empty() {
        return Err(CliError::Usage(
            "no messages: give --value, or lines on standard input / --input".into(),
        ));
    }
    if args.json {
        return Ok(output::json(
            out,
            &json!({ "topic": produce.topic, "offsets": offsets }),
        )?);
    }
    let first = offsets.first().copied().unwrap_or(0);
    let last = offsets.last().copied().unwrap_or(0);
    writeln!(
        out,
        "produced {} message{} to {} (offsets {first}..={last})",
        offsets.len(),
        if offsets.len() == 1 { "" } else { "s" },
        produce.topic
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> ProduceArgs {
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            p: ProduceArgs,
        }
        P::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .p
    }

    #[test]
    fn plain_values_carry_the_key_and_headers_in_order() {
        let p = parse(&["t", "-k", "k1", "-H", "source=a", "-H", "source=b"]);
        assert_eq!(
            p.message("v"),
            json!({"key": "k1", "value": "v", "headers": [["source", "a"], ["source", "b"]]})
        );
    }

    #[test]
    fn jsonl_lines_must_be_objects() {
        let p = parse(&["t", "--jsonl"]);
        assert!(p.line_message("{\"value\": \"x\"}", 1).is_ok());
        assert!(matches!(
            p.line_message("[1]", 2),
            Err(CliError::Usage(m)) if m.contains("line 2")
        ));
    }
}
