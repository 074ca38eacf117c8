//! A loop of SIGKILLs at pseudo-random points of a running pipeline: every source
//! message ends up exactly once in the destination or error topic, in order.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use rustmq_etl_tests::broker::BrokerProcess;
use rustmq_etl_tests::guests;

use super::*;

/// Resident set size of `pid` in bytes, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

/// xorshift64*: a seeded, dependency-free source of kill points.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Generous bound on the broker's resident memory during the kill loop.
const RSS_BOUND: u64 = 1 << 30;

#[test]
fn sigkill_loop_loses_and_duplicates_no_pipeline_message() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, None, "scripted", "1.0.0", guests::SCRIPTED);
    let id = create_pipeline(&b, None, "crashy", "scripted");
    kill_loop(b, "crashy", &id, 8);
}

#[test]
fn sigkill_loop_through_a_three_stage_chain_loses_and_duplicates_nothing() {
    let b = BrokerProcess::start("[etl]\nenabled = true\n");
    upload(&b, None, "scripted", "1.0.0", guests::SCRIPTED);
    let stage = json!({"module_name": "scripted", "module_version": "^1"});
    let (s, v) = json_of(
        client()
            .post(format!("{}/api/v1/etl/pipelines", b.admin_url))
            .json(&json!({
                "pipeline_name": "chained",
                "source_topic": "chained-in",
                "destination_topic": "chained-out",
                "error_topic": "chained-err",
                "modules": [stage, stage, stage],
                "configuration": {"batch_size": 7, "retry_policy": {"max_retries": 0, "backoff_ms": 1}}
            }))
            .send()
            .unwrap(),
    );
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["pipeline_id"].as_str().unwrap().to_string();
    kill_loop(b, "chained", &id, 6);
}

/// Produces 40 messages a round (one in five a dead letter), kills the broker at a
/// pseudo-random point while pipeline `id` (from `{name}-in` to `{name}-out` and
/// `{name}-err`) works through them, restarts it, and checks that every message is
/// in the destination or the error topic exactly once, in order.
fn kill_loop(mut b: BrokerProcess, name: &str, id: &str, kills: usize) {
    let seed = std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_cafe_u64);
    let mut rng = Rng(seed);
    let (input, output, errors) = (
        format!("{name}-in"),
        format!("{name}-out"),
        format!("{name}-err"),
    );
    let started = Instant::now();
    let mut produced = 0usize;
    for round in 0..kills {
        // A chunk of messages, one in five a dead letter, acknowledged before the kill.
        let chunk: Vec<(String, &str)> = (produced..produced + 40)
            .map(|i| (format!("s{i:05}"), if i % 5 == 0 { "dead" } else { "pass" }))
            .collect();
        produced += chunk.len();
        for part in chunk.chunks(10) {
            produce_batch(&b, &input, part);
        }
        // Kill at a pseudo-random point while the pipeline works through them.
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let pid = b.pid().unwrap();
        assert!(rss_bytes(pid) < RSS_BOUND, "broker RSS over the bound");
        b.sigkill();
        b.restart();

        // After the restart the pipeline resumes and accounts for every message once.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (out, err) = loop {
            let out = keys(&b, &output);
            let err = keys(&b, &errors);
            if out.len() + err.len() >= produced || Instant::now() > deadline {
                break (out, err);
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let expect_out: Vec<String> = (0..produced)
            .filter(|i| i % 5 != 0)
            .map(|i| format!("s{i:05}"))
            .collect();
        let expect_err: Vec<String> = (0..produced)
            .filter(|i| i % 5 == 0)
            .map(|i| format!("s{i:05}"))
            .collect();
        assert_eq!(
            out, expect_out,
            "destination after kill {round} (seed {seed})"
        );
        assert_eq!(
            err, expect_err,
            "error topic after kill {round} (seed {seed})"
        );
        let (s, status) = json_of(
            client()
                .get(format!("{}/api/v1/etl/pipelines/{id}/status", b.admin_url))
                .send()
                .unwrap(),
        );
        assert_eq!(s, StatusCode::OK);
        assert_eq!(status["status"], "running", "{status}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "the kill loop took {:?}",
        started.elapsed()
    );
}
