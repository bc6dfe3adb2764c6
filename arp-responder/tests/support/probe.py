#!/usr/bin/python3
"""Neighbour-resolution probe for the arp-responder end-to-end tests (runs in the client netns).

  probe.py arp VIP IFACE COUNT          ARP requests for VIP
  probe.py ns  VIP IFACE COUNT SRC_IP6  Neighbor Solicitations for VIP from SRC_IP6
  probe.py arp VIP IFACE COUNT - VLAN   ARP requests sent with an 802.1Q tag (VLAN id)
  probe.py dad VIP IFACE COUNT          DAD probes (NS from ::) for VIP; counts NAs to ff02::1

Sends COUNT requests 200 ms apart and prints JSON: {"sent": COUNT, "replies": [[t, mac, vlan], ...]}
with every reply for VIP seen on IFACE (ARP reply with psrc == VIP, or NA with target == VIP).
"""
import json
import sys
import time

from scapy.all import (ARP, AsyncSniffer, Dot1Q, Ether, ICMPv6ND_NA, ICMPv6ND_NS,
                       ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6, conf,
                       get_if_addr, get_if_hwaddr, sendp)
from scapy.utils6 import in6_getnsma, in6_getnsmac
from scapy.pton_ntop import inet_pton
import socket

conf.verb = 0
mode, vip, iface, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
mac = get_if_hwaddr(iface)
replies = []
sent_at = []


def on_pkt(p):
    vlan = p[Dot1Q].vlan if Dot1Q in p else None
    # Answers only: gratuitous announcements (target = VIP, or NA to all-nodes) are not counted.
    if mode == "arp" and ARP in p and p[ARP].op == 2 and p[ARP].psrc == vip and p[ARP].pdst != vip:
        replies.append([p.time, p[ARP].hwsrc, vlan])
    if mode == "ns" and ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == vip and p[ICMPv6ND_NA].S == 1:
        ll = p[ICMPv6NDOptDstLLAddr].lladdr if ICMPv6NDOptDstLLAddr in p else p[Ether].src
        replies.append([p.time, ll, vlan])
    # A defended DAD probe: NA to all-nodes with S=0 (RFC 4861 7.2.4). Only count those sent while
    # probes are outstanding, i.e. after the first probe went out.
    if (mode == "dad" and sent_at and ICMPv6ND_NA in p and p[ICMPv6ND_NA].tgt == vip
            and p[ICMPv6ND_NA].S == 0 and p[IPv6].dst == "ff02::1"):
        ll = p[ICMPv6NDOptDstLLAddr].lladdr if ICMPv6NDOptDstLLAddr in p else p[Ether].src
        replies.append([p.time, ll, vlan])


sniffer = AsyncSniffer(iface=iface, prn=on_pkt, store=False,
                       filter="arp" if mode == "arp" else "icmp6")
sniffer.start()
time.sleep(0.3)
if mode == "arp" and len(sys.argv) > 6:
    req = (Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / Dot1Q(vlan=int(sys.argv[6])) /
           ARP(op=1, hwsrc=mac, psrc="192.168.100.100", pdst=vip))
elif mode == "arp":
    req = Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / ARP(op=1, hwsrc=mac, psrc=get_if_addr(iface), pdst=vip)
elif mode == "dad":
    sn = socket.inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, vip)))
    req = (Ether(dst=in6_getnsmac(inet_pton(socket.AF_INET6, sn)), src=mac) /
           IPv6(src="::", dst=sn, hlim=255) / ICMPv6ND_NS(tgt=vip))
else:
    src = sys.argv[5]
    sn = socket.inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, vip)))
    req = (Ether(dst=in6_getnsmac(inet_pton(socket.AF_INET6, sn)), src=mac) /
           IPv6(src=src, dst=sn, hlim=255) / ICMPv6ND_NS(tgt=vip) / ICMPv6NDOptSrcLLAddr(lladdr=mac))
for _ in range(count):
    sent_at.append(time.time())
    sendp(req, iface=iface)
    time.sleep(0.2)
# Replies may lag on a loaded machine (CI once saw 1 of 3 with a fixed 0.3 s wait): wait up to 3 s
# for one per request, then 0.3 s more so a second answerer still shows up as an extra reply.
deadline = time.time() + 3
while len(replies) < count and time.time() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
sniffer.stop()
print(json.dumps({"sent": count, "replies": [[float(t), m, v] for t, m, v in replies]}))
