#!/usr/bin/env python3
"""Many small files, as a download mirror serves them (issue 28): rocket-mmap, nginx and
Rocket's own FileServer side by side in one run.

The library: 100 000 files of 0.5-64 KiB (sizes uniform, random bytes, seeded) in 256
directories, 3.3 GB, written once under `--data` (default
/var/tmp/rocket-mmap-mirror-data) and kept: a marker file there records the parameters,
and a run with the same ones does not write the files again.

Every server runs alone, pinned to CPU 0 with one worker; h2load (HTTP/1.1, `--h1`)
runs on CPU 1 with 16 keep-alive connections, one request in flight on each, GETs of
files drawn at random. h2load (1.52) gives every connection of one process the same
URI list from its first line, so 16 connections of one h2load send the same requests
almost in step (checked with an access log: each file 16 times in a row; nginx then
spent 8 µs per request instead of 15). So the script starts 16 h2load processes of
one connection each (`--connections`), each with its own slice of the URI list
(`--uris` lines, 500 000 by default, split in 16): the connections ask for different
files. Each cycles through its slice; the JSON records whether one came round to its
start (harmless: 500 000 requests later).

Scenarios (`--scenarios`):

1. `warm_uniform`: every file read once beforehand (page cache warm); uniform requests;
2. `warm_zipf`: the same, requests drawn from Zipf(s=1.0) over a random permutation
   of the files (the most popular file takes ~8 % of the requests, the 1 024 most
   popular ~62 %);
3. `cold_uniform`: caches dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`) just
   before the server starts, in a cgroup v1 memory group of 256 MiB (cold.py's
   `Cgroup`: its page cache holds at most ~8 % of the library), uniform requests; with
   `--throttle`, its reads are also held to cold.py's 64 MiB/s and 400 IOPS. Needs
   root: without it, this scenario is skipped and the script says why.

Each measurement runs h2load for `--warmup` s (not counted) and `--seconds` s (counted).
Over the counted window (wall clock, matched to h2load's per-request `--log-file`):

- req/s: responses that ended in the window, per second;
- CPU µs/req: the server's utime + stime (/proc/PID/stat) over the window, per response;
- p50 / p99: latency of those responses (from the request's start to the response's end);
- statuses: every response of the run must be a 200;
- ETag: `--etag-sample` GETs (Python, one connection each) of files of the URI list
  before and after the load; all must be 200s, and every rocket-mmap one must carry
  an `ETag`;
- client CPU: the h2load processes' CPU over the window, as a share of CPU 1. Near
  100 %, the client bounds the figures (req/s and p99 say little then; CPU/req still
  holds). 16 processes cost ~22 µs of CPU 1 per request here: nginx's warm uniform
  req/s (40 000-47 000 on a quiet machine) is the client's;
- others: CPU seconds the rest of the machine used over the window (cold.py's
  `machine_busy_s`; ±0.5 s even when idle, the counters being sampled differently):
  anything else running on 2 CPUs shows there. `--wait-idle`
  waits for an idle machine before each measurement and measures again when that
  passes a fifth of a CPU (cold.py's `measure_quietly`);
- memory: the server's RssAnon at the end of the window and, cold, its group's peak
  usage and OOM kills.

A server that answers other than 200, dies (an OOM kill in its group) or stops
answering fails its cell: the table says FAILED and why, its goals fail, the run goes
on with the others and the script exits with status 1.

The servers (`--only`): `mmap_cached` (warm scenarios only: the crate with bounds that
hold the whole library, every file requested once beforehand, so that every request
is a hit: the floor a miss can reach), `ideal` (warm scenarios only: the `peers`
example's `ideal` mode, every file read into a map at start and sent with a file
response's headers, no disk, no conditionals: what Rocket alone charges per response,
the floor of any responder on Rocket), `mmap` (the crate's binary, `--bin`, default
configuration), `nginx` (run.py's NGINX_CONF) and `rocket` (Rocket's FileServer, the
`peers` example, `--peers`). In each round every scenario measures every server in turn, the order
rotated from round to round; figures are medians over `--rounds`, ratios medians of the
per-round ratios. The goals (issue 28): warm uniform CPU/req at most 1.4x nginx's; warm
Zipf at most 1.2x; cold req/s at least 0.95x nginx's and p99 at most FileServer's.

    sudo python3 benches/load/mirror.py                 # 1 round of 10 s per cell (~3 min)
    sudo python3 benches/load/mirror.py --rounds 3 --seconds 5 --wait-idle
    python3 benches/load/mirror.py --scenarios warm_uniform warm_zipf --only mmap nginx
    sudo python3 benches/load/mirror.py --bin /tmp/after/rocket-mmap --peers /tmp/after/examples/peers
    sudo python3 benches/load/mirror.py --build          # cargo build --release first

Needs h2load (nghttp2-client), nginx, taskset, release builds of the binary and the
`peers` example (`--build` makes them). Writes benches/load/mirror_results.json (or
`--out`) and prints a Markdown table.
"""
import argparse
import json
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import MIB, REPO, build, http, log, need, start_all, write_random  # noqa: E402
from cold import (CGROUP_ROOT, Targets, machine_busy_s, measure_quietly, own_cpu_s, percentile,  # noqa: E402
                  whole_disk)

