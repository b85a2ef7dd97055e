from indexing.analyzer import Analyzer


def test_cjk_yields_bigrams_unigrams_and_long_jieba_words():
    terms = Analyzer().tokenize("中华人民共和国成立")
    assert "中华" in terms and "华人" in terms  # bigrams
    assert "国" in terms  # unigrams
    assert "中华人民共和国" in terms  # jieba search-mode word


def test_latin_lowercased_stemmed_stopworded_numbers_kept():
    terms = Analyzer().tokenize("The Running Dogs were barking in 2018 at 3.14")
    assert "run" in terms and "dog" in terms and "bark" in terms
    assert "the" not in terms and "in" not in terms
    assert "2018" in terms and "3.14" in terms


def test_mixed_junctions_and_latin_inside_cjk_runs():
    terms = Analyzer().tokenize("2018年OpenAI发布")
    assert "8年" in terms  # bigram across the digit/CJK junction
    assert "openai" in terms and "2018" in terms


def test_query_and_document_analysis_agree():
    analyzer = Analyzer()
    assert set(analyzer.tokenize("量子计算")) <= set(analyzer.tokenize("关于量子计算的研究"))
