"""The RLMT reward object, shared by rlmt, reward_gate and thought_probe.

prefix -> " <think>" -> sampled thought (stops at </think>) -> </think> inserted by us -> sampled
suffix -> reference judge(prefix, predicted suffix, true suffix) in {0, 1}. Groups are the K samples
of one prefix; group statistics use the names of the results record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from thinkmid import THINK_CLOSE, THINK_OPEN
from thinkmid.data.prefixes import JUDGE_CHARS
from thinkmid.data.thoughts import strip_thoughts
from thinkmid.engines.base import SamplingParams, two_stage
from thinkmid.models.tokenizer import think_ids

NEAR_ZERO = 1e-6
SEED_GEN_BATCH = 8  # the seed's HF generate batch: rows that stop early carry pads to its longest row


@dataclass
class Sample:
    prompt_ids: list[int]  # prefix + " <think>"
    thought_ids: list[int]
    suffix_ids: list[int]
    thought_logps: list[float]
    suffix_logps: list[float]
    closed_by_model: bool
    suffix_text: str
    thought_text: str
    reward: int | None = None  # None: the judge gave no valid verdict
    extra: dict = field(default_factory=dict)

    @property
    def new_tokens(self) -> int:
        return len(self.thought_ids) + 1 + len(self.suffix_ids)


def thought_prompt(tokenizer, prefix_ids: list[int]) -> list[int]:
    open_id, _ = think_ids(tokenizer)
    return list(prefix_ids) + tokenizer.encode(" ", add_special_tokens=False) + [open_id]


def sample_groups(
    engine,
    tokenizer,
    rows: list[dict],
    k: int,
    thought_max: int,
    suffix_max: int,
    temperature: float,
    seed: int,
    top_p: float = 1.0,
) -> list[list[Sample]]:
    """K two-stage samples per row (rows carry `prefix_ids`); one engine call per stage."""
    _, close_id = think_ids(tokenizer)
    eos = tuple(i for i in {tokenizer.eos_token_id} if i is not None)
    prompts = [thought_prompt(tokenizer, r["prefix_ids"]) for r in rows]
    # An engine with its own two-stage loop (the CUDA fast path) does both stages in one decode loop.
    run = engine.two_stage if hasattr(engine, "two_stage") else (lambda *a: two_stage(engine, *a))
    outs = run(
        prompts,
        SamplingParams(
            max_new_tokens=thought_max, n=k, temperature=temperature, top_p=top_p, stop_token_ids=(close_id,), seed=seed
        ),
        SamplingParams(
            max_new_tokens=suffix_max, temperature=temperature, top_p=top_p, stop_token_ids=eos, seed=seed + 1
        ),
        [close_id],
    )
    groups = []
    for p, comps in zip(prompts, outs):
        groups.append(
            [_sample(tokenizer, p, c.thought.token_ids, c.thought.logprobs, c.suffix, c.closed_by_model) for c in comps]
        )
    return groups


def seed_decode(tokenizer, ids: list[int]) -> str:
    """Decode as the seed did (skip_special_tokens=True on Qwen3, where <think> and </think> are
    ordinary added tokens and stay in the text): every special token but the thought tags dropped."""
    keep = set(think_ids(tokenizer))
    special = set(getattr(tokenizer, "all_special_ids", ()) or ()) - keep
    return tokenizer.decode([t for t in ids if t not in special], skip_special_tokens=False)


def seed_thought_text(text: str) -> str:
    """The seed's parse_thought_only: the text before the first </think>, <think> markers removed."""
    if THINK_CLOSE in text:
        return text.split(THINK_CLOSE, 1)[0].replace(THINK_OPEN, "").strip()
    return re.sub(r"^<think>", "", text.strip(), flags=re.IGNORECASE).strip()


