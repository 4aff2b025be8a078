#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Bad requests through libnbd with strict mode off, so that they really
reach the server: past-end ranges, unknown or misplaced flags, commands
not advertised, writes on a read-only export; plus a 128 MiB write-zeroes
whose chunking must advance.

Usage: nbdsh_checks.py URI rw|ro
Prints "ok - ..." / "not ok - ..." lines; exits 1 if any failed.
"""
import errno
import sys

import nbd

uri, mode = sys.argv[1], sys.argv[2]
failures = 0


def result(name, good, why=""):
    global failures
    if good:
        print("ok - %s: %s" % (mode, name))
    else:
        failures += 1
        print("not ok - %s: %s %s" % (mode, name, why))


def expect(name, fn, err):
    """fn must fail with errno err (a tuple: any of them); 0: succeed."""
    errs = err if isinstance(err, tuple) else (err,)
    try:
        fn()
        result(name, 0 in errs, "succeeded")
    except nbd.Error as e:
        result(name, e.errnum in errs,
               "got %s" % (errno.errorcode.get(e.errnum, e.errnum)))


h = nbd.NBD()
h.set_strict_mode(0)
h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
h.connect_uri(uri)
size = h.get_size()
bs = lambda *a: h.block_status(*a)   # noqa: E731

expect("read past the end: EINVAL", lambda: h.pread(1024, size - 512), errno.EINVAL)
expect("read at 2^63: EINVAL", lambda: h.pread(512, 1 << 63), errno.EINVAL)
expect("block status past the end: EINVAL",
       lambda: bs(4096, size, lambda *a: 0), errno.EINVAL)
expect("cache past the end: EINVAL", lambda: h.cache(4096, size), errno.EINVAL)
expect("read with an unknown flag: EINVAL", lambda: h.pread(512, 0, 1 << 7), errno.EINVAL)
expect("read with REQ_ONE: EINVAL", lambda: h.pread(512, 0, nbd.CMD_FLAG_REQ_ONE),
       errno.EINVAL)
# FUA is valid on every command once advertised, EINVAL otherwise.
expect("read with FUA: accepted iff FUA is advertised",
       lambda: h.pread(512, 0, nbd.CMD_FLAG_FUA), 0 if h.can_fua() else errno.EINVAL)
expect("read with DF", lambda: h.pread(65536, 0, nbd.CMD_FLAG_DF), 0)
if h.can_flush():
    expect("flush with FUA", lambda: h.flush(nbd.CMD_FLAG_FUA), 0 if h.can_fua() else errno.EINVAL)
else:
    expect("flush not advertised: EINVAL", lambda: h.flush(), errno.EINVAL)
expect("cache", lambda: h.cache(1 << 20, 0), 0)
expect("zero-length read", lambda: h.pread(0, 0), 0)

if mode == "rw":
    expect("write past the end: ENOSPC", lambda: h.pwrite(b"x" * 1024, size - 512), errno.ENOSPC)
    expect("write-zeroes past the end: ENOSPC", lambda: h.zero(1024, size - 512), errno.ENOSPC)
    expect("trim past the end: EINVAL", lambda: h.trim(1024, size - 512), errno.EINVAL)
    expect("write with NO_HOLE: EINVAL",
           lambda: h.pwrite(b"x", 0, nbd.CMD_FLAG_NO_HOLE), errno.EINVAL)
    expect("trim with FAST_ZERO: EINVAL",
           lambda: h.trim(4096, 0, nbd.CMD_FLAG_FAST_ZERO), errno.EINVAL)
    if h.can_fast_zero():
        expect("write-zeroes with FAST_ZERO: done or ENOTSUP",
               lambda: h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO), (0, errno.ENOTSUP))
    else:
        expect("FAST_ZERO not advertised: EINVAL",
               lambda: h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO), errno.EINVAL)
    expect("write-zeroes with NO_HOLE", lambda: h.zero(65536, 0, nbd.CMD_FLAG_NO_HOLE), 0)
    expect("FUA write", lambda: h.pwrite(b"y" * 4096, 4096, nbd.CMD_FLAG_FUA), 0)
    # 128 MiB of write-zeroes must zero all of it (a chunk loop that
    # never advances zeroes only the first chunk).
    if size >= (129 << 20):
        h.pwrite(b"\x77" * 65536, (128 << 20) - 65536)
        h.pwrite(b"\x77" * 65536, 0)
        expect("128 MiB write-zeroes", lambda: h.zero(128 << 20, 0, nbd.CMD_FLAG_NO_HOLE), 0)
        result("128 MiB write-zeroes reached the end",
               h.pread(65536, (128 << 20) - 65536) == b"\0" * 65536)
        result("... and the start", h.pread(65536, 0) == b"\0" * 65536)
    # block status: written data is data
    h.pwrite(b"\x01" * 65536, 1 << 20)
    ext = []
    bs(65536, 1 << 20, lambda meta, off, e, err: ext.extend(e) or 0)
    result("block status of written data is data", len(ext) >= 2 and ext[1] & 3 == 0, str(ext))
else:
    expect("write on a read-only export: EPERM", lambda: h.pwrite(b"x" * 512, 0), errno.EPERM)
    expect("trim on a read-only export: EPERM", lambda: h.trim(4096, 0), errno.EPERM)
    expect("write-zeroes on a read-only export: EPERM", lambda: h.zero(4096, 0), errno.EPERM)
    expect("FAST_ZERO write-zeroes on a read-only export: refused",
           lambda: h.zero(4096, 0, nbd.CMD_FLAG_FAST_ZERO), (errno.EPERM, errno.EINVAL))
    expect("write past the end on a read-only export: refused",
           lambda: h.pwrite(b"x" * 512, size), (errno.EPERM, errno.ENOSPC))
    result("read-only export advertises no trim, zero or fast zero",
           not h.can_trim() and not h.can_zero() and not h.can_fast_zero() and h.is_read_only())

h.shutdown()
sys.exit(1 if failures else 0)
