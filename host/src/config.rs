//! The broker's configuration: the TOML file, environment overrides, defaults and
//! validation.
//!
//! Sections (every one optional, every key defaulted; unknown keys are errors):
//! `[etl]` (the deployment guide's keys plus our limits), `[server]` (listen
//! addresses and request limits), `[storage]` (data directory and retention),
//! `[admin]` (bearer token), `[logging]`, and `[kafka]` (external Kafka clusters;
//! see [`crate::kafka::config`]).
//!
//! An environment variable `RUSTMQ_<SECTION>_<KEY>` (upper case) overrides the key
//! `<key>` of section `[<section>]`, e.g. `RUSTMQ_ETL_MEMORY_LIMIT_BYTES=134217728`,
//! `RUSTMQ_ADMIN_TOKEN=s3cret`, `RUSTMQ_LOGGING_TARGETS='["rustmq::etl"]'`. The value
//! is read as a TOML value (number, boolean, array) for non-string keys and taken
//! verbatim for string keys.
//!
//! Relative paths (`storage.data_dir`, `etl.modules_path`, `etl.compiled_cache`) are
//! resolved against the directory of the config file — whatever the working
//! directory — or against the working directory when no file is given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::message::HeaderLimits;
use crate::runtime::RuntimeLimits;
use crate::serve::HttpLimits;

/// 1 MiB.
const MIB: u64 = 1024 * 1024;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `[etl]`: the WebAssembly runtime.
    pub etl: EtlConfig,
    /// `[server]`: listeners and HTTP limits.
    pub server: ServerConfig,
    /// `[storage]`: where and how long data is kept.
    pub storage: StorageConfig,
    /// `[admin]`: admin API access.
    pub admin: AdminConfig,
    /// `[logging]`: what is logged.
    pub logging: LoggingConfig,
    /// `[kafka]`: Kafka clusters pipelines may read and write.
    pub kafka: crate::kafka::KafkaConfig,
}

/// `[etl]`: the guide's five keys plus the limits our runtime enforces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EtlConfig {
    /// Run pipelines at all (default `true`). When false, modules can be uploaded but
    /// pipelines do not start.
    pub enabled: bool,
    /// Linear-memory cap per module instance (default 64 MiB; 1 MiB ..= 4 GiB).
    pub memory_limit_bytes: u64,
    /// Wall-clock cap per call into a module (default 5000 ms; 1 ..= 600000).
    pub execution_timeout_ms: u64,
    /// Calls into modules running at once, broker-wide (default 100; 1 ..= 10000).
    pub max_concurrent_executions: u32,
    /// Where uploaded modules are stored (default `<storage.data_dir>/wasm`; the
    /// guide's production value is `/var/lib/rustmq/wasm`).
    pub modules_path: PathBuf,
    /// Largest module accepted for upload (default 50 MiB, as the guide's
    /// troubleshooting section says; 1 KiB ..= 1 GiB).
    pub max_module_size_bytes: u64,
    /// Most messages one call may return (default 1000; 1 ..= 1000000).
    pub max_output_messages: u32,
    /// Most bytes one call may return, all messages together (default 16 MiB;
    /// 1 KiB ..= 1 GiB).
    pub max_output_bytes: u64,
    /// Most bytes (keys plus values) of durable state one pipeline may hold, in
    /// memory while it runs (default 64 MiB; 1 KiB ..= 16 GiB).
    pub state_quota_bytes: u64,
    /// Commits a pipeline between this broker's topics may have started and not
    /// yet made durable (default 2; 1 ..= 16). More let the store make several
    /// batches durable with one fsync; each holds up to one batch's outputs in
    /// memory until it is.
    pub commits_in_flight: u32,
    /// Longest one `process-batch` call may run (default 1000 ms; 1 ..= 600000),
    /// whatever the batch size: what a batch call can take from pipelines waiting
    /// for an execution slot. A batch that needs longer is processed one message
    /// per call.
    pub max_batch_call_ms: u64,
    /// Where compiled modules are cached (default `<modules_path>/compiled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiled_cache: Option<PathBuf>,
    /// Core module instances one component may create (default 20; 1 ..= 1000):
    /// componentize-py output needs 14.
    pub max_core_instances_per_component: u32,
    /// Linear memories one component may define (default 4; 1 ..= 1000).
    pub max_memories_per_component: u32,
    /// Tables one component may define (default 20; 1 ..= 1000).
    pub max_tables_per_component: u32,
}

