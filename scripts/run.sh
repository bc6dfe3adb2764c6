#!/usr/bin/env bash
#! Sets up this machine and runs Herald's main job with the embedded default (no Kubernetes):
#! `lab demo` brings up the bgp-ecmp topology in network namespaces (FRR ToR, three nodes running
#! `herald agent` (BGP, lb-ipam, XDP/Geneve-DSR datapath), their pods, a client), waits for the BGP sessions,
#! shows the service IP, the ToR's ECMP route to it, HTTP requests from the client answered by the
#! pods through it and the DSR proof (or "not yet available: <what>"),
#! then tears the lab down. Extra arguments go to `lab demo` (`--keep` leaves the lab up). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -p herald-lab -p speaker -p arp-responder
# The runner finds herald and herald-l2 beside `lab` in the same target directory.
exec "${CARGO_TARGET_DIR:-target}/release/lab" demo "$@"
