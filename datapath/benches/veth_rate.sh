#!/bin/sh
# veth packet rate, on demand (not in CI): Herald's XDP load balancer (service lookup, Maglev,
# flow LRU, DNAT, Geneve + DSR encapsulation, XDP_TX) against a plain XDP_TX bounce, both native
# XDP on one veth pair between two namespaces, driven by a BPF_PROG_RUN live-frames generator.
# Needs root. See examples/veth_rate.rs for the method.
#   datapath/benches/veth_rate.sh [FRAMES_PER_ROUND] [ROUNDS]
set -eu
cd "$(dirname "$0")/../.."
frames=${1:-2000000}
rounds=${2:-7}
echo "uptime: $(uptime)"
cargo build --release -p datapath --features bench --example veth_rate
target=${CARGO_TARGET_DIR:-target}
exec "$target/release/examples/veth_rate" "$frames" "$rounds"
