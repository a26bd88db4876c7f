#!/usr/bin/env python3
"""Soak: the release binary under mixed traffic and file churn for a bounded time,
every response checked byte for byte, the process sampled for leaks (issue 22).

    python3 benches/load/soak.py                    # 40 minutes, then stops by itself
    python3 benches/load/soak.py --minutes 2        # a short run while developing
    python3 benches/load/soak.py --bin /tmp/soak-rocket-mmap --out /tmp/soak

Everything is on 127.0.0.1. The server (`--bin`, default target/release/rocket-mmap,
not built by this script) serves a temporary directory with `--metrics` and
`--access-log FILE`, pinned to CPU 0, with `ROCKET_MMAP_MAX_ENTRIES=64` while the
churn spreads over 186 names (150 at the root, 30 in `sub/`, and six big files of
3-6 MB), so entries are evicted and remapped all the time.

Traffic, paced (`--rate`, default 240 requests/s in all over 4 HTTP/1.1 keep-alive
client threads, plus one h2c client): full GETs, single ranges (and suffix ranges),
multipart ranges, If-None-Match with a tag seen before (304 or a newer version), HEAD,
GETs with `Want-Repr-Digest: sha-256=1`, directory listings (HTML and
`Accept: application/json`, root and `sub/`), and HTTP/2 with prior knowledge (h2c)
through `curl --http2-prior-knowledge` (GET, range, digest), twice a second. Two more
clients download the big files slowly (`--slow-clients`), so that changes race the
bodies while the server still reads them.

Churn (one writer thread, `--writes` operations/s, default 8): create a new file
(written in place, so a client may see it growing), delete, rename over (write a
temporary file, rename it over the name), rewrite in place at the same size
(`pwrite` of a new version over the old), truncate. A path is never modified twice
within 100 ms (two writes within one timestamp tick cannot be told apart by any
`stat`-based check; see docs/design.md, "Limits, plainly").

Checking. Every version's bytes are self-describing: the content of version `gen` of
`name` is the prefix of length `len` of a stream of 32-byte records
`"<name> <gen hex> <offset hex>\\n"`; a truncation keeps `gen` with a shorter
length. The writer registers each version before it becomes visible. A client
checks that every complete body (or range, or multipart part) equals the bytes of
ONE registered version of that name at the offsets claimed (a body holding records of
two versions is a "mixed_version"; a body holding no whole record, such as a one-byte
range, may be the bytes of several versions, and then its tag and digest must be those
of one of them), that `Content-Length` and `Content-Range` agree
with the body and the version's length, that an `ETag`, when present, is the crate's
tag of those bytes (a 200 or a 206 may lack it: a range of a file whose tag is not
known within the crate's brief wait, 50 ms, goes out without one, by design —
`shell::plan`'s `Brief` policy; RFC 9110 §8.8.3 makes the field a SHOULD; counted as
`no_etag`, and the bytes are still checked) (CRC-64/XZ of the content, hex, `-`, length in hex;
src/semantics/etag.rs `from_content`), and that a `Repr-Digest` is their SHA-256.
304s must carry the tag asked for; listings must carry the CRC tag of their own body
and name only names the writer used. A body cut short (fewer bytes than
Content-Length: the file changed while it was sent) is counted as `cut_short`, never
accepted as complete. 404 (deleted), 416 (shrunk) and 503 are counted and allowed.
The run fails (exit 1) on any wrong byte, mixed version, wrong tag or digest, wrong
length or Content-Range, other 5xx, unexpected status, or a bad listing.

Leaks. Every 10 s: VmRSS (and RssAnon, RssFile) from /proc/PID/status, open
descriptors (/proc/PID/fd), mappings (lines of /proc/PID/maps) and
`rocket_mmap_cache_entries` from /metrics. After the warm-up (`--warmup`, default
the first half of the run) a least-squares line is fit to each series; its rise over
the post-warm-up span ("fitted growth") must stay within a tolerance: 10% of the
series' post-warm-up mean for RSS (VmRSS, and RssAnon alone: the heap, where a leak
shows; VmRSS also counts the mapped files' pages, which come and go with the churn),
and the larger of 10% of the mean and a small absolute allowance for the counts (8
descriptors, 16 mappings, 8 entries: a few connections or entries more or less at the
last sample is noise, a leak of one per minute is not). The cache must also never hold more than
max_entries. The fit, not first-against-last, so that one busy sample does not
decide.

Why half the run (40 minutes by default): glibc's malloc takes about a quarter of an
hour to reach its steady layout under this traffic. In two 40-minute runs of
2026-12-04, RssAnon rose for the first 10-16 minutes and then stayed flat: fitted
over minutes 2-40 +11.8 % (a FAIL by a 2-minute warm-up), over minutes 20-40 -0.1 %;
the exact anonymous memory (/proc/PID/smaps every 5 s) was 6.32-6.35 MiB from minute
17 to 29. With MALLOC_ARENA_MAX=2, smaps over the whole run: 5.0 -> 5.5 MiB in the
first 16 minutes (all of it the main heap's top), then 5.54-5.62 MiB for the other
24. The live heap (heaptrack, earlier runs) was flat throughout. A leak grows in both
halves of a run; a warm-up ends in the first.

Writes benches/load/soak_results.json and benches/load/soak.svg (four panels over
time, shown in docs/performance.md). Needs: curl; python3 standard library only.
"""
import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import REPO, Server, free_port, log, metrics_of, need, settled_lines  # noqa: E402

OUT = Path(__file__).resolve().parent
W = 32  # bytes per record
MAX_ENTRIES = 64
ROOT_NAMES = [f"f{i:03d}.bin" for i in range(150)]
SUB_NAMES = [f"sub/s{i:02d}.bin" for i in range(30)]
# Read slowly by their own clients. They must be larger than what the server can
# queue ahead of a slow reader (hyper's ~400 KiB and a loopback send buffer that grows
# to several MiB): a 2 MB file was read whole by the server before a reader that had
# taken 460 KB saw it change, so its rewrite could not race the body.
BIG_NAMES = [f"big{i}.bin" for i in range(6)]
BIG_SIZES = (3_000_000, 6_000_000)
NAMES = ROOT_NAMES + SUB_NAMES
ALL_NAMES = NAMES + BIG_NAMES
# File sizes: small (copied-out path, ≤ 8 KiB), ≤ 64 KiB (hashed at load), larger
# (hashed in the background: first responses may lack the ETag).
SIZES = [0, 1, 31, 700, 4000, 8192, 20000, 65536, 70000, 150000, 400000]
SIZE_WEIGHTS = [1, 1, 2, 8, 8, 6, 8, 4, 6, 4, 2]
BIG_SHARE = 0.03  # of the writer's changes: ~0.25/s on the big files at 8 writes/s
MIN_MODIFY_INTERVAL = 0.1  # s between two modifications of one path
SAMPLE_EVERY = 10.0

