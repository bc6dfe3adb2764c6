#!/usr/bin/env bash
# Capture golden BGP vectors from real daemons (BIRD 2, FRR, GoBGP, ExaBGP).
#
# Runs as root. Builds five network namespaces (a hub with a bridge, one per daemon), peers the
# daemons in four sessions, drives them through scripted phases (establish, add, withdraw,
# refresh, shutdown), captures every BGP segment on the bridge with tcpdump, then calls
# extract.py to split the TCP streams into messages and decode them independently with tshark.
#
#   S1 frr   <-> bird    iBGP AS 4200000100 over IPv6, IPv4+IPv6, add-path, extended next hop
#   S2 gobgp <-> exabgp  iBGP AS 65003 over IPv4, IPv4+IPv6, add-path
#   S3 frr   <-> gobgp   eBGP 4200000100/65003 over IPv4, IPv4+IPv6, add-path
#   S4 bird  <-> exabgp  eBGP 4200000100/AS_TRANS over IPv4, exabgp without 4-octet AS or GR
#
# Usage: capture.sh [OUT_DIR]   (default: the directory holding this script)
# Namespaces are named hv<PID>-<role>; everything started here is killed by PID on exit.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE}
PY=/usr/bin/python3
TAG="hv$$"
WORK=$(mktemp -d "/tmp/herald-vectors-$$-XXXX")
chmod 755 "$WORK"
ROLES=(frr bird gobgp exabgp)
declare -A IP4=([frr]=10.0.0.1 [bird]=10.0.0.2 [gobgp]=10.0.0.3 [exabgp]=10.0.0.4)
declare -A IP6=([frr]=fd00::1 [bird]=fd00::2 [gobgp]=fd00::3 [exabgp]=fd00::4)
PIDS=()
ns() { echo "$TAG-$1"; }
nsx() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
log() { echo "[capture $(date +%T)] $*" >&2; }

