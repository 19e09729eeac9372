//! One `Config`, layered defaults < TOML file < environment < command line, validated once.
//!
//! The layers are merged as a TOML tree whose shape comes from the defaults, so an environment
//! variable or `--set key=value` is typed by the key it sets, and an unknown key anywhere is an
//! error rather than a silent no-op. The loader takes the environment as a map: tests never
//! touch the process environment.

use std::collections::HashMap;
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

/// Environment variables and the key each sets, applied in this order (later wins): the pi
/// gateway's names, then the TypeScript gateway's, then ours.
pub const ENV_KEYS: &[(&str, &str)] = &[
    ("PI_GATEWAY_BIND", "bind"),
    ("PI_GATEWAY_PORT", "port"),
    ("PI_GATEWAY_TOKEN", "bearer_token"),
    ("PI_GATEWAY_WEBHOOK_SECRET", "webhook.secret"),
    ("GATEWAY_HOST", "bind"),
    ("GATEWAY_PORT", "port"),
    ("GATEWAY_AUTH_TOKEN", "bearer_token"),
    ("GATEWAY_CORS_ORIGIN", "cors_origin"),
    ("GATEWAY_ENABLE_WEB_UI", "web_ui"),
    ("SESSION_PERSIST", "persist"),
    ("CWD", "workspace"),
    ("GATEWAY_DATA_DIR", "data_dir"),
    ("GATEWAY_PROVIDER", "provider"),
    ("GATEWAY_MODEL", "model"),
    ("GATEWAY_BASE_URL", "base_url"),
    ("OPENAI_API_KEY", "openai_api_key"),
    ("ANTHROPIC_API_KEY", "anthropic_api_key"),
    ("GATEWAY_TOOLS_SANDBOX", "tools_sandbox"),
    ("GATEWAY_HTTP_HEADER_TIMEOUT", "http.header_timeout"),
    ("GATEWAY_HTTP_BODY_TIMEOUT", "http.body_timeout"),
    ("GATEWAY_HTTP_MAX_CONNECTIONS", "http.max_connections"),
];

