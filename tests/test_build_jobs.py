"""On-demand json_path builds under attack: nothing stalls the pool, failed builds leave nothing,
quotas and the build key hold, empty corpora are refused, pruned builds take their journals along."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from indexing.build_format import LIVE_DIR
from indexing.builder import build_collection
from indexing.documents import CorpusError
from indexing.live import open_live
from indexing.loaders import document_from_record
from indexing.settings import Settings
from service.collections.errors import BadCorpus, Forbidden, QuotaExceeded, Unauthorized
from service.collections.registry import Building, CollectionRegistry
from eval.generated_corpus import make_documents, write_json_corpus


def _entries(data_dir: Path) -> set[str]:
    return {p.name for p in data_dir.iterdir() if p.name != ".cache"} if data_dir.exists() else set()


def _wait_ready(registry: CollectionRegistry, path: Path, timeout: float = 240):
    deadline = time.time() + timeout
    while True:
        try:
            return registry.collection_for_path(str(path), wait_seconds=2)
        except Building:
            assert time.time() < deadline, f"{path} not built in {timeout}s"


@pytest.fixture
def corpora(tmp_path) -> Path:
    root = tmp_path / "corpora"
    write_json_corpus(root / "normal" / "long_context.json", n_docs=6, seed=3)
    return root


def _registry(tmp_path: Path, corpora: Path, **overrides) -> CollectionRegistry:
    return CollectionRegistry(Settings(data_dir=tmp_path / "data", corpus_roots=[corpora], graph=False, **overrides))


def test_fifo_and_a_huge_corpus_never_stall_a_normal_build(tmp_path, corpora):
    hostile = corpora / "hostile"
    hostile.mkdir()
    os.mkfifo(hostile / "pipe.json")
    (hostile / "note.md").write_text("# Okapi\n\nThe okapi lives in the Ituri rainforest.\n")
    huge = corpora / "huge.json"
    huge.write_text(json.dumps([{"title": f"t{i}", "content": f"word{i} filler text"} for i in range(200_000)]))
    registry = _registry(tmp_path, corpora, max_corpus_documents=300_000)
    try:
        with pytest.raises(Building) as building:
            registry.collection_for_path(str(huge), wait_seconds=0.1)
        huge_name = building.value.extra["collection"]
        started = time.time()
        normal = _wait_ready(registry, corpora / "normal" / "long_context.json")
        assert normal.store.n_documents == 6
        hostile_collection = _wait_ready(registry, hostile)
        assert time.time() - started < 200
        assert hostile_collection.store.n_documents == 1
        assert any("FIFO" in s.reason for s in hostile_collection.store.skipped())
        assert registry.builds.job_for_name(huge_name).running, "the huge build should still be running"
        assert registry.cancel_build(huge_name)
        registry.builds.job_for_name(huge_name).future.result(timeout=120)
        assert "cancelled" in registry.builds.job_for_name(huge_name).error
        assert huge_name not in _entries(tmp_path / "data"), "a cancelled first build must leave nothing"
    finally:
        registry.close()


def test_wall_clock_limit_stops_a_build_and_leaves_nothing(tmp_path, corpora):
    registry = _registry(tmp_path, corpora, build_timeout_seconds=0.01)
    try:
        before = _entries(tmp_path / "data")
        with pytest.raises(BadCorpus, match="wall-clock limit"):
            registry.collection_for_path(str(corpora / "normal" / "long_context.json"), wait_seconds=120)
        assert _entries(tmp_path / "data") == before
    finally:
        registry.close()


def test_failed_build_leaves_nothing_and_data_root_is_no_source(tmp_path, corpora):
    (corpora / "broken.json").write_text('[{"title": "x", "content": "y"},, ]')
    (corpora / "empty.json").write_text("[]")
    registry = _registry(tmp_path, corpora)
    try:
        for bad, message in (("broken.json", "invalid JSON"), ("empty.json", "no documents")):
            before = _entries(tmp_path / "data")
            with pytest.raises(BadCorpus, match=message):
                registry.collection_for_path(str(corpora / bad), wait_seconds=120)
            assert _entries(tmp_path / "data") == before, f"{bad} left something in the data root"
        name = _wait_ready(registry, corpora / "normal" / "long_context.json").name
        for inside in (tmp_path / "data" / name / "CURRENT", tmp_path / "data" / name / ".lock"):
            with pytest.raises(Forbidden, match="data root"):
                registry.collection_for_path(str(inside))
    finally:
        registry.close()


def test_data_root_inside_a_corpus_root_is_still_refused(tmp_path):
    root = tmp_path / "srv"
    registry = CollectionRegistry(Settings(data_dir=root / "data", corpus_roots=[root]))
    try:
        build_collection(write_json_corpus(root / "data" / "planted.json"), "x", registry.settings,
                         show_progress=False)
        with pytest.raises(Forbidden, match="data root"):
            registry.collection_for_path(str(root / "data" / "planted.json"))
    finally:
        registry.close()


def test_quotas_and_build_key(tmp_path, corpora):
    for i in range(2):
        write_json_corpus(corpora / f"extra{i}.json", n_docs=3, seed=10 + i)
    registry = _registry(tmp_path, corpora, max_path_collections=2)
    try:
        with pytest.raises(Unauthorized, match="RAGMEM_PATH_BUILD_AUTH"):
            registry.collection_for_path(str(corpora / "extra0.json"), may_build=False)
        _wait_ready(registry, corpora / "extra0.json")
        _wait_ready(registry, corpora / "extra1.json")
        assert registry.collection_for_path(str(corpora / "extra0.json"), may_build=False)  # built: no key needed
        with pytest.raises(QuotaExceeded, match="RAGMEM_MAX_PATH_COLLECTIONS"):
            registry.collection_for_path(str(corpora / "normal" / "long_context.json"))
        assert sorted(registry.path_collections()) == sorted(registry.names())
    finally:
        registry.close()
    small = CollectionRegistry(Settings(data_dir=tmp_path / "data2", corpus_roots=[corpora],
                                        max_path_collections_bytes=10_000))
    try:
        with pytest.raises(QuotaExceeded, match="RAGMEM_MAX_PATH_COLLECTIONS_BYTES"):
            small.collection_for_path(str(corpora / "normal" / "long_context.json"))
        assert _entries(tmp_path / "data2") == set()
    finally:
        small.close()


def test_empty_corpus_is_a_clear_error_from_the_cli_path_too(tmp_path, settings):
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(CorpusError, match="no documents"):
        build_collection(tmp_path / "empty.json", "empty", settings, show_progress=False)
    (tmp_path / "blank.json").write_text('[{"title": "only a title"}]')
    with pytest.raises(CorpusError, match="no indexable document .*no text"):
        build_collection(tmp_path / "blank.json", "blank", settings, show_progress=False)
    assert _entries(settings.data_dir) == set()


def test_compacting_to_empty_and_pruned_journals(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", graph=False)
    corpus = write_json_corpus(tmp_path / "c.json", n_docs=3, seed=4)
    build_collection(corpus, "c", settings, show_progress=False)
    live = open_live(settings.data_dir, "c", settings)
    live.write([document_from_record({"doc_id": "n1", "title": "Note", "content": "Okapi notes."}, 0, "t")], [])
    first_build = live.build_dir.name
    journal_files = list((settings.data_dir / "c" / LIVE_DIR).glob(f"{first_build}.sqlite*"))
    assert journal_files
    doc_ids = [d["doc_id"] for d in live.snapshot().store.documents()]
    live.write([], doc_ids)
    info = live.compact()
    assert info["documents"] == 0 and info["chunks"] == 0
    compacted = open_live(settings.data_dir, "c", settings).snapshot()
    assert compacted.store.n_chunks == 0
    from service.engine import SearchParams, search

    assert search(compacted, "okapi", SearchParams(mode="hybrid")).hits == []
    corpus.write_text(json.dumps(make_documents(2, seed=9)))
    build_collection(corpus, "c", settings, show_progress=False)  # prunes the first build (keep_builds=2)
    assert not (settings.data_dir / "c" / "builds" / first_build).exists()
    assert not [f for f in journal_files if f.exists()], "a pruned build's journal must go with it"
