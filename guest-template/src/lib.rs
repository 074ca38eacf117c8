//! A RustMQ ETL transform module, ready to copy and adapt.
//!
//! - [`processor`] holds the logic: plain functions over a plain [`processor::Message`],
//!   unit tested natively with `cargo test`. Edit this.
//! - This file implements the SDK's [`Transform`] on top of it, and [`export!`] makes
//!   it the module's implementation of the `rustmq:etl/etl-buffer@1.2.0` world. The
//!   SDK (`rustmq-etl-guest`) owns the WIT and the bindings.
//!
//! [`export!`]: rustmq_etl_guest::export

pub mod processor;

use rustmq_etl_guest::{log, Context, Error, Message, Output, Params, Transform};

use crate::processor::Settings;

/// The module: the settings `init` accepted, read by every call of this instance.
pub struct Processor {
    settings: Settings,
}

impl Transform for Processor {
    fn init(params: &Params) -> Result<Self, String> {
        Ok(Processor {
            settings: Settings::from_params(params.as_slice())?,
        })
    }

    fn process(&self, msg: Message, ctx: &Context) -> Result<Vec<Output>, Error> {
        let input = processor::Message {
            key: msg.key,
            value: msg.value,
            headers: msg.headers,
            timestamp: msg.timestamp,
        };
        let result = processor::transform_message(input, &self.settings, now_secs())
            .map_err(Error::retry)?;
        if result.transformed_messages.is_empty() {
            log::debug(&format!(
                "filtered offset {} of {}",
                ctx.source_offset(),
                ctx.source_topic()
            ));
        }
        let outputs = result
            .transformed_messages
            .into_iter()
            .map(|m| Output {
                topic: None,
                key: m.key,
                value: m.value,
                headers: m.headers,
                timestamp: m.timestamp,
            })
            .collect();
        match result.error {
            None => Ok(outputs),
            Some(error) if result.should_continue => Err(Error::dead_letter_with(error, outputs)),
            Some(error) => Err(Error::retry(error)),
        }
    }
}

rustmq_etl_guest::export!(Processor);

/// Seconds since the epoch from the wall clock (WASI's, in the module).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustmq_etl_guest::testing;

    #[test]
    fn the_module_transforms_json_and_filters_through_the_sdk() {
        let processor = testing::init::<Processor>(&[]).unwrap();
        let sensor = Message::new(r#"{"temperature_celsius": 25.0}"#)
            .with_header("content-type", "application/json")
            .with_header("source", "sensor-network");
        let out = testing::run(&processor, sensor).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header("enriched"), Some("true"));
        let json: serde_json::Value = serde_json::from_slice(&out[0].value).unwrap();
        assert_eq!(json["temperature_fahrenheit"], 77.0);

        let spam = Message::new("This is SPAM content").with_header("source", "unknown");
        assert_eq!(testing::run(&processor, spam), Ok(vec![]));
    }

    #[test]
    fn invalid_json_is_a_retried_failure() {
        let processor = testing::init::<Processor>(&[]).unwrap();
        let broken = Message::new("{not json")
            .with_header("content-type", "application/json")
            .with_header("source", "s");
        let error = testing::run(&processor, broken).unwrap_err();
        assert!(
            error.is_retried() && error.reason().contains("Invalid JSON"),
            "{error}"
        );
    }

    #[test]
    fn init_refuses_a_max_value_bytes_that_is_not_a_number() {
        let refused = testing::init::<Processor>(&[("max_value_bytes", "lots")]);
        assert!(refused.is_err_and(|e| e.contains("max_value_bytes")));
    }
}
