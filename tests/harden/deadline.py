#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""How long an NBD server keeps a client that does not finish negotiating.

Usage: deadline.py SOCK silent|trickle|starttls|payload|refused [LIMIT]
       deadline.py SOCK tls-payload LIMIT CAFILE
  silent:   read the greeting, then say nothing
  trickle:  read the greeting, then send the client flags and an option
            one byte every 0.3 s (never idle long enough for an idle timer)
  starttls: send the client flags and STARTTLS, then nothing (TLS stall)
  payload:  GO, then a WRITE header promising 64 MiB and 4 KiB of it (the
            time is counted from the WRITE)
  tls-payload: the same inside TLS (after STARTTLS, X.509 trusting CAFILE)
  refused:  print "refused" if the server closes without a greeting
Prints the seconds until the server closed the connection, or "open" if it
was still open after LIMIT seconds (default 30).
"""
import socket
import struct
import sys
import time

sock, mode = sys.argv[1], sys.argv[2]
limit = float(sys.argv[3]) if len(sys.argv) > 3 else 30
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock)
t0 = time.time()
s.settimeout(limit)
try:
    greeting = b""
    while len(greeting) < 18:
        c = s.recv(18 - len(greeting))
        if not c:
            break
        greeting += c
except (socket.timeout, ConnectionResetError):
    greeting = b""
if mode == "refused":
    print("refused" if len(greeting) < 18 else "greeted")
    sys.exit(0)
if len(greeting) < 18:
    print("no greeting")
    sys.exit(1)
data = struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 3, 60000)
if mode == "tls-payload":
    # STARTTLS (X.509, CA file in argv[4]), then as "payload" inside TLS
    import ssl
    s.send(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 5, 0))
    ack = b""
    while len(ack) < 20:
        ack += s.recv(20 - len(ack))
    ctx = ssl.create_default_context(cafile=sys.argv[4])
    s = ctx.wrap_socket(s, server_hostname="localhost")
    s.send(struct.pack(">QII", 0x49484156454F5054, 7, 6) + struct.pack(">IH", 0, 0))
    mode = "payload-go"
if mode in ("payload", "payload-go"):
    # negotiate, then a WRITE promising 64 MiB and only 4 KiB of it
    if mode == "payload":
        s.send(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 7, 6) +
               struct.pack(">IH", 0, 0))
    got = b""
    while not got.endswith(struct.pack(">II", 1, 0)):  # ACK type + zero length
        c = s.recv(4096)
        if not c:
            print("no GO")
            sys.exit(1)
        got += c
    t0 = time.time()
    s.send(struct.pack(">IHHQQI", 0x25609513, 0, 1, 1, 0, 64 << 20) + b"\xab" * 4096)
    mode = "silent"
if mode == "starttls":
    # STARTTLS acknowledged, then no ClientHello: a stalled TLS handshake
    s.send(struct.pack(">I", 3) + struct.pack(">QII", 0x49484156454F5054, 5, 0))
    mode = "silent"
i = 0
while time.time() - t0 < limit:
    if mode == "trickle":
        s.settimeout(0.3)
        try:
            if i < len(data):
                s.send(data[i:i + 1])
                i += 1
            else:
                # then option data, one byte at a time, forever
                s.send(b"\0")
        except (BrokenPipeError, ConnectionResetError):
            print(f"{time.time() - t0:.1f}")
            sys.exit(0)
    else:
        s.settimeout(max(0.1, limit - (time.time() - t0)))
    try:
        c = s.recv(4096)
        if not c:
            print(f"{time.time() - t0:.1f}")
            sys.exit(0)
    except (socket.timeout, TimeoutError):
        pass
    except (ConnectionResetError, OSError) as e:
        if isinstance(e, (socket.timeout, TimeoutError)):
            continue
        print(f"{time.time() - t0:.1f}")
        sys.exit(0)
print("open")
