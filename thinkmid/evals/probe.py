"""The causal thought-use probe: does the suffix depend on the thought that precedes it?

Per prefix, the model first samples its own thought (rollouts.sample_groups, one thought per prefix).
Then, with the thought held fixed, K suffixes are sampled (rollouts.sample_suffixes) under five
thought conditions and judged against the true suffix by the reference judge:

- sampled:  the model's own sampled thought
- swapped:  the sampled thought of an unrelated prefix (rotation by one: row i gets row i+1's thought,
            the last row gets row 0's); needs at least two prefixes
- blank:    no thought at all ("<think></think>")
- generic:  thought_probe.generic_thought, tokenised without special tokens
- teacher:  the row's teacher_thought from data/thoughts/probe.jsonl; rows with an empty one are skipped

Every condition uses the same K, the same suffix budget, temperature and seed, so differences come
from the thought. delta(cond) = mean reward of cond minus mean reward of sampled on the SAME prefixes
(paired; equal to the plain difference of the two reward_means whenever cond covers every prefix).
Negative deltas for swapped mean the thought was being used.
"""

from __future__ import annotations

from thinkmid.rollouts import Sample, judge_groups, sample_groups, sample_suffixes

CONDITIONS = ("sampled", "swapped", "blank", "generic", "teacher")


def swap_rotation(thoughts: list[list[int]]) -> list[list[int]]:
    """Row i gets the thought of row (i + 1) mod n: always another prefix's thought when n >= 2."""
    return [list(thoughts[(i + 1) % len(thoughts)]) for i in range(len(thoughts))]


def thought_tokens(tokenizer, text: str) -> list[int]:
    """A thought's text as tokens inside <think>...</think> (no special tokens, no padding space)."""
    return tokenizer.encode(text.strip(), add_special_tokens=False) if text and text.strip() else []


def build_conditions(rows: list[dict], sampled: list[list[int]], tokenizer,
                     generic_thought: str) -> dict[str, tuple[list[int], list[list[int]]]]:  # fmt: skip
    """cond -> (row indices it covers, the thought token ids for those rows). A condition covering no
    row is left out (e.g. teacher when no row has a teacher thought, swapped with a single prefix)."""
    if len(rows) != len(sampled):
        raise ValueError(f"{len(rows)} rows but {len(sampled)} sampled thoughts")
    n = len(rows)
    all_idx = list(range(n))
    generic = thought_tokens(tokenizer, generic_thought)
    teacher_idx = [i for i, r in enumerate(rows) if (r.get("teacher_thought") or "").strip()]
    conds = {
        "sampled": (all_idx, [list(t) for t in sampled]),
        "swapped": (all_idx, swap_rotation(sampled)) if n >= 2 else ([], []),
        "blank": (all_idx, [[] for _ in all_idx]),
        "generic": (all_idx, [list(generic) for _ in all_idx]),
        "teacher": (teacher_idx, [thought_tokens(tokenizer, rows[i]["teacher_thought"]) for i in teacher_idx]),
    }
    return {c: v for c, v in conds.items() if v[0]}


def with_prefix_ids(rows: list[dict], tokenizer) -> list[dict]:
    """Tokenise each row's prefix with this arm's tokenizer (as chunking does: no special tokens)."""
    return [{**r, "prefix_ids": tokenizer.encode(r["prefix"], add_special_tokens=False)} for r in rows]


def run_probe(engine, tokenizer, rows: list[dict], judge, *, k: int, thought_max: int, suffix_max: int,
              temperature: float, seed: int, generic_thought: str) -> tuple[list[Sample], dict]:  # fmt: skip
    """Sample one thought per row, then K judged suffixes per condition.

    Returns (the thought samples, {cond: (row indices, groups of K judged Samples)}). `rows` carry
    prefix_ids. The same seed is used for every condition, so rows see the same random stream.
    """
    thought_groups = sample_groups(engine, tokenizer, rows, 1, thought_max, suffix_max, temperature, seed)
    thoughts = [g[0] for g in thought_groups]
    conds = build_conditions(rows, [t.thought_ids for t in thoughts], tokenizer, generic_thought)
    out, judge_rows, judge_grps = {}, [], []
    for cond, (idx, cond_thoughts) in conds.items():
        sub = [rows[i] for i in idx]
        groups = sample_suffixes(engine, tokenizer, sub, cond_thoughts, k, suffix_max, temperature, seed + 1)
        out[cond] = (idx, groups)
        judge_rows += sub
        judge_grps += groups
    judge_groups(judge, judge_rows, judge_grps)  # one judge call for every condition
    return thoughts, out


def _valid(groups: list[list[Sample]]) -> list[int]:
    return [s.reward for g in groups for s in g if s.reward is not None]


def _mean(xs: list[int]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def summarize_arm(results: dict[str, tuple[list[int], list[list[Sample]]]]) -> dict:
    """{"conditions": {cond: {reward_mean, n, prefixes, invalid_rate}}, "deltas_vs_sampled": {cond: delta}}.

    n counts samples with a valid verdict (what reward_mean averages). Deltas are paired: the
    sampled condition is restricted to the prefixes the other condition covers.
    """
    conditions = {}
    for cond in [c for c in CONDITIONS if c in results] + sorted(set(results) - set(CONDITIONS)):
        idx, groups = results[cond]
        valid = _valid(groups)
        total = sum(len(g) for g in groups)
        conditions[cond] = {
            "reward_mean": _mean(valid), "n": len(valid), "prefixes": len(idx),
            "invalid_rate": (total - len(valid)) / total if total else 0.0,
        }  # fmt: skip
    deltas = {}
    if "sampled" in results:
        s_idx, s_groups = results["sampled"]
        by_row = dict(zip(s_idx, s_groups))
        for cond, (idx, groups) in results.items():
            if cond == "sampled":
                continue
            base = _valid([by_row[i] for i in idx if i in by_row])
            deltas[cond] = _mean(_valid(groups)) - _mean(base)
    return {"conditions": conditions, "deltas_vs_sampled": deltas}


def arm_metrics(arm_summary: dict) -> dict[str, float]:
    """Flat MLflow metrics: reward_<cond>, n_<cond>, delta_<cond> (same keys for every arm)."""
    out: dict[str, float] = {}
    for cond, c in arm_summary["conditions"].items():
        out[f"reward_{cond}"] = c["reward_mean"]
        out[f"n_{cond}"] = c["n"]
    out.update({f"delta_{cond}": d for cond, d in arm_summary["deltas_vs_sampled"].items()})
    return out


def sample_rows(arm: str, rows: list[dict], thoughts: list[Sample], results: dict) -> list[dict]:
    """One JSONL row per judged suffix: arm, prefix, condition, the thought used, suffix, reward."""
    out = []
    for cond in [c for c in CONDITIONS if c in results] + sorted(set(results) - set(CONDITIONS)):
        idx, groups = results[cond]
        for i, g in zip(idx, groups):
            for j, s in enumerate(g):
                out.append({
                    "arm": arm, "prefix_id": rows[i]["id"], "condition": cond, "sample_idx": j,
                    "thought": s.thought_text, "sampled_thought": thoughts[i].thought_text,
                    "predicted_suffix": s.suffix_text, "reward": s.reward,
                })  # fmt: skip
    return out