/// Where the layers come from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The TOML file (`--config`).
    pub file: Option<PathBuf>,
    /// The process environment, as a map.
    pub env: HashMap<String, String>,
    /// Command-line settings as `(key, value)`, in order (`--port`, `--set key=value`, ...).
    pub overrides: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Merges the layers and validates the result once.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        let mut tree = toml::Value::try_from(Config::default())
            .map_err(|e| ConfigError(format!("default config: {e}")))?;
        if let Some(path) = &sources.file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            let file: toml::Value = toml::from_str(&text)
                .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
            merge(&mut tree, file);
        }
        for (var, key) in ENV_KEYS {
            if let Some(value) = sources.env.get(*var) {
                set_key(&mut tree, key, value)
                    .map_err(|e| ConfigError(format!("environment variable {var}: {e}")))?;
            }
        }
        for (key, value) in &sources.overrides {
            set_key(&mut tree, key, value)
                .map_err(|e| ConfigError(format!("command line {key}: {e}")))?;
        }
        let mut config: Config = tree.try_into().map_err(|e: toml::de::Error| {
            let origin = match &sources.file {
                Some(path) => format!("config file {}", path.display()),
                None => "config".to_string(),
            };
            ConfigError(format!("{origin}: {}", e.message()))
        })?;
        config.config_file = sources.file.clone();
        for (index, model) in config.models.iter_mut().enumerate() {
            if model.api_key.is_empty() && !model.api_key_env.is_empty() {
                model.api_key = sources.env.get(&model.api_key_env).cloned().ok_or_else(|| {
                    ConfigError(format!(
                        "models[{index}].api_key_env: {} is not set",
                        model.api_key_env
                    ))
                })?;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges, and refuses settings whose feature is not built yet (never ignores them).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.primary_session.is_empty()
            || self.primary_session.chars().count() > 200
            || self.primary_session.contains(['\n', '\r'])
        {
            return err("primary_session must be 1-200 characters without line breaks".into());
        }
        if self.session.max_queue == 0 {
            return err("session.max_queue must be at least 1".into());
        }
        let limits = &self.limits;
        if limits.max_text == 0 || limits.max_subscribers == 0 || limits.max_live_sessions == 0 {
            return err(
                "limits.max_text, limits.max_subscribers and limits.max_live_sessions must be at \
                 least 1"
                    .into(),
            );
        }
        if self.session.event_log == 0 || self.session.subscriber_buffer == 0 {
            return err("session.event_log and session.subscriber_buffer must be at least 1".into());
        }
        if self.session.sweep_interval.is_zero() {
            return err("session.sweep_interval must be greater than zero".into());
        }
        if self.http.sse_heartbeat.is_zero() {
            return err("http.sse_heartbeat must be greater than zero".into());
        }
        if self.http.header_timeout.is_zero() || self.http.body_timeout.is_zero() {
            return err(
                "http.header_timeout and http.body_timeout must be greater than zero".into()
            );
        }
        // The accept loop counts connections in semaphore permits (at most u32::MAX at once).
        if !(1..=1_000_000).contains(&self.http.max_connections) {
            return err("http.max_connections must be between 1 and 1000000".into());
        }
        if self.http.max_body < 1024 {
            return err("http.max_body must be at least 1024 bytes".into());
        }
        if self.agent.max_steps == 0 {
            return err("agent.max_steps must be at least 1".into());
        }
        if !self.webhook.base_path.starts_with('/') || self.webhook.base_path.len() < 2 {
            return err("webhook.base_path must start with / and name a path".into());
        }
        if self.webhook.base_path.ends_with('/') || self.webhook.base_path.contains(['{', '}']) {
            return err("webhook.base_path must not end with / or contain braces".into());
        }
        if !self.cors_origin.is_empty()
            && self.cors_origin != "*"
            && http::HeaderValue::from_str(&self.cors_origin).is_err()
        {
            return err(format!("cors_origin is not a valid origin: {}", self.cors_origin));
        }
        crate::domain::ToolSet::parse(&self.tools).map_err(ConfigError)?;
        validate_provider(self).map_err(ConfigError)?;
        let mut names = std::collections::HashSet::new();
        for (index, token) in self.tokens.iter().enumerate() {
            if token.name.is_empty()
                || token.name.len() > 100
                || token.name.contains(['/', '\n', '\r'])
                || !names.insert(&token.name)
            {
                return err(format!(
                    "tokens[{index}].name must be a unique, non-empty name without / or line breaks"
                ));
            }
            if token.token.len() < 8 || token.token.contains(char::is_whitespace) {
                return err(format!(
                    "tokens[{index}].token must be at least 8 characters without spaces"
                ));
            }
            if token.token == self.bearer_token
                || self.tokens[..index].iter().any(|t| t.token == token.token)
            {
                return err(format!("tokens[{index}].token is used twice"));
            }
            if let Some(bad) =
                token.scopes.iter().find(|s| crate::domain::Scope::parse(s).is_none())
            {
                return err(format!(
                    "tokens[{index}].scopes: unknown scope {bad:?} (use chat, sessions, memory, admin)"
                ));
            }
        }
        for (index, model) in self.models.iter().enumerate() {
            if !matches!(model.provider.as_str(), "openai" | "anthropic") {
                return err(format!(
                    "models[{index}].provider {:?}: use \"openai\" or \"anthropic\"",
                    model.provider
                ));
            }
            if model.id.is_empty() || model.id.contains(['\n', '\r']) {
                return err(format!("models[{index}].id must be a model name"));
            }
            let same = |m: &ModelConfig| m.provider == model.provider && m.id == model.id;
            if self.models[..index].iter().any(same) {
                return err(format!(
                    "models[{index}]: {}/{} is listed twice",
                    model.provider, model.id
                ));
            }
        }
        if !(10..=100).contains(&self.agent.compact_at_percent) {
            return err("agent.compact_at_percent must be between 10 and 100".into());
        }
        if self.context_window < 256 {
            return err("context_window must be at least 256 tokens".into());
        }
        if self.agent.call_timeout.is_zero() || self.agent.run_timeout.is_zero() {
            return err("agent.call_timeout and agent.run_timeout must be greater than zero".into());
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return err("tls.cert and tls.key go together: set both or neither".into());
        }
        Ok(())
    }

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

/// Overlays `top` on `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Value, top: toml::Value) {
    match (base, top) {
        (toml::Value::Table(base), toml::Value::Table(top)) => {
            for (key, value) in top {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        // Left in so that deserialisation names the unknown key.
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, top) => *base = top,
    }
}

/// Sets `dotted.key` from a string, typed by the value already there (the defaults give every
/// scalar key a value, so the type is always known).
/// The keys `PATCH /config` and `Admin.PatchConfig` may change while the gateway runs: each is
/// read at the moment it applies, so a change has an effect at once.
pub const LIVE_KEYS: &[&str] = &[
    "session.max_queue",
    "session.idle",
    "limits.max_text",
    "limits.max_images",
    "limits.max_image_bytes",
    "limits.max_subscribers",
    "limits.max_live_sessions",
];

impl Config {
    /// This config with `patch` applied: a JSON object of live keys, nested
    /// (`{"session": {"max_queue": 1}}`) or dotted (`{"session.max_queue": 1}`), values typed
    /// as in the TOML file (durations as `"10m"`). Validated whole; any other key is an error.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Config, ConfigError> {
        let serde_json::Value::Object(_) = patch else {
            return Err(ConfigError("the patch must be a JSON object".into()));
        };
        let mut leaves = Vec::new();
        flatten(String::new(), patch, &mut leaves)?;
        if leaves.is_empty() {
            return Err(ConfigError("the patch is empty".into()));
        }
        let mut tree =
            toml::Value::try_from(self).map_err(|e| ConfigError(format!("current config: {e}")))?;
        let keys = leaves.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ");
        for (key, value) in &leaves {
            if !LIVE_KEYS.contains(&key.as_str()) {
                return Err(ConfigError(format!(
                    "{key} cannot be changed while the gateway runs (live keys: {})",
                    LIVE_KEYS.join(", ")
                )));
            }
            let raw = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(ConfigError(format!("{key} must be a number, string or boolean"))),
            };
            set_key(&mut tree, key, &raw).map_err(ConfigError)?;
        }
        let mut config: Config = tree.try_into().map_err(|e: toml::de::Error| {
            ConfigError(format!("invalid value for {keys}: {}", e.message()))
        })?;
        config.config_file = self.config_file.clone();
        config.validate()?;
        Ok(config)
    }
}

