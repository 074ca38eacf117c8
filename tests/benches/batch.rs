//! The batch paths (`rustmq:etl@1.1.0` and `@1.2.0`), each against its baseline in
//! the same run:
//!
//! 1. Per message, identity: native Rust · the raw wasmtime floor · our component
//!    called once per message (1.0 `process`) · our component called once per batch
//!    of 100 (1.1 `process-batch`, a raw guest) · the SDK identity in one 1.2
//!    `process-buffer` call, owned and in place · the 1.2 raw guest, copying each
//!    message back or answering "input unchanged", as ns per message.
//! 2. The guide's transform (the template) per message in one 1.2 batch of 100,
//!    against the same logic compiled natively.
//! 3. End to end (storage, runtime, pipeline manager as the broker wires them),
//!    N preloaded messages, exactly-once local pipelines: identity in single-message
//!    mode · identity in 1.1 batch mode (raw guest) · the SDK identity in 1.2 batch
//!    mode, owned and in place · the SDK counter in batch mode (one state write per message) · the 1.2
//!    raw guest's identity in batch mode, as messages/s.
//! 4. The same pipelines (1.1 batch, SDK in place) run by the release `rustmq-broker`
//!    over HTTP as a user runs them: modules uploaded, N messages produced in
//!    requests of 1000, the pipeline created, its metrics polled until it has
//!    committed them all (needs `cargo build --release -p rustmq-etl` first).
//!
//! `RUSTMQ_BENCH_MESSAGES` sets N (default 1,000,000), `RUSTMQ_BENCH_BATCH_SIZE` the
//! end-to-end pipelines' `batch_size` (default 1000); `RUSTMQ_BENCH_QUICK=1` runs a
//! short smoke version; `RUSTMQ_BENCH_ONLY=1` runs only the SDK's in-place batch-mode
//! identity pipeline (for profiling). Results are printed as markdown and appended to
//! `<target>/criterion/summary.md`.

mod support;

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use rustmq_etl::message::Message;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::spec::{PipelineSpec, ProcessingMode};
use rustmq_etl::pipeline::{PipelineManager, DEFAULT_COMMITS_IN_FLIGHT};
use rustmq_etl::runtime::{BatchContext, Runtime, RuntimeLimits};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::guests;
use support::processor;

/// The batch size of the per-message comparison.
const BATCH: usize = 100;

fn native_identity_batch(batch: &[&Message]) -> Vec<Vec<Message>> {
    batch.iter().map(|m| vec![(*m).clone()]).collect()
}

/// The template's logic natively on each message of a batch, as the module runs it.
fn native_guide_batch(batch: &[&Message], settings: &processor::Settings) -> Vec<Vec<Message>> {
    batch
        .iter()
        .map(|m| support::native_guide(m, settings))
        .collect()
}