impl Default for EtlConfig {
    /// The guest limits' defaults are [`RuntimeLimits::default`]'s, the one place
    /// they are set.
    fn default() -> Self {
        let limits = RuntimeLimits::default();
        EtlConfig {
            enabled: true,
            memory_limit_bytes: limits.memory_limit_bytes,
            execution_timeout_ms: limits.execution_timeout_ms,
            max_concurrent_executions: u32::try_from(limits.max_concurrent_executions)
                .unwrap_or(u32::MAX),
            modules_path: PathBuf::new(),
            max_module_size_bytes: 50 * MIB,
            max_output_messages: u32::try_from(limits.max_output_messages).unwrap_or(u32::MAX),
            max_output_bytes: limits.max_output_bytes as u64,
            state_quota_bytes: crate::state::DEFAULT_STATE_QUOTA_BYTES,
            commits_in_flight: crate::pipeline::DEFAULT_COMMITS_IN_FLIGHT as u32,
            max_batch_call_ms: limits.max_batch_call_ms,
            compiled_cache: None,
            max_core_instances_per_component: limits.max_core_instances_per_component,
            max_memories_per_component: limits.max_memories_per_component,
            max_tables_per_component: limits.max_tables_per_component,
        }
    }
}

impl EtlConfig {
    /// The limits guests run under with this config.
    pub fn runtime_limits(&self) -> RuntimeLimits {
        RuntimeLimits {
            memory_limit_bytes: self.memory_limit_bytes,
            execution_timeout_ms: self.execution_timeout_ms,
            max_concurrent_executions: self.max_concurrent_executions as usize,
            max_output_messages: self.max_output_messages as usize,
            max_output_bytes: usize::try_from(self.max_output_bytes).unwrap_or(usize::MAX),
            max_batch_call_ms: self.max_batch_call_ms,
            max_core_instances_per_component: self.max_core_instances_per_component,
            max_memories_per_component: self.max_memories_per_component,
            max_tables_per_component: self.max_tables_per_component,
            ..RuntimeLimits::default()
        }
    }

    /// The compiled-module cache directory.
    pub fn compiled_cache_dir(&self) -> PathBuf {
        self.compiled_cache
            .clone()
            .unwrap_or_else(|| self.modules_path.join("compiled"))
    }
}

/// `[server]`: listen addresses and limits of the HTTP APIs. Port 0 picks a free port
/// (the bound addresses are logged and printed by the binary).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Admin API (status, modules, pipelines); default `127.0.0.1:9094`.
    pub admin_addr: SocketAddr,
    /// Message API (produce, consume, topics); default `127.0.0.1:9092`.
    pub messages_addr: SocketAddr,
    /// Largest request body on the message API (default 16 MiB; 1 KiB ..= 1 GiB).
    pub max_body_bytes: u64,
    /// Most messages in one batch produce (default 10000).
    pub max_batch_messages: u32,
    /// Most headers one message may carry, produced or read from Kafka (default
    /// 1024; 1 ..= 65536).
    pub max_headers_per_message: u32,
    /// Most bytes of header names and values one message may carry, produced or read
    /// from Kafka (default 64 KiB; 64 ..= 16 MiB).
    pub max_header_bytes_per_message: u64,
    /// Cap on `max_messages` of one consume (default 1000).
    pub max_read_messages: u32,
    /// Cap on the bytes of one consume response, roughly (default 8 MiB); one
    /// message is always returned even if larger.
    pub max_read_bytes: u64,
    /// Cap on a consume's `wait_ms` long-poll (default 30000).
    pub max_wait_ms: u64,
    /// Connections open at once on the message API (default 4096); past it the port
    /// stops accepting until one closes.
    pub max_connections: u32,
    /// Connections open at once on the admin API (default 256), counted apart from
    /// the message API's so that a flood of one never starves the other.
    pub admin_max_connections: u32,
    /// Requests handled at once on each API (default 64); more wait for a turn.
    pub max_concurrent_requests: u32,
    /// Memory the message API's produces and consumes may take at once (default 256
    /// MiB); each reserves what it may take and waits while the budget is spent.
    pub max_request_memory_bytes: u64,
    /// Time a client has to send a request's head, and to start the next request on
    /// a kept-alive connection, before it is closed (default 10000 ms).
    pub header_read_timeout_ms: u64,
    /// Longest pause while a client sends a request body before the request fails
    /// (default 30000 ms).
    pub body_read_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 9094)),
            messages_addr: SocketAddr::from(([127, 0, 0, 1], 9092)),
            max_body_bytes: 16 * MIB,
            max_batch_messages: 10_000,
            max_headers_per_message: HeaderLimits::DEFAULT.max_count as u32,
            max_header_bytes_per_message: HeaderLimits::DEFAULT.max_bytes as u64,
            max_read_messages: 1000,
            max_read_bytes: 8 * MIB,
            max_wait_ms: 30_000,
            max_connections: 4096,
            admin_max_connections: 256,
            max_concurrent_requests: 64,
            max_request_memory_bytes: 256 * MIB,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
        }
    }
}

