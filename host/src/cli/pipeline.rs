//! `rustmq-etl pipeline create|list|start|stop|status|metrics|update|reset|backfill|redrive|delete|state`: the
//! admin API's pipeline routes (`/api/v1/etl/pipelines`, the deployment guide's
//! Steps 5–6). Every command that names a pipeline accepts its id (`pipeline-1`) or
//! its name.

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{segment, Api, Client, ClientArgs};
use super::{output, CliError};
use crate::pipeline::canary::{CanarySpec, SplitBy, VersionMetrics};
use crate::pipeline::{BackfillRequest, RedriveRequest, ResetRequest, ResetTo};
use crate::wire::{
    KafkaSnapshot, MetricsSnapshot, PipelineCreated, PipelineDeleted, PipelineList, PipelineStatus,
    RunStatus, StateReset, StateView,
};

/// `rustmq-etl pipeline`: the broker options and one subcommand.
#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// Where the broker is.
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: PipelineCommand,
}

/// The pipeline subcommands.
#[derive(Debug, Subcommand)]
pub enum PipelineCommand {
    /// Create a pipeline from a JSON definition (the guide's etl-pipeline.json).
    #[command(after_help = "\
Example:
  rustmq-etl pipeline create etl-pipeline.json

The file holds the definition posted to POST /api/v1/etl/pipelines (`-` reads standard
input); fields are listed in docs/pipelines.md. Prints the new pipeline's id, which the
other pipeline commands take (the pipeline's name works too). With \"enabled\": true
(the default) the pipeline starts at once.")]
    Create {
        /// The definition file (JSON), or `-` for standard input.
        file: PathBuf,
    },
    /// List pipelines.
    #[command(after_help = "Example:\n  rustmq-etl pipeline list")]
    List,
    /// Start (or resume) a pipeline.
    #[command(after_help = "Example:\n  rustmq-etl pipeline start pipeline-1")]
    Start(Target),
    /// Stop a pipeline after its current batch (its position is kept).
    #[command(after_help = "Example:\n  rustmq-etl pipeline stop message-transformation")]
    Stop(Target),
    /// Show a pipeline's definition, state, module and position.
    #[command(after_help = "Example:\n  rustmq-etl pipeline status pipeline-1")]
    Status(Target),
    /// Show a pipeline's counters and timings.
    #[command(
        after_help = "Example:\n  rustmq-etl pipeline metrics pipeline-1\n  rustmq-etl pipeline metrics pipeline-1 --json | jq .messages_failed"
    )]
    Metrics(Target),
    /// Change a running pipeline: module version, settings, parameters.
    #[command(after_help = "\
Examples:
  rustmq-etl pipeline update pipeline-1 --module-version 1.1.0
  rustmq-etl pipeline update enrich-chain --stage 2 --module-version 1.1.0
  rustmq-etl pipeline update pipeline-1 --timeout-ms 500 --batch-size 10
  rustmq-etl pipeline update pipeline-1 --param max_value_bytes=4096
  rustmq-etl pipeline update pipeline-1 --patch-file patch.json

The flags build the body of PATCH /api/v1/etl/pipelines/{id}; --patch-file sends a
body as written (the flags are then not allowed). --param replaces all parameters.")]
    Update(UpdateArgs),
    /// Move a pipeline's position: replay from an offset or a time, or skip to the end.
    #[command(after_help = "\
Examples:
  rustmq-etl pipeline reset pipeline-1 --to earliest
  rustmq-etl pipeline reset pipeline-1 --to 1500
  rustmq-etl pipeline reset pipeline-1 --timestamp-ms 1764892800000
  rustmq-etl pipeline reset pipeline-1 --to latest

POST /api/v1/etl/pipelines/{id}/reset. A running pipeline stops after its current
batch and starts again from the new position; a stopped one stays stopped. What it
already wrote downstream stays: replayed messages are delivered again (see
docs/pipelines.md).")]
    Reset(ResetArgs),
    /// Run the pipeline's module over a range of its source into a side topic.
    #[command(after_help = "\
