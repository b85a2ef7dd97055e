"""Tests for graphmem.extraction: offline multilingual entity / triple extraction."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphmem.extraction import (
    Extraction,
    ExtractionLimits,
    Mention,
    Triple,
    extract,
    normalise_entity,
)

KINDS = {"person", "place", "org", "proper", "title", "number", "date"}


def keys(ex: Extraction) -> set[str]:
    return {m.key for m in ex.mentions}


def spo(ex: Extraction) -> set[tuple[str, str, str]]:
    return {(t.head, t.relation, t.tail) for t in ex.triples}


def by_key(ex: Extraction, key: str) -> Mention:
    found = [m for m in ex.mentions if m.key == key]
    assert found, f"{key!r} not among {sorted(keys(ex))}"
    return found[0]


def check_invariants(text: str, ex: Extraction, title: str | None = None,
                     limits: ExtractionLimits = ExtractionLimits()) -> None:
    """Properties every extraction must satisfy, whatever the input."""
    title_key = normalise_entity(title) if title else ""
    assert len(ex.mentions) <= limits.max_mentions
    assert len(ex.triples) <= limits.max_triples
    previous_end = -1
    for m in ex.mentions:
        assert 0 <= m.start < m.end <= len(text)
        assert text[m.start : m.end] == m.surface
        assert m.kind in KINDS
        assert m.key and m.key == normalise_entity(m.surface)
        assert m.start >= previous_end, "mentions are sorted and do not overlap"
        previous_end = m.end
    assert len({(m.key, m.start) for m in ex.mentions}) == len(ex.mentions)
    seen = set()
    for t in ex.triples:
        assert t.head != t.tail
        assert t.relation.strip() == t.relation and t.relation
        assert (t.head, t.relation, t.tail) not in seen
        seen.add((t.head, t.relation, t.tail))
        assert 0 <= t.start < t.end <= len(text)
        inside = {m.key for m in ex.mentions if t.start <= m.start and m.end <= t.end}
        assert t.tail in inside, "the evidence span holds the tail mention"
        if t.head != title_key:
            assert t.head in inside, "the evidence span holds the head mention"
    starts = [t.start for t in ex.triples]
    assert starts == sorted(starts), "triples are ordered by sentence position"


# --------------------------------------------------------------------------- normalise_entity


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ＩＢＭ", "ibm"),  # full-width -> half-width, casefold
        ("Ｔｈｅ　Ｂｅａｔｌｅｓ", "beatles"),
        ("The Beatles", "beatles"),
        ("the beatles", "beatles"),
        ("  New \t  York  ", "new york"),
        ("《狂人日记》", "狂人日记"),
        ("「鲁迅」", "鲁迅"),
        ("“Obama”", "obama"),
        ("(Paris)", "paris"),
        ("Obama's", "obama"),
        ("Obama’s", "obama"),
        ("U.S.", "united states"),
        ("US", "united states"),
        ("U.S.A.", "united states"),
        ("United States of America", "united states"),
        ("us", "us"),  # the pronoun is not an acronym
        ("J. K. Rowling", "jk rowling"),
        ("J.K. Rowling", "jk rowling"),
        ("12%", "12%"),
        ("2018年", "2018年"),
        ("A Tale of Two Cities", "tale of two cities"),
        ("!!!", ""),
        ("《》", ""),
        ("", ""),
    ],
)
def test_normalise_entity(name, expected):
    assert normalise_entity(name) == expected


# --------------------------------------------------------------------------- English


EN = (
    "Barack Obama was born in Honolulu, Hawaii in 1961. He studied at Columbia University "
    "and Harvard Law School before teaching at the University of Chicago."
)


def test_english_entities_and_triples():
    ex = extract(EN)
    check_invariants(EN, ex)
    assert {
        "barack obama",
        "honolulu",
        "hawaii",
        "1961",
        "columbia university",
        "harvard law school",
        "university of chicago",
    } <= keys(ex)
    assert "he" not in keys(ex)  # sentence-initial pronoun is not an entity
    assert by_key(ex, "1961").kind == "date"
    assert by_key(ex, "columbia university").kind == "org"
    assert ("barack obama", "was born in", "honolulu") in spo(ex)
    born = next(t for t in ex.triples if t.relation == "was born in" and t.tail == "honolulu")
    assert EN[born.start : born.end] == "Barack Obama was born in Honolulu, Hawaii in 1961."


def test_english_name_shapes():
    text = (
        "On 12 March 2001, the University of Oxford and Bank of America signed a $2.5 billion "
        "deal. J. K. Rowling met Leonardo da Vinci fans, Ursula von der Leyen and AT&T staff. "
        "President Obama spoke in the U.S. after The Beatles played. The company grew 25% "
        "in March 2003 and hired 1,200 people, 3 cats did not count."
    )
    ex = extract(text)
    check_invariants(text, ex)
    got = keys(ex)
    assert {
        "12 march 2001",
        "university of oxford",
        "bank of america",
        "$2.5 billion",
        "jk rowling",
        "leonardo da vinci",
        "ursula von der leyen",
        "at&t",
        "obama",
        "united states",
        "beatles",
        "25%",
        "march 2003",
        "1,200 people",
    } <= got
    assert "university of oxford and bank of america" not in got
    assert "president obama" not in got and by_key(ex, "obama").kind == "person"
    assert by_key(ex, "12 march 2001").kind == "date"
    assert by_key(ex, "25%").kind == "number"
    assert not got & {"on", "the", "the company", "company", "3", "3 cats", "march", "president"}


def test_sentences_bound_triples_and_abbreviations_do_not_split():
    text = "Dr. Smith visited Paris. Merkel lives in Berlin."
    ex = extract(text)
    check_invariants(text, ex)
    assert ("smith", "visited", "paris") in spo(ex)
    assert ("merkel", "lives in", "berlin") in spo(ex)
    assert not any({t.head, t.tail} == {"paris", "merkel"} for t in ex.triples)


# --------------------------------------------------------------------------- Chinese and mixed


ZH = "鲁迅出生于浙江绍兴，1918年发表了《狂人日记》。"


def test_chinese_entities_and_triples():
    ex = extract(ZH)
    check_invariants(ZH, ex)
    assert by_key(ex, "鲁迅").kind == "person"
    assert by_key(ex, "浙江").kind == "place"
    assert by_key(ex, "绍兴").kind == "place"
    assert by_key(ex, "1918年").kind == "date"
    title = by_key(ex, "狂人日记")
    assert title.kind == "title" and (title.start, title.end) == (19, 23)  # inside 《》
    assert ("鲁迅", "出生于", "浙江") in spo(ex)
    assert ("鲁迅", "发表", "狂人日记") in spo(ex)


def test_chinese_dates_numbers_orgs_and_unknown_names():
    text = "马云在杭州创立了阿里巴巴集团。2018年3月5日，华为公司的营收增长了12%，达到8000亿元。张伟和李娜在深圳见面。"
    ex = extract(text)
    check_invariants(text, ex)
    assert by_key(ex, "马云").kind == "person"  # not in jieba's dictionary
    assert by_key(ex, "张伟").kind == "person"
    assert by_key(ex, "阿里巴巴集团").kind == "org"
    assert by_key(ex, "2018年3月5日").kind == "date"
    assert by_key(ex, "12%").kind == "number"
    assert by_key(ex, "8000亿元").kind == "number"
    assert ("马云", "创立", "阿里巴巴集团") in spo(ex)
    assert ("华为公司", "增长", "12%") in spo(ex)


def test_mixed_script_text():
    text = "习近平访问美国，会见了Barack Obama。Apple CEO蒂姆·库克在上海发表演讲。"
    ex = extract(text)
    check_invariants(text, ex)
    assert {"习近平", "美国", "barack obama", "蒂姆·库克", "上海", "apple"} <= keys(ex)
    assert "ceo" not in keys(ex)
    assert ("习近平", "访问", "美国") in spo(ex)
    assert ("习近平", "会见", "barack obama") in spo(ex)

    text2 = "In 2019 the team visited 北京大学 and met 李娜 in Shanghai."
    ex2 = extract(text2)
    check_invariants(text2, ex2)
    assert {"2019", "北京大学", "李娜", "shanghai"} <= keys(ex2)


# --------------------------------------------------------------------------- title


def test_title_triples_when_title_absent_from_chunk():
    text = "He was born in Honolulu. He won the Nobel Peace Prize in 2009."
    ex = extract(text, title="Barack Obama")
    check_invariants(text, ex, title="Barack Obama")
    assert "barack obama" not in keys(ex)  # no span in the chunk, so no mention
    assert ("barack obama", "was born in", "honolulu") in spo(ex)
    t = next(t for t in ex.triples if t.head == "barack obama" and t.tail == "honolulu")
    assert text[t.start : t.end] == "He was born in Honolulu."
    title_tails = {t.tail for t in ex.triples if t.head == "barack obama"}
    assert title_tails >= {"honolulu", "nobel peace prize", "2009"}
    assert extract(text).triples and all(t.head != "barack obama" for t in extract(text).triples)


def test_title_occurring_in_chunk_is_a_real_mention():
    text = "北京大学成立于1898年，位于北京市海淀区。"
    ex = extract(text, title="《北京大学》")
    check_invariants(text, ex, title="《北京大学》")
    m = by_key(ex, "北京大学")
    assert (m.kind, m.start, m.end, m.surface) == ("title", 0, 4, "北京大学")
    assert ("北京大学", "成立于", "1898年") in spo(ex)
    assert ("北京大学", "位于", "北京市") in spo(ex)


# --------------------------------------------------------------------------- limits, loops, dedupe


FIRST = ["Alice", "Bruno", "Carla", "Dmitri", "Elena", "Farid", "Greta", "Hiroshi"]
LAST = ["Meyer", "Rossi", "Novak", "Tanaka", "Okafor", "Larsen", "Silva", "Dubois"]
CITIES = ["Berlin", "Lisbon", "Nairobi", "Osaka", "Quito", "Tallinn", "Porto", "Hanoi"]


def long_text() -> str:
    parts = []
    for i in range(40):
        name = f"{FIRST[i % 8]} {LAST[(i * 3) % 8]}"
        parts.append(f"{name} moved to {CITIES[i % 8]} in {1950 + i} and joined {LAST[i % 8]} Corporation.")
        parts.append(f"{FIRST[(i + 3) % 8]}把公司迁到了上海。")
    return " ".join(parts)


def test_caps_are_honoured_and_earliest_mentions_kept():
    text = long_text()
    full = extract(text, limits=ExtractionLimits(max_triples=10_000, max_mentions=10_000))
    assert len(full.mentions) > 64 and len(full.triples) > 32

    ex = extract(text)
    check_invariants(text, ex)
    assert len(ex.mentions) == 64 and len(ex.triples) == 32
    assert ex.mentions == full.mentions[:64]

    small = ExtractionLimits(max_triples=5, max_mentions=7)
    ex_small = extract(text, title="Migration", limits=small)
    check_invariants(text, ex_small, title="Migration", limits=small)
    assert len(ex_small.triples) == 5 and len(ex_small.mentions) == 7

    assert extract(text, limits=ExtractionLimits(max_triples=0)).triples == []
    assert extract(text, limits=ExtractionLimits(max_mentions=0)) == Extraction([], [])


def test_no_self_loops_and_dedupe():
    text = "Obama met Obama. Obama visited Paris. Obama visited Paris. 鲁迅和鲁迅见面。"
    ex = extract(text, title="Obama")
    check_invariants(text, ex, title="Obama")
    assert all(t.head != t.tail for t in ex.triples)
    assert sum(1 for t in ex.triples if (t.head, t.relation, t.tail) == ("obama", "visited", "paris")) == 1


def test_deterministic_and_empty_inputs():
    text = EN + ZH
    assert extract(text) == extract(text)
    assert extract("") == Extraction([], [])
    assert extract("   \n\t ") == Extraction([], [])
    assert extract("just lowercase words here.").mentions == []
    assert isinstance(extract(ZH).triples[0], Triple)


# --------------------------------------------------------------------------- property test


FRAGMENTS = [
    "Barack Obama", "the ", "The Beatles", "University of Oxford", "U.S.", "AT&T", "J. K. ",
    "Obama's", " and ", " of ", "in ", "1987", "12 March 2001", "25%", "$3 billion", "3.5",
    "鲁迅", "出生于", "浙江绍兴", "《狂人日记》", "《", "》", "2018年3月5日", "8000亿元", "马云",
    "蒂姆·库克", "·", "了", "和", "。", "，", ". ", "! ", "? ", "; ", "\n", "\r\n", "\t", "\u3000",
    " ", "😀", "🇨🇳", "\u200b", "ＩＢＭ", "é", "Ünïcödé", "'s", "’", "\"", "“", "”", "-", "&",
]
chunks = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.text(alphabet="aZ 中文 .,!?。", max_size=5),
    ),
    max_size=40,
).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=chunks,
    title=st.one_of(st.none(), st.sampled_from(["Barack Obama", "鲁迅", "!!", ""]), st.text(max_size=8)),
)
def test_property_offsets_and_spans(text, title):
    ex = extract(text, title=title)
    check_invariants(text, ex, title=title)


@settings(max_examples=40, deadline=None)
@given(text=chunks, max_triples=st.integers(0, 4), max_mentions=st.integers(0, 5))
def test_property_caps(text, max_triples, max_mentions):
    limits = ExtractionLimits(max_triples=max_triples, max_mentions=max_mentions)
    ex = extract(text, title="Barack Obama", limits=limits)
    check_invariants(text, ex, title="Barack Obama", limits=limits)
