//! Loading: defaults < TOML file < environment < command line, merged as one TOML tree whose
//! shape comes from the defaults, so an environment variable or `--set key=value` is typed by
//! the key it sets and an unknown key anywhere is an error rather than a silent no-op. The
//! loader takes the environment as a map: tests never touch the process environment.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{Config, ConfigError};

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
    ("GATEWAY_STORE_URL", "store_url"),
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
        let mut config: Config = serde_path_to_error::deserialize(tree).map_err(
            |e: serde_path_to_error::Error<toml::de::Error>| {
                let key = e.path().to_string();
                ConfigError(format!("{}: {key}: {}", origin(sources, &key), e.inner().message()))
            },
        )?;
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
}

/// Where the value of `key` came from: the last layer that set it.
fn origin(sources: &Sources, key: &str) -> String {
    if sources.overrides.iter().any(|(k, _)| k == key) {
        return "command line".into();
    }
    // Later variables win, so the last one set is the origin.
    let set = |(var, k): &&(&str, &str)| *k == key && sources.env.contains_key(*var);
    if let Some((var, _)) = ENV_KEYS.iter().rev().find(set) {
        return format!("environment variable {var}");
    }
    match &sources.file {
        Some(path) => format!("config file {}", path.display()),
        None => "config".into(),
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
pub(super) fn set_key(tree: &mut toml::Value, key: &str, raw: &str) -> Result<(), String> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::SandboxSetting;

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
        let error = load(&[], &[("session.idle", "soon")]).unwrap_err().0;
        assert!(error.starts_with("command line: session.idle: invalid duration"), "{error}");
        let error = load(&[("GATEWAY_HTTP_BODY_TIMEOUT", "soon")], &[]).unwrap_err().0;
        let expected = "environment variable GATEWAY_HTTP_BODY_TIMEOUT: http.body_timeout: invalid";
        assert!(error.starts_with(expected), "{error}");
        assert!(!load(&[("SESSION_PERSIST", "false")], &[]).unwrap().persist);
        let sandbox = load(&[("GATEWAY_TOOLS_SANDBOX", "bwrap")], &[]).unwrap().tools_sandbox;
        assert_eq!(sandbox, SandboxSetting::Bwrap);
        let err = load(&[], &[("tools_sandbox", "chroot")]).unwrap_err().0;
        assert!(err.contains("chroot") && err.contains("landlock"), "{err}");
    }

    #[test]
    fn store_url_is_postgres_or_empty_and_its_errors_hide_the_password() {
        let url = "postgresql://gw:pw-123@db:5432/gw?sslmode=disable";
        assert_eq!(load(&[("GATEWAY_STORE_URL", url)], &[]).unwrap().store_url, url);
        assert_eq!(load(&[], &[]).unwrap().store_url, "", "SQLite by default");
        let err = load(&[], &[("store_url", "mysql://gw:pw-123@db/gw")]).unwrap_err().0;
        assert!(err.contains("use postgres://") && !err.contains("pw-123"), "{err}");
        assert!(err.contains("mysql://gw:<redacted>@db/gw"), "{err}");
        let err = load(&[("SESSION_PERSIST", "false")], &[("store_url", url)]).unwrap_err().0;
        assert!(err.contains("cannot go with store_url"), "{err}");
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

    /// defaults < file < environment < command line, each layer winning only for the keys it
    /// sets.
    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.toml");
        let file = "port = 9000\nbind = \"0.0.0.0\"\nmodel = \"echo\"\n[session]\nmax_queue = 2\n";
        std::fs::write(&path, file).unwrap();
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let sources = Sources {
            file: Some(path.clone()),
            env: env(&[("GATEWAY_PORT", "9001"), ("GATEWAY_HOST", "10.0.0.1")]),
            overrides: vec![("port".into(), "9002".into())],
        };
        let config = Config::load(&sources).unwrap();
        assert_eq!(config.port, 9002, "the command line wins over all");
        assert_eq!(config.bind, "10.0.0.1", "the environment wins over the file");
        assert_eq!(config.session.max_queue, 2, "the file wins over the defaults");
        assert_eq!(config.session.idle, Duration::from_secs(3600), "a default no layer sets");
        assert_eq!(config.config_file.as_deref(), Some(path.as_path()));

        let config = Config::load(&Sources { overrides: vec![], ..sources.clone() }).unwrap();
        assert_eq!(config.port, 9001);
        let config = Config::load(&Sources { env: HashMap::new(), ..sources }).unwrap();
        assert_eq!((config.port, config.bind.as_str()), (9002, "0.0.0.0"));
    }

    #[test]
    fn every_environment_variable_names_a_key() {
        for (var, key) in ENV_KEYS {
            let value = match *key {
                "port" => "1",
                "web_ui" | "persist" => "true",
                "tools_sandbox" => "none",
                k if k.starts_with("http.") && k.ends_with("timeout") => "3s",
                "http.max_connections" => "3",
                "provider" => "openai",
                "store_url" => "postgres://gw:pw@db.example:5432/gw",
                "model" => "echo",
                _ => "x",
            };
            let env = [(var.to_string(), value.to_string())].into();
            let loaded = Config::load(&Sources { env, ..Default::default() });
            assert!(loaded.is_ok(), "{var} -> {key}: {}", loaded.unwrap_err());
        }
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
}
