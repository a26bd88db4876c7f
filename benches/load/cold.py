#!/usr/bin/env python3
"""Cold-library scenario of the load comparison (issue 21): a library larger than the
server's memory, on a slow disk.

Each server runs alone, pinned to CPU 0 with one worker, inside cgroup v1 groups that
throttle its reads from the data's disk (`blkio.throttle.read_bps_device`, 64 MiB/s,
and `read_iops_device`, 400) and bound its memory, page cache included
(`memory.limit_in_bytes`, 256 MiB), so that four 300 MiB files cannot all stay in
its page cache. Caches are dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) just
before each server starts. Then, per server:

1. the hot 1 KiB file is warmed (three GETs), and the script waits until the
   server's cgroup has read nothing from the disk for `--settle` s (default 1, at
   most 10 s of waiting): the server's own start (its binary's pages, read in the
   cgroup) uses the throttle's budget, and a read that follows it at once waits for
   the throttle's next 100 ms slice. Without the wait (`--settle 0`, as before
   2026-12-06) a first byte took either a few ms or ~90-100 ms, by chance, and more
   often for a server whose first read is larger (the crate reads 2-4 MiB before its
   first byte: its 1 MiB fault-in window with the kernel's read-ahead and, for a
   range, the start of the background hash; nginx 164 KiB): the crate's took ~97 ms
   in 3 (ranged) and 4 (plain) rounds of 5, nginx's in 2 of 5 (plain). With it, the
   crate's took 3.9-6.2 ms in 10 rounds of 10 (5 plain, 5 ranged);
2. **first byte**: one GET of a fifth, cold, 300 MiB file on the otherwise idle server:
   the time to the first byte of the response and to the first byte of its body;
3. **load**: four clients start downloading the four cold 300 MiB files at once.
   When the first of them receives a byte (at once for a server that streams a cold
   file; after it has read the files through for one that hashes first; at most
   `--max-wait` s), a fifth client GETs the hot 1 KiB file every 20 ms for
   `--hot-seconds` on one keep-alive connection (a request goes out at the first
   20 ms tick after the previous answer; one request in flight at most), and the
   downloads are cut when it stops. Recorded: the hot GETs' latencies (p50 / p99 /
   max: with ~400 samples, p99 hides the worst four, and a one-second stall shows in
   the max and in the count), how many were answered within the `--hot-seconds`
   (at most 400 with the defaults), the downloads' times to first
   byte, their aggregate MB/s (10^6 bytes/s, everything received from their start
   to the cut, the wait for the first byte included; also from the first byte on),
   and the server's CPU seconds (utime + stime, /proc/PID/stat) and disk reads
   (`read_bytes`, /proc/PID/io) over the phase, with the cgroup's own count of
   bytes read and its peak memory.

With `--range-from-middle` (off by default), every download of a cold file (the
first-byte GET and the four of the load) sends `Range: bytes=N-`, N half the file's
size (157286400 for every 300 MiB file): the second half of a file never read, never
hashed (issue 27: a range of a cold file answered at once, not after a hash of the
whole file). The crate and nginx answer 206 with the second half; Rocket's
`FileServer` ignores `Range` and answers 200 with the whole file, whose bytes are
counted all the same (the table's status column shows it). The hot 1 KiB GETs are
the same with or without the option. The default output is then
benches/load/cold_ranged_results.json.

Every phase records the status codes (the first-byte GET's, the four downloads'),
and the table shows the server's `read_bytes` over the load phase per byte the four
downloads received (1.0: the disk read once what was sent; below 1: bytes sent from
the page cache, or headers; above: pages read ahead and not sent, or read twice
after an eviction). It also records the CPU seconds the rest of the machine spent
over the load phase (all CPUs' busy time, /proc/stat, less the server's and the
script's): anything else running on a 2-CPU machine shows there. `--wait-idle`
waits, before each server starts, until the machine has been idle for 3 s, and
measures again (three times at most, the discarded figures kept) when the rest of the
machine used more than 1 CPU second during the load phase.

Every client is in this script, on CPU 1, in one thread: a `selectors` loop reads
the downloads and times the hot GETs, so the latencies do not include a wait for
Python's GIL. Everything is bounded: downloads are cut at the end of their window,
a hot GET still unanswered at the end waits at most `--grace` seconds more.

The servers, all in one run (`--rounds` rounds, the servers in a shuffled order in
each; a figure is the median over rounds):

- `mmap`: the crate's binary (`--mmap-bin`, default target/release/rocket-mmap);
- `mmap_baseline`: another build of it (`--baseline-bin`), for a before/after
  comparison within one run; measured only when given;
- `fileserver`: Rocket's own `FileServer` (`--peers-bin`, the `peers` example;
  reads run on tokio's blocking pool);
- `nginx_aio`: nginx with `aio threads` and `sendfile off`: every file read runs in
  nginx's thread pool, the event loop never waits for the disk. The goals compare
  against it;
- `nginx_aio_sendfile`: nginx with `aio threads` and `sendfile on`, the example of
  nginx's documentation for `aio threads`. In every round of three runs here
  (2026-12-04) it let a hot GET wait about a second (max 915-994 ms; 278-354 of 400
  answered, p99 under 10 ms), where `sendfile off` never passed 70 ms (384-400
  answered) at the same MB/s, for ~6x the CPU (it copies): the stronger peer for
  latency is `sendfile off`;
- `nginx`: nginx as in the load comparison (`sendfile on`, no aio): sendfile() may
  block the only worker on a disk read.

    python3 benches/load/cold.py                # 3 rounds, ~4 minutes; needs root
    python3 benches/load/cold.py --rounds 1 --targets mmap nginx_aio
    python3 benches/load/cold.py --mmap-bin /tmp/after/release/rocket-mmap
    python3 benches/load/cold.py --targets mmap mmap_baseline fileserver --baseline-bin /tmp/before/rocket-mmap
    python3 benches/load/cold.py --rounds 5 --targets mmap fileserver nginx_aio --range-from-middle

Needs root (cgroups, drop_caches), cgroup v1 `blkio` and `memory` mounted under
/sys/fs/cgroup, nginx, taskset, and release builds of the binary and the `peers`
example (`cargo build --release --bin rocket-mmap --example peers`). Without root it
says so and exits 0 (skipped). Writes benches/load/cold_results.json (or `--out`) and
prints a Markdown table.
"""
import argparse
import json
import math
import os
import random
import selectors
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import (MIB, NGINX_CONF, NGINX_HTTP, REPO, Server, free_port, http, log, need,  # noqa: E402
                 no_tag_store, write_random)

