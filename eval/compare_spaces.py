"""Dense retrieval alone in each embedding space and in their mixes, passage by passage.

Why this exists: it is the measurement behind the joint space's two rules
(``service.engine.fusion.space_weights``): how the two spaces compare alone, whether weights by
1/spread beat raw equal weights, and what the second space does to same-language questions when
it is *not* gated by term coverage. Each passage is embedded whole (no chunking), every question
is scored against every passage, and Recall@k is the share of a question's gold passages in its
top k. The per-query coverage gate is not applied here (``make eval`` measures the shipped rule).

    python -m eval.compare_spaces ../shared/bench/xquad_en2zh.json ../shared/bench/musique_100.json
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from eval.datasets import load_dataset
from indexing.embedder import load_embedder
from indexing.joint_embedder import JointEmbedder

log = logging.getLogger("ragmem.eval.compare_spaces")
KS = (1, 2, 5)


def recall(scores: np.ndarray, gold: list[list[int]], k: int) -> float:
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean([len(set(g) & set(row.tolist())) / len(g) for g, row in zip(gold, top)]))


def compare(path: Path, joint: JointEmbedder) -> list[tuple[str, list[float]]]:
    dataset = load_dataset(path)
    position = {p.key: i for i, p in enumerate(dataset.passages)}
    texts = [f"{p.title}\n{p.text}" if p.title else p.text for p in dataset.passages]
    queries = [q for q in dataset.queries if q.query.strip() and q.gold]
    gold = [[position[g] for g in q.gold] for q in queries]
    passages = joint.encode(texts)
    first, second = joint.split(passages)
    spreads = joint.spreads(passages)
    q_first = np.vstack([joint.primary.encode_query(q.query) for q in queries])
    q_second = np.vstack([joint.spaces[0].encode_query(q.query) for q in queries])
    cos_first, cos_second = q_first @ first.T, q_second @ second.T
    w_first = (1 / spreads[0]) / (1 / spreads[0] + 1 / spreads[1])
    rows = [(joint.primary.name, cos_first), (joint.spaces[0].name, cos_second),
            ("both, equal raw weights", cos_first + cos_second),
            (f"both, weights by 1/spread ({w_first:.2f} / {1 - w_first:.2f})",
             w_first * cos_first + (1 - w_first) * cos_second)]
    log.info("%s: %d passages, %d questions, spreads %s", dataset.name, len(texts), len(queries), spreads)
    return [(label, [recall(scores, gold, k) for k in KS]) for label, scores in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    joint = load_embedder()
    if not isinstance(joint, JointEmbedder):
        raise SystemExit("the configured embedder has one space (RAGMEM_EMBED_CROSS_LINGUAL is empty)")
    lines = ["| set | space | " + " | ".join(f"R@{k}" for k in KS) + " |", "|---|---|" + "---:|" * len(KS)]
    for path in args.datasets:
        for label, values in compare(path, joint):
            lines.append(f"| {path.stem} | {label} | " + " | ".join(f"{v:.3f}" for v in values) + " |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
