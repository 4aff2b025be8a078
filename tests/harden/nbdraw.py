#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A raw NBD client for hostile and protocol-level tests: it speaks the
wire format directly (no libnbd) so that it can send what real clients
never would.  Used as a library by the other helpers and as a command:

  nbdraw.py SOCK tls-reqd            options before STARTTLS get ERR_TLS_REQD,
                                     EXPORT_NAME is a disconnect
  nbdraw.py SOCK names NAME...       INFO for each NAME: prints the reply type
  nbdraw.py SOCK export-name NAME    EXPORT_NAME: prints 'ok SIZE' or 'closed'
  nbdraw.py SOCK hostile-ro NAME     a hostile session against a read-only export
  nbdraw.py SOCK caps                option length and name length caps
  nbdraw.py SOCK tls-forget CAFILE   negotiated state is forgotten after STARTTLS
Each prints "ok - ..." / "not ok - ..." lines where it checks something.
"""
import socket
import struct
import sys

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REPMAGIC = 0x3E889045565A9
REQ = 0x25609513
SIMPLE = 0x67446698
STRUCT = 0x668E33EF

OPT = dict(EXPORT_NAME=1, ABORT=2, LIST=3, STARTTLS=5, INFO=6, GO=7, SR=8,
           LIST_META=9, SET_META=10, EXT=11)
REP = {1: "ACK", 2: "SERVER", 3: "INFO", 4: "META_CONTEXT",
       0x80000001: "ERR_UNSUP", 0x80000002: "ERR_POLICY", 0x80000003: "ERR_INVALID",
       0x80000004: "ERR_PLATFORM", 0x80000005: "ERR_TLS_REQD", 0x80000006: "ERR_UNKNOWN",
       0x80000007: "ERR_SHUTDOWN", 0x80000008: "ERR_BLOCK_SIZE_REQD",
       0x80000009: "ERR_TOO_BIG"}
CMD = dict(READ=0, WRITE=1, DISC=2, FLUSH=3, TRIM=4, CACHE=5, ZEROES=6, BSTATUS=7)


class Closed(Exception):
    pass


class Checks:
    """res(cond, what) prints an ok/not ok line; status() is 1 if any failed."""

    def __init__(self):
        self.bad = 0

    def __call__(self, cond, what):
        self.bad += not cond
        print(f"{'ok' if cond else 'not ok'} - {what}")

    def status(self):
        return 1 if self.bad else 0


class Raw:
    def __init__(self, path, timeout=10):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)  # blocking: waits while the listen backlog is full
        self.s.settimeout(timeout)

    def recv(self, n):
        b = b""
        while len(b) < n:
            try:
                c = self.s.recv(n - len(b))
            except (ConnectionResetError, BrokenPipeError):
                c = b""
            if not c:
                raise Closed()
            b += c
        return b

    def send(self, b):
        try:
            self.s.sendall(b)
        except (ConnectionResetError, BrokenPipeError):
            raise Closed()

    def greet(self, cflags=3):
        magic, opts, flags = struct.unpack(">QQH", self.recv(18))
        assert magic == NBDMAGIC and opts == IHAVEOPT, "bad greeting"
        self.send(struct.pack(">I", cflags))
        return flags

    def option(self, opt, data=b""):
        self.send(struct.pack(">QII", IHAVEOPT, opt, len(data)) + data)

    def reply(self):
        magic, opt, typ, ln = struct.unpack(">QIII", self.recv(20))
        assert magic == REPMAGIC, "bad option reply magic"
        return opt, typ, self.recv(ln)

    def final_reply(self):
        """Read replies until ACK or an error; return (type name, [infos])."""
        items = []
        while True:
            _, typ, data = self.reply()
            if typ == 1 or typ & 0x80000000:
                return REP.get(typ, hex(typ)), items
            items.append((typ, data))

    def info(self, name, go=False):
        n = name.encode()
        self.option(OPT["GO" if go else "INFO"],
                    struct.pack(">I", len(n)) + n + struct.pack(">H", 0))
        return self.final_reply()

    def export_name(self, name):
        self.option(OPT["EXPORT_NAME"], name.encode())
        size, flags = struct.unpack(">QH", self.recv(10))
        return size, flags

    def request(self, cmd, off=0, length=0, flags=0, cookie=1, payload=b""):
        self.send(struct.pack(">IHHQQI", REQ, flags, cmd, cookie, off, length) + payload)

    def simple_reply(self, read_len=0):
        magic, err, cookie = struct.unpack(">IIQ", self.recv(16))
        assert magic == SIMPLE, f"unexpected reply magic {magic:#x}"
        data = self.recv(read_len) if err == 0 and read_len else b""
        return err, cookie, data

    def close(self):
        self.s.close()


def closed_soon(r):
    """True if the server closes the connection (reads EOF) within the timeout."""
    try:
        r.s.settimeout(5)
        return r.s.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def cmd_tls_reqd(sock):
    res = Checks()
    r = Raw(sock)
    r.greet()
    for name, data in (("LIST", b""), ("INFO", struct.pack(">IH", 0, 0)),
                       ("GO", struct.pack(">IH", 0, 0)), ("SR", b""),
                       ("LIST_META", struct.pack(">II", 0, 0))):
        r.option(OPT[name], data)
        typ, _ = r.final_reply()
        res(typ == "ERR_TLS_REQD", f"--tls=require: {name} before STARTTLS gets {typ}")
    r.option(OPT["EXPORT_NAME"], b"")
    res(closed_soon(r), "--tls=require: EXPORT_NAME before STARTTLS disconnects")
    return res.status()


def cmd_names(sock, names):
    r = Raw(sock)
    r.greet()
    for n in names:
        typ, _ = r.info(n)
        print(f"{n!r} {typ}")
    r.option(OPT["ABORT"])
    return 0


def cmd_export_name(sock, name):
    r = Raw(sock)
    r.greet()
    try:
        size, _ = r.export_name(name)
        print(f"ok {size}")
    except Closed:
        print("closed")
    return 0


def cmd_hostile_ro(sock, name):
    """Every way of writing a read-only export, then malformed requests.
    Prints one line per request with the error it got (0 = success)."""
    r = Raw(sock)
    r.greet()
    size, flags = r.export_name(name)
    print(f"export size {size} flags {flags:#x}")
    cookie = 0
    results = []

    def go(cmd, off, ln, fl=0, payload=b"", read_len=0):
        nonlocal cookie
        cookie += 1
        r.request(CMD[cmd] if isinstance(cmd, str) else cmd, off, ln, fl, cookie, payload)
        err, ck, _ = r.simple_reply(read_len)
        assert ck == cookie, "cookie mismatch"
        results.append((cmd, off, ln, fl, err))
        return err

    blk = b"\xEE" * 4096
    go("WRITE", 0, 4096, 0, blk)
    go("WRITE", 0, 4096, 1, blk)                       # FUA
    go("WRITE", size - 512, 4096, 0, blk)              # across the end
    go("WRITE", (1 << 63) - 1, 4096, 0, blk)           # offset overflow
    go("TRIM", 0, size)
    go("TRIM", 0, 0xFFFFFFFF)
    go("ZEROES", 0, 65536)
    go("ZEROES", 0, 65536, 2)                          # NO_HOLE
    go("ZEROES", 0, 65536, 16)                         # FAST_ZERO
    go("WRITE", 0, 0, 0)                               # empty write
    go("FLUSH", 0, 0)
    go("CACHE", 0, 65536)
    go(99, 0, 4096)                                    # unknown command
    go("READ", 0, 4096, 0xFF, read_len=4096)           # unknown flags
    go("READ", size, 4096, read_len=4096)              # past the end
    go("WRITE", 0, 4096, 0xFFFF, blk)                  # garbage flags
    go("BSTATUS", 0, 4096)                             # no meta context
    go("READ", 0, 4096, read_len=4096)                 # a plain read still works
    for cmd, off, ln, fl, err in results:
        print(f"{cmd} off={off} len={ln} flags={fl:#x} -> error {err}")
    # oversized WRITE: the server may drain or disconnect; either way it
    # must not write
    try:
        r.request(CMD["WRITE"], 0, 64 << 20, 0, 1000)
        r.send(b"\xEE" * (1 << 20))
        r.close()
    except Closed:
        pass
    writes_ok = [x for x in results if x[0] in ("WRITE", "TRIM", "ZEROES") and x[4] == 0
                 and x[2] > 0]
    print(f"{'not ok' if writes_ok else 'ok'} - read-only export: every write, trim and "
          f"zero request failed ({len(results)} requests)")
    return 1 if writes_ok else 0


def cmd_tls_forget(sock, cafile):
    """Negotiate structured replies and base:allocation in plaintext, then
    STARTTLS: the server must have forgotten both (spec: all state)."""
    import ssl
    res = Checks()
    r = Raw(sock)
    r.greet()
    r.option(OPT["SR"])
    res(r.final_reply()[0] == "ACK", "STARTTLS state: structured replies acked before TLS")
    r.option(OPT["SET_META"], struct.pack(">I", 0) + struct.pack(">I", 1) +
             struct.pack(">I", 15) + b"base:allocation")
    typ, items = r.final_reply()
    res(typ == "ACK" and len(items) == 1, "STARTTLS state: base:allocation selected before TLS")
    r.option(OPT["STARTTLS"])
    res(r.final_reply()[0] == "ACK", "STARTTLS acked")
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    r.s = ctx.wrap_socket(r.s, server_hostname="localhost")
    res(r.s.version() in ("TLSv1.2", "TLSv1.3"), f"TLS handshake ({r.s.version()})")
    r.option(OPT["STARTTLS"])
    typ, _ = r.final_reply()
    res(typ == "ERR_INVALID", f"a second STARTTLS gets ERR_INVALID ({typ})")
    typ, _ = r.info("", go=True)
    res(typ == "ACK", "GO after TLS")
    r.request(CMD["READ"], 0, 512, 0, 7)
    magic = struct.unpack(">I", r.recv(4))[0]
    res(magic == SIMPLE, f"after STARTTLS, replies are simple again (magic {magic:#x})")
    if magic == SIMPLE:
        err, cookie = struct.unpack(">IQ", r.recv(12))
        r.recv(512 if err == 0 else 0)
        r.request(CMD["BSTATUS"], 0, 512, 0, 8)
        err, cookie, _ = r.simple_reply()
        res(err == 22, f"after STARTTLS, BLOCK_STATUS without a new SET_META fails (error {err})")
    r.request(CMD["DISC"])
    return res.status()


def cmd_caps(sock):
    res = Checks()
    r = Raw(sock)
    r.greet()
    r.option(99, bytes(65536))
    typ, _ = r.final_reply()
    res(typ == "ERR_UNSUP", f"unknown option with 64 KiB of data: skipped, ERR_UNSUP ({typ})")
    name = "x" * 4097
    r.option(OPT["INFO"], struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", 0))
    typ, _ = r.final_reply()
    res(typ in ("ERR_INVALID", "ERR_UNKNOWN"), f"INFO with a 4097-byte name refused ({typ})")
    r.option(OPT["EXPORT_NAME"], name.encode())
    res(closed_soon(r), "EXPORT_NAME with a 4097-byte name disconnects")
    r = Raw(sock)
    r.greet()
    r.send(struct.pack(">QII", IHAVEOPT, OPT["LIST"], 1 << 30))
    res(closed_soon(r), "an option announcing 1 GiB of data disconnects at once")
    return res.status()


def main():
    sock, what = sys.argv[1], sys.argv[2]
    if what == "tls-reqd":
        return cmd_tls_reqd(sock)
    if what == "names":
        return cmd_names(sock, sys.argv[3:])
    if what == "export-name":
        return cmd_export_name(sock, sys.argv[3])
    if what == "tls-forget":
        return cmd_tls_forget(sock, sys.argv[3])
    if what == "caps":
        return cmd_caps(sock)
    if what == "hostile-ro":
        return cmd_hostile_ro(sock, sys.argv[3])
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
