import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thinkmid.data.thoughts import (
    audit_row,
    audit_summary,
    choose_boundaries,
    clean_thought,
    interleave,
    sentence_boundaries,
    strip_thoughts,
    thought_spans,
    thought_token_mask,
    validate_thought_text,
)
from thinkmid.errors import InputError
from thinkmid.models.tokenizer import think_ids

TEXT = (
    "Algeria has known many empires (3rd century B.C.), including Romans. Under the Turks, pirates "
    'operated until 1830. The U.S. Army was not there. Was it? "Yes!" she said. Population grew '
    "(2011 est.) and then fell.\nA new paragraph starts here. It ends."
)


def test_sentence_boundaries_skip_abbreviations_and_end():
    ends = [TEXT[:b].split()[-1] for b in sentence_boundaries(TEXT)]
    # Not after "B.C.)," (comma), "U.S." (abbreviation), "\"Yes!\"" (lower-case next) or "est.)".
    assert ends == ["Romans.", "1830.", "there.", "it?", "said.", "fell.", "here."]
    assert all(TEXT[b].isspace() for b in sentence_boundaries(TEXT))
    assert sentence_boundaries("One. Two.") == [4]
    assert sentence_boundaries("No sentence end here") == []


def test_choose_boundaries_spread_and_bounds():
    cands = sentence_boundaries(TEXT)
    for seed in range(20):
        pos = choose_boundaries(TEXT, 3, 6, random.Random(seed))
        assert 3 <= len(pos) <= 6 and pos == sorted(set(pos)) and set(pos) <= set(cands)
    assert choose_boundaries(TEXT, 3, 6, random.Random(1)) == choose_boundaries(TEXT, 3, 6, random.Random(1))
    assert choose_boundaries("One. Two.", 3, 6, random.Random(0)) == [4]


def test_interleave_format_and_round_trip():
    pos = choose_boundaries(TEXT, 3, 3, random.Random(0))
    out = interleave(TEXT, pos, ["a", "b c", "d"])
    assert out.count(" <think>") == 3 and out.count("</think>") == 3
    assert ". <think>a</think> " in out or "? <think>a</think> " in out or '." <think>a</think>' in out
    assert strip_thoughts(out) == TEXT
    assert [out[s:e] for s, e in thought_spans(out)] == ["a", "b c", "d"]
    assert audit_row(TEXT, out) == {"ok": True, "reason": None, "n_thoughts": 3, "thought_words": [1, 2, 1]}


def test_interleave_rejects_bad_thoughts():
    for bad in ["", "two\nlines", "has <think> tag", " padded"]:
        with pytest.raises(ValueError):
            interleave("One. Two.", [4], [bad])
    with pytest.raises(ValueError):
        interleave("One <think>. Two.", [4], ["x"])


_words = st.text(alphabet=st.sampled_from(list("abcXY ,;'\u00e9")), min_size=1, max_size=12)
_sentence = st.builds(
    lambda w, p, sp: w.strip() + p + sp,
    _words,
    st.sampled_from([".", "!", "?", ".)", ""]),
    st.sampled_from([" ", "  ", "\n", "\n\n", " \t"]),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_sentence, min_size=1, max_size=12), st.integers(0, 10**6))
def test_round_trip_property(sentences, seed):
    text = "".join(sentences)
    rng = random.Random(seed)
    pos = choose_boundaries(text, 1, 6, rng)
    thoughts = [clean_thought(f"idea {i} about\nnext", 10) for i in range(len(pos))]
    out = interleave(text, pos, thoughts)
    assert strip_thoughts(out) == text
    assert len(thought_spans(out)) == len(pos)
    audit = audit_row(text, out)
    assert audit["ok"] == bool(pos) and (audit["ok"] or audit["reason"] == "no_thoughts")


def test_clean_thought():
    assert clean_thought("  Thought: The U.S. part  comes next. Then more.\nsecond") == "The U.S. part comes next."
    assert clean_thought("<think>Next is <b>the</b> date</think>") == "Next is <b>the</b> date"
    assert clean_thought("I think </think the river matters") == "I think the river matters"
    assert clean_thought("\n\n  \n") == "" and clean_thought("<think></think>") == "" and clean_thought("...") == ""
    assert len(clean_thought("w " * 100, max_words=7).split()) == 7


@pytest.mark.parametrize(
    "broken,reason",
    [
        ("One. <think>a</think> Two. <think>b Three.", "unclosed_think"),
        ("One. <think>a <think>b</think></think> Two.", "nested_think"),
        ("One.</think> Two.", "stray_close"),
        ("One. <think> </think> Two.", "empty_thought"),
        ("One. Two.", "no_thoughts"),
        ("One. <think>a</think> Tw0.", "text_changed"),
    ],
)
def test_audit_catches_broken_rows(broken, reason):
    audit = audit_row("One. Two.", broken)
    assert not audit["ok"] and audit["reason"] == reason


def test_validate_thought_text_names_file_and_line():
    validate_thought_text("One. <think>a</think> Two.", "x.jsonl:1")
    with pytest.raises(InputError, match=r"^data/thoughts/train\.jsonl:17: unclosed <think>"):
        validate_thought_text("One. <think>a Two.", "data/thoughts/train.jsonl:17")
    with pytest.raises(InputError, match=r"^f\.jsonl:3: stray </think>"):
        validate_thought_text("One.</think> Two.", "f.jsonl:3")


def test_thought_token_mask(qwen_tok):
    open_id, close_id = think_ids(qwen_tok)
    text = "Rivers flow. <think>next comes the sea</think> The sea is salty."
    ids = qwen_tok.encode(text, add_special_tokens=False)
    mask = thought_token_mask(ids, open_id, close_id)
    assert qwen_tok.decode([t for t, m in zip(ids, mask.tolist()) if m]) == "next comes the sea"
    with_close = thought_token_mask(ids, open_id, close_id, include_close=True)
    assert qwen_tok.decode([t for t, m in zip(ids, with_close.tolist()) if m]) == "next comes the sea</think>"
    batch = torch.tensor([[1, open_id, 2, 3, close_id, 4], [close_id, 2, open_id, 5, 6, 7]])
    assert thought_token_mask(batch, open_id, close_id).int().tolist() == [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1]]
    assert thought_token_mask([], open_id, close_id).numel() == 0


def test_audit_summary(qwen_tok):
    original = "One fact. Two facts. Three facts here."
    good = interleave(original, [9, 20], ["then two", "then three more"])
    rows = [good, "One fact. <think>x Two facts. Three facts here.", {"text": good}]
    audits = [audit_row(original, r if isinstance(r, str) else r["text"]) for r in rows]
    s = audit_summary(audits, qwen_tok, rows)
    assert s["rows_in"] == 3 and s["rows_kept"] == 2 and s["rows_dropped"] == 1
    assert s["drop_reasons"] == {"unclosed_think": 1}
    assert s["thoughts_per_row_mean"] == 2.0 and s["median_thought_words"] == 2.5
    assert 0.2 < s["thought_token_share"] < 0.6


def test_teacher_drop_rate_stops_a_broken_teacher():
    from thinkmid.data.thoughts import check_drop_rate

    ok, bad = {"ok": True}, {"ok": False, "reason": "too_few_thoughts"}
    check_drop_rate([ok, ok, bad], 0.5)  # a third dropped: within the limit
    check_drop_rate([], 0.0)
    with pytest.raises(RuntimeError, match=r"dropped 2/3 chunks .*max_invalid_rate 50.0%.*too_few_thoughts.*#1"):
        check_drop_rate([ok, bad, bad], 0.5)
