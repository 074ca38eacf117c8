//! The HTTP APIs and what they share.
//!
//! # Layout
//! - [`data`]: the message API (port 9092): produce, consume, topics.
//! - [`admin`]: the admin API (port 9094): status now; modules and pipelines merge
//!   their routers into it. An optional bearer token guards all of it.
//! - [`memory`]: the message API's memory budget, reserved by each produce and
//!   consume.
//! - [`ApiError`]: the one error type both answer with. Every error is
//!   `{"error": {"code": "<stable_snake_case>", "message": "<for a human>"}}` with a 4xx
//!   or 5xx status; internals are logged once and never sent.

pub mod admin;
pub mod data;
pub mod memory;
pub mod metrics;
pub mod modules;
pub mod pipelines;

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::storage::StorageError;

/// An error answer: status, stable code, human message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable snake_case code.
    pub code: &'static str,
    /// What went wrong and, where possible, what to do.
    pub message: String,
}

impl ApiError {
    /// An error with any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 404.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// A 500 whose cause is logged here and not sent to the client.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(target: "rustmq::api", error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the broker log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message }
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        let message = e.to_string();
        match e {
            StorageError::InvalidTopicName { .. } => {
                Self::bad_request("invalid_topic_name", message)
            }
            StorageError::TopicNotFound(_) => Self::not_found("topic_not_found", message),
            StorageError::TopicAlreadyExists(_) => {
                Self::new(StatusCode::CONFLICT, "topic_already_exists", message)
            }
            StorageError::OffsetOutOfRange { .. } => Self::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "offset_out_of_range",
                message,
            ),
            StorageError::Encode(_) => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "message_too_large", message)
            }
            StorageError::Full { .. } => {
                Self::new(StatusCode::INSUFFICIENT_STORAGE, "storage_full", message)
            }
            StorageError::Unavailable(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                message,
            ),
            StorageError::Closed => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the broker is shutting down",
            ),
            _ => Self::internal(&e),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the broker's limit (server.max_body_bytes)",
            )
        } else {
            Self::bad_request("bad_body", r.body_text())
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            JsonRejection::JsonDataError(_) => "invalid_json_data",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_content_type",
            _ => "bad_body",
        };
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(r.status(), "body_too_large", r.body_text());
        }
        Self::new(r.status(), code, r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_request("invalid_query", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_request("invalid_path", r.body_text())
    }
}

/// Parses a JSON body with our error shape (axum's `Json` rejects by content type
/// first; produce accepts any content type, as `curl -d` sends form encoding).
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_data() {
            "invalid_json_data"
        } else {
            "malformed_json"
        };
        ApiError::bad_request(code, format!("request body: {e}"))
    })
}

/// The answer to any path no route matches.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no_route", "no such endpoint; see docs/api.md")
}

/// The answer to a method a route does not take, in the same JSON shape as every
/// other error.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{method} is not allowed on {}; see docs/api.md for the methods each route takes",
            uri.path()
        ),
    )
}

/// Runs blocking storage work off the async workers.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(ApiError::from),
        Err(e) => Err(ApiError::internal(&e)),
    }
}
