"""The causal thought-use probe: does the suffix depend on the thought that precedes it?

As the seed ran it (scripts/probe_thought_use.py @ f5a982a, lines 24-29, 81-213, 375-411): per
prefix, K thoughts are sampled independently, each followed by ONE sampled suffix (the gate's
two-stage sample, rollouts.sample_groups): the `normal` condition. Then the thought is replaced and
one suffix is sampled after each replacement, K per prefix:

- blank:    no thought ("<think></think>")
- generic:  thought_probe.generic_thoughts, sample j of prefix i gets number (i + j) mod their count
- swapped:  a random derangement of the prefixes (random.Random(seed + 3), 3 being the condition's
            index in the seed's order normal, blank, generic, swapped); sample j of prefix i gets
            thought j of its source prefix; needs at least two prefixes
- teacher:  the row's teacher_thought, K times (rows without one are skipped); not in the seed's
            default set

Every suffix is judged against the true suffix by the reference judge. Per condition: reward_mean,
reward_std, prefix_mean_reward, any/all-success prefix rates; per condition c, `normal_minus_<c>`:
mean over shared prefixes of (normal prefix mean - c prefix mean), and the normal-better /
condition-better / tie prefix rates. Positive deltas mean the model's own thought helps.
"""

from __future__ import annotations

import random
import re
import statistics

from thinkmid.evals.stats import paired_delta_interval
from thinkmid.rollouts import Sample, judge_groups, sample_groups, sample_suffixes

CONDITIONS = ("normal", "blank", "generic", "swapped", "teacher")  # the seed's order, then teacher
DELTA_TIE = 1e-9


def derangement(n: int, seed: int) -> list[int]:
    """A permutation with no fixed point: prefix i takes its thoughts from prefix result[i]."""
    if n < 2:
        raise ValueError("a swapped thought needs at least two prefixes")
    rng = random.Random(seed)
    for _ in range(100):
        perm = list(range(n))
        rng.shuffle(perm)
        if all(i != p for i, p in enumerate(perm)):
            return perm
    return [(i + 1) % n for i in range(n)]


def thought_tokens(tokenizer, text: str) -> list[int]:
    """A thought's text as tokens inside <think>...</think> (no special tokens, no padding space)."""
    return tokenizer.encode(text.strip(), add_special_tokens=False) if text and text.strip() else []


def build_conditions(
    rows: list[dict], normal: list[list[list[int]]], tokenizer, generic_thoughts: list[str], seed: int
) -> dict[str, tuple[list[int], list[list[list[int]]]]]:
    """cond -> (row indices it covers, per row the K thought token lists). `normal[i][j]` is the j-th
    sampled thought of row i. A condition covering no row is left out."""
    if len(rows) != len(normal):
        raise ValueError(f"{len(rows)} rows but {len(normal)} groups of sampled thoughts")
    n = len(rows)
    k = len(normal[0]) if normal else 0
    generic = [thought_tokens(tokenizer, t) for t in generic_thoughts]
    conds: dict[str, tuple[list[int], list[list[list[int]]]]] = {}
    all_idx = list(range(n))
    conds["blank"] = (all_idx, [[[] for _ in range(k)] for _ in all_idx])
    if generic:
        conds["generic"] = (all_idx, [[list(generic[(i + j) % len(generic)]) for j in range(k)] for i in all_idx])
    if n >= 2:
        src = derangement(n, seed + CONDITIONS.index("swapped"))
        conds["swapped"] = (all_idx, [[list(normal[s][j % len(normal[s])]) for j in range(k)] for s in src])
    teacher_idx = [i for i, r in enumerate(rows) if (r.get("teacher_thought") or "").strip()]
    if teacher_idx:
        conds["teacher"] = (
            teacher_idx,
            [[thought_tokens(tokenizer, rows[i]["teacher_thought"])] * k for i in teacher_idx],
        )
    return {c: v for c, v in conds.items() if v[0]}


def with_prefix_ids(rows: list[dict], tokenizer) -> list[dict]:
    """Tokenise each row's prefix with this arm's tokenizer (as chunking does: no special tokens)."""
    return [{**r, "prefix_ids": tokenizer.encode(r["prefix"], add_special_tokens=False)} for r in rows]


def run_probe(
    engine,
    tokenizer,
    rows: list[dict],
    judge,
    *,
    k: int,
    thought_max: int,
    suffix_max: int,
    temperature: float,
    seed: int,
    generic_thoughts: list[str],
    top_p: float = 1.0,
) -> dict:
    """K sampled thought + suffix pairs per row (`normal`), then one suffix after each replaced thought.

    Returns {cond: (row indices, groups of K judged Samples)}; `rows` carry prefix_ids."""
    normal = sample_groups(engine, tokenizer, rows, k, thought_max, suffix_max, temperature, seed, top_p=top_p)
    conds = build_conditions(rows, [[s.thought_ids for s in g] for g in normal], tokenizer, generic_thoughts, seed)
    out = {"normal": (list(range(len(rows))), normal)}
    judge_rows, judge_grps = list(rows), list(normal)
    for cond, (idx, thoughts) in conds.items():
        flat_rows = [rows[i] for i, ts in zip(idx, thoughts) for _ in ts]
        flat_thoughts = [t for ts in thoughts for t in ts]
        flat = sample_suffixes(
            engine, tokenizer, flat_rows, flat_thoughts, 1, suffix_max, temperature, seed + 1, top_p=top_p
        )
        groups = [[g[0] for g in flat[j * k : (j + 1) * k]] for j in range(len(idx))]
        out[cond] = (idx, groups)
        judge_rows += [rows[i] for i in idx]
        judge_grps += groups
    judge_groups(judge, judge_rows, judge_grps)  # one judge call for every condition
    return out


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else 0.0


