"""Retrieval-benchmark adapters: turn a QA benchmark file into passages + questions with gold keys.

Pure loading, no indexing: the evaluator writes ``EvalDataset.corpus_documents()`` as a JSON
corpus, indexes it like any user corpus, and scores retrieved passage keys against ``gold``.

The layout is detected from the *content* (a file's name only decides where a sibling corpus
is looked for), so renamed files still load and a wrong file fails loudly instead of producing
an empty benchmark. Supported layouts (``EvalDataset.layout``):

``hipporag_hotpotqa``  HippoRAG question file with ``supporting_facts`` (HotpotQA, 2Wiki) and a
                       sibling ``<stem>_corpus.json``; gold = supporting-fact titles.
``hipporag_musique``   HippoRAG question file with ``paragraphs[].is_supporting`` (MuSiQue) and a
                       sibling corpus; gold = supporting paragraphs, matched on title + text.
``hotpotqa``           raw HotpotQA/2Wiki items (``supporting_facts`` + ``context``), no sibling
                       corpus: passages are the pooled contexts, deduplicated by title.
``musique``            raw MuSiQue items, no sibling corpus: pooled paragraphs, deduplicated by
                       title + text.
``squad``              SQuAD-format file (SQuAD, CMRC 2018, DRCD): one passage per paragraph, gold
                       = the paragraph the question was asked on.
``beir``               BEIR directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/*.tsv``).
``jsonl``              plain JSON(L) questions ``{query, gold_titles | gold_doc_ids | answers}``
                       with a sibling ``<stem>_corpus.json(l)``.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("ragmem.eval.datasets")

__all__ = ["EvalDataset", "EvalQuery", "LAYOUTS", "Passage", "load_dataset"]

LAYOUTS = (
    "hipporag_hotpotqa",
    "hipporag_musique",
    "hotpotqa",
    "musique",
    "squad",
    "beir",
    "jsonl",
)

SQUAD_TITLE_CHARS = 40  # title fallback for SQuAD paragraphs whose article has no title
QREL_SPLITS = ("test", "dev", "validation", "train")
_ID_FIELDS = ("id", "_id", "doc_id", "docid")
_QID_FIELDS = ("_id", "id", "qid", "query_id", "question_id")
_QUERY_FIELDS = ("query", "question", "text")
_TEXT_FIELDS = ("text", "paragraph_text", "contents", "content", "context")
_WS_RE = re.compile(r"\s+")


@dataclass
class Passage:
    """One gold unit of a benchmark; ``key`` is what retrieval results are scored by."""

    key: str
    title: str
    text: str


@dataclass
class EvalQuery:
    """A question, its gold passage keys (possibly empty) and its answer strings (possibly empty)."""

    qid: str
    query: str
    gold: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


@dataclass
class EvalDataset:
    name: str
    layout: str
    passages: list[Passage]
    queries: list[EvalQuery]

    def corpus_documents(self) -> list[dict]:
        """One indexer document per passage; ``doc_key`` lets results be mapped back to gold."""
        return [{"title": p.title, "text": p.text, "doc_key": p.key} for p in self.passages]

    def passages_by_key(self) -> dict[str, Passage]:
        """Key → passage, for turning ranked keys into ranked texts (answer recall)."""
        return {p.key: p for p in self.passages}


# --------------------------------------------------------------------------- small helpers


def _squash(text: str) -> str:
    """Whitespace-free NFKC form: the same paragraph joined with "" or " " still matches."""
    return _WS_RE.sub("", unicodedata.normalize("NFKC", text))


def _join_sentences(sentences: Any) -> str:
    """HotpotQA sentences carry their own leading space, so they are concatenated as-is; a
    space is added only where neither side has one (a few source sentences, and 2Wiki-style
    sentence lists, lack it) so words are never glued together."""
    if isinstance(sentences, str):
        return sentences
    out = ""
    for sentence in sentences or []:
        sentence = "" if sentence is None else str(sentence)
        if out and sentence and not out[-1].isspace() and not sentence[0].isspace():
            out += " "
        out += sentence
    return out


def _answers(item: dict) -> list[str]:
    """Answer strings from ``answer`` / ``answers`` / ``answer_aliases`` (str, list, SQuAD dicts,
    HF ``{"text": [...]}``), deduplicated in order."""
    found: list[str] = []

    def add(value: Any) -> None:
        if value is None:
            return
        if isinstance(value, str):
            if value.strip():
                found.append(value.strip())
        elif isinstance(value, dict):
            add(value.get("text"))
        elif isinstance(value, (list, tuple)):
            for v in value:
                add(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found.append(str(value))

    for name in ("answer", "answers", "answer_aliases", "aliases"):
        add(item.get(name))
    return list(dict.fromkeys(found))


def _first(item: dict, names: Iterable[str]) -> Any:
    for name in names:
        value = item.get(name)
        if value is not None and value != "":
            return value
    return None


def _dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _read_json_or_jsonl(path: Path) -> Any:
    """A JSON document, or a list of records when the file is JSON Lines."""
    raw = path.read_text(encoding="utf-8-sig")
    whole_error: json.JSONDecodeError | None = None
    if path.suffix.lower() != ".jsonl":  # a one-line JSONL file would otherwise parse as one object
        try:
            return json.loads(raw)
        except json.JSONDecodeError as error:
            whole_error = error
    records = []
    for lineno, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if not records:  # neither JSON nor JSONL: report the whole-file error
                raise ValueError(f"{path}: not JSON or JSON Lines ({whole_error or error})") from None
            raise ValueError(f"{path}:{lineno}: invalid JSON line ({error})") from None
    return records


def _sibling_corpus(path: Path) -> Path | None:
    for suffix in (".json", ".jsonl"):
        candidate = path.with_name(f"{path.stem}_corpus{suffix}")
        if candidate.is_file() and candidate != path:
            return candidate
    return None


def _describe(data: Any) -> str:
    """What a file holds, for 'unknown layout' errors."""
    if isinstance(data, dict):
        return f"a JSON object with keys {sorted(data)[:12]}"
    if isinstance(data, list):
        if not data:
            return "an empty list"
        keys = sorted({k for item in data[:20] if isinstance(item, dict) for k in item})
        if not keys:
            return f"a list of {type(data[0]).__name__}"
        return f"a list of {len(data)} records with keys {keys[:16]}"
    return f"a JSON {type(data).__name__}"


class _PassagePool:
    """Collects passages, assigns keys (title when unique, else ``title#n``) and resolves gold
    references by (title, text), text alone, explicit id, or title — in that order of trust."""

    def __init__(self) -> None:
        self._entries: list[tuple[str, str, str | None]] = []
        self._by_pair: dict[tuple[str, str], int] = {}
        self.passages: list[Passage] = []
        self._by_text: dict[str, list[str]] = defaultdict(list)
        self._by_title: dict[str, list[str]] = defaultdict(list)
        self._by_id: dict[str, str] = {}
        self.missing: list[str] = []

    def add(self, title: str, text: str, doc_id: str | None = None, dedupe: bool = False) -> None:
        title = "" if title is None else str(title)
        text = "" if text is None else str(text)
        if dedupe:
            pair = (title, _squash(text))
            if pair in self._by_pair:
                return
            self._by_pair[pair] = len(self._entries)
        self._entries.append((title, text, None if doc_id is None else str(doc_id)))

    def finalize(self, use_ids: bool = False) -> list[Passage]:
        counts = Counter(t for t, _, _ in self._entries)
        nth: Counter[str] = Counter()
        used: set[str] = set()
        for position, (title, text, doc_id) in enumerate(self._entries):
            if use_ids and doc_id is not None:
                key = doc_id
            else:
                base = title.strip() or f"p{position}"
                nth[title] += 1
                key = base if counts[title] == 1 and title.strip() else f"{base}#{nth[title]}"
            if key in used:  # a real title like "X#2" colliding with a generated one, or a repeated id
                logger.warning("duplicate passage key %r; suffixing", key)
                n = 2
                while f"{key}~{n}" in used:
                    n += 1
                key = f"{key}~{n}"
            used.add(key)
            self.passages.append(Passage(key=key, title=title, text=text))
            self._by_text[_squash(text)].append(key)
            self._by_title[title].append(key)
            if doc_id is not None:
                self._by_id.setdefault(doc_id, key)
        self._pair_key = {(p.title, _squash(p.text)): p.key for p in self.passages}
        self._keys = used
        return self.passages

    def by_title(self, title: str) -> list[str]:
        return list(self._by_title.get(title, ()))

    def resolve(self, title: str | None, text: str | None = None, doc_id: str | None = None) -> str | None:
        """Key of the passage a gold reference names, or None (recorded in ``missing``)."""
        if doc_id is not None:
            key = self._by_id.get(str(doc_id))
            if key is None and str(doc_id) in self._keys:
                key = str(doc_id)
            if key is None:
                self.missing.append(f"id {doc_id}")
            return key
        if text is not None:
            squashed = _squash(text)
            key = self._pair_key.get((title or "", squashed))
            if key is not None:
                return key
            same_text = self._by_text.get(squashed, [])
            if len(same_text) == 1:
                return same_text[0]
        candidates = self._by_title.get(title or "", [])
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            logger.warning("gold title %r is ambiguous (%d passages); using the first", title, len(candidates))
            return candidates[0]
        self.missing.append(f"title {title!r}")
        return None

    def report_missing(self, path: Path) -> None:
        if self.missing:
            logger.warning(
                "%s: %d gold reference(s) not found among passages (dropped), e.g. %s",
                path, len(self.missing), self.missing[:3],
            )


def _read_corpus_records(path: Path) -> list[tuple[str, str, str | None]]:
    """(title, text, id) from a corpus file: ``{title: [sentences] | text}`` or a list/JSONL of
    ``{title, text}`` / ``{id, title, text}`` records."""
    data = _read_json_or_jsonl(path)
    out: list[tuple[str, str, str | None]] = []
    if isinstance(data, dict):
        for title, body in data.items():
            out.append((str(title), _join_sentences(body), None))
        return out
    if not isinstance(data, list):
        raise ValueError(f"{path}: corpus must be a JSON object or a list of records, found {_describe(data)}")
    for n, record in enumerate(data):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: corpus record {n} is {type(record).__name__}, expected an object")
        text = _first(record, _TEXT_FIELDS)
        doc_id = _first(record, _ID_FIELDS)
        out.append((str(record.get("title") or ""), _join_sentences(text or ""), None if doc_id is None else str(doc_id)))
    return out


def _question_text(item: dict) -> str:
    return str(_first(item, _QUERY_FIELDS) or "")


def _qid(item: dict, n: int) -> str:
    value = _first(item, _QID_FIELDS)
    return str(value) if value is not None else str(n)


# --------------------------------------------------------------------------- HotpotQA / 2Wiki


def _hotpot_context(item: dict) -> list[tuple[str, str]]:
    """[(title, text)] from list-of-pairs context or the HF ``{"title": [...], "sentences": [...]}`` shape."""
    context = item.get("context") or []
    if isinstance(context, dict):
        return [(str(t), _join_sentences(s)) for t, s in zip(context.get("title", []), context.get("sentences", []))]
    return [(str(pair[0]), _join_sentences(pair[1])) for pair in context if isinstance(pair, (list, tuple)) and len(pair) >= 2]


def _supporting_titles(item: dict) -> list[str]:
    facts = item.get("supporting_facts") or []
    if isinstance(facts, dict):  # HF layout
        return _dedupe(str(t) for t in facts.get("title", []))
    return _dedupe(str(f[0]) if isinstance(f, (list, tuple)) else str(f) for f in facts)


def _hotpot_queries(items: list[dict], pool: _PassagePool) -> list[EvalQuery]:
    queries = []
    for n, item in enumerate(items):
        context = dict(reversed(_hotpot_context(item)))  # first occurrence wins
        gold = []
        for title in _supporting_titles(item):
            key = pool.resolve(title, context.get(title))
            if key is not None:
                gold.append(key)
        queries.append(EvalQuery(_qid(item, n), _question_text(item), _dedupe(gold), _answers(item)))
    return queries


def _pool_from_corpus(corpus: Path | None) -> _PassagePool:
    """The pooled passages of a HippoRAG sibling corpus (empty pool when there is none)."""
    pool = _PassagePool()
    if corpus is not None:
        for title, text, _ in _read_corpus_records(corpus):
            pool.add(title, text)
    return pool


def _load_hotpot(path: Path, items: list[dict], corpus: Path | None) -> EvalDataset:
    pool = _pool_from_corpus(corpus)
    if corpus is not None:
        layout = "hipporag_hotpotqa"
    else:
        # Raw HotpotQA: a title is the paragraph's identity (supporting facts name titles), so
        # the pool keeps the first text seen per title and reports any disagreeing variants.
        first_text: dict[str, str] = {}
        variants = 0
        for item in items:
            for title, text in _hotpot_context(item):
                if title not in first_text:
                    first_text[title] = text
                    pool.add(title, text)
                elif _squash(first_text[title]) != _squash(text):
                    variants += 1
        if variants:
            logger.warning("%s: %d context paragraph(s) repeat a title with different text; kept the first", path, variants)
        layout = "hotpotqa"
    pool.finalize()
    if corpus is None:
        # Deduplicated by title, so resolve by title only (a variant text must not miss).
        queries = []
        for n, item in enumerate(items):
            gold = [k for k in (pool.resolve(t) for t in _supporting_titles(item)) if k is not None]
            queries.append(EvalQuery(_qid(item, n), _question_text(item), _dedupe(gold), _answers(item)))
    else:
        queries = _hotpot_queries(items, pool)
    pool.report_missing(path)
    return EvalDataset(path.stem, layout, pool.passages, queries)


# --------------------------------------------------------------------------- MuSiQue


def _paragraphs(item: dict) -> list[dict]:
    return [p for p in item.get("paragraphs") or [] if isinstance(p, dict)]


def _paragraph_text(p: dict) -> str:
    return _join_sentences(_first(p, ("paragraph_text", "text", "context")) or "")


def _load_musique(path: Path, items: list[dict], corpus: Path | None) -> EvalDataset:
    pool = _pool_from_corpus(corpus)
    if corpus is not None:
        layout = "hipporag_musique"
    else:
        for item in items:
            for p in _paragraphs(item):
                pool.add(str(p.get("title") or ""), _paragraph_text(p), dedupe=True)
        layout = "musique"
    pool.finalize()
    queries = []
    for n, item in enumerate(items):
        gold = []
        for p in _paragraphs(item):
            if p.get("is_supporting"):
                # MuSiQue repeats titles across different paragraphs (27 of 237 gold paragraphs
                # in musique_100), so the text decides which passage is meant.
                key = pool.resolve(str(p.get("title") or ""), _paragraph_text(p))
                if key is not None:
                    gold.append(key)
        queries.append(EvalQuery(_qid(item, n), _question_text(item), _dedupe(gold), _answers(item)))
    pool.report_missing(path)
    return EvalDataset(path.stem, layout, pool.passages, queries)


# --------------------------------------------------------------------------- SQuAD family


def _load_squad(path: Path, data: dict) -> EvalDataset:
    passages: list[Passage] = []
    queries: list[EvalQuery] = []
    key_of_text: dict[str, str] = {}
    used: set[str] = set()
    skipped_impossible = 0
    merged = 0
    n_para = 0
    n_q = 0
    for article in data.get("data") or []:
        article_title = str(article.get("title") or "").strip()
        for paragraph in article.get("paragraphs") or []:
            context = str(paragraph.get("context") or "")
            squashed = _squash(context)
            if squashed in key_of_text:
                # The same paragraph under two ids would make retrieving either count as a miss
                # for the other's questions; fold the copy into the first.
                key = key_of_text[squashed]
                merged += 1
            else:
                key = str(paragraph.get("id") or f"p{n_para}")
                if key in used:
                    key = f"{key}#{n_para}"
                used.add(key)
                key_of_text[squashed] = key
                title = article_title or context.strip()[:SQUAD_TITLE_CHARS]
                passages.append(Passage(key=key, title=title, text=context))
            n_para += 1
            for qa in paragraph.get("qas") or []:
                n_q += 1
                if qa.get("is_impossible"):
                    skipped_impossible += 1  # SQuAD 2.0: no paragraph holds an answer
                    continue
                qid = str(qa.get("id") or f"q{n_q - 1}")
                answers = _dedupe(a.strip() for a in _answers({"answers": qa.get("answers")}))
                queries.append(EvalQuery(qid, str(qa.get("question") or ""), [key], answers))
    if merged:
        logger.info("%s: %d duplicate paragraph(s) merged into their first occurrence", path, merged)
    if skipped_impossible:
        logger.info("%s: %d unanswerable (is_impossible) question(s) skipped", path, skipped_impossible)
    return EvalDataset(path.stem, "squad", passages, queries)


def _is_squad(data: Any) -> bool:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        return False
    for article in data["data"][:5]:
        if isinstance(article, dict) and isinstance(article.get("paragraphs"), list):
            for p in article["paragraphs"][:5]:
                if isinstance(p, dict) and "context" in p and "qas" in p:
                    return True
    return False


# --------------------------------------------------------------------------- BEIR


def _beir_qrels(root: Path) -> Path | None:
    qrels_dir = root / "qrels"
    for split in QREL_SPLITS:
        candidate = qrels_dir / f"{split}.tsv"
        if candidate.is_file():
            return candidate
    return None


def _load_beir(root: Path) -> EvalDataset:
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_path = _beir_qrels(root)
    if not queries_path.is_file() or qrels_path is None:
        raise ValueError(f"{root}: BEIR layout needs queries.jsonl and qrels/{{test,dev,train}}.tsv next to corpus.jsonl")
    pool = _PassagePool()
    for title, text, doc_id in _read_corpus_records(corpus_path):
        pool.add(title, text, doc_id)
    passages = pool.finalize(use_ids=True)
    known = {p.key for p in passages}
    gold: dict[str, list[str]] = defaultdict(list)
    missing = 0
    with qrels_path.open(encoding="utf-8") as handle:
        for row in csv.reader(handle, delimiter="\t"):
            if len(row) < 2:
                continue
            qid, doc_id = row[0].strip(), row[1].strip()
            try:
                score = float(row[2]) if len(row) > 2 else 1.0
            except ValueError:
                continue  # header line "query-id corpus-id score"
            if score <= 0:
                continue
            if doc_id not in known:
                missing += 1
                continue
            gold[qid].append(doc_id)
    if missing:
        logger.warning("%s: %d qrels name documents absent from corpus.jsonl (dropped)", qrels_path, missing)
    queries = []
    for n, record in enumerate(_read_json_or_jsonl(queries_path)):
        qid = _qid(record, n)
        if gold.get(qid):  # BEIR scores only queries with relevance judgements
            queries.append(EvalQuery(qid, _question_text(record), _dedupe(gold[qid]), _answers(record)))
    logger.info("%s: %d judged queries (qrels %s)", root, len(queries), qrels_path.name)
    return EvalDataset(root.name, "beir", passages, queries)


# --------------------------------------------------------------------------- plain JSONL


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _load_plain(path: Path, items: list[dict], corpus: Path | None) -> EvalDataset:
    if corpus is None:
        raise ValueError(
            f"{path}: plain question file needs a sibling corpus "
            f"{path.stem}_corpus.json or {path.stem}_corpus.jsonl with {{title, text}} records"
        )
    pool = _PassagePool()
    records = _read_corpus_records(corpus)
    for title, text, doc_id in records:
        pool.add(title, text, doc_id)
    use_ids = bool(records) and all(doc_id is not None for _, _, doc_id in records)
    pool.finalize(use_ids=use_ids)
    queries = []
    for n, item in enumerate(items):
        gold: list[str] = []
        for doc_id in _as_list(item.get("gold_doc_ids")):
            key = pool.resolve(None, doc_id=doc_id)
            if key is not None:
                gold.append(key)
        for title in _as_list(item.get("gold_titles")):
            keys = pool.by_title(title)
            if not keys:
                pool.missing.append(f"title {title!r}")
            gold.extend(keys)  # a title names a document: every passage carrying it is gold
        queries.append(EvalQuery(_qid(item, n), _question_text(item), _dedupe(gold), _answers(item)))
    pool.report_missing(path)
    return EvalDataset(path.stem, "jsonl", pool.passages, queries)


# --------------------------------------------------------------------------- detection


def _is_sentences(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))


def _is_beir_dir(root: Path) -> bool:
    return (root / "corpus.jsonl").is_file() and (root / "queries.jsonl").is_file()


def load_dataset(path: str | Path) -> EvalDataset:
    """Load a benchmark, detecting its layout from the content; the name is the file stem
    (the directory name for BEIR)."""
    path = Path(path)
    if path.is_dir():
        if _is_beir_dir(path):
            return _load_beir(path)
        raise ValueError(f"{path}: directory is not a BEIR dataset (no corpus.jsonl + queries.jsonl); found {sorted(p.name for p in path.iterdir())[:12]}")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dataset file or directory")
    data = _read_json_or_jsonl(path)
    if isinstance(data, dict) and data.keys() & {"query", "question"}:
        data = [data]  # a single-record JSONL file without the .jsonl suffix
    if _is_squad(data):
        return _load_squad(path, data)
    if isinstance(data, dict) and data and all(_is_sentences(v) for v in list(data.values())[:20]):
        raise ValueError(f"{path}: looks like a passage corpus ({{title: sentences}}), not a question file; found {_describe(data)}")
    if not isinstance(data, list) or not data or not all(isinstance(item, dict) for item in data):
        raise ValueError(f"{path}: unknown dataset layout; found {_describe(data)}")
    keys = {k for item in data[:50] for k in item}
    corpus = _sibling_corpus(path)
    if "supporting_facts" in keys:
        if corpus is None and "context" not in keys:
            raise ValueError(f"{path}: supporting_facts but neither a sibling {path.stem}_corpus.json nor per-item context")
        return _load_hotpot(path, data, corpus)
    if "paragraphs" in keys and any("is_supporting" in p for item in data[:50] for p in _paragraphs(item)):
        return _load_musique(path, data, corpus)
    if "_id" in keys and _is_beir_dir(path.parent) and path.name in {"corpus.jsonl", "queries.jsonl"}:
        return _load_beir(path.parent)
    if keys & {"query", "question"} and keys & {"gold_titles", "gold_doc_ids", "answers", "answer"}:
        return _load_plain(path, data, corpus)
    if "title" in keys and keys & set(_TEXT_FIELDS) and not keys & {"query", "question"}:
        raise ValueError(f"{path}: looks like a passage corpus of {{title, text}} records, not a question file; found {_describe(data)}")
    raise ValueError(f"{path}: unknown dataset layout; found {_describe(data)}")
