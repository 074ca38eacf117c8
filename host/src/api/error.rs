//! [`ApiError`], the one error both APIs answer with, and how every error of the
//! layers below (storage, modules, pipelines, axum's extractors) maps to it: the one
//! place a status and code is chosen for each.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::modules::{BlobError, ModuleError};
use crate::pipeline::PipelineError;
use crate::runtime::LoadError;
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
        let body = crate::wire::ErrorBody {
            error: crate::wire::ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
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

impl From<ModuleError> for ApiError {
    fn from(e: ModuleError) -> Self {
        let e = match e {
            ModuleError::Storage(
                e @ (crate::storage::StorageError::Full { .. }
                | crate::storage::StorageError::Unavailable(_)),
            ) => return e.into(),
            e => e,
        };
        let (status, code) = match &e {
            ModuleError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_module_name"),
            ModuleError::InvalidVersion { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_module_version")
            }
            ModuleError::InvalidRequirement { .. } => {
                (StatusCode::BAD_REQUEST, "invalid_version_requirement")
            }
            ModuleError::Load(LoadError::NotWasm { .. }) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not_webassembly")
            }
            ModuleError::Load(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_module"),
            ModuleError::Conflict { .. } => (StatusCode::CONFLICT, "module_version_exists"),
            ModuleError::NotFound(_) => (StatusCode::NOT_FOUND, "module_not_found"),
            ModuleError::NoMatch { .. } => (StatusCode::NOT_FOUND, "no_matching_version"),
            ModuleError::Blob(BlobError::Corrupted { .. }) => {
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "module_corrupted",
                    format!("{e}; upload the module again with the same name, version and bytes to repair it"),
                );
            }
            ModuleError::Blob(BlobError::Io { source, .. })
                if crate::storage::is_out_of_space(source) =>
            {
                return ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    format!(
                        "{e}: nothing was stored. Free space on that filesystem and upload again"
                    ),
                );
            }
            ModuleError::Blob(_) | ModuleError::Storage(_) | ModuleError::CorruptRecord { .. } => {
                return ApiError::internal(&e);
            }
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<PipelineError> for ApiError {
    fn from(e: PipelineError) -> Self {
        match e {
            PipelineError::Module(m) => m.into(),
            PipelineError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "pipeline_not_found", e.to_string())
            }
            PipelineError::Spec(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_pipeline", e.to_string())
            }
            PipelineError::ModuleInUse { .. } => {
                ApiError::new(StatusCode::CONFLICT, "module_in_use", e.to_string())
            }
            PipelineError::DuplicateName(_) => {
                ApiError::new(StatusCode::CONFLICT, "pipeline_exists", e.to_string())
            }
            PipelineError::Start(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "module_start_failed",
                e.to_string(),
            ),
            PipelineError::Running(_) => {
                ApiError::new(StatusCode::CONFLICT, "pipeline_running", e.to_string())
            }
            // What the client can act on: a full or unavailable store, and (a reset's
            // target) an offset outside the topic or a topic that is gone.
            PipelineError::Storage(
                e @ (crate::storage::StorageError::Full { .. }
                | crate::storage::StorageError::Unavailable(_)
                | crate::storage::StorageError::OffsetOutOfRange { .. }
                | crate::storage::StorageError::TopicNotFound(_)),
            ) => e.into(),
            PipelineError::Storage(_) | PipelineError::Io(_) => ApiError::internal(&e),
        }
    }
}
