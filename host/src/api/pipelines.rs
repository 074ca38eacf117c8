//! Admin routes for pipelines (the guide's Steps 5–6 and its Advanced
//! Configuration): create, start, stop, status, metrics, update, delete, list.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminState;
use super::{parse_json, ApiError};
use crate::pipeline::metrics::MetricsSnapshot;
use crate::pipeline::spec::{PipelinePatch, PipelineSpec};
use crate::pipeline::window::MetricsHistory;
use crate::pipeline::{BackfillRequest, PipelineStatus, RedriveRequest, ResetRequest};
use crate::pipeline::{PipelineError, PipelineManager};
use crate::state::{
    StateReset, StateView, DEFAULT_STATE_PAGE_KEYS, MAX_STATE_PAGE_BYTES, MAX_STATE_PAGE_KEYS,
};
use crate::wire::{PipelineCreated, PipelineDeleted, PipelineList};

/// The pipeline routes, under `/api/v1/etl/pipelines`, each with its description.
pub fn router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_pipeline, update, delete))
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(promote))
        .routes(routes!(reset))
        .routes(routes!(backfill))
        .routes(routes!(redrive))
        .routes(routes!(status))
        .routes(routes!(metrics))
        .routes(routes!(history))
        .routes(routes!(state_get, state_reset))
}

/// Pipelines only run with `[etl] enabled = true`.
fn require_enabled(state: &AdminState) -> Result<(), ApiError> {
    if state.config.etl.enabled {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "etl_disabled",
            "ETL is disabled on this broker: set enabled = true in the [etl] section of its configuration and restart it",
        ))
    }
}

/// Runs a blocking manager call off the executor.
async fn blocking<T: Send + 'static>(
    manager: &PipelineManager,
    f: impl FnOnce(&PipelineManager) -> Result<T, PipelineError> + Send + 'static,
) -> Result<T, ApiError> {
    let manager = manager.clone();
    super::blocking(move || f(&manager)).await
}

#[utoipa::path(post, path = "/api/v1/etl/pipelines", tag = "pipelines",
    request_body = PipelineSpec,
    responses((status = 201, description = "Created; runs now unless `enabled` is false", body = PipelineCreated)))]
async fn create(State(state): State<AdminState>, body: Bytes) -> Result<Response, ApiError> {
    let spec: PipelineSpec = parse_json(&body)?;
    require_enabled(&state)?;
    let status = blocking(&state.pipelines, move |m| m.create(spec)).await?;
    Ok((StatusCode::CREATED, Json(created(status))).into_response())
}

/// What a creation answers.
fn created(status: PipelineStatus) -> PipelineCreated {
    PipelineCreated {
        pipeline_id: status.pipeline_id,
        status: "created".to_string(),
        state: status.status,
        module_id: status.module_id,
        module_version: status.module_version,
    }
}

#[utoipa::path(get, path = "/api/v1/etl/pipelines", tag = "pipelines",
    responses((status = 200, description = "Every pipeline's status", body = PipelineList)))]
async fn list(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let pipelines = blocking(&state.pipelines, |m| Ok(m.list())).await?;
    Ok(Json(PipelineList {
        count: pipelines.len(),
        pipelines,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/etl/pipelines/{id}/status", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "Status and position", body = PipelineStatus)))]
async fn status(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = blocking(&state.pipelines, move |m| m.status(&id)).await?;
    Ok(Json(s).into_response())
}

/// The same as [`status`], at the pipeline's own path.
#[utoipa::path(get, path = "/api/v1/etl/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "Status and position", body = PipelineStatus)))]
async fn get_pipeline(state: State<AdminState>, id: Path<String>) -> Result<Response, ApiError> {
    status(state, id).await
}

#[utoipa::path(post, path = "/api/v1/etl/pipelines/{id}/start", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "Running", body = PipelineStatus)))]
async fn start(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_enabled(&state)?;
    let s = blocking(&state.pipelines, move |m| m.start(&id)).await?;
    Ok(Json(s).into_response())
}

#[utoipa::path(post, path = "/api/v1/etl/pipelines/{id}/promote", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "The canary's version pinned and the canary ended, at a batch boundary", body = PipelineStatus)))]
async fn promote(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = blocking(&state.pipelines, move |m| m.promote(&id)).await?;
    Ok(Json(s).into_response())
}

#[utoipa::path(post, path = "/api/v1/etl/pipelines/{id}/stop", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "Stopped at a batch boundary", body = PipelineStatus)))]
async fn stop(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let s = blocking(&state.pipelines, move |m| m.stop(&id)).await?;
    Ok(Json(s).into_response())
}

#[utoipa::path(patch, path = "/api/v1/etl/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    request_body = PipelinePatch,
    responses((status = 200, description = "Changed (a new module version takes over at a batch boundary)", body = PipelineStatus)))]
async fn update(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let patch: PipelinePatch = parse_json(&body)?;
    let s = blocking(&state.pipelines, move |m| m.update(&id, patch)).await?;
    Ok(Json(s).into_response())
}

#[utoipa::path(delete, path = "/api/v1/etl/pipelines/{id}", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "Deleted; its topics stay", body = PipelineDeleted)))]
async fn delete(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let shown = id.clone();
    blocking(&state.pipelines, move |m| m.delete(&id)).await?;
    Ok(Json(PipelineDeleted {
        pipeline_id: shown,
        status: "deleted".to_string(),
    })
    .into_response())
}

/// Moves a pipeline's committed position: a running one stops at a batch boundary
/// and starts again from there; what it wrote downstream stays (a reset re-delivers).
#[utoipa::path(post, path = "/api/v1/etl/pipelines/{id}/reset", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    request_body = ResetRequest,
    responses((status = 200, description = "The pipeline at its new position", body = PipelineStatus)))]