OUT = Path(__file__).resolve().parent
DIRS = 256
MIN_SIZE, MAX_SIZE = 512, 64 * 1024
SEED = 20261206
MARKER = ".mirror-data.json"
# With --wait-idle, a measurement over whose window the rest of the machine used more
# than this share of one CPU is made again (three times at most).
BUSY_RETRY = 0.2

# Our server name -> (its column in the table, its target name in run.py / cold.py).
SERVERS = {"mmap": ("rocket-mmap", "mmap"), "nginx": ("nginx", "nginx"),
           "rocket": ("Rocket FileServer", "fileserver"),
           "mmap_cached": ("rocket-mmap, every file cached", "mmap"),
           "ideal": ("Rocket, every file in memory", "ideal")}
# `mmap_cached` (warm scenarios only): the crate with bounds large enough for the whole
# library, every file requested once before the ETag check and the load: every request
# is a hit. Its CPU per request is the crate's floor on this library, which a miss can
# at best reach.
# `ideal` (warm scenarios only): the peers example's `ideal` mode, every file read into
# a `HashMap` at start and sent with a file response's headers, no lookup on the disk,
# no conditionals: what Rocket alone charges per response on this library, the floor
# any Rocket responder can reach.
WARM_ONLY = ("mmap_cached", "ideal")
CACHED_ENV = {"ROCKET_MMAP_MAX_MEMORY": "8g", "ROCKET_MMAP_MAX_ENTRIES": "262144"}
SCENARIOS = {"warm_uniform": ("warm", "uniform"), "warm_zipf": ("warm", "zipf"),
             "cold_uniform": ("cold", "uniform")}

# issue 28's goals: (scenario, what, metric, bound, peer, direction).
GOALS = [
    ("warm_uniform", "CPU/req ≤ 1.4× nginx", "cpu_us", 1.4, "nginx", "max"),
    ("warm_zipf", "CPU/req ≤ 1.2× nginx", "cpu_us", 1.2, "nginx", "max"),
    ("cold_uniform", "req/s ≥ 0.95× nginx", "rps", 0.95, "nginx", "min"),
    ("cold_uniform", "p99 ≤ FileServer's", "p99_ms", 1.0, "rocket", "max"),
]


def file_names(n):
    return [f"{i % DIRS:02x}/{i:06d}.bin" for i in range(n)]


def make_data(data: Path, n):
    """The library: `n` files of MIN_SIZE..MAX_SIZE random bytes in DIRS directories,
    written unless the marker says a library of these parameters is already there."""
    params = {"files": n, "dirs": DIRS, "min_bytes": MIN_SIZE, "max_bytes": MAX_SIZE, "seed": SEED}
    names = file_names(n)
    rng = random.Random(SEED)
    sizes = [rng.randint(MIN_SIZE, MAX_SIZE) for _ in range(n)]
    marker = data / MARKER
    try:
        if json.loads(marker.read_text()) == params:
            return names, sum(sizes)
    except (OSError, ValueError):
        pass
    log(f"writing {n} files ({sum(sizes) / 1e9:.1f} GB) under {data} ...")
    for d in range(DIRS):
        (data / f"{d:02x}").mkdir(parents=True, exist_ok=True)
    write_random(data, list(zip(names, sizes)), SEED + 1)
    marker.write_text(json.dumps(params) + "\n")
    return names, sum(sizes)