Examples:
  rustmq-etl pipeline backfill pipeline-1 --from 0 --to 5000 --into reprocessed
  rustmq-etl pipeline backfill pipeline-1 --from ms:1764892800000 --to latest \\
      --into reprocessed --module-version 1.2.0

POST /api/v1/etl/pipelines/{id}/backfill. The backfill is a pipeline of its own
(<name>.backfill-<n>) beside the live one, which it does not touch; it ends by itself.
The command follows its progress with a bar until it completes (--no-wait returns at
once; `pipeline status` shows committed_offset towards end_offset).")]
    Backfill(BackfillArgs),
    /// Run a pipeline's dead letters through its module (or a fixed version) again.
    #[command(after_help = "\
Examples:
  rustmq-etl pipeline redrive pipeline-1 --module-version 1.2.1
  rustmq-etl pipeline redrive pipeline-1 --from 1200 --to 1300

POST /api/v1/etl/pipelines/{id}/redrive. Takes the pipeline's messages from its error
topic (from the start to the end now, or --from/--to there), without their failure
headers; successes go to its destination, what fails again goes back to the error
topic counted in x-rustmq-redrives. The redrive is a pipeline of its own
(<name>.redrive-<n>); the command follows it with a bar until it completes.")]
    Redrive(RedriveArgs),
    /// Try another module version on a share of the messages, or end the canary.
    #[command(after_help = "\
Examples:
  rustmq-etl pipeline canary pipeline-1 --module-version 1.2.0 --percent 10
  rustmq-etl pipeline canary pipeline-1 --module-version 1.2.0 --percent 50 --by key \\
      --max-error-rate 0.05 --window-secs 60 --min-messages 20
  rustmq-etl pipeline canary pipeline-1 --remove

PATCH /api/v1/etl/pipelines/{id} with {\"canary\": ...}. A message the canary fails goes
to the pinned version; with --max-error-rate the canary is rolled back by itself once
it fails more than that share of its messages in its window. `pipeline status` shows
both versions side by side; `pipeline promote` pins the canary's version.")]
    Canary(CanaryArgs),
    /// Pin the canary's version and end the canary.
    #[command(after_help = "Example:\n  rustmq-etl pipeline promote pipeline-1")]
    Promote(Target),
    /// Delete a pipeline (its topics stay).
    #[command(after_help = "Example:\n  rustmq-etl pipeline delete pipeline-1")]
    Delete(Target),
    /// Show a pipeline's durable state, or reset it (a stopped pipeline only).
    #[command(after_help = "\
Examples:
  rustmq-etl pipeline state counts
  rustmq-etl pipeline stop counts && rustmq-etl pipeline state counts --reset

Shows the committed keys and values (GET /api/v1/etl/pipelines/{id}/state); --reset
deletes them all (DELETE of the same path), which needs the pipeline stopped.")]
    State(StateArgs),
}

/// Arguments of `pipeline canary`.
#[derive(Debug, Args)]
pub struct CanaryArgs {
    /// The pipeline's id or name.
    pub pipeline: String,
    /// The version to try (a requirement; the exact version it resolves to is kept).
    #[arg(long, required_unless_present = "remove")]
    pub module_version: Option<String>,
    /// The share of messages it gets, 1 ..= 99.
    #[arg(long, required_unless_present = "remove")]
    pub percent: Option<u8>,
    /// Split by `message` (position) or `key` (a key always sees one version).
    #[arg(long, value_enum, default_value = "message")]
    pub by: CanaryBy,
    /// Roll back once more than this share (0 ..= 1) of its messages in the window failed.
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// The window of the error rate, seconds.
    #[arg(long, default_value_t = 60)]
    pub window_secs: u64,
    /// Messages within the window before the canary is judged.
    #[arg(long, default_value_t = 20)]
    pub min_messages: u64,
    /// End the canary running (the pinned version takes every message).
    #[arg(long, conflicts_with_all = ["module_version", "percent", "max_error_rate"])]
    pub remove: bool,
}

/// `--by` of `pipeline canary`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum CanaryBy {
    /// By the message's source position.
    Message,
    /// By the message's key.
    Key,
}

