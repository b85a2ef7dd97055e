"""Corpus loading: every shape agents send, the doc_index contract, skips with reasons, cleaning.

All fixtures are generated in ``tmp_path``; tests over the real corpora in ../shared run only
when that folder is present.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indexing.cleaning import clean_text, decode_bytes
from indexing.documents import CorpusError, Document, LoadedCorpus, content_doc_id
from indexing.loaders import load_corpus

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/corpora")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared corpora not present")

ZH_PARAGRAPH = (
    "深度学习是机器学习的一个分支，它使用多层神经网络从数据中学习表示。"
    "近年来，大语言模型在自然语言处理领域取得了显著进展。\n"
    "检索增强生成（RAG）把外部知识库与生成模型结合起来。"
)


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def by_index(corpus: LoadedCorpus) -> dict[int, Document]:
    return {doc.doc_index: doc for doc in corpus.documents}


# --- JSON shapes ----------------------------------------------------------------------------


def test_json_array_title_page_body(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", [
        {"title": "第一篇", "page_body": "正文一\r\n\r\n\r\n第二段  有  空格 \t"},
        {"title": "Second", "page_body": "Body two."},
    ])
    corpus = load_corpus(path)
    assert [d.doc_index for d in corpus.documents] == [0, 1]
    first = corpus.documents[0]
    assert first.title == "第一篇"
    assert first.text == "正文一\n\n第二段 有 空格"
    assert first.url == "" and first.metadata == {}
    assert first.source == f"{path}[0]"
    assert first.doc_id == content_doc_id("第一篇", first.text)
    assert corpus.skipped == []
    assert corpus.files == [str(path.resolve())]


def test_json_array_title_content_url(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", [
        {"title": "齐白石", "content": "五幅画，五个典故", "url": " https://example.com/a "},
    ])
    doc = load_corpus(path).documents[0]
    assert (doc.title, doc.text, doc.url) == ("齐白石", "五幅画，五个典故", "https://example.com/a")
    assert doc.metadata == {}


def test_documents_object_keeps_metadata_and_url_alias(tmp_path: Path) -> None:
    path = write_json(tmp_path / "blog.json", {"documents": [
        {"title": "Post", "content": "Hello world.", "permalink": "https://blog/post",
         "summary": "<p>short</p>", "tags": ["a", "b"], "stats": {"views": 3}, "text": "alt"},
        {"text": "Only a text field, no title at all. " * 5},
    ]})
    corpus = load_corpus(path)
    post, untitled = corpus.documents
    assert post.url == "https://blog/post"
    # every field not used for title/text/url is kept; the unused text candidate included
    assert post.metadata == {"summary": "<p>short</p>", "tags": ["a", "b"], "stats": {"views": 3}, "text": "alt"}
    json.dumps(post.metadata)
    assert untitled.text.startswith("Only a text field")
    assert untitled.title == untitled.text.split("\n")[0][:100].rstrip()
    assert len(untitled.title) <= 100


def test_url_prefers_url_over_aliases(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", [
        {"title": "t", "text": "x", "url": "https://u", "link": "https://l", "source_url": "https://s"},
    ])
    doc = load_corpus(path).documents[0]
    assert doc.url == "https://u"
    assert doc.metadata == {"link": "https://l", "source_url": "https://s"}


def test_doc_index_is_stable_when_items_are_skipped(tmp_path: Path) -> None:
    path = write_json(tmp_path / "c.json", [
        {"title": "A", "page_body": "alpha"},
        {"title": "empty", "page_body": ""},
        42,
        {"title": "no text field"},
        {"title": "only invisible", "content": "\u200b\u200b\ufeff"},
        {"title": "list body", "content": ["not", "a", "string"]},
        {"title": "B", "page_body": "beta"},
    ])
    corpus = load_corpus(path)
    assert [(d.doc_index, d.title) for d in corpus.documents] == [(0, "A"), (6, "B")]
    reasons = {s.doc_index: s.reason for s in corpus.skipped}
    assert set(reasons) == {1, 2, 3, 4, 5}
    assert reasons[1] == "no text: 'page_body' is empty"
    assert reasons[2] == "item is a JSON number, not an object"
    assert reasons[3].startswith("no text:")
    assert "empty after cleaning" in reasons[4]
    assert "'content' is a array" in reasons[5]
    assert corpus.skipped[0].source == f"{path}[1]"


def test_invalid_json_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "corpus.json"
    path.write_text('[\n  {"title": "a", "text": "x"},\n  {"title": "b" "text": "y"}\n]', encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    assert str(info.value) == f"{path}:3:17: invalid JSON: Expecting ',' delimiter"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({"items": [], "meta": 1}, "found an object with keys 'items', 'meta'"),
     ("just a string", "found a JSON string"),
     ({"documents": {"a": 1}}, '"documents" is a JSON object')],
)
def test_json_of_the_wrong_shape_is_a_corpus_error(tmp_path: Path, payload: object, expected: str) -> None:
    path = write_json(tmp_path / "odd.json", payload)
    with pytest.raises(CorpusError) as info:
        load_corpus(path)
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_missing_path_is_a_corpus_error(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such file"):
        load_corpus(tmp_path / "nope.json")


def test_unsupported_single_file_is_a_corpus_error(tmp_path: Path) -> None:
    path = tmp_path / "paper.pdf"
    path.write_bytes(b"%PDF-1.7\n")
    with pytest.raises(CorpusError, match="unsupported format '.pdf'"):
        load_corpus(path)


# --- JSONL ------------------------------------------------------------------------------------


def test_jsonl_bad_line_is_skipped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(
        '{"title": "one", "text": "first"}\n'
        "\n"
        '{"title": "two", "text": "second"\n'
        '{"title": "three", "content": "third", "url": "https://3"}\n'
        "   \n"
        '"a bare string"\n',
        encoding="utf-8",
    )
    corpus = load_corpus(path)
    assert [(d.doc_index, d.title, d.source) for d in corpus.documents] == [
        (0, "one", f"{path}:1"), (2, "three", f"{path}:4"),
    ]
    bad, bare = corpus.skipped
    assert (bad.doc_index, bad.source) == (1, f"{path}:3")
    assert bad.reason.startswith(f"{path}:3: invalid JSON: ")
    assert (bare.doc_index, bare.reason) == (3, "item is a JSON string, not an object")


# --- Markdown / text files and directories -----------------------------------------------------


def test_single_markdown_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "notes.md"
    path.write_text("Intro line\n\n```bash\n# not a title\n```\n\n# Real Title #\n\nBody.\n", encoding="utf-8")
    corpus = load_corpus(path)
    (doc,) = corpus.documents
    assert doc.title == "Real Title"
    assert doc.doc_index == 0
    assert doc.metadata == {"path": "notes.md"}
    assert doc.text.startswith("Intro line") and doc.text.endswith("Body.")


def test_directory_walk(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "a.md").write_text("# Alpha heading\n\nalpha body", encoding="utf-8")
    (root / "b.txt").write_text("plain text without heading", encoding="utf-8")
    (root / "b.bin.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01")
    (root / "gbk.txt").write_bytes(ZH_PARAGRAPH.encode("gbk"))
    (root / "paper.pdf").write_bytes(b"%PDF-1.7")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden.md").write_text("# hidden", encoding="utf-8")
    (root / ".git" / "HEAD.md").write_text("# also hidden", encoding="utf-8")
    write_json(root / "sub" / "c.json", [{"title": "C0", "page_body": "c zero"}, {"title": "C1", "page_body": ""}])
    (root / "sub" / "d.jsonl").write_text('{"title": "D0", "text": "d zero"}\n{"title": "D1", "text": "d one"}\n')
    (root / "sub" / "deeper" / "e.markdown").write_text("no heading here", encoding="utf-8")
    (root / "sub" / "broken.json").write_text('{"documents": [\n  {"title": "x",}\n]}', encoding="utf-8")

    corpus = load_corpus(root)

    got = [(d.doc_index, d.source, d.title) for d in corpus.documents]
    assert got == [
        (0, "a.md", "Alpha heading"),
        (2, "b.txt", "b"),
        (3, "gbk.txt", "gbk"),
        (4, "sub/c.json[0]", "C0"),  # sub/broken.json has no documents, so reserves no index
        (6, "sub/d.jsonl:1", "D0"),
        (7, "sub/d.jsonl:2", "D1"),
        (8, "sub/deeper/e.markdown", "e"),
    ]
    docs = by_index(corpus)
    assert docs[0].metadata == {"path": "a.md"}
    assert docs[8].metadata == {"path": "sub/deeper/e.markdown"}
    assert docs[3].text == clean_text(ZH_PARAGRAPH)

    skipped = {(s.source, s.doc_index): s.reason for s in corpus.skipped}
    assert skipped[("b.bin.txt", 1)].startswith("undecodable")
    assert skipped[("paper.pdf", None)] == "unsupported format"
    assert skipped[("sub/c.json[1]", 5)] == "no text: 'page_body' is empty"
    assert skipped[("sub/broken.json", None)].startswith("sub/broken.json:2:17: invalid JSON:")
    assert len(skipped) == 4  # image.png and hidden files are ignored silently

    expected_files = sorted(str((root / rel).resolve()) for rel in [
        "a.md", "b.txt", "b.bin.txt", "gbk.txt", "sub/c.json", "sub/d.jsonl",
        "sub/deeper/e.markdown", "sub/broken.json",
    ])
    assert corpus.files == expected_files
    # deterministic: a second load gives the same ids in the same order
    assert [d.doc_id for d in load_corpus(root).documents] == [d.doc_id for d in corpus.documents]


def test_binary_or_empty_txt_as_the_whole_corpus_is_skipped_not_fatal(tmp_path: Path) -> None:
    blob = tmp_path / "blob.txt"
    blob.write_bytes(bytes(range(256)) * 4)
    corpus = load_corpus(blob)
    assert corpus.documents == []
    assert [(s.source, s.doc_index) for s in corpus.skipped] == [(str(blob), 0)]
    assert corpus.skipped[0].reason.startswith("undecodable")
    assert corpus.files == [str(blob.resolve())]

    empty = tmp_path / "empty.md"
    empty.write_text("\u200b \n\n\t", encoding="utf-8")
    assert [s.reason for s in load_corpus(empty).skipped] == ["text is empty after cleaning"]


def test_gbk_text_file_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "中文.txt"
    path.write_bytes(("# 标题\n\n" + ZH_PARAGRAPH).encode("gbk"))
    (doc,) = load_corpus(path).documents
    assert doc.title == "标题"
    assert doc.text == "# 标题\n\n" + ZH_PARAGRAPH


def test_duplicates_are_skipped_with_the_first_index(tmp_path: Path) -> None:
    item = {"title": "Same", "page_body": "same body"}
    path = write_json(tmp_path / "c.json", [item, {"title": "Other", "page_body": "x"}, item,
                                           {"title": "Same", "page_body": "same   body\n"}])
    corpus = load_corpus(path)
    assert [d.doc_index for d in corpus.documents] == [0, 1]
    assert [(s.doc_index, s.reason) for s in corpus.skipped] == [
        (2, "duplicate of doc_index 0"), (3, "duplicate of doc_index 0"),
    ]


# --- cleaning ---------------------------------------------------------------------------------


# Bytes cp1252 has no character for: a converter replaces (errors="replace") or drops them.
CP1252_UNDEFINED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def after_byte_loss(text: str) -> str:
    """The best possible repair: characters that lost a byte become U+FFFD, the rest survive."""
    return "".join("\ufffd" if CP1252_UNDEFINED & set(ch.encode("utf-8")) else ch for ch in text)


def test_mojibake_examples_are_repaired() -> None:
    # "æ·±åº¦å­¦ä¹ " with its soft hyphen and no-break space spelled out
    assert clean_text("\u00e6\u00b7\u00b1\u00e5\u00ba\u00a6\u00e5\u00ad\u00a6\u00e4\u00b9\u00a0") == "深度学习"
    original = "检测集和评测基准 — ‘RAG’ in a café, naïve 🔧"
    assert after_byte_loss(original) == original  # nothing lost: must come back exactly
    assert clean_text(original.encode("utf-8").decode("cp1252", errors="replace")) == original


@pytest.mark.parametrize("errors", ["replace", "ignore"])
@pytest.mark.parametrize("original", [
    "论文的主要贡献和创新点",  # 要 is E8 A6 81
    "主要发现：长时程推理任务中，相关证据通常稀疏且分散。🔧 ToolManager",
    "## 📊 Statistics\n- **Last Updated**: 数据集和评测基准",
    "大语言模型能力来源与边界：仅修改130亿参数中的1个就会使模型完全混乱",
])
def test_mojibake_with_lost_bytes_is_recovered(original: str, errors: str) -> None:
    """Like the seeds' raw files: UTF-8 read as cp1252 with undefined bytes replaced or dropped
    (ftfy alone leaves whole lines of the dropped kind untouched)."""
    broken = original.encode("utf-8").decode("cp1252", errors=errors)
    assert broken != original
    assert clean_text(broken) == after_byte_loss(original)


@pytest.mark.parametrize("text", [
    "Größe der Äpfel — €5, naïve café, pääkaupunki, Skåäl, qué…",
    "Olé—señor «voilà» ½ °C ±2 Ünïcödé ÀÉÎÕÜ æø",
    "全角标点：（测试）“引号”，保持不变。ＡＢＣ",
])
def test_legitimate_text_is_not_altered(text: str) -> None:
    assert clean_text(text) == text


def test_whitespace_and_invisible_characters() -> None:
    raw = "\ufeff  Title\u200b line\r\nsecond\tline  \x07with\x00 bell \rthird\u00a0\u3000x\n\n\n\n\nend \t \n"
    assert clean_text(raw) == "Title line\nsecond line with bell\nthird x\n\nend"
    assert clean_text("") == ""
    assert clean_text(" \n\t ") == ""
    assert clean_text("lone \ud800 surrogate") == "lone \ufffd surrogate"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(), max_size=200))
def test_clean_text_never_raises(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")  # storable
    assert cleaned == cleaned.strip()
    assert "\r" not in cleaned and "\n\n\n" not in cleaned and "  " not in cleaned
    assert not any(ch in cleaned for ch in "\x00\x07\u200b\ufeff")


def test_clean_text_is_stable_on_its_output() -> None:
    """Re-cleaning stored text must not change it (doc ids would drift). ftfy gives no such
    guarantee for arbitrary symbol soup, so this is checked on realistic text."""
    samples = [ZH_PARAGRAPH, "Größe — “quoted” café\r\n\tindent  x\n\n\n\ny",
               "论文的主要贡献".encode("utf-8").decode("cp1252", errors="ignore")]
    if SHARED.is_dir():
        samples += [p.read_text(encoding="utf-8") for p in sorted((SHARED / "seeds" / "raw").iterdir())]
    for sample in samples:
        once = clean_text(sample)
        assert clean_text(once) == once


def test_decode_bytes() -> None:
    assert decode_bytes(b"\xef\xbb\xbfhello", "bom") == "hello"
    assert decode_bytes("héllo wörld".encode("utf-16"), "utf16") == "héllo wörld"
    assert decode_bytes(ZH_PARAGRAPH.encode("gb18030"), "gb") == ZH_PARAGRAPH
    assert decode_bytes(b"", "empty") == ""
    assert decode_bytes(b"PK\x03\x04\x14\x00\x06\x00", "zip") is None
    assert decode_bytes(bytes(range(1, 32)) * 50, "controls") is None
    # strict UTF-8 keeps replacement characters that are really in the file
    assert decode_bytes(("a\ufffd" * 50).encode("utf-8"), "fffd") == "a\ufffd" * 50


# --- legacy chunks.db -------------------------------------------------------------------------


def make_chunks_db(path: Path, docs: list[tuple[int, str, str, str, list[tuple[int, int]]]],
                   *, strip: bool = True, offsets: bool = True) -> None:
    """Write a cache the way the old tool did: chunks of ``title + "\\n\\n" + body``, each
    stored as ``full[start:end].strip()``."""
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, doc_index INTEGER,
            chunk_index INTEGER, title TEXT, content TEXT, url TEXT, start_char INTEGER,
            end_char INTEGER, embedding BLOB);
        CREATE INDEX idx_doc_chunk ON chunks(doc_index, chunk_index);
        INSERT INTO metadata VALUES ('chunk_size', '300'), ('chunk_overlap', '60');
        """
    )
    for doc_index, title, body, url, bounds in docs:
        full = title + "\n\n" + body
        for chunk_index, (start, end) in enumerate(bounds):
            content = full[start:end].strip() if strip else full[start:end]
            connection.execute(
                "INSERT INTO chunks (doc_index, chunk_index, title, content, url, start_char, end_char, embedding)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (doc_index, chunk_index, title, content, url,
                 start if offsets else None, end if offsets else None, b"\x00" * 16),
            )
    connection.commit()
    connection.close()