fn per_message(c: &mut Criterion) {
    let runtime = support::runtime();
    let msg = support::sample_message(support::DEFAULT_VALUE_BYTES);
    let batch: Vec<&Message> = std::iter::repeat_n(&msg, BATCH).collect();
    let offsets: Vec<u64> = (0..BATCH as u64).collect();
    let ctx = support::sample_context();
    let batch_ctx = BatchContext {
        pipeline_id: ctx.pipeline_id.clone(),
        source_topic: ctx.source_topic.clone(),
        attempt: 1,
    };

    let mut g = c.benchmark_group("identity_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("native", |b| {
        b.iter(|| native_identity_batch(black_box(&batch)))
    });
    let single = support::compile(&runtime, guests::IDENTITY);
    let mut t = support::transform(&single);
    g.bench_function("component_per_message", |b| {
        b.iter(|| {
            batch
                .iter()
                .map(|m| t.process(black_box(m), &ctx).expect("process"))
                .collect::<Vec<_>>()
        })
    });
    // One batch call of `batch` through `wasm`, first checked to answer each message
    // with `expected` alone.
    let mut bench_batch = |name: &str, wasm: &str, batch: &[&Message], expected: &Message| {
        let compiled = support::compile(&runtime, wasm);
        let mut t = support::transform(&compiled);
        assert!(t.takes_batches(), "{name}: the guest takes batches");
        let answer = t
            .process_batch(batch, &offsets, &batch_ctx)
            .expect("batch call");
        assert!(
            answer.iter().all(|o| o.messages == [expected.clone()]),
            "{name}: each message answered with the expected output"
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                t.process_batch(black_box(batch), &offsets, &batch_ctx)
                    .expect("batch call")
            })
        });
    };
    // 1.1: one `process-batch` call, records lifted and lowered per field.
    bench_batch("component_batch", guests::BATCH_V11, &batch, &msg);
    // The SDK's identity (`Output::from(msg)`): the SDK reads the buffer into
    // messages and answers each unchanged output as a pass.
    bench_batch("component_buffer_sdk", guests::SDK_IDENTITY, &batch, &msg);
    // The SDK in place (`process_ref`, `Emit::unchanged`): nothing of a message is
    // copied in the guest.
    bench_batch(
        "component_buffer_sdk_in_place",
        guests::SDK_IN_PLACE,
        &batch,
        &msg,
    );
    // 1.2 on raw bindings: the guest copies each message into its answer (as an
    // identity written out), or, with header `mode: pass`, answers "input i
    // unchanged" (a pass output).
    bench_batch("component_buffer", guests::BUFFER_V12, &batch, &msg);
    let mut passed = msg.clone();
    passed.headers.push(("mode".into(), "pass".into()));
    let pass_batch: Vec<&Message> = std::iter::repeat_n(&passed, BATCH).collect();
    bench_batch(
        "component_buffer_pass",
        guests::BUFFER_V12,
        &pass_batch,
        &passed,
    );
    let mut raw = support::RawIdentity::new(runtime.engine());
    g.bench_function("raw_wasmtime", |b| {
        b.iter(|| {
            batch
                .iter()
                .map(|m| raw.process(black_box(m)))
                .collect::<Vec<_>>()
        })
    });
    g.finish();

    // The guide's transform: the same JSON messages through the template in one 1.2
    // batch.
    let json_batch = &batch;
    let settings = processor::Settings::default();
    let mut g = c.benchmark_group("guide_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("native", |b| {
        b.iter(|| native_guide_batch(black_box(json_batch), &settings))
    });
    let template = support::compile(&runtime, guests::GUEST_TEMPLATE);
    let mut t = support::transform(&template);
    let answer = t
        .process_batch(json_batch, &offsets, &batch_ctx)
        .expect("process-buffer");
    assert!(
        answer
            .iter()
            .all(|o| o.messages.len() == 1 && o.messages[0].header("enriched") == Some("true")),
        "the guide's transform"
    );
    g.bench_function("component_buffer", |b| {
        b.iter(|| {
            t.process_batch(black_box(json_batch), &offsets, &batch_ctx)
                .expect("process-buffer")
        })
    });
    g.finish();
}

const SOURCE: &str = "bench-in";

/// The end-to-end pipelines' `batch_size`: `RUSTMQ_BENCH_BATCH_SIZE`, else 1000.
fn e2e_batch_size() -> u32 {
    std::env::var("RUSTMQ_BENCH_BATCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}
const PRELOAD_CHUNK: usize = 10_000;

/// The end-to-end pipelines' definition: `module` from [`SOURCE`] to `<name>-out`,
/// failures to `<name>-err`, no retries.
fn pipeline_json(name: &str, module: &str, mode: ProcessingMode) -> serde_json::Value {
    serde_json::json!({
        "pipeline_name": name,
        "source_topic": SOURCE,
        "destination_topic": format!("{name}-out"),
        "error_topic": format!("{name}-err"),
        "module_name": module,
        "module_version": "^1",
        "configuration": {"batch_size": e2e_batch_size(), "processing_mode": mode,
                          "retry_policy": {"max_retries": 0, "backoff_ms": 1}},
    })
}

/// How many distinct keys the end-to-end messages cycle through.
const KEYS: usize = 1000;

struct Rig {
    _dir: tempfile::TempDir,
    storage: Storage,
    pipelines: PipelineManager,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let storage =
            Storage::open(&dir.path().join("data"), StorageOptions::default()).expect("storage");
        let runtime = Runtime::new(RuntimeLimits::default()).expect("runtime");
        let modules =
            ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).expect("modules");
        let pipelines = PipelineManager::open(storage.clone(), modules.clone()).expect("manager");
        for (name, path) in [
            ("identity", guests::IDENTITY),
            ("sdk-identity", guests::SDK_IDENTITY),
            ("batch-v11", guests::BATCH_V11),
            ("sdk-in-place", guests::SDK_IN_PLACE),
            ("counter", guests::COUNTER),
            ("buffer-identity", guests::BUFFER_V12),
        ] {
            let bytes = std::fs::read(path).expect("module bytes");
            modules.upload(name, "1.0.0", &bytes).expect("upload");
        }
        Rig {
            _dir: dir,
            storage,
            pipelines,
        }
    }

    /// `n` messages whose keys cycle through `keys` distinct values.
    fn preload(&self, n: usize, keys: usize) {
        let base = support::sample_message(support::DEFAULT_VALUE_BYTES);
        let mut i = 0;
        while i < n {
            let chunk: Vec<Message> = (i..(i + PRELOAD_CHUNK).min(n))
                .map(|j| Message {
                    key: Some(format!("sensor-{}", j % keys)),
                    ..base.clone()
                })
                .collect();
            i += chunk.len();
            self.storage
                .append_blocking(SOURCE, chunk)
                .expect("preload");
        }
    }

    /// Runs one pipeline over the whole source; messages/s from create to the last
    /// commit.
    fn run(&self, name: &str, module: &str, mode: ProcessingMode, n: u64) -> f64 {
        let spec: PipelineSpec =
            serde_json::from_value(pipeline_json(name, module, mode)).expect("spec");
        let started = Instant::now();
        let id = self.pipelines.create(spec).expect("create").pipeline_id;
        let deadline = Instant::now() + Duration::from_secs(1800);
        loop {
            let m = self.pipelines.metrics(&id).expect("metrics");
            if m.committed_offset >= n {
                break;
            }
            let status = self.pipelines.status(&id).expect("status");
            assert_eq!(status.status, "running", "pipeline stopped: {status:?}");
            assert!(Instant::now() < deadline, "pipeline {id} did not drain");
            let dest = &status.destination_topic;
            let end = self.storage.end_offset(dest).unwrap_or(0);
            self.storage
                .wait_for_blocking(dest, end, Duration::from_millis(20));
        }
        let secs = started.elapsed().as_secs_f64();
        let m = self.pipelines.metrics(&id).expect("metrics");
        assert_eq!(m.messages_failed, 0, "{m:?}");
        self.pipelines.delete(&id).expect("delete");
        n as f64 / secs
    }
}

