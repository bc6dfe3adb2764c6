#!/usr/bin/python3
"""Golden Keyed SHA1 / Meticulous Keyed SHA1 BFD packets (RFC 5880 §6.7.4), built with struct and
hashlib only, independently of Herald's encoder.

Run: /usr/bin/python3 keyed_sha1.py
Prints `name hex` lines; auth_tests.rs's `python_vectors_*` test holds the output.
"""
import hashlib
import struct


def signed(auth_type, key_id, seq, key, sta, flags, mult, my, your, tx, rx, echo):
    length = 24 + 28
    vdiag = (1 << 5) | 0
    flag_bits = (sta << 6) | flags | 0x04  # A bit
    header = struct.pack("!BBBBIIIII", vdiag, flag_bits, mult, length, my, your, tx, rx, echo)
    padded = key.ljust(20, b"\0")
    auth = struct.pack("!BBBBI", auth_type, 28, key_id, 0, seq)
    digest = hashlib.sha1(header + auth + padded).digest()
    return header + auth + digest


VECTORS = {
    # Keyed SHA1, key ID 1, key "secret", Up, 300 ms, mult 3, seq 0x01020304.
    "keyed_up": signed(4, 1, 0x01020304, b"secret", 3, 0, 3, 0x11111111, 0x22222222,
                       300000, 300000, 0),
    # Meticulous Keyed SHA1, key ID 200, a 20-octet key (no padding), Down, seq 0xffffffff.
    "meticulous_down": signed(5, 200, 0xFFFFFFFF, b"0123456789abcdefghij", 1, 0, 5, 7, 0,
                              1000000, 100000, 0),
}

for name, packet in VECTORS.items():
    print(name, packet.hex())
