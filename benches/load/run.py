#!/usr/bin/env python3
"""Load comparison on loopback: rocket-mmap against nginx (sendfile), Rocket's own
FileServer, a "read the range into a Vec" responder, and a Rocket hello-world route.

Every server runs pinned to CPU 0 with one worker; wrk (one thread) runs pinned to
CPU 1. Rounds are interleaved (every scenario against every target, then again), and
within a round the targets of a scenario are measured back to back in a shuffled
order. The ratio reported for a pair is the median over rounds of the ratio within
each round, so that drift of this shared machine (tens of percent from one minute to
the next) cancels out; req/s figures are medians over rounds and are only indicative.

    python3 benches/load/run.py                 # 7 rounds of 2 s per cell (~6 min)
    python3 benches/load/run.py --rounds 11 --scenarios get_1KiB revalidate_304
    python3 benches/load/run.py --quick         # 1 round of 2 s: a smoke test

The 1 KiB scenario also measures the crate's binary with `--access-log FILE`
(`mmap_log`) and with `--metrics` (`mmap_metrics`) against the plain binary in the
same rounds, and reports each as a throughput ratio (goal: at least 0.9). After the
rounds, a separate run of the binary with both flags takes a 10 s wrk run
(`--log-check SECONDS`) and checks that the access log gained exactly one line per
response the server counted (`rocket_mmap_responses_total`), that none was dropped,
and that wrk's request count agrees (up to the requests in flight when it stopped).

Needs: nginx (Debian's nginx-light), wrk, taskset (util-linux); builds the crate's
binary and the `peers` example in release mode. Writes benches/load/results.json and
benches/load/chart.svg (shown in the README).
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent
MIB = 1 << 20
BIG = 100 * MIB
MULTIPART = "bytes=0-999,50000000-50000999,99000000-99000999"

# scenario -> (path, extra header or None, targets it applies to, what the floor is)
SCENARIOS = {
    "get_1KiB": ("/1k.bin", None, ["mmap", "nginx", "fileserver", "vec", "hello", "headers",
                                   "mmap_log", "mmap_metrics"]),
    "revalidate_304": ("/1k.bin", "if-none-match", ["mmap", "nginx", "hello"]),
    "range_64KiB_random": ("/100m.bin", "random-range", ["mmap", "nginx", "vec", "hello"]),
    "get_1MiB": ("/1m.bin", None, ["mmap", "nginx", "fileserver", "vec", "hello"]),
    "multipart_3_parts": ("/100m.bin", "multipart", ["mmap", "nginx", "hello"]),
}

# Targets of issue 5: (scenario, peer, minimum ratio mmap/peer).
TARGETS = [
    ("get_1KiB", "hello", 0.95),
    ("get_1KiB", "fileserver", 4.0),
    ("revalidate_304", "hello", 0.95),
    ("range_64KiB_random", "nginx", 0.9),
    ("range_64KiB_random", "vec", 5.0),
    ("get_1MiB", "nginx", 1.0),
    ("multipart_3_parts", "nginx", 0.8),
]

# Informative ratios, no goal: "headers" is a Rocket route answering a fixed 1 KiB
# body with the four headers a file response carries, without lookup or conditionals.
INFO = [("get_1KiB", "headers", "the floor for a file response on Rocket")]

# The binary with an operational flag, against the plain binary (issue 14): the
# throughput with the flag over without, median of per-round ratios, and its goal.
VARIANTS = {
    "mmap_log": lambda work: ["--access-log", str(work / "access.log")],
    "mmap_metrics": lambda work: ["--metrics"],
}
COSTS = [
    ("get_1KiB", "mmap_log", 0.9, "the access log written to a file"),
    ("get_1KiB", "mmap_metrics", 0.9, "counters and /metrics on"),
]
ALL_TARGETS = ["mmap", "nginx", "fileserver", "vec", "hello", "headers", *VARIANTS]

NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    tcp_nodelay on;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/tmp;
    proxy_temp_path {prefix}/tmp;
    fastcgi_temp_path {prefix}/tmp;
    uwsgi_temp_path {prefix}/tmp;
    scgi_temp_path {prefix}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""

RANGE_LUA = """
math.randomseed(42)
local size = {size}
local len = 65536
request = function()
  local first = math.random(0, size - len)
  wrk.headers["Range"] = "bytes=" .. first .. "-" .. (first + len - 1)
  return wrk.format(nil, "{path}")
