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


@pytest.fixture
def settings(tmp_path):
    from indexing.settings import Settings

    return Settings(data_dir=tmp_path / "data")
