// The deployment guide's Step 2.3 code, verbatim.
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

// Define the message structure that RustMQ will pass to your ETL
#[derive(Deserialize, Serialize, Debug)]
pub struct Message {
    pub key: Option<String>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub timestamp: i64,
}

// Define the result structure your ETL returns
#[derive(Serialize, Debug)]
pub struct ProcessResult {
    pub transformed_messages: Vec<Message>,
    pub should_continue: bool,
    pub error: Option<String>,
}

// Main ETL processing function - this is called by RustMQ for each message
#[no_mangle]
pub extern "C" fn process_message(input_ptr: *const u8, input_len: usize) -> *mut u8 {
    // Parse input message from RustMQ
    let input_slice = unsafe { std::slice::from_raw_parts(input_ptr, input_len) };
    
    let message: Message = match serde_json::from_slice(input_slice) {
        Ok(msg) => msg,
        Err(e) => {
            let error_result = ProcessResult {
                transformed_messages: vec![],
                should_continue: false,
                error: Some(format!("Failed to parse message: {}", e)),
            };
            return serialize_result(error_result);
        }
    };

    // Your custom message processing logic here
    match transform_message(message) {
        Ok(result) => serialize_result(result),
        Err(e) => {
            let error_result = ProcessResult {
                transformed_messages: vec![],
                should_continue: false,
                error: Some(e),
            };
            serialize_result(error_result)
        }
    }
}

// Your custom transformation logic
fn transform_message(mut message: Message) -> Result<ProcessResult, String> {
    // Example 1: Add timestamp header
    message.headers.insert(
        "processed_at".to_string(),
        chrono::Utc::now().timestamp().to_string(),
    );

    // Example 2: Transform JSON messages
    if let Some(content_type) = message.headers.get("content-type") {
        if content_type == "application/json" {
            message = transform_json_message(message)?;
        }
    }

    // Example 3: Filter messages based on criteria
    if should_filter_message(&message) {
        return Ok(ProcessResult {
            transformed_messages: vec![], // Empty = message filtered out
            should_continue: true,
            error: None,
        });
    }

    // Example 4: Enrich message with additional data
    message = enrich_message(message)?;

    // Return the transformed message
    Ok(ProcessResult {
        transformed_messages: vec![message],
        should_continue: true,
        error: None,
    })
}

fn transform_json_message(mut message: Message) -> Result<Message, String> {
    // Parse JSON from message value
    let mut json_value: serde_json::Value = serde_json::from_slice(&message.value)
        .map_err(|e| format!("Invalid JSON: {}", e))?;

    // Example transformation: add processing metadata
    if let serde_json::Value::Object(ref mut obj) = json_value {
        obj.insert("_processed".to_string(), serde_json::Value::Bool(true));
        obj.insert("_processor_version".to_string(), serde_json::Value::String("1.0.0".to_string()));
        
        // Example: convert temperature from Celsius to Fahrenheit
        if let Some(temp_c) = obj.get("temperature_celsius").and_then(|v| v.as_f64()) {
            let temp_f = (temp_c * 9.0 / 5.0) + 32.0;
            obj.insert("temperature_fahrenheit".to_string(), serde_json::Value::Number(
                serde_json::Number::from_f64(temp_f).unwrap()
            ));
        }
    }

    // Serialize back to bytes
    message.value = serde_json::to_vec(&json_value)
        .map_err(|e| format!("Failed to serialize JSON: {}", e))?;

    Ok(message)
}

fn should_filter_message(message: &Message) -> bool {
    // Example filtering logic
    
    // Filter out messages without required headers
    if !message.headers.contains_key("source") {
        return true;
    }

    // Filter based on message size
    if message.value.len() > 1024 * 1024 { // 1MB limit
        return true;
    }

    // Filter based on content
    if let Ok(text) = std::str::from_utf8(&message.value) {
        if text.contains("SPAM") || text.contains("DELETE") {
            return true;
        }
    }

    false
}

