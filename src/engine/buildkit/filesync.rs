//! The files a BuildKit build reads from us, as the docker CLI serves them:
//! two folders by name, `context` (the context entries `.dockerignore`
//! keeps, the image's test files left out) and `dockerfile` (the rendered
//! Dockerfile alone). Nothing strata adds is in `context`, so `COPY .` copies
//! what `docker build` would.
//!
//! The protocol is fsutil's `DiffCopy`: we send one STAT packet per path
//! in walk order (each folder's names sorted) and an empty one to end; the
//! engine asks for files by their position (REQ) and we answer with DATA
//! packets, an empty one closing each file; FIN ends it. Owners are root
//! and times zero, as in the classic builder's context tar.

use crate::engine::context::{Entry, Kind};
use bollard::fsutil::types::packet::PacketType;
use bollard::fsutil::types::{Packet, Stat};
use bollard::moby::filesync::v1::file_sync_server::FileSync;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tonic::{Request, Response, Status, Streaming};

/// Where a file's bytes come from.
#[derive(Debug, Clone)]
enum Source {
    Disk(PathBuf),
    Text(Arc<str>),
}

#[derive(Debug, Clone)]
struct File {
    stat: Stat,
    /// Regular files only: what is sent when the engine asks.
    source: Option<Source>,
}

/// The folders of one build, by the names the engine asks for.
#[derive(Debug, Default)]
pub struct Folders {
    dirs: HashMap<String, Vec<File>>,
}

/// The name the Dockerfile has in the `dockerfile` folder.
pub const DOCKERFILE: &str = "Dockerfile";

// Go's os.FileMode bits, which fsutil sends.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_STICKY: u32 = 1 << 20;

fn go_mode(unix: u32) -> u32 {
    let mut mode = unix & 0o777;
    for (bit, go) in [
        (0o4000, MODE_SETUID),
        (0o2000, MODE_SETGID),
        (0o1000, MODE_STICKY),
    ] {
        if unix & bit != 0 {
            mode |= go;
        }
    }
    mode
}

impl Folders {
    /// `context` from its entries (in walk order), `dockerfile` from the text.
    pub fn new(entries: &[Entry], dockerfile: &str) -> Folders {
        let context = entries
            .iter()
            .map(|e| {
                let mut stat = Stat {
                    path: e.rel.clone(),
                    ..Default::default()
                };
                let source = match &e.kind {
                    Kind::Dir => {
                        stat.mode = MODE_DIR | go_mode(e.mode);
                        None
                    }
                    Kind::Symlink { target } => {
                        stat.mode = MODE_SYMLINK | 0o777;
                        stat.linkname = target.clone();
                        None
                    }
                    Kind::File { size, .. } => {
                        stat.mode = go_mode(e.mode);
                        stat.size = *size as i64;
                        Some(Source::Disk(e.path.clone()))
                    }
                };
                File { stat, source }
            })
            .collect();
        let dockerfile = File {
            stat: Stat {
                path: DOCKERFILE.into(),
                mode: 0o644,
                size: dockerfile.len() as i64,
                ..Default::default()
            },
            source: Some(Source::Text(dockerfile.into())),
        };
        let dirs = [
            ("context".to_string(), context),
            ("dockerfile".to_string(), vec![dockerfile]),
        ];
        Folders {
            dirs: dirs.into_iter().collect(),
        }
    }

    /// The paths of folder `name` the engine asked for: all, or those the
    /// include patterns name (and the folders holding them).
    fn wanted(&self, name: &str, includes: &[String]) -> Option<Vec<File>> {
        let files = self.dirs.get(name)?;
        if includes.is_empty() {
            return Some(files.clone());
        }
        let set = {
            let mut b = globset::GlobSetBuilder::new();
            for p in includes {
                if let Ok(g) = globset::GlobBuilder::new(p.trim_start_matches('/'))
                    .literal_separator(true)
                    .build()
                {
                    b.add(g);
                }
            }
            b.build().unwrap_or_else(|_| globset::GlobSet::empty())
        };
        let hit = |path: &str| {
            includes.iter().any(|p| {
                let p = p.trim_start_matches('/');
                path == p || path.starts_with(&format!("{p}/"))
            }) || set.is_match(path)
        };
        let matched: Vec<&str> = files
            .iter()
            .map(|f| f.stat.path.as_str())
            .filter(|p| hit(p))
            .collect();
        let keep = |path: &str| {
            matched
                .iter()
                .any(|m| *m == path || m.starts_with(&format!("{path}/")))
        };
        Some(
            files
                .iter()
                .filter(|f| keep(&f.stat.path))
                .cloned()
                .collect(),
        )
    }
}

/// The `FileSync` service over the folders of one build.
pub struct Service(pub Arc<Folders>);

type PacketStream = Pin<Box<dyn futures_util::Stream<Item = Result<Packet, Status>> + Send>>;

