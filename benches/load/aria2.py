#!/usr/bin/env python3
r"""A segmented download of a cold 1 GiB file by aria2c (issue 27), against the crate's
binary and nginx with `aio threads`.

`aria2c -x8 -s8` opens eight connections and asks each for a part of the file with
`Range: bytes=N-` (no `If-Range`): a server that hashes a cold file before it answers
a range makes all of them wait. Each server runs as in cold.py's cold-library scenario
(its helpers are imported): pinned to CPU 0 with one worker, in cgroup v1 groups that
throttle its reads from the data's disk (64 MiB/s, 400 IOPS) and bound its memory,
page cache included (256 MiB by default, `--memory`); caches are dropped
(`sync; echo 3 > /proc/sys/vm/drop_caches`) just before it starts, and the script
waits until the server's cgroup has read nothing for `--settle` s (1 by default: its
start's reads use the throttle's budget, see cold.py). Then, on CPU 1:

    aria2c -x8 -s8 -k1M --file-allocation=none --allow-overwrite=true \
        --no-want-digest-header -d DIR http://127.0.0.1:PORT/big.bin

with `--log` at level info added, to count the status codes of its responses (its
console output is shown when it fails). DIR is a fresh directory on tmpfs (/dev/shm,
`--download-dir`), so aria2c's writes do not touch the throttled disk.

`--no-want-digest-header` needs aria2 1.37 or later. Without it aria2c sends
`Want-Digest: SHA-512;q=1, SHA-256;q=1, SHA;q=0.1` on every request, and the crate
computes the digest in the background for later responses. Debian 12's aria2 is 1.36,
which has no such option; the script refuses an aria2c without it unless told
`--want-digest` (which leaves the option out and measures with the header: with 1.36,
2 rounds on 2026-12-06, the same times as 1.37 without it, 16.1 s for the crate,
`read_bytes` per byte 1.01). When the aria2c on PATH lacks the option,
/opt/aria2-1.37.0/bin/aria2c is used if it exists (an aria2 1.37 installed there
beside the system's; `--aria2c` names another).

Recorded per round: the wall time of aria2c, MB/s (10^6 bytes/s of the 1 GiB file;
the floor at 64 MiB/s is 16 s, 67.1 MB/s), whether the downloaded file's SHA-256 is
the source's, the server's CPU seconds (utime + stime) and `read_bytes` (/proc/PID/io)
over the download and `read_bytes` per byte of the file (1.0: each byte read once from
the disk), the cgroup's bytes read and peak memory, the status codes aria2c logged,
aria2c's CPU seconds, and those the rest of the machine spent meanwhile (all CPUs'
busy time, /proc/stat, less the server's, aria2c's and the script's: anything else
running shows there). `--wait-idle` waits, before each server starts, until the
machine has been idle for 3 s, and downloads again, three times at most, when the rest
of the machine used more than 2 CPU seconds meanwhile.

The 1 GiB file (big.bin, pseudo-random bytes, seed fixed) is written once in the data
directory (`--data`, default $TMPDIR/rocket-mmap-cold-data, cold.py's; on the
throttled disk, not tmpfs) and kept; its SHA-256 is kept beside it (big.bin.sha256).
`--rounds` rounds (default 3), the servers in a shuffled order in each; a figure is
the median over rounds. Writes benches/load/aria2_results.json (or `--out`), prints a
Markdown table and the ratio of the crate's time to nginx's (`mmap` / `nginx_aio`,
the goal is at most 1.1).

Targets: `mmap` (the crate's binary, `--mmap-bin`, started with `--no-tag-store` when
the build knows it, so that no earlier run's tag is used), `nginx_aio` (nginx, `aio
threads`, sendfile off); also, when asked with `--targets`, cold.py's others
(`fileserver`, `nginx_aio_sendfile`, `nginx`, `mmap_baseline` with `--baseline-bin`).

    python3 benches/load/aria2.py                 # 3 rounds, ~3 minutes
    python3 benches/load/aria2.py --rounds 3 --wait-idle --aria2c /opt/aria2-1.37.0/bin/aria2c
    python3 benches/load/aria2.py --rounds 5 --memory $((1024 << 20))
    python3 benches/load/aria2.py --targets mmap mmap_baseline nginx_aio --baseline-bin /tmp/before/rocket-mmap
    python3 benches/load/aria2.py --want-digest --aria2c aria2c --out /tmp/want_digest.json

Needs root (cgroups, drop_caches), cgroup v1 `blkio` and `memory` mounted under
/sys/fs/cgroup, aria2c (`apt-get install aria2`; 1.37 or later, see above, or
`--want-digest`), nginx, taskset, and a release build of the binary (`cargo build
--release --bin rocket-mmap`; the `peers` example too for `fileserver`). Without root
it says so and exits 0 (skipped).
"""
import argparse
import hashlib
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold import (CGROUP_ROOT, TARGETS, Targets, machine_busy_s, measure_quietly, own_cpu_s,  # noqa: E402
                  proc_counters, settle, skip, whole_disk)
