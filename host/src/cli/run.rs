//! `rustmq-etl run`: the module author's local test loop. Loads a module, feeds it
//! messages read as JSON lines (the produce API's message form), and prints one JSON
//! line per input:
//!
//! ```json
//! {"offset": 0, "messages": [{"key": "k", "value": "...", "headers": {}, "timestamp": 1}], "should_continue": true, "error": null}
//! {"offset": 1, "failure": {"cause": "timeout", "message": "the module ran longer ..."}}
//! ```
//!
//! Output messages use the same JSON form as the input, so text values stay readable;
//! an output a 1.1 module routed to a topic carries `"topic"`.
//!
//! `--batch-size N` runs the pipeline's `batch` processing mode: N lines per
//! `process-batch` call, and a batch that cannot be kept whole (a trap, a failed
//! message) is processed again one message per call, as the broker does. The
//! module's durable state is held in memory for the run (`--state-quota` bytes)
//! with the broker's semantics: a failed message's changes are discarded;
//! `--print-state` prints it at the end as `{"state": {"key": "value", ...}}`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use crate::message::{now_millis, Message, MessageJson, MessageOut};
use crate::pipeline::spec::MAX_BATCH_SIZE;
use crate::runtime::chain::{ChainTransform, Stage, StageCounters};
use crate::runtime::{
    BatchContext, LoadError, ProcessContext, ProcessOutput, Runtime, RuntimeError, RuntimeLimits,
    Transform, TransformError,
};
use crate::state::{PipelineState, SharedState, DEFAULT_STATE_QUOTA_BYTES};

/// Arguments of `rustmq-etl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The module file (.wasm): a component, or a legacy core module. Repeat it to
    /// run a chain, stage by stage in the order given, as a pipeline's `modules`.
    #[arg(long = "module", value_name = "FILE", required = true)]
    pub modules: Vec<PathBuf>,
    /// Messages as JSON lines; standard input when absent.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// A pipeline parameter passed to the module's `init` (repeatable; in a chain,
    /// to every stage's).
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// The pipeline id the module sees in its context.
    #[arg(long, default_value = "local")]
    pub pipeline_id: String,
    /// The source topic the module sees in its context.
    #[arg(long, default_value = "local")]
    pub topic: String,
    /// Deadline per call, in milliseconds [default: the runtime's 5000].
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Memory limit per instance, in bytes [default: the runtime's 64 MiB].
    #[arg(long, value_name = "BYTES")]
    pub memory_limit: Option<u64>,
    /// Batch mode: hand the module this many messages per call (`process-batch`).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH_SIZE as i64))]
    pub batch_size: Option<u32>,
    /// The state quota in bytes [default: the broker's 64 MiB].
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_STATE_QUOTA_BYTES)]
    pub state_quota: u64,
    /// Print the module's state after the last message.
    #[arg(long)]
    pub print_state: bool,
}

