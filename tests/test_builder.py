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
    assert manifest["embedder"]["dimension"] == 384 and manifest["chunking"]["chunk_tokens"] == 256
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


def test_failed_build_keeps_previous_collection(tmp_path, settings, monkeypatch):
    corpus = write_json_corpus(tmp_path / "c.json", n_docs=4)
    good = build_collection(corpus, "c", settings, show_progress=False)
    write_json_corpus(corpus, n_docs=6, seed=3)

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("indexing.builder.VectorIndex.build", explode)
    with pytest.raises(RuntimeError, match="disk full"):
        build_collection(corpus, "c", settings, show_progress=False)
    assert publish.current_build_dir(settings.data_dir, "c") == good.build_dir
    assert not list((settings.data_dir / "c").glob(".staging-*"))
    assert open_collection(settings.data_dir, "c").store.n_documents == 4


def _ragmem(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env={**os.environ, **(env or {})},
                            cwd=Path(__file__).resolve().parents[1], **kwargs)


def test_sigkill_mid_embedding_leaves_published_collection_intact(tmp_path, settings):
    small = write_json_corpus(tmp_path / "small.json", n_docs=3)
    good = build_collection(small, "live", settings, show_progress=False)
    before = (settings.data_dir / "live" / "CURRENT").read_text()

    big = write_json_corpus(tmp_path / "big.json", n_docs=80, seed=7, paragraphs=12)
    proc = _ragmem("index", str(big), "--collection", "live", "--data-dir", str(settings.data_dir),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = settings.data_dir / "live"
    deadline = time.time() + 120
    # BM25 files are written right before embedding starts: wait for them, then kill mid-embedding.
    while time.time() < deadline and not list(root.glob(".staging-*/bm25/params.index.json")):
        assert proc.poll() is None, "build finished before it could be killed; make the corpus bigger"
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)

    assert (root / "CURRENT").read_text() == before
    collection = open_collection(settings.data_dir, "live")
    assert collection.build_dir == good.build_dir and collection.store.n_documents == 3
    rows, _ = collection.lexical.top_k(collection.analyzer.tokenize("量子计算"), 1)
    assert len(rows) == 1
    # The next build cleans the dead builder's staging directory and publishes.
    rebuilt = build_collection(small, "live", settings, force=True, show_progress=False)
    assert not list(root.glob(".staging-*")) and rebuilt.build_dir != good.build_dir


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
