"""Micro-batching of concurrent query encodes onto one model.

A transformer forward pass over one 20-token query costs almost as much as over sixteen of
them, and a model shared by many request threads serialises anyway. So concurrent callers hand
their query to one encoder thread, which takes everything waiting at that moment and encodes it
as a single batch. Nothing waits on a timer: an idle encoder starts on the first query at once,
so a lone request pays only a thread hand-off (tens of microseconds), and batches form only
while the model is already busy.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger("ragmem.indexing.query_batching")

EncodeFn = Callable[[Sequence[str]], np.ndarray]


class QueryBatcher:
    def __init__(self, encode: EncodeFn, max_batch: int = 32) -> None:
        self._encode = encode
        self._max_batch = max(1, max_batch)
        self._queue: "queue.SimpleQueue[tuple[str, Future]]" = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.queries = 0

    def encode(self, text: str) -> np.ndarray:
        """The (1, dim) embedding of ``text``; blocks until its batch has been encoded."""
        return self.submit(text).result()

    def submit(self, text: str) -> Future:
        """The future (1, dim) embedding of ``text``, at once: a caller with several models to ask
        (a joint space) queues on all of them before waiting on any, so they run side by side."""
        self._ensure_thread()
        future: Future = Future()
        self._queue.put((text, future))
        return future

    @property
    def mean_batch(self) -> float:
        return self.queries / self.batches if self.batches else 0.0

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="ragmem-query-encoder", daemon=True)
                thread.start()
                self._thread = thread

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.batches += 1
            self.queries += len(batch)
            try:
                vectors = self._encode([text for text, _ in batch])
            except Exception:
                # One bad query must not fail its batch-mates: retry each alone.
                for text, future in batch:
                    self._encode_one(text, future)
                continue
            for row, (_, future) in enumerate(batch):
                future.set_result(vectors[row: row + 1])

    def _encode_one(self, text: str, future: Future) -> None:
        try:
            future.set_result(self._encode([text]))
        except Exception as exc:  # the caller gets the error; the encoder thread lives on
            future.set_exception(exc)
