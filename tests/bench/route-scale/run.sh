#!/usr/bin/env bash
# Route-scale benchmark (issue 4 item 6). On demand, not in CI; needs root.
#
# For each case and each DUT (device under test), builds three fresh network namespaces
#   inj (10.0.1.1, AS 65001) -- dut (10.0.1.2 | 10.0.2.2, AS 65002) -- rx (10.0.2.1, AS 65003)
# and runs herald-route-scale, which listens as the receiver, starts the DUT, injects N IPv4
# prefixes as pre-encoded UPDATEs and measures first UPDATE -> all N at the receiver, withdrawal
# time, the DUT's peak RSS (VmHWM) and CPU seconds. Prints a table with ratios against BIRD.
#
# Usage: run.sh [CASE...]      CASE in: 100k 1m churn10k   (default: 100k churn10k 1m)
# Env:   DUTS="bird frr gobgp speaker"  TIMEOUT=600  SPEAKER=path/to/herald  KEEP=1 (keep logs)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
bin=${BIN:-$target/release/herald-route-scale}
speaker=${SPEAKER:-$target/release/herald}
duts=${DUTS:-"bird frr gobgp speaker"}
timeout=${TIMEOUT:-600}
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(100k churn10k 1m)

[ "$(id -u)" -eq 0 ] || { echo "run.sh needs root (network namespaces)" >&2; exit 1; }
[ -x "$bin" ] || (cd "$root" && cargo build --release -p herald-route-scale >&2)

work=$(mktemp -d /tmp/route-scale.XXXXXX)
chmod 755 "$work"
results="$work/results.jsonl"
: > "$results"
tag="rs$$"
ns_inj="$tag-inj" ns_dut="$tag-dut" ns_rx="$tag-rx"

cleanup_ns() {
  for ns in "$ns_inj" "$ns_dut" "$ns_rx"; do
    if ip netns list | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
      sleep 0.2
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
}
cleanup() {
  cleanup_ns
  if [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "logs kept in $work" >&2; fi
}
trap cleanup EXIT

make_ns() {
  cleanup_ns
  for ns in "$ns_inj" "$ns_dut" "$ns_rx"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip link add eth0 netns "$ns_inj" type veth peer name eth0 netns "$ns_dut"
  ip link add eth1 netns "$ns_dut" type veth peer name eth0 netns "$ns_rx"
  ip -n "$ns_inj" addr add 10.0.1.1/24 dev eth0
  ip -n "$ns_dut" addr add 10.0.1.2/24 dev eth0
  ip -n "$ns_dut" addr add 10.0.2.2/24 dev eth1
  ip -n "$ns_rx" addr add 10.0.2.1/24 dev eth0
  for l in "$ns_inj eth0" "$ns_dut eth0" "$ns_dut eth1" "$ns_rx eth0"; do
    set -- $l
    ip -n "$1" link set "$2" up
  done
}

# Writes the DUT's config into $1 and prints the shell command that runs it in the foreground.
dut_cmd() {
  local dut=$1 dir=$2
  mkdir -p "$dir"
  chmod 777 "$dir"
  case $dut in
    bird)
      cat > "$dir/bird.conf" <<CONF
router id 10.0.0.2;
protocol device { }
protocol bgp injector {
  local 10.0.1.2 as 65002; neighbor 10.0.1.1 as 65001; passive on;
  error wait time 1, 5; connect delay time 1; connect retry time 1;
  ipv4 { import all; export none; };
}
protocol bgp receiver {
  local 10.0.2.2 as 65002; neighbor 10.0.2.1 as 65003;
  error wait time 1, 5; connect delay time 1; connect retry time 1;
  ipv4 { import none; export all; };
}
CONF
      echo "exec bird -f -c $dir/bird.conf -s $dir/bird.ctl -P $dir/bird.pid"
      ;;
    frr)
      cat > "$dir/zebra.conf" <<CONF
hostname dut
CONF
      cat > "$dir/bgpd.conf" <<CONF
hostname dut
log file $dir/bgpd.log
router bgp 65002
 bgp router-id 10.0.0.2
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor 10.0.1.1 remote-as 65001
 neighbor 10.0.1.1 passive
 neighbor 10.0.2.1 remote-as 65003
 neighbor 10.0.2.1 timers connect 1
 address-family ipv4 unicast
  neighbor 10.0.1.1 activate
  neighbor 10.0.2.1 activate
 exit-address-family
CONF
      chown -R frr:frr "$dir"
      # zebra for connected routes (next-hop validation); bgpd -n: no FIB install, so the
      # measurement is BGP in, BGP out (as for the other DUTs).
      echo "/usr/lib/frr/zebra -d -f $dir/zebra.conf -i $dir/zebra.pid -z $dir/zserv.api --vty_socket $dir -u frr -g frr; sleep 0.5; exec /usr/lib/frr/bgpd -n -f $dir/bgpd.conf -i $dir/bgpd.pid -z $dir/zserv.api --vty_socket $dir -u frr -g frr"
      ;;
    gobgp)
      cat > "$dir/gobgpd.toml" <<CONF
