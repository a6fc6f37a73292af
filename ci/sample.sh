#!/usr/bin/env bash
# The main job: build the sample image set on the local engine.
# Prepares the busybox base first (ci/setup.sh); extra arguments go to `strata build`.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh
cargo run --release --quiet -- build "$@"
