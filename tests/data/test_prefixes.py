"""The seed's two-stage prefix rows (build_eval_rows in scripts/eval_reward_gate.py @ f5a982a)."""

from types import SimpleNamespace

from thinkmid.data.prefixes import cut_at_thought, prefix_rows, strip_spans

A = "The valley was settled by farmers who built terraces on the hills."
B = "Rain falls mostly in summer, when winds blow in from the ocean."
C = "The main town grew around a market where wool was traded."
D = "Today most people work in services and tourism along the lake."


def _n(tok, text):
    return len(tok.encode(text, add_special_tokens=False))


def test_cut_at_first_thought_with_room_before_and_after(qwen_tok):
    # Thought 1 has too little text before it; thought 2 is the cut; thought 3 (after the cut) is
    # stripped from the reference; thought 1 stays in the prompt.
    text = f"Short. <think>too early</think> {A} <think>weather next</think> {B} <think>towns</think> {C} {D}"
    before = f"Short. <think>too early</think> {A} "
    min_before = _n(qwen_tok, "Short. <think>too early</think>") + 1
    assert _n(qwen_tok, before) >= min_before
    got = cut_at_thought({"id": "r", "text": text}, qwen_tok, min_before, 8, 12)
    assert got["prefix"] == before.rstrip() and "<think>too early</think>" in got["prefix"]
    assert got["judge_prefix"] == got["prefix"] + " <think>"
    assert got["prefix_ids"] == qwen_tok.encode(got["prefix"], add_special_tokens=False)
    assert got["teacher_thought"] == "weather next" and got["earlier_thoughts"] == 1
    rest = qwen_tok.encode(f" {B}  {C} {D}", add_special_tokens=False)  # thought 3 removed, spaces kept
    assert got["suffix_ids"] == rest[:12] and got["suffix"] == qwen_tok.decode(rest[:12])
    assert "<think>" not in got["suffix"]


def test_rows_without_a_qualifying_thought_are_skipped(qwen_tok):
    late = {"id": "late", "text": f"{A} {B} {C} <think>no room after</think> end."}
    none = {"id": "none", "text": f"{A} {B}"}
    assert cut_at_thought(late, qwen_tok, 8, 8, 16) is None
    assert cut_at_thought(none, qwen_tok, 1, 1, 16) is None
    # The reference is "after stripping": thoughts after the cut do not count towards min_after.
    padded = {"id": "p", "text": f"{A} <think>x</think> Go. <think>{B} {C}</think>"}
    assert cut_at_thought(padded, qwen_tok, 4, 6, 16) is None


def test_strip_spans_keeps_surrounding_text():
    assert strip_spans("a <think>x</think> b<think>y\nz</think>.") == "a  b."


def test_prefix_rows_shuffle_offset_and_limit(qwen_tok):
    rows = [{"id": f"r{i}", "text": f"{A} <think>t{i}</think> {B}"} for i in range(6)]
    rows[2]["text"] = A  # no thought: skipped
    cut = SimpleNamespace(min_before=4, min_after=4, reference_tokens=8)
    import random

    order = [r["id"] for r in rows]
    random.Random(7).shuffle(order)
    want = [i for i in order if i != "r2"]
    assert [r["id"] for r in prefix_rows(rows, qwen_tok, cut, seed=7)] == want
    assert [r["id"] for r in prefix_rows(rows, qwen_tok, cut, seed=7, limit=2)] == want[:2]
    skipped = [i for i in order[3:] if i != "r2"]
    assert [r["id"] for r in prefix_rows(rows, qwen_tok, cut, seed=7, offset=3)] == skipped
