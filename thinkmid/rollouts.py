"""The RLMT reward object, shared by rlmt, reward_gate and thought_probe.

prefix -> " <think>" -> sampled thought (stops at </think>) -> </think> inserted by us -> sampled
suffix -> reference judge(prefix, predicted suffix, true suffix) in {0, 1}. Groups are the K samples
of one prefix; group statistics use the names of the results record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from thinkmid import ARMS_GATE
from thinkmid.data.thoughts import strip_thoughts
from thinkmid.engines.base import SamplingParams, two_stage
from thinkmid.models.tokenizer import think_ids

NEAR_ZERO = 1e-6


def arm_model_dir(arm: str) -> str:
    """Where each named model lives: base, phase3, SFT arms, RLMT arms."""
    if arm in ("base", "phase3"):
        return f"models/{arm}"
    if arm.endswith("_rlmt"):
        return f"models/{arm}"
    return f"models/sft_{arm}"


def gate_arms() -> tuple[str, ...]:
    return ARMS_GATE


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


def sample_groups(engine, tokenizer, rows: list[dict], k: int, thought_max: int, suffix_max: int,
                  temperature: float, seed: int, top_p: float = 1.0) -> list[list[Sample]]:  # fmt: skip
    """K two-stage samples per row (rows carry `prefix_ids`); one engine call per stage."""
    _, close_id = think_ids(tokenizer)
    eos = tuple(i for i in {tokenizer.eos_token_id} if i is not None)
    prompts = [thought_prompt(tokenizer, r["prefix_ids"]) for r in rows]
    # An engine with its own two-stage loop (the CUDA fast path) does both stages in one decode loop.
    run = engine.two_stage if hasattr(engine, "two_stage") else (lambda *a: two_stage(engine, *a))
    outs = run(
        prompts,
        SamplingParams(max_new_tokens=thought_max, n=k, temperature=temperature, top_p=top_p,
                       stop_token_ids=(close_id,), seed=seed),
        SamplingParams(max_new_tokens=suffix_max, temperature=temperature, top_p=top_p,
                       stop_token_ids=eos, seed=seed + 1),
        [close_id],
    )  # fmt: skip
    groups = []
    for p, comps in zip(prompts, outs):
        groups.append([_sample(tokenizer, p, c.thought.token_ids, c.thought.logprobs, c.suffix, c.closed_by_model)
                       for c in comps])  # fmt: skip
    return groups


def _sample(tokenizer, prompt, thought_ids, thought_logps, suffix, closed) -> Sample:
    ids = [t for t in suffix.token_ids if t != tokenizer.eos_token_id]
    return Sample(
        prompt_ids=prompt, thought_ids=list(thought_ids), suffix_ids=list(suffix.token_ids),
        thought_logps=list(thought_logps), suffix_logps=list(suffix.logprobs), closed_by_model=closed,
        suffix_text=tokenizer.decode(ids, skip_special_tokens=False),
        thought_text=tokenizer.decode(thought_ids, skip_special_tokens=False),
    )  # fmt: skip


def sample_suffixes(engine, tokenizer, rows: list[dict], thoughts: list[list[int]], k: int, suffix_max: int,
                    temperature: float, seed: int) -> list[list[Sample]]:  # fmt: skip
    """Suffixes after a GIVEN thought per row (thought-use probe): prefix <think>T</think> -> K suffixes."""
    _, close_id = think_ids(tokenizer)
    eos = tuple(i for i in {tokenizer.eos_token_id} if i is not None)
    prompts = [thought_prompt(tokenizer, r["prefix_ids"]) for r in rows]
    full = [p + list(t) + [close_id] for p, t in zip(prompts, thoughts)]
    outs = engine.generate(full, SamplingParams(max_new_tokens=suffix_max, n=k, temperature=temperature,
                                                stop_token_ids=eos, seed=seed))  # fmt: skip
    return [[_sample(tokenizer, p, t, [0.0] * len(t), c, False) for c in comps]
            for p, t, comps in zip(prompts, thoughts, outs)]  # fmt: skip


def judge_groups(judge, rows: list[dict], groups: list[list[Sample]]) -> None:
    """Fill Sample.reward with the reference judge's verdicts (one judge call for all samples)."""
    items = [(r["prefix"], s.suffix_text, r["suffix"]) for r, g in zip(rows, groups) for s in g]
    verdicts = judge.judge(items) if items else []
    it = iter(verdicts)
    for g in groups:
        for s in g:
            s.reward = next(it)


ARTIFACT_MARKERS = ("<think>", "</think>", "<|im_start|>", "<|im_end|>", "<|endoftext|>")


def is_artifact(s: Sample) -> bool:
    """A suffix that is empty or carries thought/chat markup instead of plain continuation text."""
    text = s.suffix_text
    return not text.strip() or any(m in text for m in ARTIFACT_MARKERS) or strip_thoughts(text) != text


def group_stats(groups: list[list[Sample]]) -> dict[str, float]:
    """Per-call statistics over groups, using only valid verdicts (invalid ones are counted)."""
    n_groups = len(groups)
    all_samples = [s for g in groups for s in g]
    valid = [s.reward for s in all_samples if s.reward is not None]
    mixed = near_zero = all_zero = all_one = any_success = 0
    for g in groups:
        r = [s.reward for s in g if s.reward is not None]
        if not r:
            continue
        mean = sum(r) / len(r)
        all_zero += mean <= NEAR_ZERO
        all_one += mean >= 1 - NEAR_ZERO
        mixed += NEAR_ZERO < mean < 1 - NEAR_ZERO
        any_success += mean > NEAR_ZERO
    # near_zero: groups with no usable variance (every sample got the same reward).
    near_zero = all_zero + all_one
    reward_mean = sum(valid) / len(valid) if valid else 0.0
    var = sum((x - reward_mean) ** 2 for x in valid) / len(valid) if valid else 0.0
    div = max(n_groups, 1)
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
        "avg_total_new_tokens": sum(s.new_tokens for s in all_samples) / max(len(all_samples), 1),
        "avg_predicted_suffix_words": sum(len(s.suffix_text.split()) for s in all_samples) / max(len(all_samples), 1),
        # The boundary is inserted externally, so every sample's thought is closed by construction;
        # model_closed_think_rate says how often the model closed it on its own within budget.
        "closed_think_rate": 1.0 if all_samples else 0.0,
        "model_closed_think_rate": sum(s.closed_by_model for s in all_samples) / max(len(all_samples), 1),
        "artifact_rate": sum(is_artifact(s) for s in all_samples) / max(len(all_samples), 1),
    }
