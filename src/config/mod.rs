//! One `Config`, layered defaults < TOML file < environment < command line, validated once,
//! and the few keys an operator may change while the gateway runs.
//!
//! - `types`: `Config` and its sections, with their defaults.
//! - `load`: the layers ([`Sources`], [`ENV_KEYS`]) merged into one `Config`.
//! - `validate`: the checks a config passes before anything uses it.
//! - `live`: [`LIVE_KEYS`], a config with a live patch applied, the stored patch form, and
//!   [`Live`], the one holder of the config now.
//! - `redact`: [`SECRET_KEYS`] and the config with its secrets hidden.

mod live;
mod load;
mod redact;
mod types;
mod validate;

pub use live::{LIVE_KEYS, Live, Patching, dotted_patch};
pub use load::{ENV_KEYS, Sources};
pub use redact::{SECRET_KEYS, redact_url};
pub use types::*;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
