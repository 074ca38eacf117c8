//! Attacks in pipelines on one shared runtime, each beside a healthy pipeline:
//! the attacking message goes to the error topic with its cause, the next one runs
//! on a fresh instance, and the healthy pipeline keeps flowing.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rustmq_etl::message::Message;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::worker::headers;
use rustmq_etl::pipeline::PipelineManager;
use rustmq_etl::runtime::{Runtime, RuntimeLimits};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::pipelines::spec;
use rustmq_etl_tests::{guests, topics};

const MEMORY_LIMIT: u64 = 32 << 20;
const DEADLINE_MS: u64 = 500;

/// Storage, module store and pipeline manager shared by the pipeline attacks, as
/// one broker would run them side by side.
pub(super) struct Rig {
    pub(super) _dir: tempfile::TempDir,
    pub(super) storage: Storage,
    pub(super) pipelines: PipelineManager,
}

fn rig() -> &'static Rig {
    static RIG: OnceLock<Rig> = OnceLock::new();
    RIG.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("data"), StorageOptions::default()).unwrap();
        let runtime = Runtime::new(RuntimeLimits {
            memory_limit_bytes: MEMORY_LIMIT,
            execution_timeout_ms: DEADLINE_MS,
            max_instances: 64,
            max_output_messages: 1000,
            max_output_bytes: 1 << 20,
            ..RuntimeLimits::default()
        })
        .unwrap();
        let modules =
            ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).unwrap();
        for (name, path) in [("hostile", guests::HOSTILE), ("scripted", guests::SCRIPTED)] {
            modules
                .upload(name, "1.0.0", &std::fs::read(path).unwrap())
                .unwrap();
        }
        for (name, wat) in legacy_fixtures() {
            modules
                .upload(&name, "1.0.0", &wat::parse_str(&wat).unwrap())
                .unwrap();
        }
        let pipelines = PipelineManager::open(storage.clone(), modules).unwrap();
        let rig = Rig {
            _dir: dir,
            storage,
            pipelines,
        };
        rig.create("healthy", "scripted", 0);
        rig
    })
}

/// Legacy core modules that answer well when the message key starts with `g` and
/// misbehave otherwise, one per way of breaking the ABI.
fn legacy_fixtures() -> Vec<(String, String)> {
    const GOOD: &str = r#"{"transformed_messages":[{"key":"out","value":"text","headers":{}}],"should_continue":true}"#;
    let pointer = |name: &str, bad: &str, data: &str| {
        let good = GOOD.replace('"', "\\\"");
        let data = data.replace('"', "\\\"");
        let wat = format!(
            r#"(module
              (memory (export "memory") 2)
              (data (i32.const 1024) "{good}")
              (data (i32.const 4096) "{data}")
              (func (export "alloc") (param i32) (result i32) (i32.const 16384))
              (func (export "dealloc") (param i32 i32))
              (func (export "process_message") (param $p i32) (param $l i32) (result i32)
                ;; `{{"key":"g...`: the key's first byte is at offset 8.
                (if (i32.eq (i32.load8_u offset=8 (local.get $p)) (i32.const 103))
                  (then (return (i32.const 1024))))
                {bad}))"#
        );
        (name.to_string(), wat)
    };
    let good_len = GOOD.len();
    vec![
        pointer("legacy-wild-pointer", "(i32.const 0x7fff0000)", ""),
        pointer("legacy-non-json", "(i32.const 4096)", "hello, host"),
        pointer(
            "legacy-partial-json",
            "(i32.const 4096)",
            r#"{"transformed_messages":[{"value":"#,
        ),
        pointer(
            "legacy-wrong-shape",
            "(i32.const 4096)",
            r#"{"messages":[],"ok":true}"#,
        ),
        (
            "legacy-negative-length".to_string(),
            format!(
                r#"(module
                  (memory (export "memory") 2)
                  (data (i32.const 1024) "{good}")
                  (func (export "alloc") (param i32) (result i32) (i32.const 16384))
                  (func (export "dealloc") (param i32 i32))
                  (func (export "process_message") (param $p i32) (param $l i32) (result i64)
                    (if (i32.eq (i32.load8_u offset=8 (local.get $p)) (i32.const 103))
                      (then (return (i64.const {packed_good}))))
                    ;; pointer 1024, length -1
                    (i64.const 0x00000400ffffffff)))"#,
                good = GOOD.replace('"', "\\\""),
                packed_good = (1024i64 << 32) | good_len as i64,
            ),
        ),
    ]
}

impl Rig {
    fn create(&self, name: &str, module: &str, max_retries: u32) {
        self.pipelines
            .create(spec(name, module, max_retries))
            .unwrap_or_else(|e| panic!("creating {name}: {e}"));
    }

