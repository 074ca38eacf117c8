//! JSON over HTTP against a [`BrokerProcess`]: the small helpers every end-to-end
//! test uses (blocking `reqwest`), so the tests read like the guide's curl commands.
//!
//! Every helper returns the status and the parsed JSON body (`Value::Null` when the
//! body is not JSON), never panicking on a 4xx/5xx: the tests assert on those.

use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use serde_json::Value;

use crate::broker::BrokerProcess;

/// Every admin route and method, as `(method, path)`: the list the OpenAPI document
/// served on the admin port must equal (`openapi::each_port_documents_exactly_the_routes_it_serves`),
/// and that the token tests walk.
pub const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/etl/modules"),
    ("POST", "/api/v1/etl/modules"),
    ("GET", "/api/v1/etl/modules/{module_id}"),
    ("DELETE", "/api/v1/etl/modules/{module_id}"),
    ("GET", "/api/v1/etl/modules/{module_id}/wasm"),
    ("GET", "/api/v1/etl/pipelines"),
    ("POST", "/api/v1/etl/pipelines"),
    ("GET", "/api/v1/etl/pipelines/{id}"),
    ("PATCH", "/api/v1/etl/pipelines/{id}"),
    ("DELETE", "/api/v1/etl/pipelines/{id}"),
    ("POST", "/api/v1/etl/pipelines/{id}/start"),
    ("POST", "/api/v1/etl/pipelines/{id}/stop"),
    ("POST", "/api/v1/etl/pipelines/{id}/promote"),
    ("POST", "/api/v1/etl/pipelines/{id}/reset"),
    ("POST", "/api/v1/etl/pipelines/{id}/backfill"),
    ("POST", "/api/v1/etl/pipelines/{id}/redrive"),
    ("GET", "/api/v1/etl/pipelines/{id}/status"),
    ("GET", "/api/v1/etl/pipelines/{id}/metrics"),
    ("GET", "/api/v1/etl/pipelines/{id}/metrics/history"),
    ("GET", "/api/v1/etl/pipelines/{id}/state"),
    ("DELETE", "/api/v1/etl/pipelines/{id}/state"),
    ("GET", "/api/v1/metrics"),
    ("GET", "/metrics"),
];

/// Every message API route and method, as [`ADMIN_ROUTES`] for the message port.
pub const MESSAGE_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/topics"),
    ("POST", "/api/v1/topics"),
    ("GET", "/api/v1/topics/{topic}"),
    ("DELETE", "/api/v1/topics/{topic}"),
    ("GET", "/api/v1/topics/{topic}/messages"),
    ("POST", "/api/v1/topics/{topic}/messages"),
];

/// How long one request may take (a debug-build broker compiling a module is slow).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A blocking client with a generous timeout.
pub fn client() -> Client {
    Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("build an HTTP client")
}

/// The status and JSON body of a response.
pub fn body(r: Response) -> (StatusCode, Value) {
    let status = r.status();
    let text = r.text().expect("read the response body");
    let value = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, value)
}

/// Sends a request and returns [`body`] of the answer.
pub fn send(request: RequestBuilder) -> (StatusCode, Value) {
    body(request.send().expect("send the request"))
}

/// Asserts the shared error shape `{"error": {"code", "message"}}` with status
/// `expected`, and returns the code.
pub fn error_code(status: StatusCode, v: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "no error message in {v}"
    );
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
        .to_string()
}

/// The error message of an error body (empty when there is none).
pub fn error_message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or("")
}

/// `GET {admin_url}{path}`.
pub fn admin_get(b: &BrokerProcess, path: &str) -> (StatusCode, Value) {
    send(client().get(format!("{}{path}", b.admin_url)))
}

/// `POST {admin_url}{path}` with a JSON body.
pub fn admin_post(b: &BrokerProcess, path: &str, json: &Value) -> (StatusCode, Value) {
    send(
        client()
            .post(format!("{}{path}", b.admin_url))
            .header("Content-Type", "application/json")
            .body(json.to_string()),
    )
}

/// `PATCH {admin_url}{path}` with a JSON body.
pub fn admin_patch(b: &BrokerProcess, path: &str, json: &Value) -> (StatusCode, Value) {
    send(
        client()
            .patch(format!("{}{path}", b.admin_url))
            .header("Content-Type", "application/json")
            .body(json.to_string()),
    )
}

/// `DELETE {admin_url}{path}`.
pub fn admin_delete(b: &BrokerProcess, path: &str) -> (StatusCode, Value) {
    send(client().delete(format!("{}{path}", b.admin_url)))
}

/// The guide's Step 4.1 upload: `POST /api/v1/etl/modules` with the module bytes and
/// the `X-Module-Name`/`X-Module-Version` headers.
pub fn upload_module(
    b: &BrokerProcess,
    name: &str,
    version: &str,
    bytes: Vec<u8>,
) -> (StatusCode, Value) {
    send(
        client()
            .post(format!("{}/api/v1/etl/modules", b.admin_url))
            .header("Content-Type", "application/octet-stream")
            .header("X-Module-Name", name)
            .header("X-Module-Version", version)
            .body(bytes),
    )
}

/// Produces one message or a `{"messages": [...]}` batch (guide Step 6.1).
pub fn produce(b: &BrokerProcess, topic: &str, msg: &Value) -> (StatusCode, Value) {
    send(
        client()
            .post(format!("{}/api/v1/topics/{topic}/messages", b.data_url))
            .header("Content-Type", "application/json")
            .body(msg.to_string()),
    )
}

/// Consumes with a query string such as `offset=0&max_messages=10` (guide Step 6.2).
pub fn consume(b: &BrokerProcess, topic: &str, query: &str) -> (StatusCode, Value) {
    send(client().get(format!(
        "{}/api/v1/topics/{topic}/messages?{query}",
        b.data_url
    )))
}

/// Every message of `topic` (as JSON), in offset order; empty when the topic does
/// not exist.
pub fn read_all(b: &BrokerProcess, topic: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let (status, v) = consume(b, topic, &format!("offset={offset}&max_messages=1000"));
        if status == StatusCode::NOT_FOUND && offset == 0 {
            return out;
        }
        assert_eq!(status, StatusCode::OK, "{v}");
        let messages = v["messages"].as_array().expect("a messages array");
        if messages.is_empty() {
            return out;
        }
        out.extend(messages.iter().cloned());
        offset = v["next_offset"].as_u64().expect("a next_offset");
    }
}

/// Calls `check` until it returns `Some`, at most `timeout`; between calls it waits
/// `pause` (each call re-reads the state it checks, so the pause only bounds the
/// polling rate). Fails the test with `what` and the last state on timeout.
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    pause: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match check() {
            Ok(t) => return t,
            Err(last) => {
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}; last seen: {last}"
                );
                std::thread::sleep(pause);
            }
        }
    }
}
