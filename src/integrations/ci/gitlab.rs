//! GitLab CI: a child pipeline, one job per image with `needs:` its
//! parents' jobs, then the publish job.

use super::{ids, y, Invocation, Job, System, HEADER};
use std::fmt::Write as _;

pub fn gitlab(jobs: &[Job], inv: &Invocation) -> String {
    let ids = ids(jobs, System::Gitlab);
    let mut x = String::from(HEADER);
    x.push_str("# Run it as a child pipeline: `trigger: {include: [{artifact: strata-ci.yml, job: …}]}`.\nstages: [build, publish]\n");
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
        let _ = writeln!(
            x,
            "  artifacts:\n    when: always\n    paths: [{}]\n    reports:\n      junit: {}",
            y(&format!("summary-{}.json", j.name)),
            y(&format!("junit-{}.xml", j.name))
        );
    }
    let needs: Vec<String> = jobs.iter().map(|j| y(&ids[&j.name])).collect();
    let _ = writeln!(x, "\n{}:", y(&ids[""]));
    x.push_str("  stage: publish\n");
    let _ = writeln!(x, "  needs: [{}]", needs.join(", "));
    let _ = writeln!(x, "  script:\n    - {}", y(&inv.publish()));
    x
}
