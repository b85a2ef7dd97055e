"""The retrieval modes, the default mode and the request limits: one table for every transport.

HTTP builds its pydantic ``Literal`` and ``Field`` bounds from these values and MCP validates its
tool arguments against them (through ``service.engine.requests``), so the two transports cannot
drift apart: a request one accepts the other accepts too.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexing.build_format import LEG_BM25, LEG_DENSE, LEG_GRAPH
from service.engine.fusion import FUSIONS

GRAPH_MODES = ("graph", "hybrid+graph")
MODES = ("hybrid", "bm25", "dense", *GRAPH_MODES, *(name for name in FUSIONS if name != "hybrid"))
DEFAULT_MODE = "hybrid+graph"
"""The best mode in docs/EVAL.md; collections built without the graph answer it as plain hybrid."""

MODE_LEGS: dict[str, tuple[str, ...]] = {
    "bm25": (LEG_BM25,), "dense": (LEG_DENSE,), "graph": (LEG_DENSE, LEG_GRAPH),
    "hybrid+graph": (LEG_BM25, LEG_DENSE, LEG_GRAPH),
    **{name: (LEG_BM25, LEG_DENSE) for name in FUSIONS},
}
"""The legs each mode reads (the graph channel is seeded by the dense leg's candidates)."""
FALLBACK_MODES = ("hybrid+graph", "hybrid", "bm25")
"""What a mode whose legs are still being built is answered with: the first of these whose legs are
ready, i.e. the default mode as far as it is built."""


def answerable_mode(mode: str, ready: tuple[str, ...], pending: tuple[str, ...]) -> str | None:
    """The mode a query in ``mode`` is answered in on a collection with ``ready`` legs.

    The mode itself once its legs are ready; while one of them is ``pending`` (a later tier of the
    build), the best :data:`FALLBACK_MODES` entry the ready legs allow. The default mode on a
    collection built without the graph is plain hybrid. None: the mode needs a leg this
    collection will never have (``graph`` on a build made without it).
    """
    missing = [leg for leg in MODE_LEGS[mode] if leg not in ready]
    if not missing:
        return mode
    if mode != DEFAULT_MODE and not all(leg in pending for leg in missing):
        return None
    return next(name for name in FALLBACK_MODES if all(leg in ready for leg in MODE_LEGS[name]))


@dataclass(frozen=True)
class Bound:
    """An integer argument's default and its inclusive range."""

    default: int
    low: int
    high: int

    def holds(self, value: int) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class QueryLimits:
    """What one search or context request may ask for.

    ``max_query_chars`` is the static default of ``settings.max_query_chars`` (RAGMEM_MAX_QUERY_CHARS):
    pydantic models are built at import, before settings exist, so HTTP's schema carries this
    value and the engine checks the configured one on every ``search``.
    """

    top_k: Bound = Bound(default=10, low=1, high=100)
    min_docs: Bound = Bound(default=5, low=0, high=100)
    max_per_doc: Bound = Bound(default=2, low=1, high=100)
    max_tokens: Bound = Bound(default=4000, low=32, high=200_000)
    """Token budget of ``get_context``."""
    max_query_chars: int = 4000


LIMITS = QueryLimits()
