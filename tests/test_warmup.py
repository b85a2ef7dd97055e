"""Start-up warm-up: a server opens and searches its newest collections before the first request."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from eval.generated_corpus import write_json_corpus
from eval.local_server import server_process
from indexing.builder import build_collection
from indexing.settings import Settings
from service.collections.warmup import newest_collections


def test_server_warms_its_newest_collections(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    for name, seed in (("older", 1), ("newer", 2), ("newest", 3)):
        build_collection(write_json_corpus(tmp_path / f"{name}.json", n_docs=2, seed=seed), name, settings,
                         show_progress=False)
    assert newest_collections(settings, 2) == ["newest", "newer"]
    assert newest_collections(settings, 0) == []

    with server_process(settings.data_dir, env={"RAGMEM_WARM_UP_COLLECTIONS": "2"}) as (url, _proc, log_path):
        deadline = time.time() + 120
        while "collection newer warmed up" not in log_path.read_text():
            assert time.time() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.2)
        log = log_path.read_text()
        assert "collection newest warmed up" in log and "collection older warmed up" not in log
        answer = httpx.post(f"{url}/rag_search", json={"query": "volcano", "collection": "older"}, timeout=60)
        assert answer.status_code == 200 and answer.json()["results"]
