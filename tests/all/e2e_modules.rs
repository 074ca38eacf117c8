//! The module store over real HTTP against the broker binary (issue 4): the guide's
//! Step 4, dedup, immutability, semver resolution, restart without recompiling,
//! corruption of blobs and of the compiled cache, every bad upload, pinning and the
//! admin token.

use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;
use rustmq_etl_tests::http::{
    admin_delete, admin_get, admin_post, client, error_code, error_message, send, upload_module,
};
use serde_json::{json, Value};

/// A broker with ETL on and its module store in `<home>/modules`.
const CONFIG: &str = "[etl]\nenabled = true\nmodules_path = \"modules\"\n";

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn modules_dir(b: &BrokerProcess) -> PathBuf {
    b.home().join("modules")
}

/// The files directly under `dir` whose names end with `suffix`.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// The `etl` section of `GET /api/v1/metrics`.
fn etl_metrics(b: &BrokerProcess) -> Value {
    let (status, v) = admin_get(b, "/api/v1/metrics");
    assert_eq!(status, StatusCode::OK, "{v}");
    v["etl"].clone()
}

fn download(b: &BrokerProcess, module_id: &str) -> reqwest::blocking::Response {
    client()
        .get(format!(
            "{}/api/v1/etl/modules/{module_id}/wasm",
            b.admin_url
        ))
        .send()
        .unwrap()
}

/// `GET /api/v1/etl/modules?name=..&version=..`.
fn resolve(b: &BrokerProcess, name: &str, requirement: Option<&str>) -> (StatusCode, Value) {
    let mut query = vec![("name", name)];
    if let Some(r) = requirement {
        query.push(("version", r));
    }
    send(
        client()
            .get(format!("{}/api/v1/etl/modules", b.admin_url))
            .query(&query),
    )
}

/// The guide's `etl-pipeline.json` for `module_name`, not started.
fn stopped_pipeline(name: &str, module_name: &str) -> Value {
    json!({
        "pipeline_name": name,
        "source_topic": "raw-events",
        "destination_topic": "processed-events",
        "error_topic": "etl-errors",
        "module_name": module_name,
        "module_version": "1.0.0",
        "enabled": false
    })
}

#[test]
fn guide_step_4_upload_list_get_and_download_answer_the_documented_shapes() {
    let b = BrokerProcess::start(CONFIG);
    let bytes = wasm(guests::GUIDE_MODULE);
    // Step 4.1, with the guide's headers.
    let (status, v) = send(
        client()
            .post(format!("{}/api/v1/etl/modules", b.admin_url))
            .header("Content-Type", "application/octet-stream")
            .header("X-Module-Name", "message-processor")
            .header("X-Module-Version", "1.0.0")
            .body(bytes.clone()),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    assert_eq!(v["status"], "uploaded");
    assert_eq!(v["module_id"], "message-processor-v1.0.0");
    assert_eq!(v["size_bytes"], bytes.len());
    let hash = v["hash"].as_str().unwrap().to_string();
    let hex = hash.strip_prefix("blake3:").expect("blake3:<hex>");
    assert!(
        hex.len() == 64 && hex.bytes().all(|c| c.is_ascii_hexdigit()),
        "{hash}"
    );
    assert_eq!(v["kind"], "legacy_core");
    assert!(v["warnings"].is_array(), "{v}");

    // Step 4.2: the list (never the bytes) and one module.
    let (status, v) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 1);
    let listed = &v["modules"][0];
    assert_eq!(listed["module_id"], "message-processor-v1.0.0");
    assert_eq!(listed["hash"], hash.as_str());
    assert_eq!(listed["pinned_by"], json!([]));
    assert!(
        v.to_string().len() < bytes.len(),
        "the list must not carry the module bytes"
    );
    let (status, v) = admin_get(&b, "/api/v1/etl/modules/message-processor-v1.0.0");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "message-processor");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["hash"], hash.as_str());
    assert_eq!(v["size_bytes"], bytes.len());

    // The bytes come back exactly.
    let r = download(&b, "message-processor-v1.0.0");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/wasm");
    assert_eq!(r.bytes().unwrap().as_ref(), bytes.as_slice());

    let (status, v) = admin_get(&b, "/api/v1/etl/modules/message-processor-v9.9.9");
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "module_not_found"
    );
}

