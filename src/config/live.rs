//! Live patching: the keys `PATCH /config` and `Admin.PatchConfig` may change while the
//! gateway runs, a config with a patch applied, the dotted form patches are stored in, and
//! [`Live`], the one holder of the config the gateway runs with now.

use std::sync::{Arc, RwLock};

use serde_json::{Map, Value};

use super::load::set_key;
use super::{Config, ConfigError};

/// The config the gateway runs with: the start-up config (defaults < file < environment <
/// command line) and over it the live patches, those of this process and those an earlier one
/// stored. There is one, shared by `AppState` and the session manager.
///
/// Which read is which: a key of [`LIVE_KEYS`] is read with [`Live::get`] at the moment it
/// applies (a queue admitting a message, the idle sweep, a new stream), so a patch has an
/// effect at once; every other key is start-up only, read with [`Live::startup`] (once, when
/// the listener, router, agent, store or an event log is built, or on each request for keys
/// no patch can change). A key added to `LIVE_KEYS` must be read with `get`.
///
/// Storing patches is not this layer's (it sees no store): [`Live::begin`] checks a patch and
/// holds the order of patches, the caller stores [`Patching::stored`], and only then does
/// [`Patching::apply`] make it live, so a patch is acknowledged only once it is durable.
pub struct Live {
    startup: Arc<Config>,
    current: RwLock<Arc<Config>>,
    /// Every live patch applied since the start of the store's life, merged by dotted key, as
    /// stored; held while a patch is being stored, so patches are stored in the order applied.
    patches: tokio::sync::Mutex<Map<String, Value>>,
}

impl Live {
    pub fn new(startup: Config) -> Self {
        let startup = Arc::new(startup);
        Self {
            current: RwLock::new(startup.clone()),
            startup,
            patches: tokio::sync::Mutex::new(Map::new()),
        }
    }

    /// The config as loaded at start, without live patches: for start-up-only keys.
    pub fn startup(&self) -> &Config {
        &self.startup
    }

    /// The config now, live patches applied: for the keys of [`LIVE_KEYS`].
    pub fn get(&self) -> Arc<Config> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Checks `patch` (see [`Config::patched`]) against the config now. Nothing changes until
    /// [`Patching::apply`]; another patch waits until this one is applied or dropped.
    pub async fn begin(&self, patch: &Value) -> Result<Patching<'_>, ConfigError> {
        let patches = self.patches.lock().await;
        let config = Arc::new(self.get().patched(patch)?);
        let mut merged = patches.clone();
        merged.extend(dotted_patch(patch)?);
        Ok(Patching { live: self, patches, merged, config })
    }

    /// Re-applies the patches an earlier process stored ([`Patching::stored`]) over the start-up
    /// config; the keys they set. An error (the config file changed under them) changes nothing.
    pub async fn restore(&self, stored: &str) -> Result<Vec<String>, ConfigError> {
        let patch: Value = serde_json::from_str(stored)
            .map_err(|e| ConfigError(format!("stored live config patches: {e}")))?;
        let config = self.startup.patched(&patch)?;
        let dotted = dotted_patch(&patch)?;
        let keys = dotted.keys().cloned().collect();
        let mut patches = self.patches.lock().await;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config);
        *patches = dotted;
        Ok(keys)
    }
}

/// A checked patch waiting to be stored; see [`Live::begin`].
pub struct Patching<'a> {
    live: &'a Live,
    patches: tokio::sync::MutexGuard<'a, Map<String, Value>>,
    merged: Map<String, Value>,
    config: Arc<Config>,
}

impl Patching<'_> {
    /// What to store: every live patch so far and this one, merged by dotted key.
    pub fn stored(&self) -> String {
        Value::Object(self.merged.clone()).to_string()
    }

    /// Makes the patch live (call it once the patch is stored); the new config.
    pub fn apply(mut self) -> Arc<Config> {
        *self.patches = std::mem::take(&mut self.merged);
        *self.live.current.write().unwrap_or_else(|e| e.into_inner()) = self.config.clone();
        self.config
    }
}

