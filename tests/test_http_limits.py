"""HTTP-layer limits against a real server on loopback: body size (413), body time (408), request
head time and idle connections (closed), admission control (503 + Retry-After), non-ASCII keys
and headers (401, never 500), the /metrics key, and no absolute server path in any report."""

from __future__ import annotations

import json
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from indexing.builder import build_collection
from eval.generated_corpus import write_json_corpus
from eval.local_server import running_server

MAX_BYTES = 4096
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
READ_KEY = "clé-密钥"
WRITE_KEY = "écrire-写入"
SEARCH = json.dumps({"query": "volcano magma", "collection": "named", "top_k": 2}).encode()


def bearer(key: str) -> dict[str, bytes]:
    """An Authorization header carrying the key's UTF-8 bytes, as a client sends a non-ASCII key."""
    return {"Authorization": b"Bearer " + key.encode("utf-8")}


READ = bearer(READ_KEY)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    from indexing.settings import Settings

    root = tmp_path_factory.mktemp("limits")
    build_collection(write_json_corpus(root / "named.json", n_docs=6, seed=2), "named",
                     Settings(data_dir=root / "data"), show_progress=False)
    write_json_corpus(root / "corpora" / "task" / "long_context.json", n_docs=5, seed=3)
    return root


@pytest.fixture(scope="module")
def limited(base):
    env = {"RAGMEM_MAX_REQUEST_BYTES": str(MAX_BYTES), "RAGMEM_REQUEST_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
           "RAGMEM_REQUEST_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT), "RAGMEM_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE)}
    with running_server(base / "data", env=env) as url:
        yield url


@pytest.fixture(scope="module")
def guarded(base):
    # With the start-up warm-up on, as servers run: its GIL-heavy tokenizer builds happen before
    # the port opens (warmup.preload_tokenizers), so they cannot stall the refusals timed here.
    env = {"RAGMEM_MAX_INFLIGHT_REQUESTS": "2", "RAGMEM_READ_API_KEY": READ_KEY, "RAGMEM_API_KEY": WRITE_KEY,
           "RAGMEM_BUILD_WAIT_SECONDS": "0"}
    with running_server(base / "data", [base / "corpora"], env=env) as url:
        yield url


# ---- raw HTTP/1.1 over a socket -----------------------------------------------------------------
def connect(url: str, timeout: float = 8.0) -> socket.socket:
    parts = urlsplit(url)
    return socket.create_connection((parts.hostname, parts.port), timeout=timeout)


