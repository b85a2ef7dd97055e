"""Progress and ETA of a collection's pending legs (service.collections.readiness)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from service.collections.readiness import LegRates, describe, leg_progress


@dataclass
class FakeBuild:
    """A running build as BuildJob reports it: current stage, its fraction, seconds per stage."""

    stage: str
    fraction: float
    chunks: int = 1000
    error: str | None = None
    started: dict[str, float] = field(default_factory=dict)
    alive: bool = True

    @property
    def running(self) -> bool:
        return self.alive

    def stage_seconds(self, stage: str) -> float | None:
        return self.started.get(stage)


PENDING = ("dense", "graph")


def test_rate_past_five_percent_extrapolates_and_later_legs_wait_for_it() -> None:
    job = FakeBuild("embed", 0.10, started={"embed": 10.0})
    rates = LegRates()
    rates.record({"graph": 4.0}, 1000)  # a previous build: 4 ms of graph per chunk
    out = leg_progress(PENDING, job, rates)
    dense, graph = out["dense"], out["graph"]
    assert dense.state == "building" and dense.progress == pytest.approx(0.095)
    assert dense.eta_seconds == pytest.approx(10.0 * (1 - 0.095) / 0.095, abs=0.1)
    assert graph.state == "queued" and graph.progress == 0.0
    assert graph.eta_seconds == pytest.approx(dense.eta_seconds + 4.0, abs=0.1)


def test_no_eta_early_unless_the_leg_ran_long_enough() -> None:
    early = leg_progress(PENDING, FakeBuild("embed", 0.01, started={"embed": 5.0}), LegRates())
    assert early["dense"].eta_seconds is None and early["graph"].eta_seconds is None
    slow = leg_progress(PENDING, FakeBuild("embed", 0.01, started={"embed": 30.0}), LegRates())
    assert slow["dense"].eta_seconds == pytest.approx(30.0 * (1 - 0.0095) / 0.0095, rel=1e-3)
    assert slow["graph"].eta_seconds is None  # no prior for the graph in this process


def test_prior_rate_before_a_leg_starts() -> None:
    rates = LegRates()
    rates.record({"embed": 20.0, "faiss": 1.0, "graph": 2.0}, 100)
    out = leg_progress(PENDING, FakeBuild("bm25", 0.5, chunks=50), rates)
    assert out["dense"].state == "queued" and out["dense"].eta_seconds == pytest.approx(10.5)
    assert out["graph"].eta_seconds == pytest.approx(11.5)


def test_failed_and_stopped_builds_say_so() -> None:
    failed = leg_progress(PENDING, FakeBuild("embed", 0.3, error="out of memory", alive=False), LegRates())
    assert {p.state for p in failed.values()} == {"failed"} and failed["dense"].error == "out of memory"
    stopped = leg_progress(PENDING, None, LegRates())
    assert {p.state for p in stopped.values()} == {"stopped"}
    assert describe(failed)["dense"] == {"state": "failed", "progress": 0.0, "eta_seconds": None,
                                         "error": "out of memory"}
