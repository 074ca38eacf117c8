//! Routes readings to an alerts topic above a threshold, through the SDK.
//!
//! The input value is JSON `{"reading": <number>}`. A reading above the `threshold`
//! parameter (default 100) goes to the topic named by the `alerts_topic` parameter
//! (default `alerts`), which the pipeline must declare in `routes`; the others go to
//! the destination topic. Messages are passed on unchanged. A value that is not such
//! JSON is a dead letter; a `threshold` that is not a number refuses `init`.

use rustmq_etl_guest::{Context, Error, Message, Output, Params, Transform};

/// The `threshold` when the pipeline does not set it.
const DEFAULT_THRESHOLD: f64 = 100.0;
/// The `alerts_topic` when the pipeline does not set it.
const DEFAULT_ALERTS_TOPIC: &str = "alerts";

struct Router {
    threshold: f64,
    alerts_topic: String,
}

impl Transform for Router {
    fn init(params: &Params) -> Result<Self, String> {
        Ok(Router {
            threshold: params.parse_or("threshold", DEFAULT_THRESHOLD)?,
            alerts_topic: params
                .get("alerts_topic")
                .unwrap_or(DEFAULT_ALERTS_TOPIC)
                .to_string(),
        })
    }

    fn process(&self, msg: Message, _ctx: &Context) -> Result<Vec<Output>, Error> {
        let reading = serde_json::from_slice::<serde_json::Value>(&msg.value)
            .ok()
            .and_then(|json| json.get("reading")?.as_f64())
            .ok_or_else(|| Error::dead_letter("expected JSON {\"reading\": <number>}"))?;
        let out = Output::from(msg);
        if reading > self.threshold {
            Ok(vec![out.to(self.alerts_topic.as_str())])
        } else {
            Ok(vec![out])
        }
    }
}

rustmq_etl_guest::export!(Router);
