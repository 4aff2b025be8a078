#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Graceful shutdown with requests in flight: keep many 64 KiB writes in
flight (each block filled with its own number), send SIGTERM to the server
once some have been acknowledged, keep going until the connection ends,
then record which writes were acknowledged.  The caller checks the file
after the server exited.

Usage: acked_writes.py URI SERVER_PID NBLOCKS OUTFILE
OUTFILE gets one acknowledged block number per line; the line
"eshutdown N" says how many writes were refused with ESHUTDOWN.
"""
import os
import signal
import sys

import nbd

uri, pid, nblocks, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
BS = 65536
acked, shut, other = [], [0], [0]
sent = [0]

h = nbd.NBD()
h.connect_uri(uri)
bufs = {}


def make_cb(i):
    def cb(err):
        if err.value == 0:
            acked.append(i)
            if len(acked) == 200:
                os.kill(pid, signal.SIGTERM)
        elif err.value == 108:  # ESHUTDOWN
            shut[0] += 1
        else:
            other[0] += 1
        bufs.pop(i, None)
        return 1
    return cb


try:
    i = 0
    while i < nblocks:
        while i < nblocks and h.aio_in_flight() < 64:
            b = nbd.Buffer.from_buffer(bytearray(i.to_bytes(4, "big") * (BS // 4)))
            bufs[i] = b
            h.aio_pwrite(b, i * BS, completion=make_cb(i))
            i += 1
        h.poll(-1)
    while h.aio_in_flight() > 0:
        h.poll(-1)
except nbd.Error:
    pass    # the server closed the connection during shutdown
with open(out, "w") as f:
    for a in acked:
        f.write("%d\n" % a)
    f.write("eshutdown %d\n" % shut[0])
print("acknowledged %d, ESHUTDOWN %d, other errors %d" % (len(acked), shut[0], other[0]))
