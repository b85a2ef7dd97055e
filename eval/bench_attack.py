"""`make bench-attack`: hostile input against real ``ragmem serve`` subprocesses on 127.0.0.1.

Everything lives in a throw-away directory: data roots, a corpus root with generated JSON corpora, a
directory corpus full of traps (symlinks out of the roots, ``/etc/passwd``, ``/proc/self/status``,
``/dev/zero``, a FIFO), and the server logs. Each server configuration (small limits via ``RAGMEM_*``
variables) runs as its own subprocess, one at a time, under a data-size limit (RLIMIT_DATA) so a server
which does read ``/dev/zero`` fails alone instead of taking the machine with it. Traffic is loopback
only, every loop is bounded in count and time, and the run ends by itself.

Every case records what was expected (the behaviour of the hardened server), what was observed, and
PASS/FAIL; the table is the result, so the exit code is 0 even when cases fail. ``--only 1,6,7`` runs
a subset (case numbers as in the table).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import quote

import httpx
from prometheus_client.parser import text_string_to_metric_families

from eval.generated_corpus import EN_TOPICS, write_json_corpus
from eval.local_server import ROOT, post_until_ready, server_process
from eval.report_sections import emit_section, start_bench

log = logging.getLogger("ragmem.bench.attack")
SECTION = "bench-attack"
WRITE_KEY = "bench-attack-write-key"
READ_KEY = "bench-attack-read-key"
UNICODE_KEY = "clé-密钥"
BAD_HEADER = b"Bearer caf\xc3\xa9"  # non-ASCII bytes that are not the key
MAX_BODY = 1 << 20
HEADER_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE = 2.0, 3.0, 2.0
MAX_INFLIGHT, SHED_CLIENTS, SHED_REQUESTS = 4, 64, 3
QUEUE_PATHS = 12
"""New json_path corpora sent at once to a server with one build worker and no queue (case 7c)."""
PARAGRAPHS = 3  # per generated document


@dataclass
class Case:
    id: str
    name: str
    expected: str
    observed: str
    result: str  # PASS, FAIL or SKIP


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Work:
    """The throw-away workspace: roots, corpora and the secrets that must never come back."""

    tmp: Path
    corpora: Path
    outside: Path
    data: Path
    marker: str = field(default_factory=lambda: f"zqxleak{uuid.uuid4().hex[:10]}")
    normal_word: str = "quokkafieldnote"


# ---- corpora (the JSON ones from eval.generated_corpus) ------------------------------------------


def make_hostile(directory: Path, work: Work) -> None:
    """One normal note plus every trap a directory corpus can hold."""
    (work.outside / "dir").mkdir(parents=True)
    (work.outside / "secret.md").write_text(f"# Secret\n\nThe outside secret is {work.marker}.\n")
    (work.outside / "dir" / "inner.md").write_text(f"# Inner\n\n{work.marker} lives outside the roots.\n")
    directory.mkdir(parents=True)
    (directory / "normal.md").write_text(f"# Okapi notes\n\nThe {work.normal_word} says the okapi lives in the "
                                         "Ituri forest; researchers in Epulu track it with camera traps.\n")
    links = {"outside.md": work.outside / "secret.md", "passwd.txt": Path("/etc/passwd"),
             "status.txt": Path("/proc/self/status"), "outdir": work.outside / "dir", "zero.txt": Path("/dev/zero")}
    for name, target in links.items():
        os.symlink(target, directory / name)
    os.mkfifo(directory / "x.json")  # never opened by this script: a reader would block until a writer comes


def prepare(tmp: Path) -> Work:
    work = Work(tmp=tmp, corpora=tmp / "corpora", outside=tmp / "outside", data=tmp / "data")
    for path, n_docs, seed in (("long_context.json", 12, 1), ("fresh/long_context.json", 8, 2), ("small.json", 3, 3),
                               *((f"quota/q{i}.json", 4, 10 + i) for i in range(1, 4)),
                               *((f"queue/p{i}.json", 40, 20 + i) for i in range(QUEUE_PATHS))):
        write_json_corpus(work.corpora / path, n_docs, seed, PARAGRAPHS)
    (work.corpora / "broken.json").write_text('[{"title": "half a document", "page_body": "unterminated')
    (work.corpora / "empty.json").write_text("[]")
    make_hostile(work.corpora / "hostile", work)
    return work


# ---- servers ------------------------------------------------------------------------------------


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any ``RAGMEM_*`` setting, offline, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGMEM_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return {**env, **extra}


def process_memory(pid: int) -> str:
    """Peak and current data size of a running process, for the log."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return "?"
    return ", ".join(f"{k} {fields[k].strip()}" for k in ("VmHWM", "VmData") if k in fields)


def brief(exc: Exception, limit: int = 300) -> str:
    """One line for a table cell: the start of the message and, when it is long (a server log), its end."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else f"{text[:limit // 3]} … {text[-(2 * limit) // 3:]}"


@contextmanager
def group_server(work: Work, label: str, data: Path, env: dict[str, str], memory_gib: float) -> Iterator[str]:
    """``ragmem serve`` (``eval.local_server``) with a clean ``RAGMEM_*`` environment and RLIMIT_DATA capped."""
    data.mkdir(parents=True, exist_ok=True)
    with server_process(data, [work.corpora], env, timeout=120, base_env=child_env({}), memory_limit_gib=memory_gib,
                        log_name=f"server-{label}") as (url, proc, log_path):
        log.info("server %s up at %s (pid %d, log %s)", label, url, proc.pid, log_path.name)
        try:
            yield url
        finally:
            log.info("stopping server %s (%s)", label, process_memory(proc.pid))


def seed_onnx_cache(source: Path, target: Path) -> None:
    """Reuse the query encoder's ONNX export across data roots (saves a few seconds per server)."""
    src, dst = source / ".cache" / "onnx", target / ".cache" / "onnx"
    if src.is_dir() and not dst.exists():
        shutil.copytree(src, dst)


