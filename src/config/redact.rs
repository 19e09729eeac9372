//! Redaction: where the secrets are in the config, and the config with them hidden, for
//! `agent-gateway config` and `GET /config`.

use super::{Config, ConfigError};

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
