//! The pipeline engine in process: storage, module store, runtime and manager wired
//! as the broker wires them, driven with the `scripted` test component.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rustmq_etl::message::Message;
use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::spec::{ConfigurationPatch, PipelinePatch, PipelineSpec, StartFrom};
use rustmq_etl::pipeline::worker::headers;
use rustmq_etl::pipeline::{PipelineError, PipelineManager};
use rustmq_etl::runtime::{Runtime, RuntimeLimits, TransformError};
use rustmq_etl::storage::{Storage, StorageOptions};
use rustmq_etl_tests::{guests, topics};

/// Everything a pipeline needs, in a temporary directory.
struct Rig {
    dir: tempfile::TempDir,
    storage: Storage,
    modules: ModuleStore,
    pipelines: PipelineManager,
}

fn limits() -> RuntimeLimits {
    RuntimeLimits {
        memory_limit_bytes: 16 * 1024 * 1024,
        execution_timeout_ms: 2_000,
        max_instances: 16,
        ..RuntimeLimits::default()
    }
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        Rig::open(dir)
    }

    fn open(dir: tempfile::TempDir) -> Rig {
        let storage = Storage::open(&dir.path().join("data"), StorageOptions::default()).unwrap();
        let runtime = Runtime::new(limits()).unwrap();
        let modules =
            ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).unwrap();
        let pipelines = PipelineManager::open(storage.clone(), modules.clone()).unwrap();
        Rig {
            dir,
            storage,
            modules,
            pipelines,
        }
    }

    /// Shuts everything down and opens it again from disk, as a broker restart does.
    fn restart(self) -> Rig {
        self.pipelines.shutdown();
        let Rig {
            dir,
            storage,
            modules,
            pipelines,
        } = self;
        drop(pipelines);
        drop(modules);
        storage.close();
        drop(storage);
        let rig = Rig::open(dir);
        rig.pipelines.resume();
        rig
    }

    fn upload(&self, name: &str, version: &str, path: &str) {
        let bytes = std::fs::read(path).unwrap();
        self.modules.upload(name, version, &bytes).unwrap();
    }

    fn produce(&self, topic: &str, values: &[&str]) {
        let pairs = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), v.to_string()));
        topics::append(&self.storage, topic, pairs);
    }

    fn read(&self, topic: &str) -> Vec<Message> {
        topics::read_all(&self.storage, topic)
    }

    /// Waits until pipeline `id` has committed everything in `source` (or `deadline`
    /// passes, which fails the test).
    fn drain(&self, id: &str, source: &str) {
        let end = self.storage.end_offset(source).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.pipelines.status(id).unwrap();
            // The metrics' offset moves after the batch's counters are updated.
            if self.pipelines.metrics(id).unwrap().committed_offset >= end {
                return;
            }
            assert!(
                status.status == rustmq_etl::pipeline::RunStatus::Running,
                "pipeline stopped before draining: {status:?}"
            );
            assert!(
                Instant::now() < deadline,
                "pipeline did not drain: {status:?}"
            );
            // Progress shows up as commits to the destination: wait on those.
            let dest_end = self
                .storage
                .end_offset(&status.destination_topic)
                .unwrap_or(0);
            self.storage.wait_for_blocking(
                &status.destination_topic,
                dest_end,
                Duration::from_millis(20),
            );
        }
    }

    fn wait_for_status(&self, id: &str, want: &str) -> rustmq_etl::pipeline::PipelineStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let status = self.pipelines.status(id).unwrap();
            if status.status == want {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pipeline never became {want}: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A `scripted` pipeline `name` (topics `{name}-in`, `{name}-out`), retrying twice.
fn spec(name: &str, error_topic: Option<&str>) -> PipelineSpec {
    let mut spec = rustmq_etl_tests::pipelines::spec(name, "scripted", 2);
    spec.error_topic = error_topic.map(str::to_string);
    spec
}

fn values(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(&m.value).into_owned())
        .collect()
}

