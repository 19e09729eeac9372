//! The kernel sandbox around every process a tool starts (`bash` today; MCP stdio servers are
//! meant to use [`Sandbox::command`] the same way). The mode comes from `tools_sandbox`,
//! resolved once at start ([`Sandbox::resolve`]):
//!
//! - `bwrap` (bubblewrap): new user, PID, IPC, UTS and cgroup namespaces; the system
//!   directories read-only, the workspace read-write, a private `/proc`, `/dev` and `/tmp`, the
//!   data dir and config file masked where they lie inside a bound path.
//! - `landlock`: the command's thread restricts itself before it starts the child, which
//!   inherits the restriction: the workspace read-write, the system directories read and
//!   execute, the usual device files, a private `TMPDIR`; nothing else (no `/proc`: no process of
//!   the gateway). Landlock can only allow, so it cannot hide a data dir or config file inside the
//!   workspace: that layout is refused at start.
//! - `none`: the scrubbed environment only (an explicit choice, warned about at start).
//!
//! In every mode the child gets a scrubbed environment, its own process group (killed whole
//! when the [`SandboxChild`] is dropped), and piped output. The network stays open.

mod bwrap;
pub mod landlocked;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::sync::mpsc;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::config::SandboxSetting;

/// What a command may read and execute besides the workspace: the system's programs,
/// libraries and settings (those that exist on this machine).
const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/opt"];

/// The active mode, resolved from the setting at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxMode {
    Landlock,
    Bwrap,
    None,
}

impl SandboxMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Landlock => "landlock",
            Self::Bwrap => "bwrap",
            Self::None => "none",
        }
    }
}

/// What this machine offers, probed once at start.
#[derive(Clone, Debug)]
pub struct Support {
    /// `Err` says why bubblewrap cannot run here.
    pub bwrap: Result<(), String>,
    pub landlock: bool,
}

impl Support {
    /// Probed once per process; later calls answer the same.
    pub fn probe() -> Self {
        static BWRAP: OnceLock<Result<(), String>> = OnceLock::new();
        Self { bwrap: BWRAP.get_or_init(bwrap::works).clone(), landlock: landlocked::supported() }
    }
}

/// A path the sandbox must keep from every command, with what it is called in messages
/// (`data_dir`, `config file`).
#[derive(Clone, Debug)]
pub struct Hidden {
    pub what: &'static str,
    pub path: PathBuf,
}

/// `path` with symlinks resolved; a path that does not exist (yet) made absolute instead, so a
/// check against it still fails closed.
pub fn real_or_absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| std::path::absolute(path).unwrap_or(path.into()))
}

