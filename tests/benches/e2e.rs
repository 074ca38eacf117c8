//! End-to-end benchmarks: the broker's pieces in process (storage, runtime, module
//! store, pipeline manager, as the broker wires them), and the real release broker
//! over HTTP for produce throughput.
//!
//! 1. Pipeline throughput: N messages preloaded in one source topic; one pipeline at a
//!    time (identity component, the guide's logic as a component, the guide's legacy
//!    module; batch 100 and 1000) drains it; messages/s from create to last commit,
//!    and the process's peak RSS during the run.
//! 2. Chains: three identity stages against one (`RUSTMQ_BENCH_ONLY=chain` runs only
//!    this).
//! 3. Concurrent pipelines: 1, 2, 4 identity pipelines on the same source at once.
//! 4. Latency: messages offered at a fixed rate; produce → visible in the
//!    destination, p50/p99/max (scheduled send time, so a stalled producer counts).
//! 5. HTTP produce throughput against `rustmq-broker` (release): one message per
//!    request vs batches.
//! 6. Languages: the guide's processor as the Rust, Python and JavaScript templates in
//!    pipelines (single-message and batch mode) beside the same logic as a native Rust
//!    loop, over at most 50,000 messages (`RUSTMQ_BENCH_ONLY=languages` runs only
//!    this; a language whose tool is not installed says so).
//!
//! `RUSTMQ_BENCH_MESSAGES` sets N (default 1,000,000); `RUSTMQ_BENCH_QUICK=1` runs a
//! short smoke version; `RUSTMQ_BENCH_ONLY=guide` (or `template`) runs only that
//! module's pipelines, any other value only the identity pipeline with batch_size 1000
//! (for profiling); `RUSTMQ_BENCH_GUIDE_MODULE=<path>` runs the guide pipelines on
//! another build of the guide's module. Results are printed as markdown and appended to
//! `<target>/criterion/summary.md`.

mod support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustmq_etl::message::Message;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::spec::{
    Configuration, PipelineSpec, ProcessingMode, RetryPolicy, StartFrom,
};
use rustmq_etl::pipeline::PipelineManager;
use rustmq_etl::runtime::{Runtime, RuntimeLimits};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;

const SOURCE: &str = "bench-in";
/// The source of the languages runs, and their most messages (the JavaScript
/// template takes ~0.3 ms a message).
const LANG_SOURCE: &str = "bench-lang-in";
const LANG_MAX_MESSAGES: usize = 50_000;
/// Messages per preload append (the storage writer's group limit).
const PRELOAD_CHUNK: usize = 10_000;

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
            ("template", guests::GUEST_TEMPLATE),
            ("guide", &support::guide_module()),
        ] {
            let bytes = std::fs::read(path).expect("module bytes");
            modules.upload(name, "1.0.0", &bytes).expect("upload");
        }
        for (name, bytes) in support::language_templates() {
            modules.upload(name, "1.0.0", &bytes).expect("upload");
        }
        Rig {
            _dir: dir,
            storage,
            pipelines,
        }
    }

    fn preload(&self, topic: &str, n: usize) -> Duration {
        let started = Instant::now();
        let msg = support::sample_message(support::DEFAULT_VALUE_BYTES);
        let mut left = n;
        while left > 0 {
            let chunk = left.min(PRELOAD_CHUNK);
            self.storage
                .append_blocking(topic, vec![msg.clone(); chunk])
                .expect("preload");
            left -= chunk;
        }
        started.elapsed()
    }

    fn start(&self, name: &str, module: &str, source: &str, batch_size: u32) -> String {
        self.pipelines
            .create(spec(name, module, source, batch_size))
            .expect("create pipeline")
            .pipeline_id
    }

    /// Waits until every pipeline in `ids` has committed up to `end`.
    fn wait_committed(&self, ids: &[String], end: u64) {
        let deadline = Instant::now() + Duration::from_secs(1800);
        for id in ids {
            loop {
                let m = self.pipelines.metrics(id).expect("metrics");
                if m.committed_offset >= end {
                    break;
                }
                let status = self.pipelines.status(id).expect("status");
                assert_eq!(status.status, "running", "pipeline stopped: {status:?}");
                assert!(Instant::now() < deadline, "pipeline {id} did not drain");
                // Wake on the destination's commits rather than polling blindly.
                let dest = &status.destination_topic;
                let dest_end = self.storage.end_offset(dest).unwrap_or(0);
                self.storage
                    .wait_for_blocking(dest, dest_end, Duration::from_millis(20));
            }
        }
    }

    /// Creates the pipeline `definition`, waits until it has committed `n` messages,
    /// deletes it, and returns the seconds from creation to the last commit.
    fn drain(&self, definition: PipelineSpec, n: usize) -> f64 {
        let started = Instant::now();
        let id = self
            .pipelines
            .create(definition)
            .expect("create pipeline")
            .pipeline_id;
        self.wait_committed(std::slice::from_ref(&id), n as u64);
        let secs = started.elapsed().as_secs_f64();
        self.stop_all(&[id]);
        secs
    }

    fn stop_all(&self, ids: &[String]) {
        for id in ids {
            self.pipelines.delete(id).expect("delete pipeline");
        }
    }
}

