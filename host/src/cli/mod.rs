//! The `rustmq-etl` command line: argument parsing (clap derive) and one module per
//! concern. The binary only sets up tracing, calls [`execute`] and turns the result
//! into an exit code ([`CliError::exit_code`]), so everything here is testable
//! in-process.
//!
//! # Layout
//! - [`new`]: scaffolds a module project from the embedded template (offline).
//! - [`run`]: runs a module locally over JSON-lines messages.
//! - [`inspect`]: describes a module file and says whether this host can run it.
//! - [`module`], [`pipeline`], [`produce`], [`consume`]: thin clients of the broker's
//!   HTTP APIs, sharing [`client`] (addresses, token, error answers) and [`output`]
//!   (tables for people, `--json` for scripts).
//!
//! # Exit codes
//! See [`CliError::exit_code`]; `docs/cli.md` lists them for users.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand};

pub mod client;
pub mod consume;
pub mod inspect;
pub mod module;
pub mod new;
pub mod output;
pub mod pipeline;
pub mod produce;
pub mod run;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the broker refused or failed the request, or the module cannot run.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status: bad arguments, or a local file that cannot be read or is invalid.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: nothing answered at the broker's address.
pub const EXIT_UNREACHABLE: u8 = 3;
/// Exit status: the named module, pipeline or topic does not exist (HTTP 404).
pub const EXIT_NOT_FOUND: u8 = 4;
/// Exit status: the admin API wants a (different) token (HTTP 401).
pub const EXIT_UNAUTHORIZED: u8 = 5;

const EXIT_CODES_HELP: &str = "\
Exit status:
  0  success
  1  the broker refused or failed the request, or the module cannot run here
  2  usage: bad arguments, or a local file that cannot be read or is invalid
  3  cannot connect to the broker (is it running? --admin-url / --url)
  4  not found: no such module, pipeline or topic
  5  unauthorized: set RUSTMQ_ADMIN_TOKEN to the broker's [admin] token

