//! What the benchmarks share: the benchmark message, the raw-wasmtime identity floor,
//! the criterion settings for a shared machine, and the ratio summary.

#![allow(dead_code)] // each bench binary uses a different part

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use rustmq_etl::message::Message;
use rustmq_etl::runtime::{CompiledModule, ProcessContext, Runtime, RuntimeLimits, Transform};

/// The benchmark message's value size (the issue's "200-byte JSON value").
pub const DEFAULT_VALUE_BYTES: usize = 200;

/// Criterion settings: short runs, because the benchmark machine is shared and small.
pub fn criterion() -> Criterion {
    Criterion::default()
        .output_directory(&criterion_dir())
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args()
}

/// Where criterion writes its results: `<target>/criterion`, found from this binary's
/// path (`<target>/release/deps/<bench>`), so the summary can read them back.
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    exe.ancestors()
        .nth(3)
        .map(|target| target.join("criterion"))
        .unwrap_or_else(|| PathBuf::from("target/criterion"))
}

/// A sensor reading: JSON value of exactly `value_bytes` (at least 64), a key and three
/// headers, the guide's kind of message.
pub fn sample_message(value_bytes: usize) -> Message {
    let head = r#"{"sensor_id":"temp001","temperature_celsius":21.5,"pad":""#;
    let tail = r#""}"#;
    let pad = value_bytes.saturating_sub(head.len() + tail.len());
    let value = format!("{head}{}{tail}", "x".repeat(pad));
    Message {
        key: Some("sensor-temp001".into()),
        value: value.into_bytes(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("source".into(), "sensor-network".into()),
            ("client_ip".into(), "192.168.1.7".into()),
        ],
        timestamp: 1_700_000_000_000,
    }
}

/// Points the test-support library at the release `rustmq-broker` built beside this
/// bench binary (unless `RUSTMQ_BROKER_BIN` names one); false when there is none.
pub fn use_release_broker() -> bool {
    if std::env::var_os("RUSTMQ_BROKER_BIN").is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the bench binary's path");
    let bin = exe
        .ancestors()
        .nth(2)
        .expect("<target>/release")
        .join("rustmq-broker");
    if !bin.is_file() {
        return false;
    }
    std::env::set_var("RUSTMQ_BROKER_BIN", bin);
    true
}

/// The context passed with every benchmark call.
pub fn sample_context() -> ProcessContext {
    ProcessContext {
        pipeline_id: "pipeline-1".into(),
        source_topic: "sensor-data".into(),
        source_offset: 42,
        attempt: 1,
    }
}

/// The runtime every benchmark uses: the broker's defaults (pooling allocator).
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeLimits::default()).expect("runtime")
}

/// Compiles the module at `path` (a `guests::*` constant).
pub fn compile(runtime: &Runtime, path: &str) -> CompiledModule {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    runtime
        .compile(&bytes)
        .unwrap_or_else(|e| panic!("compiling {path}: {e}"))
}

/// The Python and JavaScript templates, each with a name, built from source (see
/// `rustmq_etl_tests::languages`); a language whose tool is not installed is left out
/// (its rows then read "not measured").
pub fn language_templates() -> Vec<(&'static str, Vec<u8>)> {
    use rustmq_etl_tests::languages::{template, Lang};
    [("python", Lang::Python), ("js", Lang::Js)]
        .into_iter()
        .filter_map(|(name, lang)| {
            let path = template(lang)?;
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path:?}: {e}"));
            Some((name, bytes))
        })
        .collect()
}

/// The deployment guide's module the legacy benches run: the test fixture, or the build
/// at `RUSTMQ_BENCH_GUIDE_MODULE` (say, the same source built with the guide's own
/// `cargo build --release`, opt-level 3, where the fixture's workspace builds with `s`).
pub fn guide_module() -> String {
    std::env::var("RUSTMQ_BENCH_GUIDE_MODULE")
        .unwrap_or_else(|_| rustmq_etl_tests::guests::GUIDE_MODULE.to_string())
}

/// A live transform of `module` for pipeline `pipeline-1`, no parameters.
pub fn transform(module: &CompiledModule) -> Box<dyn Transform> {
    module
        .instantiate("bench-v1.0.0", "pipeline-1", &BTreeMap::new())
        .expect("instantiate")
}

/// A core module whose `copy` export copies `len` bytes from `src` to [`RAW_OUT`]: the
/// least a wasm transform can do with a message.
pub const RAW_IDENTITY_WAT: &str = r#"
(module
  (memory (export "memory") 4)
  (func (export "copy") (param $src i32) (param $len i32) (result i32)
    (memory.copy (i32.const 131072) (local.get $src) (local.get $len))
    (i32.const 131072)))
