"""Whole-chunk thought data checked the seed's way (scripts/build_thinking_data.py @ f5a982a)."""

from types import SimpleNamespace

from thinkmid.data.rewrite import check, finish, normalize, rewrite_prompt, rewrite_rows, word_coverage

RAW = "The lake freezes in winter. Fishermen cut holes in the ice. Spring brings floods to the valley."
GOOD = (
    "The lake freezes in winter. <world_model>Cold air sits in the basin.</world_model> Fishermen cut holes "
    "in the ice. <simulate>Thin ice would break.</simulate> Spring brings floods <verification>Snowmelt "
    "raises rivers.</verification> to the valley."
)


def _tp(**kw):
    base = dict(
        min_thoughts=3, max_thoughts=6, min_coverage=0.6, max_augmented_tokens=768, retries=2, chunk_tokens=None
    )
    return SimpleNamespace(**{**base, **kw})


def test_normalize_maps_every_action_tag_and_prunes():
    text = "```\nA <Global_Context>g</global_context> B <recall_knowledge>r</ recall_knowledge > C\n\n\n\nD```"
    assert normalize(text, 6) == "A <think>g</think> B <think>r</think> C\n\nD"
    assert (
        normalize("a <think>1</think> b <think>2</think> c <think>3</think>", 2)
        == "a <think>1</think> b <think>2</think> c "
    )


def test_check_counts_balance_and_coverage():
    aug = normalize(GOOD, 6)
    assert check(RAW, aug, 3, 6, 0.6) == []
    assert check(RAW, aug, 4, 6, 0.6) == ["too_few_thoughts"]
    assert "unbalanced_tags" in check(RAW, aug.replace("</think>", "", 1), 3, 6, 0.6)
    # The words of the thoughts count towards coverage (the seed strips only the tag markers).
    summary = "<think>lake freezes winter</think> x <think>fishermen holes</think> y <think>spring</think>"
    assert word_coverage(RAW, summary) == 6 / 12  # lake freezes winter fishermen holes spring
    assert "low_word_coverage" in check(RAW, summary, 3, 6, 0.6)


def test_prompt_names_the_kinds_and_counts():
    p = rewrite_prompt("CHUNK", 3, 6)
    for tag in ("global_context", "world_model", "recall_knowledge", "simulate", "reusable_lessons", "verification"):
        assert f"<{tag}>" in p
    assert "3 to 6" in p and p.rstrip().endswith("CHUNK")


class ScriptedTeacher:
    """Answers from a script per attempt (a teacher that fails first, then succeeds)."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def rewrite(self, prompts, attempt=0):
        self.calls.append(len(prompts))
        return [self.script[attempt] for _ in prompts]


def test_retries_then_keeps_or_drops(qwen_tok):
    ids = qwen_tok.encode(RAW)
    row = {"id": "r", "prefix_ids": ids[:8], "suffix_ids": ids[8:]}
    t = ScriptedTeacher(["A summary instead.", GOOD, GOOD])
    rows, audits = rewrite_rows([row], t, qwen_tok, _tp())
    assert t.calls == [1, 1] and audits[0]["ok"] and rows[0]["n_thoughts"] == 3
    assert rows[0]["original"] == RAW and rows[0]["interleaved"] == normalize(GOOD, 6)
    t = ScriptedTeacher(["no", "no", "no"])
    rows, audits = rewrite_rows([row], t, qwen_tok, _tp())
    assert t.calls == [1, 1, 1] and not audits[0]["ok"] and audits[0]["reason"] == "too_few_thoughts"
    # the cut to max_augmented_tokens is checked too: 12 tokens leave too few thoughts and too few tokens
    text, errors = finish(qwen_tok, RAW, GOOD, _tp(max_augmented_tokens=12))
    assert text is None and "cut_too_few_thoughts" in errors and "too_short" in errors