def legacy_bounds(title: str, body: str, size: int = 300, overlap: int = 60) -> list[tuple[int, int]]:
    """Title chunk, then a chunk ending right before a newline (so the next chunk, which does
    not overlap it, starts with whitespace that gets stripped), then overlapping windows and the
    old tool's duplicate tail chunk (end one past the text, as in the real cache)."""
    full = title + "\n\n" + body
    head = len(title) + 2
    cut = full.index("\n", head + 50)
    bounds = [(0, head), (head, cut)]
    start = cut
    while start + size < len(full):
        bounds.append((start, start + size))
        start += size - overlap
    bounds.append((start, len(full) + 1))
    bounds.append((len(full) - overlap, len(full) + 1))
    return bounds


def sample_body(seed: int) -> str:
    paragraphs = [f"第{seed}篇第{i}段：检索增强生成把外部知识库与生成模型结合。 Paragraph {i} of doc {seed} "
                  f"has some English words, numbers {i * seed} and trailing space.  " for i in range(12)]
    return "\n\n".join(paragraphs) + "\n   \n最后一行。"


def test_legacy_chunks_db_reconstructs_exact_text(tmp_path: Path) -> None:
    docs = []
    for doc_index, title in [(3, "旧文档 A"), (7, "Old doc B")]:
        body = sample_body(doc_index)
        docs.append((doc_index, title, body, f"https://ex/{doc_index}" if doc_index == 7 else "",
                     legacy_bounds(title, body)))
    db = tmp_path / "corpus.json.chunks.db"
    make_chunks_db(db, docs)
    before = db.read_bytes()

    corpus = load_corpus(db)

    assert [d.doc_index for d in corpus.documents] == [3, 7]
    for doc, (doc_index, title, body, url, _) in zip(corpus.documents, docs):
        assert doc.title == title
        assert doc.url == url
        assert doc.text == clean_text(body)
        # same id as loading the original JSON the cache was built from
        assert doc.doc_id == content_doc_id(title, clean_text(body))
    assert corpus.skipped == []
    assert corpus.files == [str(db.resolve())]
    assert db.read_bytes() == before  # opened read-only


