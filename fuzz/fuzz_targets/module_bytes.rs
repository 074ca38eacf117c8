//! The upload validator and module inspector on arbitrary bytes as a `.wasm`: never
//! panics; what inspects as WebAssembly is then compiled (wasmtime validates it) and,
//! for a core module, read by the legacy adapter's inspector.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rustmq_etl::runtime::{ModuleKind, Runtime, RuntimeLimits};

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Runtime::new(RuntimeLimits {
            max_instances: 2,
            ..RuntimeLimits::default()
        })
        .expect("runtime")
    })
}

fuzz_target!(|bytes: &[u8]| {
    let runtime = runtime();
    let Ok(info) = runtime.inspect(bytes) else {
        return;
    };
    if info.kind == ModuleKind::LegacyCore {
        let _ = rustmq_etl_legacy::inspect::LegacyInfo::inspect(bytes);
    }
    let _ = runtime.compile(bytes);
});