end
"""


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def need(tool):
    if shutil.which(tool) is None:
        sys.exit(f"error: {tool} is not installed (apt-get install nginx-light wrk util-linux)")


def target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"


def build():
    log("building release binaries ...")
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "rocket-mmap", "--example", "peers"],
        cwd=REPO, check=True,
    )
    target = target_dir()
    return target / "rocket-mmap", target / "examples" / "peers"


def make_data(d: Path):
    rng = random.Random(20261121)
    for name, size in [("1k.bin", 1024), ("1m.bin", MIB), ("100m.bin", BIG)]:
        p = d / name
        if p.exists() and p.stat().st_size == size:
            continue
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 4 * MIB)
                f.write(rng.randbytes(n))
                left -= n


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, headers=None, method="GET", limit=1 << 16):
    """A minimal request; returns (status, headers dict, first `limit` body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        h = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{h}\r\n".encode())
        data = b""
        while len(data) < limit:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body


class Server:
    def __init__(self, name, argv, env, port, cwd=None):
        self.name, self.port = name, port
        full_env = dict(os.environ, **env)
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *argv], env=full_env, cwd=cwd,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while True:
            try:
                if http(port, "/1k.bin")[0] in (200, 404):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"error: {name} did not start on port {port}")
            time.sleep(0.1)

    def rss(self):
        """VmRSS, RssAnon and RssFile of the server process, in KiB."""
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "RssAnon", "RssFile"):
                out[k] = int(v.split()[0])
        return out

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_all(bins, data: Path, work: Path, only):
    mmap_bin, peers_bin = bins
    rocket_env = {"ROCKET_WORKERS": "1", "ROCKET_LOG_LEVEL": "off", "ROCKET_ADDRESS": "127.0.0.1"}
    servers = {}
    for name in only:
        port = free_port()
        env = dict(rocket_env, ROCKET_PORT=str(port))
        if name == "mmap":
            servers[name] = Server(name, [str(mmap_bin), str(data), "--port", str(port)], env, port, cwd=work)
        elif name in VARIANTS:
            argv = [str(mmap_bin), str(data), "--port", str(port), *VARIANTS[name](work)]
            servers[name] = Server(name, argv, env, port, cwd=work)
        elif name == "nginx":
            prefix = work / "nginx"
            (prefix / "tmp").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=data))
            servers[name] = Server(name, ["nginx", "-p", str(prefix), "-c", str(conf)], {}, port)
        else:
            servers[name] = Server(name, [str(peers_bin), name, str(data)], env, port, cwd=work)
    return servers


