#!/usr/bin/env bash
#! Sets up this machine and runs every Herald test: unit, property, golden-vector, fuzz (bounded)
#! and end-to-end tests in network namespaces. Needs root (namespaces, eBPF).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Property tests draw from a fixed seed so a CI result can be reproduced locally (unset it to explore
# new cases). lb-ipam's allocator_props has a known, rare failure under other seeds: after a
# rebuild, an unsatisfied dual-stack service may report a different family's reason (tracked on
# the lb-ipam issue).
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-1}"

echo "== cargo test (workspace)"
cargo test --workspace

echo "== fuzzing (bounded)"
bash scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
