//! The message API (default `127.0.0.1:9092`), the deployment guide's Step 6:
//!
//! - `POST /api/v1/topics/{topic}/messages`: one message `{"key","value"|"value_base64",
//!   "headers","timestamp"}` → `{"topic","offset"}`, or a batch `{"messages":[...]}` →
//!   `{"topic","offsets":[...]}`. Answered once the messages are durable.
//! - `GET /api/v1/topics/{topic}/messages?offset=&max_messages=&max_bytes=&wait_ms=` →
//!   `{"messages":[{offset,key,value|value_base64,headers,timestamp}],"next_offset",
//!   "start_offset","end_offset"}`; with `wait_ms`, waits for a message when none is
//!   available yet (long-poll).
//! - `POST /api/v1/topics`, `GET /api/v1/topics`, `GET`/`DELETE /api/v1/topics/{topic}`.
//!
//! Limits come from `[server]` in the config; bodies over `max_body_bytes` get 413.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{middleware, Json, Router};
use serde::Deserialize;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt as _};
use utoipa_axum::routes;

use super::openapi::Api;
use super::produce_body::{self, ProduceBody};
use super::{blocking, method_not_allowed, no_route, parse_json, ApiError};
use crate::broker::Broker;
use crate::message::{now_millis, MessageJson, MessageOut, MessageOutRef};
use crate::serve::memory::{CONSUME_MEMORY_FACTOR, PRODUCE_MEMORY_FACTOR};
use crate::storage::{Storage, TopicConfig, TopicInfo};
use crate::wire::{Consumed, Produced, ProducedBatch, TopicList};

/// The message API's routes, limits included; with the console on, its CORS answer
/// to pages from the admin port.
pub fn router(state: Arc<Broker>, listening: super::Listening) -> Router {
    let body_limit = usize::try_from(state.config.server.max_body_bytes).unwrap_or(usize::MAX);
    let console = state.config.admin.console;
    let (routes, _) = super::openapi::serve_document(routes(&state), Api::Message);
    let router = routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    if console {
        router.layer(super::console::message_api_cors(listening.admin))
    } else {
        router
    }
}

/// Every message API route with its description.
pub fn routes(state: &Arc<Broker>) -> OpenApiRouter<Arc<Broker>> {
    OpenApiRouter::new()
        .routes(routes!(list_topics, create_topic))
        .routes(routes!(get_topic))
        // Deleting a topic destroys data: it takes the admin token, when one is set,
        // on this port too.
        .routes(routes!(delete_topic).layer(middleware::from_fn_with_state(
            state.clone(),
            super::admin::require_token,
        )))
        .routes(routes!(consume))
        .routes(routes!(produce).layer(middleware::from_fn_with_state(
            state.clone(),
            reserve_produce_memory,
        )))
}

/// What a produce body may be. Only describes the request in the API document;
/// [`produce_body::parse`] reads it.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ProduceRequest {
    One(MessageJson),
    Batch {
        /// At most `server.max_batch_messages`.
        messages: Vec<MessageJson>,
    },
}

/// What a produce answers. Only describes the answer in the API document.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ProduceAnswer {
    One(Produced),
    Batch(ProducedBatch),
}

fn topic_from(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(topic) = path?;
    Storage::validate_topic_name(&topic)?;
    Ok(topic)
}

/// Reserves what a produce may take in memory (its declared body, or the largest
/// allowed, times [`PRODUCE_MEMORY_FACTOR`]) before its body is read, for as long as
/// it runs.
async fn reserve_produce_memory(
    State(broker): State<Arc<Broker>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let max = usize::try_from(broker.config.server.max_body_bytes).unwrap_or(usize::MAX);
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .map_or(max, |n| n.min(max));
    let _memory = broker
        .request_memory
        .reserve(declared.saturating_mul(PRODUCE_MEMORY_FACTOR))
        .await;
    next.run(request).await
}

