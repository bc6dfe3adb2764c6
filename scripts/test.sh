#!/usr/bin/env bash
#! Sets up this machine and runs every Herald test: unit, property, golden-vector, fuzz (bounded)
#! and end-to-end tests in network namespaces. Needs root (namespaces, eBPF).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== cargo test (workspace)"
cargo test --workspace

echo "== fuzzing (bounded)"
# fuzz.sh owns the per-target default (20 s, sized for CI); FUZZ_SECONDS overrides it.
bash scripts/fuzz.sh ${FUZZ_SECONDS:+"$FUZZ_SECONDS"}