OUT = Path(__file__).resolve().parent
CGROUP_ROOT = Path("/sys/fs/cgroup")
HOT = "/1k.bin"  # also the path run.py's Server probes until a server answers
COLD_SIZE = 300 * MIB
COLD_FILES = [f"cold{i}.bin" for i in range(4)]
PROBE_FILE = "probe.bin"  # the fifth cold file, for the first-byte measurement alone

# nginx with aio threads: file reads (sendfile off) or sendfile() (on) go to the
# default thread pool (32 threads); the rest as the load comparison's nginx.
NGINX_AIO_CONF = NGINX_HTTP + """    server {{
        listen 127.0.0.1:{port};
        root {root};
        aio threads;
        sendfile {sendfile};
        location / {{ }}
    }}
}}
"""

TARGETS = {
    "mmap": "rocket-mmap",
    "mmap_baseline": "rocket-mmap, `--baseline-bin` build",
    "fileserver": "Rocket `FileServer` (tokio::fs)",
    "nginx_aio": "nginx, `aio threads`, sendfile off",
    "nginx_aio_sendfile": "nginx, `aio threads`, sendfile on",
    "nginx": "nginx, defaults (sendfile on, no aio)",
}

# Issue 21's targets, checked on the medians of one run: (metric, peer, bound).
GOALS = [
    ("hot_p99_ms", "fileserver", "at most 1.5× Rocket FileServer's hot 1 KiB p99"),
    ("download_mb_s", "nginx_aio", "at least 0.9× the download MB/s of nginx with aio threads (sendfile off)"),
    ("first_body_byte_ms", None, "the first byte of a cold 300 MiB file within 50 ms"),
]


def skip(why):
    print(f"skipped: {why}", file=sys.stderr)
    sys.exit(0)


def make_data(d: Path):
    """Five 300 MiB files of random bytes and the hot 1 KiB file (kept between runs)."""
    files = [("1k.bin", 1024)] + [(n, COLD_SIZE) for n in COLD_FILES + [PROBE_FILE]]
    write_random(d, files, 20261204, announce=log)


def whole_disk(st_dev):
    """MAJ:MIN of the disk holding a file system (blkio throttles whole disks, not
    partitions)."""
    dev = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    sys_dev = Path(f"/sys/dev/block/{dev}")
    if (sys_dev / "partition").exists():
        return (sys_dev.resolve().parent / "dev").read_text().strip()
    return dev