from run import MIB, REPO, log, need, write_random  # noqa: E402

OUT = Path(__file__).resolve().parent
BIG = "big.bin"
BIG_SIZE = 1 << 30
BUILT_ARIA2C = Path("/opt/aria2-1.37.0/bin/aria2c")  # an aria2 1.37 installed beside the system's
GOAL_RATIO = 1.1  # mmap's time over nginx_aio's, at most
BUSY_RETRY_S = 2.0  # with --wait-idle, a download during which the rest used more CPU s is made again


def aria2_argv(aria2c, port, directory, log_file, want_digest=False):
    return ["taskset", "-c", "1", str(aria2c), "-x8", "-s8", "-k1M", "--file-allocation=none",
            "--allow-overwrite=true", *([] if want_digest else ["--no-want-digest-header"]),
            "-d", str(directory), f"--log={log_file}", "--log-level=info",
            f"http://127.0.0.1:{port}/{BIG}"]


def aria2_version(aria2c):
    """aria2c's version and whether it knows --no-want-digest-header (1.37 and later)."""
    out = subprocess.run([str(aria2c), "--version"], capture_output=True, text=True).stdout
    version = out.split("\n", 1)[0].rpartition(" ")[2]
    usage = subprocess.run([str(aria2c), "--help=#all"], capture_output=True, text=True).stdout
    return version, "--no-want-digest-header" in usage


def sha256_of(path: Path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MIB):
            h.update(chunk)
    return h.hexdigest()


def source_digest(data: Path):
    """big.bin's SHA-256, computed once and kept beside it (keyed by size and mtime)."""
    big = data / BIG
    st = big.stat()
    key = f"{st.st_size} {st.st_mtime_ns}"
    memo = data / f"{BIG}.sha256"
    if memo.exists():
        k, _, digest = memo.read_text().strip().rpartition(" ")
        if k == key:
            return digest
    log(f"hashing {big} ...")
    digest = sha256_of(big)
    memo.write_text(f"{key} {digest}\n")
    return digest


def statuses_in(log_file: Path):
    """The status codes of the responses aria2c logged, with their counts."""
    counts = {}
    try:
        text = log_file.read_text(errors="replace")
    except OSError:
        return counts
    for code in re.findall(r"^HTTP/1\.[01] (\d{3})", text, re.M):
        counts[code] = counts.get(code, 0) + 1
    return counts


