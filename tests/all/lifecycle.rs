//! The pipeline lifecycle under racing API calls, in process: at most one worker per
//! pipeline whatever the calls race, stop, delete and state resets take effect only
//! once the worker's last commit is done, and pipeline ids are never reused.
//!
//! Workers are counted by their threads: each runs on a thread named for its pipeline
//! (`/proc/self/task/*/comm`), so a second worker cannot hide. Each rig's ids start
//! far above any other test's (the id counter is set before the manager opens), so
//! the threads of tests running beside these are never counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use rustmq_etl::modules::ModuleStore;
use rustmq_etl::pipeline::spec::PipelineSpec;
use rustmq_etl::pipeline::PipelineManager;
use rustmq_etl::runtime::{Runtime, RuntimeLimits};
use rustmq_etl::storage::{MetaTable, Storage, StorageOptions};
use rustmq_etl_tests::{guests, pipelines, topics, within};

/// How long any one check here may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(60);

struct Rig {
    dir: tempfile::TempDir,
    storage: Storage,
    pipelines: PipelineManager,
}

impl Rig {
    fn new() -> Rig {
        Rig::open(tempfile::tempdir().unwrap())
    }

    fn open(dir: tempfile::TempDir) -> Rig {
        static NEXT_BASE: AtomicU64 = AtomicU64::new(1_000_000);
        let storage = Storage::open(&dir.path().join("data"), StorageOptions::default()).unwrap();
        if storage
            .meta_get(MetaTable::Counters, rustmq_etl::pipeline::LAST_PIPELINE_ID)
            .unwrap()
            .is_none()
        {
            let base = NEXT_BASE.fetch_add(1_000, Ordering::SeqCst);
            storage
                .meta_put(
                    MetaTable::Counters,
                    rustmq_etl::pipeline::LAST_PIPELINE_ID,
                    base.to_string().as_bytes(),
                )
                .unwrap();
        }
        let runtime = Runtime::new(RuntimeLimits {
            execution_timeout_ms: 2_000,
            max_instances: 16,
            ..RuntimeLimits::default()
        })
        .unwrap();
        let modules =
            ModuleStore::open(&dir.path().join("wasm"), storage.clone(), runtime).unwrap();
        for (name, path) in [("hostile", guests::HOSTILE), ("counter", guests::COUNTER)] {
            if modules.resolve(name, "1.0.0").is_err() {
                modules
                    .upload(name, "1.0.0", &std::fs::read(path).unwrap())
                    .unwrap();
            }
        }
        let pipelines = PipelineManager::open(storage.clone(), modules).unwrap();
        Rig {
            dir,
            storage,
            pipelines,
        }
    }

    /// Shuts everything down and opens it again from disk, as a broker restart does.
    fn restart(self) -> Rig {
        self.pipelines.shutdown();
        let Rig {
            dir,
            storage,
            pipelines,
        } = self;
        drop(pipelines);
        storage.close();
        drop(storage);
        let rig = Rig::open(dir);
        rig.pipelines.resume();
        rig
    }

    fn produce(&self, topic: &str, pairs: &[(&str, &str)]) {
        topics::append(
            &self.storage,
            topic,
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        );
    }

    /// Waits until `topic` holds at least `n` messages.
    fn wait_for(&self, topic: &str, n: u64) {
        let deadline = Instant::now() + BOUND;
        loop {
            let end = self.storage.end_offset(topic).unwrap_or(0);
            if end >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{topic} has {end} of {n} messages"
            );
            self.storage
                .wait_for_blocking(topic, end, Duration::from_millis(50));
        }
    }
}

fn spec(name: &str, module: &str, params: &[(&str, &str)], enabled: bool) -> PipelineSpec {
    let mut spec = pipelines::spec(name, module, 0);
    spec.configuration.params = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<BTreeMap<_, _>>();
    spec.enabled = enabled;
    spec
}

/// Asserts that pipeline `id` has `n` worker threads. A new thread carries its
/// creator's name until it names itself (a worker just started, the read-ahead a
/// worker just spawned), so a count that differs is looked at again for a while: a
/// second worker, or a missing one, stays.
fn assert_workers(id: &str, n: usize, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = workers(id);
        if seen == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{seen} worker threads {when}, want {n}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How many threads named for pipeline `id`'s worker there are.
fn workers(id: &str) -> usize {
    let name = rustmq_etl::pipeline::worker_thread_name(id);
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// Runs `f` on `n` threads released together, and returns their answers.
fn together<T: Send + 'static>(n: usize, f: impl Fn(usize) -> T + Send + Sync + 'static) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(n));
    let f = Arc::new(f);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, f) = (barrier.clone(), f.clone());
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

