//! The admin API (default `127.0.0.1:9094`): `GET /api/v1/status` here; modules
//! (`api::modules`), pipelines (`api::pipelines`) and metrics (`api::metrics`) are
//! merged in [`router`].
//! When `[admin] token` is set, every admin route (status included) needs
//! `Authorization: Bearer <token>` and answers 401 otherwise.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::Api;
use super::{method_not_allowed, no_route, AdminState, ApiError};
use crate::wire::{BrokerStatus, EtlSettings, StorageStatus};

/// The admin API: every sub-router merged, its document served beside it, then the
/// token check over all of it (the document included); and, outside the check, the
/// console's files (they hold no data: the page asks for the token).
pub fn router(state: AdminState, listening: super::Listening) -> Router {
    let console = state.config.admin.console;
    let (routes, _) = super::openapi::serve_document(routes(), Api::Admin);
    let api = routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(listening))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);
    if console {
        api.merge(super::console::router())
    } else {
        api
    }
}

/// Every admin route with its description.
pub fn routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .merge(super::modules::router())
        .merge(super::pipelines::router())
        .merge(super::metrics::router())
}

/// `GET /api/v1/status`: version, uptime, storage and the `[etl]` settings in force
/// (the guide's step 1.3 reads `.etl.enabled`).
#[utoipa::path(get, path = "/api/v1/status", tag = "broker",
    responses((status = 200, description = "Version, uptime, storage and the [etl] settings", body = BrokerStatus)))]
async fn status(
    State(broker): State<AdminState>,
    Extension(listening): Extension<super::Listening>,
) -> Response {
    let etl = &broker.config.etl;
    let topics = broker.storage.list_topics().map(|t| t.len()).unwrap_or(0);
    let health = broker.storage.health();
    Json(BrokerStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_secs: broker.started_at.elapsed().as_secs(),
        messages_addr: listening.messages.to_string(),
        storage: StorageStatus {
            path: broker.storage.path().to_path_buf(),
            size_bytes: broker.storage.size_bytes(),
            topics,
            health,
        },
        etl: EtlSettings {
            enabled: etl.enabled,
            memory_limit_bytes: etl.memory_limit_bytes,
            execution_timeout_ms: etl.execution_timeout_ms,
            max_concurrent_executions: etl.max_concurrent_executions,
            modules_path: etl.modules_path.clone(),
            max_module_size_bytes: etl.max_module_size_bytes,
            max_output_messages: etl.max_output_messages,
            max_output_bytes: etl.max_output_bytes,
        },
    })
    .into_response()
}

/// Rejects requests without the configured bearer token (the admin API, and the
/// message API's destructive routes).
pub(crate) async fn require_token(
    State(broker): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(token) = broker.config.admin.token.as_deref() else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this admin API needs \"Authorization: Bearer <token>\" with the token from [admin] token",
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without an early exit, so timing does not reveal a token's prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
