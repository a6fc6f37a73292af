//! Image tests: container-structure-test files (`schemaVersion: 2.0.0`),
//! read and checked here, run against a built image by `run`. A test file
//! is an input of the verdict, not of the image: the files' contents give a
//! key, and a verdict is remembered per fingerprint and key.
//! Read with the tree, so a bad test file is exit 2 before anything
//! builds; run by `execute::imagetest` once the image is built.
//! Knows nothing of the scheduler or engines.

use crate::util::error::{Error, Result};
use crate::util::yaml::parse as parse_yaml;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `key: value`, as container-structure-test writes environment variables
/// and labels.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Pair {
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CommandTest {
    pub name: String,
    #[serde(default)]
    pub setup: Vec<Vec<String>>,
    /// Read and ignored, as container-structure-test's Docker driver does
    /// (every test runs in containers of its own).
    #[serde(default)]
    pub teardown: Vec<Vec<String>>,
    #[serde(default)]
    pub env_vars: Vec<Pair>,
    #[serde(default)]
    pub exit_code: i64,
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub expected_output: Vec<String>,
    #[serde(default)]
    pub excluded_output: Vec<String>,
    #[serde(default)]
    pub expected_error: Vec<String>,
    #[serde(default)]
    pub excluded_error: Vec<String>,
    /// How long the command (each setup step too) may run: `90s`, `5m`;
    /// default `DEFAULT_TIMEOUT`. A command still running then fails the
    /// test, and its container is removed.
    #[serde(default)]
    pub timeout: Option<crate::tree::config::Age>,
}

/// The most of a failed test's message kept in its verdict (stderr, the
/// summary, JUnit); the log file has it whole.
pub const MESSAGE_LIMIT: usize = 4096;

/// `message`, or its last `MESSAGE_LIMIT` bytes with a note of what was cut.
pub(crate) fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message;
    }
    let mut cut = message.len() - MESSAGE_LIMIT;
    while !message.is_char_boundary(cut) {
        cut += 1;
    }
    format!(
        "[{cut} bytes cut; the whole message is in the image's log file] …{}",
        &message[cut..]
    )
}

/// How long a command test may run when its file says nothing.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

fn yes() -> bool {
    true
}

fn unset() -> i64 {
    -1
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileExistenceTest {
    pub name: String,
    pub path: String,
    #[serde(default = "yes")]
    pub should_exist: bool,
    #[serde(default)]
    pub permissions: String,
    #[serde(default = "unset")]
    pub uid: i64,
    #[serde(default = "unset")]
    pub gid: i64,
    #[serde(default)]
    pub is_executable_by: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileContentTest {
    pub name: String,
    pub path: String,
    #[serde(default)]
    pub expected_contents: Vec<String>,
    #[serde(default)]
    pub excluded_contents: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct MetadataTest {
    pub env_vars: Vec<Pair>,
    pub unbound_env_vars: Vec<Pair>,
    pub exposed_ports: Vec<String>,
    pub unexposed_ports: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub workdir: String,
    pub volumes: Vec<String>,
    pub unmounted_volumes: Vec<String>,
    pub labels: Vec<Pair>,
    pub user: String,
}

/// One test file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Spec {
    pub schema_version: String,
    #[serde(default)]
    pub global_env_vars: Vec<Pair>,
    #[serde(default)]
    pub command_tests: Vec<CommandTest>,
    #[serde(default)]
    pub file_existence_tests: Vec<FileExistenceTest>,
    #[serde(default)]
    pub file_content_tests: Vec<FileContentTest>,
    pub metadata_test: Option<MetadataTest>,
}

/// A test file as read: where it is (relative to the tree root) and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFile {
    pub path: String,
    pub spec: Spec,
}

/// The tests of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Suite {
    pub files: Vec<TestFile>,
    /// blake3 of every file's path and contents: the verdict's other input.
    pub key: String,
}

impl Suite {
    pub fn count(&self) -> usize {
        self.files
            .iter()
            .map(|f| {
                let s = &f.spec;
                s.command_tests.len()
                    + s.file_existence_tests.len()
                    + s.file_content_tests.len()
                    + usize::from(s.metadata_test.is_some())
            })
            .sum()
    }
}

/// Read and check the test files `paths` (relative to `root`), in order.
/// Reads test files once each, however many images list them (a file of
/// `build.tests` is listed by every image).
#[derive(Default)]
pub struct Reader {
    /// Path → the file as read, with its text.
    seen: std::collections::HashMap<PathBuf, (TestFile, String)>,
}

