//! Admin routes for modules (the guide's Step 4): upload, list, resolve, get,
//! download, delete.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt as _;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AdminState;
use super::{blocking, ApiError};
use crate::modules::{ModuleError, ModuleRecord, Upload};
use crate::runtime::LoadError;
use crate::wire::{ModuleList, ModuleView};

/// The module routes, under `/api/v1/etl/modules`, each with its description.
pub fn router() -> OpenApiRouter<AdminState> {
    OpenApiRouter::new()
        .routes(routes!(list, upload))
        .routes(routes!(get_one, delete))
        .routes(routes!(download))
}

/// What `GET /api/v1/etl/modules` answers: the list, or the one module `name` (and
/// `version`) resolve to. Only describes the answer in the API document.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)]
enum ModulesAnswer {
    List(ModuleList),
    Resolved(ModuleView),
}

/// A module and what the request did with it (`uploaded`, `resolved`, ...).
fn describe(record: &ModuleRecord, status: &str) -> ModuleView {
    ModuleView {
        record: record.clone(),
        status: Some(status.to_string()),
        pinned_by: None,
    }
}

/// The trimmed text of header `name` (looked up case-insensitively; named in errors
/// as written, e.g. `X-Module-Name`, the way the guide's curl commands spell it).
fn header_text<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, ApiError> {
    let value = headers.get(name.to_ascii_lowercase()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_header",
            format!("the {name} header is required (e.g. -H \"{name}: ...\")"),
        )
    })?;
    value.to_str().map(str::trim).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_header",
            format!("the {name} header must be printable ASCII"),
        )
    })
}

/// `POST /api/v1/etl/modules`: the body is the module, `X-Module-Name` and
/// `X-Module-Version` name it. The body is streamed and never buffered past
/// `etl.max_module_size_bytes`.
#[utoipa::path(post, path = "/api/v1/etl/modules", tag = "modules",
    params(
        ("X-Module-Name" = String, Header, description = "The module's name: letters, digits, '.', '_' and '-'"),
        ("X-Module-Version" = String, Header, description = "Its semver version, e.g. 1.0.0"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The module: a component or a legacy core module (`curl --data-binary @module.wasm`)"),
    responses(
        (status = 201, description = "Uploaded, validated and compiled", body = ModuleView),
        (status = 200, description = "The same bytes were already stored under this name and version", body = ModuleView),
    ))]
async fn upload(
    State(state): State<AdminState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = header_text(&headers, "X-Module-Name")?.to_string();
    let version = header_text(&headers, "X-Module-Version")?.to_string();
    crate::modules::ModuleStore::validate_name(&name)?;
    crate::modules::ModuleStore::parse_version(&version)?;
    let cap = usize::try_from(state.config.etl.max_module_size_bytes).unwrap_or(usize::MAX);
    let too_large = |got: String| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "module_too_large",
            format!("the module is {got}, over the {cap}-byte limit (etl.max_module_size_bytes); strip debug info (e.g. wasm-opt --strip-debug) or raise the limit"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > cap as u64 {
            return Err(too_large(format!("{len} bytes")));
        }
    }
    let mut bytes = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body_read_failed",
                format!("could not read the request body: {e}"),
            )
        })?;
        if bytes.len() + chunk.len() > cap {
            return Err(too_large(format!("more than {cap} bytes")));
        }
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request body is empty: send the module with --data-binary @path/to/module.wasm",
        ));
    }
    let received = describe_received(&bytes);
    let store = state.modules.clone();
    let outcome = blocking(move || {
        store.upload(&name, &version, &bytes).map_err(|e| match e {
            ModuleError::Load(LoadError::NotWasm(why)) => {
                ModuleError::Load(LoadError::NotWasm(format!("{why}; received {received}")))
            }
            other => other,
        })
    })
    .await?;
    let (status, word) = match &outcome {
        Upload::Created(_) => (StatusCode::CREATED, "uploaded"),
        Upload::Unchanged(_) => (StatusCode::OK, "unchanged"),
    };
    Ok((status, Json(describe(outcome.record(), word))).into_response())
}

/// How many leading bytes of a refused body are shown back to the uploader.
const RECEIVED_PREVIEW_BYTES: usize = 16;

