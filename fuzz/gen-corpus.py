#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of the NBD fuzz harnesses.

fuzz/corpus/handshake/*: what a client sends after the greeting (client
flags, options, and for sessions that reach transmission, a few requests),
modelled on the sessions of nbdinfo, qemu-img, nbd-client and nbdcopy.
fuzz/corpus/transmission/*: a mode byte (see fuzz-transmission.c) and a
request stream.  fuzz/corpus/core/*: the same requests for the protocol
core alone (fuzz-core.c): a negotiation byte, an advertised-flags byte,
and after each request what plays the engine (errno, extents).  Deterministic: rerunning gives the same files.

Usage: gen-corpus.py [OUTDIR]   (default: the corpus/ beside this script)
"""
import os
import struct
import sys

OPTS = 0x49484156454F5054
REQ = 0x25609513
EXT_REQ = 0x21E41C71

(EXPORT_NAME, ABORT, LIST, PEEK, STARTTLS, INFO, GO, SR, LIST_META,
 SET_META, EXT_HDR) = range(1, 12)
READ, WRITE, DISC, FLUSH, TRIM, CACHE, ZEROES, BSTATUS = range(8)
FUA, NO_HOLE, DF, REQ_ONE, FAST_ZERO, PAYLOAD_LEN = (1, 2, 4, 8, 16, 32)


def opt(o, data=b""):
    return struct.pack(">QII", OPTS, o, len(data)) + data


def name_info(name, infos=()):
    n = name.encode()
    return struct.pack(">I", len(n)) + n + struct.pack(">H", len(infos)) + \
        b"".join(struct.pack(">H", i) for i in infos)


def meta(name, queries):
    n = name.encode()
    d = struct.pack(">I", len(n)) + n + struct.pack(">I", len(queries))
    for q in queries:
        d += struct.pack(">I", len(q)) + q.encode()
    return d


def req(cmd, off=0, length=0, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQI", REQ, flags, cmd, cookie, off, length) + payload


def ereq(cmd, off=0, length=0, flags=0, cookie=1, payload=b""):
    return struct.pack(">IHHQQQ", EXT_REQ, flags, cmd, cookie, off, length) + payload


FLAGS = struct.pack(">I", 3)  # C_FIXED_NEWSTYLE | C_NO_ZEROES


def handshakes():
    s = {}
    s["nbdinfo"] = FLAGS + opt(SR) + opt(SET_META, meta("", ["base:allocation"])) + \
        opt(GO, name_info("", [3, 1, 2])) + req(READ, 0, 512) + req(DISC)
    s["nbdinfo-list"] = FLAGS + opt(LIST) + opt(INFO, name_info("fuzz", [1, 2, 3])) + \
        opt(ABORT)
    s["qemu-img"] = FLAGS + opt(SR) + opt(LIST_META, meta("fuzz", ["base:"])) + \
        opt(SET_META, meta("fuzz", ["base:allocation"])) + opt(GO, name_info("fuzz", [3])) + \
        req(BSTATUS, 0, 65536) + req(READ, 0, 4096, cookie=2) + req(FLUSH, cookie=3) + req(DISC)
    s["nbd-client"] = FLAGS + opt(GO, name_info("")) + req(READ, 0, 1024) + \
        req(WRITE, 4096, 512, payload=bytes(range(256)) * 2) + req(FLUSH) + req(DISC)
    s["export-name"] = struct.pack(">I", 1) + opt(EXPORT_NAME, b"fuzz") + req(READ, 0, 16)
    s["export-name-unknown"] = FLAGS + opt(EXPORT_NAME, b"../etc/passwd")
    s["extended"] = FLAGS + opt(EXT_HDR) + opt(SET_META, meta("", ["base:allocation"])) + \
        opt(GO, name_info("")) + ereq(READ, 0, 4096) + \
        ereq(WRITE, 0, 8, PAYLOAD_LEN, payload=b"abcdefgh") + ereq(BSTATUS, 0, 1 << 20) + ereq(DISC)
    s["starttls"] = FLAGS + opt(STARTTLS) + opt(STARTTLS, b"x") + opt(GO, name_info(""))
    s["bad-options"] = FLAGS + opt(PEEK) + opt(99, b"zz") + opt(LIST, b"junk") + \
        opt(SR, b"x") + opt(INFO, struct.pack(">I", 100)) + \
        opt(SET_META, meta("", ["base:allocation"])) + \
        opt(LIST_META, struct.pack(">II", 0, 5)) + opt(GO, name_info("nope")) + opt(ABORT)
    s["info-overrun"] = FLAGS + opt(INFO, struct.pack(">I", 0xFFFFFFFF) + b"\0\0") + opt(ABORT)
    s["ro"] = FLAGS + opt(SR) + opt(GO, name_info("ro", [3])) + \
        req(WRITE, 0, 4, payload=b"evil") + req(TRIM, 0, 4096) + req(ZEROES, 0, 4096) + req(DISC)
    s["unknown-flags"] = struct.pack(">I", 0xFFFFFFFF) + opt(ABORT)
    s["long-option"] = FLAGS + struct.pack(">QII", OPTS, LIST, 0x10000000)
    return s


def transmissions():
    t = {}
    big = bytes((i * 7) & 0xFF for i in range(8192))
    t["simple-mixed"] = bytes([0]) + req(READ, 0, 4096) + req(WRITE, 8192, 8192, FUA, 2, big) + \
        req(FLUSH, cookie=3) + req(TRIM, 65536, 4096, cookie=4) + \
        req(ZEROES, 0, 4096, NO_HOLE, 5) + req(CACHE, 0, 65536, cookie=6) + req(DISC)
    t["structured-read"] = bytes([1]) + req(READ, 0, 256 << 10) + req(READ, 200000, 100, DF, 2) + \
        req(READ, (256 << 10) - 1, 2, cookie=3) + req(READ, 0, 0, cookie=4)
    t["structured-meta"] = bytes([1 | 4]) + req(BSTATUS, 0, 256 << 10) + \
        req(BSTATUS, 0, 4096, REQ_ONE, 2) + req(BSTATUS, 0, 0, cookie=3)
    t["extended"] = bytes([2 | 4]) + ereq(READ, 0, 65536) + \
        ereq(WRITE, 512, 512, PAYLOAD_LEN | FUA, 2, big[:512]) + \
        ereq(ZEROES, 0, 1 << 40, FAST_ZERO, 3) + ereq(BSTATUS, 0, 1 << 33, cookie=4) + \
        ereq(TRIM, 0, 4096, cookie=5)
    t["readonly"] = bytes([1 | 8]) + req(WRITE, 0, 512, payload=big[:512]) + req(TRIM, 0, 512, cookie=2) + \
        req(ZEROES, 0, 512, cookie=3) + req(READ, 0, 512, cookie=4)
    t["export-name"] = bytes([16]) + req(READ, 0, 512) + req(WRITE, 0, 3, payload=b"abc")
    t["bad-requests"] = bytes([1]) + req(READ, 1 << 62, 4096) + req(WRITE, (256 << 10) - 2, 4, cookie=2,
                                                               payload=b"wxyz") + \
        req(99, cookie=3) + req(READ, 0, 64, 0xFFFF, 4) + req(ZEROES, 0, 512, FAST_ZERO, 5) + \
        req(FLUSH, 5, 5, cookie=6) + req(READ, 0, 0xFFFFFFFF, cookie=7)
    t["write-oversized"] = bytes([0]) + req(WRITE, 0, 64 << 20) + big
    t["bad-magic"] = bytes([0]) + struct.pack(">IHHQQI", 0x12560953, 0, 0, 1, 0, 512)
    t["disc-with-inflight"] = bytes([1]) + req(WRITE, 0, 4096, payload=big[:4096]) + \
        req(READ, 0, 4096, cookie=2) + req(DISC, cookie=3) + req(READ, 0, 4096, cookie=4)
    return t


def engine(err=0, extents=()):
    """What fuzz-core.c reads after a request: errno, then the extents."""
    return bytes([err, len(extents)]) + b"".join(
        bytes([f]) + struct.pack(">I", n) for n, f in extents)


def cores():
    t = {}
    big = bytes((i * 7) & 0xFF for i in range(8192))
    sparse = ((4096, 3), (8192, 0), (4096, 2), (1 << 20, 0))
    t["simple"] = bytes([0, 0x1F]) + req(READ, 0, 4096) + engine() + \
        req(WRITE, 8192, 8192, FUA, 2, big) + engine() + req(FLUSH, cookie=3) + engine(5) + \
        req(TRIM, 0, 4096, cookie=4) + engine(95) + req(DISC)
    t["structured"] = bytes([1 | 4, 0x1F]) + req(READ, 0, 65536) + engine(0, sparse) + \
        req(READ, 0, 4096, DF, 2) + engine(75) + req(BSTATUS, 0, 65536, cookie=3) + \
        engine(0, sparse) + req(BSTATUS, 0, 4096, REQ_ONE, 4) + engine(0, sparse) + \
        req(ZEROES, 0, 4096, FAST_ZERO, 5) + engine(95) + req(READ, 0, 0, cookie=6) + engine()
    t["extended"] = bytes([2 | 4, 0x1F]) + ereq(READ, 0, 65536) + engine(0, sparse) + \
        ereq(WRITE, 512, 512, PAYLOAD_LEN | FUA, 2, big[:512]) + engine(28) + \
        ereq(WRITE, 0, 256, 0, 3, big[:256]) + engine() + \
        ereq(BSTATUS, 0, 1 << 33, cookie=4) + engine(0, sparse) + \
        ereq(WRITE, 0, 1 << 40, PAYLOAD_LEN, 5)
    t["readonly"] = bytes([1 | 8, 0x1F]) + req(WRITE, 0, 512, payload=big[:512]) + engine() + \
        req(TRIM, 0, 512, cookie=2) + engine() + req(99, cookie=3) + engine() + \
        req(READ, 1 << 40, 512, cookie=4) + engine()
    # option data (byte 0 bit 7; byte 1: bit 0 meta, bit 1 SET)
    t["option-info"] = bytes([0x80, 0]) + name_info("fuzz", (0, 1, 2, 3))
    t["option-set-meta"] = bytes([0x80, 3]) + meta("", ["base:allocation", "qemu:x"])
    t["option-list-meta"] = bytes([0x80, 1]) + meta("ro", ["base:"])
    return t


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "corpus")
    for sub, items in (("handshake", handshakes()), ("transmission", transmissions()),
                       ("core", cores())):
        d = os.path.join(out, sub)
        os.makedirs(d, exist_ok=True)
        for name, data in items.items():
            with open(os.path.join(d, "seed-" + name), "wb") as f:
                f.write(data)
    print(f"wrote seeds to {out}")


if __name__ == "__main__":
    main()
