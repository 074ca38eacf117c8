//! The web console: the files of `console/` (top of the repository), embedded in the
//! binary and served at `/console/` on the admin port.
//!
//! The console is a client of the public APIs only: the admin API on its own origin,
//! the message API across origins. So the files themselves carry no data and are
//! served without the admin token (the page asks for it when the API answers 401),
//! and the message API answers CORS requests from the admin port's origin alone
//! ([`message_api_cors`]).

use std::net::SocketAddr;

use axum::extract::Path;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::ApiError;

/// One embedded file: its name under `/console/`, media type and bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $media_type:literal) => {
        Asset {
            name: $name,
            media_type: $media_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../console/", $name)),
        }
    };
}

/// Every file of `console/` (a unit test checks that none is missing).
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("chart.js", "text/javascript; charset=utf-8"),
    asset!("format.js", "text/javascript; charset=utf-8"),
    asset!("views/overview.js", "text/javascript; charset=utf-8"),
    asset!("views/pipeline.js", "text/javascript; charset=utf-8"),
    asset!("views/modules.js", "text/javascript; charset=utf-8"),
    asset!("views/topics.js", "text/javascript; charset=utf-8"),
    asset!("views/operate.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The page's own scripts and styles only; requests may go to any origin, since
/// the message API's address is the broker's to say (`GET /api/v1/status`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src *; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'none'";

/// `/` and `/console` lead to `/console/`; `/console/{*file}` serves the files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(|| async { serve("index.html") }))
        .route(
            "/console/{*file}",
            get(|Path(file): Path<String>| async move { serve(&file) }),
        )
}

fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::not_found(
            "no_route",
            format!("the console has no file {name:?}; open /console/"),
        )
        .into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, asset.media_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            // A new broker version serves new files under the same names.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        asset.bytes,
    )
        .into_response()
}

/// The message API's CORS answer: requests from a page served by the admin port
/// (`http://<host>:<admin port>`, the host being the admin listener's address, or
/// any host when it listens on all addresses, or a loopback name when it listens on
/// loopback) may read and produce; no other origin may.
pub fn message_api_cors(admin: SocketAddr) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            origin_is_console(origin, admin)
        }))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
        .expose_headers([HeaderName::from_static("retry-after")])
}

fn origin_is_console(origin: &HeaderValue, admin: SocketAddr) -> bool {
    let Some(authority) = origin.to_str().ok().and_then(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
    }) else {
        return false;
    };
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    if port.parse::<u16>().ok() != Some(admin.port()) {
        return false;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip = admin.ip();
    if ip.is_unspecified() {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(h) => h == ip || (h.is_loopback() && ip.is_loopback()),
        Err(_) => ip.is_loopback() && host.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_console_folder_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../console");
        let mut on_disk = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else {
                    let rel = path.strip_prefix(&root).unwrap();
                    on_disk.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "list every file of console/ in ASSETS");
    }

    #[test]
    fn only_the_admin_ports_origin_passes_cors() {
        let loopback: SocketAddr = "127.0.0.1:9094".parse().unwrap();
        let ok = |o: &str, a| origin_is_console(&HeaderValue::from_str(o).unwrap(), a);
        assert!(ok("http://127.0.0.1:9094", loopback));
        assert!(ok("http://localhost:9094", loopback));
        assert!(ok("http://[::1]:9094", loopback));
        assert!(!ok("http://127.0.0.1:8080", loopback));
        assert!(!ok("http://evil.example:9094", loopback));
        assert!(!ok("null", loopback));
        assert!(!ok("http://127.0.0.1", loopback));
        let lan: SocketAddr = "10.0.0.5:9094".parse().unwrap();
        assert!(ok("http://10.0.0.5:9094", lan));
        assert!(!ok("http://localhost:9094", lan));
        let any: SocketAddr = "0.0.0.0:9094".parse().unwrap();
        assert!(ok("http://broker.internal:9094", any));
        assert!(!ok("http://broker.internal:9095", any));
    }
}
