#!/usr/bin/env python3
"""Load comparison on loopback: rocket-mmap against the in-memory ceiling of a Rocket
file response (`ideal`), nginx (sendfile), Rocket's own FileServer, a "read the range
into a Vec" responder, and a Rocket hello-world route.

Every server runs pinned to CPU 0 with one worker; wrk (one thread) runs pinned to
CPU 1. Rounds are interleaved (every scenario against every target, then again), and
within a round the targets of a scenario are measured back to back in a shuffled
order. The ratio reported for a pair is the median over rounds of the ratio within
each round, so that drift of this shared machine (tens of percent from one minute to
the next) cancels out; req/s figures are medians over rounds and are only indicative.

Besides req/s, every cell records the server's CPU time per request (utime + stime of
the server process from /proc/PID/stat over the run, divided by the requests wrk
completed). Where the client is the bottleneck (nginx on 1 MiB), throughput says
little and CPU per request still compares the servers' work; it also moves far less
between runs than req/s. CPU ratios are peer µs / mmap µs (above 1: the crate does the
same work for less CPU).

    python3 benches/load/run.py                 # 7 rounds of 2 s per cell (~6 min)
    python3 benches/load/run.py --rounds 11 --scenarios get_1KiB revalidate_304
    python3 benches/load/run.py --quick         # 1 round of 2 s: a smoke test
    python3 benches/load/run.py --scenarios h2_tls_get_1KiB h2_tls_get_1MiB h2c_get_1KiB
    python3 benches/load/run.py --baseline-bin /tmp/before/release/rocket-mmap
                                  # adds "baseline" (another build) to every scenario:
                                  # mmap / baseline = 1.00 means a change moved nothing
    python3 benches/load/run.py --baseline-bin target/release/rocket-mmap \
        --mmap-env ROCKET_MMAP_REVALIDATE=watch --targets ideal baseline --no-memory
                                  # a policy A/B: the same binary under "watch" and
                                  # under the default "always"

The 1 KiB scenario also measures the crate's binary with `--access-log FILE`
(`mmap_log`) and with `--metrics` (`mmap_metrics`) against the plain binary in the
same rounds, and reports each as a throughput ratio (goal: at least 0.9). After the
rounds, a separate run of the binary with both flags takes a 10 s wrk run
(`--log-check SECONDS`) and checks that the access log gained exactly one line per
response the server counted (`rocket_mmap_responses_total`), that none was dropped,
and that wrk's request count agrees (up to the requests in flight when it stopped).

HTTP/2 scenarios (`h2_*`, `h2c_*`) are driven by h2load (Debian's nghttp2-client),
one thread on CPU 1, `--connections` connections with `--h2-streams` concurrent
streams each, against the crate's binary and nginx (`http2`) on the same kind of
listener: TLS (`--tls-cert`/`--tls-key`; nginx `listen … ssl http2`, same
self-signed ECDSA P-256 certificate made with openssl, TLS 1.3 with the cipher
pinned by h2load, TLS_AES_128_GCM_SHA256) or h2c with prior knowledge on plain
TCP (nginx `listen … http2`).

Needs: nginx (Debian's nginx-light), wrk, taskset (util-linux); h2load and openssl
for the HTTP/2 scenarios; builds the crate's binary and the `peers` example in
release mode. Writes benches/load/results.json and benches/load/chart.svg (shown in
docs/performance.md).
"""
import argparse
import json
import os
import random
import re
import shutil
import socket
import ssl
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
    "get_1KiB": ("/1k.bin", None, ["mmap", "ideal", "nginx", "fileserver", "vec", "hello", "headers",
                                   "mmap_log", "mmap_metrics"]),
    "revalidate_304": ("/1k.bin", "if-none-match", ["mmap", "ideal", "nginx", "hello"]),
    "range_64KiB_random": ("/100m.bin", "random-range", ["mmap", "ideal", "nginx", "vec", "hello"]),
    "get_1MiB": ("/1m.bin", None, ["mmap", "ideal", "nginx", "fileserver", "vec", "hello"]),
    "multipart_3_parts": ("/100m.bin", "multipart", ["mmap", "nginx", "hello"]),
    # HTTP/2 (h2load): over TLS by ALPN, and h2c with prior knowledge on plain TCP.
    "h2_tls_get_1KiB": ("/1k.bin", "h2", ["mmap_tls", "nginx_tls"]),
    "h2_tls_get_1MiB": ("/1m.bin", "h2", ["mmap_tls", "nginx_tls"]),
    "h2_tls_range_64KiB": ("/100m.bin", "h2-range", ["mmap_tls", "nginx_tls"]),
    "h2c_get_1KiB": ("/1k.bin", "h2c", ["mmap", "nginx_h2c"]),
}

