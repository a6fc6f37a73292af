//! Integration tests: one binary, one file per feature; each runs the real
//! `strata` binary on a tree written into a temp folder.

mod common;

mod affected;
mod attest;
mod build;
mod buildkit;
mod ci;
mod ci_act;
mod ci_kube;
mod ci_kube_run;
mod concurrency;
mod defects;
mod devfile;
mod dockerignore_oracle;
mod docs;
mod errors;
mod exit_codes;
mod graph_property;
mod image_tests;
mod incremental;
mod incremental_property;
mod jinja_oracle;
mod kolla;
mod multiarch;
mod output;
mod podman;
mod pool;
mod push;
mod registry;
mod report;
mod retention;
mod sbom;
mod security_update;
mod structure_oracle;
mod sweep;
mod timeline;
mod tls;
mod watch;
