//! `rustmq-etl module upload|list|get|delete`: the admin API's module routes
//! (`/api/v1/etl/modules`, the deployment guide's Step 4).

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;

use super::client::{segment, Api, Client, ClientArgs};
use super::{output, CliError};
use crate::wire::{ModuleList, ModuleRecord, ModuleView};

/// `rustmq-etl module`: the broker options and one subcommand.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// Where the broker is.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: ModuleCommand,
}

/// The module subcommands.
#[derive(Debug, Subcommand)]
pub enum ModuleCommand {
    /// Upload a module (.wasm) under a name and version.
    #[command(after_help = "\
Examples:
  rustmq-etl module upload target/wasm32-wasip2/release/message_processor.wasm --version 1.0.0
  rustmq-etl module upload processor.wasm --name message-processor --version \"$(date +%s)\"

Prints the module id (`<name>-v<version>`) that pipelines and `module get` use.
Uploading the same bytes again under the same version is not an error (\"unchanged\");
different bytes under an existing version are refused (module_version_exists).")]
    Upload(UploadArgs),
    /// List uploaded modules.
    #[command(
        after_help = "Example:\n  rustmq-etl module list\n  rustmq-etl module list --json | jq -r '.modules[].module_id'"
    )]
    List,
    /// Show one module: kind, world or ABI, hash, imports, exports, pinning pipelines.
    #[command(after_help = "Example:\n  rustmq-etl module get message-processor-v1.0.0")]
    Get {
        /// The module id (`<name>-v<version>`, as `upload` printed it).
        module_id: String,
    },
    /// Delete a module version (refused while a pipeline is pinned to it).
    #[command(after_help = "Example:\n  rustmq-etl module delete message-processor-v1.0.0")]
    Delete {
        /// The module id.
        module_id: String,
    },
}

/// Arguments of `module upload`.
#[derive(Debug, Args)]
pub struct UploadArgs {
    /// The module file (a component or a legacy core module).
    pub file: PathBuf,
    /// The module's name [default: the file name without `.wasm`, `_` turned into `-`].
    #[arg(long)]
    pub name: Option<String>,
    /// Its semantic version; `3` and `1.2` are completed to `3.0.0` and `1.2.0`.
    #[arg(long = "version", value_name = "VERSION")]
    pub module_version: String,
}

/// Runs a module subcommand.
pub fn run(
    command: &ModuleCommand,
    args: &ClientArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let client = Client::new(args)?;
    match command {
        ModuleCommand::Upload(upload) => {
            let bytes = std::fs::read(&upload.file).map_err(|source| CliError::ReadFile {
                path: upload.file.clone(),
                source,
            })?;
            let name = match &upload.name {
                Some(name) => name.clone(),
                None => default_name(&upload.file)?,
            };
            let request = client
                .request(Api::Admin, Method::POST, "/api/v1/etl/modules")
                .header("content-type", "application/octet-stream")
                .header("x-module-name", name)
                .header("x-module-version", upload.module_version.as_str())
                .body(bytes);
            let answer = client.send(request)?;
            if args.json {
                return Ok(output::json(out, &answer)?);
            }
            let uploaded: ModuleView = output::decode(&answer)?;
            let r = &uploaded.record;
            writeln!(
                out,
                "{} {} ({}, {}, blake3 {})",
                uploaded.status.as_deref().unwrap_or("uploaded"),
                r.module_id,
                kind(r),
                output::bytes(r.size_bytes),
                short_hash(&r.hash),
            )?;
            // Warnings go to stderr so stdout stays one line per module.
            for warning in &r.warnings {
                eprintln!("warning: {warning}");
            }
        }
        ModuleCommand::List => {
            let answer = client.get(Api::Admin, "/api/v1/etl/modules")?;
            if args.json {
                return Ok(output::json(out, &answer)?);
            }
            let list: ModuleList = output::decode(&answer)?;
            let rows: Vec<Vec<String>> = list
                .modules
                .iter()
                .map(|m| {
                    let r = &m.record;
                    vec![
                        r.module_id.clone(),
                        r.name.clone(),
                        r.version.to_string(),
                        kind(r),
                        output::bytes(r.size_bytes),
                        output::list(m.pinned_by.as_deref().unwrap_or_default()),
                    ]
                })
                .collect();
            output::table(
                out,
                &["MODULE ID", "NAME", "VERSION", "KIND", "SIZE", "PINNED BY"],
                &rows,
            )?;
        }
        ModuleCommand::Get { module_id } => {
            let answer = client.get(
                Api::Admin,
                &format!("/api/v1/etl/modules/{}", segment(module_id)),
            )?;
            if args.json {
                return Ok(output::json(out, &answer)?);
            }
            let module: ModuleView = output::decode(&answer)?;
            let r = &module.record;
            let world_or_abi = r.world.clone().or_else(|| r.abi.clone());
            output::fields(
                out,
                &[
                    ("module id", r.module_id.clone()),
                    ("name", r.name.clone()),
                    ("version", r.version.to_string()),
                    ("kind", kind(r)),
                    ("world/abi", world_or_abi.unwrap_or_else(|| "-".to_string())),
                    ("size", output::bytes(r.size_bytes)),
                    ("blake3", r.hash.clone()),
                    ("imports", output::list(&r.imports)),
                    ("exports", output::list(&r.exports)),
                    (
                        "pinned by",
                        output::list(module.pinned_by.as_deref().unwrap_or_default()),
                    ),
                    ("warnings", output::list(&r.warnings)),
                ],
            )?;
        }
        ModuleCommand::Delete { module_id } => {
            let answer = client.send(client.request(
                Api::Admin,
                Method::DELETE,
                &format!("/api/v1/etl/modules/{}", segment(module_id)),
            ))?;
            if args.json {
                return Ok(output::json(out, &answer)?);
            }
            let deleted: ModuleView = output::decode(&answer)?;
            writeln!(out, "deleted {}", deleted.record.module_id)?;
        }
    }
    Ok(())
}

/// `message_processor.wasm` → `message-processor` (cargo turns `-` into `_` in file
/// names; module names conventionally use `-`).
fn default_name(path: &std::path::Path) -> Result<String, CliError> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('_', "-"))
        .ok_or_else(|| {
            CliError::Usage(format!(
                "cannot derive a module name from {}; pass --name",
                path.display()
            ))
        })
}

/// The first 16 hex digits of a `blake3:<hex>` hash: enough to tell uploads apart.
fn short_hash(hash: &str) -> String {
    hash.trim_start_matches("blake3:")
        .chars()
        .take(16)
        .collect()
}

/// `component` or `legacy_core`, as the broker spells it.
fn kind(record: &ModuleRecord) -> String {
    output::show(&serde_json::json!(record.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_come_from_the_file_stem_with_dashes() {
        let name = default_name(std::path::Path::new(
            "target/wasm32-wasip2/release/message_processor.wasm",
        ))
        .unwrap();
        assert_eq!(name, "message-processor");
    }
}