#[test]
fn same_bytes_under_two_versions_are_stored_and_compiled_once() {
    let b = BrokerProcess::start(CONFIG);
    let bytes = wasm(guests::GUEST_TEMPLATE);
    let mut hashes = Vec::new();
    for (name, version) in [("proc", "1.0.0"), ("proc", "1.0.1"), ("other", "3.0.0")] {
        let (status, v) = upload_module(&b, name, version, bytes.clone());
        assert_eq!(status, StatusCode::CREATED, "{v}");
        hashes.push(v["hash"].clone());
    }
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    let blobs = files(&modules_dir(&b).join("blobs"), ".wasm");
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), bytes);
    let compiled = files(&modules_dir(&b).join("compiled"), ".cwasm");
    assert_eq!(compiled.len(), 1, "{compiled:?}");
    let etl = etl_metrics(&b);
    assert_eq!(etl["modules"], 3, "{etl}");
    assert_eq!(etl["modules_compiled"], 1, "{etl}");
}

#[test]
fn reupload_of_a_version_is_idempotent_with_the_same_bytes_and_a_conflict_with_others() {
    let b = BrokerProcess::start(CONFIG);
    let bytes = wasm(guests::GUEST_TEMPLATE);
    let (status, first) = upload_module(&b, "proc", "1.0.0", bytes.clone());
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = upload_module(&b, "proc", "1.0.0", bytes.clone());
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"], "unchanged");
    assert_eq!(again["module_id"], first["module_id"]);
    assert_eq!(again["hash"], first["hash"]);
    assert_eq!(again["uploaded_at_ms"], first["uploaded_at_ms"]);

    let (status, v) = upload_module(&b, "proc", "1.0.0", wasm(guests::SCRIPTED));
    assert_eq!(
        error_code(status, &v, StatusCode::CONFLICT),
        "module_version_exists"
    );
    let message = error_message(&v);
    assert!(
        message.contains("proc-v1.0.0") && message.contains("new version"),
        "{message}"
    );
    // The stored module is untouched.
    let r = download(&b, "proc-v1.0.0");
    assert_eq!(r.bytes().unwrap().as_ref(), bytes.as_slice());
    let (_, v) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(v["count"], 1);
}

#[test]
fn version_requirements_resolve_to_the_highest_match_and_skip_pre_releases() {
    let b = BrokerProcess::start(CONFIG);
    let bytes = wasm(guests::GUEST_TEMPLATE);
    for version in ["1.0.0", "1.2.3", "1.2.9", "1.10.0", "2.0.0-beta.1"] {
        let (status, v) = upload_module(&b, "message-processor", version, bytes.clone());
        assert_eq!(status, StatusCode::CREATED, "{version}: {v}");
    }
    let cases = [
        (Some("^1"), "1.10.0"),
        (Some("^1.2"), "1.10.0"),
        (Some("~1.2.3"), "1.2.9"),
        (Some("*"), "1.10.0"),
        (None, "1.10.0"),
        // A bare version is that version, not ^1.2.3.
        (Some("1.2.3"), "1.2.3"),
        (Some("=1.0.0"), "1.0.0"),
        // Pre-releases only when the requirement names one.
        (Some("2.0.0-beta.1"), "2.0.0-beta.1"),
        (Some(">=2.0.0-beta"), "2.0.0-beta.1"),
    ];
    for (req, want) in cases {
        let (status, v) = resolve(&b, "message-processor", req);
        assert_eq!(status, StatusCode::OK, "{req:?}: {v}");
        assert_eq!(v["version"], want, "{req:?}: {v}");
        assert_eq!(v["module_id"], format!("message-processor-v{want}"));
        assert_eq!(v["status"], "resolved");
    }
    let (status, v) = resolve(&b, "message-processor", Some("^2"));
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "no_matching_version"
    );
    assert!(
        error_message(&v).contains("1.10.0") && error_message(&v).contains("2.0.0-beta.1"),
        "the refusal lists what there is: {v}"
    );
    let (status, v) = resolve(&b, "nothing-here", Some("*"));
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "no_matching_version"
    );
    let (status, v) = resolve(&b, "message-processor", Some("one point oh"));
    assert_eq!(
        error_code(status, &v, StatusCode::BAD_REQUEST),
        "invalid_version_requirement"
    );
    assert_eq!(etl_metrics(&b)["modules_compiled"], 1);
}

