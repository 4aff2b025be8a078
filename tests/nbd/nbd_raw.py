#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Raw-socket NBD protocol tests: malformed handshakes and requests that
real clients never send, extended headers (which libnbd 1.14 lacks), and
the wire form of replies.  Talks to a server on a Unix socket.

Usage: nbd_raw.py SOCKET EXPORT_SIZE
The export must be writable, at least 2 MiB, and is scribbled on.
Prints "ok - NAME" / "not ok - NAME: why" lines; exits 1 if any failed.
"""
import os
import socket
import struct
import sys

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x3E889045565A9
REQ, EREQ = 0x25609513, 0x21E41C71
SIMPLE, STRUCT, EXT = 0x67446698, 0x668E33EF, 0x6E8A278C
OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS, OPT_INFO, OPT_GO = 1, 2, 3, 5, 6, 7
OPT_SR, OPT_LIST_META, OPT_SET_META, OPT_EH = 8, 9, 10, 11
ACK, SERVER, INFO, META = 1, 2, 3, 4
ERR_UNSUP, ERR_POLICY, ERR_INVALID, ERR_UNKNOWN = 0x80000001, 0x80000002, 0x80000003, 0x80000006
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM, CMD_CACHE, CMD_WZ, CMD_BS = range(8)
F_FUA, F_NO_HOLE, F_DF, F_REQ_ONE, F_FAST_ZERO, F_PAYLOAD_LEN = 1, 2, 4, 8, 16, 32
T_NONE, T_DATA, T_HOLE, T_BS, T_BS_EXT, T_ERROR = 0, 1, 2, 5, 6, 0x8001
EPERM, EIO, EINVAL, ENOSPC, ESHUTDOWN = 1, 5, 22, 28, 108

SOCK = sys.argv[1]
SIZE = int(sys.argv[2])
failures = 0


class Closed(Exception):
    pass


class Conn:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(SOCK)
        self.ext = False

    def recv(self, n):
        b = b""
        while len(b) < n:
            c = self.s.recv(n - len(b))
            if not c:
                raise Closed()
            b += c
        return b

    def closed(self):
        """True if the server hard-disconnected (EOF or reset)."""
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True

    def greet(self, cflags=3):
        magic, opt, hflags = struct.unpack(">QQH", self.recv(18))
        assert magic == NBDMAGIC and opt == IHAVEOPT and hflags & 1, "greeting"
        self.s.sendall(struct.pack(">I", cflags))
        return hflags

    def opt(self, o, data=b""):
        self.s.sendall(struct.pack(">QII", IHAVEOPT, o, len(data)) + data)

    def reply(self):
        magic, o, t, n = struct.unpack(">QIII", self.recv(20))
        assert magic == REPMAGIC, "option reply magic"
        return o, t, self.recv(n)

    def replies(self, o, data=b""):
        """Send an option, collect replies up to the final one."""
        self.opt(o, data)
        out = []
        while True:
            ro, t, d = self.reply()
            assert ro == o, "option echo"
            out.append((t, d))
            if t != SERVER and t != INFO and t != META:
                return out

    def go(self, name=b"", infos=(3,), sr=True, meta=True, eh=False):
        if eh:
            assert self.replies(OPT_EH)[-1][0] == ACK
            self.ext = True
        elif sr:
            assert self.replies(OPT_SR)[-1][0] == ACK
        if meta and (sr or eh):
            q = b"base:allocation"
            d = struct.pack(">I", len(name)) + name + struct.pack(">II", 1, len(q)) + q
            assert self.replies(OPT_SET_META, d)[-1][0] == ACK
        d = struct.pack(">I", len(name)) + name + struct.pack(">H", len(infos))
        d += b"".join(struct.pack(">H", i) for i in infos)
        r = self.replies(OPT_GO, d)
        assert r[-1][0] == ACK, "GO: %x" % r[-1][0]
        info = {}
        for t, d in r[:-1]:
            info[struct.unpack(">H", d[:2])[0]] = d[2:]
        self.size, self.tflags = struct.unpack(">QH", info[0])
        return info

    def req(self, cmd, off, ln, flags=0, cookie=1, payload=b""):
        if self.ext:
            if payload:
                flags |= F_PAYLOAD_LEN
            h = struct.pack(">IHHQQQ", EREQ, flags, cmd, cookie, off, ln)
        else:
            h = struct.pack(">IHHQQI", REQ, flags, cmd, cookie, off, ln)
        self.s.sendall(h + payload)

    def chunk(self):
        """One reply message: (kind, flags, type, cookie, payload or error)."""
        magic = struct.unpack(">I", self.recv(4))[0]
        if magic == SIMPLE:
            err, cookie = struct.unpack(">IQ", self.recv(12))
            return ("simple", 1, err, cookie, None)
        if magic == STRUCT:
            fl, t, cookie, n = struct.unpack(">HHQI", self.recv(16))
            return ("struct", fl, t, cookie, self.recv(n))
        if magic == EXT:
            fl, t, cookie, off, n = struct.unpack(">HHQQQ", self.recv(28))
            return ("ext", fl, t, cookie, self.recv(n), off)
        raise AssertionError("bad reply magic %x" % magic)

    def simple(self, ln=0):
        kind, _, err, cookie, _ = self.chunk()
        assert kind == "simple", kind
        data = self.recv(ln) if err == 0 and ln else b""
        return err, cookie, data

    def structured(self):
        """All chunks of one structured reply: list of (type, payload)."""
        out = []
        while True:
            c = self.chunk()
            assert c[0] in ("struct", "ext"), c[0]
            out.append((c[2], c[4]))
            if c[1] & 1:
                return c[3], out


def test(name):
    def deco(fn):
        global failures
        try:
            fn()
            print("ok - " + name)
        except Exception as e:  # noqa: BLE001 - report any failure
            failures += 1
            print("not ok - %s: %s: %s" % (name, type(e).__name__, e))
        return fn
    return deco


def errchunk(chunks):
    t, d = chunks[-1]
    assert t == T_ERROR, "type %x" % t
    return struct.unpack(">I", d[:4])[0]


# ---- handshake ----

@test("unknown client flags: hard disconnect")
def _():
    c = Conn()
    c.greet(cflags=3 | 0x100)
    assert c.closed()


@test("bad option magic: hard disconnect")
def _():
    c = Conn()
    c.greet()
    c.s.sendall(struct.pack(">QII", 0x1234, OPT_LIST, 0))
    assert c.closed()


@test("option length over the cap: hard disconnect before reading it")
def _():
    c = Conn()
    c.greet()
    c.s.sendall(struct.pack(">QII", IHAVEOPT, OPT_GO, 16 << 20))
    assert c.closed()


@test("unknown option with data: ERR_UNSUP, stream in step")
def _():
    c = Conn()
    c.greet()
    r = c.replies(99, b"x" * 1000)
    assert r == [(ERR_UNSUP, b"")], r
    c.go()
    assert c.size == SIZE


@test("LIST with data: ERR_INVALID, stream in step; LIST lists the default export")
def _():
    c = Conn()
    c.greet()
    assert c.replies(OPT_LIST, b"junk")[-1][0] == ERR_INVALID
    r = c.replies(OPT_LIST)
    assert r[-1][0] == ACK and r[0][0] == SERVER, r
    names = [d[4:4 + struct.unpack(">I", d[:4])[0]] for t, d in r[:-1]]
    assert b"" in names, names


@test("INFO with a name length overrunning the option: ERR_INVALID, in step")
def _():
    c = Conn()
    c.greet()
    d = struct.pack(">I", 200) + b"abc" + struct.pack(">H", 0)
    assert c.replies(OPT_INFO, d) == [(ERR_INVALID, b"")]
    d = struct.pack(">I", 0) + struct.pack(">H", 5) + b"\0\0"   # nreq overruns
    assert c.replies(OPT_INFO, d) == [(ERR_INVALID, b"")]
    c.go()


@test("INFO/GO of an unknown export: ERR_UNKNOWN; INFO gives size and block sizes")
def _():
    c = Conn()
    c.greet()
    d = struct.pack(">I", 4) + b"nope" + struct.pack(">H", 0)
    assert c.replies(OPT_GO, d) == [(ERR_UNKNOWN, b"")]
    d = struct.pack(">I", 0) + struct.pack(">HHH", 2, 3, 1)
    r = c.replies(OPT_INFO, d)
    assert r[-1][0] == ACK
    infos = {struct.unpack(">H", x[:2])[0]: x[2:] for t, x in r[:-1]}
    size, flags = struct.unpack(">QH", infos[0])
    assert size == SIZE and flags & 1
    mn, pref, mx = struct.unpack(">III", infos[3])
    assert mn == 1 and pref >= 4096 and mx == 64 << 20, (mn, pref, mx)
    assert 1 in infos      # INFO_NAME was asked for


@test("EXPORT_NAME of an unknown export: hard disconnect")
def _():
    c = Conn()
    c.greet()
    c.opt(OPT_EXPORT_NAME, b"nope")
    assert c.closed()


@test("EXPORT_NAME: size, flags, no zeroes when NO_ZEROES")
def _():
    c = Conn()
    c.greet(cflags=3)
    c.opt(OPT_EXPORT_NAME, b"")
    size, fl = struct.unpack(">QH", c.recv(10))
    assert size == SIZE and fl & 1
    c.req(CMD_READ, 0, 512, cookie=5)
    err, cookie, data = c.simple(512)
    assert err == 0 and cookie == 5 and len(data) == 512


@test("STARTTLS without TLS: ERR_POLICY; STRUCTURED_REPLY with data or twice: ERR_INVALID")
def _():
    c = Conn()
    c.greet()
    assert c.replies(OPT_STARTTLS)[-1][0] == ERR_POLICY
    assert c.replies(OPT_SR, b"x")[-1][0] == ERR_INVALID
    assert c.replies(OPT_SR)[-1][0] == ACK
    assert c.replies(OPT_SR)[-1][0] == ERR_INVALID


@test("meta contexts: SET before structured replies refused, overrun refused, LIST base:")
def _():
    c = Conn()
    c.greet()
    q = b"base:allocation"
    d = struct.pack(">I", 0) + struct.pack(">II", 1, len(q)) + q
    assert c.replies(OPT_SET_META, d)[-1][0] == ERR_INVALID
    assert c.replies(OPT_SR)[-1][0] == ACK
    bad = struct.pack(">I", 0) + struct.pack(">II", 1, 100) + q
    assert c.replies(OPT_LIST_META, bad) == [(ERR_INVALID, b"")]
    d = struct.pack(">I", 0) + struct.pack(">II", 1, 5) + b"base:"
    r = c.replies(OPT_LIST_META, d)
    assert r[-1][0] == ACK and r[0][0] == META and r[0][1][4:] == q, r
    d = struct.pack(">I", 0) + struct.pack(">II", 1, 9) + b"qemu:nope"
    assert c.replies(OPT_SET_META, d) == [(ACK, b"")]


@test("ABORT: ACK then close")
def _():
    c = Conn()
    c.greet()
    assert c.replies(OPT_ABORT)[-1][0] == ACK
    assert c.closed()


# ---- transmission, simple replies ----

@test("bad request magic: hard disconnect")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    c.s.sendall(struct.pack(">IHHQQI", 0x12345678, 0, 0, 1, 0, 512))
    assert c.closed()


@test("unknown command, unknown flag, unadvertised use: EINVAL, in step")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    c.req(9, 0, 512, cookie=1)
    assert c.simple() == (EINVAL, 1, b"")
    c.req(CMD_READ, 0, 512, flags=0x400, cookie=2)
    assert c.simple()[0] == EINVAL
    c.req(CMD_READ, 0, 512, flags=F_DF, cookie=3)     # DF needs structured replies
    assert c.simple()[0] == EINVAL
    c.req(CMD_BS, 0, 512, cookie=4)                  # no meta context
    assert c.simple()[0] == EINVAL
    c.req(CMD_READ, 0, 512, cookie=5)
    err, cookie, data = c.simple(512)
    assert err == 0 and cookie == 5


@test("past the end: EINVAL for read/trim/cache, ENOSPC for write (payload drained)")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    c.req(CMD_READ, SIZE - 512, 1024, cookie=1)
    assert c.simple()[0] == EINVAL
    c.req(CMD_TRIM, SIZE, 1, cookie=2)
    assert c.simple()[0] == EINVAL
    c.req(CMD_CACHE, 2**64 - 512, 1024, cookie=3)
    assert c.simple()[0] == EINVAL
    c.req(CMD_WRITE, SIZE - 100, 4096, cookie=4, payload=b"\xee" * 4096)
    assert c.simple()[0] == ENOSPC
    c.req(CMD_WZ, 2**64 - 1, 2, cookie=5)
    assert c.simple()[0] == ENOSPC
    c.req(CMD_READ, SIZE - 4096, 4096, cookie=6)
    err, _, data = c.simple(4096)
    assert err == 0 and b"\xee" not in data


@test("WRITE over the 64 MiB maximum: EINVAL, its 80 MiB payload drained, in step")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    n = 80 << 20
    c.s.sendall(struct.pack(">IHHQQI", REQ, 0, CMD_WRITE, 7, 0, n))
    chunk = b"\x5a" * (1 << 20)
    for _ in range(n >> 20):
        c.s.sendall(chunk)
    assert c.simple() == (EINVAL, 7, b"")
    c.req(CMD_READ, 0, 4096, cookie=8)
    err, cookie, data = c.simple(4096)
    assert err == 0 and cookie == 8 and data != b"\x5a" * 4096


@test("64 MiB WRITE and READ (the maximum) round trip")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    n = 64 << 20
    if SIZE < n:
        return
    pat = os.urandom(1 << 20) * 64
    c.req(CMD_WRITE, 0, n, cookie=1, payload=pat)
    assert c.simple() == (0, 1, b"")
    c.req(CMD_READ, 0, n, cookie=2)
    err, _, data = c.simple(n)
    assert err == 0 and data == pat


@test("zero-length READ/WRITE/TRIM, FLUSH and CACHE with FUA succeed")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    for i, cmd in enumerate((CMD_READ, CMD_WRITE, CMD_TRIM, CMD_FLUSH)):
        c.req(cmd, 0, 0, cookie=i)
        assert c.simple() == (0, i, b""), cmd
    c.req(CMD_CACHE, 0, 65536, flags=F_FUA, cookie=9)
    assert c.simple() == (0, 9, b"")


@test("pipelined requests: all answered, cookies matched, data right")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    n = 64
    for i in range(n):
        c.req(CMD_WRITE, 1048576 + i * 4096, 4096, cookie=1000 + i,
              payload=bytes([i]) * 4096)
    got = set()
    for i in range(n):
        err, cookie, _ = c.simple()
        assert err == 0
        got.add(cookie)
    assert got == set(range(1000, 1000 + n))
    for i in range(n):
        c.req(CMD_READ, 1048576 + i * 4096, 4096, cookie=i)
    for i in range(n):
        err, cookie, data = c.simple(4096)
        assert err == 0 and data == bytes([cookie]) * 4096, cookie


@test("DISC: earlier requests answered, then close")
def _():
    c = Conn()
    c.greet()
    c.go(sr=False)
    c.req(CMD_WRITE, 0, 4096, cookie=1, payload=b"a" * 4096)
    c.req(CMD_DISC, 0, 0, cookie=2)
    assert c.simple() == (0, 1, b"")
    assert c.closed()


# ---- structured replies ----

@test("structured: READ errors are error chunks; holes are OFFSET_HOLE; DF gives one chunk")
def _():
    c = Conn()
    c.greet()
    c.go()
    assert c.tflags & 0x80      # SEND_DF
    c.req(CMD_READ, SIZE, 512, cookie=1)
    cookie, ch = c.structured()
    assert cookie == 1 and errchunk(ch) == EINVAL
    c.req(CMD_READ, 0, 512, flags=0x400, cookie=2)
    assert errchunk(c.structured()[1]) == EINVAL
    # make a hole (if trim is advertised) and read it
    if c.tflags & 0x20:
        c.req(CMD_TRIM, SIZE - (1 << 20), 1 << 20, cookie=3)
        k = c.chunk()
        assert (k[0] == "simple" and k[2] == 0) or k[2] == T_NONE
        c.req(CMD_READ, SIZE - (1 << 20), 1 << 20, cookie=4)
        _, ch = c.structured()
        total = 0
        for t, d in ch:
            assert t in (T_DATA, T_HOLE), t
            if t == T_HOLE:
                total += struct.unpack(">QI", d)[1]
            else:
                total += len(d) - 8
                assert d[8:] == b"\0" * (len(d) - 8)
        assert total == 1 << 20
        assert any(t == T_HOLE for t, d in ch), "no hole chunk for a trimmed range"
    c.req(CMD_READ, SIZE - (1 << 20), 65536, flags=F_DF, cookie=5)
    _, ch = c.structured()
    assert len(ch) == 1 and ch[0][0] == T_DATA and len(ch[0][1]) == 8 + 65536


@test("structured: BLOCK_STATUS with REQ_ONE gives one extent within the range")
def _():
    c = Conn()
    c.greet()
    c.go()
    c.req(CMD_BS, 0, 1 << 20, flags=F_REQ_ONE, cookie=1)
    _, ch = c.structured()
    t, d = ch[0]
    assert t == T_BS and len(d) == 12, (t, len(d))
    ctx, ln, fl = struct.unpack(">III", d)
    assert ctx == 1 and 0 < ln <= 1 << 20


# ---- extended headers ----

@test("extended headers: 64-bit requests, extended replies, BLOCK_STATUS_EXT")
def _():
    c = Conn()
    c.greet()
    c.go(eh=True)
    pat = os.urandom(8192)
    c.req(CMD_WRITE, 8192, len(pat), cookie=1, payload=pat)
    k = c.chunk()
    assert k[0] == "ext" and k[2] == T_NONE and k[1] & 1 and k[5] == 8192, k
    c.req(CMD_READ, 8192, len(pat), cookie=2)
    _, ch = c.structured()
    assert ch[0][0] == T_DATA and ch[0][1][8:] == pat
    c.req(CMD_BS, 0, SIZE, cookie=3)
    _, ch = c.structured()
    t, d = ch[0]
    assert t == T_BS_EXT, t
    ctx, count = struct.unpack(">II", d[:8])
    assert ctx == 1 and count >= 1 and len(d) == 8 + 16 * count
    total = sum(struct.unpack(">QQ", d[8 + 16 * i:24 + 16 * i])[0] for i in range(count))
    assert 0 < total <= SIZE
    # WRITE without PAYLOAD_LEN, as qemu >= 8.2 sends it (a FUA write of
    # 4096): its length is its payload's; served, the stream stays in step
    pat2 = os.urandom(4096)
    c.s.sendall(struct.pack(">IHHQQQ", EREQ, F_FUA, CMD_WRITE, 4, 0, 4096) + pat2)
    k = c.chunk()
    assert k[0] == "ext" and k[2] == T_NONE and k[3] == 4, k
    c.req(CMD_READ, 0, 4096, cookie=5)
    _, ch = c.structured()
    assert ch[-1][0] == T_DATA and ch[-1][1][8:] == pat2
    # the same past the end: ENOSPC, and its payload is drained, not parsed
    c.s.sendall(struct.pack(">IHHQQQ", EREQ, 0, CMD_WRITE, 7, SIZE, 4096) +
                struct.pack(">IHHQQQ", EREQ, 0, CMD_READ, 99, 0, 0) * 128)
    _, ch = c.structured()
    assert errchunk(ch) == ENOSPC
    c.req(CMD_READ, 0, 4096, cookie=8)
    _, ch = c.structured()
    assert ch[-1][0] == T_DATA and ch[-1][1][8:] == pat2
    # a payload over the maximum: hard disconnect
    c.s.sendall(struct.pack(">IHHQQQ", EREQ, F_PAYLOAD_LEN, CMD_WRITE, 6, 0, 1 << 40))
    assert c.closed()


@test("extended headers: EXPORT_NAME afterwards is a hard disconnect")
def _():
    c = Conn()
    c.greet()
    assert c.replies(OPT_EH)[-1][0] == ACK
    c.opt(OPT_EXPORT_NAME, b"")
    assert c.closed()


sys.exit(1 if failures else 0)
