//! GitHub Actions: a workflow, one job per image with `needs:` its
//! parents' jobs, then the publish job. Each job: the runner (`runs-on`),
//! the container image if one is given, the login's secrets through
//! `env:` (never interpolated into `run:`), then checkout, setup, login,
//! strata, and the artifacts.

use super::worker::{PASSWORD_VAR, USER_VAR};
use super::{ids, y, Invocation, Job, System, HEADER};
use std::fmt::Write as _;

pub fn github(jobs: &[Job], inv: &Invocation) -> String {
    let ids = ids(jobs, System::Github);
    let mut x = String::from(HEADER);
    x.push_str("name: strata\non:\n  workflow_dispatch: {}\njobs:\n");
    for j in jobs {
        let needs: Vec<&str> = j.parents.iter().map(|p| ids[p].as_str()).collect();
        head(&mut x, &ids[&j.name], Some(&j.name), &needs, inv);
        let _ = writeln!(x, "      - run: {}", y(&inv.build(j)));
        if inv.worker.artifacts {
            let _ = writeln!(
                x,
                "      - uses: actions/upload-artifact@v4\n        if: always()\n        with:\n          name: {}\n          path: {}",
                y(&format!("strata-{}", j.name)),
                y(&format!("summary-{0}.json\njunit-{0}.xml", j.name))
            );
        }
    }
    let needs: Vec<&str> = jobs.iter().map(|j| ids[&j.name].as_str()).collect();
    head(&mut x, &ids[""], None, &needs, inv);
    let _ = writeln!(x, "      - run: {}", y(&inv.publish()));
    x
}

/// A job up to its strata step: name, runner, needs, container, the
/// login's environment, checkout, setup and login.
fn head(x: &mut String, id: &str, name: Option<&str>, needs: &[&str], inv: &Invocation) {
    let w = &inv.worker;
    let _ = writeln!(x, "  {id}:");
    if let Some(name) = name {
        let _ = writeln!(x, "    name: {}", y(name));
    }
    let runner = w.runner.as_deref().unwrap_or("ubuntu-latest");
    let _ = writeln!(x, "    runs-on: {}", y(runner));
    if !needs.is_empty() {
        let _ = writeln!(x, "    needs: [{}]", needs.join(", "));
    }
    if let Some(image) = &w.image {
        let _ = writeln!(
            x,
            "    container:\n      image: {}\n      volumes: [\"/var/run/docker.sock:/var/run/docker.sock\"]",
            y(image)
        );
    }
    if let (Some(user), Some(password)) = (&w.login_user, &w.login_password) {
        // Names checked as identifiers: the expressions are evaluated by
        // GitHub into the environment, and `run:` reads only the variables.
        let _ = writeln!(
            x,
            "    env:\n      {USER_VAR}: ${{{{ secrets.{user} }}}}\n      {PASSWORD_VAR}: ${{{{ secrets.{password} }}}}"
        );
    }
    x.push_str("    steps:\n      - uses: actions/checkout@v4\n");
    if let Some(setup) = &w.setup {
        let _ = writeln!(x, "      - run: {}", y(setup));
    }
    if w.logs_in() {
        let _ = writeln!(x, "      - run: {}", y(&w.login_command()));
    }
}
