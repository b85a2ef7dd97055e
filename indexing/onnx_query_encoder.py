"""ONNX Runtime for encoding short queries: same vectors as the torch model, 2-3x less latency.

Measured on this project's 2-core CPU (docs/BENCHMARKS.md): one 10-30 token query through
``SentenceTransformer.encode`` on one torch thread takes ~14 ms, mostly per-operator dispatch
overhead at tiny shapes; the same weights exported to ONNX and run by onnxruntime take ~5 ms.
For 256-token document chunks in batches torch is as fast or faster, so indexing stays on
torch and only the query path uses this.

The graph is exported locally from the already-loaded model (no download) into the data
root's cache, once per model, and checked against the torch model on probe texts before use;
any model whose pipeline is not "transformer -> mean/CLS pooling -> optional normalise", or
whose ONNX output disagrees, silently keeps the torch path.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from indexing.staged_file import staged_file

if TYPE_CHECKING:
    from indexing.st_embedder import SentenceTransformerEmbedder as Embedder

log = logging.getLogger("ragmem.indexing.onnx_query_encoder")

_PROBES = ("who founded the journal", "中国科学院院士名单", "2018年 World Cup final score",
           "a much longer question about the history of the association and its first president")
_MIN_PROBE_COSINE = 0.9999
_SUPPORTED_POOLING = ("mean", "cls")


class UnsupportedModel(Exception):
    """The model's pipeline has a step this exporter does not reproduce."""


@dataclass
class OnnxQueryEncoder:
    session: "object"  # onnxruntime.InferenceSession
    tokenizer: "object"
    input_names: list[str]
    pooling: str
    max_length: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        features = self.tokenizer(list(texts), return_tensors="np", padding=True, truncation=True,
                                  max_length=self.max_length)
        feeds = {name: features[name].astype(np.int64) for name in self.input_names}
        hidden = self.session.run(None, feeds)[0]
        if self.pooling == "cls":
            vectors = hidden[:, 0]
        else:
            mask = features["attention_mask"][..., None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def create(embedder: "Embedder", cache_dir: Path, threads: int) -> OnnxQueryEncoder | None:
    """An ONNX encoder equivalent to ``embedder``, or None (with the reason logged) to stay on torch."""
    try:
        import onnxruntime
    except ImportError:
        log.info("onnxruntime not installed; queries are encoded with torch")
        return None
    try:
        transformer, pooling = _pipeline(embedder)
        path = _exported(embedder, transformer, cache_dir)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        encoder = OnnxQueryEncoder(session=session, tokenizer=embedder.tokenizer,
                                   input_names=[i.name for i in session.get_inputs()], pooling=pooling,
                                   max_length=embedder.max_seq_length)
        agreement = float((encoder.encode(_PROBES) * embedder.encode(_PROBES)).sum(axis=1).min())
    except UnsupportedModel as exc:
        log.info("queries are encoded with torch: %s", exc)
        return None
    except Exception as exc:  # an exporter or runtime failure must never take the service down
        log.warning("ONNX query encoder unavailable (%s: %s); queries are encoded with torch",
                    exc.__class__.__name__, exc)
        return None
    if agreement < _MIN_PROBE_COSINE:
        log.warning("ONNX query encoder disagrees with the torch model (min cosine %.6f); using torch", agreement)
        return None
    log.info("queries are encoded with onnxruntime (%s, %d thread(s), probe cosine %.7f)", path.name,
             options.intra_op_num_threads, agreement)
    return encoder


def _pipeline(embedder: "Embedder"):
    modules = list(embedder.model)
    names = [type(m).__name__ for m in modules]
    if len(modules) not in (2, 3) or names[0] != "Transformer" or names[1] != "Pooling" or (
            len(modules) == 3 and names[2] != "Normalize"):
        raise UnsupportedModel(f"pipeline {names} is not Transformer -> Pooling [-> Normalize]")
    pooling = modules[1].get_config_dict().get("pooling_mode")
    if pooling not in _SUPPORTED_POOLING:
        raise UnsupportedModel(f"pooling mode {pooling!r}")
    if embedder.device != "cpu":
        raise UnsupportedModel(f"device {embedder.device} (the torch model is already fast there)")
    return modules[0], pooling


def _exported(embedder: "Embedder", transformer, cache_dir: Path) -> Path:
    import torch

    auto_model = transformer.auto_model
    digest = hashlib.sha1(repr((embedder.name, torch.__version__, auto_model.config.to_json_string())).encode())
    for parameter in auto_model.parameters():  # a sample of every tensor: any fine-tune changes the key
        digest.update(parameter.detach().reshape(-1)[:1024].cpu().numpy().tobytes())
    fingerprint = digest.hexdigest()[:16]
    path = cache_dir / f"{fingerprint}.onnx"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    sample = embedder.tokenizer(["probe text"], return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = auto_model

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    dynamic = {name: {0: "batch", 1: "tokens"} for name in names + ["last_hidden_state"]}
    with staged_file(path, ".onnx.tmp") as tmp, torch.inference_mode(False), torch.no_grad(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(LastHidden().eval(), tuple(sample[n] for n in names), tmp, input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=dynamic, opset_version=17,
                          dynamo=False)
    log.info("exported %s to ONNX for query encoding: %s", embedder.name, path)
    return path
