#!/usr/bin/env python3
"""BGSAVE of a large dataset, moonkv beside redis-server: the longest a client waits while
the save starts and runs, and the memory the save costs.

For each server and round: start it in a scratch directory, DEBUG POPULATE N keys, then run
a probe client that sends GET back to back (one request in flight) and records each
round-trip, while a sampler reads the proportional set size (PSS, so pages a forked child
shares with its parent count once) of the server and of any child process it has. BGSAVE
is sent by a second connection; the round ends when INFO says the save is done.

Prints per round: the longest probe round-trip during the save, its p99, the save's
duration, and peak PSS over the baseline; then the medians.

usage: bench/bgsave_stall.py [--keys 1000000] [--rounds 3] [--moonkv PATH] [--redis PATH]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        return self.reply()

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind in (b"+", b"-", b":"):
            return rest
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(1 << 16)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            return [self.reply() for _ in range(int(rest))]
        raise ValueError(line)


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    kids = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return kids


def info_field(conn, field):
    text = conn.call("INFO", "persistence").decode()
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def one_round(binary, keys):
    work = tempfile.mkdtemp(prefix="bgsave-bench-")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--dir", work, "--enable-debug-command", "yes", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                admin = Conn(port)
                admin.call("PING")
                break
            except OSError:
                time.sleep(0.05)
        admin.call("DEBUG", "POPULATE", keys)
        time.sleep(0.5)
        baseline = pss_kb(proc.pid)
        stop = threading.Event()
        saving = threading.Event()
        latencies = []
        peak = [0]

        def probe():
            c = Conn(port)
            while not stop.is_set():
                t = time.perf_counter()
                c.call("GET", "key:1")
                if saving.is_set():
                    latencies.append(time.perf_counter() - t)

        def sampler():
            while not stop.is_set():
                total = pss_kb(proc.pid) + sum(pss_kb(k) for k in children(proc.pid))
                peak[0] = max(peak[0], total)
                time.sleep(0.005)

        threads = [threading.Thread(target=probe), threading.Thread(target=sampler)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        saving.set()
        started = time.perf_counter()
        admin.call("BGSAVE")
        while info_field(admin, "rdb_bgsave_in_progress") != "0":
            time.sleep(0.01)
        duration = time.perf_counter() - started
        time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)] if latencies else 0
        return {
            "max_ms": latencies[-1] * 1000 if latencies else 0,
            "p99_ms": p99 * 1000,
            "save_s": duration,
            "extra_mb": (peak[0] - baseline) / 1024,
            "baseline_mb": baseline / 1024,
        }
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--moonkv", default=os.path.join(here, "..", "target", "release", "moonkv-server"))
    ap.add_argument("--redis", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    args = ap.parse_args()
    results = {}
    for rnd in range(args.rounds):
        for name, binary in (("moonkv", args.moonkv), ("redis", args.redis)):
            r = one_round(binary, args.keys)
            results.setdefault(name, []).append(r)
            print(f"round {rnd + 1} {name:6}: longest wait {r['max_ms']:7.1f} ms, p99 {r['p99_ms']:6.2f} ms, "
                  f"save {r['save_s']:5.2f} s, peak extra PSS {r['extra_mb']:7.1f} MiB "
                  f"(dataset {r['baseline_mb']:.0f} MiB)", flush=True)
    print("medians:")
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"  {name:6}: longest wait {med['max_ms']:.1f} ms, p99 {med['p99_ms']:.2f} ms, "
              f"save {med['save_s']:.2f} s, peak extra PSS {med['extra_mb']:.1f} MiB "
              f"of {med['baseline_mb']:.0f} MiB")


if __name__ == "__main__":
    main()