/// Why `run` stopped. Per-message failures are not errors: they are printed as
/// results.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The module file could not be read.
    #[error("cannot read module {path}: {source}")]
    ReadModule {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The input file could not be opened or read, or the output not written.
    #[error("input/output: {0}")]
    Io(#[from] std::io::Error),
    /// The runtime could not be created with the given limits.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The module cannot be loaded.
    #[error("cannot load module {path}: {source}")]
    Load {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: LoadError,
    },
    /// The module could not be started (for example `init` refused the parameters).
    #[error("cannot start module {path}: {source}")]
    Start {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: TransformError,
    },
}

/// Parses `KEY=VALUE` (the key must not be empty; the value may contain `=`).
pub(crate) fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Runs `args`, reading standard input from `stdin` when no `--input` is given and
/// writing results to `stdout`.
pub fn run(
    args: &RunArgs,
    stdin: &mut dyn BufRead,
    stdout: &mut dyn Write,
) -> Result<(), RunError> {
    let defaults = RuntimeLimits::default();
    let runtime = Runtime::new(RuntimeLimits {
        memory_limit_bytes: args.memory_limit.unwrap_or(defaults.memory_limit_bytes),
        execution_timeout_ms: args.timeout_ms.unwrap_or(defaults.execution_timeout_ms),
        max_concurrent_executions: 1,
        max_instances: u32::try_from(args.modules.len()).unwrap_or(u32::MAX),
        ..defaults
    })?;
    let params: BTreeMap<String, String> = args.params.iter().cloned().collect();
    let mut stages = Vec::with_capacity(args.modules.len());
    for path in &args.modules {
        let bytes = std::fs::read(path).map_err(|source| RunError::ReadModule {
            path: path.clone(),
            source,
        })?;
        let module = runtime.compile(&bytes).map_err(|source| RunError::Load {
            path: path.clone(),
            source,
        })?;
        let module_id = module_id(path);
        let transform = module
            .instantiate(&module_id, &args.pipeline_id, &params)
            .map_err(|source| RunError::Start {
                path: path.clone(),
                source,
            })?;
        stages.push(Stage {
            counters: StageCounters::new(&module_id),
            transform,
            module_id,
            version: "local".to_string(),
        });
    }
    let mut transform: Box<dyn Transform> = if stages.len() == 1 {
        stages.pop().expect("one stage").transform
    } else {
        let limits = runtime.limits();
        Box::new(ChainTransform::new(
            stages,
            limits.max_output_messages,
            limits.max_output_bytes,
        ))
    };

    let mut file_input;
    let input: &mut dyn BufRead = match &args.input {
        Some(path) => {
            file_input = BufReader::new(File::open(path)?);
            &mut file_input
        }
        None => stdin,
    };

    let state = SharedState::new(PipelineState::new([], args.state_quota));
    transform.attach_state(state.clone());
    let mut session = Session {
        transform: &mut *transform,
        state: &state,
        args,
        stdout,
    };
    let batch_size = args.batch_size.unwrap_or(1) as usize;
    let mut pending: Vec<(u64, Message)> = Vec::with_capacity(batch_size);
    let mut offset: u64 = 0;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<MessageJson>(&line)
            .map_err(|e| e.to_string())
            .and_then(|m| m.into_message(now_millis()).map_err(|e| e.to_string()))
        {
            Err(message) => {
                // What came before it is answered first, so lines stay in order.
                session.flush(&mut pending)?;
                session.print(&failure(offset, "bad_input", &message))?;
            }
            Ok(message) => {
                pending.push((offset, message));
                if pending.len() >= batch_size {
                    session.flush(&mut pending)?;
                }
            }
        }
        offset += 1;
    }
    session.flush(&mut pending)?;
    if args.print_state {
        let snapshot = state.with(|s| s.snapshot()).unwrap_or_default();
        let entries: serde_json::Map<String, serde_json::Value> = snapshot
            .into_iter()
            .map(|(k, v)| (k, json!(String::from_utf8_lossy(&v))))
            .collect();
        session.print(&json!({ "state": entries }))?;
    }
    stdout.flush()?;
    Ok(())
}

/// One run's module, state and output.
struct Session<'a> {
    transform: &'a mut dyn Transform,
    state: &'a SharedState,
    args: &'a RunArgs,
    stdout: &'a mut dyn Write,
}

