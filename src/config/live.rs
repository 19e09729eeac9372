//! Live patching: the keys `PATCH /config` and `Admin.PatchConfig` may change while the
//! gateway runs, a config with a patch applied, and the dotted form patches are stored in.

use super::load::set_key;
use super::{Config, ConfigError};

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
