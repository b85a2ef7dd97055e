"""How far a collection's pending legs are: progress and an ETA per leg, for every response.

A build publishes its legs tier by tier (``indexing.build_format.TIERS``); until the last one, a
search answers from the legs that are ready and reports the others as ``pending``. The numbers come
from the running build's progress callback (:class:`service.collections.build_jobs.BuildJob`):

* progress: the fraction of the leg's own stages done (dense: the chunk embedding, then FAISS;
  graph: extraction, embedding and linking of the graph memory);
* ETA: for a running leg past :data:`MIN_FRACTION_FOR_ETA` (or running for
  :data:`MIN_SECONDS_FOR_ETA` with some progress), the time it took so far scaled to what
  is left (a constant rate); before that, or for a leg not started, the seconds per chunk the same
  leg took in this process's last completed build, times this build's chunks; None when neither is
  known (the first build in a process, in its first seconds).

A leg whose build is not running says why: ``failed`` (with the error) or ``stopped`` (no builder:
killed, or the process restarted; the next build of the corpus, which a json_path request starts,
builds it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Protocol

from indexing.build_format import LEG_DENSE, LEG_GRAPH

LegState = Literal["building", "queued", "failed", "stopped"]

LEG_STAGES: dict[str, tuple[tuple[str, float], ...]] = {LEG_DENSE: (("embed", 0.95), ("faiss", 0.05)),
                                                        LEG_GRAPH: (("graph", 1.0),)}
"""The builder's progress stages (``indexing.builder``) that build each pending leg, in order, with
the share of the leg's progress each stands for (a flat FAISS index is built in moments)."""
LEG_LABELS = {LEG_DENSE: "semantic search (dense embeddings)", LEG_GRAPH: "the knowledge graph"}
MIN_FRACTION_FOR_ETA = 0.05
"""Below this share done a running leg's rate is too noisy to extrapolate (first batch, model warm-up)..."""
MIN_SECONDS_FOR_ETA = 20.0
"""...unless the leg has run this long: a large collection's embedding (hours on a CPU) would
otherwise go minutes without an ETA, and 20 s of batches give a steady rate."""


@dataclass(frozen=True)
class LegProgress:
    leg: str
    state: LegState
    progress: float
    """0-1 share of the leg's stages done."""
    eta_seconds: float | None
    """Seconds until the leg is published; None: not estimated yet (or the build is not running)."""
    error: str | None = None


class BuildProgress(Protocol):
    """What a running build tells about itself (``BuildJob``)."""

    stage: str
    fraction: float
    chunks: int
    error: str | None

    @property
    def running(self) -> bool: ...

    def stage_seconds(self, stage: str) -> float | None:
        """Seconds since ``stage`` started (None: not started)."""


class LegRates:
    """Seconds per chunk each leg took in the last completed build of this process (the prior of an ETA)."""

    def __init__(self) -> None:
        self.seconds_per_chunk: dict[str, float] = {}

    def record(self, stage_seconds: Mapping[str, float], chunks: int) -> None:
        if chunks <= 0:
            return
        for leg, stages in LEG_STAGES.items():
            seconds = sum(stage_seconds.get(stage, 0.0) for stage, _ in stages)
            if seconds > 0:
                self.seconds_per_chunk[leg] = seconds / chunks

    def expected(self, leg: str, chunks: int) -> float | None:
        rate = self.seconds_per_chunk.get(leg)
        return None if rate is None or chunks <= 0 else rate * chunks


def leg_progress(pending: tuple[str, ...], job: BuildProgress | None, rates: LegRates,
                 elsewhere: bool = False) -> dict[str, LegProgress]:
    """Progress of each pending leg, in tier order (an unknown ETA makes later ones unknown too).

    ``elsewhere``: another process holds the build lock (``ragmem index``): building, progress unknown.
    """
    out: dict[str, LegProgress] = {}
    before: float | None = 0.0  # seconds until the legs ahead of this one are published
    for leg in pending:
        if job is None or not job.running:
            failed = job is not None and job.error is not None
            state: LegState = "failed" if failed else "building" if elsewhere else "stopped"
            out[leg] = LegProgress(leg, state, 0.0, None, job.error if failed else None)
            continue
        progress, remaining = _running_leg(leg, job, rates)
        eta = None if before is None or remaining is None else round(before + remaining, 1)
        out[leg] = LegProgress(leg, "building" if progress > 0 or _started(leg, job) else "queued",
                               round(progress, 3), eta)
        before = eta
    return out


def _started(leg: str, job: BuildProgress) -> bool:
    return any(job.stage_seconds(stage) is not None for stage, _ in LEG_STAGES.get(leg, ()))


def _running_leg(leg: str, job: BuildProgress, rates: LegRates) -> tuple[float, float | None]:
    """(share done, seconds left) of one leg of a running build."""
    stages = LEG_STAGES.get(leg, ())
    names = [stage for stage, _ in stages]
    if job.stage not in names:
        if _started(leg, job):  # all its stages ran: only the publish is left
            return 1.0, 0.0
        return 0.0, rates.expected(leg, job.chunks)
    position = names.index(job.stage)
    progress = (sum(share for _, share in stages[:position])
                + stages[position][1] * min(max(job.fraction, 0.0), 1.0))
    elapsed = sum(job.stage_seconds(stage) or 0.0 for stage in names[: position + 1])
    if progress >= MIN_FRACTION_FOR_ETA or (progress > 0 and elapsed >= MIN_SECONDS_FOR_ETA):
        return progress, elapsed * (1 - progress) / progress
    expected = rates.expected(leg, job.chunks)
    return progress, None if expected is None else max(expected - elapsed, 0.0)


def describe(progress: Mapping[str, LegProgress]) -> dict[str, dict]:
    """The JSON form (HTTP ``pending``, ``GET /collections/{name}``)."""
    return {leg: {"state": p.state, "progress": p.progress, "eta_seconds": p.eta_seconds,
                  **({"error": p.error} if p.error else {})} for leg, p in progress.items()}
