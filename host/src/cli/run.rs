//! `rustmq-etl run`: the module author's local test loop. Loads a module, feeds it
//! messages read as JSON lines (the produce API's message form), and prints one JSON
//! line per input:
//!
//! ```json
//! {"offset": 0, "messages": [{"key": "k", "value": "...", "headers": {}, "timestamp": 1}], "should_continue": true, "error": null}
//! {"offset": 1, "failure": {"cause": "timeout", "message": "the module ran longer ..."}}
//! ```
//!
//! Output messages use the same JSON form as the input, so text values stay readable.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use crate::message::{now_millis, MessageJson, MessageOut};
use crate::runtime::{
    LoadError, ProcessContext, Runtime, RuntimeError, RuntimeLimits, TransformError,
};

/// Arguments of `rustmq-etl run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The module file (.wasm): a component, or a legacy core module.
    #[arg(long, value_name = "FILE")]
    pub module: PathBuf,
    /// Messages as JSON lines; standard input when absent.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// A pipeline parameter passed to the module's `init` (repeatable).
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
    let bytes = std::fs::read(&args.module).map_err(|source| RunError::ReadModule {
        path: args.module.clone(),
        source,
    })?;
    let defaults = RuntimeLimits::default();
    let runtime = Runtime::new(RuntimeLimits {
        memory_limit_bytes: args.memory_limit.unwrap_or(defaults.memory_limit_bytes),
        execution_timeout_ms: args.timeout_ms.unwrap_or(defaults.execution_timeout_ms),
        max_concurrent_executions: 1,
        max_instances: 1,
        ..defaults
    })?;
    let load_error = |source| RunError::Load {
        path: args.module.clone(),
        source,
    };
    let module = runtime.compile(&bytes).map_err(load_error)?;
    let params: BTreeMap<String, String> = args.params.iter().cloned().collect();
    let mut transform = module
        .instantiate(&module_id(&args.module), &args.pipeline_id, &params)
        .map_err(|source| RunError::Start {
            path: args.module.clone(),
            source,
        })?;

    let mut file_input;
    let input: &mut dyn BufRead = match &args.input {
        Some(path) => {
            file_input = BufReader::new(File::open(path)?);
            &mut file_input
        }
        None => stdin,
    };

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
        let result = match serde_json::from_str::<MessageJson>(&line)
            .map_err(|e| e.to_string())
            .and_then(|m| m.into_message(now_millis()).map_err(|e| e.to_string()))
        {
            Err(message) => failure(offset, "bad_input", &message),
            Ok(message) => {
                let ctx = ProcessContext {
                    pipeline_id: args.pipeline_id.clone(),
                    source_topic: args.topic.clone(),
                    source_offset: offset,
                    attempt: 1,
                };
                match transform.process(&message, &ctx) {
                    Ok(output) => json!({
                        "offset": offset,
                        "messages": output
                            .messages
                            .iter()
                            .map(|m| MessageOut::new(m, None))
                            .collect::<Vec<_>>(),
                        "should_continue": output.should_continue,
                        "error": output.error,
                    }),
                    Err(e) => failure(offset, e.cause(), &e.to_string()),
                }
            }
        };
        serde_json::to_writer(&mut *stdout, &result).map_err(std::io::Error::from)?;
        stdout.write_all(b"\n")?;
        offset += 1;
    }
    stdout.flush()?;
    Ok(())
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