#[test]
fn restart_keeps_metadata_and_blobs_and_loads_compiled_code_from_the_cache() {
    let mut b = BrokerProcess::start(CONFIG);
    let uploads = [
        ("message-processor", "1.0.0", wasm(guests::GUIDE_MODULE)),
        ("template", "0.1.0", wasm(guests::GUEST_TEMPLATE)),
    ];
    for (name, version, bytes) in &uploads {
        let (status, v) = upload_module(&b, name, version, bytes.clone());
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    let (_, before) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(etl_metrics(&b)["modules_compiled"], 2);

    b.restart();
    let etl = etl_metrics(&b);
    assert_eq!(
        etl["modules_compiled"], 0,
        "recompiled after restart: {etl}"
    );
    assert_eq!(etl["modules_loaded_from_cache"], 2, "{etl}");
    assert_eq!(etl["compiled_cache_rejects"], 0, "{etl}");
    let (_, after) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(after, before);
    for (name, version, bytes) in &uploads {
        let r = download(&b, &format!("{name}-v{version}"));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.bytes().unwrap().as_ref(), bytes.as_slice());
    }
}

#[test]
fn corrupted_blob_fails_its_pipeline_and_download_until_the_same_bytes_are_uploaded_again() {
    let mut b = BrokerProcess::start(CONFIG);
    let bytes = wasm(guests::GUEST_TEMPLATE);
    let (status, v) = upload_module(&b, "message-processor", "1.0.0", bytes.clone());
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let mut spec = stopped_pipeline("p", "message-processor");
    spec["enabled"] = json!(true);
    let (status, v) = admin_post(&b, "/api/v1/etl/pipelines", &spec);
    assert_eq!(status, StatusCode::CREATED, "{v}");
    b.sigterm();

    // Tamper with the blob, and drop the compiled cache so the blob must be read.
    let blobs = files(&modules_dir(&b).join("blobs"), ".wasm");
    assert_eq!(blobs.len(), 1);
    let mut tampered = bytes.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    std::fs::write(&blobs[0], &tampered).unwrap();
    std::fs::remove_dir_all(modules_dir(&b).join("compiled")).unwrap();
    b.restart();

    // Nothing was compiled from the tampered bytes.
    assert_eq!(etl_metrics(&b)["modules_compiled"], 0);
    // The pinned pipeline does not run, and says why.
    let (status, v) = admin_get(&b, "/api/v1/etl/pipelines/p/status");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "failed", "{v}");
    let failure = v["failure"].as_str().unwrap_or_default();
    assert!(
        failure.contains("corrupted") && failure.contains("message-processor-v1.0.0"),
        "{v}"
    );
    // Download refuses to hand out the wrong bytes.
    let (status, v) = send(client().get(format!(
        "{}/api/v1/etl/modules/message-processor-v1.0.0/wasm",
        b.admin_url
    )));
    assert_eq!(
        error_code(status, &v, StatusCode::INTERNAL_SERVER_ERROR),
        "module_corrupted"
    );
    assert!(error_message(&v).contains("corrupted"), "{v}");
    assert!(b.log().contains("corrupted"));

    // The same bytes again repair the blob; the pipeline can start.
    let (status, v) = upload_module(&b, "message-processor", "1.0.0", bytes.clone());
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(std::fs::read(&blobs[0]).unwrap(), bytes);
    assert_eq!(
        download(&b, "message-processor-v1.0.0")
            .bytes()
            .unwrap()
            .as_ref(),
        bytes.as_slice()
    );
    let (status, v) = admin_post(&b, "/api/v1/etl/pipelines/p/start", &json!({}));
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "running", "{v}");
}