#[test]
fn concurrent_starts_leave_exactly_one_worker_and_nothing_runs_after_stop_or_delete() {
    let rig = Rig::new();
    // An `init` of 800 ms: the second start arrives while the first is in it.
    let status = rig
        .pipelines
        .create(spec("p", "hostile", &[("init", "slow:800")], false))
        .unwrap();
    let id = status.pipeline_id.clone();
    let p = rig.pipelines.clone();
    let answers = within(BOUND, "two racing starts", move || {
        together(3, move |i| {
            std::thread::sleep(Duration::from_millis(200 * i as u64));
            p.start("p").map(|s| s.status)
        })
    });
    for answer in answers {
        assert_eq!(answer.unwrap(), "running");
    }
    assert_workers(&id, 1, "after racing starts");

    rig.produce("p-in", &[("k", "first")]);
    rig.wait_for("p-out", 1);
    let stopped = rig.pipelines.stop(&id).unwrap();
    assert_eq!(stopped.status, "stopped");
    assert_workers(&id, 0, "after stop");

    // Stop then start while a call is in progress: one worker, every message once.
    rig.pipelines.start(&id).unwrap();
    rig.produce("p-in", &[("k", "sleep:700"), ("k", "second")]);
    let p = rig.pipelines.clone();
    let id2 = id.clone();
    within(BOUND, "stop and start racing", move || {
        together(2, move |i| {
            if i == 0 {
                p.stop(&id2).map(|_| ())
            } else {
                std::thread::sleep(Duration::from_millis(100));
                p.start(&id2).map(|_| ())
            }
        })
    })
    .into_iter()
    .for_each(|r| r.unwrap());
    assert_workers(&id, 1, "after a stop and a start raced");
    rig.pipelines.start(&id).unwrap();
    rig.wait_for("p-out", 3);
    let values: Vec<Vec<u8>> = topics::read_all(&rig.storage, "p-out")
        .into_iter()
        .map(|m| m.value)
        .collect();
    assert_eq!(
        values,
        [&b"first"[..], b"sleep:700", b"second"],
        "every message exactly once"
    );

    rig.pipelines.delete(&id).unwrap();
    assert_workers(&id, 0, "after delete");
    assert!(rig.pipelines.status(&id).is_err());
}

#[test]
fn a_pipeline_created_during_a_delete_gets_a_new_id_and_none_of_the_old_state() {
    let rig = Rig::new();
    let old = rig
        .pipelines
        .create(spec("old", "counter", &[], true))
        .unwrap()
        .pipeline_id;
    rig.produce("old-in", &[("secret", "a"), ("secret", "b")]);
    rig.wait_for("old-out", 2);
    assert_eq!(rig.pipelines.state(&old).unwrap().len(), 1);

    // A create lands while the delete waits for the worker: ids were the highest
    // remaining one plus one, so the new pipeline took the old one's.
    let p = rig.pipelines.clone();
    let old2 = old.clone();
    let created = within(BOUND, "a create racing a delete", move || {
        together(2, move |i| {
            if i == 0 {
                p.delete(&old2).map(|()| String::new())
            } else {
                std::thread::sleep(Duration::from_millis(50));
                p.create(spec("new", "counter", &[], true))
                    .map(|s| s.pipeline_id)
            }
        })
    });
    let new = created[1].as_ref().unwrap().clone();
    created[0].as_ref().unwrap();
    assert_ne!(new, old, "an id is never handed out twice");
    assert!(rig.pipelines.state(&new).unwrap().is_empty());
    rig.produce("new-in", &[("secret", "c")]);
    rig.wait_for("new-out", 1);
    let out = topics::read_all(&rig.storage, "new-out");
    assert_eq!(out[0].value, b"1", "the new pipeline counts from zero");

    // After a restart: the new pipeline is there, the old one is not, and the next id
    // is new again.
    let rig = rig.restart();
    let ids: Vec<String> = rig
        .pipelines
        .list()
        .into_iter()
        .map(|s| s.pipeline_id)
        .collect();
    assert_eq!(ids, std::slice::from_ref(&new));
    assert_eq!(rig.pipelines.state(&new).unwrap().len(), 1);
    rig.pipelines.delete(&new).unwrap();
    let rig = rig.restart();
    let third = rig
        .pipelines
        .create(spec("third", "counter", &[], false))
        .unwrap()
        .pipeline_id;
    assert!(third != old && third != new, "{third} reuses an id");
}