def measure(targets, name, args, digest, work: Path, tag):
    server, cgroup = targets.start(name)
    try:
        pid = server.proc.pid
        dest = Path(tempfile.mkdtemp(prefix="rocket-mmap-aria2-", dir=args.download_dir))
        log_file = work / f"aria2-{tag}.log"
        try:
            settled = settle(cgroup, args.settle) if args.settle > 0 else 0.0
            cpu0, read0 = proc_counters(pid)
            busy0, own0 = machine_busy_s(), own_cpu_s()
            t0 = time.monotonic()
            try:
                done = subprocess.run(aria2_argv(args.aria2c, server.port, dest, log_file, args.want_digest),
                                      capture_output=True, text=True, timeout=args.timeout)
            except subprocess.TimeoutExpired:
                raise SystemExit(f"error: aria2c against {name} did not finish within {args.timeout} s "
                                 f"(log: {statuses_in(log_file)})")
            wall = time.monotonic() - t0
            cpu1, read1 = proc_counters(pid)
            busy1, own1 = machine_busy_s(), own_cpu_s()  # own: aria2c's included
            if server.proc.poll() is not None:
                raise SystemExit(f"error: {name} exited during the download (status {server.proc.returncode})")
            got = dest / BIG
            if done.returncode != 0 or not got.exists():
                raise SystemExit(f"error: aria2c against {name} failed ({done.returncode}):\n"
                                 f"{done.stdout[-2000:]}{done.stderr[-2000:]}")
            size = got.stat().st_size
            sha_ok = size == BIG_SIZE and sha256_of(got) == digest
            if not sha_ok:
                log(f"warning: {name}: the downloaded file ({size} bytes) differs from the source")
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        read = read1 - read0
        return {"wall_s": wall, "mb_s": BIG_SIZE / wall / 1e6, "sha256_ok": sha_ok, "size": size,
                "cpu_s": cpu1 - cpu0, "read_bytes": read, "read_per_byte": read / BIG_SIZE,
                "settled_s": settled, "aria2c_cpu_s": own1 - own0,
                "others_cpu_s": (busy1 - busy0) - (cpu1 - cpu0) - (own1 - own0),
                "statuses": statuses_in(log_file), **cgroup.stats()}
    finally:
        targets.stop(server, cgroup)


