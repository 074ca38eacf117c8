//! Deadlines hold while a guest is blocked in a host call, not only while it runs wasm
//! code: a component asleep in WASI (`std::thread::sleep`, an hour long) is stopped at
//! its deadline, in `process` and in `init`, and cannot hold a worker, an execution
//! slot or a `delete` past it. (Legacy modules asleep in `poll_oneoff`: `legacy.rs`.)
//!
//! Each check runs under [`within`], so a deadline that does not hold fails the test
//! instead of hanging it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustmq_etl::message::Message;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::worker::headers;
use rustmq_etl::pipeline::PipelineManager;
use rustmq_etl::runtime::{ProcessContext, Runtime, RuntimeLimits, Transform, TransformError};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::pipelines::spec;
use rustmq_etl_tests::{guests, topics, within};

/// An hour: what the guests ask to sleep.
const AN_HOUR_MS: u64 = 3_600_000;

/// How long a check may take before the deadline counts as not held: many times any
/// deadline here, and nothing next to the hour the guests ask for.
const BOUND: Duration = Duration::from_secs(60);

fn hostile(timeout_ms: u64, params: &[(&str, &str)]) -> Result<Box<dyn Transform>, TransformError> {
    let runtime = Runtime::new(RuntimeLimits {
        execution_timeout_ms: timeout_ms,
        max_instances: 4,
        ..RuntimeLimits::default()
    })
    .unwrap();
    let compiled = runtime
        .compile(&std::fs::read(guests::HOSTILE).unwrap())
        .unwrap();
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    compiled.instantiate("hostile-v1.0.0", "p", &params)
}

fn message(value: &str) -> Message {
    Message {
        key: Some("k".into()),
        value: value.as_bytes().to_vec(),
        headers: Vec::new(),
        timestamp: 1,
    }
}

#[test]
fn a_component_asleep_in_wasi_is_stopped_at_its_deadline() {
    let (first, elapsed, next) = within(BOUND, "a sleeping call", || {
        let mut t = hostile(300, &[]).unwrap();
        let started = Instant::now();
        let first = t.process(
            &message(&format!("sleep:{AN_HOUR_MS}")),
            &ProcessContext::default(),
        );
        let elapsed = started.elapsed();
        let next = t.process(&message("after"), &ProcessContext::default());
        (first, elapsed, next.map(|out| out.messages.len()))
    });
    assert_eq!(first.err(), Some(TransformError::Timeout { limit_ms: 300 }));
    assert!(
        elapsed >= Duration::from_millis(300),
        "stopped early: {elapsed:?}"
    );
    // The next message runs on a fresh instance.
    assert_eq!(next, Ok(1));
}

#[test]
fn a_short_wasi_sleep_within_the_deadline_still_sleeps_its_time() {
    let (answer, elapsed) = within(BOUND, "a short sleep", || {
        let mut t = hostile(5_000, &[]).unwrap();
        let started = Instant::now();
        let answer = t.process(&message("sleep:200"), &ProcessContext::default());
        (answer.map(|out| out.messages.len()), started.elapsed())
    });
    assert_eq!(answer, Ok(1));
    assert!(
        elapsed >= Duration::from_millis(200),
        "woke early: {elapsed:?}"
    );
}

#[test]
fn init_that_sleeps_is_stopped_by_the_deadline() {
    let answer = within(BOUND, "an init that sleeps", || {
        hostile(200, &[("init", "sleep")]).err()
    });
    assert_eq!(answer, Some(TransformError::Timeout { limit_ms: 200 }));
}

/// Waits for `n` messages in `topic`, reading as they arrive.
fn wait_for(storage: &Storage, topic: &str, n: u64) -> Vec<Message> {
    loop {
        let end = storage.end_offset(topic).unwrap_or(0);
        if end >= n {
            return topics::read_all(storage, topic);
        }
        storage.wait_for_blocking(topic, end, Duration::from_millis(50));
    }
}

