//! Per-message transform cost, one run, same message and same logic on every path:
//! native Rust (the floor) · a raw wasmtime core call doing the same copy (the
//! runtime's floor) · our component path · our legacy JSON path, with its own floors
//! (the guide's module compiled natively over the same JSON, and the same wasm on bare
//! wasmtime without the host's JSON work). Then the cost against message size. Ratios
//! are printed at the end (see docs/performance.md). The guide's transform also runs
//! as the Python and JavaScript templates when their tools are installed.

mod support;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use rustmq_etl::message::Message;
use rustmq_etl::runtime::{RuntimeLimits, MAX_OUTPUT_HEADERS};
use rustmq_etl_legacy::{LegacyInput, LegacyOutput};
use rustmq_etl_tests::guests;
use support::{
    native_guide, processor, sample_context, sample_message, RawIdentity, DEFAULT_VALUE_BYTES,
};

#[path = "support/legacy.rs"]
mod legacy;

fn native_identity(m: &Message) -> Vec<Message> {
    vec![m.clone()]
}

/// The legacy path without wasm: the adapter's JSON encoding of `m` into `json`, the
/// guide's code compiled natively on it, and the adapter's reader on the answer (at
/// most `max_output_messages` messages, as the runtime allows).
fn native_guide_json(m: &Message, json: &mut Vec<u8>, max_output_messages: usize) -> Vec<Message> {
    let input = LegacyInput {
        key: m.key.as_deref(),
        value: &m.value,
        headers: &m.headers,
        timestamp: m.timestamp,
    };
    input.encode(json);
    let answer = legacy::guide::process_json(json);
    let out = LegacyOutput::from_json(
        &answer,
        m.timestamp,
        max_output_messages,
        MAX_OUTPUT_HEADERS,
    )
    .expect("answer");
    out.messages.into_iter().map(Message::from).collect()
}

/// Checks that the native baseline computes what the guest does: the same value (as
/// JSON: the guest's object keys come out sorted, the native build's in insertion
/// order) and the same headers, `processed_at` aside (the clock's second).
fn assert_same_answer(guest: &[Message], native: &[Message]) {
    let comparable = |m: &Message| {
        let value: serde_json::Value = serde_json::from_slice(&m.value).expect("JSON value");
        let mut headers: Vec<_> = m
            .headers
            .iter()
            .filter(|(k, _)| k != "processed_at")
            .collect();
        headers.sort();
        (m.key.clone(), value, format!("{headers:?}"), m.timestamp)
    };
    assert_eq!(guest.len(), native.len(), "message count");
    for (g, n) in guest.iter().zip(native) {
        assert_eq!(
            comparable(g),
            comparable(n),
            "native baseline differs from the guest"
        );
    }
}

fn per_message(c: &mut Criterion) {
    let runtime = support::runtime();
    let msg = sample_message(DEFAULT_VALUE_BYTES);
    let ctx = sample_context();

    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(1));
    g.bench_function("native", |b| b.iter(|| native_identity(black_box(&msg))));
    let mut raw = RawIdentity::new(runtime.engine());
    g.bench_function("raw_wasmtime", |b| b.iter(|| raw.process(black_box(&msg))));
    let identity = support::compile(&runtime, guests::IDENTITY);
    let mut t = support::transform(&identity);
    g.bench_function("component", |b| {
        b.iter(|| t.process(black_box(&msg), &ctx).expect("process"))
    });
    g.finish();

    let mut g = c.benchmark_group("guide_json");
    g.throughput(Throughput::Elements(1));
    let settings = processor::Settings::default();
    g.bench_function("native", |b| {
        b.iter(|| native_guide(black_box(&msg), &settings))
    });
    let mut json = Vec::new();
    let max_output_messages = RuntimeLimits::default().max_output_messages;
    g.bench_function("native_json", |b| {
        b.iter(|| native_guide_json(black_box(&msg), &mut json, max_output_messages))
    });
    let template = support::compile(&runtime, guests::GUEST_TEMPLATE);
    let mut t = support::transform(&template);
    g.bench_function("component", |b| {
        b.iter(|| t.process(black_box(&msg), &ctx).expect("process"))
    });
    let native = native_guide(&msg, &settings);
    for (lang, bytes) in support::language_templates() {
        let compiled = runtime.compile(&bytes).expect("compile");
        let mut t = support::transform(&compiled);
        assert_same_answer(&t.process(&msg, &ctx).expect("process").messages, &native);
        g.bench_function(lang, |b| {
            b.iter(|| t.process(black_box(&msg), &ctx).expect("process"))
        });
    }
    let guide = support::guide_module();
    let legacy = support::compile(&runtime, &guide);
    let mut t = support::transform(&legacy);
    assert_same_answer(
        &t.process(&msg, &ctx).expect("process").messages,
        &native_guide_json(&msg, &mut json, max_output_messages),
    );
    g.bench_function("legacy", |b| {
        b.iter(|| t.process(black_box(&msg), &ctx).expect("process"))
    });
    let mut raw = legacy::RawGuide::new(runtime.engine(), &guide);
    LegacyInput {
        key: msg.key.as_deref(),
        value: &msg.value,
        headers: &msg.headers,
        timestamp: msg.timestamp,
    }
    .encode(&mut json);
    g.bench_function("legacy_raw_wasmtime", |b| {
        b.iter(|| raw.process(black_box(&json)))
    });
    g.finish();
}

