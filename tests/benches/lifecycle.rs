//! Instance lifecycle: compiling a ~1 MiB module, loading it back from the compiled
//! cache, a fresh instance with the runtime's pooling allocator vs wasmtime's default
//! pool and on-demand allocation, ours made ready (new store + instantiate + `init`)
//! and recycled (the previous one torn down too), the same for the Python and
//! JavaScript templates (CPython and SpiderMonkey inside, pre-initialised heaps mapped
//! copy-on-write from the compiled module's memory image), and a broker restart with 20
//! cached modules made ready.

mod support;

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::runtime::{ModuleKind, Runtime};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::guests;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Filler functions in the generated module; with [`FILLER_OPS`] it comes to ~1 MiB.
const FILLER_FUNCS: usize = 1000;
/// `i32.const`/`i32.xor` pairs per filler function.
const FILLER_OPS: usize = 200;

/// A legacy-ABI core module of about 1 MiB: the ABI exports plus straight-line filler
/// functions (reachable through a table so nothing can be dropped as dead).
fn one_mib_module() -> Vec<u8> {
    let mut wat = String::from(
        r#"(module
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0))
"#,
    );
    for f in 0..FILLER_FUNCS {
        wat.push_str(&format!(
            "  (func $f{f} (param i32) (result i32) local.get 0\n"
        ));
        for op in 0..FILLER_OPS {
            wat.push_str(&format!(
                "    i32.const {} i32.xor\n",
                (f * 7919 + op * 104_729) as i32
            ));
        }
        wat.push_str("  )\n");
    }
    wat.push_str(&format!(
        "  (table {FILLER_FUNCS} funcref)\n  (elem (i32.const 0)"
    ));
    for f in 0..FILLER_FUNCS {
        wat.push_str(&format!(" $f{f}"));
    }
    wat.push_str("))\n");
    wat::parse_str(&wat).expect("generated module")
}

fn compile_and_load(c: &mut Criterion) {
    let runtime = support::runtime();
    let big = one_mib_module();
    println!("generated module: {} bytes", big.len());
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(3));
    g.bench_function("compile_1mib", |b| {
        b.iter(|| runtime.compile(black_box(&big)).expect("compile"))
    });
    let compiled = runtime.compile(&big).expect("compile");
    let cached = runtime.serialize(&compiled).expect("serialize");
    g.bench_function("deserialize_1mib", |b| {
        // SAFETY: the bytes were just serialized by this runtime.
        b.iter(|| {
            unsafe { runtime.deserialize(ModuleKind::LegacyCore, black_box(&cached)) }
                .expect("load")
        })
    });
    let identity = std::fs::read(guests::IDENTITY).expect("identity");
    let compiled = runtime.compile(&identity).expect("compile");
    let cached = runtime.serialize(&compiled).expect("serialize");
    g.bench_function("deserialize_identity_component", |b| {
        // SAFETY: as above.
        b.iter(|| {
            unsafe { runtime.deserialize(ModuleKind::Component, black_box(&cached)) }.expect("load")
        })
    });
    for (lang, bytes) in support::language_templates() {
        let started = std::time::Instant::now();
        let compiled = runtime.compile(&bytes).expect("compile");
        println!(
            "{lang} template: {} bytes, compiled once in {:.2} s",
            bytes.len(),
            started.elapsed().as_secs_f64()
        );
        let cached = runtime.serialize(&compiled).expect("serialize");
        g.bench_function(format!("deserialize_{lang}_template"), |b| {
            // SAFETY: as above.
            b.iter(|| {
                unsafe { runtime.deserialize(ModuleKind::Component, black_box(&cached)) }
                    .expect("load")
            })
        });
    }
    g.finish();
}

/// Host state for the raw wasmtime instantiation comparison.
struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// An engine with wasmtime's default settings (component model, epochs) and the given
/// allocator: what a host gets without tuning the pool.
fn default_engine(pooling: bool) -> Engine {
    let mut config = Config::new();
    config.wasm_component_model(true).epoch_interruption(true);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(16)
            .total_core_instances(160)
            .total_memories(32)
            .total_tables(64)
            .max_memory_size(64 << 20);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    } else {
        config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    }
    Engine::new(&config).expect("engine")
}

/// The identity component's instance template on `engine`, its imports linked to WASI
/// and to no-op `rustmq:etl/host` functions.
fn identity_pre(engine: &Engine) -> wasmtime::component::InstancePre<RawState> {
    let component = Component::from_file(engine, guests::IDENTITY).expect("component");
    let mut linker = Linker::<RawState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).expect("wasi");
    let mut host = linker.instance("rustmq:etl/host@1.0.0").expect("host");
    host.func_wrap("log", |_s, (_l, _m): (u32, String)| Ok(()))
        .expect("log");
    host.func_wrap("get-param", |_s, (_n,): (String,)| Ok((None::<String>,)))
        .expect("get-param");
    linker.instantiate_pre(&component).expect("pre")
}

/// A new store with WASI and an instance in it: what "a fresh instance" costs.
fn raw_instance(
    engine: &Engine,
    pre: &wasmtime::component::InstancePre<RawState>,
) -> Store<RawState> {
    let mut store = Store::new(
        engine,
        RawState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        },
    );
    store.set_epoch_deadline(1 << 40);
    pre.instantiate(&mut store).expect("instantiate");
    store
}

