"""An optional per-stage clock for ``search``, so benchmarks time the real code path.

Without it a benchmark has to re-implement the ranking step by step to time each step, and that
copy drifts from what the service runs. The engine wraps each stage in ``stage(timer, name)``;
with no timer that is a shared no-op context, so production queries pay one call per stage.

Stage names, in the order a hybrid+graph query runs them: ``filter`` (rows allowed by the
filters), ``analyze`` (BM25 terms), ``encode`` (query embedding), ``dense`` (vector top-pool),
``graph`` (graph channel), ``lexical`` (BM25 top-pool plus the other legs' candidates' BM25),
``rescore`` (union of candidates, their vectors and cosines), ``fuse``, ``select`` (diversity
rules) and ``fetch`` (chunk records of the hits). A mode runs only the stages it needs.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

class StageTimer(Protocol):
    """Receives each stage's name and wall-clock seconds as the stage ends."""

    def __call__(self, stage: str, seconds: float) -> None: ...


_UNTIMED = nullcontext()


class _Timed:
    """Times one stage."""

    __slots__ = ("timer", "name", "started")

    def __init__(self, timer: StageTimer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> "_Timed":
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer(self.name, time.perf_counter() - self.started)


def stage(timer: StageTimer | None, name: str) -> AbstractContextManager:
    """Context of one stage: reports its duration to ``timer`` (nothing at all without one)."""
    return _UNTIMED if timer is None else _Timed(timer, name)


class StageLog:
    """A StageTimer that keeps every duration, in milliseconds, by stage name."""

    def __init__(self) -> None:
        self.ms: dict[str, list[float]] = {}

    def __call__(self, stage: str, seconds: float) -> None:
        self.ms.setdefault(stage, []).append(seconds * 1000)
