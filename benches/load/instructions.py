#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: a deterministic figure for
before/after comparisons of the crate's own code, unaffected by the noise of a shared
machine (the load comparison in run.py measures time).

Each server runs under `valgrind --tool=callgrind` with instrumentation off; after a
warm-up, instrumentation is switched on for N keep-alive requests from one client and off
again, so the count covers request handling only (no start-up, no warm-up, no cache
miss).

    python3 benches/load/instructions.py                       # crate vs ideal, 4 scenarios
    python3 benches/load/instructions.py --targets mmap --requests 500
    python3 benches/load/instructions.py --keep DIR            # keep callgrind.out files

Needs valgrind; builds the release binaries like run.py (reuse them with --no-build).
"""
import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (same directory: the data, ports and binaries of run.py)

SCENARIOS = {
    "get_1KiB": ("/1k.bin", {}),
    "revalidate_304": ("/1k.bin", {"If-None-Match": None}),
    "range_64KiB": ("/100m.bin", {"Range": "bytes=1000000-1065535"}),
    "get_1MiB": ("/1m.bin", {}),
    "multipart_3_parts": ("/100m.bin", {"Range": run.MULTIPART}),
}


def keep_alive_requests(port, path, headers, n):
    """n requests on one connection, each read to the end of its body."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        f = s.makefile("rb")
        h = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        req = f"GET {path} HTTP/1.1\r\nHost: x\r\n{h}\r\n".encode()
        for _ in range(n):
            s.sendall(req)
            status = f.readline()
            length = 0
            while True:
                line = f.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            code = int(status.split()[1])
            if code != 304:
                f.read(length)
            if code >= 400:
                raise SystemExit(f"error: {status!r} for {path}")


def measure(argv, env, port, cwd, scenarios, etag_of, n, keep):
    out = Path(tempfile.mkdtemp(prefix="callgrind-"))
    cg = out / "callgrind.out"
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={cg}", *argv],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                if run.http(port, "/1k.bin")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"error: {argv[0]} did not start under valgrind")
            time.sleep(0.5)
        results = {}
        for name, (path, headers) in scenarios.items():
            headers = {k: (etag_of(port) if v is None else v) for k, v in headers.items()}
            keep_alive_requests(port, path, headers, 50)  # warm-up: mapped, hashed, cached
            subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
            keep_alive_requests(port, path, headers, n)
            subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
            time.sleep(0.5)
            dumps = sorted(out.glob("callgrind.out*"), key=lambda p: p.stat().st_mtime)
            total = 0
            for line in dumps[-1].read_text(errors="replace").splitlines():
                if line.startswith("totals:") or line.startswith("summary:"):
                    total = int(line.split()[1])
            results[name] = total / n
            if keep:
                shutil.copy(dumps[-1], keep / f"{argv[0].split('/')[-1]}-{argv[-2] if len(argv) > 2 else ''}-{name}.out")
        return results
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(out, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--targets", nargs="*", default=["mmap", "ideal"], choices=["mmap", "ideal", "headers", "hello"])
    ap.add_argument("--scenarios", nargs="*", choices=list(SCENARIOS))
    ap.add_argument("--data", type=Path)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--keep", type=Path, help="copy the callgrind.out files here")
    ap.add_argument("--mmap-args", default="", help="extra arguments for the crate's binary")
    ap.add_argument("--mmap-bin", type=Path, help="another build of the crate's binary to measure")
    args = ap.parse_args()
    run.need("valgrind")
    if args.no_build:
        target = run.REPO / "target" / "release"
        mmap_bin, peers_bin = target / "rocket-mmap", target / "examples" / "peers"
    else:
        mmap_bin, peers_bin = run.build()
    if args.mmap_bin:
        mmap_bin = args.mmap_bin
    data = args.data or Path(tempfile.gettempdir()) / "rocket-mmap-load-data"
    data.mkdir(parents=True, exist_ok=True)
    run.make_data(data)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    scenarios = {s: v for s, v in SCENARIOS.items() if not args.scenarios or s in args.scenarios}
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-cg-"))
    table = {}
    for t in args.targets:
        port = run.free_port()
        env = dict(run.os.environ, ROCKET_WORKERS="1", ROCKET_LOG_LEVEL="off",
                   ROCKET_ADDRESS="127.0.0.1", ROCKET_PORT=str(port))
        if t == "mmap":
            argv = [str(mmap_bin), str(data), "--port", str(port), *run.no_tag_store(mmap_bin),
                    *args.mmap_args.split()]
        else:
            argv = [str(peers_bin), t, str(data)]
        etag_of = lambda p: run.http(p, "/1k.bin", method="HEAD")[1].get("etag")
        if t in ("headers", "hello"):
            scen = {k: v for k, v in scenarios.items() if k == "get_1KiB"}
        else:
            scen = scenarios
        table[t] = measure(argv, env, port, work, scen, etag_of, args.requests, args.keep)
        run.log(f"{t}: " + ", ".join(f"{k} {v:,.0f}" for k, v in table[t].items()))
    print(f"\ninstructions per request (callgrind, {args.requests} keep-alive requests, 1 worker)")
    print(f"{'scenario':<18}" + "".join(f"{t:>12}" for t in args.targets))
    for s in scenarios:
        print(f"{s:<18}" + "".join(f"{table[t][s]:>12,.0f}" if s in table[t] else f"{'—':>12}" for t in args.targets))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
