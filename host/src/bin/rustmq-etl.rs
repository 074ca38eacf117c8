//! `rustmq-etl`: tools for transform modules and a client of the broker. Parses
//! flags, sets up tracing (to stderr, so stdout stays machine-readable), calls
//! [`rustmq_etl::cli::execute`] and exits with the error's
//! [`rustmq_etl::cli::CliError::exit_code`] (2 for bad arguments, as clap does).

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match rustmq_etl::cli::Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    match rustmq_etl::cli::execute(cli, &mut stdin.lock(), &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
