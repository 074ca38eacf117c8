//! The web console (`console/`, served at `/console/` on the admin port) driven in
//! headless Chromium by Playwright (`tests/browser/console.cjs`): the token prompt,
//! an upload through the page (and a refused one, shown as the API said it), a
//! pipeline created with the API, a message produced through the page and read back
//! transformed in the topic browser, the processed count rising, the last errors,
//! and a version upgrade confirmed on the page. The broker's state is then checked
//! here through the API. Screenshots go to `target/console-screenshots/`.
//!
//! Needs `RUSTMQ_TEST_PLAYWRIGHT` (the playwright-core package directory) and
//! `RUSTMQ_TEST_CHROMIUM` (the browser); `tests/run.sh` installs both. Without them the
//! browser test says SKIPPED; the HTTP checks below run regardless.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{admin_get, client, read_all, send};

const TOKEN: &str = "console-test-token";

/// The browser tools, or `None` after saying SKIPPED.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let tool = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.exists())
    };
    match (tool("RUSTMQ_TEST_PLAYWRIGHT"), tool("RUSTMQ_TEST_CHROMIUM")) {
        (Some(playwright), Some(chromium)) => Some((playwright, chromium)),
        _ => {
            eprintln!(
                "SKIPPED: RUSTMQ_TEST_PLAYWRIGHT and RUSTMQ_TEST_CHROMIUM are not both set to installed tools (tests/run.sh installs them)"
            );
            None
        }
    }
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

