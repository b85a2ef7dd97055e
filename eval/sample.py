"""A tiny self-made benchmark for `make eval` on machines without ../shared (HippoRAG layout)."""

from __future__ import annotations

import json
from pathlib import Path

_PASSAGES = [
    ("Aurora Station", "Aurora Station is a research base on the Keldar ice shelf, founded in 1987 by the Nordic Polar Institute."),
    ("Nordic Polar Institute", "The Nordic Polar Institute is headquartered in Tromsø and is directed by glaciologist Ingrid Vale."),
    ("Ingrid Vale", "Ingrid Vale is a glaciologist who studied ice cores at Aurora Station before becoming director."),
    ("Keldar ice shelf", "The Keldar ice shelf is a floating sheet of ice fed by three glaciers in the southern ocean."),
    ("Marrow Bridge", "Marrow Bridge is a stone arch bridge over the river Tess, completed in 1742 by mason Tobias Hale."),
    ("Tobias Hale", "Tobias Hale was an English mason born in Durham who also built the Tess Mill."),
    ("Tess Mill", "Tess Mill is a watermill on the river Tess that ground wheat until 1911."),
    ("River Tess", "The river Tess flows east through Durham county into the North Sea."),
    ("星河大学", "星河大学位于青岚市，创建于1952年，以天文学和海洋科学见长。"),
    ("青岚市", "青岚市是一座沿海城市，港口贸易发达，市花为白玉兰。"),
    ("林知远", "林知远是星河大学天文系首任系主任，主持建造了青岚天文台。"),
    ("青岚天文台", "青岚天文台建于1965年，拥有一台口径两米的反射望远镜。"),
]
_QUESTIONS = [
    ("Who directs the institute that founded Aurora Station?", ["Aurora Station", "Nordic Polar Institute"], "Ingrid Vale"),
    ("Where was the mason of Marrow Bridge born?", ["Marrow Bridge", "Tobias Hale"], "Durham"),
    ("What did the mill on the river Tess grind?", ["Tess Mill"], "wheat"),
    ("星河大学天文系首任系主任主持建造了哪座天文台？", ["林知远"], "青岚天文台"),
    ("星河大学所在城市的市花是什么？", ["星河大学", "青岚市"], "白玉兰"),
    ("青岚天文台的望远镜口径是多少？", ["青岚天文台"], "两米"),
]


def write_sample(directory: Path) -> Path:
    """Write ``ragmem_sample.json`` + ``ragmem_sample_corpus.json`` and return the question file."""
    directory.mkdir(parents=True, exist_ok=True)
    corpus = [{"title": t, "text": x} for t, x in _PASSAGES]
    questions = [{"_id": f"s{i}", "question": q, "answer": a,
                  "supporting_facts": [[title, 0] for title in gold],
                  "context": [[t, [x]] for t, x in _PASSAGES]} for i, (q, gold, a) in enumerate(_QUESTIONS)]
    (directory / "ragmem_sample_corpus.json").write_text(json.dumps(corpus, ensure_ascii=False))
    path = directory / "ragmem_sample.json"
    path.write_text(json.dumps(questions, ensure_ascii=False))
    return path
