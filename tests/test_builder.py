from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexing import publish
from indexing.builder import build_collection
from indexing.collection import open_collection
from eval.generated_corpus import make_documents, write_json_corpus


def test_build_publishes_consistent_collection(tmp_path, settings):
    corpus = write_json_corpus(tmp_path / "corpus.json", n_docs=10)
    summary = build_collection(corpus, "demo", settings, show_progress=False)
    assert not summary.unchanged and summary.documents == 10 and summary.chunks >= 10
    collection = open_collection(settings.data_dir, "demo")
    manifest = collection.manifest
    for key in ("schema_version", "embedder", "chunking", "analyzer", "counts", "corpus", "stage_seconds", "faiss"):
        assert key in manifest
    assert manifest["embedder"]["dimension"] == 384 + 512  # e5 joined by USE-multilingual-v3 (the default)
    assert manifest["chunking"]["chunk_tokens"] == 256
    assert manifest["faiss"]["type"] == "flat"
    assert collection.dense.size == collection.store.n_chunks == collection.lexical.n_docs == summary.chunks

    records = collection.store.chunks(list(range(collection.store.n_chunks)))
    for record in records:
        doc_text = collection.store.document_text(record.doc_row)
        assert doc_text[record.start_char : record.end_char] == record.text
        assert record.chunk_id == f"{record.doc_id}:{record.chunk_index}"
    source = json.loads(corpus.read_text())
    assert {r.doc_index for r in records} == set(range(len(source)))

    # Both legs find the document about pandas for a Chinese query and the volcano one for English.
    rows, _ = collection.lexical.top_k(collection.analyzer.tokenize("大熊猫 竹子 卧龙"), 3)
    assert "大熊猫" in collection.store.chunks([int(rows[0])])[0].title
    query = collection.embedder.encode(["magma erupting from a volcano vent"])
    dense_rows, scores = collection.dense.search(query, 3)
    assert "Volcanoes" in collection.store.chunks([int(dense_rows[0][0])])[0].title
    assert scores[0][0] > scores[0][-1]

    # The graph's triples carry the dense vectors of the chunks they come from (nothing re-embedded).
    graph = collection.graph
    assert graph.n_triples and graph.limits.triple_vectors == "chunk"
    owners = np.asarray(graph.triple_owner)
    np.testing.assert_allclose(graph.triple_vectors, collection.dense.reconstruct(owners), atol=1e-5)


def test_unchanged_corpus_is_a_noop_and_changes_rebuild(tmp_path, settings):
    corpus = write_json_corpus(tmp_path / "c.json", n_docs=4)
    first = build_collection(corpus, "c", settings, show_progress=False)
    again = build_collection(corpus, "c", settings, show_progress=False)
    assert again.unchanged and again.build_dir == first.build_dir
    write_json_corpus(corpus, n_docs=5)
    changed = build_collection(corpus, "c", settings, show_progress=False)
    assert not changed.unchanged and changed.build_dir != first.build_dir
    assert changed.documents == 5 and changed.embedded < changed.chunks  # the cache served the old four
    assert publish.current_build_dir(settings.data_dir, "c") == changed.build_dir


def test_bad_documents_are_skipped_and_listed(tmp_path, settings):
    docs = make_documents(3)
    docs.insert(1, {"title": "empty", "page_body": "   "})
    docs.insert(2, "not an object")
    corpus = tmp_path / "bad.json"
    corpus.write_text(json.dumps(docs, ensure_ascii=False))
    summary = build_collection(corpus, None, settings, show_progress=False)
    assert summary.collection == "bad" and summary.documents == 3
    assert {s.doc_index for s in summary.skipped} == {1, 2}
    report = json.loads((summary.build_dir / "ingest_report.json").read_text())
    assert len(report["skipped"]) == 2 and all(s["reason"] for s in report["skipped"])
    indices = {r.doc_index for r in open_collection(settings.data_dir, "bad").store.chunks(list(range(50)))}
    assert indices == {0, 3, 4}  # doc_index keeps the source position


