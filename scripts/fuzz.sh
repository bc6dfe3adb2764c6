#!/usr/bin/env bash
#! Runs every cargo-fuzz target (bgp-proto's, seeded with the golden vectors; arp-responder's and
#! speaker's, seeded from <project>/fuzz/seeds/<target>/) for a bounded time.
#! Usage: scripts/fuzz.sh SECONDS_PER_TARGET   (default 20). Fails if any target finds a crash;
#! the crashing input is left in <project>/fuzz/artifacts/<target>/ to turn into a unit test.
#! CI runs this from scripts/test.sh: 16 targets (7 bgp-proto, 5 arp-responder, 4 speaker) at 20 s
#! each is 5.3 minutes of fuzzing plus the three fuzz builds (speaker's, with kube and tokio, takes
#! ~6 minutes on 2 cores), about 13 minutes in all. Raise the default only together with that
#! budget; pass a larger value for a local soak.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

# cargo-fuzz needs nightly flags (-Z sanitizer); RUSTC_BOOTSTRAP lets stable rustc accept them.
export RUSTC_BOOTSTRAP=1
shopt -s nullglob globstar
root=$(pwd)
failed=()
count=0

# Runs every target of the cargo-fuzz project in $1, corpora seeded from the files matching $2
# (for every target) and from seeds/<target>/* (for that target only).
fuzz_project() {
    local dir=$1 seeds=$2
    cd "$root/$dir"
    local targets
    targets=$(cargo fuzz list)
    local vectors=($seeds)
    for t in $targets; do
        mkdir -p "corpus/$t"
        for v in "${vectors[@]}"; do
            cp -n "$v" "corpus/$t/$(basename "$(dirname "$v")")-$(basename "$v")"
        done
        for v in "seeds/$t"/*.bin; do
            cp -n "$v" "corpus/$t/seed-$(basename "$v")"
        done
    done
    for t in $targets; do
        echo "== fuzz $dir $t (${secs}s)"
        count=$((count + 1))
        if ! cargo fuzz run "$t" -- -max_total_time="$secs" -print_final_stats=1; then
            failed+=("$dir:$t")
        fi
    done
    cd "$root"
}

# bgp-proto: seeded with the OPEN/UPDATE/... frames captured from real daemons.
fuzz_project bgp-proto/fuzz "../tests/vectors/**/*.bin"
# arp-responder: heartbeat, ARP, NDP, IPv6 and whole-frame (Ethernet, VLAN, decide) decoders of
# untrusted frames from the segment.
fuzz_project arp-responder/fuzz ""
# speaker: BFD control packets, every YAML config, the lb-ipam state file, control-socket
# requests. AYA_BUILD_SKIP: parsing needs no eBPF object, and the datapath's nested bpf build must
# not inherit the sanitizer flags.
AYA_BUILD_SKIP=1 fuzz_project speaker/fuzz ""

if ((${#failed[@]})); then
    echo "fuzz: crashes in: ${failed[*]} (inputs under <project>/artifacts/)" >&2
    exit 1
fi
echo "fuzz: $count targets ran ${secs}s each without a crash"
