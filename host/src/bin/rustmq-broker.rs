//! `rustmq-broker`: parses flags, loads the config, sets up logging, turns SIGINT
//! and SIGTERM into a graceful shutdown and runs the broker library.
//!
//! Once both listeners are bound it prints one line to stdout,
//! `rustmq-broker listening admin=<addr> messages=<addr>`, so scripts and tests that
//! configure port 0 learn the real ports. Logs go to stderr.
//!
//! Exit codes: 0 after a graceful shutdown, 2 for a configuration error, 1 otherwise.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rustmq_etl::config::BrokerConfig;
use rustmq_etl::server::Server;

/// The RustMQ ETL broker.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The config file (TOML). Without it, defaults plus `RUSTMQ_*` environment
    /// overrides are used.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let loaded = match &args.config {
        Some(path) => BrokerConfig::load(path),
        None => BrokerConfig::from_env(),
    };
    let config = match loaded {
        Ok(config) => config,
        Err(e) => {
            eprintln!("rustmq-broker: {e}");
            return ExitCode::from(2);
        }
    };
    // RUST_LOG, when set, wins over [logging] (handy for one-off debugging).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(config.logging.filter_directives()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rustmq-broker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(target: "rustmq::server", error = %e, "broker failed");
            eprintln!("rustmq-broker: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: BrokerConfig) -> Result<(), rustmq_etl::server::ServerError> {
    let server = Server::bind(config).await?;
    println!(
        "rustmq-broker listening admin={} messages={}",
        server.admin_addr(),
        server.messages_addr()
    );
    let _ = std::io::stdout().flush();
    server.run(shutdown_signal()).await
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(target: "rustmq::server", error = %e, "cannot watch SIGTERM");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