impl CanaryArgs {
    /// The body of the PATCH.
    fn patch(&self) -> serde_json::Value {
        match (&self.module_version, self.percent) {
            (Some(version), Some(percent)) if !self.remove => json!({"canary": CanarySpec {
                module_version: version.clone(),
                percent,
                by: match self.by {
                    CanaryBy::Message => SplitBy::Message,
                    CanaryBy::Key => SplitBy::Key,
                },
                max_error_rate: self.max_error_rate,
                window_secs: self.window_secs,
                min_messages: self.min_messages,
            }}),
            _ => json!({"canary": null}),
        }
    }
}

/// Arguments of `pipeline state`.
#[derive(Debug, Args)]
pub struct StateArgs {
    /// The pipeline's id or name.
    pub pipeline: String,
    /// Delete the whole state instead of showing it.
    #[arg(long)]
    pub reset: bool,
    /// Keys fetched per request; every page is fetched and shown.
    #[arg(long, default_value_t = crate::state::DEFAULT_STATE_PAGE_KEYS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(1..=crate::state::MAX_STATE_PAGE_KEYS as u64))]
    pub page_size: usize,
}

/// Arguments of `pipeline backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// The pipeline's id or name.
    pub pipeline: String,
    /// The range's first message: `earliest`, an offset, or `ms:T` (the first
    /// message appended at or after T, ms since the epoch).
    #[arg(long, value_parser = parse_position)]
    pub from: ResetTo,
    /// The range's end, exclusive: `latest` (the end now), an offset, or `ms:T`.
    #[arg(long, value_parser = parse_position)]
    pub to: ResetTo,
    /// The side topic the outputs go to.
    #[arg(long)]
    pub into: String,
    /// The module version to run (default: the one the pipeline is pinned to).
    #[arg(long)]
    pub module_version: Option<String>,
    /// Start it and return at once, without following its progress.
    #[arg(long)]
    pub no_wait: bool,
}

/// Arguments of `pipeline redrive`.
#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// The pipeline's id or name.
    pub pipeline: String,
    /// The first error-topic message to consider (default `earliest`).
    #[arg(long, value_parser = parse_position)]
    pub from: Option<ResetTo>,
    /// The end of the range in the error topic, exclusive (default `latest`).
    #[arg(long, value_parser = parse_position)]
    pub to: Option<ResetTo>,
    /// The module version to run (default: the one the pipeline is pinned to).
    #[arg(long)]
    pub module_version: Option<String>,
    /// Start it and return at once, without following its progress.
    #[arg(long)]
    pub no_wait: bool,
}

/// Arguments of `pipeline reset`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("target").required(true))]
pub struct ResetArgs {
    /// The pipeline's id or name.
    pub pipeline: String,
    /// `earliest`, `latest`, an offset of the source topic, or `ms:T` (as
    /// --timestamp-ms T).
    #[arg(long, group = "target", value_parser = parse_position)]
    pub to: Option<ResetTo>,
    /// The first message appended at or after this time (ms since the epoch).
    #[arg(long, group = "target", value_name = "MS")]
    pub timestamp_ms: Option<i64>,
}

/// A position in a topic as the command line writes it.
fn parse_position(text: &str) -> Result<ResetTo, String> {
    let bad = || {
        format!("{text:?} is not a position: give earliest, latest, an offset or ms:T (T in ms since the epoch)")
    };
    match text {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        _ => match text.strip_prefix("ms:") {
            Some(ms) => ms.parse().map(ResetTo::TimestampMs).map_err(|_| bad()),
            None => text.parse().map(ResetTo::Offset).map_err(|_| bad()),
        },
    }
}

/// The pipeline a command acts on.
#[derive(Debug, Args)]
pub struct Target {
    /// The pipeline's id (`pipeline-1`) or name.
    pub pipeline: String,
}