# The crate's own target in a scenario (the numerator of its ratios).
OURS = {"h2_tls_get_1KiB": "mmap_tls", "h2_tls_get_1MiB": "mmap_tls", "h2_tls_range_64KiB": "mmap_tls"}
H2_RANGE = "bytes=50000000-50065535"

# Goals: (scenario, peer, minimum ratio, metric). "cpu" is peer µs / mmap µs of server
# CPU per request; "rps" is mmap req/s / peer req/s.
TARGETS = [
    ("get_1KiB", "ideal", 0.95, "cpu"),
    ("revalidate_304", "ideal", 0.95, "cpu"),
    ("range_64KiB_random", "ideal", 0.95, "cpu"),
    ("get_1MiB", "ideal", 0.95, "cpu"),
    ("multipart_3_parts", "nginx", 1.1, "rps"),
    ("get_1KiB", "fileserver", 3.5, "rps"),
    ("range_64KiB_random", "vec", 5.0, "rps"),
]

# Informative ratios, no goal: "headers" is a Rocket route answering a fixed 1 KiB
# body with the four headers a file response carries, without lookup or conditionals;
# nginx does not pay Rocket's copy of every body byte.
INFO = [
    ("get_1KiB", "headers", "cpu", "the floor for any 1 KiB response with these headers on Rocket"),
    ("get_1KiB", "nginx", "cpu", "nginx"),
    ("revalidate_304", "nginx", "cpu", "nginx"),
    ("range_64KiB_random", "nginx", "cpu", "nginx"),
    ("get_1MiB", "nginx", "cpu", "nginx"),
    ("get_1KiB", "hello", "rps", "Rocket's hello world"),
    ("h2_tls_get_1KiB", "nginx_tls", "rps", "HTTP/2 over TLS (h2load)"),
    ("h2_tls_get_1KiB", "nginx_tls", "cpu", "HTTP/2 over TLS (h2load)"),
    ("h2_tls_get_1MiB", "nginx_tls", "rps", "HTTP/2 over TLS (h2load)"),
    ("h2_tls_get_1MiB", "nginx_tls", "cpu", "HTTP/2 over TLS (h2load)"),
    ("h2_tls_range_64KiB", "nginx_tls", "rps", "HTTP/2 over TLS, one 64 KiB range (h2load)"),
    ("h2_tls_range_64KiB", "nginx_tls", "cpu", "HTTP/2 over TLS, one 64 KiB range (h2load)"),
    ("h2c_get_1KiB", "nginx_h2c", "rps", "h2c, prior knowledge (h2load)"),
]

# nginx as the peer: one worker, sendfile, no access log, keep-alive without limit;
# the HTTP/1.1 server and the HTTP/2 ones differ only in their `server` blocks.
NGINX_HTTP = """
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
"""

