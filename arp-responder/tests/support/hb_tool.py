#!/usr/bin/python3
"""Attacker and observer for the heartbeat attack tests (tests/attacks.rs). Standard library only:
raw AF_PACKET sockets, so it sends thousands of frames a second where scapy sends hundreds.

  hb_tool.py forge  IFACE CLUSTER SECONDS NAMES VIPS KEYHEX|-  heartbeats in the names NAMES (comma
                    separated) claiming VIPS, tagged with KEYHEX (a wrong key) or untagged (-),
                    new incarnations, current timestamps, rising sequence numbers; ~2000 frames/s
  hb_tool.py flood  IFACE CLUSTER SECONDS VIPS               untagged heartbeats from random names
                    claiming VIPS, ~3000 frames/s
  hb_tool.py record IFACE SRCMAC SECONDS FILE               captures heartbeat frames sent by SRCMAC
                    (hex, one frame a line)
  hb_tool.py replay IFACE FILE SECONDS                      resends the recorded frames byte for byte,
                    in order, one every 5 ms, round and round
  hb_tool.py arpwatch IFACE SRCIP SECONDS VIPS              ARP requests for each VIP every 20 ms;
                    prints JSON {"start": t, "replies": [[t, vip, mac], ...]}

The heartbeat layout (version 2) is the one in arp-responder/src/wire/heartbeat.rs.
"""
import hashlib
import hmac
import json
import os
import random
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_ARP = 0x0806
ETH_P_HB = 0x88B5


def fnv1a(name):
    h = 0x811C9DC5
    for b in name.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def mac_of(iface):
    with open(f"/sys/class/net/{iface}/address") as f:
        return bytes.fromhex(f.read().strip().replace(":", ""))


def heartbeat(cluster, node, inc, seq, ts_ms, claims, key):
    name = node.encode()
    body = b"HRLD" + bytes([2, 1 if key else 0]) + struct.pack(
        ">IQQQBBB", cluster, inc, seq, ts_ms, 0, 1, len(name)) + name
    body += struct.pack(">H", len(claims))
    for ip in claims:
        body += b"\x04" + socket.inet_aton(ip)
    if key:
        body += hmac.new(key, body, hashlib.sha256).digest()
    return body


def raw(iface, proto=ETH_P_ALL):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((iface, proto))
    return s


def pace(start, n, per_sec):
    ahead = n / per_sec - (time.time() - start)
    if ahead > 0:
        time.sleep(ahead)


def forge(iface, cluster, secs, names, vips, keyhex):
    s = raw(iface)
    src = mac_of(iface)
    key = None if keyhex == "-" else bytes.fromhex(keyhex)
    cid = fnv1a(cluster)
    inc = random.getrandbits(63)
    start, n = time.time(), 0
    while time.time() - start < secs:
        for name in names:
            hb = heartbeat(cid, name, inc, 1_000_000 + n, int(time.time() * 1000), vips, key)
            s.send(b"\xff" * 6 + src + struct.pack(">H", ETH_P_HB) + hb)
            n += 1
        pace(start, n, 2000)
    print(json.dumps({"sent": n}))


def flood(iface, cluster, secs, vips):
    s = raw(iface)
    src = mac_of(iface)
    cid = fnv1a(cluster)
    start, n = time.time(), 0
    while time.time() - start < secs:
        name = "x%016x" % random.getrandbits(64)
        hb = heartbeat(cid, name, random.getrandbits(63), 1, int(time.time() * 1000), vips, None)
        s.send(b"\xff" * 6 + src + struct.pack(">H", ETH_P_HB) + hb)
        n += 1
        if n % 50 == 0:
            pace(start, n, 3000)
    print(json.dumps({"sent": n}))


def record(iface, srcmac, secs, path):
    s = raw(iface, ETH_P_HB)
    want = bytes.fromhex(srcmac.replace(":", ""))
    frames = []
    end = time.time() + secs
    while time.time() < end:
        r, _, _ = select.select([s], [], [], 0.05)
        if not r:
            continue
        f = s.recv(2048)
        if f[6:12] == want and f[12:14] == b"\x88\xb5":
            frames.append(f.hex())
    with open(path, "w") as out:
        out.write("\n".join(frames) + "\n")
    print(json.dumps({"recorded": len(frames)}))


def replay(iface, path, secs):
    s = raw(iface)
    frames = [bytes.fromhex(l) for l in open(path).read().split()]
    start, n = time.time(), 0
    while frames and time.time() - start < secs:
        s.send(frames[n % len(frames)])
        n += 1
        pace(start, n, 200)
    print(json.dumps({"replayed": n, "distinct": len(frames)}))


def arpwatch(iface, srcip, secs, vips):
    s = raw(iface, ETH_P_ARP)
    s.setblocking(False)
    mac = mac_of(iface)
    reqs = []
    for vip in vips:
        arp = struct.pack(">HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(srcip) + \
            b"\x00" * 6 + socket.inet_aton(vip)
        reqs.append(b"\xff" * 6 + mac + struct.pack(">H", ETH_P_ARP) + arp)
    replies = []
    start = time.time()
    next_send = start
    while time.time() - start < secs:
        now = time.time()
        if now >= next_send:
            for r in reqs:
                s.send(r)
            next_send += 0.02
        rl, _, _ = select.select([s], [], [], max(0.0, next_send - time.time()))
        while rl:
            try:
                f = s.recv(2048)
            except BlockingIOError:
                break
            if len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02":
                spa = socket.inet_ntoa(f[28:32])
                tpa = socket.inet_ntoa(f[38:42])
                # Answers to us only, not gratuitous announcements.
                if spa in vips and tpa == srcip:
                    replies.append([time.time(), spa, f[22:28].hex(":")])
    print(json.dumps({"start": start, "replies": replies}))


def main():
    mode, a = sys.argv[1], sys.argv[2:]
    if mode == "forge":
        forge(a[0], a[1], float(a[2]), a[3].split(","), a[4].split(","), a[5])
    elif mode == "flood":
        flood(a[0], a[1], float(a[2]), a[3].split(","))
    elif mode == "record":
        record(a[0], a[1], float(a[2]), a[3])
    elif mode == "replay":
        replay(a[0], a[1], float(a[2]))
    elif mode == "arpwatch":
        arpwatch(a[0], a[1], float(a[2]), a[3].split(","))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
