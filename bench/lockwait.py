#!/usr/bin/env python3
"""Lock-wait latency: how long after a long command ends does a client queued behind it get its reply.

Usage:
  bench/lockwait.py [--server NAME=BIN ...] [--port P ...] [options]

  bench/lockwait.py                                    # moonkv (target/release) vs /usr/bin/redis-server
  bench/lockwait.py --server moonkv=/work/baseline/target/release/moonkv-server \
                    --server redis=/usr/bin/redis-server --reps 200 --rounds 5
  bench/lockwait.py --port 6379                        # a server already running (DEBUG must be enabled)
  bench/lockwait.py --waiters 4                        # 4 clients queued behind the holder

Method (one repetition): client A sends `DEBUG SLEEP <hold>` (default 0.05 s) on its own socket; after
<delay> ms (default 10, plus a random 0..<jitter> ms, default 5, so that the release falls at a random
phase of a polling waiter's retry cycle) each waiter client B sends `PING` on its own socket. One thread
polls all sockets; each reply gets two stamps: the kernel's receive timestamp (SO_TIMESTAMPNS; on loopback that is the moment the server's
write() delivered it, so it is independent of when this client wakes up) and time.perf_counter() when
poll() returned. Reported (per waiter and repetition):

  extra wait (kernel rx stamps) = rx(B reply) - rx(A reply): what B waits beyond the holder's release
                (the release itself is not observable from outside; A's reply is written right after it,
                or in moonkv possibly a little later, see below). This is the main number.
  extra wait (client wake-up stamps): the same from perf_counter stamps; 0 when both replies were
                already there when the client woke up, so it cannot resolve below ~the wake-up latency
  A / B reply after nominal release = rx(reply) - (time A's command was sent + hold): the same kind of
                wait measured from the moment the holder would release if it ran at once and slept exactly
                `hold` (so it includes the server's sleep overshoot, ~0.1-0.3 ms on a VM, and request
                delivery). Useful when the holder's own reply is delayed after the release (in moonkv A's
                reply is written by the runtime worker, which may itself be busy polling for B), which
                makes rx(B) - rx(A) understate B's wait.
  B's PING latency = reply - send of B's PING (includes the rest of the hold, ~hold - delay)
  ping rtt    = plain PING round trip on an idle server, same client code (reference floor)

Servers given with --server are started by this tool on a free loopback port with
`--save '' --appendonly no --enable-debug-command yes` (plus --server-args), and measured in
alternating rounds (round r runs them in order, round r+1 in reverse) to spread machine noise evenly.
Statistics are over all repetitions of all rounds (median, mean, p90, p99, max, and the share of
waits of 0.5 ms or more, since a polling waiter's waits are bimodal); "round medians" gives the median
of each round, to show the spread. Nothing is written except an optional --csv file.
"""

import argparse
import os
import random
import select
import shlex
import struct
import socket
import statistics
import subprocess
import sys
import tempfile
import time

DEFAULT_MOONKV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "moonkv-server")


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def read_reply(sock, buf=b""):
    """Reads one simple reply (status, error, integer or bulk); returns (reply, rest)."""
    while True:
        if b"\r\n" in buf:
            line, rest = buf.split(b"\r\n", 1)
            if line[:1] in (b"+", b"-", b":"):
                return line, rest
            if line[:1] == b"$":
                n = int(line[1:])
                if n < 0:
                    return line, rest
                while len(rest) < n + 2:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise ConnectionError("server closed the connection")
                    rest += chunk
                return rest[:n], rest[n + 2:]
            raise ValueError("unexpected reply %r" % line[:80])
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux


def connect(port, rx_stamps=False):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rx_stamps:
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    return s


def recv_stamped(sock):
    """recv() that also returns the kernel's receive timestamp of the data (ns, CLOCK_REALTIME), or None."""
    data, anc, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
    if not data:
        raise ConnectionError("server closed the connection")
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
            sec, nsec = struct.unpack("qq", payload[:16])
            return data, sec * 1_000_000_000 + nsec
    return data, None


def call(sock, *args):
    sock.sendall(resp(*args))
    reply, rest = read_reply(sock)
    assert not rest, rest
    return reply


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, binary, extra_args):
        self.name, self.binary, self.proc, self.log = name, binary, None, None
        for attempt in range(3):
            self.port = free_port()
            self.log = tempfile.NamedTemporaryFile(prefix="lockwait-%s-" % name, suffix=".log", delete=False)
            args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--enable-debug-command", "yes"] + extra_args
            self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
            deadline = time.time() + 15
            while time.time() < deadline and self.proc.poll() is None:
                try:
                    s = connect(self.port)
                    ok = call(s, "PING") == b"+PONG"
                    s.close()
                    if ok:
                        return
                except OSError:
                    time.sleep(0.1)
            self.stop()
        with open(self.log.name) as f:
            tail = f.read()[-2000:]
        sys.exit("lockwait: %s (%s) did not start; log %s:\n%s" % (name, binary, self.log.name, tail))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            os.unlink(self.log.name)
        self.proc = None