#[test]
fn outputs_are_transformed_filtered_and_fanned_out_in_order() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p1-in", &["a", "filter", "fanout:3", "b"]);
    let id = rig
        .pipelines
        .create(spec("p1", Some("p1-err")))
        .unwrap()
        .pipeline_id;
    rig.drain(&id, "p1-in");
    let out = rig.read("p1-out");
    assert_eq!(values(&out), ["a", "fanout:3", "fanout:3", "fanout:3", "b"]);
    assert_eq!(out[2].header("index"), Some("1"));
    assert_eq!(out[0].header(headers::MODULE), Some("scripted-v1.0.0"));
    assert_eq!(out[0].header(headers::MODULE_VERSION), Some("1.0.0"));
    let m = rig.pipelines.metrics(&id).unwrap();
    assert_eq!(
        (m.messages_processed, m.messages_filtered, m.messages_failed),
        (4, 1, 0)
    );
    assert_eq!(m.messages_produced, 5);
    assert_eq!(m.lag, 0);
    assert!(rig.read("p1-err").is_empty());
}

#[test]
fn dead_letters_go_to_the_error_topic_at_once() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p2-in", &["dead", "ok"]);
    let id = rig
        .pipelines
        .create(spec("p2", Some("p2-err")))
        .unwrap()
        .pipeline_id;
    rig.drain(&id, "p2-in");
    let errors = rig.read("p2-err");
    assert_eq!(values(&errors), ["dead"]);
    assert_eq!(errors[0].header(headers::ERROR_CAUSE), Some("dead_letter"));
    assert_eq!(
        errors[0].header(headers::ERROR),
        Some("scripted dead letter")
    );
    assert_eq!(errors[0].header(headers::ATTEMPTS), Some("1"));
    assert_eq!(errors[0].header(headers::SOURCE_OFFSET), Some("0"));
    assert_eq!(errors[0].header(headers::SOURCE_TOPIC), Some("p2-in"));
    assert_eq!(values(&rig.read("p2-out")), ["ok"]);
    assert_eq!(rig.pipelines.metrics(&id).unwrap().retries, 0);
}

#[test]
fn failures_are_retried_then_routed_with_their_attempt_count() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p3-in", &["fail", "fail-once", "ok"]);
    let id = rig
        .pipelines
        .create(spec("p3", Some("p3-err")))
        .unwrap()
        .pipeline_id;
    rig.drain(&id, "p3-in");
    let errors = rig.read("p3-err");
    assert_eq!(values(&errors), ["fail"]);
    assert_eq!(errors[0].header(headers::ATTEMPTS), Some("3"));
    assert_eq!(errors[0].header(headers::ERROR_CAUSE), Some("module_error"));
    let out = rig.read("p3-out");
    assert_eq!(values(&out), ["fail-once", "ok"]);
    assert_eq!(out[0].header("attempt"), Some("2"));
    let m = rig.pipelines.metrics(&id).unwrap();
    assert_eq!(m.retries, 3, "two for `fail`, one for `fail-once`");
    assert_eq!(m.messages_failed, 1);
}

#[test]
fn a_poison_message_does_not_stall_the_pipeline() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p4-in", &["trap", "a", "loop", "b"]);
    let mut s = spec("p4", Some("p4-err"));
    s.configuration.timeout_ms = Some(200);
    s.configuration.retry_policy.max_retries = 1;
    let id = rig.pipelines.create(s).unwrap().pipeline_id;
    rig.drain(&id, "p4-in");
    let errors = rig.read("p4-err");
    assert_eq!(values(&errors), ["trap", "loop"]);
    assert_eq!(errors[0].header(headers::ERROR_CAUSE), Some("trap"));
    assert_eq!(errors[1].header(headers::ERROR_CAUSE), Some("timeout"));
    assert_eq!(values(&rig.read("p4-out")), ["a", "b"]);
    let m = rig.pipelines.metrics(&id).unwrap();
    assert!(
        m.instance_recycles >= 4,
        "each fault discards the instance: {m:?}"
    );
}

#[test]
fn without_an_error_topic_a_failure_stops_the_pipeline_and_loses_nothing() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p5-in", &["a", "fail", "b"]);
    let id = rig.pipelines.create(spec("p5", None)).unwrap().pipeline_id;
    let status = rig.wait_for_status(&id, "failed");
    assert_eq!(
        status.committed_offset, 1,
        "only the message before the failure is committed"
    );
    let reason = status.failure.unwrap();
    assert!(
        reason.contains("offset 1") && reason.contains("error_topic"),
        "{reason}"
    );
    assert_eq!(values(&rig.read("p5-out")), ["a"]);
    // Give it an error topic: it resumes at the failed message.
    rig.pipelines
        .update(
            &id,
            PipelinePatch {
                error_topic: Some("p5-err".into()),
                ..Default::default()
            },
        )
        .unwrap();
    rig.pipelines.start(&id).unwrap();
    rig.drain(&id, "p5-in");
    assert_eq!(values(&rig.read("p5-out")), ["a", "b"]);
    assert_eq!(values(&rig.read("p5-err")), ["fail"]);
}