def _sample(tokenizer, prompt, thought_ids, thought_logps, suffix, closed) -> Sample:
    ids = [t for t in suffix.token_ids if t != tokenizer.eos_token_id]
    thought = seed_thought_text(seed_decode(tokenizer, thought_ids))
    visible = seed_decode(tokenizer, suffix.token_ids).strip()
    return Sample(
        prompt_ids=prompt,
        thought_ids=list(thought_ids),
        suffix_ids=list(suffix.token_ids),
        thought_logps=list(thought_logps),
        suffix_logps=list(suffix.logprobs),
        closed_by_model=closed,
        suffix_text=tokenizer.decode(ids, skip_special_tokens=False),
        thought_text=tokenizer.decode(thought_ids, skip_special_tokens=False),
        extra={
            "judged_suffix": visible,  # what the seed's judge saw as the candidate (before the 2,000-char cut)
            "seed_thought_tokens": len(tokenizer.encode(thought, add_special_tokens=False)) if thought else 0,
            "seed_artifact": artifact_flag(thought + "\n" + visible),
        },
    )


def sample_suffixes(
    engine,
    tokenizer,
    rows: list[dict],
    thoughts: list[list[int]],
    k: int,
    suffix_max: int,
    temperature: float,
    seed: int,
    top_p: float = 1.0,
) -> list[list[Sample]]:
    """Suffixes after a GIVEN thought per row (thought-use probe): prefix <think>T</think> -> K suffixes."""
    _, close_id = think_ids(tokenizer)
    eos = tuple(i for i in {tokenizer.eos_token_id} if i is not None)
    prompts = [thought_prompt(tokenizer, r["prefix_ids"]) for r in rows]
    full = [p + list(t) + [close_id] for p, t in zip(prompts, thoughts)]
    outs = engine.generate(
        full,
        SamplingParams(
            max_new_tokens=suffix_max, n=k, temperature=temperature, top_p=top_p, stop_token_ids=eos, seed=seed
        ),
    )
    return [
        [_sample(tokenizer, p, t, [0.0] * len(t), c, False) for c in comps]
        for p, t, comps in zip(prompts, thoughts, outs)
    ]


def judge_items(rows: list[dict], groups: list[list[Sample]]) -> list[tuple[str, str, str]]:
    """(prefix, candidate, reference) per sample, as the seed showed them to its judge: the decoded
    prompt (earlier thoughts and the closing " <think>" included, rows cut by data/prefixes.py carry it
    as `judge_prefix`), the stripped candidate and the reference, each cut to its first 2,000 chars."""
    out = []
    for r, g in zip(rows, groups):
        prefix = r.get("judge_prefix", r["prefix"])[:JUDGE_CHARS]
        for s in g:
            cand = s.extra.get("judged_suffix", s.suffix_text)
            out.append((prefix, cand[:JUDGE_CHARS], r["suffix"][:JUDGE_CHARS]))
    return out


def judge_groups(judge, rows: list[dict], groups: list[list[Sample]]) -> None:
    """Fill Sample.reward with the reference judge's verdicts (one judge call for all samples).

    A judge that also reads its answers the seed's lenient way (`last_lenient`) leaves that verdict
    in Sample.extra["reward_lenient"] (group_stats: reward_mean_lenient)."""
    items = judge_items(rows, groups)
    verdicts = judge.judge(items) if items else []
    lenient = list(getattr(judge, "last_lenient", None) or [])
    it = iter(verdicts)
    lit = iter(lenient) if len(lenient) == len(verdicts) else None
    for g in groups:
        for s in g:
            s.reward = next(it)
            if lit is not None:
                s.extra["reward_lenient"] = next(lit)


def artifact_flag(text: str) -> bool:
    """The seed's artifact test (scripts/train_rlmt.py: artifact_flag), on thought + "\n" + suffix:
    a U+FFFD; more than two <think> or </think>; "as an ai" / "i cannot" / "i'm unable"; one
    character repeated 25+ times in a row; or, over >= 40 non-space characters, a letter share < 0.35."""
    low = text.lower()
    if "\ufffd" in text or low.count("<think>") > 2 or low.count("</think>") > 2:
        return True
    if "as an ai" in low or "i cannot" in low or "i'm unable" in low:
        return True
    if re.search(r"(.)\1{24,}", text):
        return True
    visible = re.sub(r"\s+", "", text)
    return len(visible) >= 40 and sum(c.isalpha() for c in visible) / len(visible) < 0.35