/// Arguments of `pipeline update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The pipeline's id or name.
    pub pipeline: String,
    /// A JSON patch body (`-` for standard input), instead of the flags below.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["module_version", "stage", "description", "error_topic", "batch_size", "timeout_ms", "max_retries", "backoff_ms", "params"])]
    pub patch_file: Option<PathBuf>,
    /// A new module version requirement (`1.1.0`, `^1`): upgrade or roll back.
    #[arg(long)]
    pub module_version: Option<String>,
    /// In a chain, the stage (from 0) --module-version applies to.
    #[arg(long, requires = "module_version")]
    pub stage: Option<usize>,
    /// A new description.
    #[arg(long)]
    pub description: Option<String>,
    /// A new error topic.
    #[arg(long)]
    pub error_topic: Option<String>,
    /// Messages read and committed together.
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Deadline of one module call.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Retries of a failed call (set together with --backoff-ms).
    #[arg(long, requires = "backoff_ms")]
    pub max_retries: Option<u32>,
    /// Wait before the first retry (doubles each retry).
    #[arg(long, requires = "max_retries")]
    pub backoff_ms: Option<u64>,
    /// A module parameter (repeatable); the given set replaces the current one.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = super::run::parse_param)]
    pub params: Vec<(String, String)>,
}

impl UpdateArgs {
    /// The PATCH body the flags describe.
    fn patch(&self) -> Result<Value, CliError> {
        if let Some(path) = &self.patch_file {
            return read_json(path);
        }
        let mut body = Map::new();
        let mut configuration = Map::new();
        if let Some(v) = &self.module_version {
            body.insert("module_version".into(), json!(v));
        }
        if let Some(stage) = self.stage {
            body.insert("stage".into(), json!(stage));
        }
        if let Some(v) = &self.description {
            body.insert("description".into(), json!(v));
        }
        if let Some(v) = &self.error_topic {
            body.insert("error_topic".into(), json!(v));
        }
        if let Some(v) = self.batch_size {
            configuration.insert("batch_size".into(), json!(v));
        }
        if let Some(v) = self.timeout_ms {
            configuration.insert("timeout_ms".into(), json!(v));
        }
        if let (Some(max_retries), Some(backoff_ms)) = (self.max_retries, self.backoff_ms) {
            configuration.insert(
                "retry_policy".into(),
                json!({ "max_retries": max_retries, "backoff_ms": backoff_ms }),
            );
        }
        if !self.params.is_empty() {
            let params: Map<String, Value> = self
                .params
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            configuration.insert("params".into(), Value::Object(params));
        }
        if !configuration.is_empty() {
            body.insert("configuration".into(), Value::Object(configuration));
        }
        if body.is_empty() {
            return Err(CliError::Usage(
                "nothing to update: give at least one of --module-version, --description, --error-topic, --batch-size, --timeout-ms, --max-retries/--backoff-ms, --param, --patch-file".into(),
            ));
        }
        Ok(Value::Object(body))
    }
}

/// Reads a JSON file, or standard input for `-`.
fn read_json(path: &PathBuf) -> Result<Value, CliError> {
    let read_error = |source| CliError::ReadFile {
        path: path.clone(),
        source,
    };
    let text = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(read_error)?;
        text
    } else {
        std::fs::read_to_string(path).map_err(read_error)?
    };
    serde_json::from_str(&text)
        .map_err(|e| CliError::Usage(format!("{} is not valid JSON: {e}", path.display())))
}

fn path_of(pipeline: &str, action: &str) -> String {
    format!("/api/v1/etl/pipelines/{}{action}", segment(pipeline))
}

/// Every page of a pipeline's state, as one answer: the first page's, with the
/// entries of the pages after it (the broker answers at most a page at a time).
fn all_state_pages(client: &Client, pipeline: &str, page_size: usize) -> Result<Value, CliError> {
    let path = format!("{}?limit={page_size}", path_of(pipeline, "/state"));
    let mut view: StateView = output::decode(&client.get(Api::Admin, &path)?)?;
    while let Some(after) = view.next_after.take() {
        let next = client.get(Api::Admin, &format!("{path}&after={}", segment(&after)))?;
        let next: StateView = output::decode(&next)?;
        view.entries.extend(next.entries);
        view.next_after = next.next_after;
    }
    serde_json::to_value(view).map_err(|e| CliError::Local(e.to_string()))
}

