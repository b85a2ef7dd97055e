"""Sharded builds read as one index: the same chunks and scores as the unsharded build, in every mode.

These run the shards in this process (``LocalTasks``); ``tests/test_cluster.py`` runs the same
builds as Ray tasks and serves them through Ray Serve on a local multi-node cluster.
"""

from __future__ import annotations

import numpy as np
import pytest

from eval.generated_corpus import write_json_corpus
from indexing import shard_tasks
from indexing.analyzer import Analyzer
from indexing.builder import build_collection
from indexing.collection import open_collection
from indexing.documents import Document
from indexing.lexical_index import CorpusStats, LexicalIndex
from indexing.shard_layout import ShardLayout, plan_shards
from service.collections.errors import Unprocessable
from service.collections.registry import CollectionRegistry
from service.engine import MODES, SearchFilters, SearchParams, get_context, search

QUERIES = ["quantum computing chip", "量子 芯片 发展", "history of the river valley", "market growth 2020",
           "北京 大学 研究", "a question whose words are nowhere zzqx"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One corpus built unsharded and in 4 shards in the same data root (so both read the same cached
    chunk vectors: the int8 embedder's vectors depend slightly on the batch a text was embedded in)."""
    from indexing.settings import Settings

    tmp = tmp_path_factory.mktemp("sharding")
    corpus = write_json_corpus(tmp / "c.json", n_docs=16, seed=4, paragraphs=4)
    data = tmp / "data"
    build_collection(corpus, "one", Settings(data_dir=data), show_progress=False)
    original = shard_tasks.shard_tasks
    shard_tasks.shard_tasks = lambda address: shard_tasks.LocalTasks()
    try:
        summary = build_collection(corpus, "four", Settings(data_dir=data, shards=4), show_progress=False)
    finally:
        shard_tasks.shard_tasks = original
    return data, summary


def _ids_and_scores(result):
    return [h.record.chunk_id for h in result.hits], np.array([h.score for h in result.hits])


def test_shards_split_contiguously_and_balanced():
    docs = [Document(doc_index=i, title=f"t{i}", text="x" * (100 if i % 3 else 1000)) for i in range(30)]
    ranges = plan_shards(docs, 4)
    assert [r.start for r in ranges][0] == 0 and ranges[-1].stop == 30
    assert all(a.stop == b.start for a, b in zip(ranges, ranges[1:])) and all(len(r) for r in ranges)
    sizes = [sum(len(docs[i].text) for i in r) for r in ranges]
    assert max(sizes) < 2 * min(sizes)
    assert len(plan_shards(docs[:3], 8)) == 3  # never an empty shard


def test_layout_finds_each_rows_shard():
    layout = ShardLayout((0, 2, 5, 9), (0, 10, 25, 40))
    assert layout.shard_of_rows(np.array([0, 9, 10, 24, 25, 39])).tolist() == [0, 0, 1, 1, 2, 2]
    assert [layout.shard_of_doc(d) for d in (0, 1, 2, 4, 5, 8)] == [0, 0, 1, 1, 2, 2]
    assert ShardLayout.from_dict(layout.to_dict()) == layout


def test_bm25_with_collection_statistics_scores_like_the_whole_index():
    analyzer = Analyzer()
    texts = ["the river runs north", "北京大学的研究", "river valley history of the north", "量子计算芯片",
             "market growth in 2020", "the north river and the south river"] * 3
    terms = [analyzer.tokenize(t) for t in texts]
    whole = LexicalIndex.build(terms, 1.2, 0.75, "lucene")
    parts = [terms[:5], terms[5:11], terms[11:]]
    stats = CorpusStats.merged([CorpusStats.of(p) for p in parts])
    assert stats == CorpusStats.of(terms)
    shards = [LexicalIndex.build(p, 1.2, 0.75, "lucene", stats) for p in parts]
    for query in ("river north", "北京 研究", "量子 market", "nothing"):
        q = analyzer.tokenize(query)
        assert np.array_equal(np.concatenate([s.scores(q) for s in shards]), whole.scores(q))
    with pytest.raises(ValueError, match="sharded build"):
        LexicalIndex.build(parts[0], 1.2, 0.75, "bm25l", stats)


def test_a_sharded_build_is_published_once_with_its_layout(built):
    data, summary = built
    four = open_collection(data, "four")
    one = open_collection(data, "one")
    assert four.manifest.shards["count"] == 4 and four.manifest.pending == []
    assert four.legs == one.legs == ("bm25", "dense", "graph")
    assert four.store.n_chunks == one.store.n_chunks and four.store.n_documents == one.store.n_documents
    assert np.array_equal(four.store.chunk_doc_rows, one.store.chunk_doc_rows)
    assert four.manifest.bm25.to_dict()["vocabulary"] == len(one.lexical.retriever.vocab_dict) - 1  # bm25s' ""
    assert [d["doc_id"] for d in four.store.documents()] == [d["doc_id"] for d in one.store.documents()]
    assert four.store.chunks([5, 70, 3]) == one.store.chunks([5, 70, 3])
    assert four.store.document_chunks(20, 0, 3) == one.store.document_chunks(20, 0, 3)
    assert four.store.document_text(27) == one.store.document_text(27) and four.store.document_text(99) == ""


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_returns_the_unsharded_chunks_and_scores(built, mode):
    data, _ = built
    one, four = open_collection(data, "one"), open_collection(data, "four")
    for query in QUERIES:
        params = SearchParams(mode=mode, top_k=10)
        ids_one, scores_one = _ids_and_scores(search(one, query, params))
        ids_four, scores_four = _ids_and_scores(search(four, query, params))
        assert ids_four == ids_one, (mode, query)
        assert np.allclose(scores_four, scores_one, atol=1e-5), (mode, query)


def test_filters_and_context_match_the_unsharded_build(built):
    data, _ = built
    one, four = open_collection(data, "one"), open_collection(data, "four")
    some_ids = [d["doc_id"] for d in one.store.documents()][::3]
    params = SearchParams(mode="hybrid+graph", filters=SearchFilters(doc_ids=some_ids))
    for query in QUERIES[:3]:
        assert _ids_and_scores(search(four, query, params))[0] == _ids_and_scores(search(one, query, params))[0]
        a, b = get_context(one, query, SearchParams(), 600), get_context(four, query, SearchParams(), 600)
        assert [blk.text for blk in b.blocks] == [blk.text for blk in a.blocks]


def test_live_writes_to_a_sharded_collection_are_refused_with_a_reason(built):
    from indexing.settings import Settings

    data, _ = built
    registry = CollectionRegistry(Settings(data_dir=data))
    with pytest.raises(Unprocessable, match="sharded"):
        registry.write("four", [], ["some-doc"])
