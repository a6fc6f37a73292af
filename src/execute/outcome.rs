//! What the scheduler reports: each item's status and outcome, the events
//! its observer sees, and the result of a run.

use crate::plan::Item;
use std::collections::VecDeque;
use std::time::Duration;

/// The longest log line shown on a terminal or kept in a tail (the log
/// file keeps every line whole).
pub const LINE_LIMIT: usize = 4096;

/// `line`, or its first `LINE_LIMIT` bytes with a note of what was cut.
pub fn clip_line(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= LINE_LIMIT {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut end = LINE_LIMIT;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    std::borrow::Cow::Owned(format!(
        "{}… [{} bytes cut; the whole line is in the image's log file]",
        &line[..end],
        line.len() - end
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Built,
    UpToDate,
    Failed,
    ParentFailed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Built => "built",
            Status::UpToDate => "up-to-date",
            Status::Failed => "failed",
            Status::ParentFailed => "parent-failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Whether the image is there as asked (built or already up to date).
    pub fn is_ok(self) -> bool {
        matches!(self, Status::Built | Status::UpToDate)
    }
}

#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub image_id: Option<String>,
    /// Time spent building (all attempts) and pushing.
    pub duration: Duration,
    pub error: Option<String>,
    /// For `parent-failed`: the failed ancestor it waited for.
    pub failed_parent: Option<String>,
    pub attempts: u32,
    /// The last `TAIL_LINES` lines of its log.
    pub tail: VecDeque<String>,
    /// References moved in the registry (`--push`).
    pub pushed: Vec<String>,
    /// The registry's manifest digest of the image, when known.
    pub digest: Option<String>,
    /// When its step began and ended (RFC 3339), for items that ran.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Its image tests' verdicts, when they ran.
    pub tests: Vec<crate::execute::imagetest::TestResult>,
    /// The engine it was built, tested or uploaded on, in a run over several.
    pub engine: Option<String>,
    /// The builder that built it (`buildkit`, `classic`), when it was built.
    pub builder: Option<&'static str>,
}

impl Outcome {
    pub(super) fn new(status: Status) -> Outcome {
        Outcome {
            status,
            image_id: None,
            duration: Duration::ZERO,
            error: None,
            failed_parent: None,
            attempts: 0,
            tail: VecDeque::new(),
            pushed: Vec::new(),
            digest: None,
            started_at: None,
            finished_at: None,
            tests: Vec::new(),
            engine: None,
            builder: None,
        }
    }
}

/// What the scheduler tells its observer, always from the one loop.
pub enum Event<'a> {
    Started {
        item: usize,
    },
    Line {
        item: usize,
        line: &'a str,
    },
    Pushing {
        item: usize,
    },
    Finished {
        item: usize,
        outcome: &'a Outcome,
    },
    /// Something about the run, not one image (an engine lost).
    Note {
        text: &'a str,
    },
}

pub trait Observer {
    fn event(&mut self, items: &[Item], event: Event);
}

/// The result of a run; `outcomes` is index-aligned with the plan's items.
pub struct Run {
    pub outcomes: Vec<Outcome>,
    pub interrupted: bool,
    pub wall: Duration,
    /// Engines that stopped answering during the run, with why.
    pub lost: Vec<(String, String)>,
    /// Every engine was lost: the run could not go on (exit 3).
    pub all_lost: bool,
    /// What the run has to say after its progress: why no tag moved.
    pub notes: Vec<String>,
    /// Multi-platform sets: each image's index, as the publish step wrote it.
    pub indexes: Vec<Indexed>,
}

impl Run {
    /// Whether the set's release tags may move: nothing interrupted, every
    /// image of the `items` built or up to date. Says why not.
    pub fn publishable(&mut self, items: usize) -> bool {
        if self.interrupted {
            let note = "strata: interrupted; no release tag was moved in the registry";
            self.notes.push(note.into());
            return false;
        }
        let not_ok = self.outcomes.iter().filter(|o| !o.status.is_ok()).count();
        if not_ok > 0 {
            self.notes.push(format!(
                "strata: no release tag was moved in the registry: {not_ok} of {items} images did not build or upload"
            ));
        }
        not_ok == 0
    }
}

/// One image's index in a multi-platform set: written at its release
/// references, or why not.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Indexed {
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The platforms it names, in order.
    pub platforms: Vec<String>,
    /// The references now pointing at it.
    pub moved: Vec<String>,
    /// Release references kept on a newer commit's index (the race rule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
