//! Redaction: where the secrets are in the config, and the config with them hidden, for
//! `agent-gateway config` (marked) and `GET /config` (left out). `store_url` is shown with its
//! password redacted ([`redact_url`]), in those two and in every log line and error.

use serde_json::Value;

use super::{Config, ConfigError};

/// Where secrets live in the config, as `(table, key)` (`""`: the top level; a list of tables
/// is redacted in each entry). `agent-gateway config` and `GET /config` hide them.
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
            if let Some(toml::Value::String(url)) = root.get_mut("store_url") {
                *url = redact_url(url);
            }
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

    /// The effective config as JSON with every secret left out, set or not (`GET /config`,
    /// `Admin.GetConfig`): tokens (the values, not their names and scopes), API keys, the
    /// webhook secret.
    pub fn public_json(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(root) = &mut value {
            if let Some(Value::String(url)) = root.get_mut("store_url") {
                *url = redact_url(url);
            }
            for (table, key) in SECRET_KEYS {
                match root.get_mut(*table) {
                    _ if table.is_empty() => {
                        root.remove(*key);
                    }
                    Some(Value::Object(inner)) => {
                        inner.remove(*key);
                    }
                    Some(Value::Array(items)) => {
                        for item in items.iter_mut().filter_map(Value::as_object_mut) {
                            item.remove(*key);
                        }
                    }
                    _ => {}
                }
            }
        }
        value
    }
}

/// A database URL with its password replaced by `<redacted>`: the one in the user info
/// (`postgres://user:pass@host/db`, up to the first `@`, as the driver reads it) and a
/// `password=` parameter. A URL without one comes back as it was.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = match rest.split_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:<redacted>@{host}"),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    let (head, query) = match rest.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (rest.as_str(), None),
    };
    let query = query.map(|query| {
        let params = query.split('&').map(|param| match param.split_once('=') {
            Some((name, _)) if name == "password" => format!("{name}=<redacted>"),
            _ => param.to_string(),
        });
        params.collect::<Vec<_>>().join("&")
    });
    match query {
        Some(query) => format!("{scheme}{head}?{query}"),
        None => format!("{scheme}{head}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ModelConfig, TokenConfig};

    fn with_secrets() -> Config {
        let mut config = Config {
            bearer_token: "tok-1".into(),
            openai_api_key: "sk-2".into(),
            anthropic_api_key: "sk-ant-5".into(),
            ..Config::default()
        };
        config.webhook.secret = "hook-3".into();
        config.tokens.push(TokenConfig {
            name: "bot".into(),
            token: "tok-4".into(),
            scopes: vec!["chat".into()],
            own_sessions_only: false,
            requests_per_minute: 0,
            max_concurrent_runs: 0,
        });
        config.models.push(ModelConfig {
            provider: "openai".into(),
            id: "m".into(),
            name: String::new(),
            base_url: String::new(),
            api_key: "sk-6".into(),
            api_key_env: String::new(),
            context_window: 1000,
            max_output_tokens: 10,
        });
        config
    }

    const SECRETS: [&str; 6] = ["tok-1", "sk-2", "hook-3", "tok-4", "sk-ant-5", "sk-6"];

    #[test]
    fn the_toml_marks_each_secret_that_is_set() {
        let text = with_secrets().redacted_toml().unwrap();
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(text.matches("\"<redacted>\"").count(), SECRETS.len(), "{text}");
        assert!(text.contains("name = \"bot\""));
        let unset = Config::default().redacted_toml().unwrap();
        assert!(!unset.contains("<redacted>"), "an unset secret is shown empty: {unset}");
    }

    #[test]
    fn the_json_leaves_every_secret_out() {
        let json = with_secrets().public_json();
        let text = json.to_string();
        for secret in SECRETS {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        for (table, key) in SECRET_KEYS {
            let holder = if table.is_empty() { &json } else { &json[*table] };
            let holders = match holder.as_array() {
                Some(items) => items.iter().collect(),
                None => vec![holder],
            };
            assert!(holders.iter().all(|h| h.get(*key).is_none()), "{table}.{key}: {text}");
        }
        assert_eq!(json["tokens"][0]["name"], "bot");
        assert_eq!(json["session"]["max_queue"], 8);
    }

    #[test]
    fn store_urls_show_everything_but_the_password() {
        let cases = [
            ("postgres://gw:s3cr%40t@db:5432/gw", "postgres://gw:<redacted>@db:5432/gw"),
            (
                "postgresql://gw:pw@db/gw?sslmode=disable",
                "postgresql://gw:<redacted>@db/gw?sslmode=disable",
            ),
            (
                "postgres://gw@db/gw?password=pw&sslmode=prefer",
                "postgres://gw@db/gw?password=<redacted>&sslmode=prefer",
            ),
            ("postgres://db/gw", "postgres://db/gw"),
            ("", ""),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
        let config =
            Config { store_url: "postgres://gw:hunter22@db/gw".into(), ..Config::default() };
        let json = config.public_json().to_string();
        let toml = config.redacted_toml().unwrap();
        for text in [&json, &toml] {
            assert!(!text.contains("hunter22") && text.contains("gw:<redacted>@db/gw"), "{text}");
        }
    }
}
