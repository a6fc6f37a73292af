#!/usr/bin/env bash
# The whole test suite: prepares the engine, the busybox base and the registry
# (ci/setup.sh, idempotent), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
set -a; . target/ci/registry.env; set +a
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
# Benchmarks are compiled (and linted) above by clippy; they run with `cargo bench`.
cargo test --lib --bins --tests
