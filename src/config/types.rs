//! The shape of the config: `Config` and its sections, every key with its default and what it
//! means (the README's config table lists the same keys; a test keeps the two in step).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The validated configuration. Every key is in the README's config table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on.
    pub bind: String,
    pub port: u16,
    /// Where the store lives.
    pub data_dir: PathBuf,
    /// The PostgreSQL store, `postgres://user:pass@host:port/db` (or `postgresql://`, with
    /// `sslmode` `disable` or `prefer`); empty: SQLite in `data_dir`.
    pub store_url: String,
    /// A PostgreSQL request with no answer this long counts as an outage: its callers get
    /// 503 and the connection is made again (a server that hangs without closing it).
    #[serde(with = "duration_str")]
    pub store_timeout: Duration,
    /// Token for every scope; empty means no auth.
    pub bearer_token: String,
    /// The session created at start and never evicted or deleted.
    pub primary_session: String,
    /// `Access-Control-Allow-Origin` for browsers (grpc-web, REST); empty disables CORS.
    pub cors_origin: String,
    /// Serve the built-in chat page at `GET /`.
    pub web_ui: bool,
    /// Keep sessions in the SQLite store under `data_dir` (false: memory only).
    pub persist: bool,
    /// Model provider of new sessions: `echo` (built in), `openai`, `anthropic`.
    pub provider: String,
    /// Model id; empty means the provider's default.
    pub model: String,
    /// Base URL of an OpenAI-compatible or Anthropic endpoint.
    pub base_url: String,
    pub openai_api_key: String,
    pub anthropic_api_key: String,
    /// `readonly`, `all`, `none`, or a comma-separated list of tool names.
    pub tools: String,
    /// The kernel sandbox of the processes tools start (bash): see [`SandboxSetting`].
    pub tools_sandbox: SandboxSetting,
    /// The directory the workspace tools may see.
    pub workspace: PathBuf,
    /// Context window of the default model, in tokens (`[[models]]` entries have their own).
    pub context_window: u64,
    pub system_prompt: String,
    pub append_system_prompt: String,
    /// How long running runs may finish after SIGTERM before they are interrupted.
    #[serde(with = "duration_str")]
    pub shutdown_grace: Duration,
    pub session: SessionConfig,
    pub webhook: WebhookConfig,
    pub http: HttpConfig,
    pub agent: AgentConfig,
    pub limits: LimitsConfig,
    pub metrics: MetricsConfig,
    pub tls: TlsConfig,
    /// The model registry beside the top-level `provider`/`model` (see [`ModelConfig`]).
    pub models: Vec<ModelConfig>,
    /// Named tokens with scopes (see [`TokenConfig`]), beside `bearer_token`.
    pub tokens: Vec<TokenConfig>,
    /// The file the config was read from (tools must never read it).
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// `tools_sandbox`: how the processes tools start are confined. `auto` is the strongest this
/// machine supports (bwrap, else landlock, else none, which bash refuses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxSetting {
    #[default]
    Auto,
    Landlock,
    Bwrap,
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Sessions idle this long (and not busy, without subscribers) are dropped from memory.
    #[serde(with = "duration_str")]
    pub idle: Duration,
    /// How often the idle sweep runs.
    #[serde(with = "duration_str")]
    pub sweep_interval: Duration,
    /// Messages that may wait per session.
    pub max_queue: usize,
    /// Events kept per session for resuming streams.
    pub event_log: usize,
    /// Events a subscriber may fall behind before it gets `lagged`.
    pub subscriber_buffer: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    pub enabled: bool,
    pub base_path: String,
    /// When set, `x-pi-webhook-secret` must match and replaces the bearer token.
    pub secret: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest JSON body, in bytes.
    pub max_body: usize,
    /// Interval of `:` comments on SSE streams.
    #[serde(with = "duration_str")]
    pub sse_heartbeat: Duration,
    /// How long a client may take over a request's headers; also how long a new connection
    /// may wait before its first request (or HTTP/2 preface) and an idle HTTP/1.1 keep-alive
    /// connection before its next request.
    #[serde(with = "duration_str")]
    pub header_timeout: Duration,
    /// How long a handler waits for the next bytes of a request body before it answers 408.
    #[serde(with = "duration_str")]
    pub body_timeout: Duration,
    /// Open connections at most; one more is answered 503 `unavailable` and closed.
    pub max_connections: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Model calls per run before it fails.
    pub max_steps: usize,
    /// Delay between the echo model's tokens.
    #[serde(with = "duration_str")]
    pub echo_token_delay: Duration,
    /// Retries of a model call that failed with 429, 5xx or a connection error.
    pub max_retries: u32,
    /// First retry delay; it doubles each attempt (with jitter) up to `retry_max_delay`.
    #[serde(with = "duration_str")]
    pub retry_base_delay: Duration,
    #[serde(with = "duration_str")]
    pub retry_max_delay: Duration,
    /// One model call, from request to its last event.
    #[serde(with = "duration_str")]
    pub call_timeout: Duration,
    /// One whole run (all its model calls and tools).
    #[serde(with = "duration_str")]
    pub run_timeout: Duration,
    /// The context is compacted before a model call that would pass this share of the
    /// model's context window.
    pub compact_at_percent: u8,
}