impl Session<'_> {
    fn print(&mut self, line: &serde_json::Value) -> Result<(), RunError> {
        serde_json::to_writer(&mut *self.stdout, line).map_err(std::io::Error::from)?;
        self.stdout.write_all(b"\n")?;
        Ok(())
    }

    /// Processes the messages waiting: in one batch call in batch mode (kept only
    /// if every answer is final), else, or then, one call each.
    fn flush(&mut self, pending: &mut Vec<(u64, Message)>) -> Result<(), RunError> {
        if pending.is_empty() {
            return Ok(());
        }
        let batch: Vec<(u64, Message)> = std::mem::take(pending);
        if self.args.batch_size.is_some() && batch.len() > 1 {
            let messages: Vec<&Message> = batch.iter().map(|(_, m)| m).collect();
            let offsets: Vec<u64> = batch.iter().map(|(o, _)| *o).collect();
            self.state.with(|s| s.discard_call());
            let answers = self
                .transform
                .process_batch(&messages, &offsets, &self.batch_context());
            let refused = self.state.with(|s| s.refusal().is_some()).unwrap_or(false);
            if let Ok(answers) = answers {
                let whole = answers.len() == batch.len()
                    && !refused
                    && answers
                        .iter()
                        .all(|a| a.error.is_none() || a.should_continue);
                if whole {
                    self.state.with(|s| s.accept_call());
                    for ((offset, _), answer) in batch.iter().zip(answers) {
                        self.print(&answered(*offset, &answer))?;
                    }
                    return Ok(());
                }
            }
            self.state.with(|s| s.discard_call());
        }
        for (offset, message) in &batch {
            let line = self.one(*offset, message);
            self.print(&line)?;
        }
        Ok(())
    }

    fn batch_context(&self) -> BatchContext {
        BatchContext {
            pipeline_id: self.args.pipeline_id.clone(),
            source_topic: self.args.topic.clone(),
            attempt: 1,
        }
    }

    /// One message in its own call.
    fn one(&mut self, offset: u64, message: &Message) -> serde_json::Value {
        self.state.with(|s| s.discard_call());
        let result = if self.args.batch_size.is_some() {
            self.transform
                .process_batch(&[message], &[offset], &self.batch_context())
                .and_then(|mut v| match (v.pop(), v.is_empty()) {
                    (Some(one), true) => Ok(one),
                    _ => Err(TransformError::Abi(
                        "process-batch did not answer one result for one message".into(),
                    )),
                })
        } else {
            let ctx = ProcessContext {
                pipeline_id: self.args.pipeline_id.clone(),
                source_topic: self.args.topic.clone(),
                source_offset: offset,
                attempt: 1,
            };
            self.transform.process(message, &ctx)
        };
        let refusal = self.state.with(|s| s.refusal().cloned()).flatten();
        match (result, refusal) {
            (_, Some(refusal)) => {
                self.state.with(|s| s.discard_call());
                failure(offset, "state_limit", &refusal.to_string())
            }
            (Ok(output), None) => {
                if output.error.is_none() || output.should_continue {
                    self.state.with(|s| s.accept_call());
                } else {
                    self.state.with(|s| s.discard_call());
                }
                answered(offset, &output)
            }
            (Err(e), None) => {
                self.state.with(|s| s.discard_call());
                let mut line = failure(offset, e.cause(), &e.to_string());
                if let Some(stage) = self.transform.failed_stage() {
                    line["failure"]["stage"] = json!(stage.index);
                    line["failure"]["module"] = json!(stage.module_id);
                }
                line
            }
        }
    }
}

/// The line for an answer.
fn answered(offset: u64, output: &ProcessOutput) -> serde_json::Value {
    let messages: Vec<serde_json::Value> = output
        .messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let mut line = serde_json::to_value(MessageOut::new(m, None)).unwrap_or_default();
            if let Some((_, topic)) = output.topics.iter().find(|(at, _)| *at == i) {
                line["topic"] = json!(topic);
            }
            line
        })
        .collect();
    json!({
        "offset": offset,
        "messages": messages,
        "should_continue": output.should_continue,
        "error": output.error,
    })
}

fn failure(offset: u64, cause: &str, message: &str) -> serde_json::Value {
    json!({ "offset": offset, "failure": { "cause": cause, "message": message } })
}

/// The module id shown in logs: the file name without extension.
fn module_id(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "module".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_param("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_param("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_param("=b").is_err());
        assert!(parse_param("ab").is_err());
    }
}
