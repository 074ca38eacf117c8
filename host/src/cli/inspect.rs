//! `rustmq-etl inspect`: what a module file is and whether this host can run it,
//! without a broker. Describes it with [`Runtime::inspect`] (kind, world or ABI,
//! imports, exports, warnings), hashes it as the broker's module store does (blake3),
//! then compiles it with [`Runtime::compile`] under the default limits: a module
//! that compiles here uploads and runs on a broker of the same version.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use super::{output, CliError};
use crate::runtime::{Runtime, RuntimeLimits};

/// Arguments of `inspect`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rustmq-etl inspect target/wasm32-wasip2/release/message_processor.wasm
  rustmq-etl inspect module.wasm --json | jq .runnable

Exit status 0 when this host can run the module, 1 when it cannot (the reason is
printed), 2 when the file cannot be read.")]
pub struct InspectArgs {
    /// The module file (.wasm).
    pub file: PathBuf,
    /// Print a JSON object instead of a listing.
    #[arg(long)]
    pub json: bool,
}

/// Runs `inspect`. A module that cannot run is reported, then returned as
/// [`CliError::NotRunnable`] so the exit status says so.
pub fn run(args: &InspectArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let bytes = std::fs::read(&args.file).map_err(|source| CliError::ReadFile {
        path: args.file.clone(),
        source,
    })?;
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let size = bytes.len() as u64;
    let runtime = Runtime::new(RuntimeLimits {
        max_concurrent_executions: 1,
        max_instances: 1,
        ..RuntimeLimits::default()
    })
    .map_err(|e| CliError::Local(e.to_string()))?;
    let info = runtime.inspect(&bytes);
    // Compile only what parsed: `compile` would repeat the same parse error.
    let verdict = match &info {
        Ok(_) => runtime
            .compile(&bytes)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let file = args.file.display().to_string();

    if args.json {
        let mut value = match &info {
            Ok(info) => serde_json::to_value(info).map_err(|e| CliError::Local(e.to_string()))?,
            Err(_) => json!({}),
        };
        value["file"] = json!(file);
        value["size_bytes"] = json!(size);
        value["blake3"] = json!(hash);
        value["runnable"] = json!(verdict.is_ok());
        value["reason"] = json!(verdict.as_ref().err());
        output::json(out, &value)?;
    } else {
        let mut pairs = vec![
            ("file", file),
            ("size", format!("{size} bytes ({})", output::bytes(size))),
            ("blake3", hash),
        ];
        if let Ok(info) = &info {
            let kind =
                serde_json::to_value(info.kind).map_err(|e| CliError::Local(e.to_string()))?;
            pairs.push(("kind", output::show(&kind)));
            match (&info.world, &info.abi) {
                (Some(world), _) => pairs.push(("world", world.clone())),
                (None, Some(abi)) => pairs.push(("abi", abi.clone())),
                (None, None) => pairs.push(("world", "- (does not match rustmq:etl/etl)".into())),
            }
            if let Some(needs) = info.needs {
                let limits = runtime.limits();
                pairs.push((
                    "needs",
                    format!(
                        "{} core instances (limit {}), {} memories (limit {}), {} tables (limit {}): [etl] max_core_instances_per_component, max_memories_per_component, max_tables_per_component",
                        needs.core_instances,
                        limits.max_core_instances_per_component,
                        needs.memories,
                        limits.max_memories_per_component,
                        needs.tables,
                        limits.max_tables_per_component
                    ),
                ));
            }
            pairs.push(("imports", list(&info.imports)));
            pairs.push(("exports", list(&info.exports)));
            for warning in &info.warnings {
                pairs.push(("warning", warning.clone()));
            }
        }
        pairs.push((
            "runnable",
            match &verdict {
                Ok(()) => "yes".to_string(),
                Err(why) => format!("no: {why}"),
            },
        ));
        output::fields(out, &pairs)?;
    }
    out.flush()?;
    verdict.map_err(CliError::NotRunnable)
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "-".to_string()
    } else {
        names.join("\n          ")
    }
}