/// One entry of the model registry (`[[models]]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `openai` (any OpenAI-compatible Chat Completions API) or `anthropic`.
    pub provider: String,
    /// The model id sent to the API.
    pub id: String,
    /// Shown by `GET /models`; defaults to the id.
    #[serde(default)]
    pub name: String,
    /// API base URL (e.g. `http://localhost:11434/v1` for Ollama); empty: the provider's own.
    #[serde(default)]
    pub base_url: String,
    /// The API key; empty: `api_key_env`, else `openai_api_key` / `anthropic_api_key`.
    #[serde(default)]
    pub api_key: String,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: String,
    /// Context window in tokens (compaction starts near it).
    #[serde(default = "default_context_window")]
    pub context_window: u64,
    /// Largest reply in tokens (Anthropic requires one).
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
}

/// One scoped token (`[[tokens]]`, GATEWAY.md §10).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Shown in logs and recorded as the owner of sessions it creates; never the token.
    pub name: String,
    pub token: String,
    /// Any of `chat`, `sessions`, `memory`, `admin`.
    pub scopes: Vec<String>,
    /// Sees only the sessions it created.
    #[serde(default)]
    pub own_sessions_only: bool,
    /// Requests per minute (0: no limit).
    #[serde(default)]
    pub requests_per_minute: u32,
    /// Runs of this token's messages at once, over all sessions (0: no limit).
    #[serde(default)]
    pub max_concurrent_runs: u32,
}

fn default_context_window() -> u64 {
    128_000
}

fn default_max_output_tokens() -> u32 {
    8192
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Characters of one message's text.
    pub max_text: usize,
    /// Images per message.
    pub max_images: usize,
    /// Decoded bytes per image.
    pub max_image_bytes: usize,
    /// Open event and run streams per session.
    pub max_subscribers: usize,
    /// Sessions held in memory at once (idle ones are evicted first to make room).
    pub max_live_sessions: usize,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `GET /metrics` without a token (for a scraper on a trusted network).
    pub public: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: String,
    pub key: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: 8787,
            data_dir: "./.agent-gateway".into(),
            store_url: String::new(),
            store_timeout: Duration::from_secs(30),
            bearer_token: String::new(),
            primary_session: "main".into(),
            cors_origin: String::new(),
            web_ui: true,
            persist: true,
            provider: "echo".into(),
            model: String::new(),
            base_url: String::new(),
            openai_api_key: String::new(),
            anthropic_api_key: String::new(),
            tools: "readonly".into(),
            tools_sandbox: SandboxSetting::Auto,
            workspace: ".".into(),
            context_window: 128_000,
            system_prompt: String::new(),
            append_system_prompt: String::new(),
            shutdown_grace: Duration::from_secs(30),
            session: SessionConfig::default(),
            webhook: WebhookConfig::default(),
            http: HttpConfig::default(),
            agent: AgentConfig::default(),
            limits: LimitsConfig::default(),
            metrics: MetricsConfig::default(),
            tls: TlsConfig::default(),
            models: Vec::new(),
            tokens: Vec::new(),
            config_file: None,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(60 * 60),
            sweep_interval: Duration::from_secs(60),
            max_queue: 8,
            event_log: 1024,
            subscriber_buffer: 1024,
        }
    }
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self { enabled: true, base_path: "/webhooks".into(), secret: String::new() }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body: 1024 * 1024,
            sse_heartbeat: Duration::from_secs(15),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            max_steps: 32,
            echo_token_delay: Duration::ZERO,
            max_retries: 3,
            retry_base_delay: Duration::from_millis(500),
            retry_max_delay: Duration::from_secs(30),
            call_timeout: Duration::from_secs(10 * 60),
            run_timeout: Duration::from_secs(60 * 60),
            compact_at_percent: 80,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_text: 100_000,
            max_images: 8,
            max_image_bytes: 5 * 1024 * 1024,
            max_subscribers: 256,
            max_live_sessions: 100_000,
        }
    }
}

impl Config {
    /// The model id new sessions use: `model`, else the provider's default.
    pub fn model_id(&self) -> &str {
        match (self.model.as_str(), self.provider.as_str()) {
            ("", "openai") => "gpt-4o-mini",
            ("", "anthropic") => "claude-sonnet-4-5",
            ("", provider) => provider,
            (model, _) => model,
        }
    }
}

/// Durations as human strings (`60m`, `15s`, `250ms`).
mod duration_str {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {text:?} ({e}); use e.g. 15s, 60m"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the config accepts has a row in the README's config table.
    #[test]
    fn readme_documents_every_key() {
        fn keys(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
            match value {
                toml::Value::Table(table) => {
                    for (key, value) in table {
                        let path =
                            if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                        keys(&path, value, out);
                    }
                }
                toml::Value::Array(_) => out.push(format!("[[{prefix}]]")),
                _ => out.push(prefix.to_string()),
            }
        }
        let readme = include_str!("../../README.md");
        let mut all = Vec::new();
        keys("", &toml::Value::try_from(Config::default()).unwrap(), &mut all);
        assert!(all.len() > 30);
        for key in all {
            assert!(readme.contains(&format!("`{key}`")), "README config table misses {key}");
        }
    }
}
