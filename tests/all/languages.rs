//! Python and JavaScript transforms: the templates (`guest-template-python/` on
//! `guest-sdk-python/`, `guest-template-js/` on `guest-sdk-js/`) built from source
//! with componentize-py and componentize-js, uploaded and run in pipelines over HTTP
//! beside the Rust template, in single-message and batch mode, swapped in for one
//! another under flow, and scaffolded by `rustmq-etl new --lang`. Each language is
//! skipped, saying so, where its tool is missing (`tests/run.sh` installs both).

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_get, admin_patch, admin_post, produce, read_all, upload_module, wait_until,
};
use rustmq_etl_tests::languages::{template, Lang};

/// The guide's sample messages and the cases the processor treats apart.
fn inputs() -> Vec<Value> {
    let json_headers = json!({"content-type": "application/json", "source": "sensor-network", "client_ip": "192.168.1.7"});
    vec![
        json!({"key": "sensor-1", "value": "{\"temperature_celsius\": 25.0, \"sensor_id\": \"temp001\"}", "headers": json_headers}),
        json!({"key": "sensor-2", "value": "{\"temperature_celsius\": -40, \"note\": \"cold\"}", "headers": {"content-type": "application/json", "source": "s", "client_ip": "8.8.4.4"}}),
        json!({"key": "spam", "value": "buy SPAM now", "headers": {"source": "s"}}),
        json!({"key": "no-source", "value": "plain"}),
        json!({"key": "text", "value": "hello", "headers": {"source": "s", "client_ip": "203.0.113.9"}}),
        json!({"key": "list", "value": "[1, 2.5, \"x\"]", "headers": {"content-type": "application/json", "source": "s"}}),
    ]
}

/// Key, value and headers but `processed_at` (the wall clock) and the broker's own.
fn comparable(messages: &[Value]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| {
            let mut headers = m["headers"].as_object().cloned().unwrap_or_default();
            headers.retain(|k, _| k != "processed_at" && !k.starts_with("x-rustmq-"));
            json!({"key": m["key"], "value": m["value"], "headers": headers})
        })
        .collect()
}

fn pipeline(name: &str, module: &str, mode: &str) -> Value {
    json!({
        "pipeline_name": name,
        "source_topic": "readings",
        "destination_topic": format!("{name}-out"),
        "error_topic": format!("{name}-err"),
        "module_name": module,
        "module_version": "^1",
        "configuration": {"processing_mode": mode, "retry_policy": {"max_retries": 0, "backoff_ms": 1}}
    })
}

fn committed(b: &BrokerProcess, id: &str, offset: u64) {
    wait_until(
        "the pipeline to commit",
        Duration::from_secs(120),
        Duration::from_millis(50),
        || {
            let (_, s) = admin_get(b, &format!("/api/v1/etl/pipelines/{id}/status"));
            (s["committed_offset"].as_u64() >= Some(offset))
                .then_some(())
                .ok_or(s.to_string())
        },
    );
}