#[test]
fn a_state_reset_racing_a_stop_waits_for_the_last_commit_and_the_state_stays_deleted() {
    let rig = Rig::new();
    let id = rig
        .pipelines
        .create(spec("c", "counter", &[], true))
        .unwrap()
        .pipeline_id;
    rig.produce("c-in", &[("k", "x")]);
    rig.wait_for("c-out", 1);
    // The worker, idle and waiting, takes this at once: the stop and the reset below
    // arrive while it sleeps in the call, with its commit still to come. (The pause
    // only makes that likely; the outcome must hold whenever they arrive.)
    rig.produce("c-in", &[("k", "sleep:1500")]);
    std::thread::sleep(Duration::from_millis(200));
    let p = rig.pipelines.clone();
    let id2 = id.clone();
    let answers = within(BOUND, "a reset racing a stop", move || {
        together(2, move |i| {
            if i == 0 {
                p.stop(&id2).map(|_| None)
            } else {
                std::thread::sleep(Duration::from_millis(100));
                p.reset_state(&id2).map(Some)
            }
        })
    });
    answers[0].as_ref().unwrap();
    match &answers[1] {
        // It waited for the stop's last commit, then deleted: nothing comes back.
        Ok(Some(deleted)) => {
            assert_eq!(*deleted, 1);
            assert!(
                rig.pipelines.state(&id).unwrap().is_empty(),
                "the stopping worker wrote state back after the reset"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Waits until pipeline `id`'s status is `want`.
fn wait_for_status(rig: &Rig, id: &str, want: &str) -> rustmq_etl::pipeline::PipelineStatus {
    let deadline = Instant::now() + BOUND;
    loop {
        let status = rig.pipelines.status(id).unwrap();
        if status.status == want {
            return status;
        }
        assert!(Instant::now() < deadline, "never {want}: {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(key, value)` of each message in `topic`.
fn pairs(rig: &Rig, topic: &str) -> Vec<(String, String)> {
    topics::read_all(&rig.storage, topic)
        .into_iter()
        .map(|m| {
            (
                m.key.unwrap_or_default(),
                String::from_utf8(m.value).unwrap(),
            )
        })
        .collect()
}

/// The committed state as `(key, value)` text pairs.
fn state(rig: &Rig, id: &str) -> Vec<(String, String)> {
    rig.pipelines
        .state(id)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v).unwrap()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_dead_letter_with_no_error_topic_leaves_the_state_the_committed_outputs_imply() {
    use rustmq_etl::pipeline::spec::{PipelinePatch, ProcessingMode};
    for mode in [ProcessingMode::SingleMessage, ProcessingMode::Batch] {
        let rig = Rig::new();
        let mut s = spec("c", "counter", &[], true);
        s.error_topic = None;
        s.configuration.processing_mode = mode;
        let id = rig.pipelines.create(s).unwrap().pipeline_id;
        rig.produce(
            "c-in",
            &[("c", "x"), ("c", "dead-letter"), ("c", "x"), ("d", "x")],
        );
        let failed = wait_for_status(&rig, &id, "failed");
        assert!(
            failed.failure.as_deref().unwrap_or("").contains("offset 1"),
            "{mode:?}: {failed:?}"
        );
        // Only the first message is committed, and the state is what it implies.
        assert_eq!(pairs(&rig, "c-out"), owned(&[("c", "1")]), "{mode:?}");
        assert_eq!(state(&rig, &id), owned(&[("c", "1")]), "{mode:?}");

        // With an error topic the rest goes through: the dead letter's count stands,
        // committed with its error-topic message, and the outputs run on from it.
        let patch = PipelinePatch {
            error_topic: Some("c-err".into()),
            ..PipelinePatch::default()
        };
        rig.pipelines.update(&id, patch).unwrap();
        rig.pipelines.start(&id).unwrap();
        rig.wait_for("c-out", 3);
        rig.wait_for("c-err", 1);
        assert_eq!(
            pairs(&rig, "c-out"),
            owned(&[("c", "1"), ("c", "3"), ("d", "1")]),
            "{mode:?}"
        );
        assert_eq!(
            state(&rig, &id),
            owned(&[("c", "3"), ("d", "1")]),
            "{mode:?}"
        );
    }
}

#[test]
fn status_metrics_and_changes_racing_a_delete_answer_or_say_not_found() {
    use rustmq_etl::pipeline::spec::PipelinePatch;
    use rustmq_etl::pipeline::PipelineError;
    let rig = Rig::new();
    for round in 0..20 {
        let name = format!("racer-{round}");
        let id = rig
            .pipelines
            .create(spec(&name, "counter", &[], true))
            .unwrap()
            .pipeline_id;
        let p = rig.pipelines.clone();
        let answers = within(BOUND, "calls racing a delete", move || {
            together(6, move |i| {
                // Each caller keeps asking until the pipeline is gone, so that some
                // call falls between its lookup and its use of the entry.
                for _ in 0..100_000 {
                    let outcome = match i {
                        0 => p.delete(&id).map(|_| ()),
                        1 => p.status(&id).map(|_| ()),
                        2 => p.metrics(&id).map(|_| ()),
                        3 => p.update(&id, PipelinePatch::default()).map(|_| ()),
                        4 => p.stop(&id).map(|_| ()),
                        _ => p.state_page(&id, None, 10, 1024).map(|_| ()),
                    };
                    if i == 0 || outcome.is_err() {
                        return (i, outcome);
                    }
                }
                (i, Ok(()))
            })
        });
        for (i, outcome) in answers {
            match outcome {
                Ok(()) | Err(PipelineError::NotFound(_)) => {}
                Err(e) => panic!("round {round}, call {i}: {e}"),
            }
        }
        assert!(
            rig.pipelines.status(&name).is_err(),
            "round {round}: not deleted"
        );
    }
}

#[test]
fn a_source_topic_created_again_stops_the_pipeline_with_the_reason_until_started_again() {
    let rig = Rig::new();
    let values = |n: usize, tag: &str| -> Vec<(String, String)> {
        (0..n)
            .map(|i| ("k".to_string(), format!("{tag}-{i}")))
            .collect()
    };
    let out = |rig: &Rig| -> Vec<String> {
        topics::read_all(&rig.storage, "t-out")
            .into_iter()
            .map(|m| String::from_utf8(m.value).unwrap())
            .collect()
    };
    topics::append(&rig.storage, "t-in", values(3, "old"));
    let id = rig
        .pipelines
        .create(spec("t", "hostile", &[], true))
        .unwrap()
        .pipeline_id;
    rig.wait_for("t-out", 3);

    // Created again under the running pipeline, with more messages than its
    // position: it stops, saying why, instead of reading on from offset 3.
    rig.storage.delete_topic("t-in").unwrap();
    topics::append(&rig.storage, "t-in", values(5, "new"));
    let failed = wait_for_status(&rig, &id, "failed");
    let why = failed.failure.unwrap_or_default();
    assert!(why.contains("deleted and created again"), "{why}");
    assert_eq!(out(&rig).len(), 3, "nothing read at the old position");

    // A restart keeps it failed.
    let rig = rig.restart();
    assert_eq!(rig.pipelines.status(&id).unwrap().status, "failed");

    // Started by the operator: the new topic from its first message.
    rig.pipelines.start(&id).unwrap();
    rig.wait_for("t-out", 8);
    let expected: Vec<String> = (0..3)
        .map(|i| format!("old-{i}"))
        .chain((0..5).map(|i| format!("new-{i}")))
        .collect();
    assert_eq!(
        out(&rig),
        expected,
        "each incarnation read from its first message, once"
    );
}

#[test]
fn a_resume_after_the_source_topic_was_created_again_fails_with_the_reason() {
    let rig = Rig::new();
    topics::append(&rig.storage, "r-in", [("k".to_string(), "a".to_string())]);
    let id = rig
        .pipelines
        .create(spec("r", "hostile", &[], true))
        .unwrap()
        .pipeline_id;
    rig.wait_for("r-out", 1);
    // The broker goes down with the pipeline running; the topic is created again.
    rig.pipelines.shutdown();
    rig.storage.delete_topic("r-in").unwrap();
    topics::append(
        &rig.storage,
        "r-in",
        (0..3).map(|i| ("k".to_string(), format!("b{i}"))),
    );
    let rig = rig.restart();
    let status = wait_for_status(&rig, &id, "failed");
    let why = status.failure.unwrap_or_default();
    assert!(why.contains("deleted and created again"), "{why}");
    assert_eq!(topics::read_all(&rig.storage, "r-out").len(), 1);
    // Started by the operator: the new topic from its first message.
    rig.pipelines.start(&id).unwrap();
    rig.wait_for("r-out", 4);
}
