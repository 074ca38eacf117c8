//! The message processing logic: plain Rust over a plain message type, so it can be
//! unit tested natively with `cargo test` (no WebAssembly, no broker).
//!
//! This is the deployment guide's example processor: it stamps `processed_at`,
//! rewrites JSON bodies (adds `_processed`, converts Celsius to Fahrenheit), filters
//! unwanted messages and adds enrichment headers.

/// The largest value (in bytes) that is passed on unless the pipeline sets the
/// `max_value_bytes` parameter: larger messages are filtered out.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

/// One message, as the broker passes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The key, if the producer set one.
    pub key: Option<String>,
    /// The payload bytes.
    pub value: Vec<u8>,
    /// Header pairs in producer order.
    pub headers: Vec<(String, String)>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Message {
    /// The value of the last header named `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets header `name`, replacing any earlier pair with that name.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(k, _)| k != name);
        self.headers.push((name.to_string(), value.into()));
    }
}

/// What the processor answers for one message (see the WIT `process-result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessResult {
    /// Messages to write: none = filtered, one = transformed, several = fan-out.
    pub transformed_messages: Vec<Message>,
    /// Whether the pipeline should move on past this message.
    pub should_continue: bool,
    /// A failure description, if processing failed.
    pub error: Option<String>,
}

/// Settings read from the pipeline's parameters in `init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Values longer than this are filtered out.
    pub max_value_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl Settings {
    /// Reads the pipeline parameters; an unusable value is refused with a message the
    /// pipeline's operator can act on.
    pub fn from_params(params: &[(String, String)]) -> Result<Settings, String> {
        let mut settings = Settings::default();
        for (name, value) in params {
            if name == "max_value_bytes" {
                settings.max_value_bytes = value.parse().map_err(|_| {
                    format!(
                        "parameter max_value_bytes must be a whole number of bytes, got {value:?}"
                    )
                })?;
            }
        }
        Ok(settings)
    }
}

/// Transforms one message. `now_secs` is the current time in seconds since the epoch
/// (passed in so tests are deterministic).
pub fn transform_message(
    mut message: Message,
    settings: &Settings,
    now_secs: i64,
) -> Result<ProcessResult, String> {
    message.set_header("processed_at", now_secs.to_string());

    if message.header("content-type") == Some("application/json") {
        message = transform_json_message(message)?;
    }

    if should_filter_message(&message, settings) {
        return Ok(ProcessResult {
            transformed_messages: vec![],
            should_continue: true,
            error: None,
        });
    }

    let message = enrich_message(message);
    Ok(ProcessResult {
        transformed_messages: vec![message],
        should_continue: true,
        error: None,
    })
}

/// Marks a JSON object as processed and adds `temperature_fahrenheit` when it has a
/// numeric `temperature_celsius`.
pub fn transform_json_message(mut message: Message) -> Result<Message, String> {
    let mut json: serde_json::Value =
        serde_json::from_slice(&message.value).map_err(|e| format!("Invalid JSON: {e}"))?;

    if let serde_json::Value::Object(obj) = &mut json {
        obj.insert("_processed".to_string(), true.into());
        obj.insert("_processor_version".to_string(), "1.0.0".into());
        if let Some(celsius) = obj.get("temperature_celsius").and_then(|v| v.as_f64()) {
            let fahrenheit = celsius * 9.0 / 5.0 + 32.0;
            // A finite input gives a finite output; a non-finite one cannot be JSON.
            if let Some(number) = serde_json::Number::from_f64(fahrenheit) {
                obj.insert("temperature_fahrenheit".to_string(), number.into());
            }
        }
    }

    message.value =
        serde_json::to_vec(&json).map_err(|e| format!("Failed to serialize JSON: {e}"))?;
    Ok(message)
}

/// Whether a message should be dropped: no `source` header, too large, or spam.
pub fn should_filter_message(message: &Message, settings: &Settings) -> bool {
    if message.header("source").is_none() {
        return true;
    }
    if message.value.len() > settings.max_value_bytes {
        return true;
    }
    if let Ok(text) = std::str::from_utf8(&message.value) {
        if text.contains("SPAM") || text.contains("DELETE") {
            return true;
        }
    }
    false
}

/// Adds the enrichment headers (and geolocation when a `client_ip` header is present).
pub fn enrich_message(mut message: Message) -> Message {
    message.set_header("enriched", "true");
    message.set_header("processor", "message-processor-v1");
    if let Some(ip) = message.header("client_ip") {
        let geo = lookup_geolocation(ip);
        message.set_header("geo_country", geo.country);
        message.set_header("geo_city", geo.city);
    }
    message
}

/// Where an IP address is, as far as this example knows.
pub struct GeoData {
    /// Country name.
    pub country: &'static str,
    /// City name.
    pub city: &'static str,
}

/// A stand-in for a real geolocation lookup: prefix matching only.
pub fn lookup_geolocation(ip: &str) -> GeoData {
    if ip.starts_with("192.168.") || ip.starts_with("10.") {
        GeoData {
            country: "Local",
            city: "Private Network",
        }
    } else if ip.starts_with("8.8.") {
        GeoData {
            country: "US",
            city: "Mountain View",
        }
    } else {
        GeoData {
            country: "Unknown",
            city: "Unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn test_json_transformation() {
        let message = Message {
            key: Some("test-key".to_string()),
            value: br#"{"temperature_celsius": 25.0, "sensor_id": "temp001"}"#.to_vec(),
            headers: headers(&[
                ("content-type", "application/json"),
                ("source", "sensor-network"),
            ]),
            timestamp: 1640995200000,
        };

        let result = transform_message(message, &Settings::default(), 1_700_000_000).unwrap();
        assert_eq!(result.transformed_messages.len(), 1);

        let transformed = &result.transformed_messages[0];
        let json: serde_json::Value = serde_json::from_slice(&transformed.value).unwrap();
        assert!(json["_processed"].as_bool().unwrap());
        assert_eq!(json["temperature_fahrenheit"].as_f64().unwrap(), 77.0);
        assert_eq!(transformed.header("processed_at"), Some("1700000000"));
    }

    #[test]
    fn test_message_filtering() {
        let message = Message {
            key: Some("spam-key".to_string()),
            value: b"This is SPAM content".to_vec(),
            headers: headers(&[("source", "unknown")]),
            timestamp: 1640995200000,
        };

        assert!(should_filter_message(&message, &Settings::default()));
    }

    #[test]
    fn test_message_enrichment() {
        let message = Message {
            key: Some("test-key".to_string()),
            value: b"test message".to_vec(),
            headers: headers(&[("client_ip", "192.168.1.1")]),
            timestamp: 1640995200000,
        };

        let enriched = enrich_message(message);
        assert_eq!(enriched.header("enriched"), Some("true"));
        assert_eq!(enriched.header("geo_country"), Some("Local"));
    }

    #[test]
    fn max_value_bytes_parameter_must_be_a_number() {
        let params = vec![("max_value_bytes".to_string(), "lots".to_string())];
        assert!(Settings::from_params(&params)
            .unwrap_err()
            .contains("max_value_bytes"));
        let params = vec![("max_value_bytes".to_string(), "4".to_string())];
        assert_eq!(Settings::from_params(&params).unwrap().max_value_bytes, 4);
    }
}