/// The keys `PATCH /config` and `Admin.PatchConfig` may change while the gateway runs: each is
/// read through [`Live::get`] at the moment it applies, so a change has an effect at once.
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn only_live_keys_patch_nested_or_dotted_and_the_result_is_validated() {
        let config = Config::default();
        let patched =
            config.patched(&json!({"session": {"max_queue": 3}, "session.idle": "5m"})).unwrap();
        assert_eq!(
            (patched.session.max_queue, patched.session.idle),
            (3, Duration::from_secs(300))
        );
        let err = config.patched(&json!({"port": 1})).unwrap_err().0;
        assert!(
            err.contains("port cannot be changed") && err.contains("session.max_queue"),
            "{err}"
        );
        let err = config.patched(&json!({"session.max_queue": 0})).unwrap_err().0;
        assert!(err.contains("at least 1"), "{err}");
        assert!(config.patched(&json!({})).unwrap_err().0.contains("empty"));
        assert!(config.patched(&json!([1])).unwrap_err().0.contains("JSON object"));
        let err = config.patched(&json!({"limits.max_text": [1]})).unwrap_err().0;
        assert!(err.contains("number, string or boolean"), "{err}");
    }

    #[test]
    fn every_live_key_is_a_scalar_the_defaults_have() {
        let tree = toml::Value::try_from(Config::default()).unwrap();
        for key in LIVE_KEYS {
            let mut node = &tree;
            for part in key.split('.') {
                node = node.get(part).unwrap_or_else(|| panic!("{key} is not a config key"));
            }
            assert!(!node.is_table() && !node.is_array(), "{key}");
        }
    }

    #[tokio::test]
    async fn a_patch_is_live_only_once_applied_and_patches_merge() {
        let live = Live::new(Config::default());
        let patching = live.begin(&json!({"session": {"max_queue": 3}})).await.unwrap();
        assert_eq!(live.get().session.max_queue, 8, "not before it is stored");
        assert_eq!(patching.stored(), r#"{"session.max_queue":3}"#);
        drop(patching);
        assert_eq!(live.get().session.max_queue, 8, "a patch never stored never applies");

        let patching = live.begin(&json!({"session.max_queue": 3})).await.unwrap();
        assert_eq!(patching.apply().session.max_queue, 3);
        let patching = live.begin(&json!({"limits": {"max_text": 50}})).await.unwrap();
        let stored: Value = serde_json::from_str(&patching.stored()).unwrap();
        assert_eq!(stored, json!({"session.max_queue": 3, "limits.max_text": 50}));
        let config = patching.apply();
        assert_eq!((config.session.max_queue, config.limits.max_text), (3, 50));
        assert_eq!(live.get().limits.max_text, 50);
        assert_eq!(live.startup().session.max_queue, 8, "the start-up config stays");
    }

    #[tokio::test]
    async fn a_second_patch_waits_for_the_first() {
        let live = Arc::new(Live::new(Config::default()));
        let first = live.begin(&json!({"session.max_queue": 3})).await.unwrap();
        let second = tokio::spawn({
            let live = live.clone();
            async move {
                let patching = live.begin(&json!({"limits.max_images": 2})).await.unwrap();
                patching.stored()
            }
        });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        first.apply();
        let stored: Value = serde_json::from_str(&second.await.unwrap()).unwrap();
        assert_eq!(stored, json!({"session.max_queue": 3, "limits.max_images": 2}));
    }

    #[tokio::test]
    async fn stored_patches_are_restored_over_the_startup_config() {
        let live = Live::new(Config::default());
        let mut keys =
            live.restore(r#"{"session.max_queue":2,"limits.max_text":9}"#).await.unwrap();
        keys.sort();
        assert_eq!(keys, ["limits.max_text", "session.max_queue"]);
        assert_eq!((live.get().session.max_queue, live.get().limits.max_text), (2, 9));
        // The next patch is stored with the restored ones.
        let patching = live.begin(&json!({"limits.max_images": 1})).await.unwrap();
        let stored: Value = serde_json::from_str(&patching.stored()).unwrap();
        assert_eq!(stored["session.max_queue"], 2);

        let live = Live::new(Config::default());
        assert!(live.restore("not json").await.is_err());
        assert!(live.restore(r#"{"port":1}"#).await.is_err());
        assert_eq!(live.get().session.max_queue, 8, "a patch that fails changes nothing");
        let patching = live.begin(&json!({"limits.max_images": 1})).await.unwrap();
        assert_eq!(patching.stored(), r#"{"limits.max_images":1}"#);
    }
}
