//! GitLab CI: a child pipeline, one job per image with `needs:` its
//! parents' jobs, then the publish job. The worker options go in
//! `default:`: the image, the runner's tags, and a `before_script` with
//! the setup and the login (from CI/CD variables, read by the shell).

use super::worker::{PASSWORD_VAR, USER_VAR};
use super::{ids, y, Invocation, Job, System, HEADER};
use std::fmt::Write as _;

pub fn gitlab(jobs: &[Job], inv: &Invocation) -> String {
    let ids = ids(jobs, System::Gitlab);
    let mut x = String::from(HEADER);
    x.push_str("# Run it as a child pipeline: `trigger: {include: [{artifact: strata-ci.yml, job: …}]}`.\nstages: [build, publish]\n");
    default(&mut x, inv);
    for j in jobs {
        let _ = writeln!(x, "\n{}:", y(&ids[&j.name]));
        x.push_str("  stage: build\n");
        if !j.parents.is_empty() {
            let needs: Vec<String> = j.parents.iter().map(|p| y(&ids[p])).collect();
            let _ = writeln!(x, "  needs: [{}]", needs.join(", "));
        } else {
            x.push_str("  needs: []\n");
        }
        let _ = writeln!(x, "  script:\n    - {}", y(&inv.build(j)));
        if inv.worker.artifacts {
            let _ = writeln!(
                x,
                "  artifacts:\n    when: always\n    paths: [{}]\n    reports:\n      junit: {}",
                y(&format!("summary-{}.json", j.name)),
                y(&format!("junit-{}.xml", j.name))
            );
        }
    }
    let needs: Vec<String> = jobs.iter().map(|j| y(&ids[&j.name])).collect();
    let _ = writeln!(x, "\n{}:", y(&ids[""]));
    x.push_str("  stage: publish\n");
    let _ = writeln!(x, "  needs: [{}]", needs.join(", "));
    let _ = writeln!(x, "  script:\n    - {}", y(&inv.publish()));
    x
}

/// `default:` with what every job shares, when any worker option is given.
fn default(x: &mut String, inv: &Invocation) {
    let w = &inv.worker;
    let mut lines = String::new();
    if let Some(image) = &w.image {
        let _ = writeln!(lines, "  image: {}", y(image));
    }
    if let Some(runner) = &w.runner {
        let _ = writeln!(lines, "  tags: [{}]", y(runner));
    }
    let mut before = Vec::new();
    if let Some(setup) = &w.setup {
        before.push(setup.clone());
    }
    if let (Some(user), Some(password)) = (&w.login_user, &w.login_password) {
        // The variables' names are identifiers; the shell expands them.
        before.push(format!(
            "export {USER_VAR}=\"${user}\" {PASSWORD_VAR}=\"${password}\""
        ));
        before.push(w.login_command());
    }
    if !before.is_empty() {
        lines.push_str("  before_script:\n");
        for b in before {
            let _ = writeln!(lines, "    - {}", y(&b));
        }
    }
    if !lines.is_empty() {
        let _ = write!(x, "\ndefault:\n{lines}");
    }
}
