//! The HTTP client the broker subcommands share: where the broker is (`--admin-url`,
//! `--url`), the admin token (`RUSTMQ_ADMIN_TOKEN`), and the turning of every outcome
//! into a [`ClientError`] whose exit code scripts can rely on.
//!
//! The broker answers errors as `{"error": {"code", "message"}}`; they are shown as
//! `error: <message> (<code>)`.

use std::time::Duration;

use clap::Args;
use reqwest::blocking::{Client as Http, RequestBuilder, Response};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The admin API's default address (the deployment guide's port 9094).
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:9094";
/// The message API's default address (the deployment guide's port 9092).
pub const DEFAULT_DATA_URL: &str = "http://127.0.0.1:9092";
/// How long a request may take unless the command needs longer (a long-poll adds its
/// wait). Bounds a hung broker.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to try to connect before reporting the broker unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the broker is and how to talk to it; shared by every broker subcommand.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The broker's admin API. `module` and `pipeline` commands take a
    /// comma-separated list (the workers of one Kafka cluster) and run against each.
    #[arg(long, global = true, env = "RUSTMQ_CLI_ADMIN_URL", default_value = DEFAULT_ADMIN_URL, value_name = "URL")]
    pub admin_url: String,
    /// The broker's message API.
    #[arg(long, global = true, env = "RUSTMQ_CLI_URL", default_value = DEFAULT_DATA_URL, value_name = "URL")]
    pub url: String,
    /// The admin token, when the broker sets `[admin] token` (sent as
    /// `Authorization: Bearer <token>`). Prefer the environment variable: arguments are
    /// visible to other users in `ps`.
    #[arg(
        long,
        global = true,
        env = "RUSTMQ_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Print the broker's JSON instead of tables (for scripts).
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a request to the broker did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address (refused, unreachable, timed out connecting).
    #[error("cannot connect to the broker at {url}: {reason}; is rustmq-broker running there? (set --admin-url/--url)")]
    Connect {
        /// The URL tried.
        url: String,
        /// Why, as reqwest says it.
        reason: String,
    },
    /// The broker answered with an error.
    #[error("{message} ({code})")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The broker's stable error code.
        code: String,
        /// The broker's message.
        message: String,
    },
    /// The request failed after connecting (timeout, reset) or the answer was not
    /// the JSON expected.
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// The URL requested.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status of an [`ClientError::Api`] answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The broker's error code of an [`ClientError::Api`] answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Which listener a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// The admin API (`--admin-url`), with the token.
    Admin,
    /// The message API (`--url`), without it.
    Data,
}

/// A blocking client for both broker APIs.
#[derive(Debug, Clone)]
pub struct Client {
    http: Http,
    admin_url: String,
    data_url: String,
    token: Option<String>,
}

impl Client {
    /// A client for the broker `args` point at.
    pub fn new(args: &ClientArgs) -> Result<Client, ClientError> {
        let http = Http::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("rustmq-etl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport {
                url: args.admin_url.clone(),
                reason: e.to_string(),
            })?;
        Ok(Client {
            http,
            admin_url: args.admin_url.trim_end_matches('/').to_string(),
            data_url: args.url.trim_end_matches('/').to_string(),
            token: args.token.clone().filter(|t| !t.is_empty()),
        })
    }

    /// Starts a request to `path` (beginning with `/`) on `api`.
    pub fn request(&self, api: Api, method: Method, path: &str) -> RequestBuilder {
        let base = match api {
            Api::Admin => &self.admin_url,
            Api::Data => &self.data_url,
        };
        let builder = self.http.request(method, format!("{base}{path}"));
        match (&self.token, api) {
            (Some(token), Api::Admin) => builder.bearer_auth(token),
            _ => builder,
        }
    }

    /// Sends `request` and returns its JSON answer, or the broker's error.
    pub fn send(&self, request: RequestBuilder) -> Result<Value, ClientError> {
        let response = self.execute(request)?;
        let url = response.url().to_string();
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        response.json().map_err(|e| ClientError::Transport {
            url,
            reason: format!("the answer is not JSON: {e}"),
        })
    }

    /// Sends `request`; a non-2xx answer becomes [`ClientError::Api`].
    pub fn execute(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let request = request.build().map_err(|e| ClientError::Transport {
            url: String::new(),
            reason: e.to_string(),
        })?;
        let url = request.url().to_string();
        let response = self.http.execute(request).map_err(|e| {
            if e.is_connect() {
                ClientError::Connect {
                    url: url.clone(),
                    reason: root_cause(&e),
                }
            } else {
                ClientError::Transport {
                    url: url.clone(),
                    reason: root_cause(&e),
                }
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(api_error(response))
    }

    /// `GET` on `api`, answered as JSON.
    pub fn get(&self, api: Api, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(api, Method::GET, path))
    }

    /// `POST` of a JSON body on `api`.
    pub fn post_json(&self, api: Api, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.request(api, Method::POST, path).json(body))
    }
}

/// Turns an error answer into [`ClientError::Api`], whatever its body.
fn api_error(response: Response) -> ClientError {
    let status = response.status();
    let text = response.text().unwrap_or_default();
    let parsed: Option<(String, String)> = serde_json::from_str::<crate::wire::ErrorBody>(&text)
        .ok()
        .map(|body| (body.error.code, body.error.message));
    let (code, message) = parsed.unwrap_or_else(|| {
        let reason = status.canonical_reason().unwrap_or("error");
        (
            format!("http_{}", status.as_u16()),
            format!("the broker answered {} {reason}", status.as_u16()),
        )
    });
    ClientError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}

/// reqwest's outer message is "error sending request for url (...)"; the useful part
/// (e.g. "Connection refused") is at the bottom of the source chain.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// Percent-encodes one path segment (ids and topic names are restricted to safe
/// characters by the broker, but a user may type anything).
pub fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_escape_everything_outside_the_unreserved_set() {
        assert_eq!(segment("pipeline-1"), "pipeline-1");
        assert_eq!(segment("a b/c"), "a%20b%2Fc");
    }
}