fn end_to_end(n: usize, out: &mut String) {
    let rig = Rig::new();
    let keys = KEYS;
    rig.preload(n, keys);
    let _ = writeln!(
        out,
        "\n#### Exactly-once local pipelines, {n} preloaded messages (200-byte value, key among {keys}, 3 headers), batch_size {}\n\n| pipeline | messages/s | × the first row |\n|---|---:|---:|",
        e2e_batch_size()
    );
    // (label, module, mode, commits in flight)
    let runs = [
        (
            "identity, single_message (1.0 component)",
            "identity",
            ProcessingMode::SingleMessage,
            DEFAULT_COMMITS_IN_FLIGHT,
        ),
        (
            "identity, batch (1.1 `process-batch`, raw guest)",
            "batch-v11",
            ProcessingMode::Batch,
            DEFAULT_COMMITS_IN_FLIGHT,
        ),
        (
            "identity, batch (SDK, 1.2 `process-buffer`)",
            "sdk-identity",
            ProcessingMode::Batch,
            DEFAULT_COMMITS_IN_FLIGHT,
        ),
        (
            "identity, batch (SDK in place, 1.2 `process-buffer`)",
            "sdk-in-place",
            ProcessingMode::Batch,
            DEFAULT_COMMITS_IN_FLIGHT,
        ),
        (
            "identity, batch (SDK in place, one commit in flight)",
            "sdk-in-place",
            ProcessingMode::Batch,
            1,
        ),
        (
            "counter, batch (SDK, one state write per message)",
            "counter",
            ProcessingMode::Batch,
            DEFAULT_COMMITS_IN_FLIGHT,
        ),
        (
            "identity, batch (1.2 buffer, raw guest)",
            "buffer-identity",
            ProcessingMode::Batch,
            DEFAULT_COMMITS_IN_FLIGHT,
        ),
    ];
    // `RUSTMQ_BENCH_ONLY=1`: the in-place pipeline only, alternating one commit in
    // flight and the default, three times each.
    let only = std::env::var_os("RUSTMQ_BENCH_ONLY").is_some();
    let runs: Vec<_> = if only {
        let pair = [runs[4], runs[3]];
        (0..3).flat_map(|_| pair).collect()
    } else {
        runs.to_vec()
    };
    let mut base = None;
    for (i, (label, module, mode, in_flight)) in runs.into_iter().enumerate() {
        rig.pipelines.set_commits_in_flight(in_flight);
        let rate = rig.run(&format!("e{i}"), module, mode, n as u64);
        let base = *base.get_or_insert(rate);
        let line = format!("| {label} | {rate:.0} | {:.2} |", rate / base);
        println!("{line}");
        let _ = writeln!(out, "{line}");
    }
}

