//! Checking a merged config once, before anything uses it: ranges, names, and settings whose
//! feature does not exist (refused, never ignored).

use super::{Config, ConfigError, ModelConfig};

impl Config {
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
        if !self.store_url.is_empty() {
            let shown = super::redact_url(&self.store_url);
            if !self.store_url.starts_with("postgres://")
                && !self.store_url.starts_with("postgresql://")
            {
                return err(format!(
                    "store_url {shown:?}: use postgres://user:pass@host:port/db (or \
                     postgresql://), or leave it empty for SQLite in data_dir"
                ));
            }
            if !self.persist {
                return err("persist = false keeps sessions in memory only: it cannot go with \
                            store_url"
                    .into());
            }
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return err("tls.cert and tls.key go together: set both or neither".into());
        }
        Ok(())
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