fn spec(name: &str, module: &str, source: &str, batch_size: u32) -> PipelineSpec {
    PipelineSpec {
        pipeline_name: name.to_string(),
        description: String::new(),
        source_topic: source.to_string(),
        destination_topic: format!("{name}-out"),
        error_topic: Some(format!("{name}-err")),
        module_name: module.to_string(),
        module_version: "^1".to_string(),
        modules: Vec::new(),
        configuration: Configuration {
            batch_size,
            retry_policy: RetryPolicy {
                max_retries: 0,
                backoff_ms: 1,
            },
            ..Configuration::default()
        },
        enabled: true,
        start_from: StartFrom::Earliest,
        consumer_group: None,
        end_offset: None,
        redrive_of: None,
        canary: None,
        routes: Vec::new(),
    }
}

/// Peak resident set of this process (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets `VmHWM` to the current RSS, so the next reading is this run's peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn throughput(rig: &Rig, n: usize, out: &mut String) {
    let _ = writeln!(
        out,
        "\n#### One pipeline, {n} preloaded messages (200-byte JSON value, key, 3 headers)\n\n| module | batch_size | messages/s | seconds | peak RSS (MiB) |\n|---|---:|---:|---:|---:|"
    );
    let mut run = 0;
    let only = std::env::var("RUSTMQ_BENCH_ONLY").ok();
    for (label, module) in [
        ("identity (component)", "identity"),
        ("guide logic (component, template)", "template"),
        ("guide module (legacy JSON)", "guide"),
    ] {
        for batch in [100u32, 1000] {
            let wanted = match only.as_deref() {
                None => true,
                Some(name @ ("guide" | "template")) => module == name,
                Some(_) => module == "identity" && batch == 1000,
            };
            if !wanted {
                continue;
            }
            run += 1;
            reset_peak_rss();
            let started = Instant::now();
            let id = rig.start(&format!("t{run}"), module, SOURCE, batch);
            rig.wait_committed(std::slice::from_ref(&id), n as u64);
            let secs = started.elapsed().as_secs_f64();
            let rss = peak_rss_mib();
            rig.stop_all(&[id]);
            let line = format!(
                "| {label} | {batch} | {:.0} | {secs:.2} | {rss:.0} |",
                n as f64 / secs
            );
            println!("{line}");
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The guide's processor in each language, in pipelines of batch_size 100, single-
/// message and batch mode, beside the same logic as a native loop over the messages
/// (no broker: the floor).
fn languages(rig: &Rig, n: usize, out: &mut String) {
    let n = n.min(LANG_MAX_MESSAGES);
    rig.preload(LANG_SOURCE, n);
    let _ = writeln!(
        out,
        "\n#### The guide's processor in Rust, Python and JavaScript, {n} preloaded messages, batch_size 100\n\n| module | mode | messages/s | seconds | × native | × Rust template |\n|---|---|---:|---:|---:|---:|"
    );
    let settings = support::processor::Settings::default();
    let msg = support::sample_message(support::DEFAULT_VALUE_BYTES);
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(support::native_guide(&msg, &settings));
    }
    let native = n as f64 / started.elapsed().as_secs_f64();
    let line = format!(
        "| native Rust loop (no broker) | – | {native:.0} | {:.2} | 1.00 | – |",
        n as f64 / native
    );
    println!("{line}");
    let _ = writeln!(out, "{line}");
    let installed: Vec<&str> = support::language_templates()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    for (mode, label) in [
        (ProcessingMode::SingleMessage, "single"),
        (ProcessingMode::Batch, "batch"),
    ] {
        let mut rust = 0.0;
        for (module, name) in [
            ("template", "Rust template"),
            ("python", "Python template"),
            ("js", "JavaScript template"),
        ] {
            if module != "template" && !installed.contains(&module) {
                let _ = writeln!(
                    out,
                    "| {name} | {label} | not measured (tool not installed) | | | |"
                );
                continue;
            }
            let mut definition = spec(&format!("lang-{module}-{label}"), module, LANG_SOURCE, 100);
            definition.configuration.processing_mode = mode;
            let secs = rig.drain(definition, n);
            let rate = n as f64 / secs;
            if module == "template" {
                rust = rate;
            }
            let line = format!(
                "| {name} | {label} | {rate:.0} | {secs:.2} | {:.3} | {:.2} |",
                rate / native,
                rate / rust
            );
            println!("{line}");
            let _ = writeln!(out, "{line}");
        }
    }
}

/// A chain of three identity stages against one identity module, batch_size 1000:
/// what each stage costs within one pipeline and one commit per batch.
fn chains(rig: &Rig, n: usize, out: &mut String) {
    let _ = writeln!(
        out,
        "\n#### A chain of identity stages, {n} preloaded messages, batch_size 1000\n\n| stages | messages/s | seconds | × one stage |\n|---:|---:|---:|---:|"
    );
    let mut one = 0.0;
    for stages in [1usize, 3] {
        let name = format!("chain{stages}");
        let mut definition = spec(&name, "identity", SOURCE, 1000);
        if stages > 1 {
            definition.module_name.clear();
            definition.module_version.clear();
            definition.modules = (0..stages)
                .map(|_| rustmq_etl::pipeline::spec::StageSpec {
                    module_name: "identity".into(),
                    module_version: "^1".into(),
                    params: Default::default(),
                })
                .collect();
        }
        let secs = rig.drain(definition, n);
        let rate = n as f64 / secs;
        if stages == 1 {
            one = rate;
        }
        let line = format!("| {stages} | {rate:.0} | {secs:.2} | {:.2} |", rate / one);
        println!("{line}");
        let _ = writeln!(out, "{line}");
    }
}

fn concurrent(rig: &Rig, n: usize, out: &mut String) {
    let _ = writeln!(
        out,
        "\n#### Concurrent identity pipelines on one source, {n} messages each, batch_size 1000\n\n| pipelines | total messages/s | per pipeline | seconds |\n|---:|---:|---:|---:|"
    );
    for k in [1usize, 2, 4] {
        let started = Instant::now();
        let ids: Vec<String> = (0..k)
            .map(|i| rig.start(&format!("c{k}-{i}"), "identity", SOURCE, 1000))
            .collect();
        rig.wait_committed(&ids, n as u64);
        let secs = started.elapsed().as_secs_f64();
        rig.stop_all(&ids);
        let total = (k * n) as f64 / secs;
        let line = format!("| {k} | {total:.0} | {:.0} | {secs:.2} |", total / k as f64);
        println!("{line}");
        let _ = writeln!(out, "{line}");
    }
}

/// Header carrying a message's scheduled send time (ns since the run's start).
const SENT_HEADER: &str = "x-bench-sent-ns";

fn latency(rig: &Rig, rate: u64, duration: Duration, out: &mut String) {
    let source = "latency-in";
    rig.storage
        .create_topic(source, Default::default())
        .expect("topic");
    let id = rig.start("lat", "identity", source, 1000);
    let dest = "lat-out";
    let total = rate * duration.as_secs();
    let epoch = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let consumer = {
        let storage = rig.storage.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut latencies = Vec::with_capacity(total as usize);
            let mut next = 0u64;
            while (latencies.len() as u64) < total && !done.load(Ordering::Relaxed) {
                if !storage.wait_for_blocking(dest, next, Duration::from_millis(100)) {
                    continue;
                }
                let batch = storage.read(dest, next, 10_000, usize::MAX).expect("read");
                let now = epoch.elapsed().as_nanos() as u64;
                for (_, m) in &batch.messages {
                    if let Some(sent) = m.header(SENT_HEADER).and_then(|s| s.parse::<u64>().ok()) {
                        latencies.push(now.saturating_sub(sent));
                    }
                }
                next = batch.next_offset;
            }
            latencies
        })
    };
    // Producer: every message has a scheduled time; whatever is due is sent at once,
    // so a slow append delays (and is charged to) the messages behind it.
    let template = support::sample_message(support::DEFAULT_VALUE_BYTES);
    let interval_ns = 1_000_000_000 / rate;
    let mut sent = 0u64;
    while sent < total {
        let now = epoch.elapsed().as_nanos() as u64;
        let due = (now / interval_ns + 1).min(total);
        if due > sent {
            let batch: Vec<Message> = (sent..due)
                .map(|i| {
                    let mut m = template.clone();
                    m.headers
                        .push((SENT_HEADER.into(), (i * interval_ns).to_string()));
                    m
                })
                .collect();
            rig.storage.append_blocking(source, batch).expect("produce");
            sent = due;
        } else {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while rig.storage.end_offset(dest).unwrap_or(0) < total && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    done.store(true, Ordering::Relaxed);
    let mut lat = consumer.join().expect("consumer");
    rig.stop_all(&[id]);
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(f64::NAN, |ns| *ns as f64 / 1e6)
    };
    let line = format!(
        "| {rate} | {} | {} | {:.2} | {:.2} | {:.2} |",
        duration.as_secs(),
        lat.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    let _ = writeln!(
        out,
        "\n#### Produce → visible in destination, identity pipeline (batch_size 1000)\n\n| offered msg/s | seconds | messages | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|---:|\n{line}"
    );
    println!("{line}");
}

fn http_produce(seconds: u64, out: &mut String) {
    if !support::use_release_broker() {
        let _ = writeln!(
            out,
            "\n(HTTP produce not measured: build `rustmq-broker` with `--release` first)"
        );
        return;
    }
    let broker = BrokerProcess::start("");
    let url = format!("{}/api/v1/topics/http-bench/messages", broker.data_url);
    let one = serde_json::json!({
        "key": "sensor-temp001",
        "value": String::from_utf8(support::sample_message(200).value).expect("utf-8"),
        "headers": {"content-type": "application/json", "source": "sensor-network", "client_ip": "192.168.1.7"}
    });
    let _ = writeln!(
        out,
        "\n#### HTTP produce to `rustmq-broker --release` (durable: each request answers after its fsync)\n\n| mode | clients | messages/request | messages/s | requests/s |\n|---|---:|---:|---:|---:|"
    );
    for (mode, clients, per_request) in [
        ("single", 1usize, 1usize),
        ("single", 8, 1),
        ("batch", 1, 100),
        ("batch", 4, 1000),
    ] {
        let body = if per_request == 1 {
            one.to_string()
        } else {
            serde_json::json!({ "messages": vec![one.clone(); per_request] }).to_string()
        };
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let url = url.clone();
                let body = body.clone();
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::new();
                    let mut requests = 0u64;
                    while Instant::now() < deadline {
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(body.clone())
                            .send()
                            .expect("produce");
                        assert!(
                            resp.status().is_success(),
                            "produce failed: {}",
                            resp.status()
                        );
                        requests += 1;
                    }
                    requests
                })
            })
            .collect();
        let requests: u64 = handles.into_iter().map(|h| h.join().expect("client")).sum();
        let secs = started.elapsed().as_secs_f64();
        let line = format!(
            "| {mode} | {clients} | {per_request} | {:.0} | {:.0} |",
            (requests * per_request as u64) as f64 / secs,
            requests as f64 / secs
        );
        println!("{line}");
        let _ = writeln!(out, "{line}");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported here.
    let quick = std::env::var_os("RUSTMQ_BENCH_QUICK").is_some();
    let n: usize = std::env::var("RUSTMQ_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 20_000 } else { 1_000_000 });
    let mut out = String::from("\n### End to end\n");
    let rig = Rig::new();
    let preload = rig.preload(SOURCE, n);
    let line = format!(
        "\nPreloading {n} messages (append_blocking, {PRELOAD_CHUNK} per call): {:.1} s = {:.0} messages/s",
        preload.as_secs_f64(),
        n as f64 / preload.as_secs_f64()
    );
    println!("{line}");
    out.push_str(&line);
    out.push('\n');
    match std::env::var("RUSTMQ_BENCH_ONLY").as_deref() {
        Ok("chain") => {
            chains(&rig, n, &mut out);
            print!("{out}");
            return;
        }
        Ok("languages") => {
            languages(&rig, n, &mut out);
            print!("{out}");
            return;
        }
        _ => {}
    }
    throughput(&rig, n, &mut out);
    if std::env::var_os("RUSTMQ_BENCH_ONLY").is_some() {
        print!("{out}");
        return;
    }
    chains(&rig, n, &mut out);
    languages(&rig, n, &mut out);
    concurrent(&rig, n.min(if quick { n } else { 250_000 }), &mut out);
    latency(
        &rig,
        10_000,
        Duration::from_secs(if quick { 1 } else { 5 }),
        &mut out,
    );
    drop(rig);
    http_produce(if quick { 1 } else { 3 }, &mut out);
    print!("{out}");
    let dir = support::criterion_dir();
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("summary.md");
    let mut previous = std::fs::read_to_string(&path).unwrap_or_default();
    previous.push_str(&out);
    let _ = std::fs::write(path, previous);
}