def wrk(port, scenario, etag, duration, conns, work: Path, counts=None):
    path, kind, _ = SCENARIOS[scenario]
    argv = ["taskset", "-c", "1", "wrk", "-t1", f"-c{conns}", f"-d{duration}s"]
    if kind == "if-none-match":
        argv += ["-H", f"If-None-Match: {etag}"] if etag else []
    elif kind == "multipart":
        argv += ["-H", f"Range: {MULTIPART}"]
    elif kind == "random-range":
        script = work / "range.lua"
        script.write_text(RANGE_LUA.format(size=BIG, path=path))
        argv += ["-s", str(script)]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if counts is not None:
        counts["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    return rps, int(bad.group(1)) if bad else 0, errors.group(0) if errors else ""


def metrics_of(port):
    """`series -> value` of a scrape of /metrics."""
    status, _, body = http(port, "/metrics", limit=1 << 20)
    if status != 200:
        raise SystemExit(f"error: /metrics answered {status}")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def log_lines(path: Path):
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def settled_lines(path: Path, limit=15.0):
    """The log's line count once it has stopped growing (the writer batches lines)."""
    deadline = time.time() + limit
    last, stable_since = log_lines(path), time.time()
    while time.time() < deadline:
        time.sleep(0.1)
        now = log_lines(path)
        if now != last:
            last, stable_since = now, time.time()
        elif time.time() - stable_since > 0.5:
            break
    return last


def log_check(mmap_bin, data: Path, work: Path, duration, conns):
    """The binary with --access-log FILE and --metrics under a wrk run of `duration`
    seconds: the log must gain exactly one line per response the server counted."""
    port = free_port()
    path = work / "check.log"
    env = {"ROCKET_WORKERS": "1", "ROCKET_ADDRESS": "127.0.0.1", "ROCKET_PORT": str(port)}
    server = Server("mmap_log_check", [str(mmap_bin), str(data), "--port", str(port),
                                       "--access-log", str(path), "--metrics"], env, port, cwd=work)
    try:
        responses = lambda m: sum(v for k, v in m.items() if k.startswith("rocket_mmap_responses_total{"))
        before = metrics_of(port)
        lines_before = settled_lines(path)
        counts = {}
        rps, bad, errs = wrk(port, "get_1KiB", None, duration, conns, work, counts)
        after = metrics_of(port)
        lines_after = settled_lines(path)
        # Both sides hold one scrape besides wrk's requests: the first scrape's
        # response is counted in the second scrape; the second scrape's line is in
        # the lines counted after it.
        served = responses(after) - responses(before)
        logged = lines_after - lines_before
        dropped = after.get("rocket_mmap_access_log_lines_dropped_total", 0)
        wrk_count = counts["requests"]
        # wrk does not count the requests in flight when it stops (one per connection
        # at most); the server answered (and logged) them.
        ok = logged == served and dropped == 0 and wrk_count <= served - 1 <= wrk_count + conns
        result = {"seconds": duration, "wrk_requests": wrk_count, "server_responses": int(served) - 1,
                  "log_lines": logged - 1, "dropped": int(dropped), "req_per_s": rps,
                  "socket_errors": errs, "non_2xx": bad, "exactly_one_line_per_response": ok}
        log(f"log check: {result}")
        return result
    finally:
        server.stop()


def check_answers(servers, etags, scenarios):
    """Each target must really answer the scenario as expected before it is measured."""
    for scenario, (path, kind, targets) in scenarios.items():
        for t in targets:
            if t in ("hello", "headers"):
                continue
            port = servers[t].port
            hdr = {}
            want = 200
            if kind == "if-none-match":
                hdr, want = {"If-None-Match": etags[t]}, 304
            elif kind == "multipart":
                hdr, want = {"Range": MULTIPART}, 206
            elif kind == "random-range":
                hdr, want = {"Range": "bytes=1000-66535"}, 206
            status, h, _ = http(port, path, hdr, limit=4096)
            ok = status == want and (kind != "multipart" or "multipart/byteranges" in h.get("content-type", ""))
            if not ok:
                raise SystemExit(f"error: {t} answered {status} {h.get('content-type')} to {scenario}, expected {want}")


def stalled_downloads(server, n=64):
    """n clients start a 100 MiB download and stop reading; the server's RSS growth."""
    before = server.rss()
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET /100m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        s.recv(4096)
        socks.append(s)
    time.sleep(3)
    during = server.rss()
    t0 = time.time()
    status, _, _ = http(server.port, "/1k.bin")
    small_ms = (time.time() - t0) * 1000
    for s in socks:
        s.close()
    return {
        "before_kib": before, "during_kib": during,
        "growth_kib": {k: during[k] - before[k] for k in before},
        "small_get_status": status, "small_get_ms": round(small_ms, 1),
    }


def svg_chart(ratios, path: Path):
    rows = [(f"{s} vs {p}", ratios[s][p], goal) for s, p, goal in TARGETS if p in ratios.get(s, {})]
    w, bar_h, gap, left = 760, 22, 10, 250
    h = 60 + len(rows) * (bar_h + gap)
    top = max([r for _, r, _ in rows] + [g for *_, g in rows] + [1.0]) * 1.1
    x = lambda v: left + (w - left - 30) * v / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">rocket-mmap throughput ratio (median of per-round ratios, one run)</text>',
           f'<line x1="{x(1):.1f}" y1="30" x2="{x(1):.1f}" y2="{h - 10}" stroke="#999" stroke-dasharray="4"/>',
           f'<text x="{x(1) + 3:.1f}" y="40" fill="#666">1.0×</text>']
    for i, (label, r, goal) in enumerate(rows):
        y = 50 + i * (bar_h + gap)
        colour = "#2a7" if r >= goal else "#d63"
        out.append(f'<text x="10" y="{y + 15}">{label}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{x(r) - left:.1f}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<line x1="{x(goal):.1f}" y1="{y - 2}" x2="{x(goal):.1f}" y2="{y + bar_h + 2}" stroke="#000" stroke-width="2"/>')
        out.append(f'<text x="{x(r) + 4:.1f}" y="{y + 15}">{r:.2f}× (goal {goal}×)</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--duration", type=int, default=2, help="seconds per measurement")
    ap.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS), help="only these scenarios")
    ap.add_argument("--no-memory", action="store_true", help="skip the stalled-downloads memory test")
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="1 round of 2 s")
    ap.add_argument("--data", type=Path, help="directory for the test files (kept between runs)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--bin-dir", type=Path, help="take rocket-mmap and examples/peers from here (no build)")
    ap.add_argument("--targets", nargs="*", choices=ALL_TARGETS, help="only these servers (mmap always)")
    ap.add_argument("--log-check", type=int, default=10, metavar="SECONDS",
                    help="length of the access-log exactness run (0: skip)")
    ap.add_argument("--out", type=Path, default=OUT, help="where results.json and chart.svg go")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2
    for tool in ("nginx", "wrk", "taskset", "cargo"):
        need(tool)
    if args.bin_dir:
        bins = (args.bin_dir / "rocket-mmap", args.bin_dir / "examples" / "peers")
    elif args.no_build:
        bins = (target_dir() / "rocket-mmap", target_dir() / "examples" / "peers")
    else:
        bins = build()
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-load-"))
    data = args.data or Path(tempfile.gettempdir()) / "rocket-mmap-load-data"
    data.mkdir(parents=True, exist_ok=True)
    make_data(data)
    names = ["mmap", *[t for t in ALL_TARGETS if t != "mmap" and (not args.targets or t in args.targets)]]
    servers = start_all(bins, data, work, names)
    try:
        etags = {t: http(servers[t].port, "/1k.bin", method="HEAD")[1].get("etag")
                 for t in ("mmap", "nginx") if t in servers}
        scenarios = {s: (path, kind, [t for t in targets if t in servers])
                     for s, (path, kind, targets) in SCENARIOS.items()
                     if not args.scenarios or s in args.scenarios}
        check_answers(servers, etags, scenarios)
        cells = {s: {t: [] for t in scenarios[s][2]} for s in scenarios}
        round_ratios = {s: {t: [] for t in scenarios[s][2] if t != "mmap"} for s in scenarios}
        problems = []
        shuffle = random.Random(2026)
        for rnd in range(args.rounds):
            for scenario, (_, _, targets) in scenarios.items():
                # Every target once, in a fresh order each round, back to back: the
                # ratios of one round come from measurements seconds apart.
                order = list(targets)
                shuffle.shuffle(order)
                got = {}
                for t in order:
                    rps, bad, errs = wrk(servers[t].port, scenario, etags.get(t), args.duration, args.connections, work)
                    cells[scenario][t].append(rps)
                    got[t] = rps
                    if bad and t not in ("hello", "headers"):
                        problems.append(f"{t} {scenario}: {bad} non-2xx/3xx responses")
                    log(f"round {rnd + 1}/{args.rounds} {scenario:<20} {t:<10} {rps:>10.1f} req/s {errs}")
                for t in round_ratios[scenario]:
                    if got[t] > 0:
                        round_ratios[scenario][t].append(got["mmap"] / got[t])
        medians = {s: {t: statistics.median(v) for t, v in ts.items()} for s, ts in cells.items()}
        # The ratio reported is the median of the per-round ratios, not a ratio of
        # medians: this machine drifts by tens of percent between minutes, and a
        # round's measurements are taken seconds apart.
        ratios = {s: {p: statistics.median(v) for p, v in rs.items() if v} for s, rs in round_ratios.items()}
        spread = {s: {p: [round(min(v), 3), round(max(v), 3)] for p, v in rs.items() if v}
                  for s, rs in round_ratios.items()}
        # Operational flags: throughput with the flag over without, per round.
        costs = {}
        for s_, variant, goal, what in COSTS:
            rounds_ = [1 / r for r in round_ratios.get(s_, {}).get(variant, []) if r > 0]
            if rounds_:
                costs[variant] = {"scenario": s_, "what": what, "goal": goal,
                                  "ratio": statistics.median(rounds_),
                                  "range": [round(min(rounds_), 3), round(max(rounds_), 3)],
                                  "met": statistics.median(rounds_) >= goal}
        memory = {}
        if not args.no_memory:
            for name in ("mmap", "fileserver"):
                if name in servers:
                    memory[name] = stalled_downloads(servers[name])
    finally:
        for s in servers.values():
            s.stop()
    check = log_check(bins[0], data, work, args.log_check, args.connections) if args.log_check > 0 else None
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "settings": {"rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
                     "servers": "CPU 0, 1 worker", "wrk": "CPU 1, 1 thread"},
        "req_per_s_median": medians, "req_per_s_all_rounds": cells,
        "ratios_mmap_over_peer": ratios, "ratios_per_round": round_ratios, "ratio_min_max": spread,
        "targets": [{"scenario": s, "peer": p, "goal": g, "ratio": ratios[s].get(p),
                     "range": spread[s].get(p), "met": ratios[s].get(p, 0) >= g}
                    for s, p, g in TARGETS if ratios.get(s, {}).get(p) is not None],
        "operational_flags": costs, "access_log_check": check,
        "memory_64_stalled_100MiB": memory, "problems": problems,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    svg_chart(ratios, args.out / "chart.svg")
    print(f"\n{'scenario':<22}" + "".join(f"{t:>12}" for t in names))
    for s, m in medians.items():
        print(f"{s:<22}" + "".join(f"{m[t]:>12.0f}" if t in m else f"{'—':>12}" for t in names))
    print("\nratios (mmap / peer), goal, met:")
    for row in results["targets"]:
        r, (lo, hi) = row["ratio"], row["range"]
        print(f"  {row['scenario']:<20} vs {row['peer']:<10} {r:6.2f}×  (rounds {lo:.2f}–{hi:.2f})  "
              f"goal {row['goal']}×  {'yes' if row['met'] else 'NO'}")
    for s, p, what in INFO:
        if p in ratios.get(s, {}):
            lo, hi = spread[s][p]
            print(f"  {s:<20} vs {p:<10} {ratios[s][p]:6.2f}×  (rounds {lo:.2f}–{hi:.2f})  {what}")
    if costs:
        print("\noperational flags (throughput with / without, median of rounds), goal, met:")
        for variant, c in costs.items():
            lo, hi = c["range"]
            print(f"  {c['scenario']:<20} {variant:<13} {c['ratio']:6.2f}×  (rounds {lo:.2f}–{hi:.2f})  "
                  f"goal {c['goal']}×  {'yes' if c['met'] else 'NO'}  ({c['what']})")
    if check:
        print(f"\naccess log, {check['seconds']} s wrk run: {check['log_lines']} lines for "
              f"{check['server_responses']} responses (wrk counted {check['wrk_requests']}), "
              f"{check['dropped']} dropped: "
              f"{'exactly one line per response' if check['exactly_one_line_per_response'] else 'MISMATCH'}")
        if not check["exactly_one_line_per_response"]:
            problems.append("access log: not exactly one line per response")
    for name, m in memory.items():
        g = m["growth_kib"]
        print(f"\n64 stalled 100 MiB downloads, {name}: RSS growth {g['VmRSS'] / 1024:.1f} MiB "
              f"(anon {g['RssAnon'] / 1024:.1f} MiB, file {g['RssFile'] / 1024:.1f} MiB); "
              f"small GET meanwhile: {m['small_get_status']} in {m['small_get_ms']} ms")
    for p in problems:
        print("problem:", p)
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'chart.svg'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
