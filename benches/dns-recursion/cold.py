#!/usr/bin/env python3
"""Cold-resolution latency: asks a resolver for each name once, one query at a time, and
reports percentiles of the time from send to reply. Used by cold.sh.

usage: cold.py PORT NAMES_FILE LABEL
"""
import os
import socket
import struct
import sys
import time


def query(name: str, qid: int) -> bytes:
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 1)  # RD, one question, one OPT
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)  # A IN
    q += b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)  # OPT, 1232 octets
    return q


def pct(sorted_us, p):
    if not sorted_us:
        return float("nan")
    i = min(len(sorted_us) - 1, max(0, int(round(p / 100 * len(sorted_us) + 0.5)) - 1))
    return sorted_us[i]


def main():
    port, names_file, label = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    names = [l.strip() for l in open(names_file) if l.strip()]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.settimeout(5.0)
    lat, failed = [], 0
    for name in names:
        qid = int.from_bytes(os.urandom(2), "big")
        q = query(name, qid)
        t0 = time.perf_counter_ns()
        s.send(q)
        while True:
            try:
                r = s.recv(4096)
            except socket.timeout:
                r = None
                break
            if len(r) >= 12 and struct.unpack(">H", r[:2])[0] == qid:
                break
        t1 = time.perf_counter_ns()
        if r is None or (r[3] & 0x0F) != 0 or struct.unpack(">H", r[6:8])[0] == 0:
            failed += 1
            continue
        lat.append((t1 - t0) / 1000)
    lat.sort()
    mean = sum(lat) / len(lat) if lat else float("nan")
    print(
        "%-10s %6d %6d %9.0f %9.0f %9.0f %9.0f %9.0f"
        % (label, len(names), failed, pct(lat, 50), pct(lat, 90), pct(lat, 99), mean,
           lat[-1] if lat else float("nan"))
    )


if __name__ == "__main__":
    main()