/// Times `make` alone: what it returns is dropped (its instance torn down and its
/// pool slot reset) outside the measurement, one at a time so the pool never fills.
fn time_creation<T>(iters: u64, mut make: impl FnMut() -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = std::time::Instant::now();
        let made = black_box(make());
        total += started.elapsed();
        drop(made);
    }
    total
}

fn instantiate(c: &mut Criterion) {
    let mut g = c.benchmark_group("instantiate");
    let runtime = support::runtime();
    // Raw wasmtime on the runtime's own engine (its tuned pool), on a default pool, and
    // with on-demand allocation: the same component, WASI linked, nothing else.
    for (id, engine) in [
        ("raw_pooling", runtime.engine().clone()),
        ("raw_pooling_wasmtime_defaults", default_engine(true)),
        ("raw_on_demand", default_engine(false)),
    ] {
        let pre = identity_pre(&engine);
        g.bench_function(id, |b| {
            b.iter_custom(|iters| time_creation(iters, || raw_instance(&engine, &pre)))
        });
    }
    let identity = support::compile(&runtime, guests::IDENTITY);
    g.bench_function("ready_identity_component", |b| {
        b.iter_custom(|iters| time_creation(iters, || support::transform(&identity)))
    });
    // A recycle: the previous instance torn down, a new one made ready.
    g.bench_function("recycle_identity_component", |b| {
        b.iter(|| support::transform(&identity))
    });
    let template = support::compile(&runtime, guests::GUEST_TEMPLATE);
    g.bench_function("recycle_template_component", |b| {
        b.iter(|| support::transform(&template))
    });
    let legacy = support::compile(&runtime, &support::guide_module());
    g.bench_function("recycle_guide_legacy", |b| {
        b.iter(|| support::transform(&legacy))
    });
    for (lang, bytes) in support::language_templates() {
        let compiled = runtime.compile(&bytes).expect("compile");
        g.bench_function(format!("ready_{lang}_template"), |b| {
            b.iter_custom(|iters| time_creation(iters, || support::transform(&compiled)))
        });
        g.bench_function(format!("recycle_{lang}_template"), |b| {
            b.iter(|| support::transform(&compiled))
        });
    }
    g.finish();
}

/// How many modules the restart benchmark loads.
const CACHED_MODULES: usize = 20;

/// `bytes` with a custom section appended, so each copy is a distinct module.
fn distinct(bytes: &[u8], n: usize) -> Vec<u8> {
    let name = b"bench-copy";
    let payload = n.to_string();
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(payload.as_bytes());
    out
}

fn restart(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let identity = std::fs::read(guests::IDENTITY).expect("identity");
    {
        let storage =
            Storage::open(&dir.path().join("data"), StorageOptions::default()).expect("storage");
        let modules = ModuleStore::open(
            &dir.path().join("wasm"),
            storage.clone(),
            support::runtime(),
        )
        .expect("modules");
        for n in 0..CACHED_MODULES {
            modules
                .upload(&format!("m{n}"), "1.0.0", &distinct(&identity, n))
                .expect("upload");
        }
        drop(modules);
        storage.close();
    }
    let mut g = c.benchmark_group("restart");
    g.sample_size(10);
    g.bench_function("open_and_warm_20_cached", |b| {
        b.iter(|| {
            let storage = Storage::open(&dir.path().join("data"), StorageOptions::default())
                .expect("storage");
            let runtime = Runtime::new(Default::default()).expect("runtime");
            let modules = ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime)
                .expect("modules");
            let ready = modules.warm().expect("warm");
            assert_eq!(ready, CACHED_MODULES);
            assert_eq!(
                modules.stats().compilations,
                0,
                "every module must come from the cache"
            );
            drop(modules);
            storage.close();
        })
    });
    g.finish();
}

fn main() {
    let mut c = support::criterion();
    compile_and_load(&mut c);
    instantiate(&mut c);
    restart(&mut c);
    c.final_summary();
    support::summarize(
        "Compile and cached load",
        "load",
        &[
            "compile_1mib",
            "deserialize_1mib",
            "deserialize_identity_component",
            "deserialize_python_template",
            "deserialize_js_template",
        ],
        "compile_1mib",
    );
    support::summarize(
        "Fresh instances (identity component)",
        "instantiate",
        &[
            "raw_pooling",
            "raw_pooling_wasmtime_defaults",
            "raw_on_demand",
            "ready_identity_component",
            "recycle_identity_component",
            "recycle_template_component",
            "recycle_guide_legacy",
        ],
        "raw_pooling",
    );
    support::summarize(
        "Fresh instances and recycles of the guide's processor in Rust, Python and JavaScript",
        "instantiate",
        &[
            "recycle_template_component",
            "ready_python_template",
            "recycle_python_template",
            "ready_js_template",
            "recycle_js_template",
        ],
        "recycle_template_component",
    );
    support::summarize(
        "Broker restart: storage + runtime + module store, 20 cached modules ready",
        "restart",
        &["open_and_warm_20_cached"],
        "open_and_warm_20_cached",
    );
}
