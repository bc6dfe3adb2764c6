#!/usr/bin/python3
"""Split a tcpdump capture of BGP sessions into golden vectors plus an independent decode.

Input: the pcap written by capture.sh, a phase log ("<unix time> <phase>" lines), the daemon
versions and the address of each daemon. Output, under --out:

  <daemon>/<NNN>-<type>-to-<peer>[-<what>].bin   raw message bytes, 19-byte header included
  manifest.json                                  per file: who sent it, in which scenario, and
                                                 what tshark (not our codec) decoded from it

TCP streams are reassembled here from the sequence numbers (retransmissions dropped, messages
spanning segments joined, segments carrying several messages split). tshark decodes the same pcap
with its own reassembly; its messages are matched to ours per TCP direction, in order, and each
pair must agree on length and type or the run fails.
"""

import argparse
import collections
import json
import os
import struct
import subprocess
import sys

from scapy.all import IP, IPv6, TCP, PcapReader  # Debian python3-scapy

TYPES = {1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh"}
AFI = {1: "ipv4", 2: "ipv6"}
MARKER = b"\xff" * 16


def fail(msg):
    print(f"extract.py: {msg}", file=sys.stderr)
    sys.exit(1)


# ----------------------------------------------------------------------------------------------
# TCP reassembly and BGP framing.

def read_flows(pcap):
    """Return {(src, sport, dst, dport): [(seq, payload, ts)]} and the initial sequence numbers."""
    flows = collections.defaultdict(list)
    isn = {}
    with PcapReader(pcap) as reader:
        for pkt in reader:
            if TCP not in pkt:
                continue
            ip = pkt[IP] if IP in pkt else pkt[IPv6] if IPv6 in pkt else None
            if ip is None:
                continue
            tcp = pkt[TCP]
            key = (ip.src, tcp.sport, ip.dst, tcp.dport)
            if tcp.flags & 0x02:  # SYN: data starts at ISN + 1
                isn[key] = (tcp.seq + 1) & 0xFFFFFFFF
            payload = bytes(tcp.payload)
            if payload:
                flows[key].append((tcp.seq, payload, float(pkt.time)))
    return flows, isn


def reassemble(segments, start):
    """Join segments into one byte stream; returns (bytes, [(end_offset, ts)])."""
    data = bytearray()
    ends = []
    pending = sorted(segments, key=lambda s: ((s[0] - start) & 0xFFFFFFFF, s[2]))
    for seq, payload, ts in pending:
        off = (seq - start) & 0xFFFFFFFF
        if off + len(payload) <= len(data):
            continue  # retransmission of bytes we already have
        if off > len(data):
            fail(f"gap in TCP stream at offset {len(data)} (next segment at {off})")
        data += payload[len(data) - off:]
        ends.append((len(data), ts))
    return bytes(data), ends


def split_messages(data, ends):
    """Cut a BGP byte stream into messages; each gets the time its last byte arrived."""
    out = []
    off = 0
    while off + 19 <= len(data):
        if data[off:off + 16] != MARKER:
            fail(f"no BGP marker at stream offset {off}")
        (length,) = struct.unpack("!H", data[off + 16:off + 18])
        if length < 19 or off + length > len(data):
            break
        last = off + length
        ts = next(t for end, t in ends if end >= last)
        out.append((data[off:last], ts))
        off = last
    if off != len(data):
        print(f"extract.py: {len(data) - off} trailing bytes ignored (capture ended mid-message)",
              file=sys.stderr)
    return out


# ----------------------------------------------------------------------------------------------
# tshark's view of the same capture.

def tshark_messages(pcap):
    """Return {(src, sport, dst, dport): [bgp layer dict, ...]} in stream order."""
    out = subprocess.run(
        ["tshark", "-r", pcap, "-Y", "bgp", "-T", "json", "-x", "--no-duplicate-keys",
         "-o", "tcp.desegment_tcp_streams:TRUE"],
        check=True, capture_output=True, text=True).stdout
    per_flow = collections.defaultdict(list)
    for frame in json.loads(out):
        layers = frame["_source"]["layers"]
        ip = layers.get("ip") or layers.get("ipv6")
        src = ip.get("ip.src") or ip.get("ipv6.src")
        dst = ip.get("ip.dst") or ip.get("ipv6.dst")
        tcp = layers["tcp"]
        key = (src, int(tcp["tcp.srcport"]), dst, int(tcp["tcp.dstport"]))
        bgp = layers["bgp"]
        per_flow[key].extend(bgp if isinstance(bgp, list) else [bgp])
    return per_flow


def items(node):
    """Flatten tshark's 'one value or a list of values' convention."""
    if node is None:
        return []
    return node if isinstance(node, list) else [node]


def find(node, key):
    """All values of `key` anywhere below `node`, in document order."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.extend(items(v))
            else:
                found.extend(find(v, key))
    elif isinstance(node, list):
        for v in node:
            found.extend(find(v, key))
    return found


def first_of(node, *keys):
    """The first value found under any of `keys` (tshark names some fields per attribute)."""
    for k in keys:
        vals = find(node, k)
        if vals:
            return vals[0]
    fail(f"none of {keys} in {node}")


def raws(v):
    """tshark `_raw` entries are [hex, offset, len, mask, type], or a list of those."""
    if not v:
        return []
    return [v] if isinstance(v[0], str) else list(v)


def find_raw_entries(node, key):
    """All `key` (a `..._raw` name) entries below `node`, in document order."""
    found = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found.extend(raws(v))
            else:
                found.extend(find_raw_entries(v, key))
    elif isinstance(node, list):
        for v in node:
            found.extend(find_raw_entries(v, key))
    return found


def find_raw(node, key):
    """The hex strings of all `key` entries below `node`, in document order."""
    return [r[0] for r in find_raw_entries(node, key)]


def raw_hex(raw):
    """The hex string of one tshark `_raw` entry."""
    return raw[0] if raw and isinstance(raw[0], str) else None


def prefixes(node):
    """NLRI entries below a tshark nlri/withdrawn subtree as {prefix, path_id?}."""
    out = []

    def visit(n):
        if isinstance(n, list):
            for x in n:
                visit(x)
            return
        if not isinstance(n, dict):
            return
        if "bgp.prefix_length" in n:
            addr = next((v for k, v in n.items() if k.endswith("_prefix") and not k.endswith("_raw")),
                        None)
            if addr is None:
                fail(f"prefix without address in {n}")
            entry = {"prefix": f"{addr}/{n['bgp.prefix_length']}"}
            if "bgp.nlri_path_id" in n:
                entry["path_id"] = int(n["bgp.nlri_path_id"])
            out.append(entry)
            return
        for k, v in n.items():
            if not k.endswith("_raw"):
                visit(v)

    visit(node)
    return out


def as_path(attr):
    segs = []
    for seg in items(attr.get("bgp.update.path_attribute.as_path_segment")):
        p = "bgp.update.path_attribute.as_path_segment."
        asns = [int(a) for a in items(seg.get(p + "as4") or seg.get(p + "as2"))]
        segs.append({"type": int(seg[p + "type"]), "asns": asns,
                     "as4": p + "as4" in seg})
    return segs


def decode_attribute(attr, raw):
    p = "bgp.update.path_attribute."
    code = int(attr[p + "type_code"])
    flags = int(attr[p + "flags"], 16)
    out = {"type": code, "flags": flags, "raw": raw}
    if code == 1:
        out["origin"] = int(attr[p + "origin"])
    elif code in (2, 17):
        out["segments"] = as_path(attr)
    elif code == 3:
        out["next_hop"] = attr[p + "next_hop"]
    elif code == 4:
        out["med"] = int(attr[p + "multi_exit_disc"])
    elif code == 5:
        out["local_pref"] = int(attr[p + "local_pref"])
    elif code in (7, 18):
        out["aggregator_as"] = int(first_of(attr, p + "aggregator_as", "bgp.update.path_attribute.as4_aggregator_as"))
        out["aggregator_addr"] = first_of(attr, p + "aggregator_origin",
                                          "bgp.update.path_attribute.as4_aggregator_origin")
    elif code == 9:
        out["originator_id"] = attr[p + "originator_id"]
    elif code == 10:
        out["cluster_list"] = find(attr, "bgp.path_attribute.cluster_id")
    elif code == 8:
        # tshark files well-known communities under another name; the raw entries' offsets
        # restore the wire order. Rendered as "high:low".
        entries = find_raw_entries(attr, p + "community_raw") + \
            find_raw_entries(attr, p + "community_wellknown_raw")
        out["communities"] = [f"{int(r[0][:4], 16)}:{int(r[0][4:], 16)}"
                              for r in sorted(entries, key=lambda r: r[1])]
    elif code == 16:
        out["ext_communities"] = find_raw(attr, "bgp.ext_community_raw")
    elif code == 32:
        trees = items(attr.get("bgp.large_communities_tree"))
        out["large_communities"] = [
            f"{t['bgp.large_communities.ga']}:{t['bgp.large_communities.ldp1']}:"
            f"{t['bgp.large_communities.ldp2']}" for t in trees]
    elif code in (14, 15):
        kind = "mp_reach_nlri" if code == 14 else "mp_unreach_nlri"
        out["afi"] = int(attr[p + kind + ".afi"])
        out["safi"] = int(attr[p + kind + ".safi"])
        if code == 14:
            tree = attr.get(p + "mp_reach_nlri.next_hop_tree", {})
            hops = [v for k, v in tree.items() if not k.endswith("_raw")] if tree else []
            out["next_hops"] = [h for v in hops for h in items(v)] or \
                [attr.get(p + "mp_reach_nlri.next_hop")]
            out["next_hop_raw"] = raw_hex(attr.get(p + "mp_reach_nlri.next_hop_raw"))
        out["nlri"] = prefixes(attr.get(p + kind, {}))
    return out


def decode(bgp):
    """The manifest's 'tshark' object for one message."""
    mtype = int(bgp["bgp.type"])
    out = {"length": int(bgp["bgp.length"]), "type": mtype}
    if mtype == 1:
        out["version"] = int(bgp["bgp.open.version"])
        out["my_as"] = int(bgp["bgp.open.myas"])
        out["hold_time"] = int(bgp["bgp.open.holdtime"])
        out["bgp_id"] = bgp["bgp.open.identifier"]
        caps = []
        caps_found, caps_raw = find(bgp, "bgp.cap"), find_raw(bgp, "bgp.cap_raw")
        if len(caps_found) != len(caps_raw):
            fail("tshark capability list and raw list differ")
        for cap, raw in zip(caps_found, caps_raw):
            c = {"code": int(cap["bgp.cap.type"]), "length": int(cap["bgp.cap.length"]),
                 "raw": raw}
            fields = {}
            for k, v in cap.items():
                if k.endswith("_raw") or k.endswith("_tree") or k in ("bgp.cap.type", "bgp.cap.length"):
                    continue
                fields[k.removeprefix("bgp.cap.")] = v
            c["fields"] = fields
            caps.append(c)
        out["capabilities"] = caps
    elif mtype == 2:
        out["withdrawn"] = prefixes(bgp.get("bgp.update.withdrawn_routes", {}))
        attrs_node = bgp.get("bgp.update.path_attributes", {})
        attrs = items(attrs_node.get("bgp.update.path_attribute"))
        attr_raws = [r[0] for r in raws(attrs_node.get("bgp.update.path_attribute_raw"))] \
            if attrs_node else []
        if len(attrs) != len(attr_raws):
            fail("tshark attribute list and raw list differ")
        out["attributes"] = [decode_attribute(a, r) for a, r in zip(attrs, attr_raws)]
        out["nlri"] = prefixes(bgp.get("bgp.update.nlri", {}))
    elif mtype == 3:
        out["code"] = int(bgp["bgp.notify.major_error"])
        sub = [v for k, v in bgp.items() if k.startswith("bgp.notify.minor_error") and
               not k.endswith("_raw")]
        out["subcode"] = int(sub[-1]) if sub else None
        if "bgp.notify.communication" in bgp:
            out["shutdown_message"] = bgp["bgp.notify.communication"]
        if "bgp.notify.minor_data" in bgp:
            out["data"] = bgp["bgp.notify.minor_data"].replace(":", "")
    elif mtype == 5:
        out["afi"] = int(bgp["bgp.route_refresh.afi"])
        out["safi"] = int(bgp["bgp.route_refresh.safi"])
        out["subtype"] = int(bgp.get("bgp.route_refresh.subtype", 0))
    return out


# ----------------------------------------------------------------------------------------------
# Naming.

def what(msg, dec):
    """A short description for the file name."""
    mtype = msg[18]
    if mtype == 2:
        attrs = dec["attributes"]
        codes = {a["type"] for a in attrs}
        if len(msg) == 23:
            return "eor-ipv4"
        if codes == {15} and not attrs[0]["nlri"] and not dec["withdrawn"] and not dec["nlri"]:
            return f"eor-{AFI.get(attrs[0]['afi'], 'afi' + str(attrs[0]['afi']))}"
        parts = []
        # IPv4 carried in MP_REACH/MP_UNREACH (extended next hop) is "ipv4-mp".
        mp = {1: "ipv4-mp", 2: "ipv6"}
        if dec["nlri"]:
            parts.append("ipv4")
        for a in attrs:
            if a["type"] == 14:
                parts.append(mp.get(a["afi"], "mp"))
        if dec["withdrawn"]:
            parts.append("withdraw-ipv4")
        for a in attrs:
            if a["type"] == 15:
                parts.append("withdraw-" + mp.get(a["afi"], "mp"))
        if any(a["type"] == 17 for a in attrs):
            parts.append("as4path")
        return "-".join(parts) or "empty"
    if mtype == 3:
        return f"{dec['code']}-{dec['subcode']}"
    if mtype == 5:
        sub = {0: "", 1: "-borr", 2: "-eorr"}.get(dec["subtype"], f"-sub{dec['subtype']}")
        return AFI.get(dec["afi"], "afi") + sub
    return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", required=True)
    ap.add_argument("--phases", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--host", action="append", required=True, help="name=addr[,addr]")
    args = ap.parse_args()

    host = {}
    for h in args.host:
        name, addrs = h.split("=", 1)
        for a in addrs.split(","):
            host[a] = name
    phases = []
    with open(args.phases) as f:
        for line in f:
            t, name = line.split()
            phases.append((float(t), name))

    def phase_at(ts):
        name = phases[0][1]
        for t, n in phases:
            if ts >= t:
                name = n
        return name

    flows, isn = read_flows(args.pcap)
    shark = tshark_messages(args.pcap)
    msgs = []  # (ts, sender, peer, bytes, decoded)
    for key, segs in flows.items():
        src, sport, dst, dport = key
        if key not in isn:
            fail(f"no SYN seen for {key}")
        data, ends = reassemble(segs, isn[key])
        ours = split_messages(data, ends)
        theirs = shark.get(key, [])
        if len(ours) != len(theirs):
            fail(f"{key}: we split {len(ours)} messages, tshark {len(theirs)}")
        for (raw, ts), t in zip(ours, theirs):
            dec = decode(t)
            if dec["length"] != len(raw) or dec["type"] != raw[18]:
                fail(f"{key}: tshark disagrees on length/type ({dec['length']}/{dec['type']}"
                     f" vs {len(raw)}/{raw[18]})")
            if src not in host or dst not in host:
                fail(f"unknown address in {key}")
            msgs.append((ts, host[src], host[dst], raw, dec, key))

    msgs.sort(key=lambda m: m[0])
    # A fresh run replaces every vector: stale files would fail the golden test's completeness check.
    for daemon in set(host.values()):
        d = os.path.join(args.out, daemon)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".bin"):
                    os.remove(os.path.join(d, f))
    with open(args.versions) as f:
        versions = json.load(f)
    manifest = {"versions": versions, "vectors": {}}
    counters = collections.Counter()
    seen = {}  # (sender, peer, bytes) -> file
    open_file = {}  # TCP direction -> file holding the OPEN sent on it
    pending = []
    for ts, sender, peer, raw, dec, key in msgs:
        mtype = raw[18]
        # Identical bytes on the same session add nothing (keepalives, refresh re-sends).
        if (sender, peer, raw) in seen:
            if mtype == 1:
                open_file[key] = seen[(sender, peer, raw)]
            continue
        counters[sender] += 1
        name = f"{counters[sender]:03d}-{TYPES.get(mtype, f'type{mtype}')}-to-{peer}"
        w = what(raw, dec)
        if w:
            name += "-" + w
        rel = f"{sender}/{name}.bin"
        seen[(sender, peer, raw)] = rel
        if mtype == 1:
            open_file[key] = rel
        pending.append((rel, key))
        os.makedirs(os.path.join(args.out, sender), exist_ok=True)
        with open(os.path.join(args.out, rel), "wb") as f:
            f.write(raw)
        manifest["vectors"][rel] = {
            "daemon": sender,
            "peer": peer,
            "session": "-".join(sorted((sender, peer))),
            "scenario": phase_at(ts),
            "connection": "{}:{}->{}:{}".format(*key),
            "type": TYPES.get(mtype, str(mtype)),
            "tshark": dec,
        }
    # The OPENs of each vector's connection, so a decoder can build the negotiated context.
    for rel, key in pending:
        src, sport, dst, dport = key
        entry = manifest["vectors"][rel]
        entry["sender_open"] = open_file.get(key)
        entry["receiver_open"] = open_file.get((dst, dport, src, sport))
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    per = collections.Counter(v["daemon"] + " " + v["type"] for v in manifest["vectors"].values())
    for k in sorted(per):
        print(f"  {k}: {per[k]}", file=sys.stderr)
    print(f"extract.py: {len(manifest['vectors'])} vectors written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
