//! Legacy core modules behind `Transform`: the guide's own module built from source,
//! the wasm-bindgen build the guide's instructions produce, and adversarial modules
//! (in WAT) for every way a guest can break the ABI.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustmq_etl::message::Message;
use rustmq_etl::runtime::legacy::LegacyTransform;
use rustmq_etl::runtime::{
    ProcessContext, ProcessOutput, RuntimeLimits, Transform, TransformError,
};
use rustmq_etl_legacy::wasi::locked_down_factory;
use rustmq_etl_legacy::{LegacyLimits, LegacyModule, LoadError, ProcessAbi};
use rustmq_etl_tests::guests;
use rustmq_etl_tests::topics::message;

/// The epoch tick of the test engine.
const TICK: Duration = Duration::from_millis(5);

/// An engine configured like the runtime's: epoch interruption, with a thread
/// incrementing the epoch every `tick`.
fn ticking_engine(tick: Duration) -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    config.epoch_interruption(true);
    let engine = wasmtime::Engine::new(&config).expect("engine config is valid");
    let ticker = engine.clone();
    std::thread::spawn(move || loop {
        std::thread::sleep(tick);
        ticker.increment_epoch();
    });
    engine
}

fn engine() -> &'static wasmtime::Engine {
    static ENGINE: OnceLock<wasmtime::Engine> = OnceLock::new();
    ENGINE.get_or_init(|| ticking_engine(TICK))
}

/// The broker's default limits for a legacy instance, with this memory limit and
/// call deadline.
fn limits_with(memory_limit_bytes: u64, timeout_ms: u64) -> LegacyLimits {
    RuntimeLimits {
        memory_limit_bytes,
        ..RuntimeLimits::default()
    }
    .legacy(timeout_ms, TICK.as_millis() as u64)
}

fn limits(memory_limit_bytes: u64) -> LegacyLimits {
    limits_with(memory_limit_bytes, 500)
}

/// The guide's Step 2.3 module built for wasm32-wasip1, compiled once.
fn guide_module() -> &'static LegacyModule {
    static MODULE: OnceLock<LegacyModule> = OnceLock::new();
    MODULE.get_or_init(|| {
        let bytes = std::fs::read(guests::GUIDE_MODULE).expect("guide module was built");
        LegacyModule::new(engine(), &bytes).expect("the guide module loads")
    })
}

fn transform(module: &LegacyModule, limits: LegacyLimits) -> LegacyTransform {
    LegacyTransform::new(module, limits, locked_down_factory()).expect("instantiates")
}

fn run(t: &mut LegacyTransform, m: &Message) -> Result<ProcessOutput, TransformError> {
    t.process(m, &ProcessContext::default())
}