impl ServerConfig {
    /// The bounds of the message API's port.
    pub fn message_limits(&self) -> HttpLimits {
        self.http_limits(self.max_connections)
    }

    /// The bounds of the admin API's port.
    pub fn admin_limits(&self) -> HttpLimits {
        self.http_limits(self.admin_max_connections)
    }

    fn http_limits(&self, max_connections: u32) -> HttpLimits {
        HttpLimits {
            max_connections: max_connections as usize,
            max_concurrent_requests: self.max_concurrent_requests as usize,
            header_read_timeout: std::time::Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: std::time::Duration::from_millis(self.body_read_timeout_ms),
        }
    }

    /// The header limits every message coming in is held to.
    pub fn header_limits(&self) -> HeaderLimits {
        HeaderLimits {
            max_count: self.max_headers_per_message as usize,
            max_bytes: usize::try_from(self.max_header_bytes_per_message).unwrap_or(usize::MAX),
        }
    }
}

/// `[storage]`: the embedded database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directory of the database file (default `data`).
    pub data_dir: PathBuf,
    /// Default age limit of a topic's messages in ms; 0 = keep forever
    /// (default 604800000, 7 days).
    pub retention_ms: u64,
    /// Default size limit of a topic in bytes; 0 = unlimited (default 0).
    pub retention_bytes: u64,
    /// Create a topic on its first produce (default `true`).
    pub auto_create_topics: bool,
    /// How often retention runs, in ms (default 60000; at least 100).
    pub retention_check_interval_ms: u64,
    /// Memory the database may use to cache pages, in bytes (default 128 MiB;
    /// 1 MiB ..= 64 GiB). The broker's resident memory is mostly this cache.
    pub cache_bytes: u64,
    /// Writes that would leave less than this many bytes free on the data
    /// directory's filesystem are refused with `507 storage_full`, and resume by
    /// themselves once space is freed (default 128 MiB; 0 refuses only when the
    /// disk is really full).
    pub min_free_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: 0,
            auto_create_topics: true,
            retention_check_interval_ms: 60_000,
            cache_bytes: 128 * MIB,
            min_free_bytes: crate::storage::DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// `[admin]`: admin API access.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// When set, every admin request needs `Authorization: Bearer <token>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Lets the admin API listen beyond loopback with no token (default false: the
    /// broker refuses to start so). Anyone who reaches the port can then upload and
    /// run code; the broker logs a warning at every start.
    pub allow_open_admin: bool,
    /// Serve the web console at `/console` on the admin port (default true). The
    /// message API then answers the console's cross-origin requests (CORS) from the
    /// admin port's origin only.
    pub console: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            token: None,
            allow_open_admin: false,
            console: true,
        }
    }
}

/// `[logging]`, as in the guide's troubleshooting section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// `trace`, `debug`, `info` (default), `warn`, `error` or `off`.
    pub level: String,
    /// When non-empty, `level` applies to these targets (e.g. `rustmq::etl`) and
    /// everything else logs at `info`.
    pub targets: Vec<String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".into(),
            targets: Vec::new(),
        }
    }
}

