"""Where a sharded build's per-shard work runs: Ray tasks on a cluster, or this process.

Both runners take the same :class:`indexing.sharded_build.ShardJob` objects and call the same two
functions (``chunk_shard``, ``write_shard``), so a sharded build's output does not depend on where
it ran. On Ray, pass 1 returns its statistics to the driver and keeps each shard's chunks in the
object store (``num_returns=2``): pass 2 receives them by reference, so the chunk text is not sent
through the driver twice.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol, Sequence

from indexing.lexical_index import CorpusStats
from indexing.sharded_build import ShardChunks, ShardJob, ShardOutput, chunk_shard, write_shard

log = logging.getLogger("ragmem.indexing.shard_tasks")

RAY_TASK_CPUS = 1
"""CPUs Ray reserves per shard task; each task embeds with this many threads, so S tasks on a
node never oversubscribe it (Ray schedules the rest when CPUs free up)."""


class ShardTasks(Protocol):
    """Runs the two passes over every shard; ``handles`` stand for pass 1's chunks wherever they are."""

    where: str

    def chunk(self, jobs: Sequence[ShardJob]) -> tuple[list[CorpusStats], list[Any]]: ...

    def write(self, jobs: Sequence[ShardJob], handles: Sequence[Any], stats: CorpusStats) -> list[ShardOutput]: ...

    def chunks(self, handles: Sequence[Any]) -> list[ShardChunks]: ...


class LocalTasks:
    """One shard after the other in this process (no Ray installed, or tests)."""

    where = "this process"

    def chunk(self, jobs: Sequence[ShardJob]) -> tuple[list[CorpusStats], list[ShardChunks]]:
        results = [chunk_shard(job) for job in jobs]
        return [stats for stats, _ in results], [chunks for _, chunks in results]

    def write(self, jobs: Sequence[ShardJob], handles: Sequence[ShardChunks], stats: CorpusStats) -> list[ShardOutput]:
        return [write_shard(job, chunks, stats) for job, chunks in zip(jobs, handles)]

    def chunks(self, handles: Sequence[ShardChunks]) -> list[ShardChunks]:
        return list(handles)


class RayTasks:
    """Each shard's passes as Ray tasks on the cluster at ``address`` (None: a local Ray started here)."""

    def __init__(self, address: str | None) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False,
                     configure_logging=False)
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        self.where = (f"Ray ({address or 'local'}, {int(resources.get('CPU', 0))} CPUs"
                      + (f", {gpus} GPUs)" if gpus else ")"))
        self._chunk = ray.remote(num_cpus=RAY_TASK_CPUS, num_returns=2, max_retries=2)(chunk_shard)
        # Embedding is pass 2's cost: on a cluster with GPUs each shard's task takes one (the
        # embedder uses CUDA when it sees one), otherwise one CPU.
        self._write = ray.remote(num_cpus=RAY_TASK_CPUS, num_gpus=1 if gpus else 0, max_retries=2)(write_shard)

    def chunk(self, jobs: Sequence[ShardJob]) -> tuple[list[CorpusStats], list[Any]]:
        refs = [self._chunk.remote(_one_thread(job)) for job in jobs]
        stats = self._ray.get([stats_ref for stats_ref, _ in refs])
        return stats, [chunks_ref for _, chunks_ref in refs]

    def write(self, jobs: Sequence[ShardJob], handles: Sequence[Any], stats: CorpusStats) -> list[ShardOutput]:
        stats_ref = self._ray.put(stats)
        return self._ray.get([self._write.remote(_one_thread(job), ref, stats_ref) for job, ref in zip(jobs, handles)])

    def chunks(self, handles: Sequence[Any]) -> list[ShardChunks]:
        return self._ray.get(list(handles))


def _one_thread(job: ShardJob) -> ShardJob:
    """The job with embedding threads matched to the CPUs Ray reserved for the task."""
    settings = job.settings.model_copy(update={"embed_threads": RAY_TASK_CPUS})
    return ShardJob(job.index, job.documents, settings, job.staging, job.skipped)


def shard_tasks(address: str | None) -> ShardTasks:
    """Ray when it is installed (the ``ray`` extra), else this process, with one log line saying which."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if address:
            raise RuntimeError(f"--ray-address {address} needs Ray: pip install 'ragmem[ray]'") from None
        log.warning("ray is not installed: building the shards one after the other in this process")
        return LocalTasks()
    return RayTasks(address)