# Errors that fail the run; everything else counted is allowed.
FATAL = {"wrong_bytes", "mixed_version", "wrong_etag", "wrong_digest", "wrong_length",
         "bad_content_range", "unknown_version", "status_5xx", "unexpected_status",
         "bad_listing", "bad_304", "bad_multipart", "missing_content_length"}

# ---------------------------------------------------------------- CRC-64/XZ

CRC64_POLY = 0xC96C5795D7870F42  # ECMA-182, reflected
CRC64_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ CRC64_POLY if _c & 1 else _c >> 1
    CRC64_TABLE.append(_c)
MASK64 = (1 << 64) - 1


def crc64_xz(data: bytes) -> int:
    """CRC-64/XZ (init and xorout all ones, reflected), table-driven."""
    crc, table = MASK64, CRC64_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ MASK64


assert crc64_xz(b"123456789") == 0x995DC9BBDF1939FA, "CRC-64/XZ check value"


def etag_of(content: bytes) -> str:
    """The crate's strong tag (src/semantics/etag.rs `from_content`), with quotes."""
    return f'"{crc64_xz(content):016x}-{len(content):x}"'


# ---------------------------------------------------------------- versions


def stream(name: str, gen: int, length: int) -> bytes:
    """The first `length` bytes of version `gen` of `name`."""
    n = -(-length // W)
    return "".join(f"{name:<13} {gen:08x} {i * W:08x}\n" for i in range(n)).encode()[:length]


def parse_record(rec: bytes):
    """(name, gen, offset) of a 32-byte record, or None."""
    try:
        text = rec.decode("ascii")
        name, gen, off = text[:13].rstrip(), int(text[14:22], 16), int(text[23:31], 16)
    except (UnicodeDecodeError, ValueError):
        return None
    if text[13] != " " or text[22] != " " or text[31] != "\n":
        return None
    return name, gen, off


class Registry:
    """Every version the writer ever made visible, registered before it was.

    A version is (name, gen, length). `lengths` are the lengths a version was ever
    visible at (its creation, truncations); a file created in place (`prefix_ok`) may
    be seen at any length up to its full one while it is written."""

    def __init__(self):
        self.lock = threading.Lock()
        self.versions = {}  # name -> {gen: {"max": int, "lengths": set, "prefix_ok": bool}}
        self.current = {}  # name -> (gen, length) or None when deleted
        self.next_gen = 1
        self.tags = {}  # name -> last ETag a client saw
        self.memo = OrderedDict()  # (name, gen, length) -> [bytes, etag, sha256]
        self.memo_bytes = 0
        self.history = {}  # name -> [(seconds since 00:00 UTC, change, gen, length)], the last 8

    def new_version(self, name, length, prefix_ok=False):
        with self.lock:
            gen = self.next_gen
            self.next_gen += 1
            self.versions.setdefault(name, {})[gen] = {"max": length, "lengths": {length},
                                                       "prefix_ok": prefix_ok}
            return gen

    def add_length(self, name, gen, length):
        with self.lock:
            self.versions[name][gen]["lengths"].add(length)

    def set_current(self, name, value):
        with self.lock:
            self.current[name] = value

    def pick(self, rng):
        """A name to ask for (mostly a live one) and its current (gen, length) or None."""
        with self.lock:
            if rng.random() < 0.05:
                name = rng.choice(NAMES)
            elif rng.random() < 0.5:
                live = [n for n in NAMES[:32] if self.current.get(n)]
                name = rng.choice(live) if live else rng.choice(NAMES)
            else:
                live = [n for n in NAMES if self.current.get(n)]
                name = rng.choice(live) if live else rng.choice(NAMES)
            return name, self.current.get(name)

    def gens(self, name):
        with self.lock:
            return dict(self.versions.get(name, {}))

    def known_names(self):
        with self.lock:
            return set(self.versions)

    def content(self, name, gen, length):
        """(bytes, etag, sha256 base64) of a version, memoised (bounded)."""
        key = (name, gen, length)
        with self.lock:
            hit = self.memo.get(key)
            if hit is not None:
                self.memo.move_to_end(key)
                return hit
        data = stream(name, gen, length)
        value = [data, None, None]
        with self.lock:
            if key not in self.memo:
                self.memo[key] = value
                self.memo_bytes += len(data)
            while self.memo_bytes > 256 << 20:
                self.memo_bytes -= len(self.memo.popitem(last=False)[1][0])
        return value

    def etag(self, name, gen, length):
        v = self.content(name, gen, length)
        if v[1] is None:
            v[1] = etag_of(v[0])
        return v[1]

    def digest(self, name, gen, length):
        v = self.content(name, gen, length)
        if v[2] is None:
            v[2] = base64.b64encode(hashlib.sha256(v[0]).digest()).decode()
        return v[2]


class Bad(Exception):
    """A wrong response: `kind` is counted, the message kept as an example."""

    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def match_version(reg: Registry, name, body: bytes, offset: int, total: int):
    """The gen of the one registered version of `name` at length `total` whose bytes
    at `offset` are `body` (the newest, if the body holds no whole record and several
    versions have those bytes there: see `match_versions`); raises Bad otherwise."""
    return match_versions(reg, name, body, offset, total)[0]


def match_versions(reg: Registry, name, body: bytes, offset: int, total: int):
    """The gens, newest first, of the registered versions of `name` at length `total`
    whose bytes at `offset` are `body`; raises Bad if there is none. A body holding a
    whole record names its one version. A shorter one (a small range, a file of under
    32 bytes) may have the same bytes in several versions: a one-byte range at offset
    14 of a record is the first hex digit of the version, "0" in every version below
    0x10000000. Any of those versions may be the one served, and its tag the right
    one; the checker once took the newest and called the older version's correct tag
    wrong."""
    if offset + len(body) > total:
        raise Bad("bad_content_range", f"{name}: {len(body)} bytes at {offset} beyond length {total}")
    versions = reg.gens(name)
    # The records wholly inside the body name their version: the first and the last.
    first = -(-offset // W) * W
    seen = []
    for k in (first, (offset + len(body)) // W * W - W):
        if k >= first and k + W <= offset + len(body):
            rec = parse_record(body[k - offset:k - offset + W])
            if rec is None or rec[0] != name or rec[2] != k:
                raise Bad("wrong_bytes", f"{name}: no record of this file at offset {k}: {rec}")
            seen.append(rec[1])
    if len(set(seen)) > 1:
        raise Bad("mixed_version", f"{name}: records of versions {seen} in one body at {offset}+{len(body)}")
    candidates = seen[:1] if seen else sorted(versions, reverse=True)
    found = []
    for gen in candidates:
        v = versions.get(gen)
        if v is None:
            raise Bad("unknown_version", f"{name}: version {gen} was never written")
        if total not in v["lengths"] and not (v["prefix_ok"] and total <= v["max"]):
            if seen:
                raise Bad("wrong_length", f"{name}: version {gen} was never {total} bytes long "
                                          f"(lengths {sorted(v['lengths'])}, max {v['max']})")
            continue
        if reg.content(name, gen, total)[0][offset:offset + len(body)] == body:
            found.append(gen)
        elif seen:
            raise Bad("wrong_bytes", f"{name}: body at {offset}+{len(body)} differs from version {gen} "
                                     f"of length {total}")
    if not found:
        raise Bad("wrong_bytes", f"{name}: {len(body)} bytes at {offset} (length {total}) match no version")
    return found


# ---------------------------------------------------------------- checks


def whose_tag(reg, name, tag):
    """Which registered version of `name` a tag belongs to (for the report of a wrong one)."""
    try:
        total = int(tag.strip('"').rsplit("-", 1)[1], 16)
    except (ValueError, IndexError):
        return "not one of our tags"
    with reg.lock:
        changes = list(reg.history.get(name, []))  # a copy: the writer appends meanwhile
    changes = ", ".join(f"{t} {op} -> " + (f"version {gen} of {length} bytes" if gen else "gone")
                        for t, op, gen, length in changes)
    changes = f"the file's last changes (seconds since 00:00 UTC): {changes or 'none'}"
    for gen, v in sorted(reg.gens(name).items(), reverse=True):
        if (total in v["lengths"] or (v["prefix_ok"] and total <= v["max"])) and reg.etag(name, gen, total) == tag:
            return f"it is the tag of version {gen} of {total} bytes; {changes}"
    return f"it is the tag of no version written (mixed bytes?); {changes}"


def parse_content_range(value):
    """(first, last, total) of `bytes a-b/T`, or (None, None, T) of `bytes */T`."""
    if not value or not value.startswith("bytes "):
        raise Bad("bad_content_range", f"Content-Range {value!r}")
    spec, _, total = value[6:].partition("/")
    try:
        if spec == "*":
            return None, None, int(total)
        a, _, b = spec.partition("-")
        return int(a), int(b), int(total)
    except ValueError:
        raise Bad("bad_content_range", f"Content-Range {value!r}") from None


def check_tags(reg, name, gens, total, hdrs, counts):
    """The ETag and Repr-Digest must be those of one version the body may be (`gens`,
    from `match_versions`; the same one for both)."""
    if len(gens) > 1:
        counts["body_of_several_versions"] += 1
    tag = hdrs.get("etag")
    if tag is None:
        counts["no_etag"] += 1
    else:
        tagged = [g for g in gens if reg.etag(name, g, total) == tag]
        if not tagged:
            gen = gens[0]
            want = reg.etag(name, gen, total)
            others = f" (or of versions {gens[1:]}, whose bytes are the same there)" if gens[1:] else ""
            raise Bad("wrong_etag", f"{name}: ETag {tag}, version {gen} of {total} bytes has {want}{others}; "
                                    f"{whose_tag(reg, name, tag)}; {hdrs}")
        gens = tagged
        counts["etag_checked"] += 1
        with reg.lock:
            reg.tags[name] = tag
    digest = hdrs.get("repr-digest")
    if digest is not None:
        wants = [f"sha-256=:{reg.digest(name, g, total)}:" for g in gens]
        if digest not in wants:
            raise Bad("wrong_digest", f"{name}: Repr-Digest {digest}, version {gens[0]} of {total} bytes "
                                      f"has {wants[0]}")
        counts["digest_checked"] += 1


def parse_multipart(ctype, body):
    """[(content-range header, data)] of a multipart/byteranges body."""
    boundary = ctype.split("boundary=", 1)[1].strip().strip('"')
    delim = b"--" + boundary.encode()
    parts, pos = [], 0
    while True:
        start = body.find(delim, pos)
        if start < 0:
            raise Bad("bad_multipart", "no closing boundary")
        pos = start + len(delim)
        if body[pos:pos + 2] == b"--":
            return parts
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise Bad("bad_multipart", "part without header end")
        headers = {}
        for line in body[pos:head_end].decode("latin-1").split("\r\n"):
            if ":" in line:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
        a, b, _ = parse_content_range(headers.get("content-range"))
        data_start = head_end + 4
        data = body[data_start:data_start + b - a + 1]
        if len(data) != b - a + 1 or body[data_start + len(data):data_start + len(data) + 2] != b"\r\n":
            raise Bad("bad_multipart", f"part {headers.get('content-range')} not followed by CRLF")
        parts.append((headers["content-range"], data))
        pos = data_start + len(data)


def check_file_response(reg, name, kind, req, status, hdrs, body, counts):
    """Checks one complete response for a file; counts what it was."""
    if status == 404:
        counts["not_found"] += 1
        return
    if status == 503:
        counts["unavailable_503"] += 1
        return
    if status >= 500:
        raise Bad("status_5xx", f"{name} {kind}: {status}")
    length = hdrs.get("content-length")
    if status == 304:
        if kind != "if_none_match" or hdrs.get("etag") != req.get("If-None-Match"):
            raise Bad("bad_304", f"{name} {kind}: 304 with ETag {hdrs.get('etag')}, asked {req}")
        counts["ok_304"] += 1
        return
    if status == 416:
        _, _, total = parse_content_range(hdrs.get("content-range"))
        counts["range_not_satisfiable"] += 1
        return
    if status == 200:
        if length is None and kind != "h2c":
            raise Bad("missing_content_length", f"{name} {kind}: 200 without Content-Length")
        total = int(length) if length is not None else len(body)
        if kind == "head":
            if body:
                raise Bad("unexpected_status", f"{name}: HEAD with a body")
            versions = reg.gens(name)
            tag = hdrs.get("etag")
            if tag is None:
                counts["no_etag"] += 1
            else:
                ok = [g for g, v in versions.items()
                      if (total in v["lengths"] or (v["prefix_ok"] and total <= v["max"]))
                      and reg.etag(name, g, total) == tag]
                if not ok:
                    raise Bad("wrong_etag", f"{name}: HEAD ETag {tag} Content-Length {total} is no version")
                counts["etag_checked"] += 1
            counts["ok_head"] += 1
            return
        if len(body) != total:
            raise Bad("wrong_length", f"{name}: {len(body)} bytes for Content-Length {total}")
        gens = match_versions(reg, name, body, 0, total)
        if kind == "if_none_match" and hdrs.get("etag") == req.get("If-None-Match"):
            raise Bad("bad_304", f"{name}: 200 although If-None-Match {hdrs.get('etag')} is its tag")
        check_tags(reg, name, gens, total, hdrs, counts)
        counts["ok_200"] += 1
        return
    if status == 206:
        ctype = hdrs.get("content-type", "")
        if ctype.startswith("multipart/byteranges"):
            gens, totals, parts = None, set(), []
            for cr, data in parse_multipart(ctype, body):
                a, b, total = parse_content_range(cr)
                part = match_versions(reg, name, data, a, total)
                parts.append(part)
                gens = set(part) if gens is None else gens & set(part)
                totals.add(total)
            if not gens or len(totals) != 1:
                raise Bad("mixed_version", f"{name}: multipart parts of versions {parts}, lengths {totals}")
            if length is not None and int(length) != len(body):
                raise Bad("wrong_length", f"{name}: multipart {len(body)} bytes for Content-Length {length}")
            check_tags(reg, name, sorted(gens, reverse=True), totals.pop(), hdrs, counts)
            counts["ok_206_multipart"] += 1
            return
        a, b, total = parse_content_range(hdrs.get("content-range"))
        if a is None or b - a + 1 != len(body) or (length is not None and int(length) != len(body)):
            raise Bad("bad_content_range", f"{name}: Content-Range {hdrs.get('content-range')}, "
                                           f"Content-Length {length}, {len(body)} bytes")
        gens = match_versions(reg, name, body, a, total)
        # Without an ETag only when the tag was not known within the brief wait
        # (the module docs): counted apart too; check_tags checks the rest.
        if hdrs.get("etag") is None:
            counts["no_etag_206"] += 1
        check_tags(reg, name, gens, total, hdrs, counts)
        counts["ok_206"] += 1
        return
    raise Bad("unexpected_status", f"{name} {kind}: {status}")


def check_listing(reg, path, accept_json, status, hdrs, body, counts):
    if status >= 500 and status != 503:
        raise Bad("status_5xx", f"listing {path}: {status}")
    if status == 503:
        counts["unavailable_503"] += 1
        return
    if status != 200:
        raise Bad("bad_listing", f"listing {path}: {status}")
    tag = hdrs.get("etag")
    if tag is not None and tag != etag_of(body):
        raise Bad("wrong_etag", f"listing {path}: ETag {tag}, its body has {etag_of(body)}")
    known = {n.rsplit("/", 1)[-1] for n in reg.known_names()} | {"sub"}
    if accept_json:
        try:
            entries = json.loads(body)
        except ValueError as e:
            raise Bad("bad_listing", f"listing {path}: not JSON: {e}") from None
        if not isinstance(entries, list):
            raise Bad("bad_listing", f"listing {path}: not an array")
        for e in entries:
            n = str(e.get("name", "")).rstrip("/")
            if n not in known and not n.startswith(".tmp-"):
                raise Bad("bad_listing", f"listing {path}: unknown name {n!r}")
        counts["ok_listing_json"] += 1
    else:
        if b"<" not in body[:200]:
            raise Bad("bad_listing", f"listing {path}: not HTML: {body[:80]!r}")
        counts["ok_listing_html"] += 1


def self_test():
    """The checker rejects what it must: run before every soak (a checker that accepts
    everything would make a clean soak mean nothing)."""
    reg = Registry()
    n = "f000.bin"
    g1, g2 = reg.new_version(n, 1000), reg.new_version(n, 1000)
    v1, v2 = stream(n, g1, 1000), stream(n, g2, 1000)
    tag1 = etag_of(v1)

    def bad(kind, f):
        try:
            f()
        except Bad as e:
            assert e.kind == kind, f"self-test: expected {kind}, got {e.kind}: {e}"
            return
        raise AssertionError(f"self-test: {kind} not detected")

    def resp(status, hdrs, body, kind="get", req=None):
        return lambda: check_file_response(reg, n, kind, req or {}, status, hdrs, body, Counter())

    assert match_version(reg, n, v1, 0, 1000) == g1 and match_version(reg, n, v2[5:15], 5, 1000) == g2
    bad("mixed_version", lambda: match_version(reg, n, v1[:500] + v2[500:], 0, 1000))
    bad("wrong_bytes", lambda: match_version(reg, n, v1[:700] + b"X" + v1[701:], 0, 1000))
    bad("wrong_bytes", lambda: match_version(reg, n, v1[3:7] + b"zz", 3, 1000))
    bad("wrong_length", lambda: match_version(reg, n, v1[:900], 0, 900))
    resp(200, {"content-length": "1000", "etag": tag1}, v1)()
    bad("wrong_etag", resp(200, {"content-length": "1000", "etag": etag_of(v2)}, v1))
    bad("wrong_length", resp(200, {"content-length": "1000"}, v1[:999]))
    bad("wrong_digest", resp(200, {"content-length": "1000", "repr-digest": "sha-256=:AAAA:"}, v1))
    bad("bad_content_range", resp(206, {"content-range": "bytes 0-9/1000", "etag": tag1}, v1[:11]))
    # A 206 without ETag is allowed (the brief wait, see the module docs); its bytes
    # are still checked.
    resp(206, {"content-range": "bytes 0-9/1000"}, v1[:10])()
    bad("mixed_version", resp(206, {"content-range": "bytes 0-199/1000"}, v1[:100] + v2[100:200]))
    # One byte both versions have (the first hex digit of the version): either tag is
    # right, a third is not.
    assert v1[14:15] == v2[14:15] == b"0"
    for tag in (tag1, etag_of(v2)):
        resp(206, {"content-range": "bytes 14-14/1000", "etag": tag}, v1[14:15])()
    bad("wrong_etag", resp(206, {"content-range": "bytes 14-14/1000", "etag": etag_of(v1[:999] + b"!")},
                           v1[14:15]))
    mp1 = (b"--B\r\nContent-Range: bytes 14-14/1000\r\n\r\n" + v1[14:15] + b"\r\n"
           b"--B\r\nContent-Range: bytes 0-99/1000\r\n\r\n" + v1[:100] + b"\r\n--B--\r\n")
    resp(206, {"content-type": "multipart/byteranges; boundary=B", "etag": tag1}, mp1)()
    bad("wrong_etag", resp(206, {"content-type": "multipart/byteranges; boundary=B", "etag": etag_of(v2)}, mp1))
    bad("bad_304", resp(304, {"etag": tag1}, b"", "if_none_match", {"If-None-Match": etag_of(v2)}))
    bad("bad_304", resp(200, {"content-length": "1000", "etag": tag1}, v1, "if_none_match",
                        {"If-None-Match": tag1}))
    bad("status_5xx", resp(500, {}, b""))
    mp = (b"--B\r\nContent-Range: bytes 0-99/1000\r\n\r\n" + v1[:100] + b"\r\n"
          b"--B\r\nContent-Range: bytes 500-599/1000\r\n\r\n" + v2[500:600] + b"\r\n--B--\r\n")
    bad("mixed_version", resp(206, {"content-type": "multipart/byteranges; boundary=B"}, mp))
    reg.add_length(n, g1, 900)
    match_version(reg, n, v1[:900], 0, 900)  # a truncation of version 1 is a version


# ---------------------------------------------------------------- clients


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.examples = []
        self.requests = 0

    def merge(self, counts: Counter, bad: Bad = None):
        with self.lock:
            self.counts.update(counts)
            self.requests += 1
            if bad is not None:
                self.counts[bad.kind] += 1
                if len(self.examples) < 30:
                    when = time.strftime("%H:%M:%S", time.gmtime())
                    self.examples.append(f"{when} {bad.kind}: {bad}")
                    log(f"  {when} {bad.kind}: {bad}")


KINDS = [("get", 30), ("range", 18), ("multipart", 8), ("if_none_match", 10), ("head", 10),
         ("digest", 10), ("listing_html", 3), ("listing_json", 3)]


def make_request(reg, rng, kind):
    """(method, path, headers, name or None) of one request of `kind`."""
    if kind.startswith("listing"):
        path = rng.choice(["/", "/sub/"])
        hdrs = {"Accept": "application/json"} if kind == "listing_json" else {"Accept": "text/html"}
        return "GET", path, hdrs, None
    name, cur = reg.pick(rng)
    length = cur[1] if cur else 1000
    hdrs = {}
    method = "GET"
    if kind == "range":
        if rng.random() < 0.2:
            hdrs["Range"] = f"bytes=-{rng.randint(1, max(1, length))}"
        else:
            a = rng.randint(0, max(0, length - 1))
            b = min(length - 1, a + rng.choice([0, 31, 100, 4095, 65535, 200000]))
            hdrs["Range"] = f"bytes={a}-{max(a, b)}"
    elif kind == "multipart":
        if length < 1000:
            hdrs["Range"] = "bytes=0-99,200-299"
        else:
            cuts = sorted(rng.sample(range(0, length - 100), 3))
            parts, last = [], -200
            for c in cuts:
                if c > last + 200:
                    end = min(c + rng.randint(64, 3000), length - 1)
                    parts.append(f"{c}-{end}")
                    last = end
            hdrs["Range"] = "bytes=" + ",".join(parts)
    elif kind == "if_none_match":
        with reg.lock:
            tag = reg.tags.get(name)
        hdrs["If-None-Match"] = tag or '"0000000000000000-0"'
    elif kind == "head":
        method = "HEAD"
    elif kind == "digest":
        hdrs["Want-Repr-Digest"] = "sha-256=1"
    return method, "/" + name, hdrs, name


def http1_client(port, reg, stats, rate, stop, seed):
    """Keep-alive HTTP/1.1 requests at `rate` per second until `stop`."""
    rng = random.Random(seed)
    kinds, weights = zip(*KINDS)
    conn = None
    next_at = time.monotonic()
    while not stop.is_set():
        next_at += 1.0 / rate
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_at = time.monotonic()  # behind: do not burst to catch up
        kind = rng.choices(kinds, weights)[0]
        method, path, req, name = make_request(reg, rng, kind)
        counts = Counter()
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, headers=req)
            resp = conn.getresponse()
            status = resp.status
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            body = resp.read()
        except http.client.IncompleteRead:
            counts["cut_short"] += 1
            conn.close()
            conn = None
            stats.merge(counts)
            continue
        except (OSError, http.client.HTTPException) as e:
            counts["connection_error"] += 1
            counts[f"connection_error:{type(e).__name__}"] += 1
            conn.close()
            conn = None
            stats.merge(counts)
            continue
        if resp.will_close:
            conn.close()
            conn = None
        try:
            if name is None:
                check_listing(reg, path, kind == "listing_json", status, hdrs, body, counts)
            else:
                check_file_response(reg, name, kind, req, status, hdrs, body, counts)
            stats.merge(counts)
        except Bad as bad:
            bad.args = (f"{method} {path} {req} -> {status}: {bad.args[0]}",)
            stats.merge(counts, bad)


def slow_client(port, reg, stats, stop, seed):
    """Downloads of the big files read slowly (8 KiB receive buffer, 32 KiB every 5 ms:
    about 1 s for 4.5 MB), so that the writer changes files while the server still
    reads them: those responses must be cut short or complete with one version."""
    rng = random.Random(seed)
    while not stop.is_set():
        with reg.lock:
            big = [n for n in BIG_NAMES if reg.current.get(n)]
        if not big:
            stop.wait(0.5)
            continue
        name = rng.choice(big)
        counts = Counter()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(30)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            sock.connect(("127.0.0.1", port))
            conn.sock = sock
            req = {"Range": "bytes=0-"} if rng.random() < 0.3 else {}
            conn.request("GET", "/" + name, headers=req)
            resp = conn.getresponse()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            chunks = []
            while True:
                chunk = resp.read(32768)
                if not chunk:
                    break
                chunks.append(chunk)
                time.sleep(0.005)
            if resp.length:  # http.client's bytes still expected: the body ended early
                raise http.client.IncompleteRead(b"".join(chunks), resp.length)
            counts["slow_complete"] += 1
            check_file_response(reg, name, "range" if req else "get", req, resp.status, hdrs,
                                b"".join(chunks), counts)
            stats.merge(counts)
        except http.client.IncompleteRead:
            counts["cut_short"] += 1
            counts["slow_cut_short"] += 1
            stats.merge(counts)
        except (OSError, http.client.HTTPException) as e:
            counts["connection_error"] += 1
            counts[f"connection_error:{type(e).__name__}"] += 1
            stats.merge(counts)
        except Bad as bad:
            stats.merge(counts, bad)
        finally:
            conn.close()


def h2c_client(port, reg, stats, rate, stop, seed, work: Path):
    """h2c with prior knowledge through curl: one request per process."""
    rng = random.Random(seed)
    body_file = work / f"h2c-body-{seed}"
    while not stop.wait(1.0 / rate):
        kind = rng.choice(["get", "range", "digest", "if_none_match"])
        _, path, req, name = make_request(reg, rng, kind)
        argv = ["curl", "-s", "--http2-prior-knowledge", "-D", "-", "-o", str(body_file), "--max-time", "30"]
        for k, v in req.items():
            argv += ["-H", f"{k}: {v}"]
        out = subprocess.run(argv + [f"http://127.0.0.1:{port}{path}"], capture_output=True)
        counts = Counter()
        if out.returncode in (18, 92, 56):  # partial file, HTTP/2 stream reset, recv failure
            counts["cut_short"] += 1
            counts["h2c_cut_short"] += 1
            stats.merge(counts)
            continue
        if out.returncode != 0:
            counts["connection_error"] += 1
            counts[f"connection_error:curl_{out.returncode}"] += 1
            stats.merge(counts)
            continue
        lines = out.stdout.decode("latin-1").split("\r\n")
        try:
            if not lines[0].startswith("HTTP/2 "):
                raise Bad("unexpected_status", f"h2c {path}: {lines[0]!r}")
            status = int(lines[0].split()[1])
            hdrs = {}
            for line in lines[1:]:
                if ":" in line:
                    k, _, v = line.partition(":")
                    hdrs[k.strip().lower()] = v.strip()
            body = body_file.read_bytes() if body_file.exists() else b""
            if status == 304 or status >= 400:
                body = b""
            check_file_response(reg, name, kind, req, status, hdrs, body, counts)
            counts["h2c_checked"] += 1
            stats.merge(counts)
        except Bad as bad:
            stats.merge(counts, bad)
        finally:
            body_file.unlink(missing_ok=True)


# ---------------------------------------------------------------- churn


class Writer:
    def __init__(self, root: Path, reg: Registry, rng: random.Random):
        self.root, self.reg, self.rng = root, reg, rng
        self.touched = {}  # name -> monotonic time of its last modification
        self.ops = Counter()

    def size(self, name):
        if name in BIG_NAMES:
            return self.rng.randint(*BIG_SIZES)
        return self.rng.choices(SIZES, SIZE_WEIGHTS)[0]

    def create(self, name, in_place=True):
        """A new file at `name` (absent now)."""
        length = self.size(name)
        gen = self.reg.new_version(name, length, prefix_ok=in_place)
        data = stream(name, gen, length)
        self.reg.set_current(name, (gen, length))
        with open(self.root / name, "xb") as f:
            f.write(data)

    def rename_over(self, name):
        length = self.size(name)
        gen = self.reg.new_version(name, length)
        tmp = self.root / name
        tmp = tmp.with_name(f".tmp-{gen}")
        tmp.write_bytes(stream(name, gen, length))
        os.rename(tmp, self.root / name)
        self.reg.set_current(name, (gen, length))

    def rewrite(self, name, length):
        """A new version over the old one, same size, in one pwrite."""
        gen = self.reg.new_version(name, length)
        data = stream(name, gen, length)
        fd = os.open(self.root / name, os.O_WRONLY)
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], done)
        finally:
            os.close(fd)
        self.reg.set_current(name, (gen, length))

    def truncate(self, name, gen, length):
        new = self.rng.randint(0, max(0, length - 1))
        self.reg.add_length(name, gen, new)
        os.truncate(self.root / name, new)
        self.reg.set_current(name, (gen, new))

    def delete(self, name):
        self.reg.set_current(name, None)
        os.unlink(self.root / name)

    def step(self):
        now = time.monotonic()
        with self.reg.lock:
            cur = dict(self.reg.current)
        names = BIG_NAMES if self.rng.random() < BIG_SHARE else NAMES
        ready = [n for n in names if now - self.touched.get(n, 0) >= MIN_MODIFY_INTERVAL]
        live = [n for n in ready if cur.get(n)]
        absent = [n for n in ready if not cur.get(n)]
        live_share = sum(1 for n in names if cur.get(n)) / len(names)
        op = self.rng.choices(["create", "delete", "rename_over", "rewrite", "truncate"],
                              [25 if live_share < 0.8 else 5, 15 if live_share > 0.6 else 3, 25, 25, 12])[0]
        if op == "create":
            if not absent:
                return
            name = self.rng.choice(absent)
            self.create(name)
        else:
            if not live:
                return
            name = self.rng.choice(live)
            gen, length = cur[name]
            if op == "delete":
                self.delete(name)
            elif op == "rename_over":
                self.rename_over(name)
            elif op == "rewrite":
                if length == 0:
                    op = "rename_over"
                    self.rename_over(name)
                else:
                    self.rewrite(name, length)
            else:
                self.truncate(name, gen, length)
        self.touched[name] = time.monotonic()
        self.ops[op] += 1
        with self.reg.lock:
            cur = self.reg.current.get(name)
            h = self.reg.history.setdefault(name, [])
            h.append((f"{time.time() % 86400:.3f}", op, *(cur or (None, None))))
            del h[:-8]


