"""The BM25 variants bm25s builds, each formula written once, for scoring outside a bm25s build.

A live collection scores the journal's chunks itself (:class:`indexing.live_overlay.DeltaBM25`);
to rank them like the base build's chunks, and like the compacted build will, it must use the
formula the build used (``Settings.bm25_method``), not one of its own. These are the formulas of
``bm25s/scoring.py`` (``_score_idf_*``, ``_score_tfc_*``, Kamphuis et al., ECIR 2020), vectorised:

* IDF(df, N): robertson ``ln(max((N - df + 0.5) / (df + 0.5), 1))`` (bm25s clips a negative IDF
  to 0), lucene ``ln(1 + (N - df + 0.5) / (df + 0.5))``, atire ``ln(N / df)``,
  bm25l ``ln((N + 1) / (df + 0.5))``, bm25+ ``ln((N + 1) / df)``; 0 for a term of no chunk.
* TF(tf, L = (1 - b) + b * len / avg_len): robertson and lucene ``tf / (k1 * L + tf)``,
  atire ``tf * (k1 + 1) / (tf + k1 * L)``, bm25l ``(k1 + 1) * (c + delta) / (k1 + c + delta)`` with
  ``c = tf / L``, bm25+ ``(k1 + 1) * tf / (k1 * L + tf) + delta``.

BM25L and BM25+ give a chunk a score for a query term it lacks (TF at tf = 0 is positive).
bm25s stores each present term's score minus that "nonoccurrence" score and adds the query's
nonoccurrence sum to every chunk; :meth:`Bm25Formula.absent_tf` is the TF part of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import bm25s

IdfFormula = Callable[[np.ndarray, float], np.ndarray]
"""(document frequencies, number of chunks) -> IDF."""
TfFormula = Callable[[np.ndarray, np.ndarray, float, float], np.ndarray]
"""(term frequencies, length norm L, k1, delta) -> term-frequency component."""


def _robertson_tf(tf: np.ndarray, norm: np.ndarray, k1: float, delta: float) -> np.ndarray:
    return tf / (k1 * norm + tf)


def _atire_tf(tf: np.ndarray, norm: np.ndarray, k1: float, delta: float) -> np.ndarray:
    return (tf * (k1 + 1)) / (tf + k1 * norm)


def _bm25l_tf(tf: np.ndarray, norm: np.ndarray, k1: float, delta: float) -> np.ndarray:
    c = tf / norm
    return ((k1 + 1) * (c + delta)) / (k1 + c + delta)


def _bm25plus_tf(tf: np.ndarray, norm: np.ndarray, k1: float, delta: float) -> np.ndarray:
    return ((k1 + 1) * tf) / (k1 * norm + tf) + delta


IDF: dict[str, IdfFormula] = {
    "robertson": lambda df, n: np.log(np.maximum((n - df + 0.5) / (df + 0.5), 1.0)),
    # log1p, not log(1 + x) as bm25s writes it: the same value, and bit-identical to the live
    # Lucene scores from before this table.
    "lucene": lambda df, n: np.log1p((n - df + 0.5) / (df + 0.5)),
    "atire": lambda df, n: np.log(n / df),
    "bm25l": lambda df, n: np.log((n + 1) / (df + 0.5)),
    "bm25+": lambda df, n: np.log((n + 1) / df),
}
TF: dict[str, TfFormula] = {"robertson": _robertson_tf, "lucene": _robertson_tf, "atire": _atire_tf,
                            "bm25l": _bm25l_tf, "bm25+": _bm25plus_tf}


@dataclass(frozen=True)
class Bm25Formula:
    """One build's BM25: its variant (TF and IDF may differ, as bm25s allows) and parameters."""

    method: str
    idf_method: str
    k1: float
    b: float
    delta: float

    def __post_init__(self) -> None:
        if self.method not in TF or self.idf_method not in IDF:
            raise ValueError(f"unknown BM25 method {self.method!r}/{self.idf_method!r}; expected one of {sorted(TF)}")

    @classmethod
    def of(cls, retriever: "bm25s.BM25") -> "Bm25Formula":
        """The formula a built or loaded ``bm25s.BM25`` scores with (it keeps all five settings)."""
        return cls(method=retriever.method, idf_method=retriever.idf_method or retriever.method,
                   k1=float(retriever.k1), b=float(retriever.b), delta=float(retriever.delta))

    def idf(self, df: np.ndarray, n: float) -> np.ndarray:
        """IDF per term; 0 where df is 0 (bm25s leaves such a term's IDF at 0)."""
        df = np.asarray(df, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = IDF[self.idf_method](df, n)
        return np.where(df > 0, values, 0.0)

    def tf(self, tf: np.ndarray, lengths: np.ndarray, avg_len: float) -> np.ndarray:
        """Term-frequency component for chunks of ``lengths`` terms, given the mean chunk length."""
        norm = (1 - self.b) + self.b * lengths / avg_len
        return TF[self.method](tf, norm, self.k1, self.delta)

    def absent_tf(self, avg_len: float) -> float:
        """TF component of a term a chunk lacks (tf = 0): 0 except for BM25L and BM25+.

        bm25s evaluates it at the mean length, as here (it does not depend on the length anyway).
        """
        return float(self.tf(np.zeros(1), np.full(1, avg_len), avg_len)[0])