# ---- HTTP helpers -------------------------------------------------------------------------------


def detail(response: httpx.Response, limit: int = 160) -> str:
    try:
        text = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        text = response.text
    text = text if isinstance(text, str) else json.dumps(text)
    return text[:limit] + ("…" if len(text) > limit else "")


def collection_of(response: httpx.Response) -> str | None:
    try:
        return response.json().get("collection")
    except (ValueError, AttributeError):
        return None


@dataclass
class Ctx:
    """One running server as the cases see it."""

    work: Work
    url: str
    data: Path
    client: httpx.Client  # with the read key when the server wants one
    bare: httpx.Client  # no Authorization header at all
    write_headers: dict
    selected: set[int]
    _main: str | None = None

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def main_collection(self) -> str:
        """The normal ``long_context.json`` corpus, built through json_path on first use."""
        if self._main is None:
            body = {"query": "photosynthesis", "json_path": str(self.work.corpora / "long_context.json")}
            response = post_until_ready(self.client, "/rag_search", body, 240)
            if response.status_code != 200:
                raise RuntimeError(f"normal corpus not served: {response.status_code} {detail(response)}")
            self._main = response.json()["collection"]
        return self._main

    def search(self, collection: str, query: str, mode: str) -> list[dict]:
        body = {"query": query, "collection": collection, "mode": mode, "top_k": 100, "diverse": False,
                "format": "json", "include_content": True}
        response = self.client.post("/rag_search", json=body)
        response.raise_for_status()
        return response.json()["results"]

    def describe(self, collection: str) -> dict:
        response = self.client.get(f"/collections/{collection}")
        response.raise_for_status()
        return response.json()


def probe_doc(doc_id: str = "auth-probe") -> dict:
    return {"documents": [{"doc_id": doc_id, "title": "probe", "content": "A short probe document about okapis."}]}


# ---- cases 1 and 2: the hostile directory corpus, and a normal build beside it --------------------


def skipped_summary(info: dict) -> tuple[int, str]:
    """Skipped count and whatever the collection reports about skips (keys containing 'skip')."""
    count, parts = 0, []
    for key, value in info.items():
        if "skip" not in key.lower():
            continue
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            count = max(count, value)
        elif isinstance(value, (list, dict)):
            count = max(count, len(value))
        parts.append(f"{key}={json.dumps(value, ensure_ascii=False)[:220]}")
    return count, "; ".join(parts) or "no skip information"


def leak_check(ctx: Ctx, name: str) -> tuple[list[str], bool]:
    """Secrets seen in any search result or in GET /collections/<name>, and whether the normal note is found."""
    secrets = [ctx.work.marker, "root:x:0:0", "VmRSS"]
    leaks: set[str] = set()
    texts = [json.dumps(ctx.describe(name), ensure_ascii=False)]
    for query in [*secrets, ctx.work.normal_word, "okapi Ituri forest"]:
        for mode in ("bm25", "dense", "hybrid+graph"):
            texts += [f"{hit['title']}\n{hit['content']}" for hit in ctx.search(name, query, mode)]
    blob = "\n".join(texts)
    leaks.update(secret for secret in secrets if secret in blob)
    return sorted(leaks), ctx.work.normal_word in blob


def hostile_row(ctx: Ctx, response: httpx.Response, name: str | None, seconds: float) -> Case:
    expected = ("build completes; normal note searchable; marker, root:x:0:0, VmRSS never returned; "
                "GET /collections/<name> reports skips > 0")
    if response.status_code != 200:
        info = ctx.describe(name) if name else {}
        observed = (f"{response.status_code} after {seconds:.0f} s: {detail(response)}; "
                    f"build: {json.dumps(info.get('build', {}))[:200]}")
        return Case("1", "Directory corpus with symlinks, FIFO and /dev/zero", expected, observed, "FAIL")
    name = collection_of(response) or name
    leaks, found = leak_check(ctx, name)
    count, skips = skipped_summary(ctx.describe(name))
    alive = ctx.bare.get("/healthz").status_code == 200
    observed = (f"200 after {seconds:.0f} s; normal note found: {'yes' if found else 'NO'}; leaked: "
                f"{', '.join(leaks) or 'nothing'}; skipped {count} ({skips}); server alive: {alive}")
    ok = found and not leaks and count > 0 and alive
    return Case("1", "Directory corpus with symlinks, FIFO and /dev/zero", expected, observed, verdict(ok))


def fresh_row(ctx: Ctx, timeout: float) -> Case:
    started = time.monotonic()
    body = {"query": "volcano magma", "json_path": str(ctx.work.corpora / "fresh" / "long_context.json")}
    response = post_until_ready(ctx.client, "/rag_search", body, timeout=timeout)
    seconds = time.monotonic() - started
    ok = response.status_code == 200 and seconds <= timeout
    observed = f"{response.status_code} after {seconds:.1f} s" + ("" if ok else f": {detail(response)}")
    return Case("2", "FIFO corpus does not stall another build", f"a fresh json_path corpus answers 200 within "
                f"{timeout:.0f} s of the hostile submission", observed, verdict(ok))