    /// Appends `(key, value)` messages to `topic`.
    fn produce(&self, topic: &str, messages: &[(&str, &str)]) {
        let pairs = messages.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        topics::append(&self.storage, topic, pairs);
    }

    pub(super) fn read(&self, topic: &str) -> Vec<Message> {
        topics::read_all(&self.storage, topic)
    }

    /// Waits until pipeline `name` has committed all of its source topic.
    pub(super) fn drain(&self, name: &str) {
        let end = self.storage.end_offset(&format!("{name}-in")).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let metrics = self.pipelines.metrics(name).unwrap();
            if metrics.committed_offset >= end {
                return;
            }
            let status = self.pipelines.status(name).unwrap();
            assert_eq!(status.status, "running", "{status:?}");
            assert!(
                Instant::now() < deadline,
                "{name} did not drain: {status:?}"
            );
            self.storage.wait_for_blocking(
                &format!("{name}-out"),
                self.storage.end_offset(&format!("{name}-out")).unwrap_or(0),
                Duration::from_millis(20),
            );
        }
    }
}

fn value(m: &Message) -> String {
    String::from_utf8_lossy(&m.value).into_owned()
}

/// Runs `attack` (key `bad`) then a good message (key `good`, value `after`) through
/// a fresh pipeline on `module`, while the healthy pipeline gets a message of its
/// own, and checks the containment promises. Returns the error-topic message.
fn contain(name: &str, module: &str, attack: &str, cause: &str) -> Message {
    let rig = rig();
    rig.create(name, module, 0);
    rig.produce(&format!("{name}-in"), &[("bad", attack), ("good", "after")]);
    let healthy_value = format!("healthy-during-{name}");
    rig.produce("healthy-in", &[("h", &healthy_value)]);

    rig.drain(name);
    let errors = rig.read(&format!("{name}-err"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let failed = errors[0].clone();
    assert_eq!(failed.key.as_deref(), Some("bad"));
    assert_eq!(value(&failed), attack, "the original message is kept");
    assert_eq!(
        failed.header(headers::ERROR_CAUSE),
        Some(cause),
        "{failed:?}"
    );
    assert_eq!(failed.header(headers::SOURCE_OFFSET), Some("0"));
    assert!(!failed.header(headers::ERROR).unwrap_or("").is_empty());

    // The next message ran on a fresh instance.
    let out = rig.read(&format!("{name}-out"));
    assert_eq!(out.len(), 1, "{out:?}");
    let metrics = rig.pipelines.metrics(name).unwrap();
    assert_eq!(metrics.messages_failed, 1);
    assert!(metrics.instance_recycles >= 1, "{metrics:?}");
    assert!(metrics.memory_usage_bytes <= MEMORY_LIMIT, "{metrics:?}");

    // The healthy pipeline kept flowing.
    rig.drain("healthy");
    assert!(
        rig.read("healthy-out")
            .iter()
            .any(|m| value(m) == healthy_value),
        "the healthy pipeline stalled"
    );
    assert_eq!(rig.pipelines.status("healthy").unwrap().status, "running");
    rig.pipelines.delete(name).unwrap();
    failed
}

#[test]
fn infinite_loop_is_contained() {
    let failed = contain("attack-loop", "scripted", "loop", "timeout");
    assert!(failed.header(headers::ERROR).unwrap().contains("500 ms"));
}

#[test]
fn call_stack_overflow_is_contained() {
    let failed = contain("attack-recurse-native", "hostile", "recurse-native", "trap");
    assert!(
        failed
            .header(headers::ERROR)
            .unwrap()
            .contains("call stack exhausted"),
        "{failed:?}"
    );
}

#[test]
fn shadow_stack_overflow_is_contained() {
    // Rust keeps big frames on a stack in linear memory; running off its bottom is
    // an out-of-bounds access, caught by the sandbox like any other.
    let failed = contain("attack-recurse", "hostile", "recurse", "trap");
    assert!(
        failed
            .header(headers::ERROR)
            .unwrap()
            .contains("out of bounds"),
        "{failed:?}"
    );
}

#[test]
fn concurrent_creates_get_distinct_pipelines() {
    let rig = rig();
    let names: Vec<String> = (0..6).map(|i| format!("concurrent-create-{i}")).collect();
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = names
            .iter()
            .map(|n| {
                s.spawn(move || {
                    rig.pipelines
                        .create(spec(n, "scripted", 0))
                        .unwrap()
                        .pipeline_id
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "ids were shared: {ids:?}");
    for (n, id) in names.iter().zip(&ids) {
        assert_eq!(&rig.pipelines.status(n).unwrap().pipeline_id, id);
        rig.pipelines.delete(n).unwrap();
    }
}

#[test]
fn raw_memory_grow_until_refused_is_contained() {
    contain("attack-grow-raw", "hostile", "grow-raw", "memory_limit");
}

#[test]
fn allocating_in_a_loop_is_contained() {
    contain("attack-alloc-loop", "hostile", "alloc-loop", "memory_limit");
}

#[test]
fn output_over_the_byte_cap_is_contained() {
    let failed = contain("attack-huge", "hostile", "huge:2000000", "abi");
    assert!(failed
        .header(headers::ERROR)
        .unwrap()
        .contains("output limit"));
}

#[test]
fn fan_out_bomb_is_contained() {
    let failed = contain("attack-fanout", "hostile", "fanout:100000", "abi");
    assert!(failed
        .header(headers::ERROR)
        .unwrap()
        .contains("fan-out limit of 1000"));
}

#[test]
fn legacy_wild_pointer_is_contained() {
    contain("attack-legacy-wild", "legacy-wild-pointer", "x", "abi");
}

#[test]
fn legacy_negative_length_is_contained() {
    contain("attack-legacy-neglen", "legacy-negative-length", "x", "abi");
}

#[test]
fn legacy_non_json_is_contained() {
    let failed = contain("attack-legacy-nonjson", "legacy-non-json", "x", "abi");
    assert!(failed
        .header(headers::ERROR)
        .unwrap()
        .contains("hello, host"));
}

#[test]
fn legacy_partial_json_is_contained() {
    contain("attack-legacy-partial", "legacy-partial-json", "x", "abi");
}

#[test]
fn legacy_wrong_shape_json_is_contained() {
    contain("attack-legacy-shape", "legacy-wrong-shape", "x", "abi");
}

#[test]
fn a_guest_trapping_on_every_third_message_loses_nothing() {
    let rig = rig();
    let name = "attack-every-third";
    rig.create(name, "scripted", 0);
    let keys: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
    let batch: Vec<(&str, &str)> = keys
        .iter()
        .map(|k| (k.as_str(), "every-third-traps"))
        .collect();
    rig.produce(&format!("{name}-in"), &batch);
    rig.drain(name);
    let out = rig.read(&format!("{name}-out"));
    let errors = rig.read(&format!("{name}-err"));
    let out_keys: Vec<String> = out.iter().map(|m| m.key.clone().unwrap()).collect();
    let err_keys: Vec<String> = errors.iter().map(|m| m.key.clone().unwrap()).collect();
    let expected_errors: Vec<String> = (0..30).step_by(3).map(|i| format!("m{i}")).collect();
    let expected_out: Vec<String> = (0..30)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(
        err_keys, expected_errors,
        "each trap is routed once, in order"
    );
    assert_eq!(
        out_keys, expected_out,
        "every other message passes, in order"
    );
    for e in &errors {
        assert_eq!(e.header(headers::ERROR_CAUSE), Some("trap"));
    }
    let metrics = rig.pipelines.metrics(name).unwrap();
    assert_eq!(metrics.instance_recycles, 10);
    assert!(metrics.memory_usage_bytes <= MEMORY_LIMIT);
    rig.pipelines.delete(name).unwrap();
}

#[test]
fn a_guest_slow_just_under_the_deadline_always_succeeds() {
    let rig = rig();
    let name = "slow-under-deadline";
    rig.create(name, "scripted", 0);
    // 80% of the 500 ms deadline on every message.
    let slow = format!("sleep:{}", DEADLINE_MS * 4 / 5);
    let batch: Vec<(&str, &str)> = (0..5).map(|_| ("k", slow.as_str())).collect();
    rig.produce(&format!("{name}-in"), &batch);
    rig.drain(name);
    assert_eq!(rig.read(&format!("{name}-out")).len(), 5);
    assert!(rig.read(&format!("{name}-err")).is_empty());
    let metrics = rig.pipelines.metrics(name).unwrap();
    assert_eq!(metrics.instance_recycles, 0);
    assert_eq!(metrics.messages_failed, 0);
    rig.pipelines.delete(name).unwrap();
}

#[test]
fn init_that_traps_fails_pipeline_creation_with_a_clear_error() {
    let rig = rig();
    let mut s = spec("init-traps", "hostile", 0);
    s.configuration.params = [("init".to_string(), "trap".to_string())].into();
    let err = rig.pipelines.create(s).unwrap_err().to_string();
    assert!(err.contains("trap"), "{err}");
    assert!(
        err.contains("init was told to trap") || err.contains("unreachable"),
        "{err}"
    );
    assert!(
        rig.pipelines.status("init-traps").is_err(),
        "no pipeline was made"
    );
}