/// How often a followed backfill's status is asked for.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Starts a bounded pipeline (a backfill, a redrive) by posting `request` to
/// `path`; with `follow`, follows it until it ends and returns its last status, else
/// returns the creation's answer.
fn start_bounded(
    client: &Client,
    path: &str,
    request: &impl serde::Serialize,
    follow: bool,
) -> Result<Value, CliError> {
    let body = serde_json::to_value(request).map_err(|e| CliError::Local(e.to_string()))?;
    let created = client.post_json(Api::Admin, path, &body)?;
    if !follow {
        return Ok(created);
    }
    let created: PipelineCreated = output::decode(&created)?;
    follow_bounded(client, &created.pipeline_id)
}

/// Follows bounded pipeline `id` (a backfill, a redrive) with a progress bar (drawn
/// only on a terminal) until it completes or fails; returns its last status. A
/// failure is an error that says why.
fn follow_bounded(client: &Client, id: &str) -> Result<Value, CliError> {
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} messages ({per_sec}, {eta} left)",
        )
        .map_err(|e| CliError::Local(e.to_string()))?
        .progress_chars("=> "),
    );
    bar.set_message(id.to_string());
    loop {
        let answer = client.get(Api::Admin, &path_of(id, "/status"))?;
        let status: PipelineStatus = output::decode(&answer)?;
        let start = status.start_offset.unwrap_or(0);
        let end = status.end_offset.unwrap_or(start);
        bar.set_length(end.saturating_sub(start));
        bar.set_position(status.committed_offset.clamp(start, end) - start);
        match status.status {
            RunStatus::Completed => {
                bar.finish_and_clear();
                return Ok(answer);
            }
            RunStatus::Failed | RunStatus::Stopped => {
                bar.abandon();
                return Err(CliError::Local(format!(
                    "{id} {}: {}",
                    status.status,
                    status
                        .failure
                        .as_deref()
                        .unwrap_or("stopped before its end")
                )));
            }
            RunStatus::Running | RunStatus::Stalled => std::thread::sleep(FOLLOW_EVERY),
        }
    }
}