/// Says what a body that is not WebAssembly looks like, so the uploader can tell
/// which file they sent: its size, its first bytes, and a guess at the format.
fn describe_received(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(RECEIVED_PREVIEW_BYTES)];
    let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
    let text: String = head
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    let trimmed = bytes.trim_ascii_start();
    let guess = if bytes.starts_with(b"\x7fELF") {
        "a native ELF executable or library, not WebAssembly"
    } else if bytes.starts_with(b"PK\x03\x04") {
        "a zip archive"
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        "a gzip archive"
    } else if trimmed.starts_with(b"(module") || trimmed.starts_with(b"(component") {
        "WebAssembly text (.wat); compile it to a binary first"
    } else if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        "JSON"
    } else if trimmed.starts_with(b"<") {
        "HTML or XML"
    } else if std::str::from_utf8(bytes).is_ok() {
        "text"
    } else {
        "binary data of an unknown format"
    };
    format!(
        "{} bytes starting with {} (\"{text}\"), which looks like {guess}",
        bytes.len(),
        hex.join(" ")
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Resolve this module name instead of listing.
    name: Option<String>,
    /// With `name`: a semver requirement (default `*`, the newest).
    version: Option<String>,
}

/// `GET /api/v1/etl/modules` lists modules (never their bytes);
/// `?name=N&version=REQ` resolves a requirement to one module instead.
#[utoipa::path(get, path = "/api/v1/etl/modules", tag = "modules",
    params(ListQuery),
    responses((status = 200, description = "Every module, or with `name` the one module a requirement resolves to", body = ModulesAnswer)))]
async fn list(
    State(state): State<AdminState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("{e}; the accepted parameters are name and version"),
        )
    })?;
    let store = state.modules.clone();
    match (query.name, query.version) {
        (Some(name), version) => {
            let req = version.unwrap_or_else(|| "*".to_string());
            let record = blocking(move || store.resolve(&name, &req)).await?;
            Ok(Json(describe(&record, "resolved")).into_response())
        }
        (None, Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            "version= needs name= too (e.g. ?name=message-processor&version=^1)",
        )),
        (None, None) => {
            let records = blocking(move || store.list()).await?;
            let pins = state.pipelines.clone();
            let modules: Vec<ModuleView> = records
                .into_iter()
                .map(|record| ModuleView {
                    pinned_by: Some(pins.pinned_to(&record.module_id)),
                    record,
                    status: None,
                })
                .collect();
            Ok(Json(ModuleList {
                count: modules.len(),
                modules,
            })
            .into_response())
        }
    }
}

#[utoipa::path(get, path = "/api/v1/etl/modules/{module_id}", tag = "modules",
    params(("module_id" = String, Path, description = "`<name>-v<version>`, e.g. `message-processor-v1.0.0`")),
    responses((status = 200, description = "The module's record and the pipelines pinned to it", body = ModuleView)))]
async fn get_one(
    State(state): State<AdminState>,
    Path(module_id): Path<String>,
) -> Result<Response, ApiError> {
    let record = state
        .modules
        .get(&module_id)?
        .ok_or_else(|| ModuleError::NotFound(module_id.clone()))?;
    Ok(Json(ModuleView {
        pinned_by: Some(state.pipelines.pinned_to(&module_id)),
        record,
        status: None,
    })
    .into_response())
}

#[utoipa::path(get, path = "/api/v1/etl/modules/{module_id}/wasm", tag = "modules",
    params(("module_id" = String, Path, description = "`<name>-v<version>`, e.g. `message-processor-v1.0.0`")),
    responses((status = 200, description = "The module's bytes as uploaded", content_type = "application/wasm", body = Vec<u8>)))]
async fn download(
    State(state): State<AdminState>,
    Path(module_id): Path<String>,
) -> Result<Response, ApiError> {
    let store = state.modules.clone();
    let bytes = blocking(move || store.bytes(&module_id)).await?;
    Ok(([(header::CONTENT_TYPE, "application/wasm")], bytes).into_response())
}

#[utoipa::path(delete, path = "/api/v1/etl/modules/{module_id}", tag = "modules",
    params(("module_id" = String, Path, description = "`<name>-v<version>`, e.g. `message-processor-v1.0.0`")),
    responses((status = 200, description = "Deleted (refused while a pipeline is pinned to it)", body = ModuleView)))]
async fn delete(
    State(state): State<AdminState>,
    Path(module_id): Path<String>,
) -> Result<Response, ApiError> {
    let manager = state.pipelines.clone();
    let record = blocking(move || manager.delete_module(&module_id)).await?;
    Ok(Json(describe(&record, "deleted")).into_response())
}
