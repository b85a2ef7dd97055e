"""Collections as the service sees them: loaded once, swapped atomically, built on demand.

``json_path`` lets agents keep passing file paths; :mod:`service.collections.corpus_paths` decides which
file a path names, :mod:`service.collections.build_jobs` builds it (a path seen for the first time, or
changed since, is indexed once; concurrent requests share that build) and
:mod:`service.collections.path_quota` bounds what such builds may take from the data root.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

from indexing import publish
from indexing.build_format import read_manifest
from indexing.collection import Collection
from indexing.embedder import QueryEncoding
from indexing.file_gate import corpus_signature
from indexing.live import LiveCollection, StaleBuild, WriteReport
from indexing.settings import Settings
from service.collections.build_jobs import BuildJob, BuildJobs
from service.collections.corpus_paths import CorpusPaths
from service.collections.errors import (BadCorpus, Building, CorpusTooLarge, Forbidden, NotFound, ServiceError,  # noqa: F401
                            Unauthorized, Unprocessable)
from service.collections.path_quota import PathQuota
from service.collections.readiness import LegProgress, describe as describe_progress

log = logging.getLogger("ragmem.service.collections.registry")
T = TypeVar("T")

MAX_SKIPPED_SHOWN = 100
"""Skipped documents listed by ``describe`` (the build's ingest_report.json has them all)."""


class CollectionRegistry:
    def __init__(self, settings: Settings, query_encoding: QueryEncoding | None = None) -> None:
        self.settings = settings
        self.query_encoding = query_encoding
        """How the collections this registry serves encode queries (None: torch, as index builds do)."""
        self.data_dir = Path(settings.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.paths = CorpusPaths(self.data_dir, list(settings.corpus_roots))
        self.builds = BuildJobs(settings, self.paths.roots, self.paths.hide)
        self.quota = PathQuota(settings.max_path_collections, settings.max_path_collections_bytes)
        self._loaded: dict[str, LiveCollection] = {}
        self._lock = threading.Lock()

    @property
    def roots(self) -> list[Path]:
        """Where json_path may point (the operator's corpus roots)."""
        return self.paths.roots

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
            job = self.builds.job_for_name(name)
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
                cached = LiveCollection(name, build_dir, self.settings, self.query_encoding)
                self._loaded[name] = cached  # in-flight queries keep their reference to the old build
                log.info("loaded collection %s build %s", name, build_dir.name)
            return cached

    def pending(self, collection: Collection) -> dict[str, LegProgress]:
        """Progress of the legs a later tier of ``collection``'s build will add (empty: complete)."""
        if not collection.pending:
            return {}
        return self.builds.progress(collection.name, collection.pending,
                                    publish.collection_root(self.data_dir, collection.name))

    def write(self, name: str, documents: list, deletes: list[str]) -> WriteReport:
        return self._on_current(name, lambda live: live.write(documents, deletes))

    def compact(self, name: str) -> dict:
        return self._on_current(name, LiveCollection.compact)

    def _on_current(self, name: str, action: Callable[[LiveCollection], T]) -> T:
        """Run a write on the published build, retried once if another process republished it meanwhile.

        A build still publishing its legs takes no writes: its next tier would not carry them.
        """
        def run() -> T:
            live = self.live(self._existing(name))
            if live.base.manifest.shards is not None:
                raise Unprocessable(f"collection {name!r} is sharded ({live.base.manifest.shards['count']} shards): "
                                    "it takes no live writes; re-index it (ragmem index --shards) with the changes")
            if live.base.pending:
                progress = self.pending(live.base)
                eta = max((p.eta_seconds or 0.0 for p in progress.values()), default=0.0)
                raise Building(f"collection {name!r} is still being built ({', '.join(live.base.pending)} pending); "
                               "writes are accepted once every leg is published",
                               {"Retry-After": str(max(1, int(round(min(eta, 300.0)))) if eta else 10)},
                               {"pending": describe_progress(progress)})
            return action(live)

        try:
            return run()
        except StaleBuild:
            return run()

    def _existing(self, name: str) -> str:
        try:
            if publish.current_build_dir(self.data_dir, name) is None:
                raise NotFound(f"unknown collection {name!r}")
        except publish.CollectionNameError as exc:
            raise NotFound(str(exc)) from exc
        return name

    def describe(self, name: str) -> dict:
        """What ``rag_document_stats`` reports, plus build status while a build runs."""
        job = self.builds.job_for_name(name)
        info: dict = {"name": name}
        if job is not None and (job.error or job.running):
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
        corpus_path = manifest.corpus.path_or(name)
        info.update({
            "status": "ready",
            "legs": list(collection.legs),
            "pending": describe_progress(self.pending(collection)),
            "documents": collection.store.n_documents,
            "chunks": collection.store.n_chunks,
            "live_seq": collection.live_seq,
            "skipped": manifest.counts.skipped,
            "embedder": manifest.embedder.to_dict(),
            "chunking": manifest.chunking.to_dict(),
            "analyzer": manifest.analyzer.name,
            "faiss": manifest.faiss,
            "build_id": collection.build_id,
            "created_at": manifest.created_at,
            "corpus": {**manifest.corpus.to_dict(), "path": self.paths.shown(corpus_path)},
            "skipped_documents": [{"source": self._shown(skip.source, corpus_path), "doc_index": skip.doc_index,
                                   "reason": self._shown(skip.reason, corpus_path)}
                                  for skip in collection.store.skipped()[:MAX_SKIPPED_SHOWN]],
            "stage_seconds": manifest.stage_seconds,
            "document_list": [{"doc_index": d["doc_index"], "doc_id": d["doc_id"], "title": d["title"],
                               "url": d["url"], "chunks": d["n_chunks"], "chars": d["chars"]}
                              for d in collection.store.documents()],
        })
        return info

    def _shown(self, text: str, corpus_path: Path) -> str:
        """Report text without absolute paths: relative to a root, else to the corpus' folder."""
        return self.paths.hide(text).replace(f"{corpus_path.parent}/", "")

    # ---- json_path --------------------------------------------------------------------------
    def resolve_path(self, raw: str) -> Path:
        return self.paths.resolve(raw)

    def collection_for_path(self, raw: str, wait_seconds: float | None = None, may_build: bool = True) -> Collection:
        """The collection built from ``raw``, building it first when it is new or changed.

        ``may_build`` is False for callers without the key ``RAGMEM_PATH_BUILD_AUTH`` asks for:
        they may search what is built already but not start a build.
        """
        path = self.paths.resolve(raw)
        name = self.paths.collection_name(path)
        signature = corpus_signature(path, self.paths.roots)
        if self.builds.built(path, signature) and publish.current_build_dir(self.data_dir, name):
            return self.get(name)
        job = self.builds.job(path)
        if job is not None and job.signature == signature and job.error:
            if job.published_legs:  # a later tier failed: serve the tiers it published (pending says why)
                return self.get(name)
            raise _build_failure(job, raw)
        if job is not None and job.signature == signature and job.running:  # joining a build needs no key
            self._wait(job, raw, self.settings.build_wait_seconds if wait_seconds is None else wait_seconds)
            return self.get(name)
        if not may_build:
            raise Unauthorized(f"building a collection for a new or changed json_path needs the "
                               f"{self.settings.path_build_auth} key (RAGMEM_PATH_BUILD_AUTH)",
                               {"WWW-Authenticate": 'Bearer realm="ragmem"'})
        job = self.builds.start(name, path, signature, self.paths.shown(path),
                                admit=lambda: self._admit(name, signature))
        self._wait(job, raw, self.settings.build_wait_seconds if wait_seconds is None else wait_seconds)
        return self.get(name)

    def _admit(self, name: str, signature: tuple[int, int]) -> None:
        """Quota check for a build that would add a json_path collection (a rebuild adds none)."""
        if publish.current_build_dir(self.data_dir, name) is not None:
            return
        building = [job.name for job in self.builds.in_flight()]
        existing = [other for other in self.path_collections() if other not in building]
        self.quota.admit(self.data_dir, existing, len(building), signature[1])

    def path_collections(self) -> list[str]:
        """Published collections that json_path requests created (named after their corpus path)."""
        out = []
        for name in self.names():
            build_dir = publish.current_build_dir(self.data_dir, name)
            corpus = read_manifest(build_dir).corpus.path if build_dir else None
            if corpus and self.paths.collection_name(Path(corpus)) == name:
                out.append(name)
        return out

    def _wait(self, job: BuildJob, raw: str, wait: float) -> None:
        """Until the build's first tier (BM25) is published or the build ends, at most ``wait`` s."""
        if not job.answerable.wait(timeout=wait):
            retry = max(1, int(round(min(30.0, 2.0 + (time.time() - job.started_at) / 2))))
            raise Building(f"collection for {raw} is being built ({job.stage}, {job.fraction:.0%}); "
                           f"keyword search opens first; progress at GET /collections/{job.name}",
                           {"Retry-After": str(retry)}, {"collection": job.name, **job.describe()})
        if job.error and not job.published_legs:
            raise _build_failure(job, raw)

    def cancel_build(self, name: str) -> bool:
        return self.builds.cancel(name)

    def close(self) -> None:
        self.builds.close()


def _build_failure(job: BuildJob, raw: str) -> BadCorpus | CorpusTooLarge:
    """What a caller gets for a failed json_path build: 413 for a corpus over a read limit, else 400."""
    return (CorpusTooLarge if job.too_large else BadCorpus)(f"cannot index {raw}: {job.error}")