def test_legacy_chunks_db_without_usable_offsets_uses_overlap(tmp_path: Path) -> None:
    title, body = "No offsets", sample_body(5)
    full = title + "\n\n" + body
    bounds = [(0, 200), (140, 420), (360, 700), (640, len(full))]
    db = tmp_path / "x.chunks.db"
    make_chunks_db(db, [(0, title, body, "", bounds)], strip=False, offsets=False)
    (doc,) = load_corpus(db).documents
    assert doc.text == clean_text(body)


def test_legacy_chunks_db_with_wrong_offsets_uses_overlap(tmp_path: Path) -> None:
    title, body = "Bad offsets", sample_body(6)
    full = title + "\n\n" + body
    db = tmp_path / "y.chunks.db"
    make_chunks_db(db, [(0, title, body, "", [(0, 250), (190, 600), (540, len(full))])], strip=False)
    with sqlite3.connect(db) as connection:  # shift every offset: contents no longer fit
        connection.execute("UPDATE chunks SET start_char = start_char + 7, end_char = end_char - 3")
    (doc,) = load_corpus(db).documents
    assert doc.text == clean_text(body)


def test_not_a_sqlite_db_is_a_corpus_error(tmp_path: Path) -> None:
    fake = tmp_path / "fake.chunks.db"
    fake.write_text("definitely not sqlite " * 20)
    with pytest.raises(CorpusError, match="fake.chunks.db"):
        load_corpus(fake)


