#!/usr/bin/env bash
#! Runs every bgp-proto cargo-fuzz target for a bounded time, seeded with the golden vectors.
#! Usage: scripts/fuzz.sh SECONDS_PER_TARGET   (default 60). Fails if any target finds a crash;
#! the crashing input is left in bgp-proto/fuzz/artifacts/<target>/ to turn into a unit test.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# cargo-fuzz needs nightly flags (-Z sanitizer); RUSTC_BOOTSTRAP lets stable rustc accept them.
export RUSTC_BOOTSTRAP=1
cd bgp-proto/fuzz
targets=$(cargo fuzz list)

# Seed each corpus from the captured vectors (OPEN/UPDATE/... frames from real daemons).
shopt -s nullglob globstar
vectors=(../tests/vectors/**/*.bin)
for t in $targets; do
    mkdir -p "corpus/$t"
    for v in "${vectors[@]}"; do
        cp -n "$v" "corpus/$t/$(basename "$(dirname "$v")")-$(basename "$v")"
    done
done

failed=()
for t in $targets; do
    echo "== fuzz $t (${secs}s)"
    if ! cargo fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1; then
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "fuzz: crashes in: ${failed[*]} (inputs under bgp-proto/fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: $(wc -w <<<"$targets") targets ran ${secs}s each without a crash"