/// Runs a pipeline subcommand.
pub fn run(
    command: &PipelineCommand,
    args: &ClientArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let client = Client::new(args)?;
    let answer = match command {
        PipelineCommand::Create { file } => {
            let definition = read_json(file)?;
            client.post_json(Api::Admin, "/api/v1/etl/pipelines", &definition)?
        }
        PipelineCommand::List => client.get(Api::Admin, "/api/v1/etl/pipelines")?,
        PipelineCommand::Start(t) => client.send(client.request(
            Api::Admin,
            Method::POST,
            &path_of(&t.pipeline, "/start"),
        ))?,
        PipelineCommand::Stop(t) => {
            client.send(client.request(Api::Admin, Method::POST, &path_of(&t.pipeline, "/stop")))?
        }
        PipelineCommand::Status(t) => client.get(Api::Admin, &path_of(&t.pipeline, "/status"))?,
        PipelineCommand::Metrics(t) => client.get(Api::Admin, &path_of(&t.pipeline, "/metrics"))?,
        PipelineCommand::Update(u) => {
            let patch = u.patch()?;
            client.send(
                client
                    .request(Api::Admin, Method::PATCH, &path_of(&u.pipeline, ""))
                    .json(&patch),
            )?
        }
        PipelineCommand::Reset(r) => {
            let to = match (r.to, r.timestamp_ms) {
                (Some(to), _) => to,
                (None, Some(ms)) => ResetTo::TimestampMs(ms),
                (None, None) => unreachable!("clap requires one of --to and --timestamp-ms"),
            };
            client.post_json(
                Api::Admin,
                &path_of(&r.pipeline, "/reset"),
                &serde_json::to_value(ResetRequest { to })
                    .map_err(|e| CliError::Local(e.to_string()))?,
            )?
        }
        PipelineCommand::Backfill(f) => start_bounded(
            &client,
            &path_of(&f.pipeline, "/backfill"),
            &BackfillRequest {
                from: f.from,
                to: f.to,
                into: f.into.clone(),
                module_version: f.module_version.clone(),
            },
            !(f.no_wait || args.json),
        )?,
        PipelineCommand::Redrive(r) => start_bounded(
            &client,
            &path_of(&r.pipeline, "/redrive"),
            &RedriveRequest {
                from: r.from,
                to: r.to,
                module_version: r.module_version.clone(),
            },
            !(r.no_wait || args.json),
        )?,
        PipelineCommand::Canary(c) => client.send(
            client
                .request(Api::Admin, Method::PATCH, &path_of(&c.pipeline, ""))
                .json(&c.patch()),
        )?,
        PipelineCommand::Promote(t) => client.send(client.request(
            Api::Admin,
            Method::POST,
            &path_of(&t.pipeline, "/promote"),
        ))?,
        PipelineCommand::Delete(t) => {
            client.send(client.request(Api::Admin, Method::DELETE, &path_of(&t.pipeline, "")))?
        }
        PipelineCommand::State(s) if s.reset => client.send(client.request(
            Api::Admin,
            Method::DELETE,
            &path_of(&s.pipeline, "/state"),
        ))?,
        PipelineCommand::State(s) => all_state_pages(&client, &s.pipeline, s.page_size)?,
    };
    if args.json {
        return Ok(output::json(out, &answer)?);
    }
    match command {
        PipelineCommand::Create { .. } => {
            let created: PipelineCreated = output::decode(&answer)?;
            writeln!(
                out,
                "created {} ({}, module {})",
                created.pipeline_id, created.state, created.module_id,
            )?
        }
        PipelineCommand::Delete(_) => {
            let deleted: PipelineDeleted = output::decode(&answer)?;
            writeln!(out, "deleted {}", deleted.pipeline_id)?
        }
        PipelineCommand::Start(_) | PipelineCommand::Stop(_) | PipelineCommand::Update(_) => {
            let status: PipelineStatus = output::decode(&answer)?;
            writeln!(
                out,
                "{} ({}): {}",
                status.pipeline_id,
                status.pipeline_name,
                state(&status),
            )?
        }
        PipelineCommand::Canary(_) | PipelineCommand::Promote(_) => {
            let status: PipelineStatus = output::decode(&answer)?;
            writeln!(
                out,
                "{} ({}): {}, pinned to {}, {}",
                status.pipeline_id,
                status.pipeline_name,
                state(&status),
                status.module_version,
                canary_line(&status),
            )?
        }
        PipelineCommand::Backfill(BackfillArgs { no_wait: true, .. })
        | PipelineCommand::Redrive(RedriveArgs { no_wait: true, .. }) => {
            let created: PipelineCreated = output::decode(&answer)?;
            writeln!(
                out,
                "started {} (module {}); follow it with: rustmq-etl pipeline status {}",
                created.pipeline_id, created.module_id, created.pipeline_id
            )?
        }
        PipelineCommand::Backfill(_) | PipelineCommand::Redrive(_) => {
            let status: PipelineStatus = output::decode(&answer)?;
            writeln!(
                out,
                "{} ({}): {}, offsets {}..{} into {}",
                status.pipeline_id,
                status.pipeline_name,
                state(&status),
                status.start_offset.unwrap_or(0),
                status.end_offset.unwrap_or(0),
                status.destination_topic,
            )?
        }
        PipelineCommand::Reset(_) => {
            let status: PipelineStatus = output::decode(&answer)?;
            writeln!(
                out,
                "{} ({}): {}, next offset {}",
                status.pipeline_id,
                status.pipeline_name,
                state(&status),
                status.committed_offset,
            )?
        }
        PipelineCommand::List => {
            let list: PipelineList = output::decode(&answer)?;
            let rows: Vec<Vec<String>> = list
                .pipelines
                .iter()
                .map(|p| {
                    vec![
                        p.pipeline_id.clone(),
                        p.pipeline_name.clone(),
                        p.status.to_string(),
                        format!("{} -> {}", p.source_topic, p.destination_topic),
                        p.module_id.clone(),
                        p.lag.to_string(),
                    ]
                })
                .collect();
            output::table(
                out,
                &["ID", "NAME", "STATUS", "TOPICS", "MODULE", "LAG"],
                &rows,
            )?;
        }
        PipelineCommand::Status(_) => {
            let status: PipelineStatus = output::decode(&answer)?;
            let config = &status.configuration;
            let retry = &config.retry_policy;
            let mut lines = vec![
                ("pipeline", status.pipeline_id.clone()),
                ("name", status.pipeline_name.clone()),
                ("status", state(&status)),
                ("description", output::or_dash(&status.description)),
                ("source", status.source_topic.clone()),
                ("destination", status.destination_topic.clone()),
                (
                    "error topic",
                    output::or_dash(status.error_topic.as_deref().unwrap_or_default()),
                ),
                (
                    "module",
                    format!(
                        "{} (requirement {})",
                        status.module_id, status.module_requirement
                    ),
                ),
                ("routes", output::list(&status.routes)),
                ("batch size", config.batch_size.to_string()),
                (
                    "processing mode",
                    output::show(&json!(config.processing_mode)),
                ),
                (
                    "timeout ms",
                    config
                        .timeout_ms
                        .map_or_else(|| "-".to_string(), |t| t.to_string()),
                ),
                (
                    "retries",
                    format!("{} (backoff {} ms)", retry.max_retries, retry.backoff_ms),
                ),
                ("params", params(&config.params)),
                ("committed offset", status.committed_offset.to_string()),
                ("lag", status.lag.to_string()),
                ("delivery", output::show(&json!(status.delivery))),
            ];
            if !status.stages.is_empty() {
                let stages: Vec<String> = status
                    .stages
                    .iter()
                    .map(|s| format!("{}: {} ({})", s.stage, s.module_id, s.module_requirement))
                    .collect();
                lines.push(("stages", stages.join("; ")));
            }
            if status.canary.is_some() || status.canary_event.is_some() {
                lines.push(("canary", canary_line(&status)));
            }
            lines.extend(kafka_fields(status.kafka.as_ref()));
            output::fields(out, &lines)?;
            versions_table(out, &status.versions)?;
        }
        PipelineCommand::State(s) if s.reset => {
            let reset: StateReset = output::decode(&answer)?;
            writeln!(
                out,
                "reset the state of {}: {} keys deleted",
                reset.pipeline_id, reset.deleted_keys
            )?
        }
        PipelineCommand::State(_) => {
            let view: StateView = output::decode(&answer)?;
            let rows: Vec<Vec<String>> = view
                .entries
                .iter()
                .map(|e| {
                    let value = match (&e.value, &e.value_base64) {
                        (Some(text), _) => text.clone(),
                        (None, Some(b64)) => format!("base64:{b64}"),
                        (None, None) => String::new(),
                    };
                    vec![e.key.clone(), value]
                })
                .collect();
            output::table(out, &["KEY", "VALUE"], &rows)?;
            writeln!(out, "{} keys, {} bytes", view.keys, view.bytes)?;
        }
        PipelineCommand::Metrics(_) => {
            let metrics: MetricsSnapshot = output::decode(&answer)?;
            // Every counter, in the broker's order and names (the Kafka part below).
            let mut pairs: Vec<(&str, String)> = answer
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, _)| !matches!(k.as_str(), "kafka" | "stages" | "versions"))
                        .map(|(k, v)| (k.as_str(), output::show(v)))
                        .collect()
                })
                .unwrap_or_default();
            pairs.extend(kafka_fields(metrics.kafka.as_ref()));
            output::fields(out, &pairs)?;
            versions_table(out, &metrics.versions)?;
            if !metrics.stages.is_empty() {
                let rows: Vec<Vec<String>> = metrics
                    .stages
                    .iter()
                    .map(|s| {
                        vec![
                            s.stage.to_string(),
                            s.module_id.clone(),
                            s.messages_processed.to_string(),
                            s.messages_filtered.to_string(),
                            s.messages_failed.to_string(),
                            output::show(&json!(s.p50_processing_time_ms)),
                            output::show(&json!(s.p99_processing_time_ms)),
                        ]
                    })
                    .collect();
                output::table(
                    out,
                    &[
                        "STAGE",
                        "MODULE",
                        "PROCESSED",
                        "FILTERED",
                        "FAILED",
                        "P50 MS",
                        "P99 MS",
                    ],
                    &rows,
                )?;
            }
        }
    }
    Ok(())
}