impl LoggingConfig {
    /// The `tracing_subscriber::EnvFilter` directives this section means:
    /// `level`, or `info,<target>=<level>,...` when targets are given.
    pub fn filter_directives(&self) -> String {
        if self.targets.is_empty() {
            return self.level.clone();
        }
        let mut out = String::from("info");
        for target in &self.targets {
            out.push_str(&format!(",{target}={}", self.level));
        }
        out
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown key or a wrongly typed value.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, which names the key and its line.
        message: String,
    },
    /// An environment override could not be applied.
    #[error("environment override {vars}: {message}")]
    Env {
        /// The variables that were applied.
        vars: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("config file {path}: invalid value for `{key}`: {message}")]
    Invalid {
        /// The file (or `<defaults>`).
        path: String,
        /// `section.key`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

/// The section names environment overrides may address.
const SECTIONS: [&str; 6] = ["etl", "server", "storage", "admin", "logging", "kafka"];

impl BrokerConfig {
    /// Loads `path`, applies `RUSTMQ_*` environment overrides, resolves relative
    /// paths against the file's directory and validates every value.
    pub fn load(path: &Path) -> Result<BrokerConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Self::from_parts(&text, &path.display().to_string(), &base, std::env::vars())
    }

    /// The defaults plus environment overrides, paths relative to the working
    /// directory: the configuration when no file is given.
    pub fn from_env() -> Result<BrokerConfig, ConfigError> {
        Self::from_parts("", "<defaults>", Path::new("."), std::env::vars())
    }

    /// Parses `text` (named `source` in errors), applies the `RUSTMQ_*` pairs in
    /// `env`, resolves relative paths against `base` and validates.
    pub fn from_parts(
        text: &str,
        source: &str,
        base: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<BrokerConfig, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse {
            path: source.to_string(),
            message: e.to_string(),
        };
        // Parsing the text directly first gives errors with the line of the key.
        let mut config: BrokerConfig = toml::from_str(text).map_err(parse_error)?;
        let overrides = env_overrides(env);
        if !overrides.is_empty() {
            config = apply_env(text, &overrides)?;
        }
        config.resolve_paths(base);
        config.validate(source)?;
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        self.storage.data_dir = resolve(&self.storage.data_dir);
        self.etl.modules_path = if self.etl.modules_path.as_os_str().is_empty() {
            self.storage.data_dir.join("wasm")
        } else {
            resolve(&self.etl.modules_path)
        };
        self.etl.compiled_cache = self.etl.compiled_cache.as_deref().map(resolve);
    }

    /// Whether the admin API listens beyond loopback with no token.
    pub fn admin_is_open(&self) -> bool {
        self.admin.token.is_none() && !self.server.admin_addr.ip().is_loopback()
    }

    fn validate(&self, source: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: source.to_string(),
            key: key.to_string(),
            message,
        };
        let range = |key: &str, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(invalid(
                    key,
                    format!("{value} is out of range; allowed is {min} ..= {max}"),
                ))
            }
        };
        let e = &self.etl;
        range(
            "etl.memory_limit_bytes",
            e.memory_limit_bytes,
            MIB,
            4096 * MIB,
        )?;
        range(
            "etl.execution_timeout_ms",
            e.execution_timeout_ms,
            1,
            600_000,
        )?;
        range("etl.max_batch_call_ms", e.max_batch_call_ms, 1, 600_000)?;
        for (key, value) in [
            (
                "etl.max_core_instances_per_component",
                e.max_core_instances_per_component,
            ),
            (
                "etl.max_memories_per_component",
                e.max_memories_per_component,
            ),
            ("etl.max_tables_per_component", e.max_tables_per_component),
        ] {
            range(key, value.into(), 1, 1000)?;
        }
        range(
            "etl.max_concurrent_executions",
            e.max_concurrent_executions.into(),
            1,
            10_000,
        )?;
        range(
            "etl.max_module_size_bytes",
            e.max_module_size_bytes,
            1024,
            1024 * MIB,
        )?;
        range(
            "etl.max_output_messages",
            e.max_output_messages.into(),
            1,
            1_000_000,
        )?;
        range("etl.max_output_bytes", e.max_output_bytes, 1024, 1024 * MIB)?;
        range(
            "etl.state_quota_bytes",
            e.state_quota_bytes,
            1024,
            16 * 1024 * MIB,
        )?;
        range("etl.commits_in_flight", e.commits_in_flight.into(), 1, 16)?;
        let s = &self.server;
        range("server.max_body_bytes", s.max_body_bytes, 1024, 1024 * MIB)?;
        range(
            "server.max_batch_messages",
            s.max_batch_messages.into(),
            1,
            1_000_000,
        )?;
        range(
            "server.max_headers_per_message",
            s.max_headers_per_message.into(),
            1,
            65_536,
        )?;
        range(
            "server.max_header_bytes_per_message",
            s.max_header_bytes_per_message,
            64,
            16 * MIB,
        )?;
        range(
            "server.max_connections",
            s.max_connections.into(),
            1,
            1_000_000,
        )?;
        range(
            "server.admin_max_connections",
            s.admin_max_connections.into(),
            1,
            1_000_000,
        )?;
        range(
            "server.max_concurrent_requests",
            s.max_concurrent_requests.into(),
            1,
            100_000,
        )?;
        range(
            "server.max_request_memory_bytes",
            s.max_request_memory_bytes,
            16 * MIB,
            64 * 1024 * MIB,
        )?;
        range(
            "server.header_read_timeout_ms",
            s.header_read_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "server.body_read_timeout_ms",
            s.body_read_timeout_ms,
            100,
            600_000,
        )?;
        range(
            "server.max_read_messages",
            s.max_read_messages.into(),
            1,
            1_000_000,
        )?;
        range("server.max_read_bytes", s.max_read_bytes, 1024, 1024 * MIB)?;
        range("server.max_wait_ms", s.max_wait_ms, 0, 600_000)?;
        if s.admin_addr == s.messages_addr && s.admin_addr.port() != 0 {
            return Err(invalid(
                "server.messages_addr",
                format!(
                    "{} is also the admin address; use two ports",
                    s.messages_addr
                ),
            ));
        }
        range(
            "storage.retention_check_interval_ms",
            self.storage.retention_check_interval_ms,
            100,
            u64::MAX,
        )?;
        range(
            "storage.cache_bytes",
            self.storage.cache_bytes,
            MIB,
            64 * 1024 * MIB,
        )?;
        if let Some(token) = &self.admin.token {
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(
                    "admin.token",
                    "must be non-empty and contain no whitespace (remove the key to disable auth)"
                        .into(),
                ));
            }
        }
        if self.admin_is_open() && !self.admin.allow_open_admin {
            return Err(invalid(
                "server.admin_addr",
                format!(
                    "{} is reachable beyond this machine and [admin] token is not set: anyone who reaches it could upload and run modules; set [admin] token (or RUSTMQ_ADMIN_TOKEN), bind the admin API to 127.0.0.1, or set [admin] allow_open_admin = true to accept the risk",
                    self.server.admin_addr
                ),
            ));
        }
        const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
        if !LEVELS.contains(&self.logging.level.as_str()) {
            return Err(invalid(
                "logging.level",
                format!(
                    "{:?} is not one of {}",
                    self.logging.level,
                    LEVELS.join(", ")
                ),
            ));
        }
        if let Err((key, message)) = self.kafka.validate() {
            return Err(invalid(&key, message));
        }
        for target in &self.logging.targets {
            let ok = !target.is_empty()
                && target
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '-'));
            if !ok {
                return Err(invalid(
                    "logging.targets",
                    format!("{target:?} is not a target name like \"rustmq::etl\""),
                ));
            }
        }
        Ok(())
    }
}

