//! Implements the `rustmq:etl/etl` world (see `wit/etl.wit`) by converting between the
//! WIT records and [`crate::processor`]'s plain types.

use std::sync::OnceLock;

use crate::processor::{self, Settings};

wit_bindgen::generate!({
    // A copy of the broker's `wit/etl.wit`, kept inside the crate so the template
    // builds wherever it is copied.
    path: "wit",
    world: "etl",
});

// `Message`, `ProcessContext` and `ProcessResult` are generated at this module's root
// (the world `use`s them from the `types` interface).
use rustmq::etl::host::{log, LogLevel};

/// The settings `init` accepted; read by every `process` call of this instance.
static SETTINGS: OnceLock<Settings> = OnceLock::new();

struct Processor;

impl Guest for Processor {
    fn init(params: Vec<(String, String)>) -> Result<(), String> {
        let settings = Settings::from_params(&params)?;
        // `init` runs once per instance; a second call keeps the first settings.
        let _ = SETTINGS.set(settings);
        Ok(())
    }

    fn process(msg: Message, ctx: ProcessContext) -> ProcessResult {
        let settings = SETTINGS.get_or_init(Settings::default);
        let input = processor::Message {
            key: msg.key,
            value: msg.value,
            headers: msg.headers,
            timestamp: msg.timestamp,
        };
        match processor::transform_message(input, settings, now_secs()) {
            Ok(result) => {
                if result.transformed_messages.is_empty() {
                    log(
                        LogLevel::Debug,
                        &format!("filtered offset {} of {}", ctx.source_offset, ctx.source_topic),
                    );
                }
                ProcessResult {
                    transformed_messages: result
                        .transformed_messages
                        .into_iter()
                        .map(|m| Message {
                            key: m.key,
                            value: m.value,
                            headers: m.headers,
                            timestamp: m.timestamp,
                        })
                        .collect(),
                    should_continue: result.should_continue,
                    error: result.error,
                }
            }
            Err(error) => ProcessResult {
                transformed_messages: vec![],
                should_continue: false,
                error: Some(error),
            },
        }
    }
}

/// Seconds since the epoch from the WASI wall clock.
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

export!(Processor);
