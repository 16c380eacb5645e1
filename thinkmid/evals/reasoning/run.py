"""Sample k completions per problem with any Engine and score them: the reasoning_eval stage's core.

One engine call per benchmark (all problems x k, stopping at EOS), so a server backend sees the
whole batch at once. Returns a summary with identical keys for every arm plus per-sample rows.
"""

from __future__ import annotations

from thinkmid.engines.base import Engine, SamplingParams
from thinkmid.evals.reasoning import TASKS
from thinkmid.evals.reasoning import scorer_errors
from thinkmid.evals.reasoning.common import Problem
from thinkmid.evals.stats import mean_at_k, mean_at_k_interval, pass_at_k

MACRO_KEYS = ("mean_at_k", "pass_at_k", "avg_completion_tokens")


def eos_ids(tokenizer) -> tuple[int, ...]:
    ids = tokenizer.eos_token_id
    ids = ids if isinstance(ids, (list, tuple)) else [ids]
    return tuple(sorted({int(i) for i in ids if i is not None}))


def summarize(correct: list[list[bool]], tokens: list[int], k: int) -> dict:
    mean, anyp = mean_at_k(correct), pass_at_k(correct)
    m_lo, m_hi = mean_at_k_interval(correct)[1:3]  # clustered by problem: its k samples are not independent
    p_lo, p_hi = anyp.interval()
    return {
        "mean_at_k": mean.value, "mean_at_k_lo": m_lo, "mean_at_k_hi": m_hi,
        "correct": mean.successes, "samples": mean.n,
        "pass_at_k": anyp.value, "pass_at_k_lo": p_lo, "pass_at_k_hi": p_hi,
        "any_pass": anyp.successes, "problems": anyp.n,
        "avg_completion_tokens": sum(tokens) / len(tokens) if tokens else 0.0,
        "k": k,
    }  # fmt: skip


def macro(per_bench: dict[str, dict]) -> dict:
    """Unweighted mean over benchmarks (each counts once, whatever its size), as in the reference table."""
    n = len(per_bench)
    out = {key: (sum(b[key] for b in per_bench.values()) / n if n else 0.0) for key in MACRO_KEYS}
    out["benchmarks"] = n
    return out


def evaluate(
    engine: Engine,
    tokenizer,
    benchmarks: dict[str, list[Problem]],
    k: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    progress: bool = True,
) -> tuple[dict, dict[str, list[dict]]]:
    """Returns (summary, samples): summary[name] per benchmark plus summary["macro"]; samples[name]
    holds one JSON-ready row per (problem, sample)."""
    from tqdm.auto import tqdm

    summary: dict[str, dict] = {}
    samples: dict[str, list[dict]] = {}
    stop = eos_ids(tokenizer)
    for name, problems in benchmarks.items():
        if name == "macro":
            raise ValueError("'macro' is reserved for the cross-benchmark summary")
        # Same seed for every benchmark, so enabling or disabling one does not reshuffle the others.
        params = SamplingParams(
            max_new_tokens=max_new_tokens, n=k, temperature=temperature, top_p=top_p,
            stop_token_ids=stop, seed=seed,
        )  # fmt: skip
        prompts = [tokenizer.encode(TASKS[p.benchmark].prompt(p)) for p in problems]
        outs = engine.generate(prompts, params) if prompts else []
        rows, correct, tokens, errors = [], [], [], 0
        it = zip(problems, outs)
        if progress:
            it = tqdm(it, total=len(problems), desc=f"score {name}", unit="problem", leave=False)
        for p, comps in it:
            if len(comps) != k:
                raise RuntimeError(f"engine returned {len(comps)} completions for {p.id}, expected k={k}")
            task, flags = TASKS[p.benchmark], []
            for j, c in enumerate(comps):
                text = c.text or tokenizer.decode(c.token_ids, skip_special_tokens=False)
                (ok, extracted), raised = scorer_errors.guarded(task.score, p, text)
                errors += raised
                flags.append(bool(ok))
                tokens.append(len(c.token_ids))
                rows.append({
                    "benchmark": name, "problem_id": p.id, "sample_idx": j, "completion": text,
                    "extracted": extracted, "gold": p.gold, "correct": bool(ok),
                    "completion_tokens": len(c.token_ids), "finish_reason": c.finish_reason,
                })  # fmt: skip
            correct.append(flags)
        scorer_errors.check(name, errors, len(rows))
        summary[name] = {**summarize(correct, tokens, k), "scorer_errors": errors}
        samples[name] = rows
    summary["macro"] = macro({n: s for n, s in summary.items()})
    return summary, samples
