"""Sample k completions per problem with any Engine and score them: the reasoning_eval stage's core.

One engine call per benchmark (all problems x k, stopping at EOS), so a server backend sees the
whole batch at once. Each sample gets two scores:

- `correct`: the results record's score (seed_score.py: the last box anywhere in the completion,
  normalised string equality). Mean@k / Pass@k and the report's main tables use it.
- `correct_math_verify`: the task's `verify` (math-verify on the visible answer, cut where the
  model starts a new problem; GPQA: our stricter letter reader), reported as *_math_verify.

`opened=True` is the think_opener condition: the prompt ends in `<think>` (thought-trained arms),
and the second score reads the answer after the thought. Summaries are rebuilt from the per-sample
rows (summarize_rows), so the JSONL alone gives the table back.
"""

from __future__ import annotations

from thinkmid import THINK_OPEN
from thinkmid.engines.base import Engine, SamplingParams
from thinkmid.evals.reasoning import TASKS, scorer_errors, seed_score
from thinkmid.evals.reasoning.common import Problem
from thinkmid.evals.stats import mean_at_k, mean_at_k_interval, pass_at_k

MACRO_KEYS = ("mean_at_k", "pass_at_k", "avg_completion_tokens", "mean_at_k_math_verify", "pass_at_k_math_verify")
# condition name -> whether the prompt ends in an opened thought
CONDITIONS = {"plain": False, "think_opener": True}


def eos_ids(tokenizer) -> tuple[int, ...]:
    ids = tokenizer.eos_token_id
    ids = ids if isinstance(ids, (list, tuple)) else [ids]
    return tuple(sorted({int(i) for i in ids if i is not None}))


def prompt_text(problem: Problem, opened: bool = False) -> str:
    text = TASKS[problem.benchmark].prompt(problem)
    return f"{text} {THINK_OPEN}" if opened else text


def score_sample(problem: Problem, completion: str, opened: bool = False) -> dict:
    return scored(problem, completion, opened)[0]


def scored(problem: Problem, completion: str, opened: bool = False) -> tuple[dict, bool]:
    """(the sample's scores, whether a scorer raised): a raising scorer counts as wrong and is counted."""
    (ok, pred), r1 = scorer_errors.guarded(seed_score.score, problem.benchmark, problem.gold, completion)
    (mv_ok, mv_pred), r2 = scorer_errors.guarded(TASKS[problem.benchmark].verify, problem, completion, opened)
    return {
        "extracted": pred,
        "correct": bool(ok),
        "extracted_math_verify": mv_pred,
        "correct_math_verify": bool(mv_ok),
    }, bool(r1 or r2)


def summarize_rows(rows: list[dict], k: int) -> dict:
    """One benchmark's summary from its per-sample rows (problem_id, correct, correct_math_verify,
    completion_tokens); problems are grouped by id in first-seen order."""
    by_problem: dict[str, list[dict]] = {}
    for r in rows:
        by_problem.setdefault(str(r["problem_id"]), []).append(r)
    record = [[bool(r["correct"]) for r in g] for g in by_problem.values()]
    verified = [[bool(r["correct_math_verify"]) for r in g] for g in by_problem.values()]
    tokens = [int(r["completion_tokens"]) for r in rows]
    mean, anyp = mean_at_k(record), pass_at_k(record)
    mv_mean, mv_any = mean_at_k(verified), pass_at_k(verified)
    m_lo, m_hi = mean_at_k_interval(record)[1:3]  # clustered by problem: its k samples are not independent
    p_lo, p_hi = anyp.interval()
    return {
        "mean_at_k": mean.value,
        "mean_at_k_lo": m_lo,
        "mean_at_k_hi": m_hi,
        "correct": mean.successes,
        "samples": mean.n,
        "pass_at_k": anyp.value,
        "pass_at_k_lo": p_lo,
        "pass_at_k_hi": p_hi,
        "any_pass": anyp.successes,
        "problems": anyp.n,
        "avg_completion_tokens": sum(tokens) / len(tokens) if tokens else 0.0,
        "mean_at_k_math_verify": mv_mean.value,
        "correct_math_verify": mv_mean.successes,
        "pass_at_k_math_verify": mv_any.value,
        "any_pass_math_verify": mv_any.successes,
        "k": k,
    }


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
    opened: bool = False,
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
            max_new_tokens=max_new_tokens,
            n=k,
            temperature=temperature,
            top_p=top_p,
            stop_token_ids=stop,
            seed=seed,
        )
        prompts = [tokenizer.encode(prompt_text(p, opened)) for p in problems]
        outs = engine.generate(prompts, params) if prompts else []
        rows, errors = [], 0
        it = zip(problems, outs)
        if progress:
            it = tqdm(it, total=len(problems), desc=f"score {name}", unit="problem", leave=False)
        for p, comps in it:
            if len(comps) != k:
                raise RuntimeError(f"engine returned {len(comps)} completions for {p.id}, expected k={k}")
            for j, c in enumerate(comps):
                # Without the stop token's own text, as a server's completion text reads (the
                # record's letter rule needs the letter to be followed by punctuation, space or the end).
                ids = c.token_ids[:-1] if c.token_ids and c.token_ids[-1] in stop else c.token_ids
                text = c.text or tokenizer.decode(ids, skip_special_tokens=False)
                scores, raised = scored(p, text, opened)
                errors += raised
                rows.append(
                    {
                        "benchmark": name,
                        "problem_id": p.id,
                        "sample_idx": j,
                        "completion": text,
                        "gold": p.gold,
                        **scores,
                        "completion_tokens": len(c.token_ids),
                        "finish_reason": c.finish_reason,
                    }
                )
        scorer_errors.check(name, errors, len(rows))
        summary[name] = {**summarize_rows(rows, k), "scorer_errors": errors}
        samples[name] = rows
    summary["macro"] = macro({n: s for n, s in summary.items()})
    return summary, samples
