"""On-demand builds of json_path corpora: a small worker pool, a wall-clock limit, cancellation.

Each build runs in one of ``build_workers`` threads, so one slow or huge corpus never holds up
another path's build. Builds are cancelled cooperatively: the builder reports progress (per
loaded file, every few hundred chunked documents, every embedding batch, every graph stage)
and the job's progress callback raises :class:`BuildCancelled` once the job is cancelled or past
its deadline. The builder then removes its staging directory, and a first build that never
published removes its collection directory too, so a failed build leaves nothing behind.

Builds publish leg by leg (``indexing.builder``); a job hears of each tier (``tier_published``),
and ``answerable`` is set once the first one (BM25) is out, so a waiting request can answer from
it instead of waiting for the whole build.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from indexing import publish
from indexing.build_format import read_manifest
from indexing.builder import build_collection
from indexing.documents import CorpusError, CorpusTooLarge
from indexing.file_gate import ReadLimits
from indexing.settings import Settings
from service.collections.errors import Busy
from service.collections.readiness import LegProgress, LegRates, leg_progress

log = logging.getLogger("ragmem.service.collections.build_jobs")


class BuildCancelled(Exception):
    """Raised inside a build's progress callback to stop it."""


@dataclass
class BuildJob:
    name: str
    path: Path
    signature: tuple[int, int]
    shown_path: str
    """The corpus as callers see it (relative to its corpus root: no absolute paths leak)."""
    deadline: float
    future: Future | None = None
    stage: str = "queued"
    fraction: float = 0.0
    started_at: float = field(default_factory=time.time)
    error: str | None = None
    too_large: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    answerable: threading.Event = field(default_factory=threading.Event)
    """Set when the first tier is published, or when the job ends (either way: stop waiting)."""
    published_legs: list[str] = field(default_factory=list)
    chunks: int = 0
    """Chunks of the build (known once its first tier is published)."""
    _stage_started: dict[str, float] = field(default_factory=dict)
    _stage_ended: dict[str, float] = field(default_factory=dict)

    def update(self, stage: str, fraction: float) -> None:
        if stage != self.stage:
            now = time.monotonic()
            self._stage_ended.setdefault(self.stage, now)
            self._stage_started.setdefault(stage, now)
        self.stage, self.fraction = stage, fraction
        self.check()

    def stage_seconds(self, stage: str) -> float | None:
        started = self._stage_started.get(stage)
        if started is None:
            return None
        return self._stage_ended.get(stage, time.monotonic()) - started

    def tier_published(self, leg: str, build_dir: Path) -> None:
        if not self.published_legs:
            self.chunks = read_manifest(build_dir).counts.chunks
        self.published_legs.append(leg)
        self.answerable.set()

    def check(self) -> None:
        if self.cancelled.is_set():
            raise BuildCancelled("the build was cancelled")
        if time.monotonic() > self.deadline:
            raise BuildCancelled("the build ran past its wall-clock limit (RAGMEM_BUILD_TIMEOUT_SECONDS)")

    @property
    def running(self) -> bool:
        return self.future is not None and not self.future.done()

    def describe(self) -> dict:
        return {"status": "failed" if self.error else "building", "stage": self.stage,
                "progress": round(self.fraction, 3), "started_at": self.started_at, "corpus": self.shown_path,
                "published_legs": list(self.published_legs), **({"error": self.error} if self.error else {})}


class BuildJobs:
    """The json_path builds of one process, keyed by corpus path."""

    def __init__(self, settings: Settings, roots: list[Path], hide: Callable[[str], str] = str) -> None:
        self.settings = settings
        self.roots = roots
        self._hide = hide
        """Strips absolute paths from error messages that callers will see."""
        self._jobs: dict[Path, BuildJob] = {}
        self._built: dict[Path, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=settings.build_workers, thread_name_prefix="ragmem-build")
        self.rates = LegRates()
        """Seconds per chunk of each leg in this process's last completed build (ETA priors)."""

    def job(self, path: Path) -> BuildJob | None:
        return self._jobs.get(path)

    def job_for_name(self, name: str) -> BuildJob | None:
        return next((job for job in list(self._jobs.values()) if job.name == name), None)

    def built(self, path: Path, signature: tuple[int, int]) -> bool:
        return self._built.get(path) == signature

    def in_flight(self) -> list[BuildJob]:
        return [job for job in list(self._jobs.values()) if job.running]

    def progress(self, name: str, pending: tuple[str, ...], root: Path) -> dict[str, LegProgress]:
        """Progress and ETA of collection ``name``'s ``pending`` legs (see ``readiness``); ``root`` is
        its directory, whose build lock tells whether another process builds it."""
        job = self.job_for_name(name)
        elsewhere = (job is None or not job.running) and publish.build_running(root)
        return leg_progress(pending, job, self.rates, elsewhere)

    def start(self, name: str, path: Path, signature: tuple[int, int], shown_path: str,
              admit: Callable[[], None] = lambda: None) -> BuildJob:
        """The running job for ``path``, or a new one; ``admit`` may refuse a new one (quotas)."""
        with self._lock:
            job = self._jobs.get(path)
            if job is not None and job.running:
                return job
            busy = len(self.in_flight())
            if busy >= self.settings.build_workers + self.settings.max_queued_builds:
                raise Busy(f"{busy} json_path builds are running or queued (RAGMEM_BUILD_WORKERS + "
                           "RAGMEM_MAX_QUEUED_BUILDS); retry later", {"Retry-After": "30"})
            admit()
            job = BuildJob(name=name, path=path, signature=signature, shown_path=shown_path,
                           deadline=time.monotonic() + self.settings.build_timeout_seconds)
            job.future = self._executor.submit(self._run, job)
            self._jobs[path] = job
            return job

    def cancel(self, name: str) -> bool:
        """Ask the running build of collection ``name`` to stop; False when none runs."""
        job = self.job_for_name(name)
        if job is None or not job.running:
            return False
        job.cancelled.set()
        return True

    def _run(self, job: BuildJob) -> None:
        try:
            job.check()  # a job that waited in the queue past its deadline never starts
            summary = build_collection(job.path, job.name, self.settings, show_progress=False, progress=job.update,
                                       roots=self.roots, limits=ReadLimits.from_settings(self.settings),
                                       cancel=job.check, on_tier=job.tier_published)
            self._built[job.path] = job.signature
            if not summary.unchanged:
                self.rates.record(summary.stage_seconds, summary.chunks)
            job.stage, job.fraction = "done", 1.0
        except BuildCancelled as exc:
            job.error = str(exc)
            log.warning("build of %s stopped: %s", job.path, exc)
        except (CorpusError, OSError, ValueError) as exc:
            job.error = self._hide(str(exc))
            job.too_large = isinstance(exc, CorpusTooLarge)
            log.warning("build of %s failed: %s", job.path, exc)
        except Exception as exc:  # keep the worker alive; report the failure on the job
            job.error = f"{exc.__class__.__name__}: {exc}"
            log.exception("build of %s crashed", job.shown_path)
        finally:
            job.answerable.set()

    def close(self) -> None:
        for job in self.in_flight():
            job.cancelled.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
