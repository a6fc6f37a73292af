#!/usr/bin/env bash
# The main job: build the sample image set on the local engine.
# Prepares the engine and the busybox base first (`ci/setup.sh base`); extra
# arguments go to `strata build`.
set -euo pipefail
cd "$(dirname "$0")/.."
ci/setup.sh base
cargo run --release --quiet -- build "$@"
