//! Runs an image's test files against a built image, as
//! container-structure-test's Docker driver does: every command test in a
//! fresh container of the image (setup steps committed first, entrypoint
//! cleared, `$VAR` in the command replaced from the image's environment),
//! files read through the engine's archive of a never-started container,
//! metadata from the image's configuration. Messages are worded as
//! container-structure-test words them. The test files were read and
//! checked with the tree (`tree::testfiles`); the build task calls `suite`.

use crate::engine::{ContainerRun, Engine, EngineError, ImageConfig, Log};
use crate::tree::testfiles::{
    self, CommandTest, FileContentTest, FileExistenceTest, MetadataTest, Pair, Suite,
};
use serde::Serialize;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The verdict of one test.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TestResult {
    pub name: String,
    pub passed: bool,
    /// What was expected and what came; empty when it passed.
    pub message: String,
    #[serde(rename = "duration_s", serialize_with = "secs")]
    pub duration: Duration,
    /// The test file, relative to the tree root.
    pub file: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Run every test of `suite` on `image`. An engine that stops answering
/// ends the run (`Unreachable`); anything else is a test's failure.
pub async fn suite(
    engine: &dyn Engine,
    image: &str,
    suite: &Suite,
    log: &Log,
) -> Result<Vec<TestResult>, EngineError> {
    let mut results = Vec::new();
    for file in &suite.files {
        let spec = &file.spec;
        let config = engine.image_config(image).await?;
        let mut env = env_map(&config.env);
        for p in &spec.global_env_vars {
            env.insert(p.key.clone(), expand(&p.value, &env));
        }
        let global: Vec<String> = spec
            .global_env_vars
            .iter()
            .map(|p| format!("{}={}", p.key, p.value))
            .collect();
        let mut record = |name: &str, begun: Instant, errors: Result<Vec<String>, EngineError>| {
            let errors = match errors {
                Err(EngineError::Unreachable(m)) => return Err(EngineError::Unreachable(m)),
                Err(EngineError::Failed(m)) => vec![m],
                Ok(e) => e,
            };
            let message = errors.join("; ");
            // The whole message goes to the log file; the verdict, which
            // reaches stderr, the summary and JUnit, keeps a bounded tail.
            log(&match errors.is_empty() {
                true => format!("test passed: {name}"),
                false => format!("test FAILED: {name}: {}", message.replace('\n', "\\n")),
            });
            let r = TestResult {
                name: name.to_string(),
                passed: errors.is_empty(),
                message: testfiles::bounded(message),
                duration: begun.elapsed(),
                file: file.path.clone(),
            };
            results.push(r);
            Ok(())
        };
        for t in &spec.command_tests {
            let begun = Instant::now();
            let errors = command(engine, image, t, &global, &env).await;
            record(&t.name, begun, errors)?;
        }
        for t in &spec.file_existence_tests {
            let begun = Instant::now();
            let errors = existence(engine, image, t, &env).await;
            record(&t.name, begun, errors)?;
        }
        for t in &spec.file_content_tests {
            let begun = Instant::now();
            let errors = content(engine, image, t).await;
            record(&t.name, begun, errors)?;
        }
        if let Some(m) = &spec.metadata_test {
            let begun = Instant::now();
            record("Metadata Test", begun, Ok(metadata(m, &config)))?;
        }
    }
    Ok(results)
}

/// `KEY=VALUE` lines as a map (a later key wins).
fn env_map(lines: &[String]) -> HashMap<String, String> {
    lines
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// A regular expression matched anywhere in `text`; checked when the file
/// was read, so a bad one here matches nothing (as in container-structure-test).
fn found(re: &str, text: &str) -> bool {
    regex::Regex::new(re).is_ok_and(|r| r.is_match(text))
}

async fn command(
    engine: &dyn Engine,
    image: &str,
    t: &CommandTest,
    global: &[String],
    env: &HashMap<String, String>,
) -> Result<Vec<String>, EngineError> {
    let mut made: Vec<String> = Vec::new();
    let result = command_steps(engine, image, t, global, env, &mut made).await;
    // The images committed by setup steps go, whatever happened.
    for id in made.iter().rev() {
        let _ = engine.remove_image(id).await;
    }
    result
}

/// `image_env`: the image's environment with the file's global variables,
/// as container-structure-test's driver sees it after committing them.
async fn command_steps(
    engine: &dyn Engine,
    image: &str,
    t: &CommandTest,
    global: &[String],
    image_env: &HashMap<String, String>,
    made: &mut Vec<String>,
) -> Result<Vec<String>, EngineError> {
    let mut current = image.to_string();
    let mut setup_env = global.to_vec();
    setup_env.extend(
        t.env_vars
            .iter()
            .map(|p| format!("{}={}", p.key, expand(&p.value, image_env))),
    );
    for step in &t.setup {
        let out = engine
            .run_container(ContainerRun {
                image: current.clone(),
                cmd: step.clone(),
                env: setup_env.clone(),
                commit: true,
                timeout: t.timeout.map_or(testfiles::DEFAULT_TIMEOUT, |a| a.0),
            })
            .await
            .map_err(|e| match e {
                EngineError::Failed(m) => EngineError::Failed(format!("error in setup: {m}")),
                other => other,
            })?;
        if let Some(id) = out.committed {
            made.push(id.clone());
            current = id;
        }
    }
    // A committed setup step keeps its container's environment: read it again.
    let env = if t.setup.is_empty() {
        image_env.clone()
    } else {
        env_map(&engine.image_config(&current).await?.env)
    };
    let cmd: Vec<String> = std::iter::once(&t.command)
        .chain(&t.args)
        .map(|a| expand(a, &env))
        .collect();
    let mut run_env = global.to_vec();
    run_env.extend(t.env_vars.iter().map(|p| format!("{}={}", p.key, p.value)));
    let out = engine
        .run_container(ContainerRun {
            image: current,
            cmd,
            env: run_env,
            commit: false,
            timeout: t.timeout.map_or(testfiles::DEFAULT_TIMEOUT, |a| a.0),
        })
        .await?;
    let mut errors = Vec::new();
    check_text(
        &mut errors,
        &t.expected_error,
        &t.excluded_error,
        &out.stderr,
        "error",
    );
    check_text(
        &mut errors,
        &t.expected_output,
        &t.excluded_output,
        &out.stdout,
        "output",
    );
    if t.exit_code != out.exit_code {
        errors.push(format!(
            "Test '{}' exited with incorrect error code. Expected: {}, Actual: {}",
            t.name, t.exit_code, out.exit_code
        ));
    }
    Ok(errors)
}

/// The archive entry names `path`'s last part, as the Docker driver checks.
fn base(path: &str) -> &str {
    let p = path.trim_end_matches('/');
    if p.is_empty() {
        return "/";
    }
    p.rsplit('/').next().unwrap_or(p)
}

async fn existence(
    engine: &dyn Engine,
    image: &str,
    t: &FileExistenceTest,
    env: &HashMap<String, String>,
) -> Result<Vec<String>, EngineError> {
    let path = expand(&t.path, env);
    let entry = match engine.read_path(image, &path).await {
        Ok(e) => e.filter(|e| [b'0', 0, b'1', b'2', b'5'].contains(&e.kind)),
        Err(EngineError::Failed(_)) => None,
        Err(e) => return Err(e),
    };
    let Some(entry) = entry else {
        return Ok(if t.should_exist {
            vec![format!(
                "Error examining file in container: File {path} not found in image"
            )]
        } else {
            Vec::new()
        });
    };
    if !t.should_exist {
        return Ok(vec![format!("File {} should not exist but does", t.path)]);
    }
    let mut errors = Vec::new();
    let mode = go_mode(entry.kind, entry.mode);
    if !t.permissions.is_empty() && mode_string(mode) != t.permissions {
        errors.push(format!(
            "{} has incorrect permissions. Expected: {}, Actual: {}",
            t.path,
            t.permissions,
            mode_string(mode)
        ));
    }
    let bit = match t.is_executable_by.as_str() {
        "any" => Some(0o111),
        "owner" => Some(0o100),
        "group" => Some(0o010),
        "other" => Some(0o001),
        _ => None,
    };
    if let Some(bit) = bit {
        if mode & bit == 0 {
            errors.push(format!(
                "{} has incorrect executable bit. Expected to be executable by {}, Actual: {}",
                t.path,
                t.is_executable_by,
                mode_string(mode)
            ));
        }
    }
    if t.uid != -1 && entry.uid as i64 != t.uid {
        errors.push(format!(
            "{} has incorrect user ownership. Expected: {}, Actual: {}",
            t.path, t.uid, entry.uid
        ));
    }
    if t.gid != -1 && entry.gid as i64 != t.gid {
        errors.push(format!(
            "{} has incorrect group ownership. Expected: {}, Actual: {}",
            t.path, t.gid, entry.gid
        ));
    }
    Ok(errors)
}

async fn content(
    engine: &dyn Engine,
    image: &str,
    t: &FileContentTest,
) -> Result<Vec<String>, EngineError> {
    let mut path = t.path.clone();
    // Links are followed by name, as the Docker driver does (a few hops at most).
    let mut data = None;
    for _ in 0..16 {
        let entry = match engine.read_path(image, &path).await {
            Ok(e) => e,
            Err(EngineError::Failed(_)) => None,
            Err(e) => return Err(e),
        };
        match entry {
            None => break,
            Some(e) if e.kind == b'5' => {
                return Ok(vec![format!(
                    "Failed to open {}. Error: Cannot read specified path: {path} is a directory, not a file",
                    t.path
                )])
            }
            Some(e) if e.kind == b'2' => path = e.link.clone(),
            Some(e) => {
                data = Some(e.content.unwrap_or_default());
                break;
            }
        }
        let _ = base(&path);
    }
    let Some(data) = data else {
        return Ok(vec![format!(
            "Failed to open {}. Error: File {path} not found in image",
            t.path
        )]);
    };
    let text = String::from_utf8_lossy(&data);
    let mut errors = Vec::new();
    let (expected, excluded) = (&t.expected_contents, &t.excluded_contents);
    check_text(
        &mut errors,
        expected,
        excluded,
        &text,
        "file content string",
    );
    Ok(errors)
}

/// Every `expected` pattern found in `text`, no `excluded` one, worded as
/// container-structure-test words it (`what`: "output", "error", …).
fn check_text(
    errors: &mut Vec<String>,
    expected: &[String],
    excluded: &[String],
    text: &str,
    what: &str,
) {
    for e in expected.iter().filter(|e| !found(e, text)) {
        errors.push(format!(
            "Expected string '{e}' not found in {what} '{text}'"
        ));
    }
    for e in excluded.iter().filter(|e| found(e, text)) {
        errors.push(format!("Excluded string '{e}' found in {what} '{text}'"));
    }
}

fn pair_matches(p: &Pair, value: &str) -> bool {
    if p.is_regex {
        found(&p.value, value)
    } else {
        p.value == value
    }
}

fn metadata(m: &MetadataTest, c: &ImageConfig) -> Vec<String> {
    let env = env_map(&c.env);
    let mut errors = Vec::new();
    for p in &m.env_vars {
        match env.get(&p.key) {
            Some(v) if pair_matches(p, v) => {}
            Some(v) => errors.push(format!(
                "env var {} value {v} does not match expected value: {}",
                p.key, p.value
            )),
            None => errors.push(format!("variable {} not found in image env", p.key)),
        }
    }
    for p in &m.unbound_env_vars {
        if env.contains_key(&p.key) {
            errors.push(format!(
                "env variable {} should not be present in image metadata",
                p.key
            ));
        }
    }
    for p in &m.labels {
        match c.labels.get(&p.key) {
            Some(v) if pair_matches(p, v) => {}
            Some(v) => errors.push(format!(
                "label {} value {v} does not match expected value: {}",
                p.key, p.value
            )),
            None => errors.push(format!("label {} not found in image metadata", p.key)),
        }
    }
    let list = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    if let Some(want) = &m.cmd {
        if *want != list(&c.cmd) {
            errors.push(format!(
                "Image Cmd {:?} does not match expected Cmd: {want:?}",
                list(&c.cmd)
            ));
        }
    }
    if let Some(want) = &m.entrypoint {
        if *want != list(&c.entrypoint) {
            errors.push(format!(
                "Image entrypoint {:?} does not match expected entrypoint: {want:?}",
                list(&c.entrypoint)
            ));
        }
    }
    if !m.workdir.is_empty() && m.workdir != c.workdir {
        errors.push(format!(
            "Image workdir {} does not match config workdir: {}",
            c.workdir, m.workdir
        ));
    }
    if !m.user.is_empty() && m.user != c.user {
        errors.push(format!(
            "Image user {} does not match config user: {}",
            c.user, m.user
        ));
    }
    for p in &m.exposed_ports {
        if !c.exposed_ports.contains(p) {
            errors.push(format!("Port {p} not found in config"));
        }
    }
    for p in &m.unexposed_ports {
        if c.exposed_ports.contains(p) {
            errors.push(format!("Port {p} should not be exposed"));
        }
    }
    for v in &m.volumes {
        if !c.volumes.contains(v) {
            errors.push(format!("Volume {v} not found in config"));
        }
    }
    for v in &m.unmounted_volumes {
        if c.volumes.contains(v) {
            errors.push(format!("Volume {v} should not be mounted"));
        }
    }
    errors
}

// Go's fs.FileMode bits, as archive/tar's FileInfo gives them.
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_PIPE: u32 = 1 << 25;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;

/// A tar entry's type and mode as Go's `tar.Header.FileInfo().Mode()`.
fn go_mode(kind: u8, mode: u32) -> u32 {
    let mut m = mode & 0o777;
    if mode & 0o4000 != 0 {
        m |= MODE_SETUID;
    }
    if mode & 0o2000 != 0 {
        m |= MODE_SETGID;
    }
    if mode & 0o1000 != 0 {
        m |= MODE_STICKY;
    }
    m |= match mode & 0o170000 {
        0o040000 => MODE_DIR,
        0o010000 => MODE_PIPE,
        0o120000 => MODE_SYMLINK,
        0o060000 => MODE_DEVICE,
        0o020000 => MODE_DEVICE | MODE_CHAR,
        _ => 0,
    };
    m | match kind {
        b'2' => MODE_SYMLINK,
        b'3' => MODE_DEVICE | MODE_CHAR,
        b'4' => MODE_DEVICE,
        b'5' => MODE_DIR,
        b'6' => MODE_PIPE,
        _ => 0,
    }
}

/// Go's `fs.FileMode.String()`: `drwxr-xr-x`, `Lrwxrwxrwx`, `urwxr-xr-x`.
pub fn mode_string(m: u32) -> String {
    const KINDS: &str = "dalTLDpSugct?";
    let mut s: String = KINDS
        .chars()
        .enumerate()
        .filter(|(i, _)| m & (1 << (31 - i)) != 0)
        .map(|(_, c)| c)
        .collect();
    if s.is_empty() {
        s.push('-');
    }
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if m & (1 << (8 - i)) != 0 { c } else { '-' });
    }
    s
}

