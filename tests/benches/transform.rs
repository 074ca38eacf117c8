//! Per-message transform cost, one run, same message and same logic on every path:
//! native Rust (the floor) · a raw wasmtime core call doing the same copy (the
//! runtime's floor) · our component path · our legacy JSON path. Then the cost against
//! message size. Ratios to native are printed at the end (see docs/performance.md).

mod support;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use rustmq_etl::message::Message;
use rustmq_etl_tests::guests;
use support::{sample_context, sample_message, RawIdentity, DEFAULT_VALUE_BYTES};

/// The guide's processor as plain Rust: the template's logic, compiled natively.
#[path = "../../guest-template/src/processor.rs"]
#[allow(dead_code, unused_imports)]
mod processor;

fn native_identity(m: &Message) -> Vec<Message> {
    vec![m.clone()]
}

fn native_guide(m: &Message, settings: &processor::Settings) -> Vec<Message> {
    let input = processor::Message {
        key: m.key.clone(),
        value: m.value.clone(),
        headers: m.headers.clone(),
        timestamp: m.timestamp,
    };
    let out = processor::transform_message(input, settings, 1_700_000_000).expect("transform");
    out.transformed_messages
        .into_iter()
        .map(|m| Message {
            key: m.key,
            value: m.value,
            headers: m.headers,
            timestamp: m.timestamp,
        })
        .collect()
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
    let template = support::compile(&runtime, guests::GUEST_TEMPLATE);
    let mut t = support::transform(&template);
    g.bench_function("component", |b| {
        b.iter(|| t.process(black_box(&msg), &ctx).expect("process"))
    });
    let legacy = support::compile(&runtime, guests::GUIDE_MODULE);
    let mut t = support::transform(&legacy);
    g.bench_function("legacy", |b| {
        b.iter(|| t.process(black_box(&msg), &ctx).expect("process"))
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

fn main() {
    let mut c = support::criterion();
    per_message(&mut c);
    sizes(&mut c);
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
        &["native", "component", "legacy"],
        "native",
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