/// Where secrets live in the config, as `(table, key)` (`""`: the top level; a list of tables
/// is redacted in each entry). `agent-gateway config` and `GET /config` leave them out.
pub const SECRET_KEYS: &[(&str, &str)] = &[
    ("", "bearer_token"),
    ("", "openai_api_key"),
    ("", "anthropic_api_key"),
    ("webhook", "secret"),
    ("tokens", "token"),
    ("models", "api_key"),
];

impl Config {
    /// The effective config as TOML, every layer applied, each secret that is set replaced by
    /// `"<redacted>"` (so an operator sees that it is set, not what it is).
    pub fn redacted_toml(&self) -> Result<String, ConfigError> {
        let mut tree =
            toml::Value::try_from(self).map_err(|e| ConfigError(format!("config: {e}")))?;
        let redact = |table: &mut toml::Table, key: &str| {
            if let Some(toml::Value::String(value)) = table.get_mut(key)
                && !value.is_empty()
            {
                *value = "<redacted>".into();
            }
        };
        if let Some(root) = tree.as_table_mut() {
            for (table, key) in SECRET_KEYS {
                match root.get_mut(*table) {
                    _ if table.is_empty() => redact(root, key),
                    Some(toml::Value::Table(inner)) => redact(inner, key),
                    Some(toml::Value::Array(items)) => items
                        .iter_mut()
                        .filter_map(toml::Value::as_table_mut)
                        .for_each(|t| redact(t, key)),
                    _ => {}
                }
            }
        }
        toml::to_string_pretty(&tree).map_err(|e| ConfigError(format!("config: {e}")))
    }
}

/// A live config patch with every key dotted (`{"session.max_queue": 1}`), so that patches
/// can be merged key by key and stored.
pub fn dotted_patch(
    patch: &serde_json::Value,
) -> Result<serde_json::Map<String, serde_json::Value>, ConfigError> {
    let mut leaves = Vec::new();
    flatten(String::new(), patch, &mut leaves)?;
    Ok(leaves.into_iter().map(|(key, value)| (key, value.clone())).collect())
}

/// Dotted keys and leaf values of a JSON object.
fn flatten<'a>(
    prefix: String,
    value: &'a serde_json::Value,
    out: &mut Vec<(String, &'a serde_json::Value)>,
) -> Result<(), ConfigError> {
    match value {
        serde_json::Value::Object(map) => {
            if out.len() + map.len() > 64 || prefix.matches('.').count() > 4 {
                return Err(ConfigError("the patch is too big or too deep".into()));
            }
            for (key, value) in map {
                let key = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(key, value, out)?;
            }
            Ok(())
        }
        _ => {
            out.push((prefix, value));
            Ok(())
        }
    }
}