cleanup() {
	local rc=$?
	set +e
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
	for f in "$WORK"/frr/run/*.pid "$WORK"/bird/bird.pid "$WORK"/exabgp/exabgp.pid; do
		[[ -s $f ]] && kill "$(cat "$f")" 2>/dev/null
	done
	sleep 0.5
	for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null; done
	for r in hub "${ROLES[@]}"; do ip netns del "$(ns "$r")" 2>/dev/null; done
	if [[ $rc -ne 0 ]]; then
		log "failed (rc=$rc); logs kept in $WORK"
	elif [[ -z ${KEEP_WORK:-} ]]; then
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

phase() { echo "$(date +%s.%N) $1" >>"$WORK/phases"; log "phase $1"; }

# ---------------------------------------------------------------------------------------------
# Network: hub namespace with bridge br0, one veth per daemon namespace.
ip netns add "$(ns hub)"
nsx hub ip link add br0 type bridge
nsx hub ip link set br0 up
nsx hub ip link set lo up
for r in "${ROLES[@]}"; do
	ip netns add "$(ns "$r")"
	nsx hub ip link add "$r" type veth peer name eth0 netns "$(ns "$r")"
	nsx hub ip link set "$r" master br0 up
	nsx "$r" ip link set lo up
	# No DAD: FRR needs the link-local address before it opens its IPv6 session.
	nsx "$r" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
	nsx "$r" ip addr add "${IP4[$r]}/24" dev eth0
	nsx "$r" ip addr add "${IP6[$r]}/64" dev eth0 nodad
	nsx "$r" ip link set eth0 up
	mkdir -p "$WORK/$r"
done

ip netns exec "$(ns hub)" tcpdump -i br0 -s 0 -U -w "$WORK/capture.pcap" 'tcp port 179' 2>"$WORK/tcpdump.log" &
PIDS+=($!)
for _ in $(seq 50); do grep -q listening "$WORK/tcpdump.log" 2>/dev/null && break; sleep 0.1; done

# ---------------------------------------------------------------------------------------------
# FRR (zebra + bgpd): S1 to bird (iBGP over IPv6), S3 to gobgp (eBGP).
F=$WORK/frr
mkdir -p "$F/run"
cat >"$F/zebra.conf" <<EOF
hostname frr-vec
log file $F/zebra.log
EOF
{
	cat <<EOF
hostname frr-vec
log file $F/bgpd.log
!
route-map TO-BIRD permit 10
 set community 64512:100 64512:200 no-export
 set large-community 4200000100:1:2 4200000100:3:4
 set extcommunity rt 64512:300
 set extcommunity soo 10.0.0.1:7
 set metric 50
 set local-preference 200
!
ip prefix-list BULK seq 5 permit 100.64.0.0/16 le 32
!
route-map TO-GOBGP deny 5
 match ip address prefix-list BULK
!
route-map TO-GOBGP permit 10
 set community 64512:1 65535:65284 blackhole
 set large-community 4200000100:9:9
 set extcommunity rt 4200000100:42
 set metric 30
 set as-path prepend 4200000100 4200000100
!
router bgp 4200000100
 bgp router-id 10.0.0.1
 no bgp ebgp-requires-policy
 no bgp network import-check
 bgp graceful-restart
 bgp long-lived-graceful-restart stale-time 300
 neighbor fd00::2 remote-as internal
 neighbor fd00::2 capability extended-nexthop
 neighbor fd00::2 timers connect 1
 neighbor 10.0.0.3 remote-as external
 neighbor 10.0.0.3 timers connect 1
 !
 address-family ipv4 unicast
  network 198.51.100.0/24
  network 198.51.101.0/24
EOF
	# Enough prefixes that one UPDATE spans several TCP segments.
	for i in $(seq 0 299); do echo "  network 100.64.$((i / 2)).$(((i % 2) * 128))/25"; done
	cat <<EOF
  neighbor fd00::2 activate
  neighbor fd00::2 addpath-tx-all-paths
  neighbor fd00::2 route-map TO-BIRD out
  neighbor 10.0.0.3 addpath-tx-all-paths
  neighbor 10.0.0.3 route-map TO-GOBGP out
 exit-address-family
 !
 address-family ipv6 unicast
  network 2001:db8:100::/48
  network 2001:db8:101::/48
  neighbor fd00::2 activate
  neighbor fd00::2 addpath-tx-all-paths
  neighbor fd00::2 route-map TO-BIRD out
  neighbor 10.0.0.3 activate
  neighbor 10.0.0.3 addpath-tx-all-paths
  neighbor 10.0.0.3 route-map TO-GOBGP out
 exit-address-family
!
EOF
} >"$F/bgpd.conf"
chown -R frr:frr "$F"
frr_start() {
	nsx frr /usr/lib/frr/zebra -d -f "$F/zebra.conf" --vty_socket "$F/run" -i "$F/run/zebra.pid" \
		-z "$F/run/zserv.api" -u frr -g frr
	for _ in $(seq 50); do [[ -S $F/run/zserv.api ]] && break; sleep 0.1; done
	nsx frr /usr/lib/frr/bgpd -d -f "$F/bgpd.conf" --vty_socket "$F/run" -i "$F/run/bgpd.pid" \
		-z "$F/run/zserv.api" -u frr -g frr
}
vty() { nsx frr vtysh --vty_socket "$F/run" "$@"; }

# ---------------------------------------------------------------------------------------------
# BIRD 2: S1 to frr (iBGP over IPv6), S4 to exabgp (eBGP, peer without 4-octet AS).
B=$WORK/bird
cat >"$B/bird.conf" <<'EOF'
router id 10.0.0.2;
hostname "bird-vec";
log "BIRDDIR/bird.log" all;
protocol device { }
ipv4 table master4;
ipv6 table master6;
protocol static st4 { ipv4; route 203.0.113.0/24 unreachable; route 203.0.113.128/25 unreachable; }
protocol static st6 { ipv6; route 2001:db8:200::/48 unreachable; }
protocol static extra4 { disabled; ipv4; route 192.0.2.64/26 unreachable; }
protocol static extra6 { disabled; ipv6; route 2001:db8:2ff::/48 unreachable; }
filter to_frr {
	if proto = "frr" then reject;
	bgp_community.add((64513, 10));
	bgp_community.add((65535, 65282));
	bgp_large_community.add((4200000100, 100, 1));
	bgp_ext_community.add((rt, 64513, 20));
	bgp_ext_community.add((ro, 10.0.0.2, 21));
	bgp_med = 70;
	bgp_local_pref = 300;
	accept;
}
filter to_exa {
	if proto = "exa" then reject;
	bgp_community.add((64513, 30));
	bgp_large_community.add((4200000100, 200, 2));
	bgp_ext_community.add((rt, 64513, 40));
	bgp_med = 90;
	bgp_path.prepend(4200000100);
	accept;
}
protocol bgp frr {
	local fd00::2 as 4200000100;
	neighbor fd00::1 as 4200000100;
	error wait time 1, 5;
	connect delay time 1;
	graceful restart on;
	long lived graceful restart on;
	enable extended messages on;
	advertise hostname on;
	ipv4 { import all; export filter to_frr; add paths on; extended next hop on; next hop self; };
	ipv6 { import all; export filter to_frr; add paths on; next hop self; };
}
protocol bgp exa {
	local 10.0.0.2 as 4200000100;
	neighbor 10.0.0.4 as 65004;
	error wait time 1, 5;
	connect delay time 1;
	graceful restart on;
	ipv4 { import all; export filter to_exa; };
	ipv6 { import all; export filter to_exa; next hop address fd00::2; };
}
EOF
sed -i "s|BIRDDIR|$B|" "$B/bird.conf"
chown -R bird:bird "$B"
bird_start() { nsx bird bird -c "$B/bird.conf" -s "$B/bird.ctl" -P "$B/bird.pid" -u bird -g bird; }
bc() { nsx bird birdc -s "$B/bird.ctl" "$@"; }

# ---------------------------------------------------------------------------------------------
# GoBGP: S2 to exabgp (iBGP), S3 to frr (eBGP).
G=$WORK/gobgp
gobgp_nbr() { # addr peer-as
	cat <<EOF
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$1"
    peer-as = $2
  [neighbors.transport.config]
    local-address = "10.0.0.3"
  [neighbors.timers.config]
    connect-retry = 1
    idle-hold-time-after-reset = 1
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 120
    long-lived-enabled = true
EOF
	for fam in ipv4-unicast ipv6-unicast; do
		cat <<EOF
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "$fam"
    [neighbors.afi-safis.add-paths.config]
      receive = true
      send-max = 4
    [neighbors.afi-safis.mp-graceful-restart.config]
      enabled = true
    [neighbors.afi-safis.long-lived-graceful-restart.config]
      enabled = true
      restart-time = 3600
EOF
	done
}
{
	cat <<EOF
[global.config]
  as = 65003
  router-id = "10.0.0.3"
  local-address-list = ["10.0.0.3", "fd00::3"]
EOF
	gobgp_nbr 10.0.0.4 65003
	gobgp_nbr 10.0.0.1 4200000100
} >"$G/gobgpd.toml"
gobgp_start() {
	ip netns exec "$(ns gobgp)" gobgpd -f "$G/gobgpd.toml" -p --pprof-disable --api-hosts "unix://$G/gobgp.sock" \
		>"$G/gobgpd.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do [[ -S $G/gobgp.sock ]] && break; sleep 0.1; done
}
gb() { nsx gobgp gobgp --target "unix://$G/gobgp.sock" "$@"; }

# ---------------------------------------------------------------------------------------------
# ExaBGP: S2 to gobgp (iBGP), S4 to bird (eBGP, no 4-octet AS, so bird must use AS_TRANS).
E=$WORK/exabgp
mkfifo "$E/api.fifo"
cat >"$E/feed.sh" <<EOF
#!/bin/sh
# Holds the FIFO open read-write so writers come and go without EOF.
exec 3<>"$E/api.fifo"
exec cat <&3
EOF
chmod 755 "$E/feed.sh"
cat >"$E/exabgp.conf" <<EOF
process feed {
	run $E/feed.sh;
	encoder text;
}
neighbor 10.0.0.3 {
	router-id 10.0.0.4;
	local-address 10.0.0.4;
	local-as 65003;
	peer-as 65003;
	host-name exa-vec;
	domain-name example.net;
	group-updates false;
	capability {
		route-refresh;
		graceful-restart 120;
		add-path send/receive;
		extended-message enable;
	}
	family { ipv4 unicast; ipv6 unicast; }
	add-path { ipv4 unicast; ipv6 unicast; }
	api { processes [ feed ]; }
	static {
		route 192.0.2.0/25 next-hop self origin igp med 10 local-preference 250 community [ 65003:1 no-export no-advertise ] large-community [ 65003:1:1 65003:2:2 ] extended-community [ target:65003:5 origin:10.0.0.4:6 ] path-information 0.0.0.1;
		route 192.0.2.0/25 next-hop self origin egp med 11 as-path [ 64600 64601 ( 64610 64611 ) ] atomic-aggregate aggregator ( 64601:10.9.9.9 ) originator-id 10.0.0.44 cluster-list [ 10.0.0.45 10.0.0.46 ] path-information 0.0.0.2;
		route 2001:db8:400::/48 next-hop fd00::4 origin incomplete community [ 65003:6 ] attribute [ 0x19 0xc0 0x000220010db8000000000000000000000004000a ] path-information 0.0.0.7;
	}
}
neighbor 10.0.0.2 {
	router-id 10.0.0.4;
	local-address 10.0.0.4;
	local-as 65004;
	peer-as 23456;
	host-name exa-vec;
	domain-name example.net;
	capability {
		route-refresh;
		asn4 disable;
	}
	family { ipv4 unicast; ipv6 unicast; }
	api { processes [ feed ]; }
	static {
		route 192.0.2.128/25 next-hop self community [ 65004:1 ] large-community [ 65004:1:1 ] extended-community [ target:65004:7 ] as-path [ 65004 64700 ];
		route 192.0.2.192/26 next-hop self as-path [ 65004 ( 64701 64702 ) ] atomic-aggregate aggregator ( 64701:10.0.0.4 );
		route 2001:db8:401::/48 next-hop fd00::4 med 5 community [ 65004:2 ];
	}
}
EOF
exabgp_start() {
	ip netns exec "$(ns exabgp)" env exabgp.daemon.user=root exabgp.api.cli=false exabgp.log.destination="$E/exabgp.log" \
		exabgp.daemon.pid="$E/exabgp.pid" exabgp.log.level=INFO \
		exabgp "$E/exabgp.conf" >"$E/stdout.log" 2>&1 &
	PIDS+=($!)
}
exa() { echo "$*" >"$E/api.fifo"; }

# ---------------------------------------------------------------------------------------------
established_all() {
	local n
	n=$(vty -c 'show bgp summary json' 2>/dev/null | grep -c '"state":"Established"' || true)
	[[ $n -ge 4 ]] || return 1 # 2 peers x 2 families
	bc show protocols 2>/dev/null | grep -E '^(frr|exa) ' | grep -c Established | grep -qx 2 || return 1
	[[ $(gb neighbor 2>/dev/null | grep -c Establ) -ge 2 ]] || return 1
}

phase establish
frr_start
bird_start
gobgp_start
exabgp_start
ok=
for _ in $(seq 120); do
	if established_all; then ok=1; break; fi
	sleep 1
done
if [[ -z $ok ]]; then
	vty -c 'show bgp summary' >&2 || true
	bc show protocols >&2 || true
	gb neighbor >&2 || true
	log "sessions did not come up"
	exit 1
fi
log "all sessions established"
sleep 6 # initial UPDATEs and End-of-RIB markers

phase add
vty -c 'configure terminal' -c 'router bgp 4200000100' -c 'address-family ipv6 unicast' \
	-c 'network 2001:db8:1ff::/48'
bc enable extra4 >/dev/null
bc enable extra6 >/dev/null
gb global rib add -a ipv4 203.0.113.0/24 origin igp nexthop 10.0.0.3 med 20 local-pref 150 \
	community 65003:10,no-export large-community 65003:10:1 identifier 1
gb global rib add -a ipv4 203.0.113.0/24 origin igp nexthop 10.0.0.3 med 25 local-pref 150 \
	community 65003:11 identifier 2
gb global rib add -a ipv6 2001:db8:300::/48 origin igp nexthop fd00::3 community 65003:12 \
	large-community 65003:12:1
exa "neighbor 10.0.0.3 announce route 192.0.2.200/32 next-hop self community [ 65003:99 ] path-information 0.0.0.9"
exa "neighbor 10.0.0.2 announce route 2001:db8:4ff::/48 next-hop fd00::4 community [ 65004:99 ]"
sleep 4

phase withdraw
vty -c 'configure terminal' -c 'router bgp 4200000100' -c 'address-family ipv4 unicast' \
	-c 'no network 198.51.101.0/24'
vty -c 'configure terminal' -c 'router bgp 4200000100' -c 'address-family ipv6 unicast' \
	-c 'no network 2001:db8:1ff::/48'
bc disable extra4 >/dev/null
bc disable extra6 >/dev/null
gb global rib del -a ipv4 203.0.113.0/24 identifier 2
gb global rib del -a ipv6 2001:db8:300::/48
exa "neighbor 10.0.0.3 withdraw route 192.0.2.200/32 next-hop self path-information 0.0.0.9"
exa "neighbor 10.0.0.2 withdraw route 2001:db8:4ff::/48 next-hop fd00::4"
sleep 4

phase refresh
vty -c 'clear bgp * soft in'
sleep 2
bc reload in frr >/dev/null
bc reload in exa >/dev/null
sleep 2
gb neighbor 10.0.0.1 softresetin
gb neighbor 10.0.0.4 softresetin
sleep 2
exa "neighbor 10.0.0.3 announce route-refresh ipv4 unicast"
exa "neighbor 10.0.0.2 announce route-refresh ipv6 unicast"
sleep 4

phase shutdown
# One NOTIFICATION per daemon, each on a different session. ExaBGP closes GR sessions silently,
# so its session to BIRD is configured without graceful restart.
exa "neighbor 10.0.0.2 teardown 2"
bc disable frr '"herald vectors: bird maintenance"' >/dev/null
vty -c 'configure terminal' -c 'router bgp 4200000100' \
	-c 'neighbor 10.0.0.3 shutdown message herald vectors: frr maintenance'
# `disable --reason` sends a bare Cease in GoBGP 3.10; the deprecated `shutdown` sends the text.
gb neighbor 10.0.0.4 shutdown --reason "herald vectors: gobgp maintenance"
sleep 3
phase end

# ---------------------------------------------------------------------------------------------
{
	echo "{"
	echo "  \"bird\": \"$(bird --version 2>&1 | awk '{print $3}')\","
	echo "  \"frr\": \"$(/usr/lib/frr/bgpd --version 2>&1 | awk 'NR==1{print $3}')\","
	echo "  \"gobgp\": \"$(gobgpd --version 2>&1 | awk '{print $3}')\","
	echo "  \"exabgp\": \"$(exabgp --version 2>&1 | awk '/ExaBGP/{print $3}')\","
	echo "  \"tshark\": \"$(tshark --version | awk 'NR==1{print $3}')\""
	echo "}"
} >"$WORK/versions.json"

kill "${PIDS[0]}" # tcpdump: flush and close the pcap
sleep 0.5
$PY "$HERE/extract.py" --pcap "$WORK/capture.pcap" --phases "$WORK/phases" \
	--versions "$WORK/versions.json" --out "$OUT" \
	--host frr="${IP4[frr]},${IP6[frr]}" --host bird="${IP4[bird]},${IP6[bird]}" \
	--host gobgp="${IP4[gobgp]},${IP6[gobgp]}" --host exabgp="${IP4[exabgp]},${IP6[exabgp]}"
log "done: vectors in $OUT"
