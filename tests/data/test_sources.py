import re

import pytest

from thinkmid.config import ChunkParams
from thinkmid.data.sources import documents, factbook_documents, fineweb_documents, html_to_text
from thinkmid.errors import InputError


def test_html_to_text_strips_tags_and_entities():
    raw = "<p>Rivers &amp; lakes&nbsp;are <em lang='es'>many</em>.<br><br>More  here.</p> <strong>x</strong>"
    assert html_to_text(raw) == "Rivers & lakes are many.\nMore here.\nx"


def test_factbook_documents_are_prose_without_html():
    docs = list(factbook_documents(5))
    assert len(docs) == 5
    assert [d["id"] for d in docs] == sorted(d["id"] for d in docs)  # deterministic file order
    assert docs == list(factbook_documents(5))
    for d in docs:
        assert d["id"].startswith("factbook/")
        text = d["text"]
        assert len(text) > 1000
        assert not re.search(r"</?[a-zA-Z][^>]*>", text), "HTML tag left in text"
        assert not re.search(r"&[a-zA-Z]+;|&#\d+;", text), "HTML entity left in text"
        assert "  " not in text and "\xa0" not in text
        assert len(re.findall(r"[a-z]+\. [A-Z]", text)) >= 5, "expected running sentences"
    assert "Algeria" in docs[0]["text"]


def test_factbook_max_sources_and_dispatch():
    assert len(list(documents(ChunkParams(source="factbook", max_sources=3)))) == 3


def test_fineweb_offline_raises_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    with pytest.raises(InputError, match="HuggingFaceFW/fineweb-edu"):
        list(fineweb_documents("HuggingFaceFW/fineweb-edu", "sample-10BT", 2))
    with pytest.raises(InputError, match="fineweb"):
        list(documents(ChunkParams(source="fineweb", max_sources=2)))


def test_finephrase_rows_keep_source_text_with_a_long_enough_rollout(qwen_tok):
    from thinkmid.data.sources import finephrase_rows, rollout_text

    long = " ".join(["word"] * 80)
    rows = [
        {"id": "a", "text": "Source A.", "rollout_results": [{"text": long}]},
        {"id": "b", "text": "Source B.", "rollout_results": [{"text": "too short"}]},
        {"url": "u", "text": "Source C.", "rollout_results": {"rollout_results": [{"text": long}]}},
        {"id": "d", "text": "", "rollout_results": [{"text": long}]},
    ]
    assert rollout_text(rows[2]["rollout_results"]) == long and rollout_text(None) == ""
    got = list(finephrase_rows(rows, qwen_tok, 64))
    assert got == [{"id": "a", "text": "Source A."}, {"id": "u", "text": "Source C."}]