def seed_total_new_tokens(samples: list[Sample]) -> list[int]:
    """The seed's total_new_tokens per sample, in the order sampled: the re-encoded thought text plus
    the suffix as HF generate returned it in batches of SEED_GEN_BATCH, i.e. padded to the longest
    suffix of its batch (end-of-text and the pads after it counted)."""
    out = []
    for b in range(0, len(samples), SEED_GEN_BATCH):
        batch = samples[b : b + SEED_GEN_BATCH]
        padded = max(len(s.suffix_ids) for s in batch)
        out += [s.extra.get("seed_thought_tokens", len(s.thought_ids)) + padded for s in batch]
    return out


ARTIFACT_MARKERS = ("<think>", "</think>", "<|im_start|>", "<|im_end|>", "<|endoftext|>")


def is_artifact(s: Sample) -> bool:
    """A suffix that is empty or carries thought/chat markup instead of plain continuation text."""
    text = s.suffix_text
    return not text.strip() or any(m in text for m in ARTIFACT_MARKERS) or strip_thoughts(text) != text


def group_stats(groups: list[list[Sample]]) -> dict[str, float]:
    """Per-call statistics over groups, as the seed takes them: only valid verdicts count, and the
    group rates are over the groups with at least one valid verdict (invalid ones are only counted,
    in invalid_rate). near_zero: >= 2 valid verdicts, all equal (the seed's std < 1e-5)."""
    all_samples = [s for g in groups for s in g]
    valid = [s.reward for s in all_samples if s.reward is not None]
    mixed = near_zero = all_zero = all_one = any_success = judged = 0
    for g in groups:
        r = [s.reward for s in g if s.reward is not None]
        if not r:
            continue
        judged += 1
        mean = sum(r) / len(r)
        all_zero += mean <= NEAR_ZERO
        all_one += mean >= 1 - NEAR_ZERO
        mixed += max(r) > min(r)
        near_zero += len(r) >= 2 and max(r) == min(r)
        any_success += mean > NEAR_ZERO
    reward_mean = sum(valid) / len(valid) if valid else 0.0
    var = sum((x - reward_mean) ** 2 for x in valid) / len(valid) if valid else 0.0
    div = max(judged, 1)
    n = max(len(all_samples), 1)
    lenient = [s.extra["reward_lenient"] for s in all_samples if s.extra.get("reward_lenient") is not None]
    extra = {"reward_mean_lenient": sum(lenient) / len(lenient)} if lenient else {}
    return {
        "reward_mean": reward_mean,
        "reward_std": var**0.5,
        "invalid_rate": (len(all_samples) - len(valid)) / max(len(all_samples), 1),
        "mixed_groups": mixed / div,
        "near_zero_groups": near_zero / div,
        "all_zero_groups": all_zero / div,
        "all_one_groups": all_one / div,
        "any_success_groups": any_success / div,
        "all_success_groups": all_one / div,
        # The seed's count (re-encoded thought + suffix padded within its generate batch); ours as sampled.
        "avg_total_new_tokens": sum(seed_total_new_tokens(all_samples)) / n if all_samples else 0.0,
        "avg_total_new_tokens_sampled": sum(s.new_tokens for s in all_samples) / n,
        "avg_predicted_suffix_words": sum(len(s.suffix_text.split()) for s in all_samples) / max(len(all_samples), 1),
        # The boundary is inserted externally, so every sample's thought is closed by construction;
        # model_closed_think_rate says how often the model closed it on its own within budget.
        "closed_think_rate": 1.0 if all_samples else 0.0,
        "model_closed_think_rate": sum(s.closed_by_model for s in all_samples) / max(len(all_samples), 1),
        # The seed's artifact test on thought + suffix; ours (markup or an empty suffix) beside it.
        "artifact_rate": sum(bool(s.extra.get("seed_artifact")) for s in all_samples) / n,
        "markup_artifact_rate": sum(is_artifact(s) for s in all_samples) / n,
        **extra,
    }