Environment:
  RUSTMQ_CLI_ADMIN_URL  admin API [default: http://127.0.0.1:9094]; module and
                        pipeline commands take a comma-separated list of brokers
                        and run against each in turn
  RUSTMQ_CLI_URL        message API [default: http://127.0.0.1:9092]
  RUSTMQ_ADMIN_TOKEN    admin token (sent as Authorization: Bearer <token>)

Quick start: see README.md; every command: docs/cli.md.";

/// `rustmq-etl`: create, test, inspect and deploy RustMQ ETL transform modules, and
/// drive a broker's pipelines and topics.
#[derive(Debug, Parser)]
#[command(
    name = "rustmq-etl",
    version,
    about,
    after_help = EXIT_CODES_HELP,
    after_long_help = EXIT_CODES_HELP,
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new transform module project from the template (works offline).
    New(new::NewArgs),
    /// Run a module locally: read messages as JSON lines, print each result as a JSON
    /// line. No broker needed.
    #[command(after_help = "\
Example:
  echo '{\"key\":\"k\",\"value\":\"{\\\"temperature_celsius\\\":25}\",\"headers\":{\"content-type\":\"application/json\",\"source\":\"cli\"}}' \\
    | rustmq-etl run --module target/wasm32-wasip2/release/message_processor.wasm

Each input line prints {\"offset\",\"messages\",\"should_continue\",\"error\"}, or
{\"offset\",\"failure\":{\"cause\",\"message\"}} when the module trapped, timed out, ...
Exit status 1 when the module cannot be loaded or started.")]
    Run(run::RunArgs),
    /// Describe a module file: kind, world or ABI, imports, exports, blake3, size, and
    /// whether this host can run it.
    Inspect(inspect::InspectArgs),
    /// Upload, list, show and delete a broker's modules.
    Module(module::ModuleArgs),
    /// Create and operate a broker's pipelines.
    Pipeline(pipeline::PipelineArgs),
    /// Write messages to a topic.
    Produce(produce::ProduceArgs),
    /// Read messages from a topic.
    Consume(consume::ConsumeArgs),
}

impl Cli {
    /// Parses `args` (the first item is the program name), as the binary does.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Cli::try_parse_from(args)
    }
}

/// Why a subcommand failed; [`CliError::exit_code`] is what the process exits with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `run` failed.
    #[error(transparent)]
    Run(#[from] run::RunError),
    /// A request to the broker failed.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// The arguments make no sense together, or a local input is invalid.
    #[error("{0}")]
    Usage(String),
    /// A local file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The path given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A local file could not be written.
    #[error("cannot write {path}: {source}")]
    WriteFile {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Standard output could not be written.
    #[error("output: {0}")]
    Output(#[from] std::io::Error),
    /// `inspect`: this host cannot run the module (the reason).
    #[error("this host cannot run the module: {0}")]
    NotRunnable(String),
    /// A local facility failed (e.g. the runtime could not be created).
    #[error("{0}")]
    Local(String),
    /// `consume --timeout-secs` passed before enough messages arrived.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl CliError {
    /// The process exit status for this error (see the `EXIT_*` constants).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::ReadFile { .. } => EXIT_USAGE,
            CliError::Run(run::RunError::ReadModule { .. }) => EXIT_USAGE,
            CliError::Client(client::ClientError::Connect { .. }) => EXIT_UNREACHABLE,
            CliError::Client(e) if e.status() == Some(404) && e.code() != Some("no_route") => {
                EXIT_NOT_FOUND
            }
            CliError::Client(e) if e.status() == Some(401) => EXIT_UNAUTHORIZED,
            _ => EXIT_FAILURE,
        }
    }
}

/// Runs the parsed command with the given standard input and output.
pub fn execute(cli: Cli, stdin: &mut dyn BufRead, stdout: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::New(args) => new::run(&args, stdout)?,
        Command::Run(args) => run::run(&args, stdin, stdout)?,
        Command::Inspect(args) => inspect::run(&args, stdout)?,
        Command::Module(args) => each_broker(&args.client, stdout, |client, out| {
            module::run(&args.command, client, out)
        })?,
        Command::Pipeline(args) => each_broker(&args.client, stdout, |client, out| {
            pipeline::run(&args.command, client, out)
        })?,
        Command::Produce(args) => produce::run(&args, &args.client, stdin, stdout)?,
        Command::Consume(args) => consume::run(&args, &args.client, stdout)?,
    }
    Ok(())
}

/// Runs a module or pipeline command against every broker of a comma-separated
/// `--admin-url` in turn (the workers sharing a Kafka cluster: upload and declare
/// once, every worker runs its share), under a `== URL` heading each, stopping at
/// the first failure. One URL: runs it once, as it always did.
fn each_broker<F>(client: &client::ClientArgs, out: &mut dyn Write, run: F) -> Result<(), CliError>
where
    F: Fn(&client::ClientArgs, &mut dyn Write) -> Result<(), CliError>,
{
    let urls: Vec<&str> = client
        .admin_url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if urls.len() <= 1 {
        return run(client, out);
    }
    for url in urls {
        if !client.json {
            writeln!(out, "== {url}")?;
        }
        let one = client::ClientArgs {
            admin_url: url.to_string(),
            ..client.clone()
        };
        run(&one, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_has_an_example_in_its_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_subcommands().next().is_none() {
                let help = cmd
                    .get_after_help()
                    .map(|h| h.to_string())
                    .unwrap_or_default();
                if !help.contains("Example") {
                    missing.push(path.clone());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "no example in the help of {missing:?}");
    }

    #[test]
    fn exit_codes_distinguish_unreachable_not_found_and_usage() {
        let api = |status: u16, code: &str| {
            CliError::Client(client::ClientError::Api {
                status,
                code: code.into(),
                message: String::new(),
            })
        };
        assert_eq!(api(404, "pipeline_not_found").exit_code(), EXIT_NOT_FOUND);
        assert_eq!(api(404, "no_route").exit_code(), EXIT_FAILURE);
        assert_eq!(api(401, "unauthorized").exit_code(), EXIT_UNAUTHORIZED);
        assert_eq!(api(409, "pipeline_exists").exit_code(), EXIT_FAILURE);
        let connect = CliError::Client(client::ClientError::Connect {
            url: "u".into(),
            reason: "refused".into(),
        });
        assert_eq!(connect.exit_code(), EXIT_UNREACHABLE);
        assert_eq!(CliError::Usage("x".into()).exit_code(), EXIT_USAGE);
    }
}