NGINX_CONF = NGINX_HTTP + """    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""

# nginx for the HTTP/2 scenarios: h2 over TLS and h2c on plain TCP, same settings as
# NGINX_CONF otherwise.
NGINX_H2_CONF = NGINX_HTTP + """    http2_max_requests 10000000;
    server {{
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
        location / {{ }}
    }}
    server {{
        # h2c: with sendfile, nginx 1.22 writes each DATA frame's header and then
        # sendfile()s its payload, and every 1 KiB response waited ~40 ms (Nagle and
        # delayed ACK: 23 req/s on one connection); without it, 18 000 req/s.
        listen 127.0.0.1:{h2c_port} http2;
        sendfile off;
        root {root};
        location / {{ }}
    }}
}}
"""

# The binary with an operational flag, against the plain binary (issue 14): the
# throughput with the flag over without ("rps" ratios are mmap / variant, so the cost
# is their inverse), median of per-round ratios, and its goal.
VARIANTS = {
    "mmap_log": lambda work: ["--access-log", str(work / "access.log")],
    "mmap_metrics": lambda work: ["--metrics"],
}
COSTS = [
    ("get_1KiB", "mmap_log", 0.9, "the access log written to a file"),
    ("get_1KiB", "mmap_metrics", 0.9, "counters and /metrics on"),
]

# The most a stalled download may hold (issue 15), KiB of RSS per download.
STALLED_GOAL_KIB = 256


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


def self_signed(work: Path):
    """A self-signed ECDSA P-256 certificate for 127.0.0.1, made with openssl."""
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


def build():
    log("building release binaries ...")
    subprocess.run(
        ["cargo", "build", "--release", "--bin", "rocket-mmap", "--example", "peers"],
        cwd=REPO, check=True,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    return target / "rocket-mmap", target / "examples" / "peers"


def write_random(d: Path, files, seed, announce=None):
    """Writes each `(name, size)` of `files` under `d` as random bytes drawn from `seed`,
    keeping a file that already has its size (kept between runs)."""
    rng = random.Random(seed)
    for name, size in files:
        p = d / name
        if p.exists() and p.stat().st_size == size:
            continue
        if announce:
            announce(f"writing {p} ({size} bytes) ...")
        with open(p, "wb") as f:
            left = size
            while left:
                n = min(left, 4 * MIB)
                f.write(rng.randbytes(n))
                left -= n


def make_data(d: Path):
    write_random(d, [("1k.bin", 1024), ("1m.bin", MIB), ("100m.bin", BIG)], 20261121)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, headers=None, method="GET", limit=1 << 16, tls=False):
    """A minimal HTTP/1.1 request (over TLS with `tls`, the certificate not checked);
    returns (status, headers dict, first `limit` body bytes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        s = raw
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            s = ctx.wrap_socket(raw, server_hostname="localhost")
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
    """A server started pinned to CPU 0 and waited for until it answers. `preexec_fn`
    runs in the child before it becomes the server (cold.py puts it in its cgroups)."""

    def __init__(self, name, argv, env, port, cwd=None, probe="http", preexec_fn=None):
        self.name, self.port = name, port
        full_env = dict(os.environ, **env)
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *argv], env=full_env, cwd=cwd,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec_fn,
        )
        deadline = time.time() + 30
        while True:
            try:
                if probe == "tcp":
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                if http(port, "/1k.bin", tls=probe == "https")[0] in (200, 404):
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
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

    def cpu_seconds(self):
        """utime + stime of the server process (all its threads, living or not)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Listener:
    """Another port of a server started as another target (nginx's h2c listener): its
    CPU is that server's."""

    def __init__(self, name, port, server):
        self.name, self.port, self.server = name, port, server
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    def cpu_seconds(self):
        return self.server.cpu_seconds()

    def stop(self):
        pass


H2_KINDS = ("h2", "h2c", "h2-range")


def no_tag_store(binary):
    """`--no-tag-store` for a build of the binary that keeps a tag store by default
    (under ~/.cache): a measurement must not depend on an earlier run. Older builds
    keep none and do not know the flag."""
    try:
        help_text = subprocess.run([str(binary), "--help"], capture_output=True, text=True,
                                   timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return ["--no-tag-store"] if "--no-tag-store" in help_text else []


def start_all(bins, data: Path, work: Path, only, baseline_bin=None, mmap_env=None):
    mmap_bin, peers_bin = bins
    rocket_env = {"ROCKET_WORKERS": "1", "ROCKET_LOG_LEVEL": "off", "ROCKET_ADDRESS": "127.0.0.1"}
    servers = {}
    for name in only:
        port = free_port()
        env = dict(rocket_env, ROCKET_PORT=str(port))
        if name == "mmap":
            servers[name] = Server(name, [str(mmap_bin), str(data), "--port", str(port),
                                          *no_tag_store(mmap_bin)],
                                   dict(env, **(mmap_env or {})), port, cwd=work)
        elif name in VARIANTS:
            argv = [str(mmap_bin), str(data), "--port", str(port), *no_tag_store(mmap_bin),
                    *VARIANTS[name](work)]
            servers[name] = Server(name, argv, env, port, cwd=work)
        elif name == "mmap_tls":
            cert, key = work / "cert.pem", work / "key.pem"
            servers[name] = Server(name, [str(mmap_bin), str(data), "--port", str(port),
                                          *no_tag_store(mmap_bin),
                                          "--tls-cert", str(cert), "--tls-key", str(key)],
                                   env, port, cwd=work, probe="https")
        elif name == "nginx_tls":
            # One nginx with both HTTP/2 listeners; "nginx_h2c" is its plain port.
            prefix = work / "nginx-h2"
            (prefix / "tmp").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            h2c_port = free_port()
            conf.write_text(NGINX_H2_CONF.format(prefix=prefix, tls_port=port, h2c_port=h2c_port, root=data,
                                                 cert=work / "cert.pem", key=work / "key.pem"))
            servers[name] = Server(name, ["nginx", "-p", str(prefix), "-c", str(conf)], {}, port, probe="https")
            servers["nginx_h2c"] = Listener("nginx_h2c", h2c_port, servers[name])
        elif name == "nginx_h2c":
            continue  # started with nginx_tls
        elif name == "baseline":
            servers[name] = Server(name, [str(baseline_bin), str(data), "--port", str(port),
                                          *no_tag_store(baseline_bin)], env, port, cwd=work)
        elif name == "nginx":
            prefix = work / "nginx"
            (prefix / "tmp").mkdir(parents=True, exist_ok=True)
            conf = prefix / "nginx.conf"
            conf.write_text(NGINX_CONF.format(prefix=prefix, port=port, root=data))
            servers[name] = Server(name, ["nginx", "-p", str(prefix), "-c", str(conf)], {}, port)
        else:
            # `ideal` reads every file into memory first: allow it the time.
            servers[name] = Server(name, [str(peers_bin), name, str(data)], env, port, cwd=work)
    return servers


def h2load(server, scenario, duration, conns, streams):
    """h2load against one target: (req/s, server CPU µs per request, failed or non-2xx
    requests, a note)."""
    port = server.port
    path, kind, _ = SCENARIOS[scenario]
    scheme = "http" if kind == "h2c" else "https"
    argv = ["taskset", "-c", "1", "h2load", "-t1", f"-c{conns}", f"-m{streams}", f"-D{duration}",
            "--warm-up-time=200ms", "--tls13-ciphers=TLS_AES_128_GCM_SHA256"]
    if kind == "h2-range":
        argv += ["-H", f"range: {H2_RANGE}"]
    argv.append(f"{scheme}://127.0.0.1:{port}{path}")
    cpu_before = server.cpu_seconds()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = server.cpu_seconds() - cpu_before
    rps = float(re.search(r"finished in [\d.]+\w*, ([\d.]+) req/s", out).group(1))
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    bad = int(req.group(5)) + int(req.group(6)) + sum(int(codes.group(i)) for i in (2, 3, 4))
    proto = re.search(r"Application protocol: (\S+)", out)
    cipher = re.search(r"Cipher: (\S+)", out)
    note = f"{proto.group(1) if proto else '?'} {cipher.group(1) if cipher else ''}".strip()
    if not proto or proto.group(1) != ("h2c" if kind == "h2c" else "h2"):
        raise SystemExit(f"error: h2load did not speak h2 to port {port}: {out}")
    # CPU over the whole run, warm-up included: divide by every request started.
    done = int(req.group(3)) or 1
    return rps, cpu * 1e6 / done, bad, note


def wrk(server, scenario, etag, duration, conns, work: Path, counts=None):
    """One wrk run; returns (req/s, server CPU µs per request, non-2xx/3xx, socket errors)."""
    port = server.port
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
    cpu_before = server.cpu_seconds()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    cpu = server.cpu_seconds() - cpu_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    cpu_us = cpu * 1e6 / requests if requests else float("inf")
    if counts is not None:
        counts["requests"] = requests
    return rps, cpu_us, int(bad.group(1)) if bad else 0, errors.group(0) if errors else ""


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
        rps, _, bad, errs = wrk(server, "get_1KiB", None, duration, conns, work, counts)
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


def check_answers(scenarios, servers, etags):
    """Each target must really answer the scenario as expected before it is measured."""
    for scenario, (path, kind, targets) in scenarios.items():
        for t in targets:
            if t in ("hello", "headers", *VARIANTS) or t not in servers:
                continue
            if kind in H2_KINDS:
                # Two requests on one h2 connection: both 2xx, over h2.
                argv = ["h2load", "-n2", "-c1", "-m1"]
                if kind == "h2-range":
                    argv += ["-H", f"range: {H2_RANGE}"]
                scheme = "http" if kind == "h2c" else "https"
                out = subprocess.run(argv + [f"{scheme}://127.0.0.1:{servers[t].port}{path}"],
                                     capture_output=True, text=True).stdout
                want = "h2c" if kind == "h2c" else "h2"
                if f"Application protocol: {want}\n" not in out or "status codes: 2 2xx" not in out:
                    raise SystemExit(f"error: {t} did not answer {scenario} with 2xx over h2:\n{out}")
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


def svg_chart(targets, path: Path):
    rows = [(f"{t['scenario']} vs {t['peer']} ({t['metric']})", t["ratio"], t["goal"]) for t in targets]
    w, bar_h, gap, left = 780, 22, 10, 290
    h = 60 + len(rows) * (bar_h + gap)
    top = max([r for _, r, _ in rows] + [g for *_, g in rows] + [1.0]) * 1.1
    x = lambda v: left + (w - left - 30) * v / top
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">rocket-mmap: ratios against peers (median of per-round ratios, one run)</text>',
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
    ap.add_argument("--out", type=Path, default=OUT, help="where results.json and chart.svg go")
    ap.add_argument("--log-check", type=int, default=10, metavar="SECONDS",
                    help="length of the access-log exactness run (0: skip)")
    ap.add_argument("--targets", nargs="*", help="only these servers (mmap always)")
    ap.add_argument("--h2-streams", type=int, default=8, help="h2load concurrent streams per connection")
    ap.add_argument("--baseline-bin", type=Path,
                    help="another build of the rocket-mmap binary (e.g. of the commit before a change), "
                         "measured as target 'baseline' in every scenario: the ratio mmap / baseline "
                         "shows whether the change moved the figures")
    ap.add_argument("--mmap-env", action="append", default=[], metavar="KEY=VALUE",
                    help="environment for the mmap target only, e.g. ROCKET_MMAP_LIMIT_RATE=64g "
                         "(pacing on but never binding); repeatable")
    args = ap.parse_args()
    mmap_env = dict(kv.split("=", 1) for kv in args.mmap_env)
    if args.baseline_bin:
        for s, (path, kind, targets) in list(SCENARIOS.items()):
            if kind in H2_KINDS:
                continue  # the plain-HTTP binary only; h2 scenarios compare TLS listeners
            SCENARIOS[s] = (path, kind, targets + ["baseline"])
            INFO.append((s, "baseline", "cpu", "baseline build µs / this build µs (1.00: no change)"))
            INFO.append((s, "baseline", "rps", "this build / the baseline build (1.00: no change)"))
    if args.quick:
        args.rounds, args.duration = 1, 2
    selected = [s for s in SCENARIOS if not args.scenarios or s in args.scenarios]
    want_h2 = any(SCENARIOS[s][1] in H2_KINDS for s in selected)
    for tool in ("nginx", "wrk", "taskset", "cargo") + (("h2load", "openssl") if want_h2 else ()):
        need(tool)
    bins = build() if not args.no_build else None
    if bins is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
        bins = (target / "rocket-mmap", target / "examples" / "peers")
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-load-"))
    data = args.data or Path(tempfile.gettempdir()) / "rocket-mmap-load-data"
    data.mkdir(parents=True, exist_ok=True)
    make_data(data)
    scenarios = {s: v for s, v in SCENARIOS.items() if not args.scenarios or s in args.scenarios}
    if args.targets:
        scenarios = {s: (path, kind, [t for t in targets if t in args.targets or t in ("mmap", OURS.get(s))])
                     for s, (path, kind, targets) in scenarios.items()}
    names = [t for t in ["mmap", "ideal", "nginx", "fileserver", "vec", "hello", "headers", "baseline",
                         *VARIANTS, "mmap_tls", "nginx_tls", "nginx_h2c"]
             if any(t in v[2] for v in scenarios.values())]
    if want_h2:
        self_signed(work)
        if "nginx_h2c" in names and "nginx_tls" not in names:
            names.append("nginx_tls")
    servers = start_all(bins, data, work, names, args.baseline_bin, mmap_env)
    try:
        etags = {t: http(servers[t].port, "/1k.bin", method="HEAD")[1].get("etag")
                 for t in ("mmap", "ideal", "nginx", "baseline") if t in servers}
        check_answers(scenarios, servers, etags)
        rps_cells = {s: {t: [] for t in scenarios[s][2]} for s in scenarios}
        cpu_cells = {s: {t: [] for t in scenarios[s][2]} for s in scenarios}
        # Per round, per peer: mmap/peer req/s and peer/mmap CPU µs per request.
        round_ratios = {m: {s: {t: [] for t in scenarios[s][2] if t != OURS.get(s, "mmap")} for s in scenarios}
                        for m in ("rps", "cpu")}
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
                    if scenarios[scenario][1] in H2_KINDS:
                        rps, cpu_us, bad, errs = h2load(servers[t], scenario, args.duration, args.connections,
                                                        args.h2_streams)
                    else:
                        rps, cpu_us, bad, errs = wrk(servers[t], scenario, etags.get(t), args.duration,
                                                     args.connections, work)
                    rps_cells[scenario][t].append(rps)
                    cpu_cells[scenario][t].append(cpu_us)
                    got[t] = (rps, cpu_us)
                    if bad and t not in ("hello", "headers"):
                        problems.append(f"{t} {scenario}: {bad} non-2xx/3xx responses")
                    log(f"round {rnd + 1}/{args.rounds} {scenario:<20} {t:<10} {rps:>10.1f} req/s "
                        f"{cpu_us:>8.1f} µs CPU/req {errs}")
                ours = got[OURS.get(scenario, "mmap")]
                for t in round_ratios["rps"][scenario]:
                    if got[t][0] > 0:
                        round_ratios["rps"][scenario][t].append(ours[0] / got[t][0])
                    if ours[1] > 0:
                        round_ratios["cpu"][scenario][t].append(got[t][1] / ours[1])
        rps_medians = {s: {t: statistics.median(v) for t, v in ts.items()} for s, ts in rps_cells.items()}
        cpu_medians = {s: {t: statistics.median(v) for t, v in ts.items()} for s, ts in cpu_cells.items()}
        # The ratio reported is the median of the per-round ratios, not a ratio of
        # medians: this machine drifts by tens of percent between minutes, and a
        # round's measurements are taken seconds apart.
        ratios = {m: {s: {p: statistics.median(v) for p, v in rs.items() if v} for s, rs in by_s.items()}
                  for m, by_s in round_ratios.items()}
        spread = {m: {s: {p: [round(min(v), 3), round(max(v), 3)] for p, v in rs.items() if v}
                      for s, rs in by_s.items()} for m, by_s in round_ratios.items()}
        memory = {}
        if not args.no_memory:
            for t in ("mmap", "ideal", "fileserver"):
                if t in servers:
                    memory[t] = stalled_downloads(servers[t])
    finally:
        for s in servers.values():
            s.stop()
    check = log_check(bins[0], data, work, args.log_check, args.connections) if args.log_check > 0 else None

    def ratio_row(s, p, m):
        r = ratios[m].get(s, {}).get(p)
        return r, spread[m].get(s, {}).get(p)

    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "settings": {"rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
                     "h2_streams": args.h2_streams,
                     "servers": "CPU 0, 1 worker", "wrk": "CPU 1, 1 thread", "h2load": "CPU 1, 1 thread"},
        "req_per_s_median": rps_medians, "req_per_s_all_rounds": rps_cells,
        "cpu_us_per_request_median": cpu_medians, "cpu_us_per_request_all_rounds": cpu_cells,
        "ratios": ratios, "ratios_per_round": round_ratios, "ratio_min_max": spread,
        "targets": [{"scenario": s, "peer": p, "goal": g, "metric": m, "ratio": ratio_row(s, p, m)[0],
                     "range": ratio_row(s, p, m)[1], "met": (ratio_row(s, p, m)[0] or 0) >= g}
                    for s, p, g, m in TARGETS if s in scenarios and ratio_row(s, p, m)[0] is not None],
        "operational_flags": [
            {"scenario": s, "variant": v, "goal": g, "what": w,
             "cost": {"rps": 1 / ratio_row(s, v, "rps")[0], "cpu": 1 / ratio_row(s, v, "cpu")[0]},
             "met": 1 / ratio_row(s, v, "rps")[0] >= g}
            for s, v, g, w in COSTS if ratio_row(s, v, "rps")[0]],
        "access_log_check": check,
        "memory_64_stalled_100MiB": memory, "stalled_goal_kib": STALLED_GOAL_KIB, "problems": problems,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    svg_chart(results["targets"], args.out / "chart.svg")
    for title, table, fmt in (("req/s (median)", rps_medians, "{:>11.0f}"),
                              ("server CPU µs per request (median)", cpu_medians, "{:>11.1f}")):
        print(f"\n{title}\n{'scenario':<22}" + "".join(f"{t:>11}" for t in names))
        for s, m in table.items():
            print(f"{s:<22}" + "".join(fmt.format(m[t]) if t in m else f"{'—':>11}" for t in names))
    print("\nratios (cpu: peer µs / mmap µs; rps: mmap / peer), goal, met:")
    for row in results["targets"]:
        r, (lo, hi) = row["ratio"], row["range"]
        print(f"  {row['scenario']:<20} vs {row['peer']:<10} {row['metric']:<4} {r:6.2f}×  "
              f"(rounds {lo:.2f}–{hi:.2f})  goal {row['goal']}×  {'yes' if row['met'] else 'NO'}")
    for s, p, m, what in INFO:
        r, rng = ratio_row(s, p, m)
        if r is not None:
            print(f"  {s:<20} vs {p:<10} {m:<4} {r:6.2f}×  (rounds {rng[0]:.2f}–{rng[1]:.2f})  {what}")
    if results["operational_flags"]:
        print("\noperational flags: throughput with / without (goal), CPU per request without / with:")
        for c in results["operational_flags"]:
            print(f"  {c['scenario']:<20} {c['variant']:<13} {c['cost']['rps']:6.2f}× (goal {c['goal']}×, "
                  f"{'yes' if c['met'] else 'NO'})  cpu {c['cost']['cpu']:6.2f}×  ({c['what']})")
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
              f"= {g['VmRSS'] / 64:.0f} KiB per download (goal for mmap ≤ {STALLED_GOAL_KIB} KiB; "
              f"anon {g['RssAnon'] / 1024:.1f} MiB, file {g['RssFile'] / 1024:.1f} MiB); "
              f"small GET meanwhile: {m['small_get_status']} in {m['small_get_ms']} ms")
    for p in problems:
        print("problem:", p)
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'chart.svg'}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
