#!/usr/bin/env bash
#! Sets up this machine and runs Herald's main job with the embedded default (no Kubernetes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo run --release --locked -p bgp-proto --example decode_sessions -- bgp-proto/tests/vectors
