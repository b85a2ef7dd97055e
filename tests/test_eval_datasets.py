"""Benchmark adapters: each layout on tiny files written here, plus the real ../shared/bench
files when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.datasets import EvalDataset, load_dataset

BENCH = Path(__file__).resolve().parents[2] / "shared" / "bench"
if not BENCH.is_dir():
    BENCH = Path("/work/shared/bench")
needs_bench = pytest.mark.skipif(not BENCH.is_dir(), reason="shared bench data not present")


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def by_key(ds: EvalDataset) -> dict[str, str]:
    return {p.key: p.text for p in ds.passages}


# --------------------------------------------------------------------------- HotpotQA

HOTPOT_ITEMS = [
    {
        "_id": "q1",
        "question": "Which city hosts Alpha?",
        "answer": "Paris",
        "supporting_facts": [["Alpha", 0], ["Beta", 1], ["Alpha", 1]],
        "context": [["Alpha", ["Alpha is a club.", " It is in Paris."]], ["Gamma", ["Gamma is noise."]],
                    ["Beta", ["Beta is a river.", " It flows."]]],
    },
    {
        "_id": "q2",
        "question": "What is Gamma?",
        "answer": "noise",
        "supporting_facts": [["Gamma", 0]],
        # same title, slightly different text: raw layout dedupes by title, keeps the first
        "context": [["Gamma", ["Gamma is noise!"]], ["Delta", ["Delta.", "No leading space."]]],
    },
]


def test_hipporag_hotpotqa(tmp_path):
    q = write_json(tmp_path / "hotpotqa_mini.json", HOTPOT_ITEMS)
    write_json(tmp_path / "hotpotqa_mini_corpus.json", {
        "Alpha": ["Alpha is a club.", " It is in Paris."],
        "Beta": ["Beta is a river.", " It flows."],
        "Gamma": ["Gamma is noise."],
        "Delta": ["Delta.", "No leading space."],
    })
    ds = load_dataset(q)
    assert (ds.name, ds.layout) == ("hotpotqa_mini", "hipporag_hotpotqa")
    texts = by_key(ds)
    assert texts["Alpha"] == "Alpha is a club. It is in Paris."  # sentences carry their own space
    assert texts["Delta"] == "Delta. No leading space."  # a space is added where none exists
    assert [(x.qid, x.gold, x.answers) for x in ds.queries] == [
        ("q1", ["Alpha", "Beta"], ["Paris"]),  # supporting titles deduplicated, in order
        ("q2", ["Gamma"], ["noise"]),
    ]
    docs = ds.corpus_documents()
    assert docs[0] == {"title": "Alpha", "text": "Alpha is a club. It is in Paris.", "doc_key": "Alpha"}
    assert len(docs) == 4


def test_hipporag_hotpotqa_duplicate_titles_resolved_by_context_text(tmp_path):
    # 2Wiki-style list corpus where two passages share a title: the question's own context
    # text decides which one is gold.
    items = [{"_id": "w1", "question": "q?", "answer": "two", "supporting_facts": [["Same", 0]],
              "context": [["Same", ["Second", "version."]]]}]
    q = write_json(tmp_path / "2wiki_mini.json", items)
    write_json(tmp_path / "2wiki_mini_corpus.json", [
        {"title": "Same", "text": "First version."},
        {"title": "Same", "text": "Second version."},
        {"title": "Other", "text": "x"},
    ])
    ds = load_dataset(q)
    assert [p.key for p in ds.passages] == ["Same#1", "Same#2", "Other"]
    assert ds.queries[0].gold == ["Same#2"]


def test_raw_hotpotqa_pools_contexts(tmp_path):
    ds = load_dataset(write_json(tmp_path / "hotpot_dev.json", HOTPOT_ITEMS))
    assert (ds.name, ds.layout) == ("hotpot_dev", "hotpotqa")
    assert [p.key for p in ds.passages] == ["Alpha", "Gamma", "Beta", "Delta"]  # Gamma once
    assert by_key(ds)["Gamma"] == "Gamma is noise."  # first text kept
    assert ds.queries[1].gold == ["Gamma"]
    assert ds.queries[0].gold == ["Alpha", "Beta"]


def test_hotpot_gold_missing_from_corpus_is_dropped(tmp_path, caplog):
    q = write_json(tmp_path / "h.json", HOTPOT_ITEMS[:1])
    write_json(tmp_path / "h_corpus.json", {"Alpha": ["Alpha is a club."]})
    ds = load_dataset(q)
    assert ds.queries[0].gold == ["Alpha"]
    assert "not found" in caplog.text


# --------------------------------------------------------------------------- MuSiQue

MUSIQUE_ITEMS = [
    {
        "id": "2hop__1",
        "question": "Who founded the club in the city?",
        "answer": "Ann",
        "answer_aliases": ["Ann B.", "Ann"],
        "paragraphs": [
            {"idx": 0, "title": "Club", "paragraph_text": "The club is old.", "is_supporting": False},
            {"idx": 1, "title": "Club", "paragraph_text": "The club was founded by Ann.", "is_supporting": True},
            {"idx": 2, "title": "City", "paragraph_text": "The city has a club.", "is_supporting": True},
        ],
    },
    {
        "id": "2hop__2",
        "question": "How old is the club?",
        "answer": "old",
        "answer_aliases": [],
        "paragraphs": [
            {"idx": 0, "title": "Club", "paragraph_text": "The club is old.", "is_supporting": True},
            {"idx": 1, "title": "City", "paragraph_text": "The city has a club.", "is_supporting": False},
        ],
    },
]


def test_hipporag_musique_maps_supporting_by_text(tmp_path):
    q = write_json(tmp_path / "musique_mini.json", MUSIQUE_ITEMS)
    write_json(tmp_path / "musique_mini_corpus.json", [
        {"title": "Club", "text": "The club is old."},
        {"title": "City", "text": "The city has a club."},
        {"title": "Club", "text": "The club was founded by Ann."},
    ])
    ds = load_dataset(q)
    assert (ds.name, ds.layout) == ("musique_mini", "hipporag_musique")
    assert [p.key for p in ds.passages] == ["Club#1", "City", "Club#2"]
    q1, q2 = ds.queries
    assert q1.gold == ["Club#2", "City"]  # the "founded by" paragraph, not the first "Club"
    assert q2.gold == ["Club#1"]
    assert q1.answers == ["Ann", "Ann B."]
    texts = by_key(ds)
    assert texts["Club#2"] == "The club was founded by Ann."


def test_raw_musique_pools_paragraphs(tmp_path):
    ds = load_dataset(write_json(tmp_path / "musique_dev.json", MUSIQUE_ITEMS))
    assert ds.layout == "musique"
    assert [(p.key, p.text) for p in ds.passages] == [
        ("Club#1", "The club is old."),
        ("Club#2", "The club was founded by Ann."),
        ("City", "The city has a club."),
    ]
    assert ds.queries[0].gold == ["Club#2", "City"]
    assert ds.queries[1].gold == ["Club#1"]


# --------------------------------------------------------------------------- SQuAD / CMRC


def test_squad_gold_is_question_paragraph(tmp_path):
    data = {"version": "v1.0", "data": [
        {"id": "A", "title": "泡泡战士", "paragraphs": [
            {"id": "A_1", "context": "玩家以水枪泡封敌人。生命数耗完即算为踢爆。",
             "qas": [{"id": "A_1_Q0", "question": "生命数耗完即算为什么？", "answers": [{"text": "踢爆", "answer_start": 18}]}]},
        ]},
        {"paragraphs": [  # no title, no paragraph id
            {"context": "Second paragraph about rivers and lakes.",
             "qas": [{"id": "B_Q0", "question": "About what?", "answers": [{"text": "rivers"}, {"text": "rivers"}, {"text": "lakes"}]},
                     {"id": "B_Q1", "question": "Unanswerable?", "answers": [], "is_impossible": True}]},
        ]},
    ]}
    ds = load_dataset(write_json(tmp_path / "cmrc_mini.json", data))
    assert (ds.name, ds.layout) == ("cmrc_mini", "squad")
    assert [(p.key, p.title) for p in ds.passages] == [("A_1", "泡泡战士"), ("p1", "Second paragraph about rivers and lakes.")]
    assert [(q.qid, q.gold, q.answers) for q in ds.queries] == [
        ("A_1_Q0", ["A_1"], ["踢爆"]),
        ("B_Q0", ["p1"], ["rivers", "lakes"]),
    ]


# --------------------------------------------------------------------------- BEIR


def make_beir(root: Path) -> Path:
    write_jsonl(root / "corpus.jsonl", [
        {"_id": "d1", "title": "One", "text": "first doc"},
        {"_id": "d2", "title": "Two", "text": "second doc"},
        {"_id": "d3", "title": "", "text": "third doc"},
    ])
    write_jsonl(root / "queries.jsonl", [
        {"_id": "q1", "text": "which first?"},
        {"_id": "q2", "text": "only judged irrelevant"},
        {"_id": "q3", "text": "no qrels at all"},
    ])
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq1\td3\t2\nq2\td2\t0\n", encoding="utf-8"
    )
    return root


def test_beir_directory_and_corpus_file(tmp_path):
    root = make_beir(tmp_path / "scifact")
    for path in (root, root / "corpus.jsonl"):
        ds = load_dataset(path)
        assert (ds.name, ds.layout) == ("scifact", "beir")
        assert [p.key for p in ds.passages] == ["d1", "d2", "d3"]
        assert [(q.qid, q.query, q.gold) for q in ds.queries] == [("q1", "which first?", ["d1", "d3"])]  # score 0 excluded


# --------------------------------------------------------------------------- plain JSONL


def test_plain_jsonl_gold_titles_and_ids(tmp_path):
    q = write_jsonl(tmp_path / "mine.jsonl", [
        {"query": "where is alpha?", "gold_titles": ["Alpha"], "answers": ["Paris"]},
        {"id": "z", "question": "beta?", "gold_titles": "Beta"},
        {"query": "missing", "gold_titles": ["Nope"]},
    ])
    write_jsonl(tmp_path / "mine_corpus.jsonl", [
        {"title": "Alpha", "text": "Alpha is in Paris."},
        {"title": "Beta", "text": "Beta flows."},
    ])
    ds = load_dataset(q)
    assert (ds.name, ds.layout) == ("mine", "jsonl")
    assert [(x.qid, x.query, x.gold, x.answers) for x in ds.queries] == [
        ("0", "where is alpha?", ["Alpha"], ["Paris"]),
        ("z", "beta?", ["Beta"], []),
        ("2", "missing", [], []),
    ]


def test_plain_jsonl_gold_doc_ids(tmp_path):
    q = write_jsonl(tmp_path / "ids.jsonl", [{"query": "q", "gold_doc_ids": ["7", 9]}])
    write_json(tmp_path / "ids_corpus.json", [
        {"id": 7, "title": "Seven", "text": "s"},
        {"id": 9, "title": "Nine", "text": "n"},
        {"id": 11, "title": "Seven", "text": "other seven"},
    ])
    ds = load_dataset(q)
    assert [p.key for p in ds.passages] == ["7", "9", "11"]
    assert ds.queries[0].gold == ["7", "9"]


def test_plain_jsonl_answers_only(tmp_path):
    q = write_jsonl(tmp_path / "ans.jsonl", [{"query": "capital of France?", "answers": ["Paris", "paris"]}])
    write_json(tmp_path / "ans_corpus.json", [{"title": "France", "text": "Paris is the capital."}])
    ds = load_dataset(q)
    assert ds.queries[0].gold == []
    assert ds.queries[0].answers == ["Paris", "paris"]
    assert len(ds.passages) == 1


def test_plain_jsonl_needs_corpus(tmp_path):
    q = write_jsonl(tmp_path / "lonely.jsonl", [{"query": "q", "answers": ["a"]}])
    with pytest.raises(ValueError, match="lonely_corpus"):
        load_dataset(q)


# --------------------------------------------------------------------------- detection


def test_layout_detected_from_content_not_name(tmp_path):
    # a MuSiQue file named like HotpotQA, and a SQuAD file with a .jsonl-free odd name
    ds = load_dataset(write_json(tmp_path / "hotpotqa_looking.json", MUSIQUE_ITEMS))
    assert ds.layout == "musique"
    squad = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "1", "question": "q", "answers": [{"text": "c"}]}]}]}]}
    assert load_dataset(write_json(tmp_path / "data.txt", squad)).layout == "squad"


def test_unknown_layout_errors_name_file_and_content(tmp_path):
    bad = write_json(tmp_path / "weird.json", [{"foo": 1, "bar": 2}])
    with pytest.raises(ValueError, match=r"weird\.json.*\['bar', 'foo'\]"):
        load_dataset(bad)
    with pytest.raises(ValueError, match="passage corpus"):
        load_dataset(write_json(tmp_path / "x_corpus.json", {"Title": ["a sentence."]}))
    with pytest.raises(ValueError, match="empty list"):
        load_dataset(write_json(tmp_path / "empty.json", []))
    notjson = tmp_path / "notjson.json"
    notjson.write_text("this is not json", encoding="utf-8")
    with pytest.raises(ValueError, match="notjson"):
        load_dataset(notjson)
    (tmp_path / "somedir").mkdir()
    with pytest.raises(ValueError, match="BEIR"):
        load_dataset(tmp_path / "somedir")
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path / "absent.json")


# --------------------------------------------------------------------------- real benchmarks


def check_gold_exists(ds: EvalDataset) -> None:
    keys = [p.key for p in ds.passages]
    assert len(set(keys)) == len(keys)
    assert all(q.gold for q in ds.queries)
    assert all(g in set(keys) for q in ds.queries for g in q.gold)


@needs_bench
def test_real_hotpotqa_100():
    ds = load_dataset(BENCH / "hotpotqa_100.json")
    assert (ds.name, ds.layout, len(ds.queries), len(ds.passages)) == ("hotpotqa_100", "hipporag_hotpotqa", 100, 994)
    check_gold_exists(ds)
    assert sum(len(q.gold) for q in ds.queries) == 200  # two supporting titles per question
    assert all(q.answers for q in ds.queries)


@needs_bench
def test_real_musique_100():
    ds = load_dataset(BENCH / "musique_100.json")
    assert (ds.name, ds.layout, len(ds.queries), len(ds.passages)) == ("musique_100", "hipporag_musique", 100, 1890)
    check_gold_exists(ds)
    # every supporting paragraph maps to the passage with exactly its text, duplicates included
    texts = by_key(ds)
    items = json.loads((BENCH / "musique_100.json").read_text(encoding="utf-8"))
    for item, query in zip(items, ds.queries):
        supporting = [p["paragraph_text"] for p in item["paragraphs"] if p["is_supporting"]]
        assert [texts[g] for g in query.gold] == supporting
    assert any("#" in g for q in ds.queries for g in q.gold)  # duplicate titles occur among gold


@needs_bench
def test_real_cmrc2018_trial():
    ds = load_dataset(BENCH / "cmrc2018_trial.json")
    assert (ds.name, ds.layout, len(ds.queries), len(ds.passages)) == ("cmrc2018_trial", "squad", 1002, 256)
    check_gold_exists(ds)
    texts = by_key(ds)
    assert all(any(a in texts[q.gold[0]] for a in q.answers) for q in ds.queries)
