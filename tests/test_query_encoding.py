from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from indexing import onnx_query_encoder
from indexing.query_batching import QueryBatcher

QUERIES = ["who founded the journal", "大熊猫吃什么", "2018年 World Cup", "a", "Émile Zola 🙂 novels",
           "the first president of the association that publishes the journal Nature and Science"]


def _slow_encode(log: list[int]):
    """Deterministic per-text vectors; slow enough that concurrent callers pile up."""

    def encode(texts):
        log.append(len(texts))
        time.sleep(0.02)
        if "boom" in texts:
            raise ValueError("cannot encode boom")
        return np.array([[float(len(t)), float(sum(map(ord, t)) % 997)] for t in texts], dtype=np.float32)

    return encode


def test_batcher_returns_each_caller_its_own_vector_and_batches_under_load():
    sizes: list[int] = []
    batcher = QueryBatcher(_slow_encode(sizes), max_batch=8)
    texts = [f"query number {i}" * (i % 5 + 1) for i in range(40)]
    with ThreadPoolExecutor(16) as pool:
        vectors = list(pool.map(batcher.encode, texts))
    for text, vector in zip(texts, vectors):
        assert vector.shape == (1, 2)
        assert vector[0, 0] == len(text) and vector[0, 1] == sum(map(ord, text)) % 997
    assert max(sizes) > 1 and max(sizes) <= 8
    assert len(sizes) < len(texts)
    assert batcher.queries == 40


def test_batcher_single_caller_is_not_delayed():
    sizes: list[int] = []
    batcher = QueryBatcher(_slow_encode(sizes))
    batcher.encode("warm up")
    started = time.perf_counter()
    batcher.encode("alone")
    assert time.perf_counter() - started < 0.02 + 0.015  # the encode itself plus a hand-off, no timer
    assert sizes == [1, 1]


def test_batcher_isolates_a_failing_query_from_its_batch_mates():
    sizes: list[int] = []
    batcher = QueryBatcher(_slow_encode(sizes))
    gate = threading.Barrier(6)

    def call(text):
        gate.wait()
        try:
            return batcher.encode(text)
        except ValueError as exc:
            return exc

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(call, ["ok 1", "ok 2", "boom", "ok 3", "ok 4", "ok 5"]))
    assert isinstance(results[2], ValueError)
    assert all(isinstance(r, np.ndarray) and r[0, 0] == 4 for i, r in enumerate(results) if i != 2)
    assert batcher.encode("still alive")[0, 0] == len("still alive")


def test_onnx_encoder_matches_torch_and_reuses_its_export(minilm, tmp_path):
    pytest.importorskip("onnxruntime")
    encoder = onnx_query_encoder.create(minilm, tmp_path, threads=1)
    assert encoder is not None
    fast = np.vstack([encoder.encode([q]) for q in QUERIES])
    reference = minilm.encode(QUERIES)
    assert fast.dtype == np.float32 and fast.shape == reference.shape
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float((fast * reference).sum(axis=1).min()) > 0.9999
    batched = encoder.encode(QUERIES)  # padding inside a batch must not change any vector
    assert float((batched * reference).sum(axis=1).min()) > 0.9999
    exports = list(tmp_path.glob("*.onnx"))
    assert len(exports) == 1 and not list(tmp_path.glob("*.tmp"))
    stamp = exports[0].stat().st_mtime_ns
    assert onnx_query_encoder.create(minilm, tmp_path, threads=1) is not None
    assert exports[0].stat().st_mtime_ns == stamp


def test_onnx_encoder_declines_pipelines_it_cannot_reproduce(minilm, tmp_path):
    from dataclasses import replace

    on_gpu = replace(minilm, device="cuda")  # a copy that claims another device; the model is untouched
    assert onnx_query_encoder.create(on_gpu, tmp_path, threads=1) is None
    assert not list(tmp_path.glob("*.onnx"))


def test_encode_query_uses_configured_backend(minilm, tmp_path):
    from indexing import embedder as embedder_module
    from indexing.st_embedder import SentenceTransformerEmbedder

    fresh = SentenceTransformerEmbedder(name=minilm.name, model=minilm.model, device=minilm.device)
    fresh.serve_queries(embedder_module.QueryEncoding("auto", 1, tmp_path / "onnx"))
    vector = fresh.encode_query("大熊猫吃什么")
    assert vector.shape == (1, minilm.dimension)
    assert float(vector[0] @ minilm.encode(["大熊猫吃什么"])[0]) > 0.9999
    assert list((tmp_path / "onnx").glob("*.onnx"))


def test_a_cpu_process_serving_the_default_embedder_never_imports_torch(tmp_path):
    """torch costs 2+ s of every server and CLI start; on a machine without NVIDIA's driver the
    default (e5 on onnxruntime, USE on numpy) must encode queries and passages without it."""
    import subprocess
    import sys

    from indexing.embedder import NVIDIA_DRIVER_FILES

    if any(os.path.exists(path) for path in NVIDIA_DRIVER_FILES):
        pytest.skip("this machine has an NVIDIA driver: torch is the right runtime to probe")
    script = (
        "import sys\n"
        "from indexing.settings import Settings\n"
        "from indexing.embedder import EmbedderSpec, QueryEncoding, load_embedder\n"
        "settings = Settings()\n"
        "embedder = load_embedder(EmbedderSpec.from_settings(settings))\n"
        "embedder.serve_queries(QueryEncoding.for_serving(settings))\n"
        "assert embedder.encode_query('大熊猫 panda').shape[0] == 1\n"
        "assert embedder.encode(['bamboo forests']).shape[0] == 1\n"
        "print('torch' in sys.modules, embedder.primary.runtime)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAGMEM_")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "onnx-int8"], out.stdout
