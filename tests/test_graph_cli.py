"""Graph memory inside a real index build, and the `ragmem graph` commands as subprocesses."""

import subprocess
import sys
from pathlib import Path

import networkx

from indexing.build_format import GRAPH_DIR
from indexing.builder import build_collection
from indexing.collection import open_collection
from eval.generated_corpus import write_json_corpus

RAGMEM = [str(Path(sys.executable).parent / "ragmem")]


def test_graph_is_built_published_and_exported(tmp_path, settings):
    corpus = write_json_corpus(tmp_path / "g.json", n_docs=8, seed=3)
    summary = build_collection(corpus, "g", settings, show_progress=False)
    assert (summary.build_dir / GRAPH_DIR).is_dir()
    collection = open_collection(settings.data_dir, "g")
    info = collection.manifest["graph"]
    assert info["entities"] > 0 and info["triples"] > 0 and info["chunks"] == collection.store.n_chunks
    assert "graph" in collection.manifest["stage_seconds"] and set(info["stage_seconds"]) >= {"extract", "embed"}
    memory = collection.graph
    for t in range(memory.n_triples):  # provenance points at real chunks whose text holds the tail
        row, start, end = memory.triple_spans[t][0]
        text = collection.store.chunks([row])[0].text
        assert 0 <= start < end <= len(text)

    out = tmp_path / "g.graphml"
    done = subprocess.run(RAGMEM + ["graph", "export", "--collection", "g", "--format", "graphml", "--out", str(out),
                                    "--data-dir", str(settings.data_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    exported = networkx.read_graphml(out)
    assert exported.number_of_nodes() == memory.n_entities + memory.n_chunks
    kinds = {d["type"] for _, _, d in exported.edges(data=True)}
    assert {"relation", "mention"} <= kinds

    png = tmp_path / "sub.png"
    done = subprocess.run(RAGMEM + ["graph", "show", "--collection", "g", "--query", "Jazz New Orleans blues",
                                    "--out", str(png), "--data-dir", str(settings.data_dir)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "triples)" in done.stdout

    missing = subprocess.run(RAGMEM + ["graph", "export", "--collection", "nope", "--data-dir",
                                       str(settings.data_dir)], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "nope" in missing.stderr
