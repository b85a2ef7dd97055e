from __future__ import annotations

import json
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from indexing.build_format import read_manifest
from indexing.builder import build_collection
from indexing.collection import open_collection
from eval.generated_corpus import write_json_corpus
from eval.local_server import post_until_ready, running_server

CITATION = re.compile(r'^\[long_context: "(.{0,50})", chunk (\d+)\]$')


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    from indexing.settings import Settings

    settings = Settings(data_dir=base / "data")
    corpora = base / "corpora"
    write_json_corpus(corpora / "task1" / "long_context.json", n_docs=14, seed=1)
    (corpora / "bad").mkdir(parents=True)
    (corpora / "bad" / "broken.json").write_text('[{"title": "x", "content": "y"},, ]')
    build_collection(write_json_corpus(base / "named.json", n_docs=8, seed=2), "named", settings,
                     show_progress=False)
    os.symlink("/etc", corpora / "escape")
    with running_server(settings.data_dir, [corpora]) as url:
        with httpx.Client(base_url=url, timeout=120) as client:
            yield {"client": client, "settings": settings, "corpora": corpora, "base": base}


def seed_call(path) -> dict:
    return {"query": "大熊猫 吃 竹子 卧龙 保护区", "json_path": str(path), "top_k": 10, "diverse": True,
            "min_docs": 5, "max_per_doc": 2}


def test_seed_style_call_over_http(server):
    client, corpus = server["client"], server["corpora"] / "task1" / "long_context.json"
    response = post_until_ready(client, "/rag_search", seed_call(corpus))
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert len(results) == 10
    per_doc = Counter(r["doc_index"] for r in results)
    assert len(per_doc) >= 5 and max(per_doc.values()) <= 2
    assert [r["rank"] for r in results] == list(range(1, 11))
    assert all(0.0 <= r["score"] <= 1.0 for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    collection = open_collection(server["settings"].data_dir, body["collection"])
    source = json.loads(corpus.read_text())
    for r in results:
        match = CITATION.match(r["citation"])
        assert match and match.group(1) == r["title"][:50] and int(match.group(2)) == r["chunk_index"]
        assert r["title"] == source[r["doc_index"]]["title"]
        doc_row = next(d["doc_row"] for d in collection.store.documents() if d["doc_id"] == r["doc_id"])
        assert collection.store.document_text(doc_row)[r["start_char"] : r["end_char"]] == r["content"]
        assert {"bm25", "dense", "bm25_z", "dense_z", "bm25_weight"} <= set(r["scores"])
    assert "大熊猫" in results[0]["title"]

    text = client.post("/rag_search", json={**seed_call(corpus), "format": "text"})
    assert text.status_code == 200 and text.text.startswith("=== RAG Search Results ===")
    assert text.text.count('Citation: [long_context: "') == 10


def test_modes_filters_and_include_content(server):
    client = server["client"]
    for mode in ("bm25", "dense", "hybrid", "rrf", "hybrid-maxnorm"):
        response = client.post("/rag_search", json={"query": "volcano magma", "collection": "named", "mode": mode,
                                                    "top_k": 3, "diverse": False})
        assert response.status_code == 200, response.text
        assert response.json()["mode"] == mode and len(response.json()["results"]) == 3
    filtered = client.post("/rag_search", json={"query": "volcano magma", "collection": "named",
                                                "filters": {"title_contains": "Jazz"}, "include_content": False})
    results = filtered.json()["results"]
    assert results and all("Jazz" in r["title"] and r["content"] is None for r in results)
    doc_id = results[0]["doc_id"]
    only = client.post("/rag_search", json={"query": "anything at all", "collection": "named",
                                            "filters": {"doc_ids": [doc_id]}})
    assert {r["doc_id"] for r in only.json()["results"]} == {doc_id}


def test_get_context_respects_budget_and_offsets(server):
    client = server["client"]
    response = client.post("/rag_get_context", json={"query": "jazz blues ragtime", "collection": "named",
                                                     "max_tokens": 300})
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0 < body["total_tokens"] <= 300 and body["blocks"]
    collection = open_collection(server["settings"].data_dir, "named")
    embedder = collection.embedder
    assert sum(embedder.count_tokens(b["text"]) for b in body["blocks"]) == body["total_tokens"]
    for block in body["blocks"]:
        doc_row = next(d["doc_row"] for d in collection.store.documents() if d["doc_id"] == block["doc_id"])
        assert collection.store.document_text(doc_row)[block["start_char"] : block["end_char"]] == block["text"]
    # One hit and a large budget: room left for neighbouring chunks (with ten hits on this small
    # corpus, every neighbour may already be a hit of its own).
    bigger = client.post("/rag_get_context", json={"query": "jazz blues ragtime", "collection": "named",
                                                   "max_tokens": 3000, "top_k": 1, "diverse": False}).json()
    assert bigger["total_tokens"] > body["total_tokens"]
    assert any(b["last_chunk"] > b["first_chunk"] for b in bigger["blocks"]), "neighbours should be added"
    text = client.post("/rag_get_context", json={"query": "jazz", "collection": "named", "format": "text"})
    assert text.text.startswith("=== RAG Context ===")


@pytest.mark.parametrize("body,status", [
    ({"query": "x", "json_path": "/etc/passwd"}, 403),
    ({"query": "x", "json_path": "{corpora}/task1/../../../../etc/passwd"}, 403),
    ({"query": "x", "json_path": "{corpora}/escape/passwd"}, 403),
    ({"query": "x", "json_path": "{corpora}/missing.json"}, 404),
    ({"query": "x", "json_path": "{corpora}/" + "0" * 1000 + ".json"}, 400),
    ({"query": "x", "collection": "nope"}, 404),
    ({"query": "x", "collection": "../etc"}, 404),
    ({"query": "", "collection": "named"}, 422),
    ({"query": "   \n\t ", "collection": "named"}, 422),
    ({"query": "x" * 4001, "collection": "named"}, 422),
    ({"query": "x", "collection": "named", "top_k": 0}, 422),
    ({"query": "x", "collection": "named", "top_k": 101}, 422),
    ({"query": "x", "collection": "named", "mode": "magic"}, 422),
    ({"query": "x"}, 422),
    ({"query": "x", "collection": "named", "json_path": "/tmp/a.json"}, 422),
])
def test_error_codes(server, body, status):
    body = {k: (v.format(corpora=server["corpora"]) if isinstance(v, str) else v) for k, v in body.items()}
    response = server["client"].post("/rag_search", json=body)
    assert response.status_code == status, response.text
    assert response.json()["detail"]


def test_invalid_corpus_is_400_with_reason(server):
    response = post_until_ready(server["client"], "/rag_search",
                                {"query": "x", "json_path": str(server["corpora"] / "bad" / "broken.json")})
    assert response.status_code == 400
    assert "broken.json:1:" in response.json()["detail"] and "invalid JSON" in response.json()["detail"]


def test_concurrent_first_requests_share_one_build(server):
    corpus = write_json_corpus(server["corpora"] / "task2" / "long_context.json", n_docs=10, seed=5)
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: post_until_ready(server["client"], "/rag_search", seed_call(corpus)),
                                  range(6)))
    assert all(r.status_code == 200 for r in responses)
    name = responses[0].json()["collection"]
    assert len({r.json()["build_id"] for r in responses}) == 1
    # One build (its tiers are build directories of their own): one corpus fingerprint, one complete build.
    manifests = [read_manifest(p) for p in (server["settings"].data_dir / name / "builds").iterdir()]
    assert len({m.corpus.fingerprint for m in manifests}) == 1 and sum(m.complete for m in manifests) == 1