#[test]
fn init_refusing_the_parameters_fails_creation_with_its_message() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    let mut s = spec("p6", Some("p6-err"));
    s.configuration.params =
        BTreeMap::from([("refuse".to_string(), "region must be set".to_string())]);
    match rig.pipelines.create(s) {
        Err(PipelineError::Start(TransformError::InitRefused(msg))) => {
            assert!(msg.contains("region must be set"), "{msg}")
        }
        other => panic!("expected an init refusal, got {other:?}"),
    }
    assert!(rig.pipelines.list().is_empty(), "nothing is created");
}

#[test]
fn parameters_reach_the_module() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p7-in", &["a"]);
    let mut s = spec("p7", Some("p7-err"));
    s.configuration.params = BTreeMap::from([("tag".to_string(), "blue".to_string())]);
    let id = rig.pipelines.create(s).unwrap().pipeline_id;
    rig.drain(&id, "p7-in");
    assert_eq!(rig.read("p7-out")[0].header("tag"), Some("blue"));
}

#[test]
fn a_pipeline_stays_pinned_until_patched_and_can_roll_back() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    let id = rig
        .pipelines
        .create(spec("p8", Some("p8-err")))
        .unwrap()
        .pipeline_id;
    assert_eq!(rig.pipelines.status(&id).unwrap().module_version, "1.0.0");
    // A newer matching version does not move the pipeline.
    rig.upload("scripted", "1.1.0", guests::SCRIPTED);
    rig.produce("p8-in", &["a"]);
    rig.drain(&id, "p8-in");
    assert_eq!(
        rig.read("p8-out")[0].header(headers::MODULE_VERSION),
        Some("1.0.0")
    );
    // Upgrade.
    let s = rig
        .pipelines
        .update(
            &id,
            PipelinePatch {
                module_version: Some("1.1.0".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(s.module_version, "1.1.0");
    rig.produce("p8-in", &["b"]);
    rig.drain(&id, "p8-in");
    assert_eq!(
        rig.read("p8-out")[1].header(headers::MODULE_VERSION),
        Some("1.1.0")
    );
    // Roll back.
    rig.pipelines
        .update(
            &id,
            PipelinePatch {
                module_version: Some("1.0.0".into()),
                ..Default::default()
            },
        )
        .unwrap();
    rig.produce("p8-in", &["c"]);
    rig.drain(&id, "p8-in");
    assert_eq!(
        rig.read("p8-out")[2].header(headers::MODULE_VERSION),
        Some("1.0.0")
    );
}

#[test]
fn hot_swap_under_load_loses_and_duplicates_nothing() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.upload("scripted", "2.0.0", guests::SCRIPTED);
    let id = rig
        .pipelines
        .create(spec("p9", Some("p9-err")))
        .unwrap()
        .pipeline_id;
    const N: usize = 2_000;
    std::thread::scope(|s| {
        s.spawn(|| {
            for chunk in 0..(N / 100) {
                let msgs = (0..100)
                    .map(|i| Message {
                        key: Some(format!("{}", chunk * 100 + i)),
                        value: b"x".to_vec(),
                        headers: vec![],
                        timestamp: 1,
                    })
                    .collect();
                rig.storage.append_blocking("p9-in", msgs).unwrap();
            }
        });
        for round in 0..6 {
            let version = if round % 2 == 0 { "2.0.0" } else { "1.0.0" };
            rig.pipelines
                .update(
                    &id,
                    PipelinePatch {
                        module_version: Some(version.into()),
                        ..Default::default()
                    },
                )
                .unwrap();
        }
    });
    rig.drain(&id, "p9-in");
    let out = rig.read("p9-out");
    let keys: Vec<usize> = out
        .iter()
        .map(|m| m.key.as_deref().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        keys,
        (0..N).collect::<Vec<_>>(),
        "every input exactly once, in order"
    );
    assert!(rig.read("p9-err").is_empty());
    // Outputs switch version only at batch boundaries and end on the last one.
    assert_eq!(
        out.last().unwrap().header(headers::MODULE_VERSION),
        Some("1.0.0")
    );
}

#[test]
fn pipelines_and_offsets_survive_a_restart() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p10-in", &["a", "b"]);
    let id = rig
        .pipelines
        .create(spec("p10", Some("p10-err")))
        .unwrap()
        .pipeline_id;
    rig.drain(&id, "p10-in");
    let compiled_before = rig.modules.stats().compilations;
    assert_eq!(compiled_before, 1);
    let rig = rig.restart();
    assert_eq!(rig.pipelines.status(&id).unwrap().status, "running");
    rig.produce("p10-in", &["c"]);
    rig.drain(&id, "p10-in");
    assert_eq!(values(&rig.read("p10-out")), ["a", "b", "c"]);
    let stats = rig.modules.stats();
    assert_eq!(
        stats.compilations, 0,
        "the restart loads compiled code from the cache"
    );
    assert_eq!(stats.cache_loads, 1);
}