/// Go's `os.Expand` with a map: `$NAME`, `${NAME}` and the shell's special
/// one-character names; an unknown name is empty, bad syntax is dropped.
pub fn expand(s: &str, env: &HashMap<String, String>) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.push_str(&s[i..j]);
            let (name, w) = shell_name(&s[j + 1..]);
            if name.is_empty() && w > 0 {
                // Bad syntax: eaten.
            } else if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(env.get(name).map_or("", String::as_str));
            }
            j += w;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    out
}

fn special(c: u8) -> bool {
    matches!(
        c,
        b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9'
    )
}

fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    if b[0] == b'{' {
        if b.len() > 2 && special(b[1]) && b[2] == b'}' {
            return (&s[1..2], 3);
        }
        for i in 1..b.len() {
            if b[i] == b'}' {
                if i == 1 {
                    return ("", 2);
                }
                return (&s[1..i], i + 1);
            }
        }
        return ("", 1);
    }
    if special(b[0]) {
        return (&s[..1], 1);
    }
    let n = b
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
        .count();
    (&s[..n], n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_print_as_go_prints_them() {
        assert_eq!(mode_string(go_mode(b'0', 0o755)), "-rwxr-xr-x");
        assert_eq!(mode_string(go_mode(b'5', 0o755)), "drwxr-xr-x");
        assert_eq!(mode_string(go_mode(b'2', 0o777)), "Lrwxrwxrwx");
        assert_eq!(mode_string(go_mode(b'5', 0o1777)), "dtrwxrwxrwx");
        assert_eq!(mode_string(go_mode(b'0', 0o4755)), "urwxr-xr-x");
        assert_eq!(mode_string(go_mode(b'3', 0o666)), "Dcrw-rw-rw-");
    }

    #[test]
    fn expand_is_gos() {
        let env = HashMap::from([("HOME".to_string(), "/root".to_string())]);
        assert_eq!(
            expand("echo $HOME ${HOME}/x $NOPE.", &env),
            "echo /root /root/x ."
        );
        assert_eq!(expand("a$", &env), "a$");
        assert_eq!(expand("a$ b", &env), "a$ b");
        assert_eq!(expand("${}x", &env), "x");
        assert_eq!(expand("${HOME", &env), "HOME");
        assert_eq!(expand("cost $5", &env), "cost ");
        assert_eq!(expand("no dollars", &env), "no dollars");
    }
}
