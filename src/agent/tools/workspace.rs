//! The workspace as the file tools see it: one directory handle (cap-std) opened at start, so
//! every path is resolved beneath it by the kernel (openat2 `RESOLVE_BENEATH`: no `..`, absolute
//! symlink or link swapped in mid-way leads out), minus the gateway's own files (data dir,
//! config file), which may lie inside it and are refused by the real path of what was actually
//! opened, not by the string asked for. Walks list through directory handles, never descend
//! into a symlink, and follow one only by opening it beneath the root like any asked-for path.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::{Dir, File, FileType, OpenOptions, OpenOptionsExt};
use nix::fcntl::OFlag;

use crate::agent::sandbox::{landlocked, real_or_absolute};

/// Why a path was not opened; [`message`](Self::message) words it for the model.
#[derive(Debug)]
pub enum Refused {
    Syntax(String),
    NotFound,
    Escapes,
    Gateway,
    NotAFile,
    NotADir,
    Io(io::Error),
}

impl Refused {
    pub fn message(&self, path: &str) -> String {
        match self {
            Self::Syntax(message) => message.clone(),
            Self::NotFound => format!("File not found: {path}"),
            Self::Escapes => format!("Path escapes the workspace: {path}"),
            Self::Gateway => format!("Access denied: {path} belongs to the gateway"),
            Self::NotAFile => format!("Not a regular file: {path}"),
            Self::NotADir => format!("Not a directory: {path}"),
            Self::Io(e) => format!("Cannot open {path}: {e}"),
        }
    }
}

impl From<io::Error> for Refused {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => Self::NotFound,
            _ => Self::Io(e),
        }
    }
}

/// What a path names, opened.
pub enum Node {
    File(File),
    Dir(Dir),
}

/// One entry of a walk: its path relative to the workspace root.
pub struct Entry {
    pub path: PathBuf,
    pub dir: bool,
}

/// The directory tools may see, minus what they must never read (the data dir, the config file).
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
    dir: Dir,
    forbidden: Vec<PathBuf>,
}

/// Reads never block on a FIFO (or wait for a writer): it opens at once, and is then refused
/// as not a regular file.
fn options(write: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    options.read(true).write(write).custom_flags(OFlag::O_NONBLOCK.bits());
    options
}