[global.config]
  as = 65002
  router-id = "10.0.0.2"
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.1.1"
    peer-as = 65001
  [neighbors.transport.config]
    passive-mode = true
[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.0.2.1"
    peer-as = 65003
  [neighbors.timers.config]
    connect-retry = 1
    idle-hold-time-after-reset = 1
CONF
      echo "exec gobgpd -f $dir/gobgpd.toml -p --pprof-disable --api-hosts unix://$dir/gobgp.sock"
      ;;
    speaker)
      # `herald agent` with import-all and route-server mode (re-advertises received routes);
      # reported as not available when the binary is missing or refuses this config.
      [ -x "$speaker" ] || return 1
      cat > "$dir/speaker.yaml" <<CONF
node: { name: dut, routerId: 10.0.0.2 }
bgp:
  localASN: 65002
  importPolicy: accept-all
  routeServer: true
  peers:
    # The benchmark's 1M-prefix feed is above the default per-family limit (100k).
    - { address: 10.0.1.1, asn: 65001, passive: true, maxPrefixes: 0 }
    - { address: 10.0.2.1, asn: 65003, maxPrefixes: 0, timers: { connectRetryTimeSeconds: 1 } }
CONF
      "$speaker" check --config "$dir/speaker.yaml" >/dev/null 2>&1 || return 1
      echo "exec $speaker agent --config $dir/speaker.yaml"
      ;;
  esac
}

declare -A case_n=([100k]=100000 [1m]=1000000 [churn10k]=10000)
declare -A case_len=([100k]=24 [1m]=24 [churn10k]=32)
declare -A case_per=([100k]=800 [1m]=800 [churn10k]=1)

for c in "${cases[@]}"; do
  [ -n "${case_n[$c]:-}" ] || { echo "unknown case $c" >&2; exit 1; }
  for dut in $duts; do
    dir="$work/$c-$dut"
    if ! cmd=$(dut_cmd "$dut" "$dir"); then
      echo "{\"case\": \"$c\", \"dut\": \"$dut\", \"error\": \"not available\"}" >> "$results"
      echo "$c $dut: not available" >&2
      continue
    fi
    make_ns
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "$c $dut: running (load $load)" >&2
    out=$("$bin" --label "$dut" --inj-ns "$ns_inj" --dut-ns "$ns_dut" --rx-ns "$ns_rx" \
      --dut-cmd "$cmd" --dut-log "$dir/dut.log" --prefixes "${case_n[$c]}" \
      --len "${case_len[$c]}" --per-update "${case_per[$c]}" --timeout "$timeout" || true)
    echo "$out" | /usr/bin/python3 -c "
import json, sys
r = json.loads(sys.stdin.read() or '{\"error\": \"no output\"}')
r['case'] = '$c'; r['dut'] = '$dut'; r['load'] = float('$load')
print(json.dumps(r))" >> "$results"
    tail -n1 "$results" >&2
    cleanup_ns
  done
done

/usr/bin/python3 - "$results" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'case':<9} {'DUT':<8} {'announce s':>10} {'withdraw s':>10} {'peak RSS MiB':>12} {'CPU s':>7} {'load':>5}  {'x BIRD (time/RSS/CPU)':>22}  {'harness CPU s':>13}")
for case in dict.fromkeys(r['case'] for r in rows):
    bird = next((r for r in rows if r['case'] == case and r['dut'] == 'bird' and 'error' not in r), None)
    for r in (r for r in rows if r['case'] == case):
        if 'error' in r:
            msg = 'not available' if r['error'] == 'not available' else 'error: ' + r['error'][:60]
            print(f"{case:<9} {r['dut']:<8} {msg}")
            continue
        rss = r['vmhwm_kib'] / 1024
        ratio = ''
        if bird:
            cpu = f"{r['cpu_s'] / bird['cpu_s']:.1f}" if bird['cpu_s'] > 0 else '-'
            ratio = f"{r['announce_s'] / bird['announce_s']:.2f} / {r['vmhwm_kib'] / bird['vmhwm_kib']:.2f} / {cpu}"
        harness = r.get('harness_cpu_announce_s', float('nan'))
        print(f"{case:<9} {r['dut']:<8} {r['announce_s']:>10.3f} {r['withdraw_s']:>10.3f} {rss:>12.1f} {r['cpu_s']:>7.2f} {r.get('load', 0):>5.1f}  {ratio:>22}  {harness:>13.2f}")
PY
