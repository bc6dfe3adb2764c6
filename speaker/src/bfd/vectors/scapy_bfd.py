#!/usr/bin/python3
"""Golden BFD Control packets from an independent implementation (scapy.contrib.bfd).

Run with Debian's interpreter (it has scapy): /usr/bin/python3 scapy_bfd.py
Prints `name hex` lines; packet.rs's `scapy_vectors_*` test holds the output.
"""
from scapy.contrib.bfd import BFD

VECTORS = {
    # Up, Poll, diag 1, mult 5, 300 ms / 250 ms / 50 ms.
    "up_poll": BFD(version=1, diag=1, sta=3, flags="P", detect_mult=5,
                   my_discriminator=0x01020304, your_discriminator=0xA0B0C0D0,
                   min_tx_interval=300000, min_rx_interval=250000, echo_rx_interval=50000),
    # Init, Final, no diagnostic, mult 3.
    "init_final": BFD(version=1, diag=0, sta=2, flags="F", detect_mult=3,
                      my_discriminator=7, your_discriminator=9,
                      min_tx_interval=1000000, min_rx_interval=100000, echo_rx_interval=0),
    # AdminDown with diag 7 (administratively down) and Your Discriminator zero.
    "admin_down": BFD(version=1, diag=7, sta=0, flags=0, detect_mult=3,
                      my_discriminator=0xFFFFFFFF, your_discriminator=0,
                      min_tx_interval=1000000, min_rx_interval=1000000, echo_rx_interval=0),
    # Down with the C (control plane independent) bit.
    "down_cpi": BFD(version=1, diag=3, sta=1, flags="C", detect_mult=255,
                    my_discriminator=42, your_discriminator=0,
                    min_tx_interval=1, min_rx_interval=0, echo_rx_interval=0),
}

for name, packet in VECTORS.items():
    print(name, bytes(packet).hex())