/// Picks the mode for `setting` on a machine with `support`. `commands`: a tool of the set
/// starts processes (bash), which is when a missing sandbox or an unhideable path matters.
pub fn choose(
    setting: SandboxSetting,
    support: &Support,
    commands: bool,
    workspace: &Path,
    hidden: &[Hidden],
) -> Result<SandboxMode, String> {
    let mode = match setting {
        SandboxSetting::Auto if support.bwrap.is_ok() => SandboxMode::Bwrap,
        SandboxSetting::Auto if support.landlock => SandboxMode::Landlock,
        SandboxSetting::Auto if commands => {
            return Err(format!(
                "bash needs a sandbox, and this machine has neither bubblewrap ({}) nor \
                 landlock: install bubblewrap, or set tools_sandbox = \"none\" to run bash \
                 without one",
                support.bwrap.as_ref().err().map_or("", String::as_str)
            ));
        }
        SandboxSetting::Auto | SandboxSetting::None => SandboxMode::None,
        SandboxSetting::Bwrap => match &support.bwrap {
            Ok(()) => SandboxMode::Bwrap,
            Err(e) => return Err(format!("tools_sandbox = \"bwrap\": {e}")),
        },
        SandboxSetting::Landlock if support.landlock => SandboxMode::Landlock,
        SandboxSetting::Landlock => {
            return Err("tools_sandbox = \"landlock\": this kernel does not enforce landlock \
                        (Linux 5.13 or later with landlock in its LSM list)"
                .into());
        }
    };
    if !commands || mode == SandboxMode::None {
        return Ok(mode);
    }
    if workspace == Path::new("/") {
        return Err("the workspace is /, which no sandbox can confine bash to".into());
    }
    if let Some(h) = hidden.iter().find(|h| workspace.starts_with(&h.path)) {
        return Err(format!(
            "the workspace {} lies inside the {} {}: bash would see the gateway's files",
            workspace.display(),
            h.what,
            h.path.display()
        ));
    }
    if mode == SandboxMode::Landlock {
        let granted = |p: &Path| {
            std::iter::once(workspace)
                .chain(SYSTEM_DIRS.iter().map(Path::new))
                .find(|g| p.starts_with(real_or_absolute(g)))
                .map(Path::to_path_buf)
        };
        for h in hidden {
            if let Some(inside) = granted(&h.path) {
                let place = if inside == workspace { "the workspace" } else { "the system dir" };
                return Err(format!(
                    "tools_sandbox = landlock cannot keep bash from the {} {}: it lies inside \
                     {place} {}, which bash may read, and landlock can only allow paths, not \
                     hide one inside them. Move {} out of it, install bubblewrap \
                     (tools_sandbox = \"bwrap\" masks it), or set tools_sandbox = \"none\" to \
                     run bash without a sandbox",
                    h.what,
                    h.path.display(),
                    inside.display(),
                    h.what,
                ));
            }
        }
    }
    Ok(mode)
}

/// The sandbox every command of a tool is started in.
#[derive(Debug)]
pub struct Sandbox {
    mode: SandboxMode,
    workspace: PathBuf,
    hidden: Vec<PathBuf>,
}

impl Sandbox {
    /// Resolves `setting` on this machine (see [`choose`]) for commands run in `workspace`
    /// (canonical), kept from `hidden`.
    pub fn resolve(
        setting: SandboxSetting,
        commands: bool,
        workspace: &Path,
        hidden: &[Hidden],
    ) -> Result<Self, String> {
        let hidden: Vec<Hidden> = hidden
            .iter()
            .map(|h| Hidden { what: h.what, path: real_or_absolute(&h.path) })
            .collect();
        let support = Support::probe();
        let mode = choose(setting, &support, commands, workspace, &hidden)?;
        if let (SandboxSetting::Auto, Err(why)) = (setting, &support.bwrap) {
            tracing::info!(mode = mode.as_str(), "tools_sandbox = auto: not bwrap, {why}");
        }
        Ok(Self::new(mode, workspace, hidden.into_iter().map(|h| h.path).collect()))
    }

    pub fn new(mode: SandboxMode, workspace: &Path, hidden: Vec<PathBuf>) -> Self {
        Self { mode, workspace: workspace.to_path_buf(), hidden }
    }

    pub fn mode(&self) -> SandboxMode {
        self.mode
    }

    /// A command to run in the workspace, in this sandbox.
    pub fn command(&self, program: impl Into<OsString>) -> SandboxCommand<'_> {
        SandboxCommand {
            sandbox: self,
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: false,
        }
    }
}

/// A command being set up; [`spawn`](Self::spawn) starts it.
pub struct SandboxCommand<'a> {
    sandbox: &'a Sandbox,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: bool,
}