#[utoipa::path(post, path = "/api/v1/topics/{topic}/messages", tag = "messages",
    params(("topic" = String, Path, description = "The topic: 1 to 249 characters of letters, digits, '.', '_' and '-'", pattern = "^[A-Za-z0-9._-]{1,249}$")),
    request_body(content = ProduceRequest, description = "One message, or a batch `{\"messages\": [...]}`; answered once durable. Any content type is read as JSON."),
    responses((status = 200, description = "Stored: the offset, or each offset of a batch", body = ProduceAnswer)))]
#[tracing::instrument(target = "rustmq::api", name = "produce", skip_all, fields(topic))]
async fn produce(
    State(broker): State<Arc<Broker>>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let topic = topic_from(path)?;
    tracing::Span::current().record("topic", topic.as_str());
    let body = body?;
    let parsed = produce_body::parse(
        &body,
        now_millis(),
        &broker.config.server.header_limits(),
        broker.config.server.max_batch_messages as usize,
    )?;
    match parsed {
        ProduceBody::Batch(messages) => {
            let range = broker.storage.append(&topic, messages).await?;
            let offsets: Vec<u64> = range.collect();
            Ok(Json(ProducedBatch { topic, offsets }).into_response())
        }
        ProduceBody::One(message) => {
            let range = broker.storage.append(&topic, vec![message]).await?;
            tracing::debug!(target: "rustmq::api", offset = range.start, "produced");
            Ok(Json(Produced {
                topic,
                offset: range.start,
            })
            .into_response())
        }
    }
}

/// Query parameters of a consume.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ConsumeQuery {
    /// First offset wanted (default 0; below the start offset reads from the start).
    #[serde(default)]
    offset: u64,
    /// Most messages returned (default 100, capped by `server.max_read_messages`).
    #[param(minimum = 1)]
    max_messages: Option<u64>,
    /// Rough byte cap (default and cap `server.max_read_bytes`).
    max_bytes: Option<u64>,
    /// Long-poll: wait up to this long for a message (capped by `server.max_wait_ms`).
    #[serde(default)]
    wait_ms: u64,
}

/// `max_messages` when the request does not say.
const DEFAULT_MAX_MESSAGES: u64 = 100;

#[utoipa::path(get, path = "/api/v1/topics/{topic}/messages", tag = "messages",
    params(("topic" = String, Path, description = "The topic: 1 to 249 characters of letters, digits, '.', '_' and '-'", pattern = "^[A-Za-z0-9._-]{1,249}$"), ConsumeQuery),
    responses((status = 200, description = "Messages from `offset` on, in offset order", body = Consumed<MessageOut>)))]
#[tracing::instrument(target = "rustmq::api", name = "consume", skip_all, fields(topic))]
async fn consume(
    State(broker): State<Arc<Broker>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ConsumeQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let topic = topic_from(path)?;
    tracing::Span::current().record("topic", topic.as_str());
    let Query(q) = query?;
    let server = &broker.config.server;
    let max_messages = q.max_messages.unwrap_or(DEFAULT_MAX_MESSAGES);
    if max_messages == 0 {
        return Err(ApiError::bad_request(
            "invalid_query",
            "max_messages must be at least 1",
        ));
    }
    let max_messages = max_messages.min(server.max_read_messages.into()) as usize;
    let max_bytes = q
        .max_bytes
        .unwrap_or(server.max_read_bytes)
        .clamp(1, server.max_read_bytes) as usize;
    let read = |storage: Storage, topic: String| {
        blocking(move || storage.read(&topic, q.offset, max_messages, max_bytes))
    };
    let reserve = || {
        broker
            .request_memory
            .reserve(max_bytes * CONSUME_MEMORY_FACTOR)
    };
    let mut memory = reserve().await;
    let mut batch = read(broker.storage.clone(), topic.clone()).await?;
    let wait = Duration::from_millis(q.wait_ms.min(server.max_wait_ms));
    if batch.messages.is_empty() && !wait.is_zero() {
        // A long poll holds no memory while it waits.
        drop(memory);
        let arrived = tokio::select! {
            arrived = broker.storage.wait_for(&topic, batch.next_offset, wait) => arrived,
            () = broker.shutdown.cancelled() => false,
        };
        memory = reserve().await;
        if arrived {
            batch = read(broker.storage.clone(), topic).await?;
        }
    }
    let _memory = memory;
    Ok(Json(Consumed {
        messages: batch
            .messages
            .iter()
            .map(|(offset, message)| MessageOutRef {
                offset: Some(*offset),
                message,
            })
            .collect(),
        next_offset: batch.next_offset,
        start_offset: batch.start_offset,
        end_offset: batch.end_offset,
    })
    .into_response())
}