fn enrich_message(mut message: Message) -> Result<Message, String> {
    // Add enrichment headers
    message.headers.insert("enriched".to_string(), "true".to_string());
    message.headers.insert("processor".to_string(), "message-processor-v1".to_string());

    // Example: add geolocation data based on IP header
    if let Some(ip) = message.headers.get("client_ip") {
        if let Ok(geo_data) = lookup_geolocation(ip) {
            message.headers.insert("geo_country".to_string(), geo_data.country);
            message.headers.insert("geo_city".to_string(), geo_data.city);
        }
    }

    Ok(message)
}

// Mock geolocation lookup (replace with actual service)
struct GeoData {
    country: String,
    city: String,
}

fn lookup_geolocation(ip: &str) -> Result<GeoData, String> {
    // In a real implementation, you might call an external service
    // For this example, we'll use simple IP prefix matching
    if ip.starts_with("192.168.") || ip.starts_with("10.") {
        Ok(GeoData {
            country: "Local".to_string(),
            city: "Private Network".to_string(),
        })
    } else if ip.starts_with("8.8.") {
        Ok(GeoData {
            country: "US".to_string(),
            city: "Mountain View".to_string(),
        })
    } else {
        Ok(GeoData {
            country: "Unknown".to_string(),
            city: "Unknown".to_string(),
        })
    }
}

// Helper function to serialize and return result
fn serialize_result(result: ProcessResult) -> *mut u8 {
    let serialized = match serde_json::to_vec(&result) {
        Ok(data) => data,
        Err(_) => {
            // Fallback error result
            let error_result = ProcessResult {
                transformed_messages: vec![],
                should_continue: false,
                error: Some("Serialization failed".to_string()),
            };
            serde_json::to_vec(&error_result).unwrap_or_else(|_| b"{}".to_vec())
        }
    };

    // Allocate memory in WASM linear memory and return pointer
    let ptr = serialized.as_ptr() as *mut u8;
    std::mem::forget(serialized); // Prevent deallocation
    ptr
}

// Memory management functions required by RustMQ
#[no_mangle]
pub extern "C" fn alloc(size: usize) -> *mut u8 {
    let layout = std::alloc::Layout::from_size_align(size, 1).unwrap();
    unsafe { std::alloc::alloc(layout) }
}

#[no_mangle]
pub extern "C" fn dealloc(ptr: *mut u8, size: usize) {
    let layout = std::alloc::Layout::from_size_align(size, 1).unwrap();
    unsafe { std::alloc::dealloc(ptr, layout) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_json_transformation() {
        let mut message = Message {
            key: Some("test-key".to_string()),
            value: r#"{"temperature_celsius": 25.0, "sensor_id": "temp001"}"#.as_bytes().to_vec(),
            headers: {
                let mut h = HashMap::new();
                h.insert("content-type".to_string(), "application/json".to_string());
                h.insert("source".to_string(), "sensor-network".to_string());
                h
            },
            timestamp: 1640995200000,
        };

        let result = transform_message(message).unwrap();
        assert_eq!(result.transformed_messages.len(), 1);
        
        let transformed = &result.transformed_messages[0];
        let json: serde_json::Value = serde_json::from_slice(&transformed.value).unwrap();
        
        assert!(json.get("_processed").unwrap().as_bool().unwrap());
        assert!(json.get("temperature_fahrenheit").is_some());
        assert_eq!(json.get("temperature_fahrenheit").unwrap().as_f64().unwrap(), 77.0);
    }

    #[test]
    fn test_message_filtering() {
        let message = Message {
            key: Some("spam-key".to_string()),
            value: b"This is SPAM content".to_vec(),
            headers: {
                let mut h = HashMap::new();
                h.insert("source".to_string(), "unknown".to_string());
                h
            },
            timestamp: 1640995200000,
        };

        assert!(should_filter_message(&message));
    }

    #[test]
    fn test_message_enrichment() {
        let message = Message {
            key: Some("test-key".to_string()),
            value: b"test message".to_vec(),
            headers: {
                let mut h = HashMap::new();
                h.insert("client_ip".to_string(), "192.168.1.1".to_string());
                h
            },
            timestamp: 1640995200000,
        };

        let enriched = enrich_message(message).unwrap();
        assert_eq!(enriched.headers.get("enriched").unwrap(), "true");
        assert_eq!(enriched.headers.get("geo_country").unwrap(), "Local");
    }
}
