"""The lexical pass in worker processes computes exactly what one process computes."""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from eval.generated_corpus import make_documents
from indexing import lexical_pass as lp
from indexing.analyzer import default_analyzer
from indexing.builder import chunking_params
from indexing.lexical_index import LexicalIndex
from indexing.loaders import document_from_record
from indexing.settings import Settings
from indexing.term_ids import TermIds

TEXT = "Pangolins are scaly mammals.\n\n穿山甲的鳞片由角蛋白构成，和指甲一样。" * 3


def _documents(n: int):
    return [document_from_record(record, i, "test") for i, record in enumerate(make_documents(n, seed=3))]


def test_worker_processes_give_the_chunks_and_terms_of_one_process(embedder, monkeypatch):
    documents = _documents(14)
    params = chunking_params(Settings(), embedder)
    analyzer = default_analyzer()
    one = lp.lexical_pass(documents, embedder, params, analyzer, processes=1, show_progress=False)
    monkeypatch.setattr(lp, "PROCESS_MIN_CHARS", 0)
    progress: list[float] = []
    many = lp.lexical_pass(documents, embedder, params, analyzer, processes=2, show_progress=False,
                           on_progress=progress.append)
    assert len(lp._split(documents, 2 * lp.PARTS_PER_PROCESS)) > 2  # really several parts
    assert many.rows == one.rows and many.embed_inputs == one.embed_inputs and many.counts == one.counts
    assert many.terms.vocab == one.terms.vocab
    assert np.array_equal(many.terms.ids, one.terms.ids) and np.array_equal(many.terms.lengths, one.terms.lengths)
    assert progress[-1] == 1.0 and progress == sorted(progress)


def test_split_keeps_document_order_and_drops_nothing():
    documents = _documents(9)
    parts = lp._split(documents, 4)
    assert [d for part in parts for d in part] == documents
    assert all(parts) and len(parts) <= 4


def test_the_tokenizers_pickle_into_equal_ones(embedder, minilm):
    for model in (embedder, minilm):
        copy = pickle.loads(pickle.dumps(model.token_counter))
        assert copy.token_spans(TEXT) == model.token_spans(TEXT)
        assert copy.count_tokens(TEXT) == model.count_tokens(TEXT)


terms = st.lists(st.lists(st.sampled_from(["a", "b", "c", "量子", "d", "e"]), max_size=6), max_size=8)


@given(st.lists(terms, min_size=1, max_size=4))
def test_concatenated_term_ids_equal_one_table(parts):
    whole = TermIds.of([chunk for part in parts for chunk in part])
    joined = TermIds.concatenated([TermIds.of(part) for part in parts])
    assert joined.vocab == whole.vocab
    assert np.array_equal(joined.ids, whole.ids) and np.array_equal(joined.lengths, whole.lengths)
    assert joined.term_lists() == [chunk for part in parts for chunk in part]


def test_an_index_from_term_ids_scores_like_one_from_lists():
    corpus = [["a", "b", "a"], ["量子", "c"], [], ["b", "b", "d"]]
    for method in ("lucene", "robertson"):
        from_lists = LexicalIndex.build(corpus, 1.2, 0.75, method)
        from_ids = LexicalIndex.build(TermIds.of(corpus), 1.2, 0.75, method)
        assert from_ids.avg_doc_len == from_lists.avg_doc_len
        for query in (["a"], ["b", "量子"], ["zzz"]):
            assert np.array_equal(from_ids.scores(query), from_lists.scores(query))
