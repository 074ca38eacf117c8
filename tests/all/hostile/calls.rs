//! The sandbox one call at a time: output caps hold before the host copies
//! anything, the WASI context grants nothing, a looping `init` is stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustmq_etl::message::Message;
use rustmq_etl::runtime::{ProcessContext, Runtime, RuntimeLimits, TransformError};
use rustmq_etl_tests::guests;

use super::allocated_by;

fn msg(key: &str, value: &str) -> Message {
    Message {
        key: Some(key.to_string()),
        value: value.as_bytes().to_vec(),
        headers: vec![("source".into(), "test".into())],
        timestamp: 1,
    }
}

fn ctx() -> ProcessContext {
    ProcessContext {
        pipeline_id: "p".into(),
        source_topic: "in".into(),
        source_offset: 0,
        attempt: 1,
    }
}

fn hostile_transform(
    limits: RuntimeLimits,
    params: &[(&str, &str)],
) -> Result<Box<dyn rustmq_etl::runtime::Transform>, TransformError> {
    let runtime = Runtime::new(limits).unwrap();
    let bytes = std::fs::read(guests::HOSTILE).unwrap();
    let compiled = runtime.compile(&bytes).unwrap();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    compiled.instantiate("hostile-v1.0.0", "p", &params)
}

#[test]
fn fan_out_bomb_of_a_million_is_cut_before_the_host_copies_it() {
    // Enough guest memory to build the million (80 MB of Rust structs, 40 MB lowered)
    // so that the fan-out cap, not the memory limit, is what stops it.
    let limits = RuntimeLimits {
        memory_limit_bytes: 256 << 20,
        max_instances: 2,
        max_output_messages: 10_000,
        ..RuntimeLimits::default()
    };
    let mut t = hostile_transform(limits, &[]).unwrap();
    let (result, host_bytes) = allocated_by(|| t.process(&msg("k", "fanout:1000000"), &ctx()));
    let err = result.unwrap_err();
    assert_eq!(err.cause(), "abi");
    assert!(
        err.to_string()
            .contains("returned 1000000 messages, more than the fan-out limit of 10000"),
        "{err}"
    );
    // Lifting a million messages would allocate at least 80 MB on this thread.
    assert!(
        host_bytes < 4 << 20,
        "the host allocated {host_bytes} bytes for a refused answer"
    );
    let out = t.process(&msg("k", "fanout:3"), &ctx()).unwrap();
    assert_eq!(out.messages.len(), 3);
    assert_eq!(t.recycles(), 1);
}

#[test]
fn aliased_output_values_are_charged_before_the_host_copies_them() {
    let limits = RuntimeLimits {
        memory_limit_bytes: 32 << 20,
        max_instances: 2,
        max_output_bytes: 4 << 20,
        ..RuntimeLimits::default()
    };
    let mut t = hostile_transform(limits, &[]).unwrap();
    // 200 values pointing at one MiB: 1 MiB of guest memory, 200 MiB if copied.
    let (result, host_bytes) = allocated_by(|| t.process(&msg("k", "alias:200:1048576"), &ctx()));
    let err = result.unwrap_err();
    assert_eq!(err.cause(), "abi");
    assert!(
        err.to_string().contains("output limit of 4194304 bytes"),
        "{err}"
    );
    assert!(
        host_bytes < 8 << 20,
        "the host allocated {host_bytes} bytes for a refused answer"
    );
    assert_eq!(
        t.process(&msg("k", "pass"), &ctx()).unwrap().messages.len(),
        1
    );
}

#[test]
fn wasi_grants_nothing_beyond_clocks_random_and_stdio() {
    let marker = std::path::Path::new("/tmp/rustmq-hostile-probe");
    let _ = std::fs::remove_file(marker);
    let mut t = hostile_transform(
        RuntimeLimits {
            max_instances: 2,
            ..RuntimeLimits::default()
        },
        &[],
    )
    .unwrap();
    // Something the guest would see if the environment were inherited.
    assert!(std::env::var_os("PATH").is_some());
    let out = t.process(&msg("k", "probe"), &ctx()).unwrap();
    let report = &out.messages[0];
    let get = |k: &str| {
        report
            .header(k)
            .unwrap_or_else(|| panic!("no {k} in {report:?}"))
    };
    for denied in [
        "fs-read",
        "fs-read-relative",
        "fs-write",
        "fs-list-root",
        "env-home",
        "tcp-connect",
        "tcp-listen",
        "udp-bind",
        "dns",
    ] {
        assert!(
            get(denied).starts_with("denied: "),
            "{denied} was granted: {}",
            get(denied)
        );
    }
    assert_eq!(get("env-count"), "0", "environment variables are visible");
    assert_eq!(get("args-count"), "0", "arguments are visible");
    assert_eq!(get("stdin"), "GRANTED: 0 bytes", "stdin is not empty");
    assert_eq!(get("clock-monotonic"), "works");
    assert_eq!(get("random"), "works");
    assert_eq!(get("stdout"), "GRANTED: written");
    let wall: u64 = get("clock-wall-secs").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        now.abs_diff(wall) < 60,
        "guest wall clock {wall}, host {now}"
    );
    assert!(!marker.exists(), "the guest wrote a file on the host");
}

#[test]
fn init_that_loops_is_stopped_by_the_deadline() {
    let limits = RuntimeLimits {
        execution_timeout_ms: 200,
        max_instances: 2,
        ..RuntimeLimits::default()
    };
    let started = Instant::now();
    let err = hostile_transform(limits, &[("init", "loop")])
        .err()
        .unwrap();
    assert_eq!(err, TransformError::Timeout { limit_ms: 200 });
    assert!(started.elapsed() < Duration::from_secs(30));
}
