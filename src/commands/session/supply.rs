//! The session's supply-chain steps (`--attest-dir`): SBOMs read through
//! the engine that holds each image, provenance written (and signed), and
//! both attached in the registry once an image's tags moved.

use super::Session;
use crate::commands::settings::Settings;
use crate::execute::Run;
use crate::plan::Plan;

impl Session {
    /// `--attest-dir`: the SBOM of every image an engine holds, each read
    /// through the engine it is on. One entry per item.
    pub fn attest(
        &self,
        plan: &Plan,
        run: &Run,
        s: &Settings,
    ) -> Vec<Option<crate::publish::supply::Attested>> {
        let Some((dir, format)) = &s.attest else {
            return Vec::new();
        };
        let engine_of = |i: usize| {
            let named = run.outcomes[i].engine.as_deref();
            let member = self.engines.iter().find(|m| Some(m.name.as_str()) == named);
            member.unwrap_or(&self.engines[0]).engine.clone()
        };
        match self.block_on(crate::publish::supply::sboms(
            plan, run, &engine_of, dir, *format,
        )) {
            Ok(done) => done,
            Err(e) => {
                crate::report::note(&format!("strata: no SBOMs written: {}", e.message));
                Vec::new()
            }
        }
    }

    /// `--attest-dir`: the provenance of every image built (signed with
    /// `--sign-key`), named in the summary.
    pub fn provenance(&self, plan: &Plan, summary: &mut crate::report::Summary, s: &Settings) {
        let Some((dir, format)) = &s.attest else {
            return;
        };
        let loaded = &self.scope.loaded;
        let selection: Vec<String> = self
            .scope
            .selected
            .iter()
            .map(|&i| loaded.graph.nodes[i].name.clone())
            .collect();
        let secret_ids = |i: usize| self.scope.inputs[plan.items[i].id].secrets.clone();
        let key = s
            .sign_key
            .as_ref()
            .map(crate::publish::supply::sign::Key::load)
            .transpose();
        let runs: Vec<Option<crate::publish::supply::provenance::Run>> =
            (summary.images.iter().enumerate())
                .map(|(i, image)| {
                    (image.status == crate::execute::Status::Built).then(|| {
                        crate::publish::supply::provenance::Run {
                            digest: (image.digest.as_deref().or(image.image_id.as_deref()))
                                .unwrap_or_default(),
                            parents: &image.parents,
                            builder: &image.builder,
                            engine: &image.engine,
                            started_at: image.started_at.as_deref(),
                            finished_at: image.finished_at.as_deref(),
                            tests: &image.tests,
                            secrets: secret_ids(i),
                        }
                    })
                })
                .collect();
        let mut named = Vec::new();
        let written = key.and_then(|key| {
            crate::publish::supply::provenance(
                plan,
                &runs,
                dir,
                *format,
                &selection,
                key.as_ref(),
                &mut named,
            )
        });
        drop(runs);
        for (i, path) in named {
            summary.images[i].provenance = Some(path);
        }
        if let Err(e) = written {
            crate::report::note(&format!("strata: provenance not written: {}", e.message));
        }
    }

    /// `--attest-dir` with `--push`: the digest each item's release
    /// reference points at before the run (None: not there, or not asked),
    /// for the package diff against the previous publication.
    pub fn released_before(&self, plan: &Plan, s: &Settings) -> Vec<Option<String>> {
        let (Some(_), Some(registry), true) = (&s.attest, &self.registry, s.push) else {
            return Vec::new();
        };
        let asks = (plan.items.iter()).map(|i| registry.manifest_digest(&i.reference));
        let found = self.block_on(futures_util::future::join_all(asks));
        found.into_iter().map(|d| d.ok().flatten()).collect()
    }

    /// The SBOM the registry holds for the image each moved release
    /// reference pointed at before (`before`, by item), written to
    /// `DIR/<image>.previous-sbom.json` (beside the image's files, and
    /// named so that nothing reading the SBOMs takes it for one of this
    /// run's) and named in the summary with that digest; the page shows
    /// the package diff against it.
    pub fn previous_sboms(
        &self,
        plan: &Plan,
        before: &[Option<String>],
        summary: &mut crate::report::Summary,
        s: &Settings,
    ) {
        let (Some((dir, _)), Some(registry)) = (&s.attest, &self.registry) else {
            return;
        };
        let moved = |i: usize| {
            let image = &summary.images[i];
            let was = before.get(i)?.as_ref()?;
            (image.sbom.is_some() && image.digest.as_ref() != Some(was)).then(|| was.clone())
        };
        let wanted: Vec<(usize, String)> = (0..plan.items.len())
            .filter_map(|i| Some((i, moved(i)?)))
            .collect();
        let fetch = wanted.iter().map(|(i, was)| {
            let repo = crate::util::reference::repository(&plan.items[*i].reference);
            async move { registry.attached_sbom(&format!("{repo}@{was}")).await }
        });
        let found = self.block_on(futures_util::future::join_all(fetch));
        for ((i, was), sbom) in wanted.into_iter().zip(found) {
            let Ok(Some(bytes)) = sbom else { continue };
            let path = dir.join(format!("{}.previous-sbom.json", plan.items[i].name));
            let written = std::fs::write(&path, bytes);
            match written {
                Ok(()) => {
                    summary.images[i].previous_digest = Some(was);
                    summary.images[i].sbom_previous = Some(path.display().to_string());
                }
                Err(e) => {
                    crate::report::note(&format!("strata: cannot write `{}`: {e}", path.display()))
                }
            }
        }
    }

    /// `--attest-dir` with `--push` (or `publish`): once an image's
    /// release tags moved to `digest` (never before, never for a set that
    /// did not publish), its SBOM and provenance are attached to it in the
    /// registry, when they are about that digest. The artifacts' digests
    /// per item of `moved` ((item, digest) pairs).
    pub fn attach(
        &self,
        plan: &Plan,
        moved: &[(usize, String)],
        s: &Settings,
    ) -> Vec<(usize, Vec<String>)> {
        let (Some((dir, format)), Some(registry)) = (&s.attest, &self.registry) else {
            return Vec::new();
        };
        let work = async {
            let mut out = Vec::new();
            for (i, digest) in moved {
                let item = &plan.items[*i];
                let note =
                    |why: &str| crate::report::note(&format!("strata: {}: {why}", item.name));
                if !crate::publish::supply::about(dir, &item.name, digest) {
                    note(&format!(
                        "nothing attached: no provenance in `{}` is about {digest}",
                        dir.display()
                    ));
                    continue;
                }
                let subject = format!(
                    "{}@{digest}",
                    crate::util::reference::repository(&item.reference)
                );
                let mut attached = Vec::new();
                for (file, (kind, media)) in
                    crate::publish::supply::artifacts(dir, &item.name, *format)
                {
                    let Ok(bytes) = std::fs::read(&file) else {
                        continue;
                    };
                    match registry.attach(&subject, kind, media, &bytes).await {
                        Ok(d) => attached.push(d),
                        Err(e) => note(&format!("not attached in the registry: {}", e.message)),
                    }
                }
                out.push((*i, attached));
            }
            out
        };
        self.block_on(work)
    }
}