def writer_loop(writer, rate, stop):
    while not stop.wait(1.0 / rate):
        writer.step()


# ---------------------------------------------------------------- sampling


def proc_sample(pid):
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "RssAnon", "RssFile"):
            out[k + "_kib"] = int(v.split()[0])
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/maps", "rb") as f:
        out["maps"] = sum(1 for _ in f)
    return out


def fit(points):
    """Least-squares slope (per second) and intercept of [(t, v)]."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    slope = sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0
    return slope, mv - slope * mt


# series -> (label, unit divisor, unit, absolute allowance in the series' own unit)
SERIES = {
    "VmRSS_kib": ("RSS", 1024, "MiB", 0),
    "fds": ("open descriptors", 1, "", 8),
    "maps": ("mappings (/proc/PID/maps lines)", 1, "", 16),
    "cache_entries": ("cache entries", 1, "", 8),
}


def verdicts(samples, warmup):
    post = [s for s in samples if s["t"] >= warmup]
    out = {}
    if len(post) < 3:
        return {"error": "fewer than 3 samples after the warm-up"}
    span = post[-1]["t"] - post[0]["t"]
    for key in list(SERIES) + ["RssAnon_kib", "RssFile_kib"]:
        judged = key in SERIES or key == "RssAnon_kib"
        pts = [(s["t"], s[key]) for s in post if s.get(key) is not None]
        slope, intercept = fit(pts)
        mean = sum(v for _, v in pts) / len(pts)
        growth = slope * span
        allowance = SERIES[key][3] if key in SERIES else 0
        tolerance = max(0.10 * mean, allowance)
        out[key] = {"slope_per_minute": slope * 60, "intercept": intercept, "mean": mean,
                    "fitted_growth": growth, "tolerance": tolerance,
                    "growth_pct_of_mean": 100 * growth / mean if mean else 0.0,
                    "min": min(v for _, v in pts), "max": max(v for _, v in pts),
                    "judged": judged, "ok": growth <= tolerance or not judged}
    out["span_s"] = span
    return out


def svg_chart(samples, verdict, warmup, settings, path: Path):
    """Four panels over time: RSS, descriptors, mappings, cache entries; the warm-up
    shaded, the post-warm-up least-squares line dashed."""
    pw, ph, pad_l, pad_t, gap = 360, 170, 55, 50, 40
    w, h = 2 * (pad_l + pw) + gap + 10, 2 * (ph + 60) + pad_t + 10
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           f'<text x="10" y="20" font-size="14" font-weight="bold">rocket-mmap soak: {settings["minutes"]} min, '
           f'{settings["requests"]} checked responses, {settings["writes"]} file changes, max_entries {MAX_ENTRIES}</text>',
           f'<text x="10" y="38" fill="#666">sampled every {SAMPLE_EVERY:.0f} s; grey: warm-up ({warmup:.0f} s); '
           f'dashed: least-squares fit after it</text>']
    t_end = max(s["t"] for s in samples) or 1
    for i, (key, (label, div, unit, _)) in enumerate(SERIES.items()):
        ox = 10 + (i % 2) * (pad_l + pw + gap) + pad_l
        oy = pad_t + (i // 2) * (ph + 60) + 20
        vals = [s[key] / div for s in samples if s.get(key) is not None]
        ts = [s["t"] for s in samples if s.get(key) is not None]
        top = max(vals) * 1.15 if vals and max(vals) > 0 else 1
        x = lambda t: ox + pw * t / t_end  # noqa: E731
        y = lambda v: oy + ph - ph * v / top  # noqa: E731
        v = verdict.get(key, {})
        status = "flat" if v.get("ok") else "GROWS"
        growth = v.get("fitted_growth", 0) / div
        out += [f'<rect x="{ox}" y="{oy}" width="{x(min(warmup, t_end)) - ox:.1f}" height="{ph}" fill="#eee"/>',
                f'<rect x="{ox}" y="{oy}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
                f'<text x="{ox}" y="{oy - 6}" font-weight="bold">{label}{f" ({unit})" if unit else ""}: '
                f'{status}, fitted growth {growth:+.1f}{unit} ({v.get("growth_pct_of_mean", 0):+.1f}%)</text>',
                f'<text x="{ox - 4}" y="{oy + 4}" text-anchor="end">{top:.0f}</text>',
                f'<text x="{ox - 4}" y="{oy + ph}" text-anchor="end">0</text>',
                f'<text x="{ox}" y="{oy + ph + 14}">0</text>',
                f'<text x="{ox + pw}" y="{oy + ph + 14}" text-anchor="end">{t_end / 60:.0f} min</text>']
        pts = " ".join(f"{x(t):.1f},{y(val):.1f}" for t, val in zip(ts, vals))
        out.append(f'<polyline points="{pts}" fill="none" stroke="#27a" stroke-width="1.5"/>')
        if key == "cache_entries":
            out += [f'<line x1="{ox}" y1="{y(MAX_ENTRIES):.1f}" x2="{ox + pw}" y2="{y(MAX_ENTRIES):.1f}" '
                    f'stroke="#000" stroke-dasharray="2,2"/>',
                    f'<text x="{ox + pw - 4}" y="{y(MAX_ENTRIES) - 3:.1f}" text-anchor="end">max_entries</text>']
        if key == "VmRSS_kib":  # the heap (RssAnon) under the total, judged too
            out.append(f'<text x="{ox + 4}" y="{oy + 14}" fill="#27a">total (VmRSS, with the mapped '
                       f'files\' pages)</text>')
            anon = [(s["t"], s["RssAnon_kib"] / div) for s in samples]
            pts = " ".join(f"{x(t):.1f},{y(val):.1f}" for t, val in anon)
            a = verdict.get("RssAnon_kib", {})
            out += [f'<polyline points="{pts}" fill="none" stroke="#7a2" stroke-width="1.5"/>',
                    f'<text x="{ox + 4}" y="{oy + ph - 6}" fill="#7a2">anonymous (heap): '
                    f'{"flat" if a.get("ok") else "GROWS"}, fitted growth '
                    f'{a.get("fitted_growth", 0) / div:+.1f}MiB ({a.get("growth_pct_of_mean", 0):+.1f}%)</text>']
            if "slope_per_minute" in a:
                sl, b = a["slope_per_minute"] / 60 / div, a["intercept"] / div
                out.append(f'<line x1="{x(warmup):.1f}" y1="{y(sl * warmup + b):.1f}" x2="{x(t_end):.1f}" '
                           f'y2="{y(sl * t_end + b):.1f}" stroke="#d63" stroke-width="1.5" stroke-dasharray="5,3"/>')
        if "slope_per_minute" in v:
            s, b = v["slope_per_minute"] / 60 / div, v["intercept"] / div
            out.append(f'<line x1="{x(warmup):.1f}" y1="{y(s * warmup + b):.1f}" x2="{x(t_end):.1f}" '
                       f'y2="{y(s * t_end + b):.1f}" stroke="#d63" stroke-width="1.5" stroke-dasharray="5,3"/>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


# ---------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=40.0)
    ap.add_argument("--warmup", type=float, help="seconds before the trend is judged "
                                                 "(default: half the run)")
    ap.add_argument("--bin", type=Path, default=REPO / "target" / "release" / "rocket-mmap")
    ap.add_argument("--rate", type=float, default=240.0, help="HTTP/1.1 requests per second, all clients")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--slow-clients", type=int, default=2,
                    help="threads downloading the larger files slowly (changed while sent)")
    ap.add_argument("--h2c-rate", type=float, default=2.0, help="h2c (curl) requests per second")
    ap.add_argument("--writes", type=float, default=8.0, help="file changes per second")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    need("curl")
    self_test()
    if not args.bin.exists():
        sys.exit(f"error: {args.bin} does not exist (cargo build --release --bin rocket-mmap)")
    duration = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else duration / 2

    # SIGTERM ends the run like Ctrl-C: the finally below stops the server.
    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    work = Path(tempfile.mkdtemp(prefix="rocket-mmap-soak-"))
    root = work / "root"
    (root / "sub").mkdir(parents=True)
    reg = Registry()
    rng = random.Random(args.seed)
    writer = Writer(root, reg, rng)
    for name in NAMES[::3] + NAMES[1::3] + BIG_NAMES:  # two thirds exist at the start
        writer.create(name, in_place=False)
    stop = threading.Event()
    stats = Stats()
    threads, server, interrupted = [], None, False
    samples, t0 = [], None
    try:
        port = free_port()
        env = {"ROCKET_ADDRESS": "127.0.0.1", "ROCKET_PORT": str(port), "ROCKET_LOG_LEVEL": "off",
               f"ROCKET_MMAP_MAX_ENTRIES": str(MAX_ENTRIES),
               # The binary's default tag store, as an operator runs it, in the work
               # directory: removed with it, and never one of an earlier run.
               "XDG_CACHE_HOME": str(work / "xdg-cache")}
        access_log = work / "access.log"
        server = Server("mmap", [str(args.bin), str(root), "--port", str(port), "--metrics",
                                 "--access-log", str(access_log)], env, port, cwd=work)
        pid = server.proc.pid
        log(f"soak: {args.minutes} min, server pid {pid} on port {port}, {len(NAMES)} names, "
            f"max_entries {MAX_ENTRIES}, {args.rate:.0f} req/s HTTP/1.1 + {args.h2c_rate} h2c, "
            f"{args.writes} writes/s, warm-up {warmup:.0f} s")
        for i in range(args.clients):
            threads.append(threading.Thread(target=http1_client, daemon=True,
                                            args=(port, reg, stats, args.rate / args.clients, stop, args.seed + i)))
        for i in range(args.slow_clients):
            threads.append(threading.Thread(target=slow_client, daemon=True,
                                            args=(port, reg, stats, stop, args.seed + 50 + i)))
        threads.append(threading.Thread(target=h2c_client, daemon=True,
                                        args=(port, reg, stats, args.h2c_rate, stop, args.seed + 100, work)))
        threads.append(threading.Thread(target=writer_loop, daemon=True, args=(writer, args.writes, stop)))
        t0 = time.monotonic()
        for th in threads:
            th.start()
        next_sample = t0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                s = {"t": round(now - t0, 1), **proc_sample(pid)}
                try:
                    s["cache_entries"] = int(metrics_of(port).get("rocket_mmap_cache_entries", -1))
                except (OSError, SystemExit, ValueError):
                    s["cache_entries"] = None
                with stats.lock:
                    s["responses"] = stats.requests
                    bad = sum(v for k, v in stats.counts.items() if k in FATAL)
                s["writes"] = sum(writer.ops.values())
                samples.append(s)
                log(f"{s['t']:>6.0f} s  RSS {s['VmRSS_kib'] / 1024:6.1f} MiB (anon {s['RssAnon_kib'] / 1024:5.1f})  "
                    f"fds {s['fds']:4d}  maps {s['maps']:4d}  entries {s['cache_entries']}  "
                    f"responses {s['responses']}  writes {s['writes']}  wrong {bad}")
                next_sample += SAMPLE_EVERY
            if now - t0 >= duration:
                break
            if server.proc.poll() is not None:
                raise SystemExit(f"error: the server exited with {server.proc.returncode}")
            time.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
        stop.set()
        for th in threads:
            th.join(40)
        final_metrics = metrics_of(port)
        responses_total = sum(v for k, v in final_metrics.items() if k.startswith("rocket_mmap_responses_total"))
        log_lines = settled_lines(access_log)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping")
    finally:
        stop.set()
        if server is not None:
            server.stop()
        if any(k in FATAL for k in stats.counts) and (work / "access.log").exists():
            kept = Path(tempfile.gettempdir()) / f"rocket-mmap-soak-access-{os.getpid()}.log"
            shutil.copy(work / "access.log", kept)
            log(f"wrong responses: the server's access log is kept at {kept}")
        shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        sys.exit(130)

    verdict = verdicts(samples, warmup)
    entries_bound_ok = all(s["cache_entries"] is None or s["cache_entries"] <= MAX_ENTRIES for s in samples)
    counts = dict(sorted(stats.counts.items()))
    fatal = {k: v for k, v in counts.items() if k in FATAL}
    trend_ok = "error" not in verdict and all(v["ok"] for k, v in verdict.items() if isinstance(v, dict))
    passed = not fatal and trend_ok and entries_bound_ok
    results = {
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip(),
        "settings": {"minutes": args.minutes, "warmup_s": warmup, "sample_every_s": SAMPLE_EVERY,
                     "max_entries": MAX_ENTRIES, "names": len(NAMES), "big_names": len(BIG_NAMES),
                     "big_sizes": BIG_SIZES, "slow_clients": args.slow_clients, "http1_rate": args.rate,
                     "http1_clients": args.clients, "h2c_rate": args.h2c_rate, "writes_per_s": args.writes,
                     "sizes": SIZES, "seed": args.seed, "binary": str(args.bin),
                     "server": "CPU 0 (taskset), --metrics --access-log FILE, ROCKET_MMAP_MAX_ENTRIES=64"},
        "passed": passed,
        "responses": stats.requests,
        "counts": counts,
        "fatal": fatal,
        "examples": stats.examples,
        "writes": dict(writer.ops),
        "versions": reg.next_gen - 1,
        "cache_entries_never_above_max": entries_bound_ok,
        "trend": verdict,
        "access_log": {"lines": log_lines, "rocket_mmap_responses_total": responses_total},
        "samples": samples,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak_results.json").write_text(json.dumps(results, indent=2) + "\n")
    svg_chart(samples, verdict, warmup, {"minutes": args.minutes, "requests": stats.requests,
                                         "writes": sum(writer.ops.values())}, args.out / "soak.svg")
    print(f"\n{stats.requests} responses in {args.minutes} min, {sum(writer.ops.values())} file changes "
          f"{dict(writer.ops)}, {reg.next_gen - 1} versions")
    for k, v in counts.items():
        print(f"  {k:<36} {v:>9}{'   <- FAIL' if k in FATAL else ''}")
    print(f"\ntrend after {warmup:.0f} s of warm-up, over {verdict.get('span_s', 0):.0f} s:")
    for key, v in verdict.items():
        if isinstance(v, dict):
            print(f"  {key:<14} mean {v['mean']:>10.1f}  fitted growth {v['fitted_growth']:>+9.1f} "
                  f"({v['growth_pct_of_mean']:+.1f}%, tolerance {v['tolerance']:.1f})  "
                  f"min {v['min']}  max {v['max']}  {'' if not v['judged'] else 'ok' if v['ok'] else 'GROWS'}")
    print(f"  cache entries never above {MAX_ENTRIES}: {entries_bound_ok}")
    if stats.examples:
        print("\nwrong responses (the first 30, in full; also in the results' \"examples\"):")
        for e in stats.examples:
            print(f"  {e}")
    print(f"access log: {log_lines} lines, rocket_mmap_responses_total {responses_total}")
    print(f"\n{'PASS' if passed else 'FAIL'}; wrote {args.out / 'soak_results.json'} and {args.out / 'soak.svg'}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
