//! The OpenAPI 3.1 documents each port serves at `/api/v1/openapi.json`: they list
//! exactly the routes the broker answers (checked against the running broker and
//! against the test's own route lists), describe every error with the one error shape,
//! and the admin one is behind the token like every admin route.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::http::{client, send, ADMIN_ROUTES, MESSAGE_ROUTES};

const TOKEN: &str = "openapi-token";
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn document(base: &str) -> Value {
    let (status, doc) = send(
        client()
            .get(format!("{base}/api/v1/openapi.json"))
            .bearer_auth(TOKEN),
    );
    assert_eq!(status, StatusCode::OK, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    doc
}

/// `(METHOD, path)` of every operation in `doc`.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| METHODS.contains(&k.to_uppercase().as_str()))
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}

fn listed(routes: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect()
}

/// Sends `method path` (path parameters filled with names that do not exist) and
/// returns the status and the error code, if any.
fn probe(base: &str, method: &str, path: &str) -> (StatusCode, String) {
    let path = path
        .replace("{topic}", "openapi-probe-topic")
        .replace("{module_id}", "missing-v1.0.0")
        .replace("{id}", "missing-pipeline");
    let (status, body) = send(
        client()
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{path}"),
            )
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{}"),
    );
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[test]
fn each_port_documents_exactly_the_routes_it_serves() {
    let b = BrokerProcess::start_with_env("", &[("RUSTMQ_ADMIN_TOKEN", TOKEN)]);
    for (base, routes) in [(&b.admin_url, ADMIN_ROUTES), (&b.data_url, MESSAGE_ROUTES)] {
        let doc = document(base);
        let documented = operations(&doc);
        assert_eq!(
            documented,
            listed(routes),
            "{base}: the document's operations"
        );
        let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
        for path in paths {
            for method in METHODS {
                let (status, code) = probe(base, method, path);
                if documented.contains(&(method.to_string(), path.clone())) {
                    assert!(
                        code != "no_route" && code != "method_not_allowed",
                        "{method} {path} is documented but not served: {status} {code}"
                    );
                } else {
                    assert_eq!(
                        (status, code.as_str()),
                        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
                        "{method} {path} is served but not documented"
                    );
                }
            }
        }
    }
}

#[test]
fn every_operation_describes_its_errors_with_the_error_shape() {
    let b = BrokerProcess::start_with_env("", &[("RUSTMQ_ADMIN_TOKEN", TOKEN)]);
    for base in [&b.admin_url, &b.data_url] {
        let doc = document(base);
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["error"]), "{error}");
        for (method, path) in operations(&doc) {
            let op = &doc["paths"][&path][method.to_lowercase()];
            assert_eq!(
                op["responses"]["default"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path}"
            );
            assert!(
                op["responses"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .any(|s| s.starts_with('2')),
                "{method} {path} has no success answer"
            );
        }
        // Every schema a document refers to is in it.
        let text = doc.to_string();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{base}: {name} is referred to but not defined"
            );
        }
    }
}

#[test]
fn the_admin_document_needs_the_token_and_says_so() {
    let b = BrokerProcess::start_with_env("", &[("RUSTMQ_ADMIN_TOKEN", TOKEN)]);
    let (status, body) = send(client().get(format!("{}/api/v1/openapi.json", b.admin_url)));
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let doc = document(&b.admin_url);
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    // The message port's document is open, and marks the one route that takes the
    // token.
    let (status, doc) = send(client().get(format!("{}/api/v1/openapi.json", b.data_url)));
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/topics/{topic}"]["delete"]["security"].is_array());
    assert!(doc["paths"]["/api/v1/topics/{topic}"]["get"]["security"].is_null());
}
