//! The `rustmq-etl` command line: argument parsing (clap derive) and one module per
//! subcommand. The binary only sets up tracing, calls [`execute`] and turns the
//! result into an exit code, so everything here is testable in-process.
//!
//! # Subcommands
//! - `run` ([`run`]): runs a module locally over JSON-lines messages.

use std::io::{BufRead, Write};

use clap::{Parser, Subcommand};

pub mod run;

/// `rustmq-etl`: tools for RustMQ ETL transform modules.
#[derive(Debug, Parser)]
#[command(name = "rustmq-etl", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a module locally: read messages as JSON lines, print each result as a JSON
    /// line. No broker needed.
    Run(run::RunArgs),
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

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// `run` failed.
    #[error(transparent)]
    Run(#[from] run::RunError),
}

/// Runs the parsed command with the given standard input and output.
pub fn execute(cli: Cli, stdin: &mut dyn BufRead, stdout: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Run(args) => run::run(&args, stdin, stdout)?,
    }
    Ok(())
}
