//! The OpenAPI 3.1 document of each API, made from its router: every route is
//! registered together with its description (utoipa-axum's `routes!`, from the
//! handler's `#[utoipa::path]` and the body types the CLI shares), so the document
//! cannot lack a route nor describe one that does not exist. Each port serves its own
//! at `GET /api/v1/openapi.json`.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, OpenApi, RefOr, ResponseBuilder, SecurityRequirement, Server,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::wire::ErrorBody;

/// Where each API serves its document.
pub const PATH: &str = "/api/v1/openapi.json";

/// Which API a document describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The message API (produce, consume, topics), default port 9092.
    Message,
    /// The admin API (status, modules, pipelines, metrics), default port 9094.
    Admin,
}

/// A finished document, as served.
#[derive(Clone)]
struct Document(Arc<String>);

/// `routes` with the document route added, split into the router (serving the
/// document) and the finished document.
pub fn serve_document<S>(routes: OpenApiRouter<S>, api: Api) -> (Router<S>, OpenApi)
where
    S: Send + Sync + Clone + 'static,
{
    let (router, document) = routes.routes(routes!(openapi_json)).split_for_parts();
    let document = finish(document, api);
    let json = document
        .to_pretty_json()
        .expect("an OpenAPI document is JSON");
    (router.layer(Extension(Document(Arc::new(json)))), document)
}

/// This API's OpenAPI 3.1 document (the routes of this port only).
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json")))]
async fn openapi_json(Extension(document): Extension<Document>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.0.as_str().to_owned(),
    )
        .into_response()
}

/// Title, version and servers; the error answer every operation may give; on the
/// admin API, the optional bearer token.
fn finish(mut document: OpenApi, api: Api) -> OpenApi {
    let (title, port, about) = match api {
        Api::Message => (
            "RustMQ ETL message API",
            9092,
            "Produce and consume messages, and manage topics.",
        ),
        Api::Admin => (
            "RustMQ ETL admin API",
            9094,
            "Broker status, WebAssembly modules, pipelines and metrics. With `[admin] token` set, every route needs `Authorization: Bearer <token>`.",
        ),
    };
    document.info.title = title.to_string();
    document.info.version = env!("CARGO_PKG_VERSION").to_string();
    document.info.description = Some(format!(
        "{about} Every error answers `{{\"error\": {{\"code\", \"message\"}}}}` with a 4xx or 5xx status (see docs/api.md)."
    ));
    document.info.license = None;
    document.info.contact = None;
    document.servers = Some(vec![Server::new(format!("http://127.0.0.1:{port}"))]);
    let components = document.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
    let mut nested = Vec::new();
    <ErrorBody as ToSchema>::schemas(&mut nested);
    components.schemas.extend(nested);
    let error = ResponseBuilder::new()
        .description("An error: a stable snake_case `code` and a `message` saying what to do")
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build();
    for item in document.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            operation
                .responses
                .responses
                .entry("default".to_string())
                .or_insert_with(|| RefOr::T(error.clone()));
        }
    }
    if api == Api::Admin {
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Either the token, or nothing when the broker has none configured.
        document.security = Some(vec![
            SecurityRequirement::new("admin_token", Vec::<String>::new()),
            SecurityRequirement::default(),
        ]);
    }
    document
}