fn set_key(tree: &mut toml::Value, key: &str, raw: &str) -> Result<(), String> {
    let mut node = tree;
    for part in key.split('.') {
        node = node
            .as_table_mut()
            .and_then(|table| table.get_mut(part))
            .ok_or_else(|| format!("unknown config key: {key}"))?;
    }
    *node = match node {
        toml::Value::String(_) => toml::Value::String(raw.to_string()),
        toml::Value::Integer(_) => toml::Value::Integer(
            raw.trim().parse().map_err(|_| format!("{key} must be an integer, got {raw:?}"))?,
        ),
        toml::Value::Boolean(_) => toml::Value::Boolean(
            parse_bool(raw).ok_or_else(|| format!("{key} must be true or false, got {raw:?}"))?,
        ),
        // Lists (`[[tokens]]`, `[[models]]`) as one TOML inline array:
        // `--set 'tokens=[{name="ci", token="...", scopes=["chat"]}]'`.
        toml::Value::Array(_) => toml::from_str::<toml::Table>(&format!("value = {raw}"))
            .ok()
            .and_then(|mut table| table.remove("value"))
            .filter(toml::Value::is_array)
            .ok_or_else(|| format!("{key} must be a TOML inline array, got {raw:?}"))?,
        _ => return Err(format!("{key} can only be set in the config file")),
    };
    Ok(())
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
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

/// The provider setting names one of the three the gateway speaks.
fn validate_provider(config: &Config) -> Result<(), String> {
    match config.provider.as_str() {
        "echo" if config.model_id() == "echo" => Ok(()),
        "echo" => Err(format!("model {:?} is not an echo model (use \"echo\")", config.model)),
        "openai" | "anthropic" => Ok(()),
        other => Err(format!("unknown provider {other:?} (echo, openai, anthropic)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(&Sources {
            file: None,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        })
    }

    #[test]
    fn defaults_validate() {
        let config = load(&[], &[]).unwrap();
        assert_eq!(config.port, 8787);
        assert_eq!(config.session.idle, Duration::from_secs(3600));
        assert_eq!(config.model_id(), "echo");
    }

    #[test]
    fn env_then_cli_win_in_order() {
        let config = load(
            &[("PI_GATEWAY_PORT", "1"), ("GATEWAY_PORT", "2"), ("GATEWAY_AUTH_TOKEN", "t")],
            &[("session.idle", "5s")],
        )
        .unwrap();
        assert_eq!(config.port, 2);
        assert_eq!(config.bearer_token, "t");
        assert_eq!(config.session.idle, Duration::from_secs(5));
        let config = load(&[("GATEWAY_PORT", "2")], &[("port", "3")]).unwrap();
        assert_eq!(config.port, 3);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_errors() {
        assert!(load(&[("GATEWAY_PORT", "eighty")], &[]).unwrap_err().0.contains("GATEWAY_PORT"));
        assert!(load(&[], &[("nope", "1")]).unwrap_err().0.contains("unknown config key: nope"));
        assert!(load(&[], &[("session.idle", "soon")]).unwrap_err().0.contains("invalid duration"));
        assert!(!load(&[("SESSION_PERSIST", "false")], &[]).unwrap().persist);
        let sandbox = load(&[("GATEWAY_TOOLS_SANDBOX", "bwrap")], &[]).unwrap().tools_sandbox;
        assert_eq!(sandbox, SandboxSetting::Bwrap);
        let err = load(&[], &[("tools_sandbox", "chroot")]).unwrap_err().0;
        assert!(err.contains("chroot") && err.contains("landlock"), "{err}");
    }

    #[test]
    fn http_edge_settings_come_from_the_environment_and_are_checked() {
        let config = load(
            &[("GATEWAY_HTTP_HEADER_TIMEOUT", "2s"), ("GATEWAY_HTTP_MAX_CONNECTIONS", "5")],
            &[("http.body_timeout", "750ms")],
        )
        .unwrap();
        assert_eq!(config.http.header_timeout, Duration::from_secs(2));
        assert_eq!(config.http.body_timeout, Duration::from_millis(750));
        assert_eq!(config.http.max_connections, 5);
        let defaults = load(&[], &[]).unwrap().http;
        assert!(defaults.header_timeout <= Duration::from_secs(60), "seconds, not minutes");
        assert!(load(&[], &[("http.header_timeout", "0s")]).is_err());
        assert!(load(&[], &[("http.max_connections", "0")]).is_err());
    }

    #[test]
    fn file_unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        std::fs::write(&path, "port = 9000\n[session]\nmax_queue = 2\nbogus = 1\n").unwrap();
        let err =
            Config::load(&Sources { file: Some(path.clone()), ..Default::default() }).unwrap_err();
        assert!(err.0.contains("bogus"), "{err}");
        std::fs::write(&path, "port = 9000\n[session]\nmax_queue = 2\n").unwrap();
        let config = Config::load(&Sources { file: Some(path), ..Default::default() }).unwrap();
        assert_eq!((config.port, config.session.max_queue), (9000, 2));
    }

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
        let readme = include_str!("../README.md");
        let mut all = Vec::new();
        keys("", &toml::Value::try_from(Config::default()).unwrap(), &mut all);
        assert!(all.len() > 30);
        for key in all {
            assert!(readme.contains(&format!("`{key}`")), "README config table misses {key}");
        }
    }
}
