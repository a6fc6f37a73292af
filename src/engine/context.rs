//! Build contexts: which files of an image's context folder `.dockerignore`
//! keeps, and the tar sent to the engine. Headers are deterministic (mtime 0,
//! uid/gid 0, permission bits kept); symlinks are packed as links and never
//! followed; a link that points out of the context is an error.
//! The tar is written while it is sent: it is never held whole in memory.

use crate::engine::dockerignore::Ignore;
use crate::util::error::{Error, Result};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

/// The name the rendered Dockerfile has inside the tar; the daemon drops it
/// (and our `.dockerignore`) from the context after reading it.
pub const DOCKERFILE_NAME: &str = ".strata.Dockerfile";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File { executable: bool, size: u64 },
    Dir,
    Symlink { target: String },
}

#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the context root, `/`-separated.
    pub rel: String,
    pub path: PathBuf,
    pub kind: Kind,
    pub mode: u32,
}

/// The rules of `context/.dockerignore` (none when there is no such file).
pub fn ignore_rules(context: &Path) -> Result<Ignore> {
    let path = context.join(".dockerignore");
    if let (Ok(real), Ok(dir)) = (path.canonicalize(), context.canonicalize()) {
        if !real.starts_with(&dir) {
            return Err(Error::input(format!(
                "`.dockerignore` resolves to `{}`, outside the build context; make it a file of the context",
                real.display()
            )));
        }
    }
    match std::fs::read_to_string(&path) {
        Ok(text) => Ignore::parse(&text).map_err(|e| {
            Error::input(format!(
                "{}/.dockerignore: {}",
                context.display(),
                e.message
            ))
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Ignore::default()),
        Err(e) => Err(Error::input(format!(
            "cannot read {}/.dockerignore: {e}",
            context.display()
        ))),
    }
}

/// Every entry of `context` that its `.dockerignore` keeps, sorted by path.
pub fn entries(context: &Path) -> Result<Vec<Entry>> {
    let ignore = ignore_rules(context)?;
    let mut out = Vec::new();
    let mut walk = walkdir::WalkDir::new(context)
        .follow_links(false)
        .sort_by_file_name()
        .min_depth(1)
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry =
            entry.map_err(|e| Error::input(format!("cannot read the build context: {e}")))?;
        let rel = entry
            .path()
            .strip_prefix(context)
            .expect("inside")
            .to_string_lossy()
            .replace('\\', "/");
        if rel == ".dockerignore" {
            continue;
        }
        let ft = entry.file_type();
        if ignore.excludes(&rel) {
            // Nothing under an excluded folder can come back without an exception rule.
            if ft.is_dir() && !ignore.has_exceptions() {
                walk.skip_current_dir();
            }
            continue;
        }
        let meta = entry
            .path()
            .symlink_metadata()
            .map_err(|e| Error::input(format!("cannot read `{rel}`: {e}")))?;
        let mode = permissions(&meta);
        let kind = if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())
                .map_err(|e| Error::input(format!("cannot read link `{rel}`: {e}")))?;
            if leaves(&rel, &target) {
                return Err(Error::input(format!(
                    "`{rel}` is a symlink to `{}`, outside the build context; copy the file into the context instead",
                    target.display()
                )));
            }
            Kind::Symlink {
                target: target.to_string_lossy().replace('\\', "/"),
            }
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File {
                executable: mode & 0o111 != 0,
                size: meta.len(),
            }
        } else {
            continue; // sockets, fifos: Docker skips them too
        };
        out.push(Entry {
            rel,
            path: entry.path().to_path_buf(),
            kind,
            mode,
        });
    }
    Ok(out)
}

#[cfg(unix)]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn permissions(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else {
        0o644
    }
}

/// Whether the link at `rel` pointing to `target` resolves outside the context.
fn leaves(rel: &str, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = rel.split('/').count() as i64 - 1;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Write the context tar: the kept entries, the rendered Dockerfile and, with
/// `hide_dockerfile`, a `.dockerignore` that makes the classic builder drop
/// both from the context. (BuildKit ignores it for uploaded contexts.)
pub fn write_tar(
    entries: &[Entry],
    dockerfile: &str,
    hide_dockerfile: bool,
    out: impl Write,
) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    tar.follow_symlinks(false);
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for e in entries {
        match &e.kind {
            Kind::Dir => {
                let mut h = header(tar::EntryType::Directory, 0, e.mode);
                tar.append_data(&mut h, format!("{}/", e.rel), io::empty())?;
            }
            Kind::File { size, .. } => {
                let file = std::fs::File::open(&e.path)?;
                let mut h = header(tar::EntryType::Regular, *size, e.mode);
                tar.append_data(&mut h, &e.rel, file.take(*size))?;
            }
            Kind::Symlink { target } => {
                let mut h = header(tar::EntryType::Symlink, 0, 0o777);
                tar.append_link(&mut h, &e.rel, target)?;
            }
        }
    }
    let mut h = header(tar::EntryType::Regular, dockerfile.len() as u64, 0o644);
    tar.append_data(&mut h, DOCKERFILE_NAME, dockerfile.as_bytes())?;
    if hide_dockerfile {
        let ignore = format!("{DOCKERFILE_NAME}\n.dockerignore\n");
        let mut h = header(tar::EntryType::Regular, ignore.len() as u64, 0o644);
        tar.append_data(&mut h, ".dockerignore", ignore.as_bytes())?;
    }
    tar.into_inner()?.flush()
}

use std::io::Read as _;

/// A writer that hands 64 KiB chunks to an async receiver; the sender blocks
/// while the channel is full, so memory stays bounded.
pub struct ChunkWriter {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>,
}

const CHUNK: usize = 64 * 1024;

impl ChunkWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<io::Result<bytes::Bytes>>) -> Self {
        ChunkWriter {
            buf: Vec::with_capacity(CHUNK),
            tx,
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = bytes::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the engine stopped reading"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_that_leave_are_detected() {
        assert!(leaves("a", Path::new("/etc/passwd")));
        assert!(leaves("a", Path::new("../x")));
        assert!(leaves("d/a", Path::new("../../x")));
        assert!(!leaves("d/a", Path::new("../x")));
        assert!(!leaves("d/a", Path::new("b/../c")));
    }

    #[test]
    fn tar_is_deterministic_and_keeps_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.txt"), "a").unwrap();
        std::fs::write(dir.path().join("skip.md"), "x").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "*.md\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("sub/a.txt", dir.path().join("link")).unwrap();
        let e = entries(dir.path()).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(names, ["link", "sub", "sub/a.txt"]);
        let (mut one, mut two) = (Vec::new(), Vec::new());
        write_tar(&e, "FROM x\n", true, &mut one).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("sub/a.txt"), "a").unwrap();
        write_tar(&entries(dir.path()).unwrap(), "FROM x\n", true, &mut two).unwrap();
        assert_eq!(one, two, "same content, same tar, whatever the mtimes");
        let mut archive = tar::Archive::new(&one[..]);
        let kinds: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert!(kinds.contains(&("link".into(), tar::EntryType::Symlink)));
        assert!(kinds.contains(&(DOCKERFILE_NAME.into(), tar::EntryType::Regular)));
    }

    #[test]
    fn link_out_of_the_context_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("../../etc/passwd", dir.path().join("escape")).unwrap();
        let err = entries(dir.path()).unwrap_err();
        assert!(
            err.message
                .contains("`escape` is a symlink to `../../etc/passwd`, outside the build context"),
            "{err}"
        );
    }
}