def median_of(rounds, key):
    vals = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def table(summary):
    out = ["| server | aria2c wall time | MB/s | server CPU s | read_bytes MiB | read_bytes per byte "
           "| SHA-256 equal | responses (all rounds) |", "|---" * 8 + "|"]
    for name, m in summary.items():
        codes = ", ".join(f"{n}× {c}" for c, n in sorted(m["statuses"].items()))
        out.append(f"| {TARGETS[name]} | {m['wall_s']:.2f} s | {m['mb_s']:.1f} | {m['cpu_s']:.2f} | "
                   f"{m['read_bytes'] / MIB:.0f} | {m['read_per_byte']:.2f} | "
                   f"{m['sha256_ok_rounds']}/{m['rounds']} | {codes} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release"
    ap.add_argument("--mmap-bin", type=Path, default=target_dir / "rocket-mmap",
                    help="the crate's binary (default: $CARGO_TARGET_DIR or target, release)")
    ap.add_argument("--peers-bin", type=Path, default=target_dir / "examples" / "peers",
                    help="the peers example, for target fileserver")
    ap.add_argument("--baseline-bin", type=Path, help="another build of the binary (target mmap_baseline)")
    ap.add_argument("--targets", nargs="*", choices=list(TARGETS), default=["mmap", "nginx_aio"])
    ap.add_argument("--rounds", type=int, default=3, help="rounds; figures are medians over them")
    ap.add_argument("--read-bps", type=int, default=64 * MIB, help="blkio read throttle, bytes/s")
    ap.add_argument("--read-iops", type=int, default=400, help="blkio read throttle, I/O per second")
    ap.add_argument("--memory", type=int, default=256 * MIB, help="memory.limit_in_bytes of a server")
    ap.add_argument("--device", help="MAJ:MIN of the disk to throttle (default: the data directory's)")
    ap.add_argument("--data", type=Path, help="directory for big.bin (kept between runs; on the "
                    "throttled disk, not tmpfs; default: cold.py's)")
    ap.add_argument("--download-dir", type=Path, default=Path("/dev/shm"),
                    help="where aria2c writes (a fresh directory in it per download; default /dev/shm)")
    ap.add_argument("--settle", type=float, default=1.0,
                    help="before aria2c starts, wait until the server's cgroup has read nothing for this many "
                    "seconds (its start's reads use the throttle's budget; at most 10 s); 0: no wait")
    ap.add_argument("--aria2c", help="the aria2c to run (1.37 or later; default: aria2c on PATH, else "
                    f"{BUILT_ARIA2C} when the one on PATH is older)")
    ap.add_argument("--want-digest", action="store_true",
                    help="leave out --no-want-digest-header: aria2c sends Want-Digest (what 1.36 always does)")
    ap.add_argument("--timeout", type=float, default=300.0, help="the longest one aria2c run may take")
    ap.add_argument("--wait-idle", action="store_true",
                    help="before each download, wait until the machine has been idle for 3 s")
    ap.add_argument("--out", type=Path, default=OUT / "aria2_results.json", help="the JSON results file")
    args = ap.parse_args()

    if os.geteuid() != 0:
        skip("the aria2c scenario needs root (cgroups, /proc/sys/vm/drop_caches)")
    for c in ("blkio", "memory"):
        if not (CGROUP_ROOT / c / "cgroup.procs").exists():
            skip(f"cgroup v1 controller {c} is not mounted at {CGROUP_ROOT / c}")
    if "mmap_baseline" in args.targets and not args.baseline_bin:
        sys.exit("error: target mmap_baseline needs --baseline-bin")
    for tool in ("taskset",) + (("nginx",) if any(t.startswith("nginx") for t in args.targets) else ()):
        need(tool)
    if args.aria2c is None:
        args.aria2c = "aria2c"
        if not args.want_digest and (shutil.which("aria2c") is None or not aria2_version("aria2c")[1]) \
                and BUILT_ARIA2C.exists():
            args.aria2c = str(BUILT_ARIA2C)
            log(f"using {BUILT_ARIA2C} (the aria2c on PATH has no --no-want-digest-header)")
    if shutil.which(args.aria2c) is None:
        sys.exit(f"error: {args.aria2c} is not installed (apt-get install aria2; 1.37 or later, see --help)")
    aria2_ver, knows_flag = aria2_version(args.aria2c)
    if not knows_flag and not args.want_digest:
        sys.exit(f"error: {args.aria2c} is aria2 {aria2_ver}, which has no --no-want-digest-header (1.37 and "
                 f"later have it): build 1.37 and pass --aria2c (see --help), or measure with Want-Digest "
                 f"(--want-digest)")
    bins = (args.mmap_bin.resolve(), args.peers_bin.resolve(),
            args.baseline_bin.resolve() if args.baseline_bin else None)
    for name, b in (("mmap", bins[0]), ("fileserver", bins[1]), ("mmap_baseline", bins[2])):
        if name in args.targets and not b.exists():
            sys.exit(f"error: {b} does not exist (cargo build --release --bin rocket-mmap --example peers)")
    data = args.data or Path(tempfile.gettempdir()) / "rocket-mmap-cold-data"
    data.mkdir(parents=True, exist_ok=True)
    write_random(data, [(BIG, BIG_SIZE)], 20261207, announce=log)
    digest = source_digest(data)
    args.download_dir.mkdir(parents=True, exist_ok=True)
    device = args.device or whole_disk(os.stat(data).st_dev)
    settings = {"file_bytes": BIG_SIZE, "rounds": args.rounds, "read_bps": args.read_bps,
                "read_iops": args.read_iops, "memory_limit": args.memory, "device": device,
                "download_dir": str(args.download_dir), "settle_s": args.settle,
                "aria2c": shlex.join(aria2_argv(args.aria2c, "PORT", "DIR", "LOG", args.want_digest)),
                "aria2_version": aria2_ver, "want_digest": args.want_digest,
                "servers": "CPU 0, 1 worker, in the cgroups", "client": "aria2c on CPU 1"}

    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    os.sched_setaffinity(0, {1})
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-aria2-"))
    rounds = {t: [] for t in args.targets}
    order_rng = random.Random(2027)
    targets = Targets(bins, data, work, device, args)
    try:
        for rnd in range(args.rounds):
            order = list(args.targets)
            order_rng.shuffle(order)
            for name in order:
                attempts = iter(range(4))
                got = measure_quietly(
                    lambda: measure(targets, name, args, digest, work, f"{name}-{rnd}-{next(attempts)}"),
                    args.wait_idle, "others_cpu_s", BUSY_RETRY_S, f"round {rnd + 1}/{args.rounds} {name}")
                rounds[name].append(got)
                log(f"round {rnd + 1}/{args.rounds} {name:<18} {got['wall_s']:6.2f} s  {got['mb_s']:5.1f} MB/s  "
                    f"cpu {got['cpu_s']:.2f} s  read {got['read_bytes'] / MIB:.0f} MiB "
                    f"({got['read_per_byte']:.2f}/B)  sha256 {'ok' if got['sha256_ok'] else 'DIFFERS'}  "
                    f"responses {got['statuses']}  aria2c cpu {got['aria2c_cpu_s']:.2f} s  "
                    f"others' cpu {got['others_cpu_s']:.2f} s")
    finally:
        targets.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    keys = ["wall_s", "mb_s", "cpu_s", "read_bytes", "read_per_byte", "cgroup_read_bytes",
            "memory_max_usage_bytes", "aria2c_cpu_s", "others_cpu_s"]
    summary = {}
    for t, rs in rounds.items():
        statuses = {}
        for r in rs:
            for c, n in r["statuses"].items():
                statuses[c] = statuses.get(c, 0) + n
        summary[t] = {**{k: median_of(rs, k) for k in keys}, "rounds": len(rs),
                      "sha256_ok_rounds": sum(r["sha256_ok"] for r in rs), "statuses": statuses}
    ratio = None
    if "mmap" in summary and "nginx_aio" in summary:
        ratio = {"median_time_ratio": summary["mmap"]["wall_s"] / summary["nginx_aio"]["wall_s"],
                 "per_round": [a["wall_s"] / b["wall_s"] for a, b in zip(rounds["mmap"], rounds["nginx_aio"])],
                 "goal": GOAL_RATIO}
        ratio["met"] = ratio["median_time_ratio"] <= GOAL_RATIO
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "command": shlex.join(["python3", "benches/load/aria2.py", *sys.argv[1:]]),
        "settings": settings, "source_sha256": digest, "targets": {t: TARGETS[t] for t in args.targets},
        "median": summary, "rounds": rounds, "mmap_over_nginx_aio": ratio,
    }
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\naria2c {aria2_ver} -x8 -s8{' (Want-Digest sent)' if args.want_digest else ''} of a cold 1 GiB file, "
          f"{args.rounds} round(s), medians ({results['when']}; "
          f"`{results['command']}`; reads throttled to {args.read_bps / MIB:g} MiB/s and {args.read_iops} IOPS, "
          f"memory {args.memory / MIB:g} MiB):\n")
    print(table(summary))
    if ratio:
        print(f"\n- time, mmap / nginx_aio: {ratio['median_time_ratio']:.2f} (rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratio['per_round'])}); goal at most {GOAL_RATIO}: "
              f"{'met' if ratio['met'] else 'not met'}")
    others = max(r["others_cpu_s"] for rs in rounds.values() for r in rs)
    print(f"- CPU seconds spent by the rest of the machine during a download (all but the server, "
          f"aria2c and this script): at most {others:.2f} s")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
