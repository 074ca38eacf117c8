//! The legacy JSON path's two floors: the deployment guide's module compiled natively
//! and run on the same JSON text ([`guide::process_json`]), and the same module built
//! for wasm32-wasip1 driven with bare wasmtime, no JSON on the host at all
//! ([`RawGuide`]).

use rustmq_etl_legacy::locked_down_wasi;
use wasmtime_wasi::p1::WasiP1Ctx;

/// The guide's Step 2.3 code as it is (`tests/guests/guide-module/src/lib.rs`),
/// compiled for the host.
///
/// Two differences from the guest build, neither on the hot path of the JSON: `chrono`
/// is not a dependency here, and the guide calls only `chrono::Utc::now().timestamp()`,
/// so a stand-in reads the same system clock (through `SystemTime`, as chrono does on
/// Linux); and this workspace enables serde_json's `preserve_order`, so the guide's
/// `serde_json::Value` objects are `IndexMap`s here and `BTreeMap`s in the guest.
#[allow(dead_code, unused_imports)]
pub mod guide {
    mod chrono {
        /// `chrono::Utc`, as far as the guide uses it.
        pub struct Utc;

        /// `chrono::DateTime<Utc>`, as far as the guide uses it.
        pub struct Now(i64);

        impl Utc {
            pub fn now() -> Now {
                let since = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Now(since.as_secs() as i64)
            }
        }

        impl Now {
            pub fn timestamp(&self) -> i64 {
                self.0
            }
        }
    }

    /// What the guide's `process_message` computes for `input`, handed back as the
    /// bytes it would leave in guest memory (the guest leaks them; here they are
    /// returned).
    pub fn process_json(input: &[u8]) -> Vec<u8> {
        let failed = |error: String| ProcessResult {
            transformed_messages: vec![],
            should_continue: false,
            error: Some(error),
        };
        let result = match serde_json::from_slice::<Message>(input) {
            Ok(message) => transform_message(message).unwrap_or_else(failed),
            Err(e) => failed(format!("Failed to parse message: {}", e)),
        };
        serde_json::to_vec(&result).unwrap_or_else(|_| b"{}".to_vec())
    }

    // Last: the guide's file ends with its test module.
    include!("../../guests/guide-module/src/lib.rs");
}

/// Linear memory past which [`RawGuide`] replaces its instance: the adapter's default
/// watermark (half the runtime's 64 MiB memory limit), since the guide leaks every answer.
const RAW_RECYCLE_BYTES: usize = 32 << 20;

/// The guide module on bare wasmtime: per message `alloc`, copy the ready JSON in,
/// `process_message`, `dealloc`, and nothing done with the answer but its address. What
/// is left of a legacy call once the host's JSON work is taken away.
pub struct RawGuide {
    pre: wasmtime::InstancePre<WasiP1Ctx>,
    live: RawLive,
    /// Instances replaced at [`RAW_RECYCLE_BYTES`].
    pub recycles: u64,
}

struct RawLive {
    store: wasmtime::Store<WasiP1Ctx>,
    memory: wasmtime::Memory,
    alloc: wasmtime::TypedFunc<i32, i32>,
    dealloc: wasmtime::TypedFunc<(i32, i32), ()>,
    process: wasmtime::TypedFunc<(i32, i32), i32>,
}

impl RawGuide {
    /// Compiles the module at `path` for `engine` and instantiates it.
    pub fn new(engine: &wasmtime::Engine, path: &str) -> RawGuide {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let module = wasmtime::Module::new(engine, bytes).expect("guide module");
        let mut linker = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |ctx: &mut WasiP1Ctx| ctx)
            .expect("wasi");
        let pre = linker.instantiate_pre(&module).expect("link");
        let live = RawGuide::instantiate(&pre);
        RawGuide {
            pre,
            live,
            recycles: 0,
        }
    }

    fn instantiate(pre: &wasmtime::InstancePre<WasiP1Ctx>) -> RawLive {
        let mut store = wasmtime::Store::new(pre.module().engine(), locked_down_wasi().build_p1());
        // The engine interrupts on epochs; these calls never run long.
        store.set_epoch_deadline(1 << 40);
        let instance = pre.instantiate(&mut store).expect("instance");
        let memory = instance.get_memory(&mut store, "memory").expect("memory");
        let alloc = instance.get_typed_func(&mut store, "alloc").expect("alloc");
        let dealloc = instance
            .get_typed_func(&mut store, "dealloc")
            .expect("dealloc");
        let process = instance
            .get_typed_func(&mut store, "process_message")
            .expect("process_message");
        RawLive {
            store,
            memory,
            alloc,
            dealloc,
            process,
        }
    }

    /// Runs the guest on `json`; returns the answer's address.
    pub fn process(&mut self, json: &[u8]) -> i32 {
        let live = &mut self.live;
        let len = json.len() as i32;
        let ptr = live.alloc.call(&mut live.store, len).expect("alloc");
        live.memory
            .write(&mut live.store, ptr as usize, json)
            .expect("write");
        let answer = live
            .process
            .call(&mut live.store, (ptr, len))
            .expect("process_message");
        live.dealloc
            .call(&mut live.store, (ptr, len))
            .expect("dealloc");
        if live.memory.data_size(&live.store) > RAW_RECYCLE_BYTES {
            self.live = RawGuide::instantiate(&self.pre);
            self.recycles += 1;
        }
        answer
    }
}