"#;

/// Where [`RAW_IDENTITY_WAT`] writes its copy.
pub const RAW_OUT: usize = 131072;

/// The runtime's floor: one plain core-wasm call that copies the message's bytes in
/// guest memory, with the host writing the fields in and building an owned message from
/// the copy, as any transform must.
pub struct RawIdentity {
    store: wasmtime::Store<()>,
    memory: wasmtime::Memory,
    copy: wasmtime::TypedFunc<(i32, i32), i32>,
}

impl RawIdentity {
    pub fn new(engine: &wasmtime::Engine) -> RawIdentity {
        let wasm = wat::parse_str(RAW_IDENTITY_WAT).expect("raw module text");
        let module = wasmtime::Module::new(engine, wasm).expect("raw module");
        let mut store = wasmtime::Store::new(engine, ());
        // The engine interrupts on epochs; this store never runs long.
        store.set_epoch_deadline(1 << 40);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).expect("raw instance");
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        let copy = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, "copy")
            .expect("copy");
        RawIdentity {
            store,
            memory,
            copy,
        }
    }

    /// Copies `m` through the guest and back.
    pub fn process(&mut self, m: &Message) -> Vec<Message> {
        let mut lens = [0usize; 16];
        let mut n = 0;
        let mut at = 0usize;
        {
            let mem = self.memory.data_mut(&mut self.store);
            let mut put = |bytes: &[u8]| {
                mem[at..at + bytes.len()].copy_from_slice(bytes);
                at += bytes.len();
                lens[n] = bytes.len();
                n += 1;
            };
            put(m.key.as_deref().unwrap_or("").as_bytes());
            put(&m.value);
            for (k, v) in m.headers.iter().take(7) {
                put(k.as_bytes());
                put(v.as_bytes());
            }
        }
        let out = self
            .copy
            .call(&mut self.store, (0, at as i32))
            .expect("copy call") as usize;
        let mem = self.memory.data(&self.store);
        let mut at = out;
        let mut take = |i: usize| {
            let bytes = &mem[at..at + lens[i]];
            at += lens[i];
            bytes
        };
        let string = |b: &[u8]| String::from_utf8(b.to_vec()).expect("utf-8");
        let key = Some(string(take(0)));
        let value = take(1).to_vec();
        let headers = (0..(n - 2) / 2)
            .map(|h| (string(take(2 + 2 * h)), string(take(3 + 2 * h))))
            .collect();
        vec![Message {
            key,
            value,
            headers,
            timestamp: m.timestamp,
        }]
    }
}

/// Reads criterion's mean estimate (ns) for `group/id` from this run's results.
pub fn mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(id)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Prints a markdown table of `group`'s results with each one's ratio to `baseline`,
/// and appends it to `<criterion>/summary.md`.
pub fn summarize(title: &str, group: &str, ids: &[&str], baseline: &str) {
    use std::fmt::Write as _;
    let base = mean_ns(group, baseline);
    let mut out =
        format!("\n#### {title} (`{group}`)\n\n| case | ns/op | × {baseline} |\n|---|---:|---:|\n");
    for id in ids {
        match (mean_ns(group, id), base) {
            (Some(ns), Some(b)) => {
                let ratio = ns / b;
                let ratio = if ratio < 0.1 {
                    format!("{ratio:.5}")
                } else {
                    format!("{ratio:.2}")
                };
                let _ = writeln!(out, "| {id} | {} | {ratio} |", fmt_ns(ns));
            }
            (Some(ns), None) => {
                let _ = writeln!(out, "| {id} | {} | – |", fmt_ns(ns));
            }
            _ => {
                let _ = writeln!(out, "| {id} | not measured | – |");
            }
        }
    }
    print!("{out}");
    let path = criterion_dir().join("summary.md");
    let _ = std::fs::create_dir_all(criterion_dir());
    let mut previous = std::fs::read_to_string(&path).unwrap_or_default();
    previous.push_str(&out);
    let _ = std::fs::write(path, previous);
}

pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// The guide's processor as plain Rust: the template's logic, compiled natively.
#[path = "../../../guest-template/src/processor.rs"]
#[allow(dead_code, unused_imports)]
pub mod processor;

/// The template's logic natively on one message, as the module runs it (at a fixed
/// clock).
pub fn native_guide(m: &Message, settings: &processor::Settings) -> Vec<Message> {
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