/// The rate of the same pipelines on the release broker over HTTP, beside the
/// in-process rows of this run.
fn over_http(n: usize, out: &mut String) {
    use rustmq_etl_tests::broker::BrokerProcess;
    use rustmq_etl_tests::http::{admin_delete, admin_get, admin_post, produce, upload_module};
    if !support::use_release_broker() {
        let _ = writeln!(
            out,
            "\n(The release broker over HTTP not measured: build `rustmq-broker` with `cargo build --release -p rustmq-etl` first)"
        );
        return;
    }
    let broker = BrokerProcess::start("");
    for (name, path) in [
        ("batch-v11", guests::BATCH_V11),
        ("sdk-in-place", guests::SDK_IN_PLACE),
    ] {
        let bytes = std::fs::read(path).expect("module bytes");
        let (status, body) = upload_module(&broker, name, "1.0.0", bytes);
        assert!(status.is_success(), "upload {name}: {status} {body}");
    }
    let base = support::sample_message(support::DEFAULT_VALUE_BYTES);
    let value = String::from_utf8(base.value.clone()).expect("a UTF-8 value");
    let headers: serde_json::Map<String, serde_json::Value> = base
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().into()))
        .collect();
    let started = Instant::now();
    for from in (0..n).step_by(1000) {
        let messages: Vec<_> = (from..(from + 1000).min(n))
            .map(|j| serde_json::json!({"key": format!("sensor-{}", j % KEYS), "value": value, "headers": headers}))
            .collect();
        let (status, body) = produce(
            &broker,
            SOURCE,
            &serde_json::json!({ "messages": messages }),
        );
        assert!(status.is_success(), "produce: {status} {body}");
    }
    let produced = started.elapsed().as_secs_f64();
    let _ = writeln!(
        out,
        "\n#### The same pipelines on `rustmq-broker --release` over HTTP, {n} messages produced in requests of 1000 ({:.0} /s), batch_size {}\n\n| pipeline | messages/s | × the first row |\n|---|---:|---:|",
        n as f64 / produced,
        e2e_batch_size()
    );
    let mut first = None;
    for (i, (label, module)) in [
        (
            "identity, batch (1.1 `process-batch`, raw guest)",
            "batch-v11",
        ),
        (
            "identity, batch (SDK in place, 1.2 `process-buffer`)",
            "sdk-in-place",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let spec = pipeline_json(&format!("h{i}"), module, ProcessingMode::Batch);
        let started = Instant::now();
        let (status, body) = admin_post(&broker, "/api/v1/etl/pipelines", &spec);
        assert!(status.is_success(), "create: {status} {body}");
        let id = body["pipeline_id"]
            .as_str()
            .expect("pipeline_id")
            .to_string();
        let deadline = started + Duration::from_secs(1800);
        loop {
            let (_, m) = admin_get(&broker, &format!("/api/v1/etl/pipelines/{id}/metrics"));
            if m["committed_offset"].as_u64().unwrap_or(0) >= n as u64 {
                assert_eq!(m["messages_failed"].as_u64(), Some(0), "{m}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "pipeline {id} did not drain: {m}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        admin_delete(&broker, &format!("/api/v1/etl/pipelines/{id}"));
        let first = *first.get_or_insert(rate);
        let line = format!("| {label} | {rate:.0} | {:.2} |", rate / first);
        println!("{line}");
        let _ = writeln!(out, "{line}");
    }
}

fn main() {
    let quick = std::env::var_os("RUSTMQ_BENCH_QUICK").is_some();
    let n: usize = std::env::var("RUSTMQ_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 1_000_000 });
    let only = std::env::var_os("RUSTMQ_BENCH_ONLY").is_some();
    let mut c = support::criterion();
    if !only {
        per_message(&mut c);
        c.final_summary();
        support::summarize(
            &format!("Identity, {BATCH} messages (one batch) per iteration"),
            "identity_batch",
            &[
                "native",
                "raw_wasmtime",
                "component_per_message",
                "component_batch",
                "component_buffer_sdk",
                "component_buffer_sdk_in_place",
                "component_buffer",
                "component_buffer_pass",
            ],
            "native",
        );
        support::summarize(
            &format!("The guide's transform, {BATCH} messages (one 1.2 batch) per iteration"),
            "guide_batch",
            &["native", "component_buffer"],
            "native",
        );
    }
    let mut out = String::from("\n### The batch contracts end to end\n");
    end_to_end(n, &mut out);
    if !only {
        over_http(n, &mut out);
    }
    print!("{out}");
    let dir = support::criterion_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("summary.md");
    let mut previous = std::fs::read_to_string(&path).unwrap_or_default();
    previous.push_str(&out);
    let _ = std::fs::write(path, previous);
}