def request_head(method: str, path: str, headers: dict[str, bytes | str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    return b"\r\n".join(lines) + b"\r\n\r\n"


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of one response (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    while len(body) < int(headers.get("content-length", 0)):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def seconds_until_closed(sock: socket.socket) -> float:
    """How long the server takes to close the connection (reading and dropping what it sends)."""
    started = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return time.monotonic() - started


# ---- body size -----------------------------------------------------------------------------------
def test_declared_body_over_the_limit_is_413(limited):
    response = httpx.post(f"{limited}/rag_search", content=b" " * (2 * MAX_BYTES),
                          headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413, response.text
    assert str(MAX_BYTES) in response.json()["detail"]
    response = httpx.post(f"{limited}/rag_search", content=SEARCH, headers={"content-type": "application/json"},
                          timeout=60)
    assert response.status_code == 200, response.text  # a body under the limit still works


def test_chunked_body_growing_past_the_limit_is_413(limited):
    chunk = b" " * 1500
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(4)) + b"0\r\n\r\n"
    with connect(limited) as sock:
        sock.sendall(request_head("POST", "/rag_search", {"Content-Type": "application/json",
                                                          "Transfer-Encoding": "chunked"}) + body)
        status, headers, payload = read_response(sock)
    assert status == 413 and json.loads(payload)["detail"]
    assert headers["connection"] == "close"


# ---- time limits ---------------------------------------------------------------------------------
def test_half_sent_request_head_is_closed(limited):
    with connect(limited) as sock:
        sock.sendall(b"POST /rag_search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl")
        waited = seconds_until_closed(sock)
    assert HEADER_TIMEOUT * 0.5 < waited < HEADER_TIMEOUT + 3


def test_silent_connection_is_closed(limited):
    with connect(limited) as sock:
        assert seconds_until_closed(sock) < HEADER_TIMEOUT + 3


def test_idle_keep_alive_connection_is_closed(limited):
    with connect(limited) as sock:
        sock.sendall(request_head("GET", "/healthz"))
        status, headers, _ = read_response(sock)
        assert status == 200 and headers.get("connection") != "close"
        assert seconds_until_closed(sock) < KEEP_ALIVE + 2.5  # uvicorn's default would wait 5 s


def test_body_that_never_arrives_is_408(limited):
    with connect(limited) as sock:
        started = time.monotonic()
        sock.sendall(request_head("POST", "/rag_search", {"Content-Type": "application/json",
                                                          "Content-Length": str(len(SEARCH))}))
        status, headers, payload = read_response(sock)
        assert status == 408 and json.loads(payload)["detail"]
        assert time.monotonic() - started < BODY_TIMEOUT + 3
        assert headers["connection"] == "close" and seconds_until_closed(sock) < 2


def test_trickled_body_is_408_at_the_deadline(limited):
    with connect(limited) as sock:
        started = time.monotonic()
        sock.sendall(request_head("POST", "/rag_search", {"Content-Type": "application/json",
                                                          "Content-Length": str(len(SEARCH))}))
        sock.settimeout(0.25)
        status = None
        for byte in SEARCH[:-1]:  # one byte every 0.25 s: never finishes within the deadline
            try:
                status, _, payload = read_response(sock)
                break
            except socket.timeout:
                sock.sendall(bytes([byte]))
        assert status == 408, "the server kept waiting for a trickled body"
        assert time.monotonic() - started < BODY_TIMEOUT + 3


# ---- admission control ---------------------------------------------------------------------------
def _hold_slot(url: str) -> socket.socket:
    """A request the server admitted and is working on: its head is sent, its body held back."""
    sock = connect(url, timeout=60)
    sock.sendall(request_head("POST", "/rag_search", {**READ, "Content-Type": "application/json",
                                                      "Content-Length": str(len(SEARCH))}))
    return sock


def _timed_get(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(f"{url}/collections", headers=READ, timeout=30)
    return response, time.monotonic() - started


def _wait_until_full(url: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while _timed_get(url)[0].status_code != 503:
        assert time.monotonic() < deadline, "the held requests never filled the in-flight slots"
        time.sleep(0.05)


def test_requests_past_the_inflight_cap_get_a_fast_503(guarded):
    held = [_hold_slot(guarded) for _ in range(2)]
    try:
        _wait_until_full(guarded)
        with ThreadPoolExecutor(8) as pool:
            refused = list(pool.map(lambda _: _timed_get(guarded), range(8)))
        for response, seconds in refused:
            assert response.status_code == 503 and response.headers["retry-after"] == "1"
            assert "busy" in response.json()["detail"]
            assert seconds < 0.5, f"a refusal took {seconds:.3f}s"
        assert httpx.get(f"{guarded}/healthz", timeout=10).status_code == 200  # never counted
        for sock in held:
            sock.sendall(SEARCH)
        for sock in held:
            status, _, payload = read_response(sock)
            assert status == 200, payload
            assert len(json.loads(payload)["results"]) == 2
    finally:
        for sock in held:
            sock.close()
    assert _timed_get(guarded)[0].status_code == 200  # the slots were given back


# ---- keys ----------------------------------------------------------------------------------------
def test_non_ascii_authorization_header_is_401(guarded):
    for header in (b"Bearer \xd0\xba\xd0\xbb\xd1\x8e\xd1\x87", b"Bearer \xff\xfe", b"\xe5\xaf\x86 x"):
        response = httpx.get(f"{guarded}/collections", headers={"Authorization": header}, timeout=30)
        assert response.status_code == 401, (header, response.text)
        assert response.headers["www-authenticate"]


def test_non_ascii_keys_work(guarded):
    assert httpx.get(f"{guarded}/collections", headers=READ, timeout=30).status_code == 200
    assert httpx.get(f"{guarded}/collections", headers=bearer(WRITE_KEY), timeout=30).status_code == 200
    assert httpx.get(f"{guarded}/collections", headers=bearer("clé-密"), timeout=30).status_code == 401
    assert httpx.get(f"{guarded}/collections", timeout=30).status_code == 401
    response = httpx.post(f"{guarded}/collections/named/compact", headers=bearer(READ_KEY), timeout=60)
    assert response.status_code == 401


def test_metrics_need_the_read_key(guarded):
    assert httpx.get(f"{guarded}/metrics", timeout=30).status_code == 401
    assert httpx.get(f"{guarded}/metrics", headers=bearer("nope"), timeout=30).status_code == 401
    response = httpx.get(f"{guarded}/metrics", headers=READ, timeout=30)
    assert response.status_code == 200 and "ragmem_requests_total" in response.text


# ---- no absolute paths ---------------------------------------------------------------------------
def _assert_no_server_path(text: str, base: Path) -> None:
    for secret in {str(base), os.path.realpath(base)}:
        assert secret not in text


def test_reports_show_no_absolute_path(guarded, base):
    # json_path relative to the corpus root, so no path the client sent can show up in the reply.
    building = httpx.post(f"{guarded}/rag_search", headers=READ, timeout=60,
                          json={"query": "volcano", "json_path": "task/long_context.json"})
    _assert_no_server_path(building.text, base)
    deadline = time.monotonic() + 180
    while building.status_code == 503 and time.monotonic() < deadline:
        _assert_no_server_path(httpx.get(f"{guarded}/collections/{building.json()['collection']}", headers=READ,
                                         timeout=30).text, base)
        time.sleep(0.5)
        building = httpx.post(f"{guarded}/rag_search", headers=READ, timeout=60,
                              json={"query": "volcano", "json_path": "task/long_context.json"})
    assert building.status_code == 200, building.text
    listing = httpx.get(f"{guarded}/collections", headers=READ, timeout=30)
    stats = httpx.get(f"{guarded}/collections/named", headers=READ, timeout=30)
    metrics = httpx.get(f"{guarded}/metrics", headers=READ, timeout=30)
    for response in (listing, stats, metrics):
        assert response.status_code == 200
        _assert_no_server_path(response.text, base)
    assert stats.json()["corpus"]["path"] == "named.json"
    by_name = {c["name"]: c for c in listing.json()["collections"]}
    assert by_name[building.json()["collection"]]["corpus"]["path"] == "task/long_context.json"
