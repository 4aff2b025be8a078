#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Seeded random sessions against an NBD server on a Unix socket: random
option sequences (codes, lengths, contents), then, when an export was
entered, random requests with a valid magic and random type, flags,
offset and length (WRITE payloads sent as the header says, up to 1 MiB).
Replies are drained by a thread and not checked: the point is that the
server survives everything and still serves a normal client afterwards
(checked by the caller, with the sanitizers watching).

Usage: nbd_fuzz.py SOCKET EXPORT_SIZE [SESSIONS] [SEED]
"""
import random
import socket
import struct
import sys
import threading

SOCK, SIZE = sys.argv[1], int(sys.argv[2])
SESSIONS = int(sys.argv[3]) if len(sys.argv) > 3 else 200
rnd = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 1)
IHAVEOPT = 0x49484156454F5054


def drain(s):
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass


def rand_len():
    return rnd.choice([0, 1, 2, 511, 512, 4096, 65536, 1 << 20, SIZE, SIZE + 1,
                       0xFFFFFFFF, rnd.randrange(1 << 32)])


def rand_off():
    return rnd.choice([0, 1, 4095, SIZE - 1, SIZE, SIZE + 1, 1 << 63, (1 << 64) - 1,
                       rnd.randrange(SIZE)])


def rand_option():
    code = rnd.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0x7FFFFFFF, 0xFFFFFFFF])
    kind = rnd.randrange(4)
    if kind == 0:
        data = b""
    elif kind == 1:
        data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(64)))
    elif kind == 2:     # structured-looking: name length, name, count, queries
        name = rnd.choice([b"", b"x", b"nope"])
        nl = rnd.choice([len(name), len(name) + 1, 0xFFFFFFFF, 3])
        data = struct.pack(">I", nl) + name + struct.pack(">I", rnd.choice([0, 1, 2, 1000]))
        data += struct.pack(">I", 15) + b"base:allocation"
    else:               # INFO/GO-looking
        name = rnd.choice([b"", b"nope"])
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", rnd.randrange(5))
        data += b"".join(struct.pack(">H", rnd.randrange(6)) for _ in range(rnd.randrange(5)))
    return code, data


stats = {"sessions": 0, "entered": 0, "requests": 0}


def session():
    stats["sessions"] += 1
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(SOCK)
    t = None
    try:
        s.recv(18)
        s.sendall(struct.pack(">I", rnd.choice([3, 3, 3, 1, 0, 7])))
        ext = False
        entered = False
        for _ in range(rnd.randrange(1, 8)):
            code, data = rand_option()
            ln = len(data) if rnd.randrange(10) else rnd.choice([len(data) + 5, 70000])
            s.sendall(struct.pack(">QII", IHAVEOPT, code, ln) + data[:ln])
            if ln > len(data):
                break
            if code == 11:
                ext = True
            if code in (1, 7) and rnd.randrange(3) == 0:
                entered = True
                break
            if code == 2:
                return
        if not entered:
            if rnd.randrange(5) == 0:
                return
            if ext or rnd.randrange(2):
                s.sendall(struct.pack(">QIIIH", IHAVEOPT, 7, 6, 0, 0))    # GO ""
            else:
                s.sendall(struct.pack(">QII", IHAVEOPT, 1, 0))            # EXPORT_NAME ""
        stats["entered"] += 1
        t = threading.Thread(target=drain, args=(s,), daemon=True)
        t.start()
        for _ in range(rnd.randrange(1, 40)):
            typ = rnd.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0xFFFF])
            flags = rnd.choice([0, 1, 2, 4, 8, 16, 32, rnd.randrange(1 << 16)])
            off, ln = rand_off(), rand_len()
            if ext and rnd.randrange(4):
                ln = rnd.choice([ln, rnd.randrange(1 << 64)])
                hdr = struct.pack(">IHHQQQ", 0x21E41C71, flags, typ, 1, off, ln)
                payload = ln if flags & 32 else 0
            else:
                hdr = struct.pack(">IHHQQI", 0x25609513, flags, typ, 1, off, ln & 0xFFFFFFFF)
                payload = (ln & 0xFFFFFFFF) if typ == 1 else 0
            if payload > (1 << 20):
                continue
            s.sendall(hdr + bytes(payload))
            stats["requests"] += 1
            if typ == 2:
                break
    except OSError:
        pass
    finally:
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if t:
            t.join(5)
        s.close()


for _ in range(SESSIONS):
    session()
print("fuzz: %(sessions)d sessions, %(entered)d reached transmission, %(requests)d requests" % stats)
