"""Multilingual lexical analyzer for BM25.

For runs containing CJK it emits character bigrams (across CJK/alnum junctions such as
``2018年``), CJK unigrams and jieba search-mode words of three or more characters; Latin
text is lower-cased, stop-worded and Snowball-stemmed, and numbers are kept.

Why this mix (measured on CMRC 2018 trial, 256 paragraphs, 1,002 questions, BM25 lucene
k1=1.2 b=0.75, R@1): CJK-only bigrams 0.973, jieba words only 0.963, bigrams + all jieba
words 0.964, this analyzer 0.976. Two-character jieba words duplicate bigrams and
double-weight them, which is why only longer words are added; unigrams rescue questions
whose key term is one character or is split differently in question and passage.

The jieba words come from ``rjieba`` (jieba-rs, the same dictionary and algorithm in Rust) when
it is installed: on 123,990 distinct CJK runs of the shared agent corpora and CMRC 2018 its
search-mode words equal jieba's run for run, 13x faster (jieba was most of a BM25 build's time).
Without it the Python ``jieba`` gives the same terms, slower.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

import jieba
import Stemmer

try:
    import rjieba
except ImportError:  # pragma: no cover - declared dependency; jieba gives the same words
    rjieba = None
from bm25s.stopwords import STOPWORDS_EN

ANALYZER_NAME = "multilingual-v1"
_STEMMER = "snowball-english"
_STOPWORDS = "bm25s-en"

_CJK_CLASS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")
_CJK_RUN = re.compile(f"[{_CJK_CLASS}]+")
_RUN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+")
_LATIN = re.compile(rf"\d+(?:[.,]\d+)*|[^\W_{_CJK_CLASS}]+")

jieba.setLogLevel(logging.WARNING)
_jieba_lock = threading.Lock()


@dataclass
class Analyzer:
    """Turns text into BM25 terms; the same configuration must analyse documents and queries."""

    cjk_bigrams: bool = True
    cjk_unigrams: bool = True
    jieba_min_len: int | None = 3
    """Add jieba search-mode words at least this long; None disables jieba."""
    stem: bool = True
    stopwords: frozenset[str] = field(default_factory=lambda: frozenset(STOPWORDS_EN))

    def __post_init__(self) -> None:
        self._stemmer = Stemmer.Stemmer("english") if self.stem else None
        if self.jieba_min_len is not None and rjieba is None:
            with _jieba_lock:
                jieba.initialize()

    @property
    def name(self) -> str:
        return ANALYZER_NAME

    def describe(self) -> dict:
        return {
            "name": self.name,
            "cjk_bigrams": self.cjk_bigrams,
            "cjk_unigrams": self.cjk_unigrams,
            "jieba_min_len": self.jieba_min_len,
            "stem": _STEMMER if self.stem else None,
            "stopwords": _STOPWORDS if self.stopwords else None,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Analyzer":
        """The analyzer :meth:`describe` described, so a build's queries are analysed like its chunks.

        Absent keys (older builds) take the defaults; a name or stemmer/stopword set this code does
        not have is an error rather than a silently different analysis.
        """
        name = config.get("name", ANALYZER_NAME)
        stem = config.get("stem", _STEMMER)
        stopwords = config.get("stopwords", _STOPWORDS)
        if name != ANALYZER_NAME or stem not in (_STEMMER, None) or stopwords not in (_STOPWORDS, None):
            raise ValueError(f"unsupported analyzer config {dict(config)!r}")
        options = {key: config[key] for key in ("cjk_bigrams", "cjk_unigrams", "jieba_min_len") if key in config}
        return cls(**options, stem=stem is not None,
                   stopwords=frozenset(STOPWORDS_EN) if stopwords is not None else frozenset())

    def tokenize(self, text: str) -> list[str]:
        terms: list[str] = []
        latin: list[str] = []
        for run in _RUN.findall(text.lower()):
            if _CJK_RUN.fullmatch(run) is not None:  # all CJK, most runs of Chinese text: no split needed
                self._add_cjk_terms(terms, run, pure=True)
            elif _CJK_CHAR.search(run) is None:
                latin.append(run)
            else:
                self._add_cjk_terms(terms, run, pure=False)
                latin.extend(_LATIN.findall(run))
        words = [word for word in latin if word not in self.stopwords]
        if words:
            terms.extend(self._stemmer.stemWords(words) if self._stemmer else words)
        return terms

    def _add_cjk_terms(self, terms: list[str], run: str, pure: bool) -> None:
        """A run's bigrams, unigrams and long jieba words; ``pure``: the run is CJK only, so its
        characters are its unigrams and it is its own only CJK sub-run (no regex passes needed)."""
        if self.cjk_bigrams and len(run) > 1:
            terms.extend(map(str.__add__, run[:-1], run[1:]))  # run[i:i+2] for each i, in C
        if self.cjk_unigrams or len(run) == 1:
            terms.extend(run if pure else _CJK_CHAR.findall(run))  # a str extends by its characters
        if self.jieba_min_len is not None:
            for cjk in (run,) if pure else _CJK_RUN.findall(run):
                terms.extend(_long_words(cjk, self.jieba_min_len))


@lru_cache(maxsize=65536)
def _long_words(run: str, min_len: int) -> tuple[str, ...]:
    """jieba search-mode words of ``run`` at least ``min_len`` long, memoised with the words."""
    return tuple(word for word in _cut_for_search(run) if len(word) >= min_len)


def _cut_for_search(run: str) -> tuple[str, ...]:
    """jieba search-mode words (HMM on, jieba's default); :func:`_long_words` memoises them
    because titles repeat on every chunk of a document."""
    if rjieba is not None:
        return tuple(rjieba.cut_for_search(run, True))
    return tuple(jieba.cut_for_search(run))


def default_analyzer() -> Analyzer:
    return Analyzer()
