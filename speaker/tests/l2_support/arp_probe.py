#!/usr/bin/python3
"""ARP probe for speaker/tests/l2.rs (runs in the client namespace).

  arp_probe.py VIP IFACE COUNT

Broadcasts COUNT ARP requests for VIP, 300 ms apart, and prints a JSON list of the sender MACs
of every ARP reply for VIP seen on IFACE (one entry per reply, duplicates kept).
"""
import json
import sys
import time

from scapy.all import ARP, AsyncSniffer, Ether, conf, get_if_addr, get_if_hwaddr, sendp

conf.verb = 0
vip, iface, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
own_mac = get_if_hwaddr(iface)
own_ip = get_if_addr(iface)
seen = []


def on_packet(packet):
    if ARP in packet and packet[ARP].op == 2 and packet[ARP].psrc == vip:
        seen.append(packet[ARP].hwsrc)


sniffer = AsyncSniffer(iface=iface, filter="arp", prn=on_packet, store=False)
sniffer.start()
time.sleep(0.3)
request = Ether(src=own_mac, dst="ff:ff:ff:ff:ff:ff") / ARP(
    op=1, hwsrc=own_mac, psrc=own_ip, pdst=vip)
for _ in range(count):
    sendp(request, iface=iface)
    time.sleep(0.3)
time.sleep(0.5)
sniffer.stop()
print(json.dumps(seen))