impl Reader {
    /// Read and check the test files `paths` (relative to `root`), in order.
    pub fn suite(&mut self, root: &Path, paths: &[PathBuf]) -> Result<Option<Suite>> {
        if paths.is_empty() {
            return Ok(None);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"strata-tests-v1");
        let mut files = Vec::new();
        for path in paths {
            let (file, text) = match self.seen.get(path) {
                Some(known) => known.clone(),
                None => {
                    let read = read(root, path)?;
                    self.seen.insert(path.clone(), read.clone());
                    read
                }
            };
            hasher.update(file.path.as_bytes());
            hasher.update(&(text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
            files.push(file);
        }
        Ok(Some(Suite {
            files,
            key: hasher.finalize().to_hex().to_string(),
        }))
    }
}

/// One test file, read and checked, and its text.
fn read(root: &Path, path: &Path) -> Result<(TestFile, String)> {
    let name = crate::tree::config::display_name(path, root);
    let text = std::fs::read_to_string(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::input(format!("image test file `{name}` does not exist"))
                .help("`tests:` lists container-structure-test files, relative to the image folder (image.yaml) or the tree root (build.tests)")
        } else {
            Error::read(path, e)
        }
    })?;
    let spec: Spec = parse_yaml(&name, &text)?;
    check(&name, &text, &spec)?;
    Ok((TestFile { path: name, spec }, text))
}

/// A command test needs a name, a command, no empty setup or teardown
/// command, and a key and value for each variable.
fn check_command(t: &CommandTest, at: &dyn Fn(&str, String, &str) -> Error) -> Result<()> {
    if t.name.is_empty() {
        return Err(at(
            "commandTests",
            "a command test has no `name`".into(),
            "give every test a name",
        ));
    }
    if t.command.is_empty() {
        return Err(at(
            &t.name,
            format!("command test `{}` has no `command`", t.name),
            "name the program to run under `command:`",
        ));
    }
    if t.setup.iter().chain(&t.teardown).any(Vec::is_empty) {
        return Err(at(
            &t.name,
            format!(
                "command test `{}` has an empty setup or teardown command",
                t.name
            ),
            "remove the empty command",
        ));
    }
    if t.env_vars
        .iter()
        .any(|p| p.key.is_empty() || p.value.is_empty())
    {
        return Err(at(
            &t.name,
            format!(
                "command test `{}` has an environment variable without a key or value",
                t.name
            ),
            "give every `envVars` entry a `key` and a `value`",
        ));
    }
    Ok(())
}

/// What container-structure-test refuses, and what it would only find out
/// while running (a bad regular expression), refused before anything is built.
fn check(name: &str, text: &str, spec: &Spec) -> Result<()> {
    let at = |needle: &str, message: String, help: &str| {
        let err = Error::input(format!("{name}: {message}")).help(help.to_string());
        match text.find(needle).filter(|_| !needle.is_empty()) {
            Some(i) => err.at(name, text, i..i + needle.len(), "here"),
            None => err,
        }
    };
    if spec.schema_version != "2.0.0" {
        return Err(at(
            &spec.schema_version,
            format!("unknown schemaVersion `{}`", spec.schema_version),
            "strata reads container-structure-test files of `schemaVersion: 2.0.0`",
        ));
    }
    let mut regexes: Vec<&String> = Vec::new();
    for t in &spec.command_tests {
        check_command(t, &at)?;
        regexes.extend(t.expected_output.iter().chain(&t.excluded_output));
        regexes.extend(t.expected_error.iter().chain(&t.excluded_error));
    }
    for t in &spec.file_existence_tests {
        if t.name.is_empty() || t.path.is_empty() {
            return Err(at(
                &t.name,
                "a file existence test needs a `name` and a `path`".into(),
                "give every test a name and a path",
            ));
        }
        if !["", "any", "owner", "group", "other"].contains(&t.is_executable_by.as_str()) {
            return Err(at(
                &t.is_executable_by,
                format!(
                    "`isExecutableBy: {}` in test `{}`",
                    t.is_executable_by, t.name
                ),
                "use one of any, owner, group, other",
            ));
        }
    }
    for t in &spec.file_content_tests {
        if t.name.is_empty() || t.path.is_empty() {
            return Err(at(
                &t.name,
                "a file content test needs a `name` and a `path`".into(),
                "give every test a name and a path",
            ));
        }
        regexes.extend(t.expected_contents.iter().chain(&t.excluded_contents));
    }
    if let Some(m) = &spec.metadata_test {
        for p in m.env_vars.iter().chain(&m.labels) {
            if p.key.is_empty() {
                return Err(at(
                    "metadataTest",
                    "an environment variable or label without a `key`".into(),
                    "give it a `key`",
                ));
            }
            if p.is_regex {
                regexes.push(&p.value);
            }
        }
    }
    for r in regexes {
        if let Err(e) = regex::Regex::new(r) {
            let detail = e.to_string();
            let last = detail.lines().last().unwrap_or("").trim().to_string();
            return Err(at(
                r,
                format!("invalid regular expression `{r}`: {last}"),
                "expected and excluded strings are regular expressions (RE2 syntax, as in Go): escape `(`, `[`, `.` and `*` with `\\` to match them literally",
            ));
        }
    }
    Ok(())
}
