"""Tiered readiness seen from outside: a real server answers an unseen json_path from BM25 first,
then hybrid, then hybrid+graph, and says at each step which legs answered and which are pending.

``RAGMEM_FAULT_PAUSE_AFTER_TIER`` holds each tier open long enough to search it; the MCP server
gives an agent the same note in its text answer.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import ClientSession, StdioServerParameters, stdio_client

from eval.generated_corpus import write_json_corpus
from eval.local_server import PARTIAL_NOTE, running_server

PAUSE_S = "4"
"""Long enough for a few searches and a write inside each tier, on a loaded CI machine."""
QUERY = "volcano jazz photosynthesis"
AGENT_ARGS = {"top_k": 10, "diverse": True, "min_docs": 5, "max_per_doc": 2}


def _search(client: httpx.Client, url: str, json_path: str, **extra) -> httpx.Response:
    return client.post(f"{url}/rag_search", json={"query": QUERY, "json_path": json_path, **AGENT_ARGS, **extra})


def _until(client: httpx.Client, url: str, json_path: str, done, timeout: float = 240) -> dict:
    """Search until ``done(body)``; every answer on the way is a 200 or a 503 with Retry-After."""
    deadline = time.time() + timeout
    while True:
        response = _search(client, url, json_path)
        if response.status_code == 503:
            assert "Retry-After" in response.headers, response.text
        else:
            assert response.status_code == 200, response.text
            body = response.json()
            if done(body):
                return body
        assert time.time() < deadline, response.text
        time.sleep(0.3)


def test_unseen_json_path_answers_tier_by_tier(tmp_path: Path) -> None:
    corpus = write_json_corpus(tmp_path / "corpus" / "long_context.json", n_docs=12)
    env = {"RAGMEM_FAULT_PAUSE_AFTER_TIER": PAUSE_S}
    with running_server(tmp_path / "data", corpus_roots=[corpus.parent], env=env) as url, \
            httpx.Client(timeout=120) as client:
        first = _until(client, url, str(corpus), lambda body: True)
        assert first["legs_used"] == ["bm25"] and first["mode"] == "bm25", first
        assert first["requested_mode"] == "hybrid+graph"
        assert set(first["pending"]) == {"dense", "graph"}, first["pending"]
        for leg in first["pending"].values():
            assert leg["state"] in {"queued", "building"} and 0.0 <= leg["progress"] <= 1.0, leg
        assert len(first["results"]) == 10

        text = _search(client, url, str(corpus), format="text")
        assert text.status_code == 200
        assert PARTIAL_NOTE in text.text and "keyword-only" in text.text, text.text[:600]
        assert text.text.count('Citation: [long_context: "') == 10

        write = client.post(f"{url}/collections/{first['collection']}/documents",
                            json={"documents": [{"doc_id": "late", "title": "Late", "content": "late words"}]})
        assert write.status_code == 503 and "Retry-After" in write.headers, write.text
        assert "still being built" in write.text

        dense = _until(client, url, str(corpus), lambda body: "dense" in body["legs_used"])
        assert dense["mode"] == "hybrid" and set(dense["legs_used"]) == {"bm25", "dense"}, dense
        assert set(dense["pending"]) == {"graph"}

        done = _until(client, url, str(corpus), lambda body: not body["pending"])
        assert done["mode"] == "hybrid+graph" and set(done["legs_used"]) == {"bm25", "dense", "graph"}
        assert PARTIAL_NOTE not in _search(client, url, str(corpus), format="text").text


def test_new_json_path_past_the_build_queue_gets_a_fast_503(tmp_path: Path) -> None:
    first = write_json_corpus(tmp_path / "corpus" / "a.json", n_docs=4)
    second = write_json_corpus(tmp_path / "corpus" / "b.json", n_docs=4, seed=1)
    # The first build holds the only worker for its seconds of building anyway (the second request is
    # sent as soon as the first is answered, BUILD_WAIT_SECONDS=0); a short pause only widens that.
    env = {"RAGMEM_BUILD_WORKERS": "1", "RAGMEM_MAX_QUEUED_BUILDS": "0", "RAGMEM_BUILD_WAIT_SECONDS": "0",
           "RAGMEM_FAULT_PAUSE_AFTER_TIER": "2"}
    with running_server(tmp_path / "data", corpus_roots=[first.parent], env=env) as url, \
            httpx.Client(timeout=120) as client:
        started = _search(client, url, str(first))
        assert started.status_code in {200, 503}, started.text
        refused = _search(client, url, str(second))
        assert refused.status_code == 503 and refused.headers.get("Retry-After"), refused.text
        assert "RAGMEM_MAX_QUEUED_BUILDS" in refused.text
        _until(client, url, str(first), lambda body: not body["pending"])
        # With the first build done the queue has room again.
        assert _until(client, url, str(second), lambda body: True)["results"]


def test_mcp_first_answer_says_keyword_only(tmp_path: Path) -> None:
    corpus = write_json_corpus(tmp_path / "corpus" / "long_context.json", n_docs=12)
    env = {k: os.environ[k] for k in ("HF_HOME", "HF_HUB_CACHE", "TMPDIR", "LANG", "LC_ALL", "PATH")
           if k in os.environ}
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
                "RAGMEM_FAULT_PAUSE_AFTER_TIER": "30"})
    params = StdioServerParameters(command=sys.executable, env=env, cwd=str(Path(__file__).resolve().parents[1]),
                                   args=["-m", "service.mcp_server", "--data-dir", str(tmp_path / "data"),
                                         "--corpus-root", str(corpus.parent)])

    async def first_answer() -> str:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            with anyio.fail_after(180):
                result = await session.call_tool("rag_search", {"query": QUERY, "json_path": str(corpus),
                                                                **AGENT_ARGS})
            return "".join(block.text for block in result.content if getattr(block, "type", "") == "text")

    text = anyio.run(first_answer)
    assert PARTIAL_NOTE in text and "keyword-only" in text, text[:800]
    assert text.count('Citation: [long_context: "') == 10
