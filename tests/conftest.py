from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedder():
    from indexing.embedder import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def minilm():
    """The sentence-transformers backend (all-MiniLM-L6-v2, bundled), for what only that backend has."""
    from indexing.embedder import EmbedderSpec, load_embedder
    from indexing.st_embedder import MINILM

    return load_embedder(EmbedderSpec(name=MINILM, backend="sentence-transformers"))


@pytest.fixture
def settings(tmp_path):
    from indexing.settings import Settings

    return Settings(data_dir=tmp_path / "data")


DEFAULT_ENV = ("RAGMEM_EMBED_MODEL", "RAGMEM_EMBED_CROSS_LINGUAL", "RAGMEM_EMBED_BACKEND", "RAGMEM_E5_RUNTIME",
               "RAGMEM_CPUINFO_PATH", "RAGMEM_DEVICE")
"""The embedder settings a shell may export; tests of the defaults clear them."""


@pytest.fixture
def default_env(monkeypatch):
    """The process defaults, whatever the shell running the tests exported."""
    for name in DEFAULT_ENV:
        monkeypatch.delenv(name, raising=False)