/// Body of `POST /api/v1/topics`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateTopic {
    /// The topic's name: 1 to 249 characters of letters, digits, '.', '_' and '-'.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,249}$")]
    name: String,
    /// Delete messages older than this (default: keep).
    #[serde(default)]
    retention_ms: Option<u64>,
    /// Delete the oldest messages past this size (default: keep).
    #[serde(default)]
    retention_bytes: Option<u64>,
}

#[utoipa::path(post, path = "/api/v1/topics", tag = "topics",
    request_body = CreateTopic,
    responses((status = 201, description = "Created", body = TopicInfo)))]
async fn create_topic(
    State(broker): State<Arc<Broker>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateTopic = parse_json(&body?)?;
    Storage::validate_topic_name(&req.name)?;
    let config = TopicConfig {
        retention_ms: req.retention_ms,
        retention_bytes: req.retention_bytes,
    };
    let storage = broker.storage.clone();
    let info = blocking(move || storage.create_topic(&req.name, config)).await?;
    tracing::info!(target: "rustmq::api", topic = %info.name, "topic created");
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

#[utoipa::path(get, path = "/api/v1/topics", tag = "topics",
    responses((status = 200, description = "Every topic", body = TopicList)))]
async fn list_topics(State(broker): State<Arc<Broker>>) -> Result<Response, ApiError> {
    let topics = broker.storage.list_topics()?;
    Ok(Json(TopicList { topics }).into_response())
}

#[utoipa::path(get, path = "/api/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "The topic: 1 to 249 characters of letters, digits, '.', '_' and '-'", pattern = "^[A-Za-z0-9._-]{1,249}$")),
    responses((status = 200, description = "Offsets, size and retention", body = TopicInfo)))]
async fn get_topic(
    State(broker): State<Arc<Broker>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let topic = topic_from(path)?;
    match broker.storage.topic(&topic)? {
        Some(info) => Ok(Json(info).into_response()),
        None => Err(crate::storage::StorageError::TopicNotFound(topic).into()),
    }
}

#[utoipa::path(delete, path = "/api/v1/topics/{topic}", tag = "topics",
    params(("topic" = String, Path, description = "The topic: 1 to 249 characters of letters, digits, '.', '_' and '-'", pattern = "^[A-Za-z0-9._-]{1,249}$")),
    security(("admin_token" = []), ()),
    responses((status = 204, description = "Deleted with its messages (needs the admin token when one is set)")))]
async fn delete_topic(
    State(broker): State<Arc<Broker>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let topic = topic_from(path)?;
    let storage = broker.storage.clone();
    let name = topic.clone();
    blocking(move || storage.delete_topic(&name)).await?;
    tracing::info!(target: "rustmq::api", topic = %topic, "topic deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema as _;

    use super::CreateTopic;
    use crate::storage::MAX_TOPIC_NAME_LEN;

    #[test]
    fn the_documented_topic_name_pattern_is_the_storage_rule() {
        let schema = serde_json::to_value(CreateTopic::schema()).unwrap();
        let pattern = schema["properties"]["name"]["pattern"].as_str().unwrap();
        assert_eq!(
            pattern,
            format!("^[A-Za-z0-9._-]{{1,{MAX_TOPIC_NAME_LEN}}}$")
        );
    }
}
