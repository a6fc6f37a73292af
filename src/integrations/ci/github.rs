//! GitHub Actions: a workflow, one job per image with `needs:` its
//! parents' jobs, then the publish job.

use super::{ids, y, Invocation, Job, System, HEADER};
use std::fmt::Write as _;

pub fn github(jobs: &[Job], inv: &Invocation) -> String {
    let ids = ids(jobs, System::Github);
    let mut x = String::from(HEADER);
    x.push_str("name: strata\non:\n  workflow_dispatch: {}\njobs:\n");
    for j in jobs {
        let _ = writeln!(x, "  {}:", ids[&j.name]);
        let _ = writeln!(x, "    name: {}", y(&j.name));
        x.push_str("    runs-on: ubuntu-latest\n");
        if !j.parents.is_empty() {
            let needs: Vec<&str> = j.parents.iter().map(|p| ids[p].as_str()).collect();
            let _ = writeln!(x, "    needs: [{}]", needs.join(", "));
        }
        x.push_str("    steps:\n      - uses: actions/checkout@v4\n");
        let _ = writeln!(x, "      - run: {}", y(&inv.build(j)));
        let _ = writeln!(
            x,
            "      - uses: actions/upload-artifact@v4\n        if: always()\n        with:\n          name: {}\n          path: {}",
            y(&format!("strata-{}", j.name)),
            y(&format!("summary-{0}.json\njunit-{0}.xml", j.name))
        );
    }
    let needs: Vec<&str> = jobs.iter().map(|j| ids[&j.name].as_str()).collect();
    let _ = writeln!(x, "  {}:", ids[""]);
    x.push_str("    runs-on: ubuntu-latest\n");
    if !needs.is_empty() {
        let _ = writeln!(x, "    needs: [{}]", needs.join(", "));
    }
    x.push_str("    steps:\n      - uses: actions/checkout@v4\n");
    let _ = writeln!(x, "      - run: {}", y(&inv.publish()));
    x
}
