"""Collections as the service sees them: loaded once, swapped atomically, built on demand.

``json_path`` lets agents keep passing file paths. A path is resolved only inside the allowed
roots (the data root and the configured corpus roots), after following symlinks, so a query can
never read files elsewhere. A path seen for the first time, or changed since, is indexed once
in a background worker; concurrent requests share that build.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TypeVar

from indexing import publish
from indexing.builder import build_collection
from indexing.collection import Collection
from indexing.live import LiveCollection, StaleBuild, WriteReport
from indexing.documents import CorpusError
from indexing.settings import Settings

log = logging.getLogger("ragmem.service.registry")
T = TypeVar("T")

LEGACY_SUFFIX = ".chunks.db"


class ServiceError(Exception):
    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None, extra: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        self.extra = extra or {}


class NotFound(ServiceError):
    status = 404


class Forbidden(ServiceError):
    status = 403


class BadCorpus(ServiceError):
    status = 400


class Building(ServiceError):
    status = 503


@dataclass
class BuildJob:
    name: str
    path: Path
    signature: tuple[int, int]
    future: Future | None = None
    stage: str = "queued"
    fraction: float = 0.0
    started_at: float = field(default_factory=time.time)
    error: str | None = None

    def update(self, stage: str, fraction: float) -> None:
        self.stage, self.fraction = stage, fraction

    def describe(self) -> dict:
        return {"status": "failed" if self.error else "building", "stage": self.stage,
                "progress": round(self.fraction, 3), "started_at": self.started_at, "corpus": str(self.path),
                **({"error": self.error} if self.error else {})}


class CollectionRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = Path(settings.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.roots = [Path(os.path.realpath(self.data_dir))] + [
            Path(os.path.realpath(root)) for root in settings.corpus_roots]
        self._loaded: dict[str, LiveCollection] = {}
        self._lock = threading.Lock()
        self._jobs: dict[Path, BuildJob] = {}
        self._built: dict[Path, tuple[int, int]] = {}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragmem-build")

    # ---- published collections -------------------------------------------------------------
    def names(self) -> list[str]:
        return publish.list_collections(self.data_dir)

    def get(self, name: str) -> Collection:
        """The currently published build; a newer publish is picked up on the next call."""
        try:
            build_dir = publish.current_build_dir(self.data_dir, name)
        except publish.CollectionNameError as exc:
            raise NotFound(str(exc)) from exc
        if build_dir is None:
            job = self._job_for_name(name)
            if job is not None and not job.error:
                raise Building(f"collection {name!r} is being built", {"Retry-After": "5"}, job.describe())
            raise NotFound(f"unknown collection {name!r}")
        return self.live(name, build_dir).snapshot()

    def live(self, name: str, build_dir: Path | None = None) -> LiveCollection:
        """The collection's live view (base build + change journal), reloaded when republished."""
        if build_dir is None:
            build_dir = publish.current_build_dir(self.data_dir, name)
            if build_dir is None:
                raise NotFound(f"unknown collection {name!r}")
        cached = self._loaded.get(name)
        if cached is not None and cached.build_dir == build_dir:
            return cached
        with self._lock:
            cached = self._loaded.get(name)
            if cached is None or cached.build_dir != build_dir:
                cached = LiveCollection(name, build_dir, self.settings)
                self._loaded[name] = cached  # in-flight queries keep their reference to the old build
                log.info("loaded collection %s build %s", name, build_dir.name)
            return cached

    def write(self, name: str, documents: list, deletes: list[str]) -> WriteReport:
        return self._on_current(name, lambda live: live.write(documents, deletes))

    def compact(self, name: str) -> dict:
        return self._on_current(name, LiveCollection.compact)

    def _on_current(self, name: str, action: Callable[[LiveCollection], T]) -> T:
        """Run a write on the published build, retried once if another process republished it meanwhile."""
        try:
            return action(self.live(self._existing(name)))
        except StaleBuild:
            return action(self.live(self._existing(name)))

    def _existing(self, name: str) -> str:
        try:
            if publish.current_build_dir(self.data_dir, name) is None:
                raise NotFound(f"unknown collection {name!r}")
        except publish.CollectionNameError as exc:
            raise NotFound(str(exc)) from exc
        return name

    def describe(self, name: str) -> dict:
        """What ``rag_document_stats`` reports, plus build status while a build runs."""
        job = self._job_for_name(name)
        info: dict = {"name": name}
        if job is not None and (job.error or (job.future is not None and not job.future.done())):
            info["build"] = job.describe()
        try:
            build_dir = publish.current_build_dir(self.data_dir, name)
        except publish.CollectionNameError as exc:
            raise NotFound(str(exc)) from exc
        if build_dir is None:
            if "build" in info:
                info["status"] = info["build"]["status"]
                return info
            raise NotFound(f"unknown collection {name!r}")
        collection = self.get(name)
        manifest = collection.manifest
        info.update({
            "status": "ready",
            "documents": collection.store.n_documents,
            "chunks": collection.store.n_chunks,
            "live_seq": collection.live_seq,
            "skipped": manifest["counts"].get("skipped", 0),
            "embedder": manifest["embedder"],
            "chunking": manifest["chunking"],
            "analyzer": manifest["analyzer"]["name"],
            "faiss": manifest["faiss"],
            "build_id": collection.build_id,
            "created_at": manifest["created_at"],
            "corpus": manifest["corpus"],
            "stage_seconds": manifest["stage_seconds"],
            "document_list": [{"doc_index": d["doc_index"], "doc_id": d["doc_id"], "title": d["title"],
                               "url": d["url"], "chunks": d["n_chunks"], "chars": d["chars"]}
                              for d in collection.store.documents()],
        })
        return info

    def _job_for_name(self, name: str) -> BuildJob | None:
        return next((job for job in list(self._jobs.values()) if job.name == name), None)

    # ---- json_path --------------------------------------------------------------------------
    def resolve_path(self, raw: str) -> Path:
        """Real path of ``raw`` inside an allowed root, or Forbidden/NotFound."""
        if not raw or "\x00" in raw:
            raise BadCorpus("json_path must be a non-empty path")
        path = Path(raw).expanduser()
        if ".." in path.parts:
            raise Forbidden(f"json_path may not contain '..': {raw}")
        candidates = [path] if path.is_absolute() else [root / path for root in self.roots]
        inside_any = False
        for candidate in candidates:
            for option in (candidate, _legacy_json_sibling(candidate)):
                if option is None:
                    continue
                real = Path(os.path.realpath(option))
                if not self._inside_roots(real):
                    continue
                inside_any = True
                try:
                    if real.is_file() or real.is_dir():
                        return real
                except OSError as exc:  # e.g. a path component longer than the file system allows
                    raise BadCorpus(f"json_path cannot be used: {exc.strerror}") from exc
        if not inside_any:
            raise Forbidden(f"json_path is outside the allowed roots: {raw}")
        raise NotFound(f"no such corpus: {raw}")

    def _inside_roots(self, real: Path) -> bool:
        return any(real == root or root in real.parents for root in self.roots)

    @staticmethod
    def name_for_path(path: Path) -> str:
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
        return f"{publish.collection_name_from(path)[:100]}-{digest}"

    def collection_for_path(self, raw: str, wait_seconds: float | None = None) -> Collection:
        path = self.resolve_path(raw)
        name = self.name_for_path(path)
        signature = _signature(path)
        wait = self.settings.build_wait_seconds if wait_seconds is None else wait_seconds
        with self._lock:
            job = self._jobs.get(path)
            up_to_date = self._built.get(path) == signature and publish.current_build_dir(self.data_dir, name)
            if job is not None and job.signature == signature and job.error:
                raise BadCorpus(f"cannot index {raw}: {job.error}")
            if not up_to_date and (job is None or job.future is None or job.future.done()):
                job = BuildJob(name=name, path=path, signature=signature)
                job.future = self._executor.submit(self._build, job)
                self._jobs[path] = job
        if up_to_date:
            return self.get(name)
        try:
            job.future.result(timeout=wait)
        except FutureTimeout:
            retry = max(1, int(round(min(30.0, 2.0 + (time.time() - job.started_at) / 2))))
            raise Building(f"collection for {raw} is being built ({job.stage}, {job.fraction:.0%}); "
                           f"progress at GET /collections/{name}", {"Retry-After": str(retry)},
                           {"collection": name, **job.describe()}) from None
        except Exception:  # the error is recorded on the job by _build
            pass
        if job.error:
            raise BadCorpus(f"cannot index {raw}: {job.error}")
        return self.get(name)

    def _build(self, job: BuildJob) -> None:
        try:
            build_collection(job.path, job.name, self.settings, show_progress=False, progress=job.update)
            self._built[job.path] = job.signature
            job.update("done", 1.0)
        except (CorpusError, OSError, ValueError) as exc:
            job.error = str(exc)
            log.warning("build of %s failed: %s", job.path, exc)
        except Exception as exc:  # keep the worker alive; report the failure on the job
            job.error = f"{exc.__class__.__name__}: {exc}"
            log.exception("build of %s crashed", job.path)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _legacy_json_sibling(path: Path) -> Path | None:
    """Agents pass ``x.json.chunks.db`` (their old cache); if it is absent, the JSON beside it is the corpus."""
    if path.name.endswith(LEGACY_SUFFIX) and not path.exists():
        return path.with_name(path.name[: -len(LEGACY_SUFFIX)])
    return None


def _signature(path: Path) -> tuple[int, int]:
    if path.is_dir():
        latest, total = 0, 0
        for child in path.rglob("*"):
            if child.is_file():
                stat = child.stat()
                latest, total = max(latest, stat.st_mtime_ns), total + stat.st_size
        return latest, total
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