#[test]
fn sleeping_guests_hold_no_slot_or_worker_past_their_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(&dir.path().join("data"), StorageOptions::default()).unwrap();
    // Two slots, both taken by sleepers: an unrelated pipeline still gets its turn.
    let runtime = Runtime::new(RuntimeLimits {
        execution_timeout_ms: 300,
        max_concurrent_executions: 2,
        max_instances: 16,
        ..RuntimeLimits::default()
    })
    .unwrap();
    let modules = ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).unwrap();
    for (name, path) in [("hostile", guests::HOSTILE), ("scripted", guests::SCRIPTED)] {
        modules
            .upload(name, "1.0.0", &std::fs::read(path).unwrap())
            .unwrap();
    }
    let pipelines = PipelineManager::open(storage.clone(), modules).unwrap();
    let sleep = format!("sleep:{AN_HOUR_MS}");
    for name in ["sleeper-a", "sleeper-b"] {
        pipelines.create(spec(name, "hostile", 0)).unwrap();
        let pairs = (0..6).map(|i| (format!("k{i}"), sleep.clone()));
        topics::append(&storage, &format!("{name}-in"), pairs);
    }
    pipelines.create(spec("bystander", "scripted", 0)).unwrap();
    let sent = Instant::now();
    topics::append(
        &storage,
        "bystander-in",
        [("k".to_string(), "hello".to_string())],
    );

    let s = storage.clone();
    let out = within(BOUND, "the bystander pipeline", move || {
        wait_for(&s, "bystander-out", 1)
    });
    assert_eq!(out[0].value, b"hello");
    // It waited for a slot about one deadline (300 ms) at most, not the hour the
    // sleepers asked for; the bound leaves room for a loaded machine.
    let delay = sent.elapsed();
    assert!(
        delay < Duration::from_millis(1500),
        "the bystander waited {delay:?}"
    );

    for name in ["sleeper-a", "sleeper-b"] {
        let s = storage.clone();
        let topic = format!("{name}-err");
        let errors = within(BOUND, "the sleepers' dead letters", move || {
            wait_for(&s, &topic, 6)
        });
        assert_eq!(errors.len(), 6, "{errors:?}");
        for failed in &errors {
            assert_eq!(
                failed.header(headers::ERROR_CAUSE),
                Some("timeout"),
                "{failed:?}"
            );
            assert_eq!(
                failed.value,
                sleep.as_bytes(),
                "the original message is kept"
            );
        }
    }

    // A delete while a guest sleeps answers once the call's deadline has passed.
    topics::append(&storage, "sleeper-a-in", [("k".to_string(), sleep.clone())]);
    let p = pipelines.clone();
    within(BOUND, "delete of a sleeping pipeline", move || {
        p.delete("sleeper-a")
    })
    .unwrap();
    let p = pipelines.clone();
    within(BOUND, "shutdown", move || p.shutdown());
}

// ---- the same over HTTP, against the broker binary ----------------------------------

mod over_http {
    use std::time::{Duration, Instant};

    use reqwest::StatusCode;
    use serde_json::{json, Value};

    use rustmq_etl_tests::broker::BrokerProcess;
    use rustmq_etl_tests::guests;
    use rustmq_etl_tests::http::{
        admin_delete, admin_post, consume, error_code, produce, upload_module,
    };

    /// The pipeline's deadline per call.
    const TIMEOUT_MS: u64 = 1_000;

    /// How long stop, DELETE and shutdown may take while a guest sleeps: the call's
    /// deadline, then the commit of what was handled before it, with room for a
    /// loaded test machine; far below the 20 s the guest asks for.
    const ANSWER_BOUND: Duration = Duration::from_secs(8);

    fn hostile_broker() -> BrokerProcess {
        let b = BrokerProcess::start("");
        let (status, v) = upload_module(
            &b,
            "hostile",
            "1.0.0",
            std::fs::read(guests::HOSTILE).unwrap(),
        );
        assert_eq!(status, StatusCode::CREATED, "{v}");
        b
    }

    fn pipeline(name: &str, params: Value) -> Value {
        json!({
            "pipeline_name": name,
            "source_topic": format!("{name}-in"),
            "destination_topic": format!("{name}-out"),
            "error_topic": format!("{name}-err"),
            "module_name": "hostile",
            "module_version": "^1",
            "configuration": {
                "batch_size": 10,
                "timeout_ms": TIMEOUT_MS,
                "retry_policy": {"max_retries": 0, "backoff_ms": 1},
                "params": params
            }
        })
    }

