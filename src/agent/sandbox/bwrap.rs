//! The bubblewrap (`bwrap`) command line that wraps a command: what the sandbox sees, in
//! mount order (later mounts cover earlier ones).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::SYSTEM_DIRS;

/// Namespaces and process settings. A new user namespace with every capability dropped, so
/// nothing inside can unmount a mask; a new PID namespace, so `/proc` shows no gateway
/// process and the sandbox dies with its first process; a new session, so nothing can push
/// input into the gateway's terminal; and the sandbox dies with the gateway. The network is
/// shared.
const SETTINGS: &[&str] = &[
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--die-with-parent",
    "--new-session",
    "--cap-drop",
    "ALL",
];

/// Whether bwrap runs here with the settings the sandbox uses (it needs user namespaces).
pub fn works() -> Result<(), String> {
    let output = Command::new("bwrap")
        .args(SETTINGS)
        .args(["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"])
        .stdin(Stdio::null())
        .output();
    match output {
        Err(e) => Err(format!("cannot run bwrap: {e}")),
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!(
            "bwrap does not work here: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
    }
}

/// The arguments before `-- program args...`: the system directories read-only, private
/// `/proc`, `/dev` and `/tmp`, the workspace read-write at its own path, then each hidden path
/// that a bind made visible masked (a directory by an empty read-only tmpfs, a file by
/// /dev/null).
pub fn args(workspace: &Path, hidden: &[PathBuf]) -> Vec<OsString> {
    let mut args: Vec<OsString> = SETTINGS.iter().map(OsString::from).collect();
    let mut push = |parts: &[&std::ffi::OsStr]| args.extend(parts.iter().map(OsString::from));
    for dir in SYSTEM_DIRS.iter().map(Path::new) {
        match dir.symlink_metadata() {
            // Merged /usr: /bin -> usr/bin stays a link.
            Ok(meta) if meta.is_symlink() => {
                if let Ok(target) = dir.read_link() {
                    push(&["--symlink".as_ref(), target.as_os_str(), dir.as_os_str()]);
                }
            }
            Ok(_) => push(&["--ro-bind".as_ref(), dir.as_os_str(), dir.as_os_str()]),
            Err(_) => {}
        }
    }
    for (kind, place) in [("--proc", "/proc"), ("--dev", "/dev"), ("--tmpfs", "/tmp")] {
        push(&[kind.as_ref(), place.as_ref()]);
    }
    push(&["--bind".as_ref(), workspace.as_os_str(), workspace.as_os_str()]);
    let visible = |path: &Path| {
        path.starts_with(workspace) || SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir))
    };
    for path in hidden.iter().filter(|p| visible(p) && !workspace.starts_with(p)) {
        match path.metadata() {
            Ok(meta) if meta.is_dir() => push(&[
                "--tmpfs".as_ref(),
                path.as_os_str(),
                "--remount-ro".as_ref(),
                path.as_os_str(),
            ]),
            Ok(_) => push(&["--ro-bind".as_ref(), "/dev/null".as_ref(), path.as_os_str()]),
            Err(_) => {}
        }
    }
    push(&["--chdir".as_ref(), workspace.as_os_str()]);
    args
}
