//! The HTTP APIs and what they share.
//!
//! # Layout
//! - [`data`]: the message API (port 9092): produce, consume, topics.
//! - [`admin`]: the admin API (port 9094): status now; modules and pipelines merge
//!   their routers into it. An optional bearer token guards all of it.
//! - `metrics`, `modules`, `pipelines`: the admin API's routes for each.
//! - [`console`]: the web console's files, served on the admin port, and the message
//!   API's CORS answer to it.
//! - [`produce_body`]: what a produce body says, read without I/O.
//! - [`openapi`]: each API's OpenAPI document, made from its router and served by it.
//! - `error`: [`ApiError`], the one error type both answer with, and how every
//!   error of the layers below maps to it. Every error is
//!   `{"error": {"code": "<stable_snake_case>", "message": "<for a human>"}}` with a 4xx
//!   or 5xx status; internals are logged once and never sent.
//! - [`blocking`]: the one way a handler runs blocking work (storage, modules,
//!   pipelines) off the async workers.
//!
//! The memory budget each produce and consume reserves is `crate::serve::memory`.

pub mod admin;
pub mod console;
pub mod data;
mod error;
pub mod metrics;
pub mod modules;
pub mod openapi;
pub mod pipelines;
pub mod produce_body;

pub use error::ApiError;

/// What admin handlers get as state.
pub type AdminState = std::sync::Arc<crate::broker::Broker>;

/// The addresses both listeners are bound to (port 0 resolved), which the routers
/// need: the console's origin is the admin port's, and the status says where the
/// message API is.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    /// The admin API's address.
    pub admin: std::net::SocketAddr,
    /// The message API's address.
    pub messages: std::net::SocketAddr,
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

/// Runs blocking work (storage, the module store, the pipeline manager) off the
/// async workers and maps its error to an answer.
pub async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Into<ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(ApiError::internal(&e)),
    }
}