class External:
    def __init__(self, port):
        self.name, self.port = "port%d" % port, port

    def stop(self):
        pass


def ping_rtts(port, n):
    s = connect(port)
    for _ in range(50):  # warm up
        call(s, "PING")
    msg, out = resp("PING"), []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(msg)
        reply, rest = read_reply(s)
        out.append(time.perf_counter() - t0)
        assert reply == b"+PONG" and not rest
    s.close()
    return out


def one_rep(a, bs, hold, delay, poller):
    """Returns (extra waits of each waiter, A overhead, B total latencies)."""
    sleep_cmd, ping = resp("DEBUG", "SLEEP", repr(hold)), resp("PING")
    t_a_sent, t_a_sent_ns = time.perf_counter(), time.time_ns()
    a.sendall(sleep_cmd)
    time.sleep(delay)
    t_b_sent = []
    for b in bs:
        t_b_sent.append(time.perf_counter())
        b.sendall(ping)
    pending = {a.fileno(): a}
    pending.update((b.fileno(), b) for b in bs)
    stamps, kstamps = {}, {}
    while pending:
        events = poller.poll(10000)
        now = time.perf_counter()
        if not events:
            raise TimeoutError("no reply within 10 s")
        for fd, _ in events:
            if fd in pending:
                stamps[fd] = now
                sock = pending.pop(fd)
                data, kstamps[fd] = recv_stamped(sock)
                reply, rest = read_reply(sock, data)
                assert not rest and reply in (b"+OK", b"+PONG"), reply
    t_a, k_a = stamps[a.fileno()], kstamps[a.fileno()]
    extra = [stamps[b.fileno()] - t_a for b in bs]
    nominal = t_a_sent_ns + hold * 1e9  # when the holder would release if it started at once and slept exactly
    if k_a is not None and all(kstamps[b.fileno()] is not None for b in bs):
        kextra = [(kstamps[b.fileno()] - k_a) / 1e9 for b in bs]
        b_after = [(kstamps[b.fileno()] - nominal) / 1e9 for b in bs]
        a_after = (k_a - nominal) / 1e9
    else:  # no kernel stamps: client wake-up stamps
        kextra = None
        b_after = [stamps[b.fileno()] - t_a_sent - hold for b in bs]
        a_after = t_a - t_a_sent - hold
    total = [stamps[b.fileno()] - t0 for b, t0 in zip(bs, t_b_sent)]
    return kextra, extra, a_after, b_after, total


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt_us(x):
    return "%.0f" % (x * 1e6) if abs(x) >= 1e-4 else "%.1f" % (x * 1e6)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", default=[], metavar="NAME=BIN",
                    help="start BIN and measure it as NAME (repeatable); default: moonkv=%s and redis=/usr/bin/redis-server" % DEFAULT_MOONKV)
    ap.add_argument("--server-args", default="", help="extra arguments for every started server (shell quoting)")
    ap.add_argument("--port", action="append", type=int, default=[], help="measure an already running server (repeatable)")
    ap.add_argument("--reps", type=int, default=200, help="repetitions per server in total (default 200)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds the repetitions are split into (default 5)")
    ap.add_argument("--hold", type=float, default=0.05, help="DEBUG SLEEP seconds of the lock holder (default 0.05)")
    ap.add_argument("--delay-ms", type=float, default=10.0, help="waiters send PING this long after A's command (default 10)")
    ap.add_argument("--jitter-ms", type=float, default=5.0,
                    help="plus a uniform random 0..J ms (default 5; keep it above a few polling periods so the "
                         "release lands at every phase of a poller's cycle)")
    ap.add_argument("--waiters", type=int, default=1, help="clients sending PING behind the holder (default 1)")
    ap.add_argument("--ping-reps", type=int, default=2000, help="uncontended PING round trips per round (default 2000)")
    ap.add_argument("--csv", help="write every sample here (server,kind,seconds)")
    ap.add_argument("--seed", type=int, default=1)
    opts = ap.parse_args()
    random.seed(opts.seed)

    specs = []
    for s in opts.server:
        if "=" not in s:
            ap.error("--server expects NAME=BIN")
        specs.append(tuple(s.split("=", 1)))
    if not specs and not opts.port:
        specs = [("moonkv", DEFAULT_MOONKV), ("redis", "/usr/bin/redis-server")]
    extra = shlex.split(opts.server_args)
    for name, binary in specs:
        if not os.access(binary, os.X_OK):
            sys.exit("lockwait: %s: %s is not an executable (build it, or pass --server NAME=BIN)" % (name, binary))

    servers = []
    try:
        for name, binary in specs:
            servers.append(Server(name, binary, extra))
        servers += [External(p) for p in opts.port]
        conns = {}
        for srv in servers:
            a = connect(srv.port, rx_stamps=True)
            bs = [connect(srv.port, rx_stamps=True) for _ in range(opts.waiters)]
            reply = call(a, "DEBUG", "SLEEP", "0")
            if reply != b"+OK":
                sys.exit("lockwait: %s: DEBUG SLEEP answered %r (start it with --enable-debug-command yes)" % (srv.name, reply))
            for b in bs:
                call(b, "PING")
            poller = select.poll()
            for sock in [a] + bs:
                poller.register(sock, select.POLLIN)
            conns[srv.name] = (a, bs, poller)

        samples = {srv.name: {"extra": [], "uextra": [], "last": [], "a_over": [], "b_after": [], "b_total": [], "ping": [],
                              "round_med": [], "round_ping": []} for srv in servers}
        no_kstamps = False
        per_round = [opts.reps // opts.rounds + (1 if r < opts.reps % opts.rounds else 0) for r in range(opts.rounds)]
        t_start = time.time()
        for r in range(opts.rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for srv in order:
                d = samples[srv.name]
                a, bs, poller = conns[srv.name]
                rtts = ping_rtts(srv.port, opts.ping_reps)
                d["ping"] += rtts
                d["round_ping"].append(statistics.median(rtts))
                extras = []
                for _ in range(per_round[r]):
                    delay = (opts.delay_ms + random.uniform(0, opts.jitter_ms)) / 1000.0
                    kextra, uextra, a_over, b_after, totals = one_rep(a, bs, opts.hold, delay, poller)
                    if kextra is None:
                        no_kstamps = True
                        kextra = uextra
                    extras += kextra
                    d["uextra"] += uextra
                    d["last"].append(max(kextra))
                    d["a_over"].append(a_over)
                    d["b_after"] += b_after
                    d["b_total"] += totals
                    time.sleep(0.002)
                d["extra"] += extras
                d["round_med"].append(statistics.median(extras))
                print("round %d/%d %-8s extra wait median %s us, ping median %s us" % (
                    r + 1, opts.rounds, srv.name, fmt_us(statistics.median(extras)),
                    fmt_us(statistics.median(rtts))), file=sys.stderr)
        elapsed = time.time() - t_start
    finally:
        for srv in servers:
            srv.stop()

    print()
    print("lock wait: holder DEBUG SLEEP %g s; %d waiter(s) send PING %g..%g ms later; %d reps in %d rounds; "
          "%d uncontended PINGs per round; %.0f s" % (opts.hold, opts.waiters, opts.delay_ms, opts.delay_ms + opts.jitter_ms,
                                                     opts.reps, opts.rounds, opts.ping_reps, elapsed))
    print()
    print("All times in microseconds (us).")
    print()
    print("| server | metric | median | mean | p90 | p99 | max | share >= 0.5 ms | round medians |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    if no_kstamps:
        print("(no kernel receive timestamps on some replies: extra wait uses the client's wake-up stamps there)")
        print()
    rows = [("extra", "extra wait t(B)-t(A), kernel rx stamps"), ("uextra", "extra wait, client wake-up stamps"),
            ("a_over", "A reply after nominal release"), ("b_after", "B reply after nominal release"),
            ("b_total", "B's PING latency (sent to reply)"),
            ("ping", "uncontended PING rtt")]
    if opts.waiters > 1:
        rows.insert(1, ("last", "extra wait, last waiter"))
    for srv in servers:
        d = samples[srv.name]
        for key, label in rows:
            xs = d[key]
            rm = {"extra": d["round_med"], "ping": d["round_ping"]}.get(key)
            share = "%.0f%%" % (100.0 * sum(x >= 0.0005 for x in xs) / len(xs)) if key in ("extra", "uextra", "last") else ""
            print("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                srv.name, label, fmt_us(statistics.median(xs)), fmt_us(statistics.fmean(xs)), fmt_us(pct(xs, 90)),
                fmt_us(pct(xs, 99)), fmt_us(max(xs)), share, ", ".join(fmt_us(x) for x in rm) if rm else ""))
    if opts.csv:
        with open(opts.csv, "w") as f:
            f.write("server,kind,seconds\n")
            for name, d in samples.items():
                for key in ("extra", "uextra", "last", "a_over", "b_after", "b_total", "ping"):
                    for x in d[key]:
                        f.write("%s,%s,%.9f\n" % (name, key, x))


if __name__ == "__main__":
    main()
