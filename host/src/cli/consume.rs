//! `rustmq-etl consume`: reads a topic through the message API
//! (`GET /api/v1/topics/{topic}/messages`, the deployment guide's Step 6.2).
//!
//! Without `--follow` it prints what the topic holds from `--offset` to its current
//! end; with `--follow` it keeps reading with the API's long-poll (`wait_ms`), so new
//! messages show up as soon as they are stored, and a topic that does not exist yet
//! (a pipeline's destination before its first output) is waited for. `--count` stops
//! after that many messages, `--timeout-secs` bounds the wait: together they let a
//! script wait for a pipeline's output without sleeping.

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Args;

use super::client::{segment, Api, Client, ClientArgs, ClientError};
use super::{output, CliError};
use crate::wire::{Consumed, MessageOut};

/// The long-poll wait asked of the broker per request while following (under the
/// broker's default `server.max_wait_ms` of 30 s, so the answer is never cut short).
pub const FOLLOW_WAIT_MS: u64 = 10_000;
/// How often a followed topic that does not exist yet is looked for again.
pub const MISSING_TOPIC_RETRY: Duration = Duration::from_millis(200);
/// Messages asked for per request.
pub const PAGE: u64 = 500;

/// Arguments of `consume`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rustmq-etl consume processed-events
  rustmq-etl consume processed-events --offset 42 --count 10
  rustmq-etl consume processed-events --follow
  rustmq-etl consume processed-events --follow --count 1 --timeout-secs 30 --json

With --json every message is one JSON line ({\"offset\",\"key\",\"value\"|\"value_base64\",
\"headers\",\"timestamp\"}): the form `produce --jsonl` and `run` read.
Exit status 1 when --timeout-secs passes before --count messages arrived.")]
pub struct ConsumeArgs {
    /// Where the broker is.
    #[command(flatten)]
    pub client: ClientArgs,
    /// The topic.
    pub topic: String,
    /// The first offset to read.
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Stop after this many messages.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Keep reading new messages as they arrive (until --count, --timeout-secs or
    /// Ctrl-C).
    #[arg(long, short)]
    pub follow: bool,
    /// With --follow: give up after this many seconds.
    #[arg(long, requires = "follow")]
    pub timeout_secs: Option<u64>,
}

/// Runs `consume`.
pub fn run(consume: &ConsumeArgs, args: &ClientArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let client = Client::new(args)?;
    let path = format!("/api/v1/topics/{}/messages", segment(&consume.topic));
    let deadline = consume
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut offset = consume.offset;
    let mut printed: u64 = 0;
    loop {
        if consume.count.is_some_and(|n| printed >= n) {
            return Ok(());
        }
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if remaining.is_some_and(|r| r.is_zero()) {
            return Err(CliError::Timeout(format!(
                "{printed} of {} message(s) arrived on {} within {} s",
                consume
                    .count
                    .map_or("the wanted".to_string(), |n| n.to_string()),
                consume.topic,
                consume.timeout_secs.unwrap_or(0)
            )));
        }
        let want = consume
            .count
            .map_or(PAGE, |n| (n - printed).min(PAGE))
            .max(1);
        let wait_ms = if consume.follow {
            remaining.map_or(FOLLOW_WAIT_MS, |r| {
                (r.as_millis() as u64).clamp(1, FOLLOW_WAIT_MS)
            })
        } else {
            0
        };
        let query = format!("{path}?offset={offset}&max_messages={want}&wait_ms={wait_ms}");
        let answer = match client.get(Api::Data, &query) {
            Ok(answer) => answer,
            Err(e) if consume.follow && e.code() == Some("topic_not_found") => {
                std::thread::sleep(MISSING_TOPIC_RETRY);
                continue;
            }
            Err(ClientError::Api { code, .. })
                if code == "offset_out_of_range" && !consume.follow =>
            {
                // Past the end: nothing to print.
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let consumed: Consumed<MessageOut> = output::decode(&answer)?;
        for message in &consumed.messages {
            print_message(out, message, args.json)?;
            printed += 1;
        }
        out.flush()?;
        offset = consumed.next_offset;
        if !consume.follow && (consumed.messages.is_empty() || offset >= consumed.end_offset) {
            return Ok(());
        }
    }
}

/// One message: a JSON line, or a header line, the headers and the value for people.
fn print_message(out: &mut dyn Write, message: &MessageOut, json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, message).map_err(std::io::Error::from)?;
        return out.write_all(b"\n");
    }
    let offset = message
        .offset
        .map_or_else(|| "-".to_string(), |o| o.to_string());
    let key = message.key.as_deref().unwrap_or("-");
    writeln!(
        out,
        "offset {offset}  key {key}  timestamp {}",
        message.timestamp
    )?;
    for (name, value) in &message.headers {
        writeln!(out, "  {name}: {}", output::show(value))?;
    }
    match (&message.value, &message.value_base64) {
        (Some(v), _) => writeln!(out, "  {v}"),
        (None, Some(b)) => writeln!(out, "  (binary, base64) {b}"),
        (None, None) => writeln!(out, "  -"),
    }
}