def drop_caches():
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Cgroup:
    """A blkio and a memory cgroup (v1) named `name`: reads from `device` throttled
    to `bps` bytes/s and `iops`, memory (page cache included) bounded to `limit`."""

    def __init__(self, name, device, bps, iops, limit):
        self.blkio = CGROUP_ROOT / "blkio" / name
        self.memory = CGROUP_ROOT / "memory" / name
        self.device = device
        for d in (self.blkio, self.memory):
            d.mkdir(exist_ok=True)
        try:
            (self.blkio / "blkio.throttle.read_bps_device").write_text(f"{device} {bps}\n")
            (self.blkio / "blkio.throttle.read_iops_device").write_text(f"{device} {iops}\n")
            (self.memory / "memory.limit_in_bytes").write_text(f"{limit}\n")
        except OSError as e:
            self.remove()
            raise SystemExit(f"error: cannot configure cgroup {name} for device {device} (a whole "
                             f"block device is needed; --device MAJ:MIN names one): {e}")

    def enter(self):
        """Moves the calling process into both groups (run in the server's child
        process before it execs: its threads and children inherit them)."""
        for d in (self.blkio, self.memory):
            with open(d / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def stats(self):
        """Bytes the group read from the device, its peak memory, and how often it hit
        the limit."""
        read = 0
        for line in (self.blkio / "blkio.throttle.io_service_bytes").read_text().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == self.device and parts[1] == "Read":
                read = int(parts[2])
        mem = lambda f: int((self.memory / f).read_text())
        return {"cgroup_read_bytes": read, "memory_max_usage_bytes": mem("memory.max_usage_in_bytes"),
                "memory_failcnt": mem("memory.failcnt")}

    def remove(self):
        for d in (self.blkio, self.memory):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the last task may still be exiting
            else:
                log(f"warning: could not remove cgroup {d}")


def machine_busy_s():
    """CPU seconds the whole machine has spent busy (all CPUs, /proc/stat: everything
    but idle and iowait)."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    """This process's CPU seconds and those of its children it has waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


# With --wait-idle, a measurement during whose load phase the rest of the machine used
# more CPU seconds than this is discarded and made again (three times at most).
BUSY_RETRY_S = 1.0


def wait_idle(max_busy=0.1, settle=3, timeout=900.0):
    """Waits until the machine has been idle (under `max_busy` of its CPUs busy) for
    `settle` seconds in a row, at most `timeout` seconds; returns the seconds waited
    (another user's compiler on a 2-CPU machine would make every figure wrong)."""
    t0, calm = time.monotonic(), 0
    busy, said = machine_busy_s(), False
    while calm < settle and time.monotonic() - t0 < timeout:
        time.sleep(1.0)
        now = machine_busy_s()
        frac, busy = (now - busy) / os.cpu_count(), now
        calm = calm + 1 if frac < max_busy else 0
        if not said and time.monotonic() - t0 > 5:
            log(f"waiting for the machine to be idle ({frac:.0%} busy) ...")
            said = True
    waited = time.monotonic() - t0
    if calm < settle:
        log(f"warning: the machine was still busy after {waited:.0f} s; measuring anyway")
    return waited


def measure_quietly(measure, wait, busy_key, busy_limit, what):
    """`measure()`; with `wait` (--wait-idle), after waiting for an idle machine, and
    made again (three times at most) while the rest of the machine used more than
    `busy_limit` CPU seconds during it (`got[busy_key]`). The result records the wait
    and the discarded attempts' figures."""
    discarded = []
    while True:
        waited = wait_idle() if wait else None
        got = measure()
        got["waited_for_idle_s"] = waited
        if not wait or got[busy_key] <= busy_limit or len(discarded) == 3:
            break
        log(f"{what}: something else used {got[busy_key]:.1f} CPU s meanwhile; measuring again")
        discarded.append(got[busy_key])
    got["discarded_busy_attempts"] = discarded
    return got


def proc_counters(pid):
    """CPU seconds (utime + stime, all threads) and read_bytes of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    io = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return cpu, int(io["read_bytes"])


class Targets:
    """Starts targets pinned to CPU 0, each in cgroups of its own, with caches dropped
    just before; `stop_all` stops whatever is still running and removes its cgroups."""

    def __init__(self, bins, data: Path, work: Path, device, args):
        self.bins, self.data, self.work, self.device, self.args = bins, data, work, device, args
        self.live = {}  # cgroup name -> (Server or None while starting, Cgroup)

    def start(self, name):
        """A started `name`, answering; returns (Server, Cgroup)."""
        a = self.args
        group = f"rocket-mmap-cold-{name}"
        cgroup = Cgroup(group, self.device, a.read_bps, a.read_iops, a.memory)
        self.live[group] = (None, cgroup)
        mmap_bin, peers_bin, baseline_bin = self.bins
        port = free_port()
        env = {"ROCKET_WORKERS": "1", "ROCKET_LOG_LEVEL": "off", "ROCKET_ADDRESS": "127.0.0.1",
               "ROCKET_PORT": str(port)}
        if name in ("mmap", "mmap_baseline"):
            binary = mmap_bin if name == "mmap" else baseline_bin
            argv = [str(binary), str(self.data), "--port", str(port), *no_tag_store(binary)]
        elif name == "fileserver":
            argv = [str(peers_bin), "fileserver", str(self.data)]
        elif name.startswith("nginx"):
            prefix = self.work / name
            (prefix / "tmp").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            template = NGINX_CONF if name == "nginx" else NGINX_AIO_CONF
            sendfile = "on" if name == "nginx_aio_sendfile" else "off"
            conf.write_text(template.format(prefix=prefix, port=port, root=self.data, sendfile=sendfile))
            argv, env = ["nginx", "-p", str(prefix), "-c", str(conf)], {}
        else:
            raise ValueError(name)
        drop_caches()
        server = Server(name, argv, env, port, cwd=self.work, preexec_fn=cgroup.enter)
        self.live[group] = (server, cgroup)
        return server, cgroup

    def stop(self, server, cgroup):
        server.stop()
        cgroup.remove()
        self.live.pop(cgroup.blkio.name, None)

    def stop_all(self):
        for server, cgroup in list(self.live.values()):
            if server is not None:
                server.stop()
            cgroup.remove()
        self.live.clear()


# ===== clients =====

def percentile(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))]


def request_head(path, range_from=None):
    """A GET of `path` on a connection closed after it, from byte `range_from` on if
    given (`Range: bytes=N-`)."""
    rng = "" if range_from is None else f"Range: bytes={range_from}-\r\n"
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{rng}\r\n".encode()


def head_fields(head: bytes):
    """Status and Content-Range (None if absent) of the start of a response."""
    if not head:
        return None, None
    lines = head.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = None
    content_range = next((v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
                          if k.strip().lower() == "content-range"), None)
    return status, content_range


def first_byte(port, path, timeout=60.0, range_from=None):
    """One GET on a fresh connection (from byte `range_from` on if given): seconds to
    the response's first byte and to its body's first byte (None if the body did not
    start within `timeout`)."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request_head(path, range_from))
        data, first, body = b"", None, None
        while body is None:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            now = time.monotonic()
            first = first if first is not None else now
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep and rest:
                body = now
        status, content_range = head_fields(data)
    return {"status": status, "content_range": content_range,
            "first_byte_s": None if first is None else first - t0,
            "first_body_byte_s": None if body is None else body - t0}


class Download:
    """A GET of a whole file (from byte `range_from` on if given), read as fast as it
    comes until the window ends."""

    def __init__(self, port, path, t0, range_from=None):
        self.path, self.t0 = path, t0
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(request_head(path, range_from))
        self.sock.setblocking(False)
        self.buf = bytearray(1 << 18)
        self.received, self.first_byte, self.done, self.head = 0, None, None, b""

    def readable(self, now):
        try:
            n = self.sock.recv_into(self.buf)
        except BlockingIOError:
            return True
        except OSError:
            n = 0
        if n == 0:
            self.done = now
            return False
        if self.first_byte is None:
            self.first_byte = now
        if len(self.head) < 4096:
            self.head += bytes(self.buf[:min(n, 4096)])
        self.received += n
        return True

    def result(self, end):
        status, content_range = head_fields(self.head)
        return {"path": self.path, "status": status, "content_range": content_range,
                "received_bytes": self.received,
                "first_byte_s": None if self.first_byte is None else self.first_byte - self.t0,
                "finished_s": None if self.done is None or self.done > end else self.done - self.t0}


class HotClient:
    """GETs of the hot file on one keep-alive connection, one at each `interval` tick
    at most, the next at the first tick after the previous answer."""

    def __init__(self, port, path, t0, interval, until):
        self.port, self.path, self.t0, self.interval, self.until = port, path, t0, interval, until
        self.sock, self.sent_at, self.buf = None, None, b""
        self.next_tick = t0
        self.latencies, self.answered_in_window, self.errors, self.reconnects = [], 0, [], 0
        self.sent = []  # time.monotonic() of each answered request's send, for `slowest`
        self.statuses = {}

    def connect(self, sel):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ, self)

    def close(self, sel):
        if self.sock is not None:
            sel.unregister(self.sock)
            self.sock.close()
            self.sock = None

    def due(self, now):
        """When the loop must wake for this client (None: nothing to send any more)."""
        if self.sent_at is not None or self.next_tick >= self.until:
            return None
        return self.next_tick

    def tick(self, now, sel):
        if self.sent_at is not None or now < self.next_tick or self.next_tick >= self.until:
            return
        if self.sock is None:
            self.connect(sel)
        self.buf, self.sent_at = b"", now
        try:
            self.sock.sendall(f"GET {self.path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        except OSError as e:
            self.fail(f"send: {e}", sel)

    def fail(self, what, sel):
        self.errors.append(what)
        self.close(sel)
        self.reconnects += 1
        self.sent_at = None
        self.schedule(time.monotonic())

    def schedule(self, now):
        ticks = int((now - self.t0) / self.interval) + 1
        self.next_tick = self.t0 + ticks * self.interval

    def readable(self, now, sel):
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            if self.sent_at is not None:
                self.fail("connection closed with a request in flight", sel)
            else:
                self.close(sel)
            return
        self.buf += chunk
        head, sep, body = self.buf.partition(b"\r\n\r\n")
        if not sep:
            return
        lines = head.decode("latin-1").split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        length = int(hdrs.get("content-length", "-1"))
        if length < 0:
            self.fail("response without Content-Length", sel)
            return
        if len(body) < length:
            return
        status = int(lines[0].split()[1])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(now - self.sent_at)
        self.sent.append(self.sent_at)
        if now <= self.until:
            self.answered_in_window += 1
        self.sent_at = None
        if hdrs.get("connection", "").lower() == "close":
            self.close(sel)
        self.schedule(now)

    def result(self, now):
        lat = [x * 1000 for x in self.latencies]
        return {"answered_in_window": self.answered_in_window, "answered": len(lat),
                "p50_ms": percentile(lat, 50) if lat else None,
                "p99_ms": percentile(lat, 99) if lat else None,
                "max_ms": max(lat) if lat else None,
                # The eight slowest, as [sent at (time.monotonic(), CLOCK_MONOTONIC: line
                # them up with `perf record -k CLOCK_MONOTONIC`), latency ms].
                "slowest": sorted(([t, ms] for t, ms in zip(self.sent, lat)), key=lambda x: -x[1])[:8],
                "in_flight_at_end_ms": None if self.sent_at is None else (now - self.sent_at) * 1000,
                "statuses": self.statuses, "errors": self.errors[:5], "reconnects": self.reconnects}


def load_phase(port, hot_seconds, max_wait, interval, grace, range_from=None):
    """Four cold downloads start together. The hot client starts once the first of
    them has received a byte (the downloads are under way; a server that makes them
    all wait is measured while they flow, not while they wait), or after `max_wait`
    seconds if none has, and runs for `hot_seconds`; the downloads are cut when it
    stops. Everything is bounded. With `range_from`, each download asks for the bytes
    from there on. Returns their figures."""
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    downloads = [Download(port, f"/{name}", t0, range_from) for name in COLD_FILES]
    for d in downloads:
        sel.register(d.sock, selectors.EVENT_READ, d)
    hot = dl_end = None
    open_downloads = len(downloads)
    while True:
        now = time.monotonic()
        flowing = any(d.first_byte is not None for d in downloads)
        if hot is None and (flowing or not open_downloads or now >= t0 + max_wait):
            hot = HotClient(port, HOT, now, interval, now + hot_seconds)
            dl_end = now + hot_seconds
        if hot is None:
            wake = [t0 + max_wait]
        else:
            if open_downloads and now >= dl_end:
                for d in downloads:
                    if d.done is None:
                        sel.unregister(d.sock)
                        d.sock.close()
                        d.done = now
                open_downloads = 0
            hot_busy = hot.sent_at is not None and now < hot.until + grace
            if not open_downloads and not hot_busy and hot.due(now) is None:
                break
            hot.tick(now, sel)
            wake = [t for t in (hot.due(now), dl_end if open_downloads else None,
                                hot.until + grace if hot.sent_at is not None else None) if t is not None]
        for key, _ in sel.select(max(0.0, min(wake) - time.monotonic()) if wake else 0.05):
            now = time.monotonic()
            if isinstance(key.data, HotClient):
                key.data.readable(now, sel)
            elif not key.data.readable(now):
                sel.unregister(key.fileobj)
                key.fileobj.close()
                open_downloads -= 1
    now = time.monotonic()
    hot.close(sel)
    end = min(max(d.done for d in downloads), dl_end)
    received = sum(d.received for d in downloads)
    firsts = [d.first_byte for d in downloads if d.first_byte is not None]
    return {"hot": hot.result(now), "downloads": [d.result(dl_end) for d in downloads],
            "hot_started_s": hot.t0 - t0, "download_elapsed_s": end - t0, "download_received_bytes": received,
            "download_mb_s": received / (end - t0) / 1e6,
            "download_mb_s_once_flowing": received / (end - min(firsts)) / 1e6 if firsts else 0.0}


# ===== the scenario =====

def measure_cold(targets, name, args):
    """The cold-library scenario against `name`, started for it."""
    server, cgroup = targets.start(name)
    try:
        return cold_figures(server, cgroup, args)
    finally:
        targets.stop(server, cgroup)


def settle(cgroup, quiet, limit=10.0):
    """Waits until `cgroup` has read nothing for `quiet` seconds (at most `limit`
    seconds); returns the seconds waited."""
    t0 = last_change = time.monotonic()
    read = cgroup.stats()["cgroup_read_bytes"]
    while time.monotonic() - last_change < quiet and time.monotonic() - t0 < limit:
        time.sleep(0.05)
        now = cgroup.stats()["cgroup_read_bytes"]
        if now != read:
            read, last_change = now, time.monotonic()
    return time.monotonic() - t0


def cold_figures(server, cgroup, args):
    pid = server.proc.pid
    for _ in range(3):
        status = http(server.port, HOT)[0]
        if status != 200:
            raise SystemExit(f"error: {server.name} answered {status} to GET {HOT}")
    settled = settle(cgroup, args.settle) if args.settle > 0 else 0.0
    range_from = COLD_SIZE // 2 if args.range_from_middle else None
    cpu0, read0 = proc_counters(pid)
    probe = first_byte(server.port, f"/{PROBE_FILE}", timeout=args.probe_timeout, range_from=range_from)
    cpu1, read1 = proc_counters(pid)
    http(server.port, HOT)  # warm again after the probe's reads
    cpu2, read2 = proc_counters(pid)
    busy2, own2 = machine_busy_s(), own_cpu_s()
    load = load_phase(server.port, args.hot_seconds, args.max_wait, args.interval_ms / 1000,
                      args.grace, range_from)
    if server.proc.poll() is not None:
        raise SystemExit(f"error: {server.name} exited during the run (status {server.proc.returncode})")
    cpu3, read3 = proc_counters(pid)
    busy3, own3 = machine_busy_s(), own_cpu_s()
    # A ranged GET: 206 (mmap, nginx) or 200 from a server that ignores Range
    # (Rocket's FileServer); the codes are recorded and shown.
    ok = (200, 206, None) if range_from is not None else (200, None)
    bad = [d for d in load["downloads"] if d["status"] not in ok]
    if probe["status"] not in ok or bad:
        raise SystemExit(f"error: {server.name} did not answer {' or '.join(map(str, ok[:-1]))}: "
                         f"probe {probe}, downloads {bad}")
    received = load["download_received_bytes"]
    return {
        "settled_s": settled, "probe_status": probe["status"], "probe_content_range": probe["content_range"],
        "download_statuses": [d["status"] for d in load["downloads"]],
        "first_byte_ms": None if probe["first_byte_s"] is None else probe["first_byte_s"] * 1000,
        "first_body_byte_ms": None if probe["first_body_byte_s"] is None else probe["first_body_byte_s"] * 1000,
        "probe_cpu_s": cpu1 - cpu0, "probe_read_bytes": read1 - read0,
        "hot_p50_ms": load["hot"]["p50_ms"], "hot_p99_ms": load["hot"]["p99_ms"], "hot_max_ms": load["hot"]["max_ms"],
        "hot_answered_in_window": load["hot"]["answered_in_window"],
        "download_mb_s": load["download_mb_s"], "download_mb_s_once_flowing": load["download_mb_s_once_flowing"],
        # The median over the four, a download without a byte counting as the window's
        # length (a lower bound).
        "downloads_first_byte_ms": statistics.median(
            (d["first_byte_s"] if d["first_byte_s"] is not None else load["download_elapsed_s"]) * 1000
            for d in load["downloads"]),
        "load_cpu_s": cpu3 - cpu2, "load_read_bytes": read3 - read2,
        # CPU seconds the rest of the machine spent over the load phase: all CPUs'
        # busy time but the server's and this script's (kernel threads included; a
        # few tenths of a second when nothing else runs).
        "load_others_cpu_s": (busy3 - busy2) - (cpu3 - cpu2) - (own3 - own2),
        "download_received_bytes": received,
        "load_read_per_byte": (read3 - read2) / received if received else None,
        "total_read_bytes": read3, **cgroup.stats(), "load": load,
    }


# A scenario is a function (targets, target name, args) -> the figures of one round;
# it starts (and may restart) the target through `targets`.
SCENARIOS = {"cold": measure_cold}

# What the table shows per target: (column, key in a round's figures, format).
COLUMNS = [
    ("status (first byte / downloads)", "statuses", "status"),
    ("first body byte of a cold 300 MiB GET", "first_body_byte_ms", "ms"),
    ("hot 1 KiB GET during the downloads, p50 / p99 / max", ("hot_p50_ms", "hot_p99_ms", "hot_max_ms"), "ms3"),
    ("small GETs answered in {hot_seconds:g} s", "hot_answered_in_window", "int"),
    ("the 4 downloads' first byte (median)", "downloads_first_byte_ms", "ms"),
    ("downloads, MB/s", "download_mb_s", "f1"),
    ("server CPU s (downloads)", "load_cpu_s", "f2"),
    ("read_bytes MiB (first byte / downloads)", ("probe_read_bytes", "load_read_bytes"), "mib2"),
    ("read_bytes per byte received (downloads)", "load_read_per_byte", "f2"),
]


def statuses_of(rounds):
    """The status codes over rounds, as "first byte / downloads" ("206 / 206";
    several codes joined by "+" with their counts when they differ)."""
    def join(codes):
        counts = {}
        for c in codes:
            counts[c] = counts.get(c, 0) + 1
        return "+".join(str(c) if len(counts) == 1 else f"{c}×{n}" for c, n in counts.items())
    return (f"{join(r['probe_status'] for r in rounds)} / "
            f"{join(s for r in rounds for s in r['download_statuses'])}")


def fmt_ms(v):
    if v is None:
        return "none"
    return "< 1 ms" if v < 1 else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def median_of(rounds, key):
    vals = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def table(summary, settings):
    cols = [c.format(**settings) for c, _, _ in COLUMNS]
    out = ["| server | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name, m in summary.items():
        cells = []
        for _, key, kind in COLUMNS:
            if kind == "status":
                cells.append(m[key])
            elif kind == "ms":
                cells.append(fmt_ms(m[key]))
            elif kind == "ms3":
                a, b, c = (m[k] for k in key)
                cells.append("none" if a is None else f"{a:.1f} / {b:.1f} / {c:.0f} ms")
            elif kind == "int":
                cells.append(f"{m[key]:.0f}")
            elif kind == "mib2":
                cells.append(" / ".join(f"{m[k] / MIB:.0f}" for k in key))
            else:
                cells.append("none" if m[key] is None else f"{m[key]:.{kind[1]}f}")
        out.append(f"| {TARGETS[name]} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def goals(summary):
    """Issue 21's targets for the crate, on this run's medians."""
    m = summary.get("mmap")
    if m is None:
        return []
    rows = []
    for key, peer, what in GOALS:
        if peer is None:
            v = m[key]
            rows.append({"goal": what, "value": v, "met": v is not None and v <= 50})
        elif peer in summary and m[key] is not None and summary[peer][key]:
            ratio = m[key] / summary[peer][key]
            met = ratio <= 1.5 if key == "hot_p99_ms" else ratio >= 0.9
            rows.append({"goal": what, "ratio": ratio, "met": met})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    ap.add_argument("--mmap-bin", type=Path, default=target_dir / "rocket-mmap",
                    help="the crate's binary (default: $CARGO_TARGET_DIR or target, release)")
    ap.add_argument("--peers-bin", type=Path, default=target_dir / "examples" / "peers",
                    help="the peers example, for Rocket's FileServer")
    ap.add_argument("--baseline-bin", type=Path,
                    help="another build of the binary, measured as target mmap_baseline in the "
                    "same run (a before/after comparison)")
    ap.add_argument("--targets", nargs="*", choices=list(TARGETS),
                    help="the servers to measure (default: all; mmap_baseline with --baseline-bin)")
    ap.add_argument("--scenario", choices=list(SCENARIOS), default="cold")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians over them")
    ap.add_argument("--hot-seconds", type=float, default=8.0, help="how long the hot client runs")
    ap.add_argument("--interval-ms", type=float, default=20.0, help="the hot client's tick")
    ap.add_argument("--max-wait", type=float, default=40.0,
                    help="the longest the hot client waits for the downloads' first byte before it starts")
    ap.add_argument("--grace", type=float, default=5.0,
                    help="how long a hot GET in flight at the end is still waited for")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="before the first-byte GET, wait until the server's cgroup has read nothing for "
                    "this many seconds (at most 10 s); 0: no wait")
    ap.add_argument("--probe-timeout", type=float, default=30.0,
                    help="the longest wait for the first byte of the cold GET")
    ap.add_argument("--read-bps", type=int, default=64 * MIB, help="blkio read throttle, bytes/s")
    ap.add_argument("--read-iops", type=int, default=400, help="blkio read throttle, I/O per second")
    ap.add_argument("--memory", type=int, default=256 * MIB, help="memory.limit_in_bytes of a server")
    ap.add_argument("--device", help="MAJ:MIN of the disk to throttle (default: the data directory's)")
    ap.add_argument("--data", type=Path, help="directory for the test files (kept between runs; on the "
                    "throttled disk, not tmpfs)")
    ap.add_argument("--range-from-middle", action="store_true",
                    help="every cold download (the first-byte GET and the four of the load) sends "
                    "`Range: bytes=N-`, N half the file's size")
    ap.add_argument("--wait-idle", action="store_true",
                    help="before each measurement, wait until the machine has been idle for 3 s (under "
                    "10%% of its CPUs busy; at most 15 minutes)")
    ap.add_argument("--out", type=Path, help="the JSON results file (default: benches/load/cold_results.json, "
                    "or cold_ranged_results.json with --range-from-middle)")
    args = ap.parse_args()
    if args.out is None:
        args.out = OUT / ("cold_ranged_results.json" if args.range_from_middle else "cold_results.json")

    if os.geteuid() != 0:
        skip("the cold-library scenario needs root (cgroups, /proc/sys/vm/drop_caches)")
    for c in ("blkio", "memory"):
        if not (CGROUP_ROOT / c / "cgroup.procs").exists():
            skip(f"cgroup v1 controller {c} is not mounted at {CGROUP_ROOT / c}")
    if args.targets is None:
        args.targets = [t for t in TARGETS if t != "mmap_baseline" or args.baseline_bin]
    if "mmap_baseline" in args.targets and not args.baseline_bin:
        sys.exit("error: target mmap_baseline needs --baseline-bin")
    for tool in ("taskset",) + (("nginx",) if any(t.startswith("nginx") for t in args.targets) else ()):
        need(tool)
    bins = (args.mmap_bin.resolve(), args.peers_bin.resolve(),
            args.baseline_bin.resolve() if args.baseline_bin else None)
    for name, b in (("mmap", bins[0]), ("fileserver", bins[1]), ("mmap_baseline", bins[2])):
        if name in args.targets and not b.exists():
            sys.exit(f"error: {b} does not exist (cargo build --release --bin rocket-mmap --example peers)")
    data = args.data or Path(tempfile.gettempdir()) / "rocket-mmap-cold-data"
    data.mkdir(parents=True, exist_ok=True)
    make_data(data)
    device = args.device or whole_disk(os.stat(data).st_dev)
    settings = {"hot_seconds": args.hot_seconds, "interval_ms": args.interval_ms,
                "max_wait_s": args.max_wait, "rounds": args.rounds,
                "read_bps": args.read_bps, "read_iops": args.read_iops, "memory_limit": args.memory,
                "device": device, "cold_files": len(COLD_FILES), "cold_file_bytes": COLD_SIZE,
                "servers": "CPU 0, 1 worker, in the cgroups", "clients": "CPU 1, one Python thread",
                "range_from_middle": args.range_from_middle, "wait_idle": args.wait_idle,
                "settle_s": args.settle,
                "range": f"bytes={COLD_SIZE // 2}-" if args.range_from_middle else None}

    # SIGTERM ends the run like Ctrl-C, through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-cold-"))
    measure = SCENARIOS[args.scenario]
    rounds = {t: [] for t in args.targets}
    order_rng = random.Random(2026)
    targets = Targets(bins, data, work, device, args)
    try:
        for rnd in range(args.rounds):
            order = list(args.targets)
            order_rng.shuffle(order)
            for name in order:
                got = measure_quietly(lambda: measure(targets, name, args), args.wait_idle,
                                      "load_others_cpu_s", BUSY_RETRY_S,
                                      f"round {rnd + 1}/{args.rounds} {name}")
                rounds[name].append(got)
                log(f"round {rnd + 1}/{args.rounds} {name:<18} status {got['probe_status']}/"
                    f"{','.join(str(s) for s in got['download_statuses'])}  "
                    f"first byte {fmt_ms(got['first_body_byte_ms']):>9}  "
                    f"hot p50/p99/max {got['hot_p50_ms'] or 0:6.1f} / {got['hot_p99_ms'] or 0:6.1f} / "
                    f"{got['hot_max_ms'] or 0:6.0f} ms  "
                    f"answered {got['hot_answered_in_window']:>3}  {got['download_mb_s']:5.1f} MB/s  "
                    f"cpu {got['load_cpu_s']:.2f} s  read {got['load_read_bytes'] / MIB:.0f} MiB "
                    f"({got['load_read_per_byte'] or 0:.2f}/B)  others' cpu {got['load_others_cpu_s']:.2f} s")
    finally:
        targets.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    keys = ["first_byte_ms", "first_body_byte_ms", "hot_p50_ms", "hot_p99_ms", "hot_max_ms", "hot_answered_in_window",
            "downloads_first_byte_ms", "download_mb_s", "download_mb_s_once_flowing", "load_cpu_s",
            "probe_cpu_s", "probe_read_bytes", "load_read_bytes", "cgroup_read_bytes", "memory_max_usage_bytes",
            "download_received_bytes", "load_read_per_byte", "load_others_cpu_s"]
    summary = {t: {k: median_of(rs, k) for k in keys} for t, rs in rounds.items()}
    for t, rs in rounds.items():
        summary[t]["statuses"] = statuses_of(rs)
    command = shlex.join(["python3", "benches/load/cold.py", *sys.argv[1:]])
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "command": command, "scenario": args.scenario, "settings": settings,
        "targets": TARGETS, "median": summary, "rounds": rounds, "goals": goals(summary),
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    ranged = f", every cold GET with `Range: {settings['range']}`" if args.range_from_middle else ""
    print(f"\nCold library{ranged}, {args.rounds} round(s), medians ({results['when']}; "
          f"`{results['command']}`):\n")
    print(table(summary, settings))
    print()
    if args.range_from_middle and any("200" in m["statuses"] for m in summary.values()):
        print("A 200 to a ranged GET: the server ignored `Range` and sent the whole file (Rocket's "
              "`FileServer` does); its bytes count in MB/s and read_bytes per byte all the same.\n")
    others = max(r["load_others_cpu_s"] for rs in rounds.values() for r in rs)
    print(f"CPU seconds spent by the rest of the machine over a load phase: at most {others:.2f} s "
          f"(all rounds; the phase lasts {args.hot_seconds:g} s, 2 CPUs).\n")
    for g in results["goals"]:
        v = f"{g['ratio']:.2f}×" if "ratio" in g else fmt_ms(g["value"])
        print(f"- goal: {g['goal']}: {v}, {'met' if g['met'] else 'not met'}")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