/// The lines of a Kafka source's part of a status or metrics answer: group,
/// delivery, partitions with their lag, rebalances, outage. None without one.
fn kafka_fields(kafka: Option<&KafkaSnapshot>) -> Vec<(&'static str, String)> {
    let Some(kafka) = kafka else {
        return Vec::new();
    };
    let or_dash = |v: Option<i64>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    let partitions = kafka
        .partitions
        .iter()
        .map(|p| {
            format!(
                "{}: committed {} end {} lag {}",
                p.partition,
                or_dash(p.committed_offset),
                or_dash(p.high_watermark),
                p.lag,
            )
        })
        .collect::<Vec<_>>();
    let mut lines = vec![
        ("kafka source", kafka.source.clone()),
        ("consumer group", kafka.consumer_group.clone()),
        ("commit mode", output::show(&json!(kafka.delivery))),
        (
            "partitions",
            if partitions.is_empty() {
                "none assigned".to_string()
            } else {
                partitions.join("; ")
            },
        ),
        ("kafka lag", kafka.lag.to_string()),
        ("rebalances", kafka.rebalances.to_string()),
    ];
    if let Some(outage) = &kafka.outage {
        lines.push(("cluster error", outage.clone()));
    }
    lines
}

/// `running`, or `failed: <why>`.
/// The canary running, or how the last one ended.
fn canary_line(status: &PipelineStatus) -> String {
    match (&status.canary, &status.canary_event) {
        (Some(c), _) => format!(
            "canary {} on {} % by {}{}",
            c.module_version,
            c.percent,
            output::show(&json!(c.by)),
            c.max_error_rate.map_or_else(String::new, |r| format!(
                ", rolled back above {:.1} % errors in {} s",
                r * 100.0,
                c.window_secs
            ))
        ),
        (None, Some(e)) => format!(
            "no canary (canary {} {}{})",
            e.module_version,
            e.event.replace('_', " "),
            e.reason
                .as_ref()
                .map_or_else(String::new, |r| format!(": {r}"))
        ),
        (None, None) => "no canary".to_string(),
    }
}

