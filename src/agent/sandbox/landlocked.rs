//! Landlock rulesets for the calling thread. A restriction applies to the thread that asks for
//! it and to every process it starts afterwards, never to the gateway's other threads, and it
//! cannot be lifted: callers use a fresh thread that ends after its work.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use landlock::{
    ABI, Access, AccessFs, BitFlags, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreated,
    RulesetCreatedAttr, RulesetStatus, Scope,
};

/// The newest ABI these rules were written and tested for (6 adds the signal and abstract
/// unix socket scopes). Older kernels enforce what they have, best effort.
const ABI_USED: ABI = ABI::V6;

/// Device files a command may read and write (not execute).
const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

/// Whether this kernel enforces landlock: probed once, by a throwaway thread that restricts
/// itself.
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        std::thread::spawn(|| ruleset().and_then(enforce).is_ok()).join().unwrap_or(false)
    })
}

/// Every file system access handled (so denied unless a rule allows it), and the process
/// scopes: no signals to processes outside the domain (the gateway), no abstract unix sockets
/// made outside it.
fn ruleset() -> Result<RulesetCreated, String> {
    Ruleset::default()
        .handle_access(AccessFs::from_all(ABI_USED))
        .and_then(|r| r.scope(Scope::from_all(ABI_USED)))
        .and_then(|r| r.create())
        .map_err(|e| format!("landlock: {e}"))
}

fn allow(
    ruleset: RulesetCreated,
    place: impl AsFd,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, String> {
    ruleset.add_rule(PathBeneath::new(place, access)).map_err(|e| format!("landlock: {e}"))
}

fn allow_path(
    ruleset: RulesetCreated,
    path: &Path,
    access: BitFlags<AccessFs>,
) -> Result<RulesetCreated, String> {
    let fd = PathFd::new(path).map_err(|e| format!("landlock: {}: {e}", path.display()))?;
    allow(ruleset, fd, access)
}

fn enforce(ruleset: RulesetCreated) -> Result<(), String> {
    let status = ruleset.restrict_self().map_err(|e| format!("landlock: {e}"))?;
    match status.ruleset {
        RulesetStatus::NotEnforced => Err("landlock is not enforced by this kernel".into()),
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
    }
}

/// Limits the calling thread to `dir` (a directory handle): reading it, and with `writable`
/// changing it too. For the in-process file tools.
pub fn restrict_to(dir: impl AsFd, writable: bool) -> Result<(), String> {
    let access =
        if writable { AccessFs::from_all(ABI_USED) } else { AccessFs::from_read(ABI_USED) };
    enforce(allow(ruleset()?, dir, access)?)
}

/// What a command may reach.
pub struct CommandRules {
    /// Read, write, execute.
    pub workspace: PathBuf,
    /// The command's private TMPDIR, read-write.
    pub temp: PathBuf,
    /// Read and execute, those that exist.
    pub system: Vec<PathBuf>,
}

/// Limits the calling thread, and every process it starts, to what a command needs.
/// `/proc` is not granted: the gateway's environment and command line stay out of reach (and
/// landlock also denies ptrace-style access to processes outside the domain).
pub fn restrict_for_commands(rules: &CommandRules) -> Result<(), String> {
    let mut ruleset = ruleset()?;
    for dir in rules.system.iter().filter(|d| d.exists()) {
        ruleset = allow_path(ruleset, dir, AccessFs::from_read(ABI_USED))?;
    }
    let device = AccessFs::from_file(ABI_USED) & !AccessFs::Execute;
    for file in DEVICES.iter().map(Path::new).filter(|d| d.exists()) {
        ruleset = allow_path(ruleset, file, device)?;
    }
    ruleset = allow_path(ruleset, &rules.workspace, AccessFs::from_all(ABI_USED))?;
    ruleset = allow_path(ruleset, &rules.temp, AccessFs::from_all(ABI_USED))?;
    enforce(ruleset)
}
