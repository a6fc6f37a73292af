//! A tree in a temp folder and the real `strata` binary to run on it.

#![allow(dead_code)]

pub mod browser;
pub mod engine;
pub mod kube;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestTree {
    dir: tempfile::TempDir,
}

impl TestTree {
    /// An empty folder.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("strata-test-")
            .tempdir()
            .expect("temp dir");
        TestTree { dir }
    }

    /// A copy of the repository's sample set (strata.yaml, images/, templates/).
    pub fn sample() -> Self {
        let t = TestTree::new();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        for top in ["strata.yaml", "images", "templates", "image-tests"] {
            for entry in walkdir::WalkDir::new(repo.join(top)) {
                let entry = entry.expect("walk");
                let rel = entry.path().strip_prefix(repo).expect("inside");
                let dest = t.path().join(rel);
                if entry.file_type().is_dir() {
                    std::fs::create_dir_all(&dest).expect("mkdir");
                } else {
                    std::fs::copy(entry.path(), &dest).expect("copy");
                }
            }
        }
        t
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write `text` to `rel` (folders created).
    pub fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, text).expect("write");
        self
    }

    pub fn remove(&self, rel: &str) -> &Self {
        let p = self.path().join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).expect("rm -r");
        } else {
            std::fs::remove_file(p).expect("rm");
        }
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).expect("read")
    }

    /// `strata -C <tree> ARGS`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.arg("-C")
            .arg(self.path())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run strata");
        Run::new(out, self.path())
    }

    /// Keep the folder after the test, for debugging.
    pub fn eject(self) -> PathBuf {
        self.dir.keep()
    }
}

/// The result of one run, with the temp folder's path replaced by `[TREE]`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn new(out: Output, root: &Path) -> Self {
        let root = root.display().to_string();
        let clean = |b: &[u8]| String::from_utf8_lossy(b).replace(&root, "[TREE]");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
        }
    }

    /// Assert the exit code, showing the output when it differs.
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A small valid tree: `base` on a base image, `app` on `base`.
pub fn small_tree() -> TestTree {
    let t = TestTree::new();
    t.write(
        "strata.yaml",
        "namespace: strata\nvars: {base_image: 'debian:bookworm-slim'}\n",
    )
    .write(
        "images/base/Dockerfile.j2",
        "FROM {{ base_image }}\nRUN true\n",
    )
    .write(
        "images/app/Dockerfile.j2",
        "FROM {{ image_ref('base') }}\n{% include 'common.j2' %}\n",
    )
    .write("templates/common.j2", "RUN echo {{ image_name }}\n");
    t
}

/// A running `strata` whose stderr is read on a thread, line by line.
pub struct Running {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Every stderr line read so far.
    pub seen: String,
}

impl Running {
    pub fn spawn(cmd: Command) -> Running {
        Running::spawn_reading(cmd, false)
    }

    /// The same, with stdout's lines read into `seen` too.
    pub fn spawn_reading(mut cmd: Command, stdout: bool) -> Running {
        let out = match stdout {
            true => std::process::Stdio::piped(),
            false => std::process::Stdio::null(),
        };
        let mut child = cmd
            .stderr(std::process::Stdio::piped())
            .stdout(out)
            .spawn()
            .expect("spawn strata");
        let (tx, lines) = std::sync::mpsc::channel();
        let read = |stream: Box<dyn std::io::Read + Send>, tx: std::sync::mpsc::Sender<String>| {
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
        };
        read(Box::new(child.stderr.take().expect("stderr")), tx.clone());
        if let Some(stdout) = child.stdout.take() {
            read(Box::new(stdout), tx);
        }
        Running {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Read stderr until a line contains `needle` (at most `secs` seconds
    /// without a line); panics, showing what was read, if none does.
    pub fn wait_for(&mut self, needle: &str, secs: u64) {
        self.wait_for_count(needle, 1, secs)
    }

    /// The same, until `needle` has been seen `n` times in all.
    pub fn wait_for_count(&mut self, needle: &str, n: usize, secs: u64) {
        while self.seen.matches(needle).count() < n {
            match self
                .lines
                .recv_timeout(std::time::Duration::from_secs(secs))
            {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(_) => panic!("no line with `{needle}` on stderr:\n{}", self.seen),
            }
        }
    }

    pub fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Wait for the end; the exit code and the rest of stderr.
    pub fn finish(mut self) -> (i32, String) {
        let status = self.child.wait().expect("wait");
        while let Ok(line) = self.lines.recv_timeout(std::time::Duration::from_secs(5)) {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        (status.code().unwrap_or(-1), std::mem::take(&mut self.seen))
    }
}

/// `127.0.0.1:PORT` where nothing listens (a port just freed).
pub fn closed_address() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    format!("127.0.0.1:{port}")
}

/// The second engine of ci/setup.sh (the one that speaks TLS), held by one
/// test at a time: the executed-pipeline test empties it between jobs.
pub fn second_engine() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The values of the test-machine settings `names` (ci/setup.sh writes
/// them to target/ci/registry.env, which ci/test.sh exports), or None when
/// one is missing: under CI that fails the test, on a laptop it is skipped
/// with a message saying what `what` needs.
pub fn settings(names: &[&str], what: &str) -> Option<Vec<String>> {
    let values: Vec<String> = names
        .iter()
        .filter_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .collect();
    if values.len() == names.len() {
        return Some(values);
    }
    let msg = format!("{what} needs {} (run through ci/test.sh)", names.join(", "));
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED {msg}");
    None
}

impl Drop for Running {
    /// A test that fails before `finish` leaves no strata running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let _ = self.child.wait();
        }
    }
}

/// A value no earlier run used: in a `RUN` line it keeps the engine's layer
/// cache (BuildKit's is keyed by content, across namespaces) from answering
/// a step a test needs to run.
pub fn nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}", std::process::id())
}

/// Run `cmd` with `sh -c` in `dir`; its stdout, trimmed. Fails the test
/// with its stderr when it fails.
pub fn sh(dir: &std::path::Path, cmd: &str) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `git -C dir ARGS`, which must succeed; its stdout.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    git_at(dir, args, None)
}

/// `git -C dir ARGS` with author and committer time `date`, when given.
pub fn git_at(dir: &std::path::Path, args: &[&str], date: Option<&str>) -> String {
    let mut cmd = std::process::Command::new("git");
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
    }
    let out = cmd
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