    /// The message at `offset` of `topic`, waiting for it up to `limit`.
    fn next_message(b: &BrokerProcess, topic: &str, offset: u64, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let query = format!(
                "offset={offset}&max_messages=1&wait_ms={}",
                left.as_millis()
            );
            let (status, v) = consume(b, topic, &query);
            if status == StatusCode::OK {
                if let Some(m) = v["messages"].as_array().and_then(|m| m.first()) {
                    return m.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no message at {topic}@{offset} within {limit:?} ({status}: {v})"
            );
        }
    }

    fn produce_value(b: &BrokerProcess, topic: &str, value: &str) {
        let (status, v) = produce(b, topic, &json!({"key": "k", "value": value}));
        assert_eq!(status, StatusCode::OK, "{v}");
    }

    /// Runs `f` and returns its answer with how long it took.
    fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
        let started = Instant::now();
        let out = f();
        (out, started.elapsed())
    }

    #[test]
    fn a_guest_asleep_for_20_s_is_dead_lettered_at_its_deadline_and_the_next_message_follows() {
        let b = hostile_broker();
        let (status, v) = admin_post(&b, "/api/v1/etl/pipelines", &pipeline("p", json!({})));
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let id = v["pipeline_id"].as_str().unwrap().to_string();

        let started = Instant::now();
        produce_value(&b, "p-in", "sleep:20000");
        produce_value(&b, "p-in", "after");
        let failed = next_message(&b, "p-err", 0, Duration::from_secs(15));
        let dead_lettered = started.elapsed();
        assert_eq!(
            failed["headers"]["x-rustmq-error-cause"], "timeout",
            "{failed}"
        );
        assert_eq!(failed["headers"]["x-rustmq-attempts"], "1", "{failed}");
        assert_eq!(
            failed["value"], "sleep:20000",
            "the original message is kept"
        );
        let out = next_message(&b, "p-out", 0, Duration::from_secs(15));
        assert_eq!(out["value"], "after");
        // About one deadline, nowhere near the 20 s asked for.
        assert!(
            dead_lettered < Duration::from_secs(5),
            "dead-lettered after {dead_lettered:?}"
        );

        // Stop while a guest sleeps: answered once the call's deadline has passed.
        produce_value(&b, "p-in", "sleep:20000");
        let (answer, took) =
            timed(|| admin_post(&b, &format!("/api/v1/etl/pipelines/{id}/stop"), &json!({})));
        assert_eq!(answer.0, StatusCode::OK, "{}", answer.1);
        assert!(took < ANSWER_BOUND, "stop answered after {took:?}");

        // Start again (the sleeping message is read again), then DELETE mid-sleep.
        let (status, v) = admin_post(&b, &format!("/api/v1/etl/pipelines/{id}/start"), &json!({}));
        assert_eq!(status, StatusCode::OK, "{v}");
        let (answer, took) = timed(|| admin_delete(&b, &format!("/api/v1/etl/pipelines/{id}")));
        assert!(answer.0.is_success(), "{}", answer.1);
        assert!(took < ANSWER_BOUND, "DELETE answered after {took:?}");
    }

    #[test]
    fn a_sleeping_init_fails_creation_within_the_deadline_and_sigterm_exits_cleanly() {
        let mut b = hostile_broker();
        let (answer, took) = timed(|| {
            admin_post(
                &b,
                "/api/v1/etl/pipelines",
                &pipeline("p", json!({"init": "sleep"})),
            )
        });
        let code = error_code(answer.0, &answer.1, StatusCode::UNPROCESSABLE_ENTITY);
        let message = answer.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{TIMEOUT_MS} ms")),
            "{code}: {message}"
        );
        assert!(took < ANSWER_BOUND, "creation answered after {took:?}");

        // A broker with a running pipeline whose guest sleeps shuts down in time too.
        let (status, v) = admin_post(&b, "/api/v1/etl/pipelines", &pipeline("q", json!({})));
        assert_eq!(status, StatusCode::CREATED, "{v}");
        produce_value(&b, "q-in", "sleep:20000");
        let (exit, took) = timed(|| b.sigterm());
        assert!(exit.success(), "exit {exit:?}; log:\n{}", b.log());
        assert!(took < ANSWER_BOUND, "shutdown took {took:?}");
        let log = b.log();
        assert!(!log.contains("panicked"), "log:\n{log}");
    }
}
