#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Crash consistency of an NBD server under SIGKILL.

Runs a random write workload over several NBD connections (FUA writes and
flushes mixed in), kills the server with SIGKILL at a random moment,
restarts it, reads the whole export back and checks every 4 KiB block:

  - a write acknowledged with FUA, or acknowledged before a flush that was
    itself acknowledged, is durable: the block holds that write or a later
    one (each write carries a unique sequence number and a pattern derived
    from it, so a block's contents name the write they came from);
  - a block holds nothing but the initial zeroes or one of its own writes
    (no torn, misplaced or invented data).

Each connection owns a contiguous region of blocks and writes
sequentially, so the versions of a block are totally ordered.  A flush
covers the writes its own connection had acknowledged before sending it,
and, when the server advertises CAN_MULTI_CONN, those of every connection.

Usage: crash.py --cmd 'server command with {sock} and {file}' --dir DIR
                [--seconds 60] [--seed N] [--conns 4] [--blocks 1024]
Prints "ok - ..." / "not ok - ..." lines and the seed.
"""
import argparse
import os
import random
import shlex
import signal
import struct
import subprocess
import sys
import threading
import time

import nbd

BS = 4096
MAGIC = 0x61696F6C6F6F7057  # "aiolooop"-ish tag at the start of each block


def block_data(seq, block):
    """Contents of block `block` as written by write number `seq`."""
    head = struct.pack(">QQQ", MAGIC, seq, block)
    rnd = random.Random(seq * 1000003 + block)
    return head + rnd.randbytes(BS - len(head))


def identify(data, block):
    """Sequence number a block's contents came from: 0 for zeroes, None if
    the data is not one of the writes to this block."""
    if data == bytes(BS):
        return 0
    magic, seq, blk = struct.unpack(">QQQ", data[:24])
    if magic != MAGIC or blk != block or data != block_data(seq, block):
        return None
    return seq


class State:
    """Per-block versions: list of [seq, status] with status 'sent',
    'acked' or 'durable'; index 0 is the baseline (durable)."""

    def __init__(self, nblocks):
        self.lock = threading.Lock()
        self.blocks = [[[0, "durable"]] for _ in range(nblocks)]
        self.seq = 0
        self.acked_since_flush = {}  # conn -> list of (block, seq)
        self.stats = dict(writes=0, fua=0, flushes=0, acked=0)

    def next_seq(self):
        with self.lock:
            self.seq += 1
            return self.seq


def worker(idx, args, state, sock, stop, multi_conn_box, errors):
    rnd = random.Random(args.seed * 7919 + idx + state.seq)
    try:
        h = nbd.NBD()
        h.connect_unix(sock)
    except nbd.Error:
        return
    try:
        can_fua = h.can_fua()
        can_flush = h.can_flush()
        multi = h.can_multi_conn()
        multi_conn_box[idx] = multi
        per = args.blocks // args.conns
        first = idx * per
        pending = []  # versions acked since this conn's last flush
        while not stop.is_set():
            r = rnd.random()
            if r < 0.08 and can_flush:
                with state.lock:
                    if multi:
                        covered = [v for lst in state.acked_since_flush.values() for v in lst]
                        covered += pending
                    else:
                        covered = list(pending)
                state.stats["flushes"] += 1
                h.flush()
                with state.lock:
                    for v in covered:
                        v[1] = "durable"
                    pending.clear()
                    if multi:
                        for lst in state.acked_since_flush.values():
                            lst.clear()
                continue
            # a write of 1-4 contiguous blocks inside this connection's region
            start = first + rnd.randrange(per)
            n = min(rnd.randint(1, 4), first + per - start)
            run = list(range(start, start + n))
            seq = state.next_seq()
            fua = can_fua and rnd.random() < 0.3
            vers = []
            with state.lock:
                for b in run:
                    v = [seq, "sent"]
                    state.blocks[b].append(v)
                    vers.append(v)
            buf = b"".join(block_data(seq, b) for b in run)
            state.stats["writes"] += 1
            h.pwrite(buf, run[0] * BS, nbd.CMD_FLAG_FUA if fua else 0)
            with state.lock:
                state.stats["acked"] += 1
                for v in vers:
                    if fua:
                        v[1] = "durable"
                        state.stats["fua"] += 1
                    else:
                        v[1] = "acked"
                        pending.append(v)
                if multi and not fua:
                    state.acked_since_flush.setdefault(idx, []).extend(vers)
    except nbd.Error:
        pass  # the server was killed under us
    except Exception as e:  # noqa: BLE001 - report anything else as a failure
        errors.append(repr(e))
    finally:
        try:
            h.shutdown()
        except Exception:  # noqa: BLE001
            pass


def start_server(args, sock, path):
    if os.path.exists(sock):
        os.unlink(sock)
    cmd = args.cmd.format(sock=sock, file=path)
    p = subprocess.Popen(shlex.split(cmd), stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(args.dir, "server.log"), "a"),
                         start_new_session=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"server exited with {p.returncode}: {cmd}")
        if os.path.exists(sock):
            try:
                h = nbd.NBD()
                h.connect_unix(sock)
                h.shutdown()
                return p
            except nbd.Error:
                pass
        time.sleep(0.02)
    p.kill()
    raise RuntimeError(f"server did not start: {cmd}")


def check(args, state, sock):
    """Read every block back through a fresh server and check it; then make
    what was found the new durable baseline.  Returns a list of errors."""
    h = nbd.NBD()
    h.connect_unix(sock)
    errs = []
    lost_acked = 0
    for b in range(args.blocks):
        data = h.pread(BS, b * BS)
        seq = identify(data, b)
        vers = state.blocks[b]
        last_durable = max(i for i, v in enumerate(vers) if v[1] == "durable")
        allowed = {v[0] for v in vers[last_durable:]}
        if seq is None:
            errs.append(f"block {b}: contents are none of its writes")
        elif seq not in allowed:
            known = {v[0]: v[1] for v in vers}
            errs.append(f"block {b}: has write {seq} ({known.get(seq, 'unknown')}), "
                        f"but write {vers[last_durable][0]} was durable; allowed {sorted(allowed)}")
        else:
            # informational: an acknowledged write older than what is there
            last_acked = max(i for i, v in enumerate(vers) if v[1] != "sent")
            if seq != vers[last_acked][0] and vers[last_acked][0] > seq:
                lost_acked += 1
        state.blocks[b] = [[seq if seq is not None else -1, "durable"]]
    h.shutdown()
    state.acked_since_flush.clear()
    return errs, lost_acked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cmd", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--blocks", type=int, default=1024)
    ap.add_argument("--name", default="crash consistency")
    ap.add_argument("--zero-first", action="store_true",
                    help="write zeroes through the server before the first crash "
                    "(a backing whose zeroes do not read as zeroes: encryption)")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    print(f"seed {args.seed} (rerun with --seed {args.seed})", flush=True)
    rnd = random.Random(args.seed)
    path = os.path.join(args.dir, "crash.img")
    sock = os.path.join(args.dir, "crash.sock")
    with open(path, "wb") as f:
        f.truncate(args.blocks * BS)
    state = State(args.blocks)
    if args.zero_first:
        server = start_server(args, sock, path)
        h = nbd.NBD()
        h.connect_unix(sock)
        h.zero(args.blocks * BS, 0)
        h.flush()
        h.shutdown()
        server.terminate()
        server.wait()
    end = time.time() + args.seconds
    iters = 0
    errors = []
    total_lost = 0
    server = None
    try:
        while time.time() < end and not errors:
            server = start_server(args, sock, path)
            stop = threading.Event()
            multi = {}
            werr = []
            threads = [threading.Thread(target=worker,
                                        args=(i, args, state, sock, stop, multi, werr))
                       for i in range(args.conns)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.05, 1.0))
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            stop.set()
            for t in threads:
                t.join(20)
                if t.is_alive():
                    errors.append("a client thread hung after the server was killed")
            errors += werr
            server = start_server(args, sock, path)
            errs, lost = check(args, state, sock)
            total_lost += lost
            errors += errs
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
            server = None
            iters += 1
    except RuntimeError as e:
        errors.append(str(e))
    finally:
        if server and server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
    s = state.stats
    print(f"{iters} kills, {s['writes']} writes sent, {s['acked']} acked, {s['fua']} FUA "
          f"block-writes, {s['flushes']} flushes; acknowledged non-durable writes "
          f"lost: {total_lost}", flush=True)
    for e in errors[:20]:
        print("   ", e)
    if errors:
        print(f"not ok - {args.name}: {len(errors)} violations (seed {args.seed})")
        return 1
    if iters < 3 or s["fua"] == 0 or s["flushes"] == 0:
        print(f"not ok - {args.name}: workload too small ({iters} kills)")
        return 1
    print(f"ok - {args.name}: {iters} SIGKILLs, every durable write intact (seed {args.seed})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