fn sizes(c: &mut Criterion) {
    let runtime = support::runtime();
    let ctx = sample_context();
    let identity = support::compile(&runtime, guests::IDENTITY);
    let mut component = support::transform(&identity);
    let mut raw = RawIdentity::new(runtime.engine());
    let mut g = c.benchmark_group("identity_size");
    for size in [100usize, 1024, 65536] {
        let msg = sample_message(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("native", size), &msg, |b, m| {
            b.iter(|| native_identity(black_box(m)))
        });
        g.bench_with_input(BenchmarkId::new("raw_wasmtime", size), &msg, |b, m| {
            b.iter(|| raw.process(black_box(m)))
        });
        g.bench_with_input(BenchmarkId::new("component", size), &msg, |b, m| {
            b.iter(|| component.process(black_box(m), &ctx).expect("process"))
        });
    }
    g.finish();
}

/// Header counts of the legacy header rows: up to the default limit
/// (`[server] max_headers_per_message`).
const HEADER_COUNTS: [usize; 3] = [256, 512, 1024];

/// The guide's legacy module on a message with many headers, each name distinct:
/// the host encodes each into the JSON input (keeping the last of each name) and
/// reads each back from the answer, so the time must grow linearly with the count.
fn legacy_headers(c: &mut Criterion) {
    let runtime = support::runtime();
    let ctx = sample_context();
    let guide = support::guide_module();
    let legacy = support::compile(&runtime, &guide);
    let mut t = support::transform(&legacy);
    let mut g = c.benchmark_group("legacy_headers");
    for n in HEADER_COUNTS {
        let mut msg = sample_message(DEFAULT_VALUE_BYTES);
        msg.headers = (0..n)
            .map(|i| (format!("x-header-{i:04}"), format!("value-{i}")))
            .collect();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("legacy", n), &msg, |b, m| {
            b.iter(|| t.process(black_box(m), &ctx).expect("process"))
        });
    }
    g.finish();
}

fn main() {
    let mut c = support::criterion();
    per_message(&mut c);
    sizes(&mut c);
    legacy_headers(&mut c);
    c.final_summary();
    support::summarize(
        "Identity, 200-byte value, key, 3 headers",
        "identity",
        &["native", "raw_wasmtime", "component"],
        "native",
    );
    support::summarize(
        "The guide's JSON transform, same message",
        "guide_json",
        &[
            "native",
            "native_json",
            "component",
            "python",
            "js",
            "legacy_raw_wasmtime",
            "legacy",
        ],
        "native",
    );
    support::summarize(
        "The guide's module over JSON: native, bare wasmtime, ours",
        "guide_json",
        &["native_json", "legacy_raw_wasmtime", "legacy"],
        "native_json",
    );
    let rows: Vec<String> = HEADER_COUNTS
        .iter()
        .map(|n| format!("legacy/{n}"))
        .collect();
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    support::summarize(
        "The guide's legacy module, 256 / 512 / 1024 headers (linear: 2x headers, at most 2.5x time)",
        "legacy_headers",
        &rows,
        rows[0],
    );
    for size in ["100", "1024", "65536"] {
        support::summarize(
            &format!("Identity, {size}-byte value"),
            "identity_size",
            &[
                &format!("native/{size}"),
                &format!("raw_wasmtime/{size}"),
                &format!("component/{size}"),
            ],
            &format!("native/{size}"),
        );
    }
}
