"""The read interfaces: published and live views implement them, and live views wrap only them."""

from __future__ import annotations

import inspect
import typing

import faiss
import numpy as np
import pytest

from eval.generated_corpus import write_json_corpus
from indexing.builder import build_collection
from indexing.collection import Collection
from indexing.documents import Document
from indexing.lexical_index import LexicalIndex
from indexing.live import LiveCollection, open_live
from indexing.live_overlay import DeltaBM25, LiveDense, LiveLexical, LiveStore, alive_mask
from indexing.loaders import document_from_record
from indexing.read_interfaces import ChunkStore, DenseLeg, LexicalLeg
from indexing.settings import Settings
from indexing.store import StoreReader
from indexing.vector_index import VectorIndex

PROTOCOLS = {"store": ChunkStore, "lexical": LexicalLeg, "dense": DenseLeg}
ADDED = {"doc_id": "okapi-note", "title": "Okapi field notes",
         "content": "The okapi is a giraffid native to the Ituri rainforest. Okapi stripes camouflage calves."}


def _members(protocol: type) -> dict[str, object]:
    """The protocol's declared members (methods and read-only properties), by name."""
    return {name: value for name, value in vars(protocol).items() if not name.startswith("_")}


def _hints(function: object) -> dict[str, object]:
    """Resolved annotations; ``faiss`` is supplied for the protocols, which import it for typing only."""
    return typing.get_type_hints(function, globalns={"faiss": faiss, **getattr(function, "__globals__", {})})