def test_sqlite_without_chunks_table_is_a_corpus_error(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE something (x)")
    with pytest.raises(CorpusError, match=r"other\.db.*no 'chunks' table"):
        load_corpus(db)


# --- real corpora (only when ../shared is present) ------------------------------------------


@needs_shared
@pytest.mark.parametrize(
    "path", sorted(SHARED.glob("miro/*/long_context_sampled_*.json")) if SHARED.is_dir() else [],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_real_miro_collections_load(path: Path) -> None:
    corpus = load_corpus(path)
    assert len(corpus.documents) >= 1
    for doc in corpus.documents:
        assert doc.text and doc.title and doc.text == clean_text(doc.text)
    # skipped items only ever have an empty body in these collections
    assert all(s.reason.startswith("no text:") for s in corpus.skipped)
    indices = [d.doc_index for d in corpus.documents] + [s.doc_index for s in corpus.skipped]
    assert sorted(indices) == list(range(len(indices)))


@needs_shared
def test_real_legacy_chunks_db_loads_13_documents_matching_its_json() -> None:
    db = SHARED / "miro" / "005" / "long_context_sampled_32k.json.chunks.db"
    corpus = load_corpus(db)
    assert len(corpus.documents) == 13
    assert [d.doc_index for d in corpus.documents] == list(range(13))
    from_json = load_corpus(db.with_name("long_context_sampled_32k.json"))
    assert [d.doc_id for d in corpus.documents] == [d.doc_id for d in from_json.documents]


@needs_shared
def test_real_seed_files_load_including_mojibake() -> None:
    started = time.perf_counter()
    corpus = load_corpus(SHARED / "seeds" / "raw")
    assert time.perf_counter() - started < 30
    assert corpus.skipped == []
    titles = {d.metadata.get("path"): d.title for d in corpus.documents}
    assert titles["arxiv_digest.md"] == "arXiv Papers Bot 🤖"
    assert titles["llm_capability_slides_zh.md"] == "大语言模型能力来源与边界"
    digest = next(d for d in corpus.documents if d.metadata.get("path") == "arxiv_digest.md")
    assert "Implicit Graph, Explicit Retrieval" in digest.text
    assert "论文" in digest.text  # Chinese summary recovered from the mojibake
    blog = [d for d in corpus.documents if d.source.startswith("blog_posts.json[")]
    assert blog and all(d.url.startswith("http") and "summary" in d.metadata for d in blog)