/// `(section, key, var name, raw value)` for every `RUSTMQ_<SECTION>_<KEY>` in `env`.
fn env_overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = env
        .into_iter()
        .filter_map(|(var, value)| {
            let rest = var.strip_prefix("RUSTMQ_")?;
            SECTIONS.iter().find_map(|section| {
                let key = rest
                    .strip_prefix(&section.to_ascii_uppercase())?
                    .strip_prefix('_')?;
                Some((
                    section.to_string(),
                    key.to_ascii_lowercase(),
                    var.clone(),
                    value.clone(),
                ))
            })
        })
        .collect();
    out.sort();
    out
}

/// Merges the overrides into the file's table and deserialises the result.
fn apply_env(
    text: &str,
    overrides: &[(String, String, String, String)],
) -> Result<BrokerConfig, ConfigError> {
    let vars = overrides
        .iter()
        .map(|o| o.2.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let env_error = |message: String| ConfigError::Env {
        vars: vars.clone(),
        message,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| env_error(e.to_string()))?;
    let defaults =
        toml::Table::try_from(BrokerConfig::default()).map_err(|e| env_error(e.to_string()))?;
    for (section, key, _, raw) in overrides {
        let typed = defaults
            .get(section)
            .and_then(|s| s.get(key))
            .is_some_and(|v| !v.is_str());
        let value = if typed {
            toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or_else(|| toml::Value::String(raw.clone()))
        } else {
            toml::Value::String(raw.clone())
        };
        let section = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match section.as_table_mut() {
            Some(section) => {
                section.insert(key.clone(), value);
            }
            None => return Err(env_error("the section in the file is not a table".into())),
        }
    }
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| env_error(e.message().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BrokerConfig, ConfigError> {
        BrokerConfig::from_parts(text, "broker.toml", Path::new("/etc/rustmq"), [])
    }

    const GUIDE: &str = r#"
[etl]
enabled = true
memory_limit_bytes = 67108864
execution_timeout_ms = 5000
max_concurrent_executions = 100
modules_path = "/var/lib/rustmq/wasm"
"#;

    #[test]
    fn the_guides_etl_section_loads() {
        let c = parse(GUIDE).unwrap();
        assert!(c.etl.enabled);
        assert_eq!(c.etl.memory_limit_bytes, 67108864);
        assert_eq!(c.etl.modules_path, PathBuf::from("/var/lib/rustmq/wasm"));
        assert_eq!(c.server.admin_addr.port(), 9094);
        assert_eq!(c.server.messages_addr.port(), 9092);
        assert_eq!(c.storage.data_dir, PathBuf::from("/etc/rustmq/data"));
    }

    #[test]
    fn an_admin_api_beyond_loopback_needs_a_token_or_an_explicit_allowance() {
        let open = "[server]\nadmin_addr = \"0.0.0.0:9094\"\n";
        let msg = parse(open).unwrap_err().to_string();
        assert!(
            msg.contains("server.admin_addr") && msg.contains("allow_open_admin"),
            "{msg}"
        );
        assert!(parse(&format!("{open}[admin]\ntoken = \"s3cret\"\n")).is_ok());
        let allowed = parse(&format!("{open}[admin]\nallow_open_admin = true\n")).unwrap();
        assert!(allowed.admin_is_open());
        assert!(!parse("").unwrap().admin_is_open());
    }

    #[test]
    fn unknown_keys_are_named_with_the_file() {
        let err = parse("[etl]\nenabled = true\nmemory_limit = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("broker.toml") && msg.contains("memory_limit"),
            "{msg}"
        );
        assert!(parse("[nope]\n").unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn out_of_range_values_say_what_is_allowed() {
        let msg = parse("[etl]\nmemory_limit_bytes = 10\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("etl.memory_limit_bytes") && msg.contains("allowed"),
            "{msg}"
        );
        let msg = parse("[etl]\ncommits_in_flight = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("etl.commits_in_flight") && msg.contains("allowed"),
            "{msg}"
        );
        assert_eq!(
            parse("[etl]\ncommits_in_flight = 4\n")
                .unwrap()
                .etl
                .commits_in_flight,
            4
        );
        let msg = parse("[logging]\nlevel = \"loud\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("logging.level"), "{msg}");
        let msg = parse("[server]\nadmin_addr = \"nope\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("admin_addr"), "{msg}");
    }

    #[test]
    fn environment_overrides_file_values_with_types() {
        let env = [
            (
                "RUSTMQ_ETL_MEMORY_LIMIT_BYTES".to_string(),
                "134217728".to_string(),
            ),
            ("RUSTMQ_ETL_ENABLED".into(), "false".into()),
            ("RUSTMQ_ADMIN_TOKEN".into(), "12345".into()),
            ("RUSTMQ_LOGGING_TARGETS".into(), r#"["rustmq::etl"]"#.into()),
            ("RUSTMQ_UNRELATED".into(), "x".into()),
        ];
        let c = BrokerConfig::from_parts(GUIDE, "f", Path::new("."), env).unwrap();
        assert_eq!(c.etl.memory_limit_bytes, 134217728);
        assert!(!c.etl.enabled);
        assert_eq!(c.admin.token.as_deref(), Some("12345"));
        assert_eq!(c.logging.targets, ["rustmq::etl"]);
        let bad = [("RUSTMQ_ETL_NOPE".to_string(), "1".to_string())];
        let msg = BrokerConfig::from_parts(GUIDE, "f", Path::new("."), bad)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("RUSTMQ_ETL_NOPE") && msg.contains("nope"),
            "{msg}"
        );
    }

    #[test]
    fn logging_targets_become_filter_directives() {
        let c = parse("[logging]\nlevel = \"debug\"\ntargets = [\"rustmq::etl\"]\n").unwrap();
        assert_eq!(c.logging.filter_directives(), "info,rustmq::etl=debug");
        assert_eq!(LoggingConfig::default().filter_directives(), "info");
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let c =
            parse("[etl]\nmodules_path = \"../data/wasm\"\n[storage]\ndata_dir = \"d\"\n").unwrap();
        assert_eq!(
            c.etl.modules_path,
            PathBuf::from("/etc/rustmq/../data/wasm")
        );
        assert_eq!(c.storage.data_dir, PathBuf::from("/etc/rustmq/d"));
        assert_eq!(
            c.etl.compiled_cache_dir(),
            PathBuf::from("/etc/rustmq/../data/wasm/compiled")
        );
    }
}