def _words(text: str) -> int:
    return len(re.findall(r"\S+", text))


def ordered_conditions(results) -> list[str]:
    return [c for c in CONDITIONS if c in results] + sorted(set(results) - set(CONDITIONS))


def prefix_rewards(idx: list[int], groups: list[list[Sample]]) -> dict[int, list[float]]:
    """Row index -> its valid rewards (rows with none left out)."""
    out = {}
    for i, g in zip(idx, groups):
        r = [float(s.reward) for s in g if s.reward is not None]
        if r:
            out[i] = r
    return out


def condition_summary(idx: list[int], groups: list[list[Sample]]) -> dict:
    samples = [s for g in groups for s in g]
    valid = [float(s.reward) for s in samples if s.reward is not None]
    by_prefix = prefix_rewards(idx, groups)
    return {
        "reward_mean": _mean(valid),
        "reward_std": statistics.pstdev(valid) if len(valid) > 1 else 0.0,
        "n": len(valid),
        "records": len(samples),
        "prefixes": len(idx),
        "invalid_rate": (len(samples) - len(valid)) / len(samples) if samples else 0.0,
        "prefix_mean_reward": _mean(_mean(r) for r in by_prefix.values()),
        "any_success_prefix_rate": _mean(float(max(r) > 0) for r in by_prefix.values()),
        "all_success_prefix_rate": _mean(float(min(r) >= 1) for r in by_prefix.values()),
        "avg_predicted_suffix_words": _mean(_words(s.suffix_text.strip()) for s in samples),
        "avg_thought_words": _mean(_words(s.thought_text.strip()) for s in samples),
    }


def delta(normal: dict[int, list[float]], other: dict[int, list[float]]) -> dict:
    shared = sorted(set(normal) & set(other))
    d = [_mean(normal[i]) - _mean(other[i]) for i in shared]
    # paired over prefixes (the same draw for both conditions), on per-prefix means: its point is mean_delta
    iv = paired_delta_interval({i: [_mean(other[i])] for i in shared}, {i: [_mean(normal[i])] for i in shared})
    return {
        "shared_prefixes": len(shared),
        "mean_delta": _mean(d),
        "normal_better_prefix_rate": _mean(float(x > 0) for x in d),
        "condition_better_prefix_rate": _mean(float(x < 0) for x in d),
        "tie_prefix_rate": _mean(float(abs(x) < DELTA_TIE) for x in d),
        "mean_delta_ci95_low": iv.low,
        "mean_delta_ci95_high": iv.high,
    }


def summarize_arm(results: dict[str, tuple[list[int], list[list[Sample]]]]) -> dict:
    """{"conditions": {cond: condition_summary}, "causal_deltas": {"normal_minus_<cond>": delta}}."""
    conditions = {c: condition_summary(*results[c]) for c in ordered_conditions(results)}
    deltas = {}
    if "normal" in results:
        normal = prefix_rewards(*results["normal"])
        for c in ordered_conditions(results):
            if c != "normal":
                deltas[f"normal_minus_{c}"] = delta(normal, prefix_rewards(*results[c]))
    return {"conditions": conditions, "causal_deltas": deltas}


def arm_metrics(arm_summary: dict) -> dict[str, float]:
    """Flat MLflow metrics: reward_<cond>, n_<cond>, <delta name>/<key> (same keys for every arm)."""
    out: dict[str, float] = {}
    for cond, c in arm_summary["conditions"].items():
        out[f"reward_{cond}"] = c["reward_mean"]
        out[f"n_{cond}"] = c["n"]
    for name, d in arm_summary["causal_deltas"].items():
        out.update({f"{name}/{k}": float(v) for k, v in d.items()})
    return out


def sample_rows(arm: str, rows: list[dict], results: dict) -> list[dict]:
    """One JSONL row per judged suffix: arm, prefix, condition, the thought used, suffix, reward."""
    out = []
    for cond in ordered_conditions(results):
        idx, groups = results[cond]
        for i, g in zip(idx, groups):
            for j, s in enumerate(g):
                out.append(
                    {
                        "arm": arm,
                        "prefix_id": rows[i]["id"],
                        "condition": cond,
                        "sample_idx": j,
                        "thought": s.thought_text,
                        "predicted_suffix": s.suffix_text,
                        "reward": s.reward,
                    }
                )
    return out
