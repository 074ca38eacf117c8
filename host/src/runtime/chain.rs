//! [`ChainTransform`]: several modules run as one [`Transform`], each stage's
//! outputs the next stage's inputs (filters and fan-outs compose), so a pipeline
//! runs a chain within one commit per batch.
//!
//! - A call's answer is the last stage's outputs; only the last stage may route
//!   outputs to other topics.
//! - A stage that fails (an error, a trap, a timeout) fails the whole call and is
//!   remembered ([`Transform::failed_stage`]) so that the pipeline can name it; the
//!   pipeline retries the whole chain, whose earlier stages' state changes of the
//!   failed try were discarded with it, so each try is one consistent pass.
//! - What one source message makes a stage emit, over all of that stage's calls, is
//!   held to the per-call output caps: fan-outs cannot multiply from stage to stage.
//! - Each stage counts what it did ([`StageCounters`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{ProcessContext, ProcessOutput, Transform, TransformError};
use crate::message::Message;
use crate::state::SharedState;

/// The most stages a chain may have.
pub const MAX_STAGES: usize = 8;

/// Longest call time the stage histograms track (60 s, in microseconds).
const MAX_TRACKED_MICROS: u64 = 60_000_000;

/// One stage: its live transform and the exact module it runs.
pub struct Stage {
    /// The instance.
    pub transform: Box<dyn Transform>,
    /// `name-v1.2.3`.
    pub module_id: String,
    /// `1.2.3`.
    pub version: String,
    /// What it did.
    pub counters: Arc<StageCounters>,
}

/// What a stage did since its chain was loaded.
#[derive(Debug)]
pub struct StageCounters {
    module_id: String,
    processed: AtomicU64,
    filtered: AtomicU64,
    failed: AtomicU64,
    histogram: Mutex<hdrhistogram::Histogram<u64>>,
}

impl StageCounters {
    /// Fresh counters of a stage running `module_id`.
    pub fn new(module_id: &str) -> Arc<StageCounters> {
        Arc::new(StageCounters {
            module_id: module_id.to_string(),
            processed: AtomicU64::new(0),
            filtered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            histogram: Mutex::new(
                hdrhistogram::Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 2)
                    .expect("static histogram bounds are valid"),
            ),
        })
    }

    /// A copy for the metrics routes; `stage` is its index in the chain.
    pub fn snapshot(&self, stage: usize) -> StageMetrics {
        let (p50, p99) = {
            let h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
            if h.is_empty() {
                (0.0, 0.0)
            } else {
                (
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            }
        };
        StageMetrics {
            stage,
            module_id: self.module_id.clone(),
            messages_processed: self.processed.load(Ordering::Relaxed),
            messages_filtered: self.filtered.load(Ordering::Relaxed),
            messages_failed: self.failed.load(Ordering::Relaxed),
            p50_processing_time_ms: p50,
            p99_processing_time_ms: p99,
        }
    }

    fn record(&self, micros: u64) {
        let mut h = self.histogram.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(micros.clamp(1, MAX_TRACKED_MICROS));
    }
}

/// One stage's metrics, as `GET .../metrics` shows them under `stages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageMetrics {
    /// Its index in the chain, from 0.
    pub stage: usize,
    /// The exact module it runs.
    pub module_id: String,
    /// Messages it handled without error (each input of each call).
    pub messages_processed: u64,
    /// Of those, the ones it filtered out.
    pub messages_filtered: u64,
    /// Calls that failed in it.
    pub messages_failed: u64,
    /// Median call time, ms.
    pub p50_processing_time_ms: f64,
    /// 99th percentile call time, ms.
    pub p99_processing_time_ms: f64,
}

/// The stage that failed last, as a pipeline's error headers name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedStage {
    /// Its index, from 0.
    pub index: usize,
    /// `name-v1.2.3`.
    pub module_id: String,
    /// `1.2.3`.
    pub version: String,
}

/// Stages run as one transform.
pub struct ChainTransform {
    stages: Vec<Stage>,
    /// The per-call caps, applied to what one source message makes each stage emit.
    max_output_messages: usize,
    max_output_bytes: usize,
    failed: Option<usize>,
}

impl ChainTransform {
    /// A chain of `stages` (at least one), each stage's outputs for one source
    /// message held to `max_output_messages` and `max_output_bytes` in total.
    pub fn new(stages: Vec<Stage>, max_output_messages: usize, max_output_bytes: usize) -> Self {
        ChainTransform {
            stages,
            max_output_messages,
            max_output_bytes,
            failed: None,
        }
    }

