//! Property tests of the edges that take outside input, with a bounded number of
//! cases so they run in CI in seconds: the upload validator on mutated modules and
//! the message API's produce handler on mutated JSON. Property: no panic, a clear
//! typed error, storage unchanged on rejection. And the topic log against a model:
//! any mix of append sizes (several messages share a stored chunk), retention passes
//! and reopens reads back exactly what was appended, at the right offsets. (The legacy output reader's
//! properties live next to it, in `rustmq-etl-legacy`'s `abi` tests.)

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use rustmq_etl::message::Message;
use rustmq_etl::modules::{ModuleError, ModuleStore};
use rustmq_etl::runtime::{LoadError, Runtime, RuntimeLimits};
use rustmq_etl::storage::{Storage, StorageOptions, TopicConfig};
use rustmq_etl_tests::guests;
use tower::ServiceExt as _;

/// A small legacy core module that loads: the base the mutations start from.
const CORE_MODULE: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))"#;

/// A mutation: overwrite, insert or delete bytes at positions chosen by the test.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Truncate(usize),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..4)
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len().max(1);
        match e {
            Edit::Set(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % n] = *b;
                }
            }
            Edit::Insert(i, b) => {
                let at = i % (bytes.len() + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Truncate(i) => bytes.truncate(i % n),
        }
    }
    bytes
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeLimits {
            max_instances: 4,
            ..RuntimeLimits::default()
        })
        .unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_core_modules_are_refused_cleanly_and_leave_storage_unchanged(edits in edits()) {
        let base = wat::parse_str(CORE_MODULE).unwrap();
        let bytes = apply(base, &edits);
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("data"), StorageOptions::default()).unwrap();
        let modules = ModuleStore::open(&dir.path().join("wasm"), storage, runtime().clone()).unwrap();
        let _ = runtime().inspect(&bytes);
        match modules.upload("m", "1.0.0", &bytes) {
            Ok(_) => prop_assert_eq!(modules.list().unwrap().len(), 1),
            Err(e) => {
                // Refused as a module, not failed inside the broker.
                prop_assert!(
                    matches!(&e, ModuleError::Load(load) if !matches!(load, LoadError::Cache(_))),
                    "not a refusal of the module: {:?}", e
                );
                prop_assert!(modules.list().unwrap().is_empty(), "a refused upload was listed");
                let blobs = walk_files(&dir.path().join("wasm"));
                prop_assert!(blobs.is_empty(), "a refused upload left files: {:?}", blobs);
            }
        }
    }
}

proptest! {
    // Components take about a second each to compile in debug builds: inspect every
    // case, compile a few.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn mutated_components_are_inspected_and_compiled_without_panicking(edits in edits(), compile in prop::bool::weighted(0.25)) {
        let base = std::fs::read(guests::SCRIPTED).unwrap();
        let bytes = apply(base, &edits);
        // No panic, and a refusal of the bytes, never a fault of the broker's cache.
        if let Err(e) = runtime().inspect(&bytes) {
            prop_assert!(!matches!(e, LoadError::Cache(_)), "{:?}", e);
        }
        if compile {
            if let Err(e) = runtime().compile(&bytes) {
                prop_assert!(!matches!(e, LoadError::Cache(_)), "{:?}", e);
            }
        }
    }
}

fn walk_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ---- the message API ---------------------------------------------------------------

struct Api {
    _dir: tempfile::TempDir,
    broker: std::sync::Arc<rustmq_etl::broker::Broker>,
    rt: tokio::runtime::Runtime,
}

fn api() -> &'static Api {
    static API: OnceLock<Api> = OnceLock::new();
    API.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broker.toml");
        std::fs::write(&path, "[etl]\nenabled = false\n").unwrap();
        let config = rustmq_etl::config::BrokerConfig::load(&path).unwrap();
        let broker = rustmq_etl::broker::Broker::open(config).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        Api {
            _dir: dir,
            broker,
            rt,
        }
    })
}

/// JSON fragments that produce bodies are built from.
const PIECES: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"key\"",
    b"\"value\"",
    b"\"value_base64\"",
    b"\"headers\"",
    b"\"timestamp\"",
    b"\"messages\"",
    b"\"x\"",
    b"null",
    b"\"@@@\"",
    b"-9223372036854775809",
    b"1e400",
    b"true",
    b"\"\\ud800\"",
    b"\xff",
    b"{\"value\":\"ok\"}",
];

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(PIECES), 0..24).prop_map(|p| p.concat())
}

fn produce(body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let api = api();
    let addr = "127.0.0.1:0".parse().unwrap();
    let listening = rustmq_etl::api::Listening {
        admin: addr,
        messages: addr,
    };
    let router = rustmq_etl::api::data::router(api.broker.clone(), listening);
    api.rt.block_on(async {
        let request = Request::post("/api/v1/topics/fuzzed/messages")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    })
}