/// Both versions side by side, while a canary runs.
fn versions_table(out: &mut dyn Write, versions: &[VersionMetrics]) -> Result<(), CliError> {
    if versions.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.role.clone(),
                v.module_version.clone(),
                v.messages_handled.to_string(),
                v.messages_failed.to_string(),
                format!("{:.1} %", v.window_error_rate * 100.0),
                v.window_p99_processing_time_ms
                    .map_or_else(|| "-".to_string(), |p| format!("{p:.3}")),
            ]
        })
        .collect();
    output::table(
        out,
        &[
            "ROLE",
            "VERSION",
            "HANDLED",
            "FAILED",
            "ERRORS (WINDOW)",
            "P99 MS (WINDOW)",
        ],
        &rows,
    )?;
    Ok(())
}

fn state(status: &PipelineStatus) -> String {
    match &status.failure {
        Some(why) => format!("{}: {why}", status.status),
        None => status.status.to_string(),
    }
}

fn params(params: &std::collections::BTreeMap<String, String>) -> String {
    if params.is_empty() {
        return "-".to_string();
    }
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(args: &[&str]) -> UpdateArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct P {
            #[command(flatten)]
            u: UpdateArgs,
        }
        P::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .u
    }

    #[test]
    fn update_flags_become_a_patch_body() {
        let body = update(&[
            "p",
            "--module-version",
            "^1",
            "--timeout-ms",
            "500",
            "--param",
            "a=1",
        ])
        .patch()
        .unwrap();
        assert_eq!(
            body,
            json!({"module_version": "^1", "configuration": {"timeout_ms": 500, "params": {"a": "1"}}})
        );
        let body = update(&["chain", "--stage", "2", "--module-version", "1.1.0"])
            .patch()
            .unwrap();
        assert_eq!(body, json!({"module_version": "1.1.0", "stage": 2}));
    }

    #[test]
    fn update_without_changes_is_a_usage_error() {
        assert!(matches!(update(&["p"]).patch(), Err(CliError::Usage(_))));
    }
}