def _signature_problems(expected: object, actual: object) -> list[str]:
    """Ways a call the protocol allows would fail or mean something else on the implementation:
    parameters must match by name, kind, order and default; extra ones need a default;
    annotated parameter and return types must be the protocol's."""
    want = [p for p in inspect.signature(expected).parameters.values() if p.name != "self"]
    have = [p for p in inspect.signature(actual).parameters.values() if p.name != "self"]
    problems = [f"parameter {i}: {p} != {q}" for i, (p, q) in enumerate(zip(want, have))
                if (p.name, p.kind, p.default) != (q.name, q.kind, q.default)]
    problems += [f"missing {p}" for p in want[len(have):]]
    problems += [f"extra {q} has no default" for q in have[len(want):] if q.default is q.empty
                 and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    wanted_types, actual_types = _hints(expected), _hints(actual)
    problems += [f"{name}: {actual_types[name]} != {kind}" for name, kind in wanted_types.items()
                 if name in actual_types and actual_types[name] != kind]
    return problems


def _assert_implements(instance: object, protocol: type) -> None:
    assert isinstance(instance, protocol), f"{type(instance).__name__} is not a {protocol.__name__}"
    for name, declared in _members(protocol).items():
        if isinstance(declared, property):
            kind = typing.get_origin(_hints(declared.fget)["return"]) or _hints(declared.fget)["return"]
            assert isinstance(getattr(instance, name), kind), (type(instance).__name__, name)
        else:
            implementation = inspect.getattr_static(type(instance), name)
            assert not _signature_problems(declared, implementation), (type(instance).__name__, name,
                                                                      _signature_problems(declared, implementation))


class _Only:
    """An object seen through one protocol: every attribute the protocol does not declare is missing."""

    def __init__(self, target: object, protocol: type) -> None:
        self._target, self._allowed = target, set(_members(protocol))

    def __getattr__(self, name: str) -> object:
        if name not in self._allowed:
            raise AttributeError(f"{name!r} is not part of the read interface")
        return getattr(self._target, name)


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> LiveCollection:
    root = tmp_path_factory.mktemp("interfaces")
    settings = Settings(data_dir=root / "data", graph=False)
    build_collection(write_json_corpus(root / "corpus.json", n_docs=8, seed=5), "iface", settings,
                     show_progress=False)
    collection = open_live(settings.data_dir, "iface", settings)
    added = document_from_record(ADDED, 0, "test")
    assert isinstance(added, Document)
    collection.write([added], [collection.base.store.documents()[2]["doc_id"]])  # dead base rows too
    return collection


def test_collection_fields_are_typed_by_the_protocols():
    hints = typing.get_type_hints(Collection)
    # The dense leg is optional: a build's BM25 tier has none yet.
    expected = {field: protocol | None if field == "dense" else protocol for field, protocol in PROTOCOLS.items()}
    assert {field: hints[field] for field in PROTOCOLS} == expected


@pytest.mark.parametrize("field", sorted(PROTOCOLS))
def test_published_and_live_views_implement_the_protocols(live, field):
    published, snapshot = getattr(live.base, field), getattr(live.snapshot(), field)
    assert isinstance(published, (StoreReader, LexicalIndex, VectorIndex))
    assert isinstance(snapshot, (LiveStore, LiveLexical, LiveDense))
    for view in (published, snapshot):
        _assert_implements(view, PROTOCOLS[field])


def test_a_missing_member_or_changed_signature_is_caught():
    class Partial:
        n_docs = 0

        def scores(self, terms):
            return np.zeros(0, np.float32)

        def search(self, query_terms, k, allowed=None):
            raise NotImplementedError

    assert not isinstance(Partial(), LexicalLeg)
    assert _signature_problems(LexicalLeg.search, Partial.search) == [
        "missing extra_rows: 'np.ndarray | None' = None"]
    assert _signature_problems(LexicalLeg.scores, Partial.scores)  # parameter renamed


def _restricted_views(live: LiveCollection) -> tuple[LiveStore, LiveLexical, LiveDense]:
    """The live overlays rebuilt over the base's views as seen through the protocols only."""
    base, journal = live.base, live.journal()
    state = journal.read()
    ids = live.base_doc_rows()
    deleted = np.array(sorted(ids[d] for d in state.tombstones if d in ids), dtype=np.int64)
    alive = alive_mask(_Only(base.store, ChunkStore), deleted, state)
    return (LiveStore(_Only(base.store, ChunkStore), journal.queries(), state, deleted, alive),
            LiveLexical(_Only(base.lexical, LexicalLeg), DeltaBM25(base.lexical, state.chunk_rows,
                                                                    state.chunk_terms), alive),
            LiveDense(_Only(base.dense, DenseLeg), alive, state.chunk_rows, state.chunk_vectors))


def test_live_views_use_only_the_protocol_of_what_they_wrap(live):
    snapshot = live.snapshot()
    store, lexical, dense = _restricted_views(live)
    rows = np.arange(len(snapshot.store.chunk_doc_rows))
    assert (store.n_chunks, store.n_documents) == (snapshot.store.n_chunks, snapshot.store.n_documents)
    np.testing.assert_array_equal(store.chunk_doc_rows, snapshot.store.chunk_doc_rows)
    assert store.chunks(rows.tolist()) == snapshot.store.chunks(rows.tolist())
    assert store.documents() == snapshot.store.documents() and store.skipped() == snapshot.store.skipped()
    for doc_row in sorted(set(snapshot.store.chunk_doc_rows.tolist())):
        assert store.document_text(doc_row) == snapshot.store.document_text(doc_row)
        assert store.document_chunks(doc_row, 0, 99) == snapshot.store.document_chunks(doc_row, 0, 99)

    terms = snapshot.analyzer.tokenize("okapi Ituri rainforest jazz volcano")
    assert (lexical.n_docs, lexical.describe()) == (snapshot.lexical.n_docs, snapshot.lexical.describe())
    np.testing.assert_array_equal(lexical.scores(terms), snapshot.lexical.scores(terms))
    assert repr(lexical.search(terms, 5, extra_rows=rows[:3])) == repr(snapshot.lexical.search(terms, 5,
                                                                                               extra_rows=rows[:3]))

    qvec = np.random.default_rng(0).standard_normal((1, dense.reconstruct(rows[:1]).shape[1])).astype(np.float32)
    qvec /= np.linalg.norm(qvec)
    assert (dense.size, dense.info) == (snapshot.dense.size, snapshot.dense.info)
    np.testing.assert_array_equal(dense.reconstruct(rows), snapshot.dense.reconstruct(rows))
    mask = rows % 2 == 0
    for args in ((qvec, 10), (qvec, 10, mask)):
        for got, want in zip(dense.top(*args), snapshot.dense.top(*args)):
            np.testing.assert_array_equal(got, want)


def test_live_dense_honours_a_selector_of_rows_to_search(live):
    dense = live.snapshot().dense
    assert isinstance(dense, LiveDense) and dense.rows.size
    qvec = dense.reconstruct(dense.rows[:1])  # a journal row's own vector: it would rank first
    hidden = np.array([int(dense.rows[0]), 0, 1], dtype=np.int64)
    selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(hidden))
    rows, scores = dense.top(qvec, 20, exclude=selector)
    want_rows, want_scores = dense.top(qvec, 20, mask=~np.isin(np.arange(dense.size), hidden))
    assert not np.isin(rows, hidden).any()
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-6)