async fn reset(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: ResetRequest = parse_json(&body)?;
    let s = blocking(&state.pipelines, move |m| m.reset(&id, request.to)).await?;
    Ok(Json(s).into_response())
}

/// Runs the pipeline's module over a range of its source into a side topic, as a
/// bounded pipeline of its own beside the live one.
#[utoipa::path(post, path = "/api/v1/etl/pipelines/{id}/backfill", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    request_body = BackfillRequest,
    responses((status = 201, description = "The backfill, running: a pipeline named `<name>.backfill-<n>` that completes by itself", body = PipelineCreated)))]
async fn backfill(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: BackfillRequest = parse_json(&body)?;
    require_enabled(&state)?;
    let status = blocking(&state.pipelines, move |m| m.backfill(&id, request)).await?;
    Ok((StatusCode::CREATED, Json(created(status))).into_response())
}

/// Runs the pipeline's dead letters through its module (or a fixed version) again,
/// as a bounded pipeline of its own over the error topic.
#[utoipa::path(post, path = "/api/v1/etl/pipelines/{id}/redrive", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    request_body = RedriveRequest,
    responses((status = 201, description = "The redrive, running: a pipeline named `<name>.redrive-<n>` that completes by itself", body = PipelineCreated)))]
async fn redrive(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: RedriveRequest = if body.is_empty() {
        RedriveRequest::default()
    } else {
        parse_json(&body)?
    };
    require_enabled(&state)?;
    let status = blocking(&state.pipelines, move |m| m.redrive(&id, request)).await?;
    Ok((StatusCode::CREATED, Json(created(status))).into_response())
}

/// Query parameters of a state listing.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct StateQuery {
    /// List the keys after this one (the previous page's `next_after`).
    after: Option<String>,
    /// Most entries in the page (default 1000, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/etl/pipelines/{id}/state", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name"), StateQuery),
    responses((status = 200, description = "A page of the committed durable state", body = StateView)))]
async fn state_get(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(DEFAULT_STATE_PAGE_KEYS);
    if !(1..=MAX_STATE_PAGE_KEYS).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and {MAX_STATE_PAGE_KEYS}; page with `after`"),
        ));
    }
    let view = blocking(&state.pipelines, move |m| {
        let (pipeline_id, page) =
            m.state_page(&id, q.after.as_deref(), limit, MAX_STATE_PAGE_BYTES)?;
        Ok(StateView::new(pipeline_id, page))
    })
    .await?;
    Ok(Json(view).into_response())
}

/// Deletes a stopped pipeline's durable state.
#[utoipa::path(delete, path = "/api/v1/etl/pipelines/{id}/state", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "The state of a stopped pipeline, deleted", body = StateReset)))]
async fn state_reset(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let reset = blocking(&state.pipelines, move |m| {
        let pipeline_id = m.status(&id)?.pipeline_id;
        let deleted_keys = m.reset_state(&id)?;
        Ok(StateReset {
            pipeline_id,
            deleted_keys,
        })
    })
    .await?;
    Ok(Json(reset).into_response())
}

#[utoipa::path(get, path = "/api/v1/etl/pipelines/{id}/metrics", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "Counters, rates and latencies", body = MetricsSnapshot)))]
async fn metrics(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let snapshot = blocking(&state.pipelines, move |m| m.metrics(&id)).await?;
    Ok(Json(snapshot).into_response())
}

#[utoipa::path(get, path = "/api/v1/etl/pipelines/{id}/metrics/history", tag = "pipelines",
    params(("id" = String, Path, description = "The pipeline's id or name")),
    responses((status = 200, description = "The last five minutes in 5 s buckets: inputs, failures, throughput, p50/p99", body = MetricsHistory)))]
async fn history(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let history = blocking(&state.pipelines, move |m| m.history(&id)).await?;
    Ok(Json(history).into_response())
}

#[cfg(test)]
mod tests {
    use utoipa::IntoParams as _;

    use super::StateQuery;
    use crate::state::MAX_STATE_PAGE_KEYS;

    #[test]
    fn the_documented_state_page_limit_is_the_one_enforced() {
        let params = serde_json::to_value(StateQuery::into_params(|| None)).unwrap();
        let limit = params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], MAX_STATE_PAGE_KEYS);
    }
}