def case_hostile(ctx: Ctx, hostile_seconds: float = 180.0, fresh_seconds: float = 60.0) -> list[Case]:
    """Directory corpus with symlinks, FIFO and /dev/zero"""
    started = time.monotonic()
    body = {"query": ctx.work.normal_word, "json_path": str(ctx.work.corpora / "hostile")}
    first = ctx.client.post("/rag_search", json=body)
    name = collection_of(first)
    log.info("hostile corpus submitted: %d (collection %s)", first.status_code, name)
    rows = [fresh_row(ctx, fresh_seconds)] if 2 in ctx.selected else []
    if 1 in ctx.selected:
        left = max(1.0, hostile_seconds - (time.monotonic() - started))
        final = first if first.status_code != 503 else post_until_ready(ctx.client, "/rag_search", body, left)
        name = collection_of(final) or name
        rows.append(hostile_row(ctx, final, name, time.monotonic() - started))
    return rows


# ---- case 3: failed builds leave nothing, the data root is not a corpus --------------------------


def listing(data: Path) -> set[str]:
    return {p.name for p in data.iterdir() if p.name != ".cache"} if data.is_dir() else set()


def case_failed_builds(ctx: Ctx) -> list[Case]:
    """Failed builds leave nothing; the data root is not a corpus"""
    name = ctx.main_collection()
    before = listing(ctx.data)
    response = post_until_ready(ctx.client, "/rag_search",
                                {"query": "anything", "json_path": str(ctx.work.corpora / "broken.json")}, 60)
    new = sorted(listing(ctx.data) - before)
    rows = [Case("3a", "Broken JSON corpus", "400; no new entry in the data root",
                 f"{response.status_code} ({detail(response, 100)}); new entries: {', '.join(new) or 'none'}",
                 verdict(response.status_code == 400 and not new))]
    codes = {}
    for target in (ctx.data / name / "CURRENT", ctx.data / name / ".lock"):
        r = ctx.client.post("/rag_search", json={"query": "anything", "json_path": str(target)})
        codes[f"<data>/<name>/{target.name}"] = r.status_code
    rows.append(Case("3b", "json_path into the data root", "403 for CURRENT and .lock",
                     ", ".join(f"{k}: {v}" for k, v in codes.items()),
                     verdict(all(code == 403 for code in codes.values()))))
    return rows


# ---- case 4: quota and build authorisation -------------------------------------------------------


def case_quota(ctx: Ctx) -> list[Case]:
    """json_path quota (RAGMEM_MAX_PATH_COLLECTIONS=2) and RAGMEM_PATH_BUILD_AUTH=write"""
    corpus = ctx.work.corpora / "quota"
    unauth = ctx.bare.post("/rag_search", json={"query": "jazz", "json_path": str(corpus / "q1.json")})
    reads = ctx.bare.get("/collections").status_code
    rows = [Case("4a", "json_path build without the write key (PATH_BUILD_AUTH=write, reads open)",
                 "401; reads stay open (GET /collections 200)", f"{unauth.status_code}; GET /collections {reads}",
                 verdict(unauth.status_code == 401 and reads == 200))]
    answers = [post_until_ready(ctx.client, "/rag_search", {"query": "jazz", "json_path": str(corpus / f"q{i}.json")},
                                120, headers=ctx.write_headers) for i in (1, 2, 3)]
    codes = [r.status_code for r in answers]
    message = detail(answers[-1], 140)
    ok = codes == [200, 200, 507] and bool(message.strip())
    rows.append(Case("4b", "Third new json_path corpus past a quota of 2", "200, 200, then 507 with a message",
                     f"{', '.join(map(str, codes))}; third: {message}", verdict(ok)))
    return rows


def case_read_auth(ctx: Ctx) -> list[Case]:
    """json_path build with RAGMEM_PATH_BUILD_AUTH=read and a read key"""
    body = {"query": "jazz", "json_path": str(ctx.work.corpora / "long_context.json")}
    unauth = ctx.bare.post("/rag_search", json=body)
    authed = post_until_ready(ctx.client, "/rag_search", body, 240)
    return [Case("4c", "json_path build without the read key (PATH_BUILD_AUTH=read)", "401; with the read key 200",
                 f"{unauth.status_code}; with the read key {authed.status_code}",
                 verdict(unauth.status_code == 401 and authed.status_code == 200))]


# ---- case 5: request bodies over the limit -------------------------------------------------------