#[test]
fn corrupted_compiled_cache_files_are_discarded_and_rebuilt() {
    let mut b = BrokerProcess::start(CONFIG);
    for (name, path) in [
        ("guide", guests::GUIDE_MODULE),
        ("template", guests::GUEST_TEMPLATE),
    ] {
        let (status, v) = upload_module(&b, name, "1.0.0", wasm(path));
        assert_eq!(status, StatusCode::CREATED, "{v}");
    }
    b.sigterm();
    let compiled_dir = modules_dir(&b).join("compiled");
    let artifacts = files(&compiled_dir, ".cwasm");
    assert_eq!(artifacts.len(), 2, "{artifacts:?}");
    // One artifact no longer matches its checksum; the other is garbage whose
    // checksum was updated too, so only wasmtime's own checks can catch it.
    let mut flipped = std::fs::read(&artifacts[0]).unwrap();
    let last = flipped.len() - 1;
    flipped[last] ^= 0xff;
    std::fs::write(&artifacts[0], &flipped).unwrap();
    let garbage = vec![0x5a_u8; 4096];
    std::fs::write(&artifacts[1], &garbage).unwrap();
    let mut checksum = artifacts[1].clone().into_os_string();
    checksum.push(".blake3");
    std::fs::write(&checksum, blake3::hash(&garbage).to_hex().as_bytes()).unwrap();

    b.restart();
    let etl = etl_metrics(&b);
    assert_eq!(etl["compiled_cache_rejects"], 2, "{etl}");
    assert_eq!(etl["modules_compiled"], 2, "{etl}");
    assert_eq!(etl["modules_loaded_from_cache"], 0, "{etl}");
    // The rebuilt cache is good: the next restart compiles nothing.
    b.restart();
    let etl = etl_metrics(&b);
    assert_eq!(etl["compiled_cache_rejects"], 0, "{etl}");
    assert_eq!(etl["modules_compiled"], 0, "{etl}");
    assert_eq!(etl["modules_loaded_from_cache"], 2, "{etl}");
}

