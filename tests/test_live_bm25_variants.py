"""Live-added chunks score with the build's BM25 variant, exactly as the compacted build scores them.

Journal chunks are scored with the base build's statistics extended by the journal: N = base
chunks + journal chunks, df = base df + journal df, and the *base* mean chunk length. A fresh
build of base + added documents (which is what compaction is, without deletions) counts the same
N and df, but averages the length over all chunks. So the scenarios make that one difference
vanish by construction, and then every added chunk's live score must equal its compacted score:

* ``copies``: the added documents are copies of every base document under new ids, so the mean
  chunk length is unchanged (length normalisation with the default b is exercised);
* ``novel``: b = 0 (no length normalisation), and the added documents bring terms the base never
  saw, while queries also use terms only the base has (BM25L/BM25+ score absent terms too).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eval.generated_corpus import make_documents
from indexing.bm25_variants import IDF, TF, Bm25Formula
from indexing.builder import build_collection
from indexing.documents import Document
from indexing.lexical_index import LexicalIndex
from indexing.live import LiveCollection, open_live
from indexing.live_overlay import DeltaBM25
from indexing.loaders import document_from_record
from indexing.settings import Settings

VARIANTS = ("robertson", "bm25l", "bm25+", "atire")
QUERIES = ("okapi Ituri rainforest", "pangolin scales keratin", "jazz New Orleans blues", "volcano magma lava",
           "量子计算 超导", "大熊猫 竹子", "marathon London okapi pangolin", "zzzunknownterm", "coral coral reef")
BASE_ONLY = {"doc_id": "pangolin", "title": "Pangolin notes",
             "content": "Pangolins are scaly mammals. Pangolin scales are made of keratin, like fingernails."}
NOVEL = {"doc_id": "okapi", "title": "Okapi field notes",
         "content": "The okapi is a giraffid native to the Ituri rainforest. Okapi stripes camouflage calves."}


def _documents(records: list[dict]) -> list[Document]:
    docs = [document_from_record(record, i, "test") for i, record in enumerate(records)]
    assert all(isinstance(doc, Document) for doc in docs), docs
    return docs


def _scores_by_chunk_id(live: LiveCollection, chunk_ids: set[str]) -> dict[str, np.ndarray]:
    """Each query's BM25 score of the named chunks in the current snapshot, keyed by chunk id."""
    snapshot = live.snapshot()
    records = snapshot.store.chunks(range(len(snapshot.store.chunk_doc_rows)))
    rows = {r.chunk_id: r.chunk_row for r in records if r.chunk_id in chunk_ids}
    assert set(rows) == chunk_ids
    ordered = sorted(rows)
    table = np.array([snapshot.lexical.scores(snapshot.analyzer.tokenize(q))[[rows[c] for c in ordered]]
                      for q in QUERIES])
    return dict(zip(ordered, table.T))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One data root for the module: every scenario's collection reuses the chunk vectors embedded
    for the first one (the embedding cache), which BM25 scores do not depend on."""
    return tmp_path_factory.mktemp("variants") / "data"


def _live_then_compacted(data_dir: Path, tmp_path: Path, method: str, b: float, base: list[dict],
                         added: list[dict]):
    settings = Settings(data_dir=data_dir, bm25_method=method, bm25_b=b, graph=False)
    name = f"{tmp_path.name}-{method.replace('+', 'plus')}"
    corpus = tmp_path / "corpus.json"
    corpus.write_text(json.dumps(base, ensure_ascii=False), encoding="utf-8")
    build_collection(corpus, name, settings, show_progress=False)
    live = open_live(settings.data_dir, name, settings)
    assert live.base.lexical.describe()["method"] == method
    live.write(_documents(added), [])
    snapshot = live.snapshot()
    added_ids = {r.chunk_id for r in snapshot.store.chunks(range(live.base.store.n_chunks,
                                                                 len(snapshot.store.chunk_doc_rows)))}
    assert added_ids and all(not c.startswith(("doc-", "pangolin:")) for c in added_ids)
    before = _scores_by_chunk_id(live, added_ids)
    live.compact()
    after = _scores_by_chunk_id(open_live(settings.data_dir, name, settings), added_ids)
    return live, before, after


def _assert_equal_scores(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> None:
    assert before.keys() == after.keys()
    live, compacted = np.array([before[c] for c in sorted(before)]), np.array([after[c] for c in sorted(after)])
    assert np.abs(compacted).max() > 0  # the queries do reach the added chunks
    np.testing.assert_allclose(live, compacted, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", (*VARIANTS, "lucene"))
def test_copies_score_live_as_after_compaction(data_dir, tmp_path, method):
    base = [dict(r, doc_id=f"doc-{i}") for i, r in enumerate(make_documents(6, seed=5))] + [BASE_ONLY]
    copies = [dict(r, doc_id=f"copy-{r['doc_id']}") for r in base]
    live, before, after = _live_then_compacted(data_dir, tmp_path, method, 0.75, base, copies)
    compacted = open_live(live.settings.data_dir, live.name, live.settings).base.lexical
    assert compacted.avg_doc_len == pytest.approx(live.base.lexical.avg_doc_len, rel=1e-12)
    _assert_equal_scores(before, after)


@pytest.mark.parametrize("method", VARIANTS)
def test_novel_terms_score_live_as_after_compaction(data_dir, tmp_path, method):
    base = [dict(r, doc_id=f"doc-{i}") for i, r in enumerate(make_documents(6, seed=5))] + [BASE_ONLY]
    added = [dict(r, doc_id=f"new-{i}") for i, r in enumerate(make_documents(3, seed=9))] + [NOVEL]
    _, before, after = _live_then_compacted(data_dir, tmp_path, method, 0.0, base, added)
    _assert_equal_scores(before, after)


def _random_corpus(rng: np.random.Generator, vocabulary: list[str], n: int) -> list[list[str]]:
    return [list(rng.choice(vocabulary, size=int(rng.integers(1, 25)))) for _ in range(n)]


@pytest.mark.parametrize("method", (*VARIANTS, "lucene"))
def test_delta_equals_a_fresh_bm25s_build(method):
    """DeltaBM25 alone, against bm25s itself: base-only, journal-only, repeated and unknown terms."""
    rng = np.random.default_rng(7)
    vocabulary = [f"t{i}" for i in range(60)]
    base_terms = _random_corpus(rng, vocabulary[:45], 150)
    for b, added in ((0.0, _random_corpus(rng, vocabulary[20:], 40)), (0.75, [list(t) for t in base_terms])):
        base = LexicalIndex.build(base_terms, 1.2, b, method)
        fresh = LexicalIndex.build(base_terms + added, 1.2, b, method)
        delta = DeltaBM25(base, np.arange(len(base_terms), len(base_terms) + len(added)), added)
        for _ in range(40):
            query = list(rng.choice(vocabulary + ["unknown"], size=int(rng.integers(1, 7))))
            np.testing.assert_allclose(delta.scores(query), fresh.scores(query)[len(base_terms):],
                                       rtol=1e-5, atol=1e-5, err_msg=f"{method} b={b} {query}")


def test_formula_table_names_every_bm25s_method_and_reads_the_build():
    assert set(IDF) == set(TF) == {"robertson", "lucene", "atire", "bm25l", "bm25+"}
    index = LexicalIndex.build([["a", "b"], ["b"]], 1.1, 0.6, "bm25l")
    assert Bm25Formula.of(index.retriever) == Bm25Formula("bm25l", "bm25l", 1.1, 0.6, 0.5)
    formula = Bm25Formula("robertson", "robertson", 1.2, 0.75, 0.5)
    assert formula.idf(np.array([9.0]), 10)[0] == 0.0  # bm25s clips a negative Robertson IDF to 0
    assert formula.idf(np.array([0.0]), 10)[0] == 0.0
    assert formula.absent_tf(7.0) == 0.0
    assert Bm25Formula("bm25+", "bm25+", 1.2, 0.75, 0.5).absent_tf(7.0) == 0.5
    with pytest.raises(ValueError):
        Bm25Formula("bm42", "bm42", 1.2, 0.75, 0.5)