/// The template of `lang` and the Rust template give the same outputs, the former
/// in single-message and in batch mode.
fn gives_the_rust_templates_outputs(lang: Lang) {
    let Some(python) = template(lang) else {
        return;
    };
    let b = BrokerProcess::start("");
    let (code, v) = upload_module(
        &b,
        "processor-rs",
        "1.0.0",
        std::fs::read(guests::GUEST_TEMPLATE).unwrap(),
    );
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let (code, v) = upload_module(&b, "processor-py", "1.0.0", std::fs::read(python).unwrap());
    assert_eq!(code, StatusCode::CREATED, "{v}");
    assert_eq!(v["world"], "rustmq:etl/etl-batch@1.1.0", "{v}");
    let mut ids = Vec::new();
    for (name, module, mode) in [
        ("rs", "processor-rs", "single_message"),
        ("py", "processor-py", "single_message"),
        ("pybatch", "processor-py", "batch"),
    ] {
        let (code, v) = admin_post(&b, "/api/v1/etl/pipelines", &pipeline(name, module, mode));
        assert_eq!(code, StatusCode::CREATED, "{v}");
        ids.push(v["pipeline_id"].as_str().unwrap().to_string());
    }
    let n = inputs().len() as u64;
    for message in inputs() {
        let (code, v) = produce(&b, "readings", &message);
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    for id in &ids {
        committed(&b, id, n);
    }
    let rust = comparable(&read_all(&b, "rs-out"));
    assert_eq!(
        rust.len(),
        4,
        "two JSON readings, a text and a list pass: {rust:?}"
    );
    assert_eq!(comparable(&read_all(&b, "py-out")), rust);
    assert_eq!(comparable(&read_all(&b, "pybatch-out")), rust);
    for name in ["rs", "py", "pybatch"] {
        assert!(read_all(&b, &format!("{name}-err")).is_empty(), "{name}");
    }
}

#[test]
fn the_python_template_gives_the_rust_templates_outputs_in_single_message_and_batch_mode() {
    gives_the_rust_templates_outputs(Lang::Python);
}

#[test]
fn the_javascript_template_gives_the_rust_templates_outputs_in_single_message_and_batch_mode() {
    gives_the_rust_templates_outputs(Lang::Js);
}

#[test]
fn a_pipeline_swaps_from_rust_to_python_to_javascript_under_flow_losing_nothing() {
    let (Some(python), Some(js)) = (template(Lang::Python), template(Lang::Js)) else {
        return;
    };
    let b = BrokerProcess::start("");
    for (version, path) in [
        ("1.0.0", Path::new(guests::GUEST_TEMPLATE)),
        ("2.0.0", python),
        ("3.0.0", js),
    ] {
        let (code, v) = upload_module(&b, "processor", version, std::fs::read(path).unwrap());
        assert_eq!(code, StatusCode::CREATED, "{v}");
    }
    let mut definition = pipeline("swap", "processor", "single_message");
    definition["module_version"] = json!("1.0.0");
    definition["configuration"]["batch_size"] = json!(10);
    let (code, v) = admin_post(&b, "/api/v1/etl/pipelines", &definition);
    assert_eq!(code, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    let total = 300u64;
    let producer = {
        let url = b.data_url.clone();
        std::thread::spawn(move || {
            for i in 0..total {
                let r = rustmq_etl_tests::http::client()
                    .post(format!("{url}/api/v1/topics/readings/messages"))
                    .json(&json!({"key": format!("k{i:04}"), "value": "{\"temperature_celsius\": 20}", "headers": {"content-type": "application/json", "source": "s"}}))
                    .send()
                    .unwrap();
                assert!(r.status().is_success());
            }
        })
    };
    for (after, version) in [(20, "2.0.0"), (100, "3.0.0")] {
        committed(&b, &id, after);
        let (code, v) = admin_patch(
            &b,
            &format!("/api/v1/etl/pipelines/{id}"),
            &json!({"module_version": version}),
        );
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    producer.join().unwrap();
    committed(&b, &id, total);
    let out = read_all(&b, "swap-out");
    let keys: Vec<&str> = out.iter().map(|m| m["key"].as_str().unwrap()).collect();
    let want: Vec<String> = (0..total).map(|i| format!("k{i:04}")).collect();
    assert_eq!(keys, want, "every input once, in order");
    let versions: Vec<&str> = out
        .iter()
        .map(|m| m["headers"]["x-rustmq-module-version"].as_str().unwrap())
        .collect();
    let mut sorted = versions.clone();
    sorted.sort();
    assert_eq!(
        versions, sorted,
        "each swap at a batch boundary, never back"
    );
    assert_eq!(versions.last(), Some(&"3.0.0"));
    assert!(versions.contains(&"2.0.0"), "the Python version ran");
    // The same answer from all three.
    let comparable = comparable(&out);
    for m in &comparable {
        assert_eq!(m["value"], comparable[0]["value"]);
        assert_eq!(m["headers"], comparable[0]["headers"]);
    }
}

/// `rustmq-etl new --lang LANG` writes a project whose own tests (`test`, run in
/// it) pass, that its build script builds with the language's tool, and whose
/// module runs the guide's reading.
fn scaffolds_tests_builds_and_runs(lang: Lang, flag: &str, test: &[&str], env: &[(&str, &str)]) {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("project");
    let out = std::process::Command::new(rustmq_etl_tests::broker::cli_binary())
        .args(["new", "project", "--lang", flag, "--path"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let tests = std::process::Command::new(test[0])
        .args(&test[1..])
        .envs(env.iter().copied())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(tests.status.success(), "{tests:?}");
    let (_, var, tool) = lang.build();
    let Some(tool) = tool else {
        eprintln!("SKIPPED: {var} is not installed; the scaffold was not built");
        return;
    };
    let build = std::process::Command::new(dir.join("build.sh"))
        .env(var, tool)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(build.status.success(), "{build:?}");
    rustmq_etl_tests::guide::assert_runs_the_guide_reading(&dir.join("processor.wasm"));
}

#[test]
fn new_lang_python_scaffolds_a_project_whose_tests_pass_and_that_builds_and_runs() {
    scaffolds_tests_builds_and_runs(
        Lang::Python,
        "python",
        &["python3", "-m", "unittest"],
        &[("PYTHONPATH", "vendor")],
    );
}

#[test]
fn new_lang_js_scaffolds_a_project_whose_tests_pass_and_that_builds_and_runs() {
    scaffolds_tests_builds_and_runs(Lang::Js, "js", &["node", "--test"], &[]);
}

#[test]
fn a_javascript_build_that_imports_wasi_http_is_refused_naming_the_flags_that_drop_it() {
    let Some(tool) = rustmq_etl_tests::componentize_js() else {
        eprintln!("SKIPPED: componentize-js is not installed");
        return;
    };
    // The template built as componentize-js builds by default: with wasi:http.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let src = tempfile::tempdir().unwrap();
    for file in ["app.js", "component.js", "rustmq-etl.js"] {
        let from = root.join("guest-template-js").join(file);
        std::fs::copy(&from, src.path().join(file)).unwrap();
    }
    let out = src.path().join("http.wasm");
    let build = std::process::Command::new(tool)
        .arg("component.js")
        .arg("--wit")
        .arg(root.join("wit/1.1.0"))
        .args(["--world-name", "etl-batch", "-o"])
        .arg(&out)
        .current_dir(src.path())
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let b = BrokerProcess::start("");
    let (code, v) = upload_module(&b, "http", "1.0.0", std::fs::read(&out).unwrap());
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("wasi:http") && message.contains("-d http fetch-event"),
        "{message}"
    );
}
