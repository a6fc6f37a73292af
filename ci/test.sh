#!/usr/bin/env bash
# The whole test suite: prepares the engine, the busybox base and the registry
# (ci/setup.sh, idempotent), checks formatting and lints, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
# The engine pool's two extra engines are stopped by their pid files at the
# end, whatever the outcome (ci/setup.sh starts them again next time).
trap 'ci/engine.sh stop pool-1; ci/engine.sh stop pool-2' EXIT
set -a; . target/ci/registry.env; set +a
cargo fmt --all -- --check
cargo clippy --all-targets --quiet -- -D warnings
# The user guide builds (its links and YAML blocks are checked by tests/docs.rs).
"$STRATA_TEST_MDBOOK" build docs >/dev/null
# Benchmarks are compiled (and linted) above by clippy; they run with `cargo bench`.
cargo test --lib --bins --tests