fn sensor_reading(celsius: &str) -> Message {
    message(
        "sensor-001",
        &format!(r#"{{"temperature_celsius": {celsius}, "sensor_id": "temp001"}}"#),
        &[
            ("content-type", "application/json"),
            ("source", "iot-sensors"),
            ("client_ip", "192.168.1.100"),
        ],
    )
}

#[test]
fn guide_module_gives_the_guides_documented_results() {
    let module = guide_module();
    assert_eq!(module.info().abi, ProcessAbi::Pointer);
    assert!(module.info().uses_wasi);
    let mut t = transform(module, limits(16 << 20));

    let out = run(&mut t, &sensor_reading("25.0")).expect("processes");
    assert!(out.should_continue);
    assert_eq!(out.error, None);
    assert_eq!(out.messages.len(), 1);
    let m = &out.messages[0];
    assert_eq!(m.key.as_deref(), Some("sensor-001"));
    assert_eq!(m.timestamp, 1_640_995_200_000);
    let json: serde_json::Value = serde_json::from_slice(&m.value).expect("value is JSON");
    assert_eq!(json["temperature_fahrenheit"], 77.0);
    assert_eq!(json["_processed"], true);
    assert_eq!(json["_processor_version"], "1.0.0");
    assert_eq!(json["sensor_id"], "temp001");
    assert_eq!(m.header("enriched"), Some("true"));
    assert_eq!(m.header("processor"), Some("message-processor-v1"));
    assert_eq!(m.header("geo_country"), Some("Local"));
    assert_eq!(m.header("geo_city"), Some("Private Network"));
    // `chrono::Utc::now()` read the host's clock through WASI.
    let processed_at: i64 = m
        .header("processed_at")
        .and_then(|s| s.parse().ok())
        .expect("processed_at is a number");
    let now = rustmq_etl::message::now_millis() / 1000;
    assert!((now - processed_at).abs() < 60, "{processed_at} vs {now}");

    // Step 6.1's message.
    let out = run(&mut t, &sensor_reading("23.5")).expect("processes");
    let json: serde_json::Value = serde_json::from_slice(&out.messages[0].value).unwrap();
    assert_eq!(json["temperature_fahrenheit"], 74.3);
}

#[test]
fn guide_module_filters_spam_and_sourceless_messages() {
    let mut t = transform(guide_module(), limits(16 << 20));
    let spam = message("spam-key", "This is SPAM content", &[("source", "unknown")]);
    let out = run(&mut t, &spam).expect("processes");
    assert!(out.messages.is_empty());
    assert!(out.should_continue);
    assert_eq!(out.error, None);

    let sourceless = message("k", "hello", &[]);
    assert!(run(&mut t, &sourceless).unwrap().messages.is_empty());

    // Not filtered: a plain-text message with a source passes, enriched.
    let plain = message("k", "hello", &[("source", "s"), ("client_ip", "8.8.8.8")]);
    let out = run(&mut t, &plain).unwrap();
    assert_eq!(out.messages[0].value, b"hello");
    assert_eq!(out.messages[0].header("geo_city"), Some("Mountain View"));
}

#[test]
fn guide_module_reports_its_own_errors_as_results() {
    let mut t = transform(guide_module(), limits(16 << 20));
    let broken = message(
        "k",
        "{not json",
        &[("content-type", "application/json"), ("source", "s")],
    );
    let out = run(&mut t, &broken).expect("the guest answered");
    assert!(out.messages.is_empty());
    assert!(!out.should_continue);
    assert!(out.error.unwrap().starts_with("Invalid JSON"));
    assert_eq!(t.recycles(), 0, "a reported error is not a fault");
}

#[test]
fn guide_module_built_for_wasm32_unknown_unknown_is_refused_with_the_fix() {
    let bytes = std::fs::read(guests::GUIDE_MODULE_WASM32_UNKNOWN_UNKNOWN).unwrap();
    let err = LegacyModule::new(engine(), &bytes).unwrap_err();
    assert!(
        matches!(err, LoadError::WasmBindgenImports { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    for needle in [
        "__wbindgen_placeholder__::",
        "wasm32-wasip1",
        "wasmbind",
        "chrono",
    ] {
        assert!(text.contains(needle), "{needle} missing from: {text}");
    }
    // Refused before compiling, too.
    assert_eq!(LegacyModule::inspect(&bytes).unwrap_err(), err);
}

/// The guide's module leaks every result; recycling at the watermark keeps it under a
/// small memory limit forever: a million messages, none failing
/// (`LEGACY_LEAK_TEST_MESSAGES` lowers the count for a quick local run).
#[test]
fn guide_module_runs_a_million_messages_by_recycling_leaked_memory() {
    let n = std::env::var("LEGACY_LEAK_TEST_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000u64);
    let memory_limit = 4 << 20;
    let mut t = transform(guide_module(), limits(memory_limit));
    let input = sensor_reading("25.0");
    let start = Instant::now();
    for i in 0..n {
        match run(&mut t, &input) {
            Ok(out) if out.messages.len() == 1 => {}
            other => panic!("message {i} failed: {other:?}"),
        }
        assert!(t.memory_bytes() <= memory_limit);
    }
    let elapsed = start.elapsed();
    assert!(t.recycles() > 0, "the leak never reached the watermark");
    eprintln!(
        "{n} messages in {elapsed:?} ({:?}/message), {} recycles",
        elapsed / n as u32,
        t.recycles()
    );
}

#[test]
fn serialized_module_runs_after_deserializing() {
    let bytes = guide_module().serialize().unwrap();
    // SAFETY: the bytes were serialized just above by the same engine.
    let module = unsafe { LegacyModule::deserialize(engine(), &bytes) }.unwrap();
    assert_eq!(module.info(), guide_module().info());
    let out = run(
        &mut transform(&module, limits(16 << 20)),
        &sensor_reading("0"),
    )
    .unwrap();
    assert_eq!(out.messages.len(), 1);
}

// ---- adversarial modules ----------------------------------------------------------

/// Valid output at 1024 (a string `value`, no timestamp); the input goes to 2048.
const GOOD_RESULT: &str = r#"{"transformed_messages":[{"key":"out","value":"text","headers":{"h":"v"}}],"should_continue":true,"error":null}"#;

/// A core module that answers well when the message key is `g` and runs `bad` (a
/// `process_message` body with params `$p`, `$l`) otherwise. `alloc_bad` runs in
/// `alloc` for inputs over 1000 bytes. `extra` adds module fields.
fn adversary(bad: &str, alloc_bad: &str, extra: &str) -> LegacyModule {
    let good = GOOD_RESULT.replace('"', "\\\"");
    let wat = format!(
        r#"(module
          (memory (export "memory") 2)
          (data (i32.const 1024) "{good}")
          {extra}
          (func (export "alloc") (param $n i32) (result i32)
            (if (i32.gt_u (local.get $n) (i32.const 1000)) (then {alloc_bad}))
            (i32.const 2048))
          (func (export "dealloc") (param i32 i32))
          (func (export "process_message") (param $p i32) (param $l i32) (result i32)
            ;; `{{"key":"g"` : the key's first byte is at offset 8.
            (if (i32.eq (i32.load8_u offset=8 (local.get $p)) (i32.const 103))
              (then (return (i32.const 1024))))
            {bad}))"#
    );
    load_wat(&wat)
}

fn load_wat(wat: &str) -> LegacyModule {
    let bytes = wat::parse_str(wat).expect("fixture WAT parses");
    LegacyModule::new(engine(), &bytes).expect("fixture loads")
}

fn adversarial_limits() -> LegacyLimits {
    let mut l = limits_with(1 << 20, 200);
    l.max_output_bytes = 4096;
    l
}

/// Runs a bad message then a good one: the first must fail as `check` expects, the
/// second must succeed on a fresh instance.
fn fails_then_recovers(
    module: &LegacyModule,
    bad: &Message,
    check: impl Fn(&TransformError) -> bool,
) {
    let mut t = transform(module, adversarial_limits());
    let err = run(&mut t, bad).expect_err("the bad message fails");
    assert!(check(&err), "unexpected error: {err:?} ({err})");
    assert_eq!(t.recycles(), 1);
    let good = message("g", "x", &[]);
    let out = run(&mut t, &good).expect("the next message succeeds");
    assert_eq!(out.messages[0].value, b"text");
    assert_eq!(out.messages[0].header("h"), Some("v"));
    assert_eq!(out.messages[0].timestamp, good.timestamp);
}

fn bad_key() -> Message {
    message("b", "x", &[])
}

fn abi_says(needle: &'static str) -> impl Fn(&TransformError) -> bool {
    move |e| matches!(e, TransformError::Abi(m) if m.contains(needle))
}

#[test]
fn wild_pointer_is_reported() {
    let m = adversary("(i32.const 0x7fff0000)", "", "");
    fails_then_recovers(
        &m,
        &bad_key(),
        abi_says("0x7fff0000, outside the memory of 131072 bytes"),
    );
}

#[test]
fn negative_pointer_is_reported() {
    let m = adversary("(i32.const -8)", "", "");
    fails_then_recovers(&m, &bad_key(), abi_says("-8 as i32"));
}

#[test]
fn null_result_pointer_is_reported() {
    let m = adversary("(i32.const 0)", "", "");
    fails_then_recovers(&m, &bad_key(), abi_says("null pointer"));
}

#[test]
fn non_json_result_is_reported_with_what_was_there() {
    let m = adversary(
        "(i32.const 4096)",
        "",
        r#"(data (i32.const 4096) "hello, host")"#,
    );
    fails_then_recovers(&m, &bad_key(), abi_says("not JSON"));
    let mut t = transform(&m, adversarial_limits());
    let err = run(&mut t, &bad_key()).unwrap_err();
    assert!(err.to_string().contains("near \"hello, host"), "{err}");
}

#[test]
fn partial_json_result_is_reported() {
    let m = adversary(
        "(i32.const 4096)",
        "",
        r#"(data (i32.const 4096) "{\"transformed_messages\": [")"#,
    );
    fails_then_recovers(&m, &bad_key(), abi_says("not JSON"));
}

#[test]
fn json_that_is_not_a_process_result_is_reported() {
    let m = adversary(
        "(i32.const 4096)",
        "",
        r#"(data (i32.const 4096) "{\"ok\": true}")"#,
    );
    fails_then_recovers(&m, &bad_key(), abi_says("not a ProcessResult"));
}

#[test]
fn result_running_off_the_end_of_memory_is_reported() {
    // The last three bytes of the 2-page memory open a value that never closes.
    let m = adversary(
        "(i32.const 131069)",
        "",
        r#"(data (i32.const 131069) "{\"a")"#,
    );
    let mut limits = adversarial_limits();
    limits.max_output_bytes = 1 << 20;
    let mut t = transform(&m, limits);
    let err = run(&mut t, &bad_key()).unwrap_err();
    assert!(
        err.to_string().contains("runs off the end of memory"),
        "{err}"
    );
    assert!(run(&mut t, &message("g", "x", &[])).is_ok());
}

#[test]
fn result_over_the_output_cap_is_reported() {
    // `{` then 100000 spaces: still open when the 4096-byte cap is reached.
    let bad = r#"(i32.store8 (i32.const 8192) (i32.const 123))
                 (memory.fill (i32.const 8193) (i32.const 32) (i32.const 100000))
                 (i32.const 8192)"#;
    let m = adversary(bad, "", "");
    fails_then_recovers(
        &m,
        &bad_key(),
        abi_says("larger than the 4096-byte output limit"),
    );
}

#[test]
fn alloc_returning_zero_is_reported() {
    let m = adversary("unreachable", "(return (i32.const 0))", "");
    let big = message("g", &"x".repeat(2000), &[]);
    fails_then_recovers(
        &m,
        &big,
        abi_says("returned 0: the module could not allocate"),
    );
}

#[test]
fn alloc_returning_a_pointer_the_input_does_not_fit_behind_is_reported() {
    let m = adversary("unreachable", "(return (i32.const 131000))", "");
    let big = message("g", &"x".repeat(2000), &[]);
    fails_then_recovers(&m, &big, abi_says("past the memory size of 131072 bytes"));
}

#[test]
fn alloc_trapping_is_reported() {
    let m = adversary("unreachable", "unreachable", "");
    let big = message("g", &"x".repeat(2000), &[]);
    fails_then_recovers(
        &m,
        &big,
        |e| matches!(e, TransformError::Trap(m) if m.contains("`alloc`") && m.contains("unreachable")),
    );
}

#[test]
fn trap_in_process_message_is_reported() {
    let m = adversary("unreachable", "", "");
    fails_then_recovers(
        &m,
        &bad_key(),
        |e| matches!(e, TransformError::Trap(m) if m.contains("`process_message`")),
    );
}

#[test]
fn infinite_loop_times_out() {
    let m = adversary("(loop $forever (br $forever)) unreachable", "", "");
    let started = Instant::now();
    fails_then_recovers(&m, &bad_key(), |e| {
        matches!(e, TransformError::Timeout { limit_ms: 200 })
    });
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A module whose `process_message` makes one `poll_oneoff` call for a monotonic
/// clock `nanos` from now (`absolute`: as an absolute time read with
/// `clock_time_get`), plus a read of stdin (fd 0) when `with_stdin`, then checks the
/// answer (success, one event, for the stdin subscription if there was one, else the
/// clock's) and traps on anything else.
fn sleeper(nanos: u64, absolute: bool, with_stdin: bool) -> LegacyModule {
    let good = GOOD_RESULT.replace('"', "\\\"");
    let (count, expected) = if with_stdin { (2, 7) } else { (1, 42) };
    let timeout = if absolute {
        format!(
            "(drop (call $now (i32.const 1) (i64.const 1) (i32.const 12904)))
             (i64.add (i64.load (i32.const 12904)) (i64.const {nanos}))"
        )
    } else {
        format!("(i64.const {nanos})")
    };
    let wat = format!(
        r#"(module
          (import "wasi_snapshot_preview1" "poll_oneoff"
            (func $poll (param i32 i32 i32 i32) (result i32)))
          (import "wasi_snapshot_preview1" "clock_time_get"
            (func $now (param i32 i64 i32) (result i32)))
          (memory (export "memory") 2)
          (data (i32.const 1024) "{good}")
          (func (export "alloc") (param i32) (result i32) (i32.const 2048))
          (func (export "dealloc") (param i32 i32))
          (func (export "process_message") (param $p i32) (param $l i32) (result i32)
            ;; subscription 0 at 8192: userdata 42, clock, monotonic, timeout, flags
            (i64.store (i32.const 8192) (i64.const 42))
            (i32.store8 (i32.const 8200) (i32.const 0))
            (i32.store (i32.const 8208) (i32.const 1))
            (i64.store (i32.const 8216) {timeout})
            (i32.store16 (i32.const 8232) (i32.const {flags}))
            ;; subscription 1 at 8240: userdata 7, fd_read of stdin
            (i64.store (i32.const 8240) (i64.const 7))
            (i32.store8 (i32.const 8248) (i32.const 1))
            (i32.store (i32.const 8256) (i32.const 0))
            (if (call $poll (i32.const 8192) (i32.const 12288) (i32.const {count})
                            (i32.const 12800))
              (then unreachable))
            (if (i32.ne (i32.load (i32.const 12800)) (i32.const 1)) (then unreachable))
            (if (i64.ne (i64.load (i32.const 12288)) (i64.const {expected}))
              (then unreachable))
            (if (i32.load16_u (i32.const 12296)) (then unreachable))
            (i32.const 1024)))"#,
        flags = u8::from(absolute),
    );
    load_wat(&wat)
}

const AN_HOUR_NS: u64 = 3_600 * 1_000_000_000;

/// Runs one message through `module` with a `timeout_ms` deadline on a thread of
/// its own, failing the test if it has not answered within a minute.
fn sleep_through(
    module: &LegacyModule,
    timeout_ms: u64,
) -> (Result<usize, TransformError>, Duration) {
    let module = module.clone();
    rustmq_etl_tests::within(
        Duration::from_secs(60),
        "a sleeping legacy call",
        move || {
            let mut t = transform(&module, limits_with(1 << 20, timeout_ms));
            let started = Instant::now();
            let answer = run(&mut t, &message("k", "x", &[])).map(|out| out.messages.len());
            (answer, started.elapsed())
        },
    )
}

#[test]
fn a_sleep_in_poll_oneoff_past_the_deadline_times_out_at_the_deadline() {
    for absolute in [false, true] {
        let (answer, elapsed) = sleep_through(&sleeper(AN_HOUR_NS, absolute, false), 200);
        assert_eq!(
            answer,
            Err(TransformError::Timeout { limit_ms: 200 }),
            "absolute: {absolute}"
        );
        assert!(
            elapsed >= Duration::from_millis(200),
            "stopped early: {elapsed:?}"
        );
    }
}

#[test]
fn a_short_sleep_in_poll_oneoff_sleeps_its_time_and_reports_the_clock() {
    for absolute in [false, true] {
        let (answer, elapsed) = sleep_through(&sleeper(100_000_000, absolute, false), 5_000);
        assert_eq!(answer, Ok(1), "absolute: {absolute}");
        assert!(
            elapsed >= Duration::from_millis(100),
            "woke early: {elapsed:?}"
        );
    }
}

#[test]
fn poll_oneoff_on_closed_stdin_answers_at_once() {
    // Stdin is at end of file, so the hour-long clock beside it is never waited for.
    let (answer, _) = sleep_through(&sleeper(AN_HOUR_NS, false, true), 200);
    assert_eq!(answer, Ok(1));
}

#[test]
fn a_message_with_many_headers_is_encoded_in_linear_time() {
    // 200,000 headers took minutes when each was compared with every later one; the
    // bound is far above the milliseconds a linear pass takes.
    let headers: Vec<(String, String)> = (0..200_000)
        .map(|i| (format!("h{i}"), "v".to_string()))
        .collect();
    let len = rustmq_etl_tests::within(Duration::from_secs(20), "encoding", move || {
        let input = rustmq_etl_legacy::LegacyInput {
            key: None,
            value: b"x",
            headers: &headers,
            timestamp: 1,
        };
        let mut out = Vec::new();
        input.encode(&mut out);
        out.len()
    });
    assert!(len > 200_000 * 8, "{len} bytes");
}

#[test]
fn memory_grow_bomb_hits_the_memory_limit() {
    // Grows one page at a time until refused, then gives up like Rust's allocator.
    let bad = r#"(loop $grow
                   (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
                 unreachable"#;
    let m = adversary(bad, "", "");
    fails_then_recovers(&m, &bad_key(), |e| {
        matches!(
            e,
            TransformError::MemoryLimit {
                limit_bytes: 1048576
            }
        )
    });
}

#[test]
fn packed_pointer_length_results_are_read_by_length() {
    let good = GOOD_RESULT.replace('"', "\\\"");
    let len = GOOD_RESULT.len();
    let wat = format!(
        r#"(module
          (memory (export "memory") 2)
          (data (i32.const 1024) "{good}garbage")
          (func (export "alloc") (param i32) (result i32) (i32.const 2048))
          (func (export "dealloc") (param i32 i32))
          (func (export "process_message") (param $p i32) (param $l i32) (result i64)
            (if (i32.eq (i32.load8_u offset=8 (local.get $p)) (i32.const 103))
              (then (return (i64.or (i64.shl (i64.const 1024) (i64.const 32)) (i64.const {len})))))
            ;; A length running past the end of memory.
            (i64.or (i64.shl (i64.const 131000) (i64.const 32)) (i64.const 500))))"#
    );
    let m = load_wat(&wat);
    assert_eq!(m.info().abi, ProcessAbi::PackedPointerLength);
    fails_then_recovers(
        &m,
        &bad_key(),
        abi_says("500 bytes at pointer 0x1ffb8, which run past the memory size of 131072"),
    );
}

// ---- modules refused at load ------------------------------------------------------

fn load_error(wat: &str) -> LoadError {
    let bytes = wat::parse_str(wat).expect("fixture WAT parses");
    let err = LegacyModule::new(engine(), &bytes).unwrap_err();
    assert_eq!(
        LegacyModule::inspect(&bytes).unwrap_err(),
        err,
        "inspect agrees"
    );
    err
}

const ABI_EXPORTS: &str = r#"
  (func (export "alloc") (param i32) (result i32) (i32.const 0))
  (func (export "dealloc") (param i32 i32))"#;

#[test]
fn missing_exports_are_refused_by_name() {
    let err = load_error(&format!(
        r#"(module (memory (export "memory") 1) {ABI_EXPORTS})"#
    ));
    assert!(matches!(
        err,
        LoadError::MissingExport {
            name: "process_message",
            ..
        }
    ));
    let err = load_error(
        r#"(module (memory (export "memory") 1)
             (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))"#,
    );
    assert!(matches!(
        err,
        LoadError::MissingExport { name: "alloc", .. }
    ));
    let err = load_error(&format!(
        r#"(module (memory 1) {ABI_EXPORTS}
             (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))"#
    ));
    assert!(matches!(
        err,
        LoadError::MissingExport { name: "memory", .. }
    ));
}

#[test]
fn wrong_signatures_are_refused() {
    let err = load_error(&format!(
        r#"(module (memory (export "memory") 1) {ABI_EXPORTS}
             (func (export "process_message") (param i32) (result i32) (i32.const 0)))"#
    ));
    assert!(
        err.to_string()
            .contains("exports `process_message` as a function (i32) -> (i32)"),
        "{err}"
    );
}

#[test]
fn unknown_imports_are_refused_by_name() {
    let err = load_error(&format!(
        r#"(module (import "env" "now" (func (result i64)))
             (memory (export "memory") 1) {ABI_EXPORTS}
             (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))"#
    ));
    assert!(matches!(err, LoadError::UnsupportedImports { .. }));
    assert!(err.to_string().contains("env::now"), "{err}");
}

#[test]
fn wasm_bindgen_imports_are_refused_with_the_fix() {
    let err = load_error(&format!(
        r#"(module (import "__wbindgen_placeholder__" "__wbindgen_describe" (func (param i32)))
             (memory (export "memory") 1) {ABI_EXPORTS}
             (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))"#
    ));
    assert!(
        err.to_string().contains("build it for wasm32-wasip1")
            || err.to_string().contains("Build it for wasm32-wasip1")
    );
}

#[test]
fn components_are_not_legacy_modules() {
    assert_eq!(load_error("(component)"), LoadError::IsComponent);
}

#[test]
fn recycled_instances_start_with_fresh_wasi() {
    // Each instance asks the factory for its own context.
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = calls.clone();
    let factory: rustmq_etl_legacy::WasiFactory = Arc::new(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        rustmq_etl_legacy::locked_down_wasi()
    });
    let m = adversary("unreachable", "", "");
    let mut t = LegacyTransform::new(&m, adversarial_limits(), factory).unwrap();
    assert!(run(&mut t, &bad_key()).is_err());
    assert!(run(&mut t, &message("g", "x", &[])).is_ok());
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
}
