"""Small self-made corpora, so the tests and benchmarks never depend on ../shared."""

from __future__ import annotations

import json
import random
from pathlib import Path

ZH_TOPICS = [
    ("量子计算", "量子比特利用叠加和纠缠进行计算，超导量子芯片需要在极低温度下运行。"),
    ("大熊猫保护", "四川卧龙自然保护区是大熊猫的重要栖息地，竹子是它们最主要的食物。"),
    ("高速铁路", "京沪高铁全长一千三百多公里，最高运营时速达到三百五十公里。"),
    ("茶文化", "龙井茶产于杭州西湖一带，以色绿、香郁、味甘、形美著称。"),
    ("长城历史", "明长城东起山海关西至嘉峪关，是古代重要的军事防御工程。"),
    ("人工智能", "大模型通过海量文本预训练获得语言能力，再经过指令微调对齐人类偏好。"),
]
EN_TOPICS = [
    ("Photosynthesis", "Plants convert sunlight, water and carbon dioxide into glucose and oxygen inside chloroplasts."),
    ("Volcanoes", "Magma rises through the crust and erupts as lava, ash and volcanic gases from the vent."),
    ("Jazz history", "Jazz originated in New Orleans in the early twentieth century, blending blues and ragtime."),
    ("Coral reefs", "Coral polyps build calcium carbonate skeletons and host symbiotic algae called zooxanthellae."),
    ("Marathon", "The marathon distance of 42.195 kilometres was standardised after the 1908 London Olympics."),
    ("Compilers", "A compiler parses source code into an abstract syntax tree before optimising and emitting machine code."),
]


def make_documents(n_docs: int, seed: int = 0, paragraphs: int = 4) -> list[dict]:
    """Mixed Chinese/English web-article-like documents (title/page_body), each about one topic."""
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        zh = i % 2 == 0
        title, fact = (ZH_TOPICS if zh else EN_TOPICS)[(i // 2) % len(ZH_TOPICS)]
        body = []
        for p in range(paragraphs):
            sentences = [fact]
            for _ in range(rng.randint(2, 5)):
                if zh:
                    sentences.append(rng.choice(ZH_TOPICS)[1][: rng.randint(8, 30)] + "。")
                else:
                    sentences.append(" ".join(rng.choice(EN_TOPICS)[1].split()[: rng.randint(5, 14)]) + ".")
            body.append(("" if zh else " ").join(sentences) + f" (section {p + 1} of document {i})")
        docs.append({"title": f"{title} {i}", "page_body": "\n\n".join(body), "url": f"https://example.org/{i}"})
    return docs


def write_json_corpus(path: Path, n_docs: int = 12, seed: int = 0, paragraphs: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(make_documents(n_docs, seed, paragraphs), ensure_ascii=False), encoding="utf-8")
    return path