impl SandboxCommand<'_> {
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds to the scrubbed environment (which has only PATH, HOME, LANG, TERM and TMPDIR).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// A pipe for the child's stdin (default: /dev/null).
    pub fn piped_stdin(mut self) -> Self {
        self.stdin = true;
        self
    }

    /// Starts the command, stdout and stderr piped. Must be called within a tokio runtime.
    pub async fn spawn(self) -> io::Result<SandboxChild> {
        let sandbox = self.sandbox;
        let workspace = &sandbox.workspace;
        let temp = match sandbox.mode {
            SandboxMode::Landlock => Some(TempDir::create()?),
            _ => None,
        };
        let mut command = match sandbox.mode {
            SandboxMode::Bwrap => {
                let mut command = tokio::process::Command::new("bwrap");
                command.args(bwrap::args(workspace, &sandbox.hidden)).arg("--").arg(&self.program);
                command
            }
            _ => tokio::process::Command::new(&self.program),
        };
        command
            .args(&self.args)
            .current_dir(workspace)
            // Nothing of the gateway's environment (API keys, tokens) reaches the command.
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", workspace)
            .env("LANG", "C.UTF-8")
            .env("TERM", "dumb")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(if self.stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        match (&temp, sandbox.mode) {
            (Some(temp), _) => command.env("TMPDIR", &temp.0),
            (None, SandboxMode::Bwrap) => command.env("TMPDIR", "/tmp"),
            (None, _) => &mut command,
        };
        let child = match sandbox.mode {
            SandboxMode::None => command.spawn()?,
            SandboxMode::Bwrap => on_launcher(command).await?,
            SandboxMode::Landlock => {
                let rules = landlocked::CommandRules {
                    workspace: workspace.clone(),
                    temp: temp.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
                    system: SYSTEM_DIRS.iter().map(PathBuf::from).collect(),
                };
                on_landlocked_thread(command, rules).await?
            }
        };
        let group = child.id().map(|id| Pid::from_raw(id as i32));
        Ok(SandboxChild { child, group, _temp: temp })
    }
}

/// A started command. Dropping it kills the command's whole process group (background children
/// included; with bwrap, the whole sandbox) and removes its private temp dir.
pub struct SandboxChild {
    pub child: tokio::process::Child,
    group: Option<Pid>,
    _temp: Option<TempDir>,
}

impl Drop for SandboxChild {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            let _ = killpg(group, Signal::SIGKILL);
        }
    }
}

/// A per-command temp dir (mode 0700), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn create() -> io::Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let name = format!("agent-gateway-tool-{}", uuid::Uuid::new_v4().simple());
        let path = std::env::temp_dir().join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Starts `command` from one long-lived thread. bwrap's `--die-with-parent` ties the sandbox to
/// the thread that started it (PR_SET_PDEATHSIG follows the parent *thread*), so that thread
/// must live as long as the gateway: a pooled or per-call thread would end and kill it.
async fn on_launcher(command: tokio::process::Command) -> io::Result<tokio::process::Child> {
    static LAUNCHER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    let launcher = LAUNCHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let _ = std::thread::Builder::new().name("sandbox-launcher".into()).spawn(move || {
            for job in rx {
                job();
            }
        });
        tx
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::runtime::Handle::current();
    let mut command = command;
    let job: Job = Box::new(move || {
        let _runtime = handle.enter();
        let _ = tx.send(command.spawn());
    });
    launcher.send(job).map_err(|_| io::Error::other("the sandbox launcher thread is gone"))?;
    rx.await.map_err(|_| io::Error::other("the sandbox launcher dropped the command"))?
}

/// Starts `command` from a fresh thread that first restricts itself with landlock; the child
/// inherits the restriction, and the thread ends right after, so no thread of the gateway that
/// does other work is ever restricted.
async fn on_landlocked_thread(
    mut command: tokio::process::Command,
    rules: landlocked::CommandRules,
) -> io::Result<tokio::process::Child> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::runtime::Handle::current();
    std::thread::Builder::new().name("sandbox-landlock".into()).spawn(move || {
        let spawned =
            landlocked::restrict_for_commands(&rules).map_err(io::Error::other).and_then(|()| {
                let _runtime = handle.enter();
                command.spawn()
            });
        let _ = tx.send(spawned);
    })?;
    rx.await.map_err(|_| io::Error::other("the sandbox thread ended without starting it"))?
}

#[cfg(test)]
mod tests;