fn end_offset() -> u64 {
    let storage = &api().broker.storage;
    match storage.topic("fuzzed").unwrap() {
        Some(_) => storage.end_offset("fuzzed").unwrap(),
        None => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn produce_answers_every_body_with_success_or_a_clear_4xx(body in body()) {
        // Other cases append concurrently only through this test, which runs its
        // cases one after another.
        let before = end_offset();
        let (status, v) = produce(body);
        if status.is_success() {
            prop_assert!(end_offset() > before);
        } else {
            prop_assert!(status.is_client_error(), "{} {}", status, v);
            prop_assert!(v["error"]["code"].as_str().is_some_and(|c| !c.is_empty()), "{}", v);
            prop_assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", v);
            prop_assert_eq!(end_offset(), before, "a refused produce changed the topic");
        }
    }
}

/// A step against the topic log.
#[derive(Debug, Clone)]
enum LogOp {
    /// Append this many messages (values of varied length) in one call.
    Append(usize, usize),
    /// Apply retention.
    Trim,
    /// Close and open the store again.
    Reopen,
}

fn log_ops() -> impl Strategy<Value = Vec<LogOp>> {
    prop::collection::vec(
        prop_oneof![
            6 => (1usize..2_500, 0usize..300).prop_map(|(n, len)| LogOp::Append(n, len)),
            2 => Just(LogOp::Trim),
            1 => Just(LogOp::Reopen),
        ],
        1..8,
    )
}

/// The message stored at `offset` in the model: its offset is in its value.
fn logged(offset: u64, len: usize) -> Message {
    let mut value = offset.to_string().into_bytes();
    value.resize(value.len() + len % 97, b'.');
    Message {
        key: offset.is_multiple_of(3).then(|| format!("k{offset}")),
        value,
        headers: vec![("n".into(), offset.to_string())],
        timestamp: offset as i64,
    }
}

/// A message's stored size: the entry layout documented in `storage::codec`.
fn entry_size(m: &Message) -> u64 {
    let key = 1 + m.key.as_ref().map_or(0, |k| 4 + k.len());
    let headers: usize = m.headers.iter().map(|(n, v)| 8 + n.len() + v.len()).sum();
    (17 + key + 4 + m.value.len() + 4 + headers) as u64
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_log_reads_back_what_was_appended_across_chunks_trims_and_reopens(
        ops in log_ops(),
        retention_bytes in prop_oneof![Just(0u64), 2_000u64..400_000],
        probes in prop::collection::vec((any::<prop::sample::Index>(), 1usize..1_500), 6),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let open = || Storage::open(dir.path(), StorageOptions::default()).unwrap();
        let mut storage = open();
        storage
            .create_topic("t", TopicConfig { retention_ms: None, retention_bytes: Some(retention_bytes) })
            .unwrap();
        // The model: the length chosen for each offset's value.
        let mut lens: Vec<usize> = Vec::new();
        let mut start = 0u64;
        for op in &ops {
            match *op {
                LogOp::Append(n, len) => {
                    let first = lens.len() as u64;
                    let batch = (first..first + n as u64).map(|o| logged(o, len + o as usize)).collect();
                    let range = storage.append_blocking("t", batch).unwrap();
                    prop_assert_eq!(range, first..first + n as u64);
                    lens.extend((first..first + n as u64).map(|o| len + o as usize));
                }
                LogOp::Trim => {
                    storage.enforce_retention(rustmq_etl::message::now_millis()).unwrap();
                    // Retention drops the oldest messages while the rest is over the
                    // limit, and no more.
                    let size_of = |o: u64| entry_size(&logged(o, lens[o as usize]));
                    let mut size: u64 = (start..lens.len() as u64).map(size_of).sum();
                    while retention_bytes > 0 && size > retention_bytes {
                        size -= size_of(start);
                        start += 1;
                    }
                    let info = storage.topic("t").unwrap().unwrap();
                    prop_assert_eq!(info.start_offset, start);
                    prop_assert_eq!(info.size_bytes, size);
                }
                LogOp::Reopen => {
                    storage.close();
                    drop(storage);
                    storage = open();
                }
            }
        }
        let end = lens.len() as u64;
        let info = storage.topic("t").unwrap().unwrap();
        prop_assert_eq!((info.start_offset, info.end_offset), (start, end));
        for (at, max) in &probes {
            if end == 0 {
                break;
            }
            let from = at.index(end as usize) as u64;
            let batch = storage.read("t", from, *max, usize::MAX).unwrap();
            let first = from.max(start);
            prop_assert_eq!(batch.skipped_to_start, from < start);
            let want: Vec<u64> = (first..end.min(first + *max as u64)).collect();
            let got: Vec<u64> = batch.messages.iter().map(|(o, _)| *o).collect();
            prop_assert_eq!(&got, &want);
            for (offset, message) in &batch.messages {
                prop_assert_eq!(message, &logged(*offset, lens[*offset as usize]));
            }
        }
    }
}