impl Workspace {
    /// `forbidden` paths need not exist; they are compared by their real (canonical) form.
    pub fn new(root: &Path, forbidden: &[PathBuf]) -> io::Result<Self> {
        let root = root.canonicalize()?;
        let dir = Dir::open_ambient_dir(&root, ambient_authority())?;
        let forbidden = forbidden.iter().map(|p| real_or_absolute(p)).collect();
        Ok(Self { root, dir, forbidden })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The gateway's own files, canonical.
    pub fn forbidden(&self) -> &[PathBuf] {
        &self.forbidden
    }

    /// A real path that belongs to the gateway (data dir, config file).
    pub fn is_forbidden(&self, real: &Path) -> bool {
        self.forbidden.iter().any(|f| real.starts_with(f))
    }

    /// A path given by the model, relative to the root (empty for the root itself).
    pub fn relative(path: &str) -> Result<PathBuf, Refused> {
        let requested = Path::new(path);
        if path.is_empty() {
            return Err(Refused::Syntax("Missing path".into()));
        }
        if requested.is_absolute() || path.starts_with('~') {
            return Err(Refused::Syntax(format!("Path must be relative to the workspace: {path}")));
        }
        if requested.components().any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
        {
            return Err(Refused::Escapes);
        }
        Ok(requested.components().filter(|c| matches!(c, Component::Normal(_))).collect())
    }

    /// Runs `work` on a fresh thread that landlock first confines to the workspace (read-only,
    /// or read-write with `writable`) where the kernel has it; the handle confines every open
    /// either way. The thread ends with the work, so no pooled thread stays restricted.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        writable: bool,
        work: impl FnOnce(&Workspace) -> T + Send + 'static,
    ) -> Result<T, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let workspace = self.clone();
        std::thread::Builder::new()
            .name("tool".into())
            .spawn(move || {
                if landlocked::supported()
                    && let Err(e) = landlocked::restrict_to(&workspace.dir, writable)
                {
                    let _ = tx.send(Err(e));
                    return;
                }
                let _ = tx.send(Ok(work(&workspace)));
            })
            .map_err(|e| format!("tool failed: {e}"))?;
        rx.await.unwrap_or_else(|_| Err("tool failed".into()))
    }

    /// Opens `path` beneath the root, following symlinks only as long as they stay beneath it.
    fn open_beneath(&self, path: &Path, options: &OpenOptions) -> Result<File, Refused> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        match self.dir.open_with(path, options) {
            Ok(file) => Ok(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Refused::NotFound),
            Err(e) => {
                // RESOLVE_BENEATH refuses every absolute symlink, even one that points inside.
                // Learn once where the path leads, then open that place beneath the root again:
                // a link swapped in between can only lead to another place beneath it.
                match self.root.join(path).canonicalize() {
                    Ok(real) => match real.strip_prefix(&self.root) {
                        Ok(inside) if inside.as_os_str().is_empty() => {
                            Ok(self.dir.open_with(".", options)?)
                        }
                        Ok(inside) => Ok(self.dir.open_with(inside, options)?),
                        Err(_) => Err(Refused::Escapes),
                    },
                    Err(c) if c.kind() == io::ErrorKind::NotFound => Err(Refused::NotFound),
                    Err(_) => Err(Refused::Io(e)),
                }
            }
        }
    }

    /// The real path of an opened handle, which must lie in the workspace and outside the
    /// gateway's files. Fails closed when it cannot be told.
    fn check(&self, handle: &impl AsFd) -> Result<PathBuf, Refused> {
        let link = format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd());
        let real = std::fs::read_link(link).map_err(|e| {
            Refused::Io(io::Error::new(e.kind(), format!("cannot tell where it leads: {e}")))
        })?;
        if !real.starts_with(&self.root) {
            return Err(Refused::Escapes);
        }
        if self.is_forbidden(&real) {
            return Err(Refused::Gateway);
        }
        Ok(real)
    }

    /// Opens what `path` names, a regular file or a directory; returns it with its real path.
    pub fn open(&self, path: &Path) -> Result<(Node, PathBuf), Refused> {
        self.open_with(path, false)
    }

    fn open_with(&self, path: &Path, write: bool) -> Result<(Node, PathBuf), Refused> {
        let file = self.open_beneath(path, &options(write))?;
        let real = self.check(&file)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            Ok((Node::Dir(Dir::from_std_file(file.into_std())), real))
        } else if meta.is_file() {
            Ok((Node::File(file), real))
        } else {
            Err(Refused::NotAFile)
        }
    }

    /// A regular file, opened for reading (and with `write`, writing).
    pub fn open_file(&self, path: &Path, write: bool) -> Result<File, Refused> {
        match self.open_with(path, write)?.0 {
            Node::File(file) => Ok(file),
            Node::Dir(_) => Err(Refused::NotAFile),
        }
    }

    /// A directory with its real path.
    pub fn open_dir(&self, path: &Path) -> Result<(Dir, PathBuf), Refused> {
        match self.open(path)? {
            (Node::Dir(dir), real) => Ok((dir, real)),
            (Node::File(_), _) => Err(Refused::NotADir),
        }
    }

    /// The whole content of a regular file.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>, Refused> {
        let mut bytes = Vec::new();
        self.open_file(path, false)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Creates or replaces a file, and its missing parent directories. Nothing is created
    /// through a symlink: the parent is opened beneath the root and checked, the name created
    /// in that handle; an existing name (a file or a link) is opened like any path and must be
    /// a regular file in the workspace.
    pub fn write(&self, path: &Path, content: &[u8]) -> Result<(), Refused> {
        let Some(name) = path.file_name() else { return Err(Refused::NotAFile) };
        let parent = self.make_dirs(path.parent().unwrap_or(Path::new("")))?;
        let mut new = OpenOptions::new();
        new.write(true).create_new(true);
        let mut file = match parent.open_with(name, &new) {
            Ok(file) => {
                self.check(&file)?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file = self.open_file(path, true)?;
                file.set_len(0)?;
                file
            }
            Err(e) => return Err(e.into()),
        };
        file.write_all(content)?;
        Ok(())
    }

    /// Opens directory `path`, creating what is missing one name at a time, each in a
    /// directory already opened and checked.
    fn make_dirs(&self, path: &Path) -> Result<Dir, Refused> {
        let mut current = self.open_dir(Path::new(""))?.0;
        let mut so_far = PathBuf::new();
        for part in path.components() {
            so_far.push(part);
            current = match self.open_dir(&so_far) {
                Ok((dir, _)) => dir,
                Err(Refused::NotFound) => {
                    match current.create_dir(part) {
                        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e.into()),
                        _ => {}
                    }
                    self.open_dir(&so_far)?.0
                }
                Err(refused) => return Err(refused),
            };
        }
        Ok(current)
    }

    /// The names of directory `dir` (real path `real`) with their types (not following
    /// symlinks), sorted, without the gateway's files.
    pub fn list(&self, dir: &Dir, real: &Path) -> io::Result<Vec<(OsString, FileType)>> {
        let mut names: Vec<(OsString, FileType)> = dir
            .entries()?
            .filter_map(Result::ok)
            .filter(|e| !self.is_forbidden(&real.join(e.file_name())))
            .filter_map(|e| Some((e.file_name(), e.file_type().ok()?)))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(names)
    }

    /// Files and directories under `start` (depth first, sorted), at most `limit`: never the
    /// gateway's files or `.git`, never into a symlinked directory (loops), and a symlink only
    /// when it leads to a regular file or directory inside the workspace.
    pub fn walk(&self, start: &Path, limit: usize) -> Result<Vec<Entry>, Refused> {
        let (dir, real) = self.open_dir(start)?;
        let mut out = Vec::new();
        self.walk_in(&dir, &real, start, limit, &mut out);
        Ok(out)
    }

    fn walk_in(&self, dir: &Dir, real: &Path, at: &Path, limit: usize, out: &mut Vec<Entry>) {
        let Ok(names) = self.list(dir, real) else { return };
        for (name, kind) in names {
            if out.len() >= limit {
                return;
            }
            if name == ".git" {
                continue;
            }
            let path = at.join(&name);
            if kind.is_dir() {
                // Opened beneath this directory and checked again: a directory swapped for a
                // link meanwhile cannot lead anywhere else.
                let Ok(sub) = dir.open_dir(&name) else { continue };
                let Ok(sub_real) = self.check(&sub) else { continue };
                out.push(Entry { path: path.clone(), dir: true });
                self.walk_in(&sub, &sub_real, &path, limit, out);
            } else if kind.is_file() {
                out.push(Entry { path, dir: false });
            } else if kind.is_symlink() {
                match self.open(&path) {
                    Ok((Node::File(_), _)) => out.push(Entry { path, dir: false }),
                    Ok((Node::Dir(_), _)) => out.push(Entry { path, dir: true }),
                    // Out of the workspace, into the gateway's files, or dangling: skipped.
                    Err(_) => {}
                }
            }
        }
    }
}
