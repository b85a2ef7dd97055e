"""Live collections over a real server on loopback: writes, auth, per-item errors, the CLI while
serving, concurrent writers, and SIGKILL in the middle of a write batch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from indexing.builder import build_collection
from eval.generated_corpus import make_documents, write_json_corpus
from eval.local_server import ROOT, free_port, running_server, stop_process

KEY = "s3cret-write-key"
WRITE = {"Authorization": f"Bearer {KEY}"}
OKAPI = {"doc_id": "okapi", "title": "Okapi field notes",
         "content": "The okapi is a giraffid of the Ituri rainforest. Researchers in Epulu track okapi with camera traps."}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    from indexing.settings import Settings

    root = tmp_path_factory.mktemp("live")
    settings = Settings(data_dir=root / "data")
    build_collection(write_json_corpus(root / "c.json", n_docs=8, seed=2), "news", settings, show_progress=False)
    return settings.data_dir


@pytest.fixture(scope="module")
def server(data_dir):
    with running_server(data_dir, env={"RAGMEM_API_KEY": KEY}) as url:
        yield url


def _doc_ids(url: str, query: str, mode: str = "hybrid+graph") -> set[str]:
    r = httpx.post(f"{url}/rag_search", json={"query": query, "collection": "news", "mode": mode, "top_k": 20,
                                              "diverse": False}, timeout=60)
    assert r.status_code == 200, r.text
    return {hit["doc_id"] for hit in r.json()["results"]}


def test_writes_need_the_key_reads_do_not(server):
    r = httpx.post(f"{server}/collections/news/documents", json={"documents": [OKAPI]}, timeout=60)
    assert r.status_code == 401 and "Bearer" in r.json()["detail"] and r.headers["www-authenticate"]
    r = httpx.delete(f"{server}/collections/news/documents/x", headers={"Authorization": "Bearer wrong"}, timeout=60)
    assert r.status_code == 401
    assert httpx.post(f"{server}/collections/news/compact", timeout=60).status_code == 401
    assert httpx.get(f"{server}/collections/news", timeout=60).status_code == 200


def test_add_search_delete_over_http(server):
    r = httpx.post(f"{server}/collections/news/documents", json={"documents": [OKAPI]}, headers=WRITE, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == [{"index": 0, "doc_id": "okapi", "chunks": 1, "replaced": False}]
    for mode in ("hybrid+graph", "bm25", "dense", "graph"):
        assert "okapi" in _doc_ids(server, "okapi Ituri rainforest camera traps", mode), mode
    stats = httpx.get(f"{server}/collections/news", timeout=60).json()
    assert stats["live_seq"] == body["seq"] and any(d["doc_id"] == "okapi" for d in stats["document_list"])

    r = httpx.delete(f"{server}/collections/news/documents/okapi", headers=WRITE, timeout=60)
    assert r.status_code == 200 and r.json()["deleted"] == ["okapi"]
    for mode in ("hybrid+graph", "bm25", "dense", "graph"):
        assert "okapi" not in _doc_ids(server, "okapi Ituri rainforest camera traps", mode), mode
    r = httpx.post(f"{server}/rag_search", json={"query": "Epulu okapi", "collection": "news",
                                                 "include_subgraph": True}, timeout=60)
    assert "Epulu" not in str(r.json()["subgraph"])
    assert httpx.delete(f"{server}/collections/news/documents/okapi", headers=WRITE, timeout=60).status_code == 404


def test_bad_documents_are_reported_per_item(server):
    docs = [{"doc_id": "good-1", "title": "Tapir", "content": "Tapirs are large herbivorous mammals."},
            {"title": "no id", "content": "text"},
            {"doc_id": "empty", "content": "   "},
            "not an object",
            {"doc_id": "good-1", "content": "a repeat of item 0"},
            {"doc_id": "good-2", "title": "Capybara", "page_body": "Capybaras are the largest rodents.", "lang": "en"}]
    r = httpx.post(f"{server}/collections/news/documents", json={"documents": docs}, headers=WRITE, timeout=120)
    assert r.status_code == 200, r.text  # a non-object item is rejected on its own, not with the batch
    body = r.json()
    assert [a["doc_id"] for a in body["added"]] == ["good-1", "good-2"]
    assert [a["index"] for a in body["added"]] == [0, 5]
    reasons = {x["index"]: x["error"] for x in body["rejected"]}
    assert "doc_id" in reasons[1] and "empty" in reasons[2] and "not an object" in reasons[3]
    assert "repeats" in reasons[4]
    assert "good-2" in _doc_ids(server, "largest rodents capybara", "bm25")
    r = httpx.post(f"{server}/collections/news/documents", json={"documents": [{"title": "x"}]}, headers=WRITE, timeout=60)
    assert r.status_code == 422 and r.json()["rejected"][0]["index"] == 0
    assert httpx.post(f"{server}/collections/nope/documents", json={"documents": [OKAPI]},
                      headers=WRITE, timeout=60).status_code == 404


@pytest.mark.parametrize("doc_id", ["a/b", "dir/sub/x.md", "what?#50%", "..", "x%2Fy"])
def test_any_doc_id_that_can_be_added_can_be_deleted(server, doc_id):
    from urllib.parse import quote

    doc = {"doc_id": doc_id, "title": "Slashed", "content": f"Document {doc_id} about pangolin scales."}
    r = httpx.post(f"{server}/collections/news/documents", json={"documents": [doc]}, headers=WRITE, timeout=120)
    assert r.status_code == 200 and r.json()["added"][0]["doc_id"] == doc_id, r.text
    encoded = quote(doc_id, safe="").replace(".", "%2E")  # clients drop literal '.' and '..' path segments
    r = httpx.delete(f"{server}/collections/news/documents/{encoded}", headers=WRITE, timeout=60)
    assert r.status_code == 200 and r.json()["deleted"] == [doc_id], r.text
    r = httpx.post(f"{server}/collections/news/documents", json={"documents": [doc]}, headers=WRITE, timeout=120)
    r = httpx.post(f"{server}/collections/news/documents/delete", json={"doc_ids": [doc_id, "never-added"]},
                   headers=WRITE, timeout=60)
    assert r.status_code == 200 and r.json()["deleted"] == [doc_id] and r.json()["not_found"] == ["never-added"]
    assert doc_id not in _doc_ids(server, "pangolin scales", "bm25")


def test_cli_writes_reach_the_running_server_and_writers_serialise(server, data_dir, tmp_path):
    extra = [dict(d, doc_id=f"cli-{i}") for i, d in enumerate(make_documents(3, seed=11))]
    file = tmp_path / "extra.json"
    file.write_text(__import__("json").dumps(extra, ensure_ascii=False))
    cli = [sys.executable, "-m", "service.cli"]
    http_docs = [dict(OKAPI, doc_id=f"http-{i}") for i in range(4)]
    with ThreadPoolExecutor(4) as pool:  # a CLI writer and HTTP writers at once
        cli_run = pool.submit(subprocess.run, cli + ["add", str(file), "-c", "news", "--data-dir", str(data_dir)],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        posts = [pool.submit(httpx.post, f"{server}/collections/news/documents", json={"documents": [d]},
                             headers=WRITE, timeout=300) for d in http_docs]
        assert cli_run.result().returncode == 0, cli_run.result().stderr
        seqs = [p.result().json()["seq"] for p in posts]
    assert len(set(seqs)) == len(seqs)  # each batch got its own journal entry
    ids = {d["doc_id"] for d in httpx.get(f"{server}/collections/news", timeout=60).json()["document_list"]}
    assert {f"cli-{i}" for i in range(3)} | {f"http-{i}" for i in range(4)} <= ids

    run = subprocess.run(cli + ["delete", "cli-0", "-c", "news", "--data-dir", str(data_dir)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "cli-0" not in {d["doc_id"] for d in httpx.get(f"{server}/collections/news", timeout=60).json()["document_list"]}

    r = httpx.post(f"{server}/collections/news/compact", headers=WRITE, timeout=600)
    assert r.status_code == 200, r.text
    after = httpx.get(f"{server}/collections/news", timeout=60).json()
    assert after["build_id"] == r.json()["build_id"] and after["live_seq"] == 0
    assert {d["doc_id"] for d in after["document_list"]} == ids - {"cli-0"}


def test_sigkill_in_the_middle_of_a_batch_keeps_old_state(tmp_path):
    from indexing.settings import Settings

    settings = Settings(data_dir=tmp_path / "data")
    build_collection(write_json_corpus(tmp_path / "c.json", n_docs=6, seed=4), "news", settings, show_progress=False)
    batch = [dict(OKAPI, doc_id=f"batch-{i}", content=f"{OKAPI['content']} Variant {i}.") for i in range(5)]
    port = free_port()
    args = [sys.executable, "-m", "service.cli", "serve", "--data-dir", str(settings.data_dir), "--port", str(port)]
    env = {**os.environ, "RAGMEM_FAULT_PAUSE_BEFORE_COMMIT": "30"}
    with open(tmp_path / "server.log", "w") as log:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, proc)
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(httpx.post, f"{url}/collections/news/documents", json={"documents": batch},
                                      timeout=120)
                journal = _wait_for(lambda: list((settings.data_dir / "news" / "live").glob("*.sqlite-wal")))[0]
                _wait_for(lambda: journal.stat().st_size > 0)
                time.sleep(1.0)  # rows written, commit pending
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                with pytest.raises(httpx.HTTPError):
                    pending.result()
        finally:
            stop_process(proc)

    with running_server(settings.data_dir) as url:  # restarts cleanly on the same data root
        stats = httpx.get(f"{url}/collections/news", timeout=60).json()
        assert stats["documents"] == 6 and stats["live_seq"] == 0
        assert not any(d["doc_id"].startswith("batch-") for d in stats["document_list"])
        r = httpx.post(f"{url}/collections/news/documents", json={"documents": batch}, timeout=120)
        assert r.status_code == 200 and len(r.json()["added"]) == 5
        assert httpx.get(f"{url}/collections/news", timeout=60).json()["documents"] == 11


def _wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not start")


def _wait_for(probe, timeout: float = 60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError("condition not reached")


def test_read_key_closes_reads_and_the_write_key_opens_them(data_dir):
    env = {"RAGMEM_API_KEY": KEY, "RAGMEM_READ_API_KEY": "reader"}
    with running_server(data_dir, env=env) as url:
        body = {"query": "jazz", "collection": "news"}
        assert httpx.post(f"{url}/rag_search", json=body, timeout=60).status_code == 401
        assert httpx.get(f"{url}/collections", timeout=60).status_code == 401
        for key in ("reader", KEY):
            r = httpx.post(f"{url}/rag_search", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert r.status_code == 200, r.text
        r = httpx.post(f"{url}/collections/news/documents", json={"documents": [OKAPI]},
                       headers={"Authorization": "Bearer reader"}, timeout=60)
        assert r.status_code == 401  # the read key does not allow writes
        assert httpx.get(f"{url}/healthz", timeout=60).status_code == 200
