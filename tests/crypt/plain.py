#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""dm-crypt's plain format, written independently of aioloop with Python's
`cryptography` package: the tests' reference for what aioloop's encryption
stage must put on disk and read back.

    plain.py encrypt|decrypt --cipher CIPHER --key-file KEY
             [--sector-size 512|4096] [--iv-large-sectors] [--iv-offset SECTORS]
             [--offset BYTES] [--size BYTES] IN OUT

decrypt: the data of IN (from --offset, --size bytes or to the end in whole
sectors) decrypted sector by sector into OUT.  encrypt: IN (plaintext)
encrypted into OUT at --offset (OUT is created or updated in place).
Each sector's IV number is (byte / 512 + iv_offset), divided by
sector_size / 512 with --iv-large-sectors, as dm-crypt computes it.
Exit status 77 when the `cryptography` package is missing.
"""
import argparse
import hashlib
import os
import sys

try:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
except ImportError:
    print("skip: python3-cryptography is not installed", file=sys.stderr)
    sys.exit(77)


def iv_number(pos, args):
    s = pos // 512 + args.iv_offset
    if args.iv_large_sectors:
        s //= args.sector_size // 512
    return s


def sector_cipher(key, args, pos):
    n = iv_number(pos, args).to_bytes(8, "little") + bytes(8)
    if args.cipher == "aes-xts-plain64":
        return Cipher(algorithms.AES(key), modes.XTS(n))
    if args.cipher == "aes-cbc-essiv:sha256":
        salt = hashlib.sha256(key).digest()
        enc = Cipher(algorithms.AES(salt), modes.ECB()).encryptor()
        iv = enc.update(n) + enc.finalize()
        return Cipher(algorithms.AES(key), modes.CBC(iv))
    sys.exit("unknown cipher " + args.cipher)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["encrypt", "decrypt"])
    ap.add_argument("--cipher", default="aes-xts-plain64")
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--sector-size", type=int, default=512)
    ap.add_argument("--iv-large-sectors", action="store_true")
    ap.add_argument("--iv-offset", type=int, default=0)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--size", type=int, default=-1)
    ap.add_argument("infile")
    ap.add_argument("outfile")
    args = ap.parse_args()
    key = open(args.key_file, "rb").read()
    ss = args.sector_size
    if args.mode == "decrypt":
        with open(args.infile, "rb") as f:
            f.seek(args.offset)
            data = f.read() if args.size < 0 else f.read(args.size)
        data = data[: len(data) - len(data) % ss]
        out = bytearray()
        for pos in range(0, len(data), ss):
            d = sector_cipher(key, args, pos).decryptor()
            out += d.update(data[pos : pos + ss]) + d.finalize()
        with open(args.outfile, "wb") as f:
            f.write(out)
    else:
        data = open(args.infile, "rb").read()
        if len(data) % ss:
            sys.exit("plaintext is not whole sectors")
        out = bytearray()
        for pos in range(0, len(data), ss):
            e = sector_cipher(key, args, pos).encryptor()
            out += e.update(data[pos : pos + ss]) + e.finalize()
        mode = "r+b" if os.path.exists(args.outfile) else "wb"
        with open(args.outfile, mode) as f:
            f.seek(args.offset)
            f.write(out)


if __name__ == "__main__":
    main()