#[test]
fn bad_uploads_are_refused_with_a_reason_and_store_nothing() {
    let b = BrokerProcess::start(CONFIG);
    let good = wasm(guests::GUEST_TEMPLATE);
    let url = format!("{}/api/v1/etl/modules", b.admin_url);
    let bad = StatusCode::BAD_REQUEST;

    // Missing headers.
    let (s, v) = send(
        client()
            .post(&url)
            .header("X-Module-Version", "1.0.0")
            .body(good.clone()),
    );
    assert_eq!(error_code(s, &v, bad), "missing_header");
    assert!(error_message(&v).contains("X-Module-Name"), "{v}");
    let (s, v) = send(
        client()
            .post(&url)
            .header("X-Module-Name", "p")
            .body(good.clone()),
    );
    assert_eq!(error_code(s, &v, bad), "missing_header");
    assert!(error_message(&v).contains("X-Module-Version"), "{v}");
    // Malformed headers: not text, or a name outside the rule.
    let (s, v) = send(
        client()
            .post(&url)
            .header(
                "X-Module-Name",
                reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )
            .header("X-Module-Version", "1.0.0")
            .body(good.clone()),
    );
    assert_eq!(error_code(s, &v, bad), "malformed_header");
    for name in ["a/b", "-lead", "sp ace"] {
        let (s, v) = upload_module(&b, name, "1.0.0", good.clone());
        assert_eq!(error_code(s, &v, bad), "invalid_module_name", "{name}");
    }
    // Not semver.
    for version in ["one", "1.2.3.4", "v1.0.0", "", "1.0.0+zzz"] {
        let (s, v) = upload_module(&b, "p", version, good.clone());
        assert_eq!(
            error_code(s, &v, bad),
            "invalid_module_version",
            "{version:?}"
        );
    }
    // Not WebAssembly: the answer says what was received.
    let (s, v) = upload_module(&b, "p", "1.0.0", b"{\"module\": \"nope\"}".to_vec());
    assert_eq!(
        error_code(s, &v, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        "not_webassembly"
    );
    let message = error_message(&v);
    assert!(
        message.contains("18 bytes") && message.contains("JSON") && message.contains("7b 22"),
        "{message}"
    );
    let (s, v) = upload_module(&b, "p", "1.0.0", b"\x7fELF\x02\x01\x01rest".to_vec());
    assert_eq!(
        error_code(s, &v, StatusCode::UNSUPPORTED_MEDIA_TYPE),
        "not_webassembly"
    );
    assert!(error_message(&v).contains("ELF"), "{v}");
    // A component importing an interface the broker does not provide.
    let (s, v) = upload_module(&b, "p", "1.0.0", wasm(guests::UNKNOWN_IMPORT_GUEST));
    assert_eq!(
        error_code(s, &v, StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_module"
    );
    assert!(error_message(&v).contains("acme:geo/lookup"), "{v}");
    // The guide's module built as the guide says, for wasm32-unknown-unknown.
    let (s, v) = upload_module(
        &b,
        "message-processor",
        "1.0.0",
        wasm(guests::GUIDE_MODULE_WASM32_UNKNOWN_UNKNOWN),
    );
    assert_eq!(
        error_code(s, &v, StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_module"
    );
    let message = error_message(&v);
    assert!(
        message.contains("__wbindgen") && message.contains("wasm32-wasip1"),
        "{message}"
    );
    // An empty body.
    let (s, v) = upload_module(&b, "p", "1.0.0", Vec::new());
    assert_eq!(error_code(s, &v, bad), "empty_body");

    let (_, v) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(v["count"], 0, "{v}");
    assert_eq!(
        files(&modules_dir(&b).join("blobs"), ""),
        Vec::<PathBuf>::new()
    );
}

#[test]
fn uploads_over_the_size_cap_are_refused_with_or_without_content_length() {
    let b = BrokerProcess::start(&format!("{CONFIG}max_module_size_bytes = 4096\n"));
    let mut body = b"\0asm\x01\0\0\0".to_vec();
    body.resize(4097, 0);
    let url = format!("{}/api/v1/etl/modules", b.admin_url);
    let request = || {
        client()
            .post(&url)
            .header("Content-Type", "application/octet-stream")
            .header("X-Module-Name", "big")
            .header("X-Module-Version", "1.0.0")
    };
    // With Content-Length: refused before the body is read.
    let (s, v) = send(request().body(body.clone()));
    assert_eq!(
        error_code(s, &v, StatusCode::PAYLOAD_TOO_LARGE),
        "module_too_large"
    );
    let message = error_message(&v);
    assert!(
        message.contains("4097 bytes") && message.contains("etl.max_module_size_bytes"),
        "{message}"
    );
    // Chunked, without Content-Length: refused once the stream passes the cap.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(body.clone()));
    let (s, v) = send(request().body(chunked));
    assert_eq!(
        error_code(s, &v, StatusCode::PAYLOAD_TOO_LARGE),
        "module_too_large"
    );
    assert!(error_message(&v).contains("more than 4096 bytes"), "{v}");
    // Exactly at the cap is read (and then refused for what it is, not its size).
    body.truncate(4096);
    let (s, v) = send(request().body(body));
    assert_eq!(
        error_code(s, &v, StatusCode::UNPROCESSABLE_ENTITY),
        "invalid_module"
    );
    let (_, v) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(v["count"], 0, "{v}");
}

#[test]
fn module_pinned_by_a_pipeline_cannot_be_deleted_until_the_pipeline_is() {
    let b = BrokerProcess::start(CONFIG);
    let (status, v) = upload_module(&b, "scripted", "1.0.0", wasm(guests::SCRIPTED));
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let (status, v) = admin_post(
        &b,
        "/api/v1/etl/pipelines",
        &stopped_pipeline("pinning", "scripted"),
    );
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    let (_, v) = admin_get(&b, "/api/v1/etl/modules/scripted-v1.0.0");
    assert_eq!(v["pinned_by"], json!([id]));

    let (status, v) = admin_delete(&b, "/api/v1/etl/modules/scripted-v1.0.0");
    assert_eq!(
        error_code(status, &v, StatusCode::CONFLICT),
        "module_in_use"
    );
    assert!(error_message(&v).contains(&id), "{v}");
    assert_eq!(files(&modules_dir(&b).join("blobs"), ".wasm").len(), 1);

    let (status, v) = admin_delete(&b, &format!("/api/v1/etl/pipelines/{id}"));
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = admin_delete(&b, "/api/v1/etl/modules/scripted-v1.0.0");
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "deleted");
    let (status, v) = admin_get(&b, "/api/v1/etl/modules/scripted-v1.0.0");
    assert_eq!(
        error_code(status, &v, StatusCode::NOT_FOUND),
        "module_not_found"
    );
    assert!(files(&modules_dir(&b).join("blobs"), ".wasm").is_empty());
    assert!(files(&modules_dir(&b).join("compiled"), ".cwasm").is_empty());
}

#[test]
fn with_an_admin_token_an_upload_without_it_is_refused_and_stores_nothing() {
    let b = BrokerProcess::start_with_env(CONFIG, &[("RUSTMQ_ADMIN_TOKEN", "s3cret")]);
    let bytes = wasm(guests::GUEST_TEMPLATE);
    let (s, v) = upload_module(&b, "p", "1.0.0", bytes.clone());
    assert_eq!(error_code(s, &v, StatusCode::UNAUTHORIZED), "unauthorized");
    let upload = |token: &str| {
        send(
            client()
                .post(format!("{}/api/v1/etl/modules", b.admin_url))
                .bearer_auth(token)
                .header("X-Module-Name", "p")
                .header("X-Module-Version", "1.0.0")
                .body(bytes.clone()),
        )
    };
    let (s, v) = upload("wrong");
    assert_eq!(error_code(s, &v, StatusCode::UNAUTHORIZED), "unauthorized");
    let list = || {
        send(
            client()
                .get(format!("{}/api/v1/etl/modules", b.admin_url))
                .bearer_auth("s3cret"),
        )
    };
    let (s, v) = list();
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["count"], 0, "{v}");
    assert!(files(&modules_dir(&b).join("blobs"), "").is_empty());
    let (s, v) = upload("s3cret");
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(list().1["count"], 1);
}

#[test]
fn a_component_over_the_per_component_pool_limits_is_refused_naming_the_setting_to_raise() {
    // The Rust template needs a few core instances; a broker that allows one refuses
    // it, and says which setting admits it.
    let b = BrokerProcess::start("[etl]\nmax_core_instances_per_component = 1\n");
    let (code, v) = upload_module(&b, "template", "1.0.0", wasm(guests::GUEST_TEMPLATE));
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("core module instances")
            && message.contains("max_core_instances_per_component"),
        "{message}"
    );
    let (_, list) = admin_get(&b, "/api/v1/etl/modules");
    assert_eq!(list["count"], 0, "nothing stored: {list}");
    // The default admits it (and componentize-py's 14).
    let b = BrokerProcess::start("");
    let (code, v) = upload_module(&b, "template", "1.0.0", wasm(guests::GUEST_TEMPLATE));
    assert_eq!(code, StatusCode::CREATED, "{v}");
}
