//! Stage 1, the tree: what is on disk before anything is rendered.
//! Takes the tree's root and the command line's `--set`, `--var` and
//! `--var-file`; gives `strata.yaml` as one typed `Config`, the images
//! found under the image folders (`discover`: each with its folder and
//! `image.yaml`), the devfiles that stand for images, the platforms each
//! image is built for, its image test files (container-structure-test
//! YAML, checked now, run after the build), and every name Docker will be handed, checked
//! before any engine is asked. Render (stage 2) reads the templates these
//! images name.
//! Knows nothing of templates, Dockerfile syntax or engines.

pub mod config;
pub mod devfile;
pub mod discover;
pub mod names;
pub mod platforms;
pub mod testfiles;
