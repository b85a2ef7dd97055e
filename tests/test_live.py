"""Live collections in-process: add, replace, delete in every mode, compaction equals a fresh build."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexing.builder import build_collection
from indexing.documents import Document
from indexing.live import LiveCollection, open_live
from indexing.loaders import document_from_record
from service.engine import MODES, SearchParams, search
from eval.generated_corpus import make_documents, write_json_corpus

NEW_DOC = {"doc_id": "okapi-note", "title": "Okapi field notes",
           "content": "The okapi is a giraffid native to the Ituri rainforest. Okapi stripes camouflage calves. "
                      "Researchers in Epulu track okapi with camera traps."}


def _doc(record: dict, index: int = 0) -> Document:
    doc = document_from_record(record, index, "test")
    assert isinstance(doc, Document), doc
    return doc


@pytest.fixture
def live(tmp_path, settings) -> LiveCollection:
    corpus = write_json_corpus(tmp_path / "corpus.json", n_docs=10, seed=5)
    build_collection(corpus, "live", settings, show_progress=False)
    return open_live(settings.data_dir, "live", settings)


def _titles(collection, query: str, mode: str) -> list[str]:
    result = search(collection, query, SearchParams(mode=mode, top_k=10, diverse=False))
    return [h.record.title for h in result.hits]


def test_add_then_every_mode_finds_it_and_delete_removes_it_everywhere(live):
    live.write([_doc(NEW_DOC)], [])
    snapshot = live.snapshot()
    assert snapshot.build_id.endswith("+1")
    for mode in MODES:
        assert "Okapi field notes" in _titles(snapshot, "okapi in the Ituri rainforest", mode), mode
    graph = snapshot.graph
    epulu = graph.entity_id("epulu")  # named only in the added document
    assert epulu is not None and len(graph.entity_chunks[epulu]) > 0
    assert any("Epulu" in graph.triple_text(t) for t in range(graph.n_triples) if graph.triple_alive[t])

    report = live.write([], ["okapi-note"])
    assert report.deleted == ["okapi-note"] and report.not_found == []
    after = live.snapshot()
    for mode in MODES:
        assert "Okapi field notes" not in _titles(after, "okapi in the Ituri rainforest", mode), mode
    # provenance followed the deletion: the entity and every triple about okapis are dead
    gone = after.graph.entity_id("epulu")
    assert gone is None or len(after.graph.entity_chunks[gone]) == 0
    assert not any("Epulu" in after.graph.triple_text(t) for t in range(after.graph.n_triples)
                   if after.graph.triple_alive is None or after.graph.triple_alive[t])
    assert after.graph.describe()["entities"] < graph.describe()["entities"]


def test_deleting_a_base_document_kills_its_graph_provenance(live):
    graph = live.base.graph
    # an entity named by exactly one document: deleting that document must remove it
    doc_of = live.base.store.chunk_doc_rows
    single = next(e for e in range(graph.n_entities) if len(set(doc_of[graph.entity_chunks[e]].tolist())) == 1)
    doc_row = int(doc_of[graph.entity_chunks[single][0]])
    doc_id = next(d["doc_id"] for d in live.base.store.documents() if d["doc_row"] == doc_row)
    live.write([], [doc_id])
    after = live.snapshot().graph
    assert len(after.entity_chunks[single]) == 0
    assert ("e", single) not in after.graph()
    for t in range(after.n_triples):
        if single in (after.triple_head[t], after.triple_tail[t]):
            assert not after.triple_alive[t]
    assert all(single not in (i, j) for i, j, _ in after.synonyms)


def test_delete_base_document_and_replace(live):
    base_docs = live.base.store.documents()
    victim = base_docs[3]
    query = victim["title"]
    assert victim["title"] in _titles(live.snapshot(), query, "bm25")
    live.write([], [victim["doc_id"]])
    snapshot = live.snapshot()
    for mode in MODES:
        hits = search(snapshot, query, SearchParams(mode=mode, top_k=20, diverse=False)).hits
        assert victim["doc_id"] not in {h.record.doc_id for h in hits}, mode
    assert snapshot.store.n_documents == len(base_docs) - 1
    assert live.write([], [victim["doc_id"]]).not_found == [victim["doc_id"]]

    live.write([_doc(NEW_DOC)], [])
    replaced = dict(NEW_DOC, content="Pangolins are scaly mammals that roll into a ball. Pangolin scales are keratin.")
    report = live.write([_doc(replaced)], [])
    assert report.added[0]["replaced"] is True
    snapshot = live.snapshot()
    for mode in MODES:
        texts = [h.record.text for h in search(snapshot, "Ituri rainforest camera traps",
                                               SearchParams(mode=mode, top_k=20, diverse=False)).hits]
        assert not any("Ituri" in t for t in texts), mode
    assert "Okapi field notes" in _titles(snapshot, "pangolin scales keratin", "bm25")
    assert sum(d["doc_id"] == "okapi-note" for d in snapshot.store.documents()) == 1


def test_second_process_view_sees_writes(live, settings):
    other = open_live(settings.data_dir, "live", settings)  # another worker's view of the same journal
    live.write([_doc(NEW_DOC)], [])
    assert "Okapi field notes" in _titles(other.snapshot(), "okapi Ituri", "hybrid")
    live.write([], ["okapi-note"])
    assert "Okapi field notes" not in _titles(other.snapshot(), "okapi Ituri", "hybrid")


def test_compaction_equals_fresh_build(live, settings, tmp_path):
    base_docs = live.base.store.documents()
    extra = [dict(r, doc_id=f"extra-{i}") for i, r in enumerate(make_documents(4, seed=9))]
    live.write([_doc(r, i) for i, r in enumerate(extra)] + [_doc(NEW_DOC)], [base_docs[0]["doc_id"]])
    live.write([], ["extra-2"])
    summary = live.compact()
    compacted = open_live(settings.data_dir, "live", settings).snapshot()
    assert compacted.live_seq == 0 and compacted.build_dir.name == summary["build_id"]

    # the same documents, in the same order, as a corpus file built from scratch
    records = [{"doc_id": d.doc_id, "title": d.title, "content": d.text, "url": d.url}
               for d in compacted.store.full_documents()]
    fresh_corpus = tmp_path / "fresh.json"
    fresh_corpus.write_text(json.dumps(records, ensure_ascii=False))
    build_collection(fresh_corpus, "fresh", settings, show_progress=False)
    fresh = open_live(settings.data_dir, "fresh", settings).snapshot()
    assert compacted.store.n_chunks == fresh.store.n_chunks
    for query in ("okapi Ituri rainforest", "jazz New Orleans", "深度学习 模型"):
        a = compacted.lexical.scores(compacted.analyzer.tokenize(query))
        b = fresh.lexical.scores(fresh.analyzer.tokenize(query))
        np.testing.assert_array_equal(a, b)
        for mode in ("bm25", "hybrid", "hybrid+graph"):
            ra = search(compacted, query, SearchParams(mode=mode, diverse=False))
            rb = search(fresh, query, SearchParams(mode=mode, diverse=False))
            assert [(h.record.chunk_id, h.score) for h in ra.hits] == [(h.record.chunk_id, h.score) for h in rb.hits]