    /// The stages' counters, in order.
    pub fn counters(&self) -> Vec<Arc<StageCounters>> {
        self.stages.iter().map(|s| s.counters.clone()).collect()
    }

    fn fail_at(&mut self, stage: usize) {
        self.failed = Some(stage);
        self.stages[stage]
            .counters
            .failed
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Transform for ChainTransform {
    fn process(
        &mut self,
        message: &Message,
        ctx: &ProcessContext,
    ) -> Result<ProcessOutput, TransformError> {
        self.failed = None;
        let last = self.stages.len() - 1;
        let mut inputs: Vec<Message> = Vec::new();
        let mut topics = Vec::new();
        for k in 0..self.stages.len() {
            let mut outputs: Vec<Message> = Vec::new();
            let mut bytes = 0usize;
            let taken = std::mem::take(&mut inputs);
            let these: &[Message] = if k == 0 {
                std::slice::from_ref(message)
            } else {
                &taken
            };
            for input in these {
                let stage = &mut self.stages[k];
                let started = Instant::now();
                let answer = stage.transform.process(input, ctx);
                stage.counters.record(started.elapsed().as_micros() as u64);
                let out = match answer {
                    Ok(out) if out.error.is_none() => out,
                    Ok(out) => {
                        // An error answer (to retry, or a dead letter) stands for
                        // the source message: its outputs, if any, are the stage's
                        // own intermediates and are not passed on.
                        self.fail_at(k);
                        return Ok(ProcessOutput {
                            messages: Vec::new(),
                            topics: Vec::new(),
                            should_continue: out.should_continue,
                            error: out.error,
                            moved_input: None,
                        });
                    }
                    Err(e) => {
                        self.fail_at(k);
                        return Err(e);
                    }
                };
                stage.counters.processed.fetch_add(1, Ordering::Relaxed);
                if out.messages.is_empty() {
                    stage.counters.filtered.fetch_add(1, Ordering::Relaxed);
                }
                if k < last && !out.topics.is_empty() {
                    self.fail_at(k);
                    return Err(TransformError::Abi(format!(
                        "stage {k} ({}) routed an output to a topic; only the last stage of a chain may route",
                        self.stages[k].module_id
                    )));
                }
                if k == last {
                    let base = outputs.len();
                    topics.extend(out.topics.into_iter().map(|(at, t)| (base + at, t)));
                }
                bytes += out.messages.iter().map(Message::memory_size).sum::<usize>();
                outputs.extend(out.messages);
                if outputs.len() > self.max_output_messages || bytes > self.max_output_bytes {
                    self.fail_at(k);
                    return Err(TransformError::Abi(format!(
                        "stage {k} ({}) made more than {} messages or {} bytes of one source message; a chain's stage is held to the per-call output caps",
                        self.stages[k].module_id, self.max_output_messages, self.max_output_bytes
                    )));
                }
            }
            inputs = outputs;
            if inputs.is_empty() {
                break; // filtered: later stages have nothing to do
            }
        }
        Ok(ProcessOutput {
            messages: inputs,
            topics,
            should_continue: true,
            error: None,
            moved_input: None,
        })
    }

    fn attach_state(&mut self, state: SharedState) {
        for (k, stage) in self.stages.iter_mut().enumerate() {
            stage.transform.attach_state(state.scoped(k));
        }
    }

    fn recycles(&self) -> u64 {
        self.stages.iter().map(|s| s.transform.recycles()).sum()
    }

    fn memory_bytes(&self) -> u64 {
        self.stages.iter().map(|s| s.transform.memory_bytes()).sum()
    }

    fn set_timeout_ms(&mut self, ms: u64) {
        for stage in &mut self.stages {
            stage.transform.set_timeout_ms(ms);
        }
    }

    fn failed_stage(&self) -> Option<FailedStage> {
        let stage = &self.stages[self.failed?];
        Some(FailedStage {
            index: self.failed?,
            module_id: stage.module_id.clone(),
            version: stage.version.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type RuleFn = fn(&Message) -> Result<ProcessOutput, TransformError>;

    /// Answers by a rule over the value.
    struct Rule(RuleFn);

    impl Transform for Rule {
        fn process(
            &mut self,
            message: &Message,
            _ctx: &ProcessContext,
        ) -> Result<ProcessOutput, TransformError> {
            (self.0)(message)
        }
        fn recycles(&self) -> u64 {
            0
        }
        fn memory_bytes(&self) -> u64 {
            0
        }
    }

    fn msg(value: &str) -> Message {
        Message {
            key: None,
            value: value.as_bytes().to_vec(),
            headers: Vec::new(),
            timestamp: 1,
        }
    }

    fn outputs(messages: Vec<Message>) -> Result<ProcessOutput, TransformError> {
        Ok(ProcessOutput {
            messages,
            topics: Vec::new(),
            should_continue: true,
            error: None,
            moved_input: None,
        })
    }

    fn chain(rules: &[RuleFn]) -> ChainTransform {
        let stages = rules
            .iter()
            .enumerate()
            .map(|(k, rule)| Stage {
                transform: Box::new(Rule(*rule)),
                module_id: format!("s{k}-v1.0.0"),
                version: "1.0.0".into(),
                counters: StageCounters::new(&format!("s{k}-v1.0.0")),
            })
            .collect();
        ChainTransform::new(stages, 100, 1 << 20)
    }

    fn values(out: &ProcessOutput) -> Vec<String> {
        out.messages
            .iter()
            .map(|m| String::from_utf8_lossy(&m.value).into_owned())
            .collect()
    }

    fn keep_odd(m: &Message) -> Result<ProcessOutput, TransformError> {
        let n: u32 = String::from_utf8_lossy(&m.value).parse().unwrap();
        outputs(if n % 2 == 1 { vec![m.clone()] } else { vec![] })
    }

    fn twice(m: &Message) -> Result<ProcessOutput, TransformError> {
        let v = String::from_utf8_lossy(&m.value).into_owned();
        outputs(vec![msg(&format!("{v}a")), msg(&format!("{v}b"))])
    }

    fn shout(m: &Message) -> Result<ProcessOutput, TransformError> {
        outputs(vec![msg(&String::from_utf8_lossy(&m.value).to_uppercase())])
    }

    fn trap_on_b(m: &Message) -> Result<ProcessOutput, TransformError> {
        if m.value.ends_with(b"b") {
            return Err(TransformError::Trap("b".into()));
        }
        outputs(vec![m.clone()])
    }

    #[test]
    fn filters_and_fan_outs_compose_stage_by_stage() {
        let mut c = chain(&[keep_odd, twice, shout]);
        let ctx = ProcessContext::default();
        assert_eq!(values(&c.process(&msg("3"), &ctx).unwrap()), ["3A", "3B"]);
        assert!(c.process(&msg("4"), &ctx).unwrap().messages.is_empty());
        let s: Vec<StageMetrics> = c
            .counters()
            .iter()
            .enumerate()
            .map(|(k, c)| c.snapshot(k))
            .collect();
        assert_eq!(s[0].messages_processed, 2);
        assert_eq!(s[0].messages_filtered, 1);
        // The filtered message never reached stages 1 and 2; stage 2 saw both copies.
        assert_eq!(s[1].messages_processed, 1);
        assert_eq!(s[2].messages_processed, 2);
        assert_eq!(c.failed_stage(), None);
    }

    #[test]
    fn a_failing_stage_fails_the_call_and_is_named() {
        let mut c = chain(&[twice, trap_on_b]);
        let e = c
            .process(&msg("x"), &ProcessContext::default())
            .unwrap_err();
        assert!(matches!(e, TransformError::Trap(_)), "{e:?}");
        let failed = c.failed_stage().unwrap();
        assert_eq!((failed.index, failed.module_id.as_str()), (1, "s1-v1.0.0"));
        assert_eq!(c.counters()[1].snapshot(1).messages_failed, 1);
    }

    #[test]
    fn fan_outs_cannot_multiply_past_the_caps_from_stage_to_stage() {
        fn ten(m: &Message) -> Result<ProcessOutput, TransformError> {
            outputs(vec![m.clone(); 10])
        }
        // 10 × 10 = 100 fits the cap of 100; one stage more makes 1000.
        let mut c = chain(&[ten, ten]);
        assert_eq!(
            c.process(&msg("x"), &ProcessContext::default())
                .unwrap()
                .messages
                .len(),
            100
        );
        let mut c = chain(&[ten, ten, ten]);
        let e = c
            .process(&msg("x"), &ProcessContext::default())
            .unwrap_err();
        assert!(e.to_string().contains("stage 2"), "{e}");
    }
}
