#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check that every block listed in ACKFILE (see acked_writes.py) holds its
own number in FILE.  Usage: verify_blocks.py FILE ACKFILE"""
import sys

BS = 65536
bad = 0
n = 0
with open(sys.argv[1], "rb") as f, open(sys.argv[2]) as acks:
    for line in acks:
        if line.startswith("eshutdown"):
            continue
        i = int(line)
        f.seek(i * BS)
        if f.read(BS) != i.to_bytes(4, "big") * (BS // 4):
            bad += 1
        n += 1
print("%d acknowledged blocks checked, %d wrong" % (n, bad))
sys.exit(1 if bad or n == 0 else 0)