fn values(request: &Request<Streaming<Packet>>, key: &str) -> Vec<String> {
    request
        .metadata()
        .get_all(key)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Default::default()
    }
}

#[tonic::async_trait]
impl FileSync for Service {
    type DiffCopyStream = PacketStream;
    type TarStreamStream = PacketStream;

    async fn diff_copy(
        &self,
        request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        let name = values(&request, "dir-name").into_iter().next();
        let name = name.unwrap_or_else(|| "context".into());
        let includes = values(&request, "include-patterns");
        let files = self
            .0
            .wanted(&name, &includes)
            .ok_or_else(|| Status::not_found(format!("no folder `{name}` in this build")))?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let incoming = request.into_inner();
        tokio::spawn(send(files, incoming, tx));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn tar_stream(
        &self,
        _request: Request<Streaming<Packet>>,
    ) -> Result<Response<PacketStream>, Status> {
        Err(Status::unimplemented("strata serves folders by DiffCopy"))
    }
}

type Tx = tokio::sync::mpsc::Sender<Result<Packet, Status>>;

/// Stats first, then files as the engine asks for them, until FIN.
async fn send(files: Vec<File>, mut incoming: Streaming<Packet>, tx: Tx) {
    for f in &files {
        let mut p = packet(PacketType::PacketStat);
        p.stat = Some(f.stat.clone());
        if tx.send(Ok(p)).await.is_err() {
            return;
        }
    }
    if tx.send(Ok(packet(PacketType::PacketStat))).await.is_err() {
        return;
    }
    while let Some(Ok(p)) = incoming.next().await {
        match PacketType::try_from(p.r#type) {
            Ok(PacketType::PacketReq) => {
                let source = files.get(p.id as usize).and_then(|f| f.source.clone());
                if let Err(e) = data(p.id, source, &tx).await {
                    let mut err = packet(PacketType::PacketErr);
                    err.data = e.into_bytes();
                    let _ = tx.send(Ok(err)).await;
                    return;
                }
            }
            Ok(PacketType::PacketFin) => {
                let _ = tx.send(Ok(packet(PacketType::PacketFin))).await;
                return;
            }
            Ok(PacketType::PacketErr) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// File `id`'s bytes in DATA packets, then an empty one.
async fn data(id: u32, source: Option<Source>, tx: &Tx) -> Result<(), String> {
    let chunk = |bytes: Vec<u8>| {
        let mut p = packet(PacketType::PacketData);
        p.id = id;
        p.data = bytes;
        p
    };
    match source {
        None => return Err(format!("asked for entry {id}, which is not a file")),
        Some(Source::Text(text)) => {
            if !text.is_empty() {
                let _ = tx.send(Ok(chunk(text.as_bytes().to_vec()))).await;
            }
        }
        Some(Source::Disk(path)) => {
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
            loop {
                let mut buf = vec![0; 64 * 1024];
                let n = file
                    .read(&mut buf)
                    .await
                    .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
                if n == 0 {
                    break;
                }
                buf.truncate(n);
                if tx.send(Ok(chunk(buf))).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
    let _ = tx.send(Ok(chunk(Vec::new()))).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rel: &str, kind: Kind) -> Entry {
        Entry {
            rel: rel.into(),
            path: PathBuf::from(rel),
            kind,
            mode: 0o755,
        }
    }

    #[test]
    fn include_patterns_keep_the_folders_holding_a_match() {
        let file = Kind::File {
            executable: false,
            size: 1,
        };
        let entries = [
            entry("a", Kind::Dir),
            entry("a/b.txt", file.clone()),
            entry("a/c.txt", file.clone()),
            entry("d.txt", file),
        ];
        let folders = Folders::new(&entries, "FROM x\n");
        let paths = |name: &str, inc: &[&str]| -> Vec<String> {
            let inc: Vec<String> = inc.iter().map(|s| s.to_string()).collect();
            folders
                .wanted(name, &inc)
                .unwrap()
                .into_iter()
                .map(|f| f.stat.path)
                .collect()
        };
        assert_eq!(paths("context", &[]), ["a", "a/b.txt", "a/c.txt", "d.txt"]);
        assert_eq!(paths("context", &["a/b.txt"]), ["a", "a/b.txt"]);
        assert_eq!(paths("context", &[".dockerignore"]), Vec::<String>::new());
        assert_eq!(
            paths("dockerfile", &["Dockerfile", ".dockerignore"]),
            ["Dockerfile"]
        );
        let modes: Vec<u32> = folders.dirs["context"]
            .iter()
            .map(|f| f.stat.mode)
            .collect();
        assert_eq!(modes, [MODE_DIR | 0o755, 0o755, 0o755, 0o755]);
        assert!(folders.wanted("elsewhere", &[]).is_none());
    }
}