#[test]
fn a_stopped_pipeline_stays_stopped_across_a_restart() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    let id = rig
        .pipelines
        .create(spec("p11", Some("p11-err")))
        .unwrap()
        .pipeline_id;
    rig.pipelines.stop(&id).unwrap();
    let rig = rig.restart();
    assert_eq!(rig.pipelines.status(&id).unwrap().status, "stopped");
    rig.produce("p11-in", &["a"]);
    rig.pipelines.start("p11").unwrap();
    rig.drain(&id, "p11-in");
    assert_eq!(values(&rig.read("p11-out")), ["a"]);
}

#[test]
fn start_from_latest_skips_earlier_messages() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p12-in", &["old"]);
    let mut s = spec("p12", Some("p12-err"));
    s.start_from = StartFrom::Latest;
    let id = rig.pipelines.create(s).unwrap().pipeline_id;
    rig.produce("p12-in", &["new"]);
    rig.drain(&id, "p12-in");
    assert_eq!(values(&rig.read("p12-out")), ["new"]);
}

#[test]
fn configuration_changes_apply_while_running() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    let id = rig
        .pipelines
        .create(spec("p13", Some("p13-err")))
        .unwrap()
        .pipeline_id;
    let patch = PipelinePatch {
        configuration: Some(ConfigurationPatch {
            params: Some(BTreeMap::from([("tag".to_string(), "green".to_string())])),
            batch_size: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    };
    let s = rig.pipelines.update(&id, patch).unwrap();
    assert_eq!(s.configuration.batch_size, 1);
    rig.produce("p13-in", &["a"]);
    rig.drain(&id, "p13-in");
    assert_eq!(rig.read("p13-out")[0].header("tag"), Some("green"));
}

#[test]
fn unknown_modules_and_unmatched_versions_are_refused() {
    let rig = Rig::new();
    let err = rig
        .pipelines
        .create(spec("p14", None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("scripted") && err.contains("none"), "{err}");
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    let mut s = spec("p14", None);
    s.module_version = "^2".into();
    let err = rig.pipelines.create(s).unwrap_err().to_string();
    assert!(err.contains("^2") && err.contains("1.0.0"), "{err}");
}

#[test]
fn a_pipeline_timeout_cannot_exceed_the_broker_limit() {
    let rig = Rig::new();
    rig.upload("scripted", "1.0.0", guests::SCRIPTED);
    rig.produce("p15-in", &["loop", "a"]);
    let mut s = spec("p15", Some("p15-err"));
    s.configuration.timeout_ms = Some(600_000);
    s.configuration.retry_policy.max_retries = 0;
    let id = rig.pipelines.create(s).unwrap().pipeline_id;
    rig.drain(&id, "p15-in");
    let errors = rig.read("p15-err");
    assert_eq!(errors[0].header(headers::ERROR_CAUSE), Some("timeout"));
    let limit = format!("{} ms", limits().execution_timeout_ms);
    let error = errors[0].header(headers::ERROR).unwrap();
    assert!(error.contains(&limit), "{error}");
    assert_eq!(values(&rig.read("p15-out")), ["a"]);
}