def read_all(data: Path, names):
    """Reads every file once (into the page cache); returns the seconds it took."""
    t0 = time.monotonic()
    buf = bytearray(MAX_SIZE)
    for name in names:
        with open(data / name, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass
    return time.monotonic() - t0


def uri_lists(names, dist, lines, conns, work: Path):
    """`lines` request paths drawn from `dist` (uniform, or Zipf(1.0) over a seeded
    permutation of the files), split into `conns` files, one per h2load process."""
    rng = random.Random(f"{SEED}-{dist}")
    if dist == "uniform":
        paths = ["/" + names[rng.randrange(len(names))] for _ in range(lines)]
    else:
        order = rng.sample(names, len(names))
        cum, total = [], 0.0
        for k in range(1, len(order) + 1):
            total += 1.0 / k
            cum.append(total)
        paths = ["/" + n for n in rng.choices(order, cum_weights=cum, k=lines)]
    per = lines // conns
    files = []
    for i in range(conns):
        f = work / f"uris-{dist}-{i}.txt"
        f.write_text("\n".join(paths[i * per:(i + 1) * per]) + "\n")
        files.append(f)
    return paths, files, per


def preload(port, names, work: Path, conns=16):
    """GETs every file once (h2load, `conns` processes of one connection, on CPU 1)."""
    procs = []
    for i in range(conns):
        f = work / f"preload-{i}.txt"
        part = names[i::conns]
        f.write_text("".join(f"http://127.0.0.1:{port}/{n}\n" for n in part))
        procs.append(subprocess.Popen(["taskset", "-c", "1", "h2load", "--h1", "-t1", "-c1", "-m1",
                                       "-n", str(len(part)), "-i", str(f)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for p in procs:
        p.wait(timeout=600)


class CellFailed(Exception):
    """A server did not serve a measurement: it died, hung, or answered other than 200."""


def etag_check(port, paths, n, seed):
    """GETs of `n` paths drawn from `paths`, one connection each (10 s timeout): their
    statuses and how many carried an ETag. The first GET without an answer ends it."""
    statuses, with_etag = {}, 0
    for p in random.Random(seed).sample(paths, n):
        try:
            status, hdrs, _ = http(port, p, limit=1024)
        except (OSError, IndexError, ValueError) as e:
            raise CellFailed(f"no answer to GET {p} ({type(e).__name__}: {e})") from None
        statuses[status] = statuses.get(status, 0) + 1
        with_etag += "etag" in hdrs
    if set(statuses) != {200}:
        raise CellFailed(f"answered {statuses} to {n} GETs of the ETag sample; every one must be a 200")
    return {"requests": n, "with_etag": with_etag, "statuses": statuses}


def memory_of(server):
    """VmRSS, RssAnon and RssFile of a server, KiB (None once it is gone)."""
    try:
        return server.rss()
    except OSError:
        return None


def oom_kills(cgroup):
    """The memory cgroup's count of OOM kills (memory.oom_control)."""
    try:
        text = (cgroup.memory / "memory.oom_control").read_text()
    except OSError:
        return None
    m = re.search(r"^oom_kill (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def proc_cpu(pid):
    """utime + stime of a process, seconds (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sleep_until(t):
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.5))


def h2load(server, uri_files, warmup, seconds, work: Path, tag):
    """One h2load process per URI file, one connection each, on CPU 1, for `warmup` +
    `seconds` (+ 1 s so that the window ends before they do). Returns the figures of
    the window [start + warmup, start + warmup + seconds]."""
    total = warmup + seconds + 1.0
    base = f"http://127.0.0.1:{server.port}"
    logs = [work / f"{tag}-{i}.log" for i in range(len(uri_files))]
    outs = [work / f"{tag}-{i}.out" for i in range(len(uri_files))]
    procs = []
    start = time.time()
    try:
        for f, lg, out in zip(uri_files, logs, outs):
            argv = ["taskset", "-c", "1", "h2load", "--h1", "-t1", "-c1", "-m1", "-B", base, "-i", str(f),
                    "-D", f"{int(total * 1000)}ms", "--log-file", str(lg)]
            with open(out, "w") as o:
                procs.append(subprocess.Popen(argv, stdout=o, stderr=subprocess.STDOUT))
        t0 = start + warmup
        sleep_until(t0)
        cpu0, client0 = server.cpu_seconds(), sum(proc_cpu(p.pid) for p in procs)
        busy0, own0 = machine_busy_s(), own_cpu_s()
        t0 = time.time()
        sleep_until(t0 + seconds)
        cpu1, client1 = server.cpu_seconds(), sum(proc_cpu(p.pid) for p in procs)
        busy1, own1 = machine_busy_s(), own_cpu_s()
        t1 = time.time()
        rss = memory_of(server)
        for p in procs:
            p.wait(timeout=max(0.0, start + total - time.time()) + 30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    try:
        if server.proc.poll() is not None:
            raise CellFailed(f"exited during the load (status {server.proc.returncode})")
        failed, requests = 0, []
        for p, out in zip(procs, outs):
            text = out.read_text()
            m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                          r"(\d+) errored, (\d+) timeout", text)
            if p.returncode != 0 or m is None:
                raise CellFailed(f"h2load failed (status {p.returncode}): {text[-500:]}")
            failed += int(m.group(5)) + int(m.group(6)) + int(m.group(7))
            requests.append(int(m.group(3)))
        statuses_all, statuses, latencies = {}, {}, []
        lo, hi = t0 * 1e6, t1 * 1e6
        for lg in logs:
            for line in lg.read_text().splitlines():
                begin, status, took = line.split("\t")[:3]
                status = int(status)
                statuses_all[status] = statuses_all.get(status, 0) + 1
                end = int(begin) + int(took)
                if lo <= end < hi:
                    statuses[status] = statuses.get(status, 0) + 1
                    latencies.append(int(took) / 1000)
        if set(statuses_all) != {200} or failed:
            raise CellFailed(f"statuses {statuses_all} and {failed} failed/errored/timed out requests (h2load); "
                             f"every response must be a 200")
    finally:
        for f in logs + outs:  # ~30 bytes a request: 20 MB for a 14 s run at 45 000 req/s
            f.unlink(missing_ok=True)
    n = len(latencies)
    if not n:
        raise CellFailed("no response in the measured window")
    return {"window_s": t1 - t0, "responses": n, "rps": n / (t1 - t0), "cpu_us": (cpu1 - cpu0) * 1e6 / n,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "statuses": statuses, "statuses_whole_run": statuses_all,
            "client_cpu_share": (client1 - client0) / (t1 - t0),
            # CPU seconds the rest of the machine used over the window: all CPUs' busy
            # time but the server's, h2load's and this script's (loopback softirqs
            # included: a little when nothing else runs).
            "others_cpu_s": (busy1 - busy0) - (cpu1 - cpu0) - (client1 - client0) - (own1 - own0),
            "requests_per_connection": requests, "server_memory_kib": rss}


def measure(scenario, name, args, ctx):
    """One server in one scenario: started (cold: caches dropped, in its cgroup),
    ETag-checked, loaded, ETag-checked again, stopped."""
    temp, dist = SCENARIOS[scenario]
    target = SERVERS[name][1]
    paths, files, per = ctx["uris"][dist]
    if name == "mmap_cached":
        server = start_all(ctx["bins"], ctx["data"], ctx["work"], [target], mmap_env=CACHED_ENV)[target]
        stop = server.stop
        preload(server.port, ctx["names"], ctx["work"])
    elif temp == "warm":
        server = start_all(ctx["bins"], ctx["data"], ctx["work"], [target])[target]
        stop = server.stop
    else:
        server, cgroup = ctx["targets"].start(target)
        stop = lambda: ctx["targets"].stop(server, cgroup)  # noqa: E731
    got = {}
    try:
        try:
            got["etag_before"] = etag_check(server.port, paths, args.etag_sample, f"{scenario}-{name}-before")
            got.update(h2load(server, files, args.warmup, args.seconds, ctx["work"], f"{scenario}-{name}"))
            got["etag_after"] = etag_check(server.port, paths, args.etag_sample, f"{scenario}-{name}-after")
            got["uri_list_wrapped"] = any(r > per for r in got["requests_per_connection"])
        except CellFailed as e:
            # Recorded, and the run goes on: the table shows it, the script exits 1.
            got.update(failed=str(e), others_cpu_s=0.0, server_memory_kib=memory_of(server))
            log(f"FAILED: {name} in {scenario}: {e}")
        if temp == "cold":
            got["cgroup"] = dict(cgroup.stats(), memory_limit_bytes=args.memory, oom_kills=oom_kills(cgroup))
    finally:
        stop()
    return got


def fmt_cell(m, failure):
    if m is None:
        return f"FAILED: {failure}" if failure else "—"
    return f"{m['rps']:,.0f} req/s · {m['cpu_us']:.1f} µs/req · p99 {m['p99_ms']:.1f} ms".replace(",", " ")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    ap.add_argument("--bin", type=Path, default=target_dir / "rocket-mmap", help="the crate's binary")
    ap.add_argument("--peers", type=Path, default=target_dir / "examples" / "peers",
                    help="the peers example (Rocket's FileServer)")
    ap.add_argument("--build", action="store_true",
                    help="cargo build --release the binary and the peers example first (into the "
                    "defaults of --bin and --peers)")
    ap.add_argument("--data", type=Path, default=Path("/var/tmp/rocket-mmap-mirror-data"),
                    help="the library's directory (written once, kept; on a real disk for the cold scenario)")
    ap.add_argument("--files", type=int, default=100_000, help="files in the library")
    ap.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS), default=list(SCENARIOS))
    ap.add_argument("--only", nargs="*", choices=list(SERVERS), default=list(SERVERS), help="servers")
    ap.add_argument("--rounds", type=int, default=1, help="rounds; figures are medians over them")
    ap.add_argument("--seconds", type=float, default=10.0, help="the counted window of a measurement")
    ap.add_argument("--warmup", type=float, default=3.0, help="load before the counted window")
    ap.add_argument("--connections", type=int, default=16, help="h2load processes, one connection each")
    ap.add_argument("--uris", type=int, default=500_000, help="request paths drawn per distribution")
    ap.add_argument("--etag-sample", type=int, default=300, help="GETs checked for an ETag before and after")
    ap.add_argument("--memory", type=int, default=256 * MIB, help="cold: the server's memory.limit_in_bytes")
    ap.add_argument("--throttle", action="store_true",
                    help="cold: also hold the server's reads to 64 MiB/s and 400 IOPS (cold.py's blkio)")
    ap.add_argument("--wait-idle", action="store_true",
                    help="before each measurement, wait until the machine has been idle for 3 s (cold.py's "
                    "wait_idle), and measure again (three times at most) when the rest of the machine used "
                    "more than a fifth of a CPU over the window")
    ap.add_argument("--out", type=Path, default=OUT / "mirror_results.json")
    args = ap.parse_args()
    if args.uris < 100 * args.connections:
        sys.exit("error: --uris must give each connection at least 100 paths")

    for tool in ("h2load", "taskset") + (("nginx",) if "nginx" in args.only else ()):
        need(tool)
    if args.build:
        build()
    bins = (args.bin.resolve(), args.peers.resolve())
    for name, b in (("mmap", bins[0]), ("rocket", bins[1]), ("ideal", bins[1])):
        if name in args.only and not b.exists():
            sys.exit(f"error: {b} does not exist (--build, or cargo build --release --bin rocket-mmap "
                     f"--example peers)")
    skipped = {}
    if "cold_uniform" in args.scenarios:
        why = None
        if os.geteuid() != 0:
            why = "needs root (cgroups, /proc/sys/vm/drop_caches); run with sudo"
        else:
            for c in ("blkio", "memory"):
                if not (CGROUP_ROOT / c / "cgroup.procs").exists():
                    why = f"cgroup v1 controller {c} is not mounted at {CGROUP_ROOT / c}"
        if why:
            log(f"cold_uniform skipped: {why}")
            skipped["cold_uniform"] = why
            args.scenarios = [s for s in args.scenarios if s != "cold_uniform"]

    args.data.mkdir(parents=True, exist_ok=True)
    names, total_bytes = make_data(args.data, args.files)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-mirror-"))
    device = whole_disk(os.stat(args.data).st_dev)
    bps, iops = (64 * MIB, 400) if args.throttle else (0, 0)  # 0: no blkio rule
    ctx = {"bins": bins, "data": args.data, "work": work, "uris": {},
           "targets": Targets((bins[0], bins[1], None), args.data, work, device,
                              SimpleNamespace(read_bps=bps, read_iops=iops, memory=args.memory))}
    for dist in sorted({SCENARIOS[s][1] for s in args.scenarios}):
        ctx["uris"][dist] = uri_lists(names, dist, args.uris, args.connections, work)
    per_cell = args.warmup + args.seconds + 6
    log(f"{args.rounds} round(s) of {len(args.scenarios)} scenario(s) × {len(args.only)} server(s), "
        f"~{per_cell:.0f} s each: ~{args.rounds * len(args.scenarios) * len(args.only) * per_cell / 60:.0f} min")
    ctx["names"] = names
    # The floor reference is a warm measurement only.
    servers_of = lambda s: [n for n in args.only  # noqa: E731
                            if not (n in WARM_ONLY and SCENARIOS[s][0] == "cold")]
    rounds = {s: {n: [] for n in servers_of(s)} for s in args.scenarios}
    warm_reads = []
    try:
        for rnd in range(args.rounds):
            order = args.only[rnd % len(args.only):] + args.only[:rnd % len(args.only)]
            for scenario in args.scenarios:
                if SCENARIOS[scenario][0] == "warm":
                    # Again before every warm scenario: a cold one dropped the caches.
                    took = read_all(args.data, names)
                    warm_reads.append(took)
                    log(f"read the library in {took:.1f} s")
                for name in order:
                    if name not in rounds[scenario]:
                        continue
                    got = measure_quietly(lambda: measure(scenario, name, args, ctx), args.wait_idle,
                                          "others_cpu_s", BUSY_RETRY * args.seconds,
                                          f"round {rnd + 1}/{args.rounds} {scenario} {name}")
                    rounds[scenario][name].append(got)
                    if "failed" not in got:
                        log(f"round {rnd + 1}/{args.rounds} {scenario:<13} {name:<7} {got['rps']:>9.0f} req/s "
                            f"{got['cpu_us']:>7.1f} µs/req  p50 {got['p50_ms']:.2f} ms  p99 {got['p99_ms']:.2f} ms  "
                            f"client CPU {got['client_cpu_share']:.0%}  others {got['others_cpu_s']:.1f} CPU s  "
                            f"ETag {got['etag_before']['with_etag']}/{got['etag_after']['with_etag']} "
                            f"of {args.etag_sample}")
    finally:
        ctx["targets"].stop_all()
        shutil.rmtree(work, ignore_errors=True)

    keys = ("rps", "cpu_us", "p50_ms", "p99_ms", "client_cpu_share", "others_cpu_s")
    ok = lambda rs: [r for r in rs if "failed" not in r]  # noqa: E731
    median = {s: {n: {k: statistics.median(r[k] for r in ok(rs)) for k in keys} if ok(rs) else None
                  for n, rs in by.items()} for s, by in rounds.items()}
    failures = {s: {n: [r["failed"] for r in rs if "failed" in r] for n, rs in by.items()}
                for s, by in rounds.items()}

    def ratio(s, metric, peer):
        """Median over the rounds where both served of mmap's figure / the peer's."""
        if s not in rounds or "mmap" not in rounds[s] or peer not in rounds[s]:
            return None
        pairs = [(a, b) for a, b in zip(rounds[s]["mmap"], rounds[s][peer]) if "failed" not in a and "failed" not in b]
        return statistics.median(a[metric] / b[metric] for a, b in pairs) if pairs else None

    def floor_ratio(s, floor="mmap_cached"):
        """Median over the rounds of a floor reference's CPU/req / nginx's."""
        if s not in rounds or floor not in rounds[s] or "nginx" not in rounds[s]:
            return None
        pairs = [(a, b) for a, b in zip(rounds[s][floor], rounds[s]["nginx"])
                 if "failed" not in a and "failed" not in b]
        return statistics.median(a["cpu_us"] / b["cpu_us"] for a, b in pairs) if pairs else None

    ratios = {s: {"cpu_us_cached_over_nginx": floor_ratio(s),
                  "cpu_us_ideal_over_nginx": floor_ratio(s, "ideal"),
                  "cpu_us_mmap_over_nginx": ratio(s, "cpu_us", "nginx"),
                  "rps_mmap_over_nginx": ratio(s, "rps", "nginx"),
                  "p99_mmap_over_fileserver": ratio(s, "p99_ms", "rocket")} for s in rounds}
    goals = []
    for s, what, metric, bound, peer, direction in GOALS:
        r = ratio(s, metric, peer)
        met = None if r is None else (r <= bound if direction == "max" else r >= bound)
        if s in rounds and failures[s].get("mmap"):
            met = False  # a round where the crate failed fails the goal
        goals.append({"scenario": s, "goal": what, "ratio": r, "bound": bound, "met": met})
    problems = [f"{s}: {n} failed: {f}" for s, by in failures.items() for n, fs in by.items() for f in fs]
    problems += [f"{s}: mmap: {r[k]['requests'] - r[k]['with_etag']} of {r[k]['requests']} sampled responses "
                 f"without ETag ({k})"
                 for s, by in rounds.items() for r in by.get("mmap", [])
                 for k in ("etag_before", "etag_after") if k in r and r[k]["with_etag"] < r[k]["requests"]]
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "command": shlex.join(["python3", "benches/load/mirror.py", *sys.argv[1:]]),
        "settings": {"files": args.files, "dirs": DIRS, "file_bytes": [MIN_SIZE, MAX_SIZE],
                     "library_bytes": total_bytes, "seed": SEED, "rounds": args.rounds,
                     "seconds": args.seconds, "warmup_s": args.warmup,
                     "client": f"h2load --h1, {args.connections} processes × 1 connection, CPU 1",
                     "uris": args.uris, "uris_per_connection": args.uris // args.connections,
                     "server": "CPU 0, 1 worker", "cold_memory_limit": args.memory,
                     "cold_throttle": {"read_bps": bps, "read_iops": iops} if args.throttle else None,
                     "etag_sample": args.etag_sample, "wait_idle": args.wait_idle,
                     "bin": str(bins[0]), "peers": str(bins[1]), "library_read_s": warm_reads},
        "skipped": skipped, "servers": {n: SERVERS[n][0] for n in args.only},
        "median": median, "ratios": ratios, "goals": goals, "problems": problems, "rounds": rounds,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    cols = [n for n in SERVERS if n in args.only]
    print(f"\nMany files ({args.files} of 0.5-64 KiB), {args.rounds} round(s) of {args.seconds:g} s, medians "
          f"({results['when']}; `{results['command']}`):\n")
    print("| scenario | " + " | ".join(SERVERS[n][0] for n in cols)
          + " | CPU/req mmap/nginx | CPU/req all-hits/nginx | CPU/req in-memory Rocket/nginx "
          "| req/s mmap/nginx | p99 mmap/FileServer |")
    print("|---" * (len(cols) + 6) + "|")
    for s in rounds:
        r = ratios[s]
        f = lambda v: "—" if v is None else f"{v:.2f}×"  # noqa: E731
        print(f"| {s} | " + " | ".join(fmt_cell(median[s].get(n), "; ".join(failures[s].get(n, []))) for n in cols)
              + f" | {f(r['cpu_us_mmap_over_nginx'])} | {f(r['cpu_us_cached_over_nginx'])} "
                f"| {f(r['cpu_us_ideal_over_nginx'])} | {f(r['rps_mmap_over_nginx'])} "
                f"| {f(r['p99_mmap_over_fileserver'])} |")
    for s, why in skipped.items():
        print(f"| {s} | skipped: {why} |")
    print()
    for g in goals:
        state = (f"skipped ({skipped[g['scenario']]})" if g["scenario"] in skipped else "n/a (not measured)"
                 if g["met"] is None else "PASS" if g["met"] else "FAIL")
        val = "" if g["ratio"] is None else f": {g['ratio']:.2f}×"
        print(f"- {g['scenario']}: {g['goal']}{val}  {state}")
    for s, by in median.items():
        for n, m in by.items():
            if m and m["client_cpu_share"] > 0.9:
                print(f"note: h2load used {m['client_cpu_share']:.0%} of CPU 1 against {n} in {s}: the client "
                      f"bounds req/s and p99 there")
    print("\nserver memory at the end of the window (RssAnon; cold: the memory group's peak, page cache "
          "included, and its OOM kills), per round:")
    for s, by in rounds.items():
        cells = []
        for n, rs in by.items():
            for r in rs:
                mem, cg = r.get("server_memory_kib"), r.get("cgroup")
                cell = f"{n} " + (f"{mem['RssAnon'] / 1024:.0f} MiB" if mem else "gone")
                if cg:
                    cell += (f" (group peak {cg['memory_max_usage_bytes'] / MIB:.0f} of "
                             f"{cg['memory_limit_bytes'] / MIB:.0f} MiB, OOM kills {cg['oom_kills']})")
                cells.append(cell)
        print(f"  {s}: " + ", ".join(cells))
    others = [r["others_cpu_s"] for by in rounds.values() for rs in by.values() for r in ok(rs)]
    if others:
        print(f"CPU seconds used by the rest of the machine over a {args.seconds:g} s window: at most "
              f"{max(others):.1f} (2 CPUs; a busy machine makes every figure worse, req/s most)")
    for p in problems:
        print("problem:", p)
    print(f"\nwrote {args.out}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
