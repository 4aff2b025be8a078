#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Open many NBD connections that stall, and hold them until killed.

Usage: stall.py SOCK N_SILENT N_MIDHANDSHAKE N_MIDPAYLOAD
  silent:        connect, read nothing, say nothing
  midhandshake:  read the greeting, send the client flags and half an
                 option header, then nothing
  midpayload:    negotiate (GO on the default export), send a WRITE header
                 promising 64 MiB and 4 KiB of it, then nothing
Prints "ready OPENED" once all are open (connections the server refused or
closed at once are counted in "refused=N"), then sleeps.
"""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdraw  # noqa: E402


def main():
    sock = sys.argv[1]
    n_silent, n_mid, n_pay = (int(x) for x in sys.argv[2:5])
    held = []
    refused = 0
    for _ in range(n_silent):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(sock)
        held.append(s)
    for _ in range(n_mid):
        try:
            r = nbdraw.Raw(sock)
            r.greet()
            r.send(struct.pack(">QI", nbdraw.IHAVEOPT, nbdraw.OPT["GO"]))
            held.append(r.s)
        except (nbdraw.Closed, OSError) as e:
            print(f"mid-handshake connection failed: {e!r}", file=sys.stderr)
            refused += 1
    for _ in range(n_pay):
        try:
            r = nbdraw.Raw(sock)
            r.greet()
            typ, _ = r.info("", go=True)
            if typ != "ACK":
                refused += 1
                continue
            r.request(nbdraw.CMD["WRITE"], 0, 64 << 20, 0, 1)
            r.send(b"\xAB" * 4096)
            held.append(r.s)
        except (nbdraw.Closed, OSError) as e:
            print(f"mid-payload connection failed: {e!r}", file=sys.stderr)
            refused += 1
    print(f"ready {len(held)} refused={refused}", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