def case_body_limit(ctx: Ctx) -> list[Case]:
    """Request bodies over RAGMEM_MAX_REQUEST_BYTES"""
    big = json.dumps({"query": "a" * (MAX_BODY + MAX_BODY // 4), "collection": "attack"}).encode()

    def pieces() -> Iterator[bytes]:
        for i in range(0, len(big), 64 * 1024):
            yield big[i:i + 64 * 1024]

    rows = []
    for case_id, how, content in (("5a", "with Content-Length", big), ("5b", "chunked", pieces())):
        try:
            r = ctx.client.post("/rag_search", content=content, headers={"Content-Type": "application/json"})
            observed, ok = f"{r.status_code} ({detail(r, 80)})", r.status_code == 413
        except httpx.HTTPError as exc:
            observed, ok = f"no response: {type(exc).__name__}: {exc}", False
        rows.append(Case(case_id, f"{len(big) / 2**20:.2f} MiB body {how} (limit {MAX_BODY / 2**20:.0f} MiB)",
                         "413", observed, verdict(ok)))
    return rows


# ---- case 6: slow and idle connections -----------------------------------------------------------


def watch_socket(sock: socket.socket, limit: float) -> tuple[float | None, float | None, bytes]:
    """(seconds to the first byte, seconds until the peer closed, bytes received), watching ``limit`` s."""
    started, first, data = time.monotonic(), None, b""
    sock.settimeout(0.2)
    while (elapsed := time.monotonic() - started) < limit:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return first, elapsed, data
        if not chunk:
            return first, elapsed, data
        first = elapsed if first is None else first
        data += chunk
    return first, None, data


def raw_exchange(port: int, payload: bytes, limit: float) -> tuple[float | None, float | None, str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        first, closed, data = watch_socket(sock, limit)
    status = data.split(b"\r\n", 1)[0].decode("latin-1") if data else ""
    return first, closed, status


def closed_text(closed: float | None, limit: float, status: str) -> str:
    text = f"closed after {closed:.1f} s" if closed is not None else f"still open after {limit:.0f} s"
    return text + (f", sent '{status}'" if status else ", nothing sent")


def case_slow(ctx: Ctx) -> list[Case]:
    """Slow and idle connections"""
    margin = 2.0
    half = b"POST /rag_search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty"
    _, closed, status = raw_exchange(ctx.port, half, HEADER_TIMEOUT + 8)
    rows = [Case("6a", "Half a request head, then silence", f"closed within {HEADER_TIMEOUT:.0f} s header "
                 f"timeout + {margin:.0f} s", closed_text(closed, HEADER_TIMEOUT + 8, status),
                 verdict(closed is not None and closed <= HEADER_TIMEOUT + margin))]
    head = (b"POST /rag_search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n")
    first, closed, status = raw_exchange(ctx.port, head, BODY_TIMEOUT + 8)
    got_408 = " 408 " in f"{status} " and first is not None and first <= BODY_TIMEOUT + margin
    rows.append(Case("6b", "Head with Content-Length 100, no body", f"408 or closed within {BODY_TIMEOUT:.0f} s "
                     f"body timeout + {margin:.0f} s", closed_text(closed, BODY_TIMEOUT + 8, status),
                     verdict(got_408 or (closed is not None and closed <= BODY_TIMEOUT + margin))))
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    first, closed, status = raw_exchange(ctx.port, request, KEEP_ALIVE + 8)
    idle = closed - first if closed is not None and first is not None else None
    observed = (f"'{status}', then " + (f"closed after {idle:.1f} s idle" if idle is not None else
                                        f"still open after {KEEP_ALIVE + 8:.0f} s"))
    rows.append(Case("6c", "Idle keep-alive connection after one request", f"closed after the {KEEP_ALIVE:.0f} s "
                     "keep-alive (+1.5 s)", observed,
                     verdict(status.endswith("200 OK") and idle is not None and idle <= KEEP_ALIVE + 1.5)))
    return rows


# ---- case 7: load shedding -----------------------------------------------------------------------


Sample = tuple[str, float, bool]
"""One request of the burst: status code (or the error's name), milliseconds, Retry-After present."""


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[str, bool]:
    """One HTTP/1.1 request on a kept-alive connection: (status code, whether Retry-After came)."""
    writer.write(request)
    await writer.drain()
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    return head[0].split(" ")[1], "retry-after" in headers


def _post(host: str, path: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


async def shed_client(url: str, name: str, i: int, per_client: int, barrier: asyncio.Barrier,
                      out: list[Sample]) -> None:
    """One simulated client on its own connection, opened (GET /healthz, exempt from the cap) before the
    burst. A bare asyncio-streams client: httpx costs ~1 ms of CPU per request, which with 64 requests in
    flight on 2 shared cores adds ~100 ms of client-side queueing that is not the server's answer time."""
    parsed = urlsplit(url)
    reader, writer = await asyncio.open_connection(parsed.hostname, parsed.port)
    try:
        try:
            await _exchange(reader, writer, f"GET /healthz HTTP/1.1\r\nHost: {parsed.netloc}\r\n\r\n".encode())
        finally:
            await barrier.wait()
        for j in range(per_client):
            body = {"query": f"{EN_TOPICS[(i + j) % len(EN_TOPICS)][0]} {i} {j}", "collection": name, "top_k": 5}
            started = time.perf_counter()
            try:
                status, retry = await _exchange(reader, writer, _post(parsed.netloc, "/rag_search", body))
                out.append((status, (time.perf_counter() - started) * 1000, retry))
            except (OSError, asyncio.IncompleteReadError) as exc:
                out.append((type(exc).__name__, (time.perf_counter() - started) * 1000, False))
                return
    finally:
        writer.close()


async def async_burst(url: str, name: str, clients: int, per_client: int, seconds: float) -> list[Sample]:
    barrier, out = asyncio.Barrier(clients), []
    tasks = [shed_client(url, name, i, per_client, barrier, out) for i in range(clients)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=seconds)
    except asyncio.TimeoutError:
        log.warning("burst cut off after %.0f s with %d answers", seconds, len(out))
    else:
        for error in (r for r in results if isinstance(r, BaseException)):
            log.warning("a burst client failed: %s: %s", type(error).__name__, error)
    return list(out)


def burst(url: str, name: str, clients: int, per_client: int, seconds: float) -> list[Sample]:
    """Every request of ``clients`` asyncio clients released together, in one event loop (little client overhead)."""
    return asyncio.run(async_burst(url, name, clients, per_client, seconds))


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


Buckets = dict[float, float]
"""Cumulative histogram: upper bound in seconds (``inf`` for +Inf) -> count."""


def unrouted_metrics(ctx: Ctx) -> tuple[Buckets, float]:
    """``ragmem_request_seconds{endpoint="unmatched"}`` (the middleware's answers, made before routing) summed over
    modes, and ``ragmem_requests_total{endpoint="unmatched", status="503"}``, from the server's /metrics."""
    r = ctx.client.get("/metrics")
    r.raise_for_status()
    buckets: Buckets = {}
    shed = 0.0
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.labels.get("endpoint") != "unmatched":
                continue
            if sample.name == "ragmem_request_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "ragmem_requests_total" and sample.labels.get("status") == "503":
                shed += sample.value
    return buckets, shed


@dataclass
class ServerView:
    """The server's own timing of the burst's unrouted requests: /metrics after minus /metrics before."""

    buckets: Buckets
    shed: int  # unrouted requests answered 503

    @classmethod
    def between(cls, before: tuple[Buckets, float], after: tuple[Buckets, float]) -> ServerView:
        buckets = {bound: count - before[0].get(bound, 0.0) for bound, count in after[0].items()}
        return cls(buckets, int(after[1] - before[1]))

    @property
    def total(self) -> int:
        return int(max(self.buckets.values(), default=0))

    def bound_ms(self, p: float) -> float | None:
        """The smallest bucket bound (ms) that ``p`` % of the requests stayed within: an upper bound on the pct."""
        if not self.total:
            return None
        return next(b * 1000 for b, count in sorted(self.buckets.items()) if count >= p / 100 * self.total)

    def text(self) -> str:
        if not self.total:
            return "server-side (/metrics): no unrouted request recorded"
        return (f"server-side (/metrics `ragmem_request_seconds{{endpoint=\"unmatched\"}}`, {self.total} unrouted, "
                f"{self.shed} of them 503): p50 ≤ {self.bound_ms(50):g} ms, p99 ≤ {self.bound_ms(99):g} ms "
                "(bucket bounds)")


def shed_rows(samples: list[Sample], view: ServerView) -> list[Case]:
    shed = [t for code, t, _ in samples if code == "503"]
    with_retry = sum(1 for code, _, retry in samples if code == "503" and retry)
    admitted = [t for code, t, _ in samples if code == "200"]
    others = sorted({code for code, _, _ in samples if code not in ("200", "503")})
    counts = (f"{len(samples)} requests: {len(admitted)} × 200, {len(shed)} × 503 ({with_retry} with Retry-After)"
              + (f", other: {', '.join(others)}" if others else ""))
    client_p99, server_p99 = pct(shed, 99), view.bound_ms(99)
    ok = (bool(shed) and with_retry == len(shed) and client_p99 is not None and client_p99 < 50
          and server_p99 is not None and server_p99 < 50)
    rows = [Case("7a", f"{SHED_CLIENTS} concurrent asyncio clients × {SHED_REQUESTS}, "
                 f"MAX_INFLIGHT_REQUESTS={MAX_INFLIGHT}",
                 "some 503, all with Retry-After; 503 p99 < 50 ms both server-side (/metrics) and client-side",
                 f"{counts}; client-side (bare asyncio-streams HTTP/1.1 client per connection, one event loop): 503 p50 "
                 f"{ms(pct(shed, 50))}, p99 {ms(client_p99)}; {view.text()}", verdict(ok))]
    admitted_p99 = pct(admitted, 99)
    rows.append(Case("7b", "Admitted requests under the same burst", "200 p99 ≤ 1 s",
                     f"200 p50 {ms(pct(admitted, 50))}, p99 {ms(admitted_p99)}",
                     verdict(admitted_p99 is not None and admitted_p99 <= 1000 and not others)))
    return rows


def case_shedding(ctx: Ctx) -> list[Case]:
    """Load shedding"""
    name = ctx.main_collection()
    for i in range(3):
        ctx.client.post("/rag_search", json={"query": f"volcano magma warm-up {i}", "collection": name})
    before = unrouted_metrics(ctx)
    samples = burst(ctx.url, name, SHED_CLIENTS, SHED_REQUESTS, seconds=180)
    view = ServerView.between(before, unrouted_metrics(ctx))
    log.info("burst: %d answers; %s", len(samples), view.text())
    return shed_rows(samples, view)


def case_build_queue(ctx: Ctx) -> list[Case]:
    """json_path build queue bound (RAGMEM_BUILD_WORKERS=1, RAGMEM_MAX_QUEUED_BUILDS=0)"""
    paths = [str(ctx.work.corpora / "queue" / f"p{i}.json") for i in range(QUEUE_PATHS)]
    first = ctx.client.post("/rag_search", json={"query": "jazz", "json_path": paths[0]})
    refused: list[tuple[int, float, bool]] = []
    for path in paths[1:]:
        started = time.perf_counter()
        r = ctx.client.post("/rag_search", json={"query": "jazz", "json_path": path})
        refused.append((r.status_code, (time.perf_counter() - started) * 1000, "Retry-After" in r.headers))
    done = post_until_ready(ctx.client, "/rag_search", {"query": "jazz", "json_path": paths[0]}, 180)
    codes = sorted({code for code, _, _ in refused})
    times = [t for _, t, _ in refused]
    ok = (codes == [503] and all(retry for _, _, retry in refused) and (pct(times, 99) or 1e9) < 50
          and done.status_code == 200)
    return [Case("7c", f"{QUEUE_PATHS} new json_path corpora at once, one build worker, no queue",
                 "the first builds (503 then 200); the others 503 with Retry-After, p99 < 50 ms client-side",
                 f"first: {first.status_code}, then {done.status_code} once built; others: "
                 f"{', '.join(map(str, codes))} ({sum(r for _, _, r in refused)}/{len(refused)} with Retry-After), "
                 f"p50 {ms(pct(times, 50))}, p99 {ms(pct(times, 99))}", verdict(ok))]


# ---- case 8: Authorization headers that are not ASCII --------------------------------------------


def case_bad_header(ctx: Ctx) -> list[Case]:
    """Non-ASCII Authorization header on a write"""
    name = ctx.main_collection()
    r = ctx.bare.post(f"/collections/{name}/documents", json=probe_doc(), headers={"Authorization": BAD_HEADER})
    return [Case("8a", "Write with raw bytes 'Bearer caf\\xc3\\xa9' (ASCII key configured)", "401, not 500",
                 f"{r.status_code} ({detail(r, 80)})", verdict(r.status_code == 401))]


def case_unicode_key(ctx: Ctx) -> list[Case]:
    """Non-ASCII RAGMEM_API_KEY"""
    name = ctx.main_collection()
    path = f"/collections/{name}/documents"
    right = ctx.bare.post(path, json=probe_doc(), headers={"Authorization": b"Bearer " + UNICODE_KEY.encode()})
    wrong = ctx.bare.post(path, json=probe_doc(), headers={"Authorization": "Bearer wrong"})
    wrong_bytes = ctx.bare.post(path, json=probe_doc(), headers={"Authorization": BAD_HEADER})
    return [Case("8b", f"Write key '{UNICODE_KEY}': the right key as UTF-8", "2xx",
                 f"{right.status_code}" + ("" if right.is_success else f" ({detail(right, 80)})"),
                 verdict(right.is_success)),
            Case("8c", f"Write key '{UNICODE_KEY}': wrong ASCII key, wrong non-ASCII bytes", "401, 401",
                 f"{wrong.status_code}, {wrong_bytes.status_code}",
                 verdict(wrong.status_code == 401 and wrong_bytes.status_code == 401))]


# ---- cases 9 to 11: documents and collections at the edges ---------------------------------------


def doc_ids(ctx: Ctx, name: str) -> set[str]:
    return {d["doc_id"] for d in ctx.describe(name).get("document_list", [])}


def case_slash_id(ctx: Ctx) -> list[Case]:
    """doc_id containing '/'"""
    name = ctx.main_collection()
    docs = f"/collections/{name}/documents"
    added = ctx.client.post(docs, json=probe_doc("a/b"), headers=ctx.write_headers)
    by_path = ctx.client.delete(f"{docs}/{quote('a/b', safe='')}", headers=ctx.write_headers)
    readd = ctx.client.post(docs, json=probe_doc("a/b"), headers=ctx.write_headers)
    by_body = ctx.client.post(f"{docs}/delete", json={"doc_ids": ["a/b"]}, headers=ctx.write_headers)
    gone = "a/b" not in doc_ids(ctx, name)
    observed = (f"add {added.status_code}; DELETE .../documents/a%2Fb {by_path.status_code}; re-add "
                f"{readd.status_code}; POST .../documents/delete {by_body.status_code}; gone afterwards: {gone}")
    ok = added.status_code == 200 and 200 in (by_path.status_code, by_body.status_code) and gone
    return [Case("9", "doc_id 'a/b': add, then delete by path and by body", "add 200; a delete 200 (either form)",
                 observed, verdict(ok))]


def case_per_item(ctx: Ctx) -> list[Case]:
    """Per-item rejection in a write batch"""
    name = ctx.main_collection()
    body = {"documents": [42, {"doc_id": "ok1", "title": "t", "content": "fine text about okapis"}]}
    r = ctx.client.post(f"/collections/{name}/documents", json=body, headers=ctx.write_headers)
    try:
        data = r.json()
        rejected = [item.get("index") for item in data.get("rejected", [])]
        added = [item.get("doc_id") for item in data.get("added", [])]
    except (ValueError, AttributeError):
        rejected, added = [], []
    ok = r.status_code == 200 and 0 in rejected and "ok1" in added
    return [Case("10", "Batch [42, {doc_id ok1 …}]", "200; rejected lists index 0, added lists ok1",
                 f"{r.status_code}; rejected {rejected}; added {added}" + ("" if ok else f" ({detail(r, 100)})"),
                 verdict(ok))]


def case_empty(ctx: Ctx) -> list[Case]:
    """Empty corpus and an emptied collection"""
    corpora = ctx.work.corpora
    r = post_until_ready(ctx.client, "/rag_search", {"query": "x", "json_path": str(corpora / "empty.json")}, 60)
    message = detail(r, 120)
    clear = "max()" not in message and "empty sequence" not in message
    rows = [Case("11a", "json_path of '[]'", "400 with a clear message", f"{r.status_code}: {message}",
                 verdict(r.status_code == 400 and clear))]
    body = {"query": "jazz", "json_path": str(corpora / "small.json")}
    small = post_until_ready(ctx.client, "/rag_search", body, 180)
    if small.status_code != 200:
        raise RuntimeError(f"small corpus not served: {small.status_code} {detail(small)}")
    name = small.json()["collection"]
    deletes = [ctx.client.delete(f"/collections/{name}/documents/{quote(d, safe='')}", headers=ctx.write_headers)
               .status_code for d in sorted(doc_ids(ctx, name))]
    compact = ctx.client.post(f"/collections/{name}/compact", headers=ctx.write_headers)
    rows.append(Case("11b", "Delete every document, then compact", "deletes 200; compact 200",
                     f"deletes {deletes}; compact {compact.status_code}"
                     + ("" if compact.status_code == 200 else f" ({detail(compact, 100)})"),
                     verdict(bool(deletes) and set(deletes) == {200} and compact.status_code == 200)))
    return rows


# ---- case 12: paths and metrics ------------------------------------------------------------------


def path_snippet(text: str, paths: list[str]) -> str | None:
    for path in paths:
        at = text.find(path)
        if at >= 0:
            return text[max(0, at - 30): at + len(path) + 30].replace(path, "<tmp>")
    return None


def case_path_leaks(ctx: Ctx) -> list[Case]:
    """Absolute paths in /metrics and /collections"""
    ctx.main_collection()
    paths = sorted({str(ctx.work.tmp), os.path.realpath(ctx.work.tmp)}, key=len, reverse=True)
    found = {}
    for endpoint in ("/metrics", "/collections"):
        r = ctx.client.get(endpoint)
        found[endpoint] = f"{r.status_code}, " + (f"contains {path_snippet(r.text, paths)!r}"
                                                  if path_snippet(r.text, paths) else "no temp-dir path")
    ok = all(v.endswith("no temp-dir path") and v.startswith("200") for v in found.values())
    return [Case("12a", "GET /metrics and GET /collections", "200 and no absolute path of the temp dir",
                 "; ".join(f"{k}: {v}" for k, v in found.items()), verdict(ok))]


def case_metrics_auth(ctx: Ctx) -> list[Case]:
    """/metrics with a read key set (metrics_auth default)"""
    unauth, authed = ctx.bare.get("/metrics").status_code, ctx.client.get("/metrics").status_code
    return [Case("12b", "/metrics with RAGMEM_READ_API_KEY set, metrics_auth default", "401 without the key, "
                 "200 with it", f"{unauth} without, {authed} with", verdict(unauth == 401 and authed == 200))]


# ---- case 13: journals of pruned builds ----------------------------------------------------------


def cli_index(ctx: Ctx, corpus: Path, name: str) -> str:
    """``ragmem index --force`` in a subprocess; returns the build id it published."""
    args = [sys.executable, "-m", "service.cli", "index", str(corpus), "--collection", name, "--data-dir",
            str(ctx.data), "--force"]
    done = subprocess.run(args, cwd=ROOT, env=child_env({}), capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise RuntimeError(f"ragmem index exited {done.returncode}: {(done.stderr or done.stdout)[-300:]}")
    return (ctx.data / name / "CURRENT").read_text().strip()


def case_pruned_journal(ctx: Ctx) -> list[Case]:
    """Journals of pruned builds are removed"""
    name, corpus = "journaled", ctx.work.tmp / "journaled" / "long_context.json"
    first = cli_index(ctx, write_json_corpus(corpus, 5, seed=20, paragraphs=PARAGRAPHS), name)
    added = ctx.client.post(f"/collections/{name}/documents", json=probe_doc("journal-doc"), headers=ctx.write_headers)
    live = ctx.data / name / "live"
    journal = sorted(p.name for p in live.glob(f"{first}*")) if live.is_dir() else []
    for extra in (1, 2):  # the same seed: the first five documents stay, one more each round
        cli_index(ctx, write_json_corpus(corpus, 5 + extra, seed=20, paragraphs=PARAGRAPHS), name)
    pruned = not (ctx.data / name / "builds" / first).exists()
    left = sorted(p.name for p in live.glob(f"{first}*")) if live.is_dir() else []
    observed = (f"add {added.status_code}; journal of build 1: {', '.join(journal) or 'none'}; after two rebuilds: "
                f"build 1 pruned {pruned}, its journal files left: {', '.join(left) or 'none'}")
    ok = added.status_code == 200 and bool(journal) and pruned and not left
    return [Case("13", "Journal of a pruned build", "build 1's live/<build-id>.sqlite* gone once it is pruned",
                 observed, verdict(ok))]


# ---- orchestration -------------------------------------------------------------------------------


CaseFn = Callable[[Ctx], list[Case]]


@dataclass
class Group:
    """One server configuration and the cases run against it."""

    label: str
    data: Path
    env: dict[str, str]
    parts: list[tuple[tuple[int, ...], CaseFn]]
    read_headers: dict = field(default_factory=dict)
    write_headers: dict = field(default_factory=lambda: {"Authorization": f"Bearer {WRITE_KEY}"})


def groups(work: Work, hostile_seconds: float, fresh_seconds: float) -> list[Group]:
    write = {"RAGMEM_API_KEY": WRITE_KEY}
    return [
        Group("main", work.data, {**write, "RAGMEM_MAX_REQUEST_BYTES": str(MAX_BODY)},
              [((3,), case_failed_builds), ((5,), case_body_limit), ((8,), case_bad_header), ((9,), case_slash_id),
               ((10,), case_per_item), ((11,), case_empty), ((12,), case_path_leaks), ((13,), case_pruned_journal)]),
        Group("slow", work.data, {**write, "RAGMEM_REQUEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
                                  "RAGMEM_REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
                                  "RAGMEM_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE)}, [((6,), case_slow)]),
        Group("quota", work.tmp / "data-quota", {**write, "RAGMEM_MAX_PATH_COLLECTIONS": "2",
                                                 "RAGMEM_PATH_BUILD_AUTH": "write"}, [((4,), case_quota)]),
        Group("auth", work.data, {"RAGMEM_API_KEY": UNICODE_KEY, "RAGMEM_READ_API_KEY": READ_KEY,
                                  "RAGMEM_PATH_BUILD_AUTH": "read"},
              [((4,), case_read_auth), ((8,), case_unicode_key), ((12,), case_metrics_auth)],
              read_headers={"Authorization": f"Bearer {READ_KEY}"},
              write_headers={"Authorization": b"Bearer " + UNICODE_KEY.encode()}),
        Group("shed", work.data, {**write, "RAGMEM_MAX_INFLIGHT_REQUESTS": str(MAX_INFLIGHT)},
              [((7,), case_shedding)]),
        Group("queue", work.tmp / "data-queue", {**write, "RAGMEM_BUILD_WORKERS": "1", "RAGMEM_MAX_QUEUED_BUILDS": "0",
                                                 "RAGMEM_BUILD_WAIT_SECONDS": "0"}, [((7,), case_build_queue)]),
        Group("hostile", work.tmp / "data-hostile",
              {**write, "RAGMEM_MAX_FILE_BYTES": str(8 << 20), "RAGMEM_BUILD_TIMEOUT_SECONDS": "150"},
              [((1, 2), lambda ctx: case_hostile(ctx, hostile_seconds, fresh_seconds))]),
    ]


def error_rows(numbers: tuple[int, ...], fn: CaseFn, message: str) -> list[Case]:
    name = (fn.__doc__ or "hostile directory corpus").strip().splitlines()[0]
    return [Case(str(n), name, "(see the case)", message[:300], "FAIL") for n in numbers]


def run_part(ctx: Ctx, label: str, numbers: tuple[int, ...], fn: CaseFn) -> list[Case]:
    log.info("[%s] case %s", label, ",".join(map(str, numbers)))
    try:
        return fn(ctx)
    except Exception as exc:  # a broken case is a failed row, never a crashed suite
        log.exception("case %s raised", numbers)
        return error_rows(tuple(n for n in numbers if n in ctx.selected), fn, f"error: {type(exc).__name__}: {exc}")


def run_group(group: Group, work: Work, selected: set[int], memory_gib: float) -> list[Case]:
    parts = [(numbers, fn) for numbers, fn in group.parts if selected & set(numbers)]
    if not parts:
        return []
    seed_onnx_cache(work.data, group.data)
    rows: list[Case] = []
    done = 0
    try:
        # A fresh connection per probe: a server that drops a connection after an error must not fail the next case.
        fresh = httpx.Limits(max_keepalive_connections=0)
        with group_server(work, group.label, group.data, group.env, memory_gib) as url, \
                httpx.Client(base_url=url, timeout=60, headers=group.read_headers, limits=fresh) as client, \
                httpx.Client(base_url=url, timeout=60, limits=fresh) as bare:
            ctx = Ctx(work, url, group.data, client, bare, group.write_headers, selected)
            for numbers, fn in parts:
                rows += run_part(ctx, group.label, numbers, fn)
                done += 1
    except Exception as exc:
        log.error("server %s: %s", group.label, brief(exc, 1000))
        for numbers, fn in parts[done:]:
            rows += error_rows(tuple(n for n in numbers if n in selected), fn, f"server: {brief(exc)}")
    return rows


def sort_key(case: Case) -> tuple[int, str]:
    digits = "".join(ch for ch in case.id if ch.isdigit())
    return int(digits or 0), case.id


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def report_lines(rows: list[Case], command: str, seconds: float) -> list[str]:
    passed = sum(r.result == "PASS" for r in rows)
    failed = sum(r.result == "FAIL" for r in rows)
    skipped = sum(r.result == "SKIP" for r in rows)
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"
    lines = [
        "## Attack suite (`make bench-attack`)",
        "",
        f"Command: `{command}` ({seconds:.0f} s). Machine: {machine}. Date: {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        "Real `python -m service.cli serve` subprocesses on 127.0.0.1, one configuration at a time (limits set "
        f"through `RAGMEM_*`: request body {MAX_BODY >> 20} MiB, header/body/keep-alive timeouts "
        f"{HEADER_TIMEOUT:.0f}/{BODY_TIMEOUT:.0f}/{KEEP_ALIVE:.0f} s, {MAX_INFLIGHT} requests in flight, 2 json_path "
        "collections, a non-ASCII write key), each with RLIMIT_DATA capped. The expected column is the "
        "behaviour of the hardened server.",
        "",
        "| # | case | expected | observed | result |",
        "|---|---|---|---|---|",
        *(f"| {r.id} | {cell(r.name)} | {cell(r.expected)} | {cell(r.observed)} | **{r.result}** |" for r in rows),
        "",
        f"**{passed} passed, {failed} failed**" + (f", {skipped} skipped" if skipped else "") + ".",
    ]
    return lines


def parse_only(text: str | None) -> set[int]:
    if not text:
        return set(range(1, 15))
    numbers = {int(part) for part in text.split(",") if part.strip()}
    bad = sorted(n for n in numbers if not 1 <= n <= 14)
    if bad:
        raise SystemExit(f"--only: no case {bad} (cases are 1-14)")
    return numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--only", help="comma-separated case numbers (default: all)")
    parser.add_argument("--hostile-seconds", type=float, default=180.0, help="wait for the hostile build")
    parser.add_argument("--fresh-seconds", type=float, default=60.0, help="allowed wait for a build beside it")
    parser.add_argument("--server-memory-gib", type=float, default=6.0, help="RLIMIT_DATA of each server")
    args = parser.parse_args(argv)
    selected = parse_only(args.only)
    command = start_bench("eval.bench_attack", argv)
    started = time.perf_counter()
    rows: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="ragmem-bench-attack-") as tmp:
        work = prepare(Path(tmp))
        for group in groups(work, args.hostile_seconds, args.fresh_seconds):
            rows += run_group(group, work, selected, args.server_memory_gib)
    if 14 in selected:
        rows.append(Case("14", "200 concurrent clients must not all wait long", "covered by 7", "not run separately",
                         "SKIP"))
    rows.sort(key=sort_key)
    emit_section(args.out, SECTION, report_lines(rows, command, time.perf_counter() - started))
    passed, failed = sum(r.result == "PASS" for r in rows), sum(r.result == "FAIL" for r in rows)
    print(f"{passed} passed, {failed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