#[test]
fn an_operator_uploads_produces_reads_and_upgrades_through_the_console_in_a_browser() {
    let Some((playwright, chromium)) = browser_tools() else {
        return;
    };
    let broker = BrokerProcess::start(&format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    let bad = broker.home().join("not-a-module.wasm");
    std::fs::write(&bad, b"this is text, not WebAssembly").unwrap();
    let shots = screenshots_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/console.cjs");
    // `timeout` bounds the whole browser run, whatever hangs.
    let out = Command::new("timeout")
        .args(["--kill-after=10", "240", "node"])
        .arg(&script)
        .env("PLAYWRIGHT_CORE", &playwright)
        .env("CHROMIUM", &chromium)
        .env("ADMIN_URL", &broker.admin_url)
        .env("ADMIN_TOKEN", TOKEN)
        .env("MODULE_WASM", guests::GUIDE_MODULE)
        .env("BAD_WASM", &bad)
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser run failed ({}):\n{stdout}\n{stderr}\nbroker log:\n{}",
        out.status,
        broker.log()
    );
    assert!(stdout.contains("console test: passed"), "{stdout}");
    eprintln!("console screenshots: {}", shots.display());

    // What the page did, seen through the API.
    let with_token = |path: &str| {
        send(
            client()
                .get(format!("{}{path}", broker.admin_url))
                .bearer_auth(TOKEN),
        )
    };
    let (status, modules) = with_token("/api/v1/etl/modules");
    assert_eq!(status, StatusCode::OK, "{modules}");
    let mut ids: Vec<&str> = modules["modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["module_id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "message-processor-v1.0.0",
            "message-processor-v1.1.0",
            "message-processor-v1.2.0"
        ],
        "the page's two uploads and the test's third are stored, the refused one is not"
    );
    let expected_hash = format!(
        "blake3:{}",
        blake3::hash(&std::fs::read(guests::GUIDE_MODULE).unwrap()).to_hex()
    );
    for m in modules["modules"].as_array().unwrap() {
        assert_eq!(
            m["hash"],
            expected_hash.as_str(),
            "the page sent the file's bytes"
        );
    }
    let (_, pipelines) = with_token("/api/v1/etl/pipelines");
    let pipeline = &pipelines["pipelines"][0];
    assert_eq!(pipeline["module_version"], "1.2.0", "{pipeline}");
    let outputs = read_all(&broker, "processed-events");
    let by_key = |key: &str| -> &Value {
        outputs
            .iter()
            .find(|m| m["key"] == key)
            .unwrap_or_else(|| panic!("no output keyed {key}: {outputs:?}"))
    };
    let first = by_key("sensor-1");
    assert_eq!(first["headers"]["x-rustmq-module-version"], "1.0.0");
    assert_eq!(
        first["headers"]["source"], "sensor-network",
        "headers typed in the form"
    );
    let value: Value = serde_json::from_str(first["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["temperature_fahrenheit"], 77.0);
    assert_eq!(
        by_key("after-upgrade")["headers"]["x-rustmq-module-version"],
        "1.1.0"
    );
    // The backfill the page started replayed the source up to where the pipeline was,
    // with the version chosen on the page.
    let replayed = read_all(&broker, "replayed");
    assert!(!replayed.is_empty());
    assert!(
        replayed
            .iter()
            .all(|m| m["headers"]["x-rustmq-module-version"] == "1.0.0"),
        "{replayed:?}"
    );
    assert_eq!(pipeline["canary_event"]["event"], "promoted", "{pipeline}");
    let errors = read_all(&broker, "etl-errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["key"], "broken");
}

#[test]
fn the_console_is_served_without_the_token_but_the_api_behind_it_is_not() {
    let broker = BrokerProcess::start(&format!("[admin]\ntoken = \"{TOKEN}\"\n"));
    let http = client();
    let page = http
        .get(format!("{}/console/", broker.admin_url))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(page
        .text()
        .unwrap()
        .contains("<script type=\"module\" src=\"app.js\">"));
    for asset in ["app.js", "console.css", "views/pipeline.js"] {
        let r = http
            .get(format!("{}/console/{asset}", broker.admin_url))
            .send()
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
    }
    let missing = http
        .get(format!("{}/console/nope.js", broker.admin_url))
        .send()
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let root = http.get(format!("{}/", broker.admin_url)).send().unwrap();
    assert_eq!(root.url().path(), "/console/", "/ leads to the console");
    // Without the token the API the console reads answers 401.
    let status = http
        .get(format!("{}/api/v1/status", broker.admin_url))
        .send()
        .unwrap();
    assert_eq!(status.status(), StatusCode::UNAUTHORIZED);
}

#[test]
fn the_message_api_answers_cors_for_the_console_origin_only() {
    let broker = BrokerProcess::start("");
    let http = client();
    let admin_port = broker.admin_url.rsplit(':').next().unwrap().to_string();
    let preflight = |origin: &str| {
        http.request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/topics/t/messages", broker.data_url),
        )
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .unwrap()
    };
    let console_origin = format!("http://127.0.0.1:{admin_port}");
    let allowed = preflight(&console_origin);
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        console_origin.as_str()
    );
    let localhost = preflight(&format!("http://localhost:{admin_port}"));
    assert!(localhost
        .headers()
        .contains_key("access-control-allow-origin"));
    let other = preflight("http://127.0.0.1:1");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    let elsewhere = preflight(&format!("http://example.com:{admin_port}"));
    assert!(!elsewhere
        .headers()
        .contains_key("access-control-allow-origin"));

    // The status tells the console where the message API is.
    let (_, status) = admin_get(&broker, "/api/v1/status");
    let port = broker.data_url.rsplit(':').next().unwrap();
    assert!(
        status["messages_addr"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{port}")),
        "{status}"
    );
}

#[test]
fn with_the_console_off_neither_the_page_nor_cors_is_served() {
    let broker = BrokerProcess::start("[admin]\nconsole = false\n");
    let http = client();
    let page = http
        .get(format!("{}/console/", broker.admin_url))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let admin_port = broker.admin_url.rsplit(':').next().unwrap();
    let preflight = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/api/v1/topics", broker.data_url),
        )
        .header("Origin", format!("http://127.0.0.1:{admin_port}"))
        .header("Access-Control-Request-Method", "GET")
        .send()
        .unwrap();
    assert!(!preflight
        .headers()
        .contains_key("access-control-allow-origin"));
}
