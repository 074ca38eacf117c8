//! Per-message cost through Extism next to our component path, same message, same
//! logic, same run. Usage (see README.md):
//!
//! ```text
//! rustmq-etl-peers <extism-guest.wasm> <identity component.wasm> <template component.wasm>
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use extism::{Manifest, Plugin, Wasm};
use rustmq_etl::message::Message;
use rustmq_etl::runtime::{ProcessContext, Runtime, RuntimeLimits};
use serde::{Deserialize, Serialize};

/// How long each case runs.
const RUN: Duration = Duration::from_secs(2);

#[derive(Serialize, Deserialize)]
struct Wire {
    key: Option<String>,
    value: String,
    headers: Vec<(String, String)>,
    timestamp: i64,
}

/// The benchmarks' message: 200-byte JSON value, key, three headers.
fn sample() -> Message {
    let head = r#"{"sensor_id":"temp001","temperature_celsius":21.5,"pad":""#;
    let pad = 200 - head.len() - 2;
    Message {
        key: Some("sensor-temp001".into()),
        value: format!("{head}{}\"}}", "x".repeat(pad)).into_bytes(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("source".into(), "sensor-network".into()),
            ("client_ip".into(), "192.168.1.7".into()),
        ],
        timestamp: 1_700_000_000_000,
    }
}

fn time(mut f: impl FnMut()) -> f64 {
    for _ in 0..1000 {
        f();
    }
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < RUN {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    started.elapsed().as_nanos() as f64 / n as f64
}

fn extism_call(plugin: &mut Plugin, name: &str, m: &Message) -> Vec<Message> {
    let wire = Wire {
        key: m.key.clone(),
        value: String::from_utf8_lossy(&m.value).into_owned(),
        headers: m.headers.clone(),
        timestamp: m.timestamp,
    };
    let input = serde_json::to_vec(&wire).expect("encode");
    let out: Vec<u8> = plugin.call(name, input).expect("extism call");
    let out: Vec<Wire> = serde_json::from_slice(&out).expect("decode");
    out.into_iter()
        .map(|w| Message {
            key: w.key,
            value: w.value.into_bytes(),
            headers: w.headers,
            timestamp: w.timestamp,
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, extism_wasm, identity, template] = &args[..] else {
        eprintln!("usage: rustmq-etl-peers <extism-guest.wasm> <identity.wasm> <template.wasm>");
        std::process::exit(2);
    };
    let msg = sample();
    let ctx = ProcessContext {
        pipeline_id: "pipeline-1".into(),
        source_topic: "sensor-data".into(),
        source_offset: 42,
        attempt: 1,
    };
    let manifest = Manifest::new([Wasm::file(extism_wasm)]);
    let mut plugin = Plugin::new(&manifest, [], true).expect("extism plugin");
    let runtime = Runtime::new(RuntimeLimits::default()).expect("runtime");
    let load = |path: &str| {
        let bytes = std::fs::read(path).expect("module");
        runtime
            .compile(&bytes)
            .expect("compile")
            .instantiate("bench-v1.0.0", "pipeline-1", &BTreeMap::new())
            .expect("instantiate")
    };
    let mut ours_identity = load(identity);
    let mut ours_template = load(template);

    let native = time(|| {
        black_box(vec![black_box(&msg).clone()]);
    });
    let extism_identity = time(|| {
        black_box(extism_call(&mut plugin, "identity", black_box(&msg)));
    });
    let component_identity = time(|| {
        black_box(ours_identity.process(black_box(&msg), &ctx).expect("process"));
    });
    let extism_guide = time(|| {
        black_box(extism_call(&mut plugin, "guide", black_box(&msg)));
    });
    let component_guide = time(|| {
        black_box(ours_template.process(black_box(&msg), &ctx).expect("process"));
    });
    println!("| case | ns/message | × native identity |\n|---|---:|---:|");
    for (name, ns) in [
        ("native identity (clone)", native),
        ("our component, identity", component_identity),
        ("Extism, identity (JSON both ways)", extism_identity),
        ("our component, guide JSON", component_guide),
        ("Extism, guide JSON", extism_guide),
    ] {
        println!("| {name} | {ns:.0} | {:.2} |", ns / native);
    }
}