@pytest.mark.parametrize("tiered", [True, False])
def test_failed_tier_never_replaces_a_good_one(tmp_path, settings, monkeypatch, tiered):
    """Tiered, the new corpus' BM25 tier stays serving when its dense tier fails; untiered, the
    previous build does. Either way nothing half-written is left."""
    settings.tiered_publish = tiered
    corpus = write_json_corpus(tmp_path / "c.json", n_docs=4)
    good = build_collection(corpus, "c", settings, show_progress=False)
    write_json_corpus(corpus, n_docs=6, seed=3)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("indexing.builder.VectorIndex.build", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_collection(corpus, "c", settings, show_progress=False)
    assert not list((settings.data_dir / "c").glob(".staging-*"))
    collection = open_collection(settings.data_dir, "c")
    if not tiered:
        assert collection.build_dir == good.build_dir and collection.store.n_documents == 4
        return
    assert collection.build_dir != good.build_dir and collection.store.n_documents == 6
    assert collection.legs == ("bm25",) and collection.pending == ("dense", "graph") and collection.dense is None
    rows, _ = collection.lexical.top_k(collection.analyzer.tokenize("大熊猫 竹子"), 1)
    assert len(rows) == 1
    # The same corpus again is not "unchanged": the incomplete build is built again, to the end.
    monkeypatch.undo()
    again = build_collection(corpus, "c", settings, show_progress=False)
    assert not again.unchanged and list(again.tier_seconds) == ["bm25", "dense", "graph"]
    assert open_collection(settings.data_dir, "c").legs == ("bm25", "dense", "graph")


def _ragmem(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env={**os.environ, **(env or {})},
                            cwd=Path(__file__).resolve().parents[1], **kwargs)


def _current_legs(data_dir: Path, name: str) -> tuple[str, ...]:
    current = publish.current_build_dir(data_dir, name)
    return open_collection(data_dir, name).legs if current is not None else ()


def _kill_when(proc: subprocess.Popen, root: Path, ready: "callable") -> None:
    """SIGKILL ``proc`` once ``ready()`` holds and a next tier is being written (a staging directory)."""
    deadline = time.time() + 180
    while time.time() < deadline and not (ready() and list(root.glob(".staging-*"))):
        assert proc.poll() is None, "build finished before it could be killed; make the corpus bigger"
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_sigkill_between_tiers_leaves_the_last_published_tier_serving(tmp_path, settings):
    """kill -9 while the dense tier is written, then while the graph tier is: each time the tier
    published last serves (BM25 only, then BM25 + dense), and the next build completes the rest."""
    small = write_json_corpus(tmp_path / "small.json", n_docs=3)
    build_collection(small, "live", settings, show_progress=False)
    big = write_json_corpus(tmp_path / "big.json", n_docs=9, seed=7, paragraphs=3)
    root = settings.data_dir / "live"
    index = ("index", str(big), "--collection", "live", "--data-dir", str(settings.data_dir))
    # The builder waits 2 s after each tier with the next tier's staging directory open: a kill
    # window that does not depend on how fast this machine embeds.
    pause = {"RAGMEM_FAULT_PAUSE_AFTER_TIER": "2"}

    proc = _ragmem(*index, env=pause, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, root, lambda: _current_legs(settings.data_dir, "live") == ("bm25",))
    collection = open_collection(settings.data_dir, "live")
    assert collection.store.n_documents == 9 and collection.dense is None
    assert collection.pending == ("dense", "graph")
    rows, _ = collection.lexical.top_k(collection.analyzer.tokenize("量子计算"), 1)
    assert len(rows) == 1

    proc = _ragmem(*index, env=pause, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(proc, root, lambda: _current_legs(settings.data_dir, "live") == ("bm25", "dense"))
    collection = open_collection(settings.data_dir, "live")
    assert collection.pending == ("graph",) and collection.dense.size == collection.store.n_chunks
    assert not collection.has_graph

    finished = build_collection(big, "live", settings, show_progress=False)
    assert not finished.unchanged and finished.embedded == 0  # every vector came from the cache
    assert not list(root.glob(".staging-*")) and _current_legs(settings.data_dir, "live") == ("bm25", "dense", "graph")


def test_cli_reports_invalid_json_with_position(tmp_path):
    corpus = tmp_path / "broken.json"
    corpus.write_text('[\n  {"title": "a", "content": "b"},\n  {"title": "c" "content": "d"}\n]\n')
    proc = _ragmem("index", str(corpus), "--data-dir", str(tmp_path / "data"), stdout=subprocess.PIPE,
                   stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert "broken.json:3:" in err and "invalid JSON" in err
    assert not (tmp_path / "data" / "broken" / "CURRENT").exists()


def test_hnsw_above_threshold(tmp_path, settings):
    settings.hnsw_threshold = 5
    corpus = write_json_corpus(tmp_path / "h.json", n_docs=8)
    build_collection(corpus, "h", settings, show_progress=False)
    collection = open_collection(settings.data_dir, "h")
    assert collection.manifest["faiss"]["type"] == "hnsw"
    query = collection.embedder.encode(["coral polyps calcium carbonate"])
    rows, _ = collection.dense.search(query, 1)
    assert "Coral" in collection.store.chunks([int(rows[0][0])])[0].title
    assert np.isfinite(collection.dense.reconstruct(np.array([0]))).all()


def test_a_manifest_naming_a_missing_graph_answers_without_it(tmp_path, settings):
    """A build directory assembled by hand (benchmarks write one) whose manifest names a graph it
    lacks: the default mode answers as hybrid instead of failing on the graph leg."""
    import shutil

    from indexing.build_format import GRAPH_DIR
    from service.engine import SearchParams, search

    build_collection(write_json_corpus(tmp_path / "corpus.json", n_docs=6), "nograph", settings,
                     show_progress=False)
    collection = open_collection(settings.data_dir, "nograph")
    shutil.rmtree(collection.build_dir / GRAPH_DIR)
    reopened = open_collection(settings.data_dir, "nograph")
    assert "graph" not in reopened.legs and not reopened.has_graph
    result = search(reopened, "volcano magma", SearchParams())
    assert result.mode == "hybrid" and result.hits