def test_reindex_is_picked_up_atomically(server):
    client, settings = server["client"], server["settings"]
    before = client.post("/rag_search", json={"query": "tea", "collection": "named"}).json()["build_id"]
    build_collection(write_json_corpus(server["base"] / "named2.json", n_docs=9, seed=4), "named", settings,
                     show_progress=False)
    after = client.post("/rag_search", json={"query": "tea", "collection": "named"}).json()
    assert after["build_id"] != before
    stats = client.get("/collections/named").json()
    assert stats["status"] == "ready" and stats["documents"] == 9 and stats["build_id"] == after["build_id"]


def test_collections_health_metrics(server):
    client = server["client"]
    assert client.get("/healthz").json()["status"] == "ok"
    names = [c["name"] for c in client.get("/collections").json()["collections"]]
    assert "named" in names
    stats = client.get("/collections/named").json()
    assert stats["embedder"]["name"] and stats["chunks"] > 0 and stats["document_list"]
    assert client.get("/collections/unknown").status_code == 404
    assert client.post("/rag_search", json={"query": "tea", "collection": "named", "mode": "bm25"}).status_code == 200
    metrics = client.get("/metrics").text
    assert 'ragmem_requests_total{endpoint="/collections/{name}",status="404"}' in metrics
    assert 'ragmem_collection_chunks{collection="named"}' in metrics
    assert re.search(r'ragmem_request_seconds_count\{endpoint="/rag_search",mode="bm25"\} [1-9]', metrics)


def test_graph_modes_and_cited_subgraph(server):
    client = server["client"]
    body = {"query": "Jazz New Orleans blues ragtime", "collection": "named", "top_k": 5}
    for mode in ("graph", "hybrid+graph"):
        response = client.post("/rag_search", json={**body, "mode": mode})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results and all(0.0 <= r["score"] <= 1.0 for r in results)
        assert "graph" in results[0]["scores"]
    data = client.post("/rag_search", json={**body, "include_subgraph": True}).json()
    subgraph = data["subgraph"]
    assert subgraph["triples"] and len(subgraph["triples"]) <= 30
    for triple in subgraph["triples"]:
        assert triple["head"] and triple["relation"] and triple["tail"] and triple["citations"]
        assert all(CITATION.match(c) for c in triple["citations"])
    text = client.post("/rag_search", json={**body, "include_subgraph": True, "format": "text"}).text
    assert "=== Evidence Graph ===" in text and " --" in text
    assert client.post("/rag_search", json=body).json()["subgraph"] is None
