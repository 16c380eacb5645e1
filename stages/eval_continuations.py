"""Held-out continuation quality: phase3 vs base, judged pairwise in both orders.

For each held-out prefix both models continue it (same sampling seed); the judge sees the pair in
both A/B orders. Phase 3 wins a prefix when it wins both orders, loses when it loses both, and
ties otherwise (the judge's order preference decided). Headline: wins/prefixes with a Wilson 95%
interval, as in "81/128 = 63.28%".

    python -m stages.eval_continuations
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.factory import pick_device
from thinkmid.evals.stats import wilson_interval
from thinkmid.io import read_jsonl, write_jsonl
from thinkmid.judges.base import Verdict, check_invalid_rate
from thinkmid.models.load import load_model
from thinkmid.track import StageRun
from thinkmid.engines.wiring import Part, build, policy

METRICS, PAIRS = "reports/eval_continuations/metrics.json", "reports/eval_continuations/pairs.jsonl"


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """Base, then phase3, each on its own engine (a server engine serves each model in turn), then the judge."""
    return [policy("models/base", label="base"), policy("models/phase3", label="phase3"), Part("judge")]


def continuations(params: Params, part: Part, rows: list[dict]) -> list[str]:
    model_dir = part.model
    model, tok = load_model(model_dir, dtype=params.base.dtype)
    model.to(pick_device())
    ec = params.eval_continuations
    sp = SamplingParams(max_new_tokens=params.chunks.suffix_tokens, temperature=ec.temperature, top_p=ec.top_p,
                        seed=params.seed)  # fmt: skip
    with build(part, params, model, tok) as eng:
        outs = eng.generate([list(r["prefix_ids"]) for r in rows], sp)
    return [tok.decode(o[0].token_ids, skip_special_tokens=True) for o in outs]


def outcome(v_ab: str | None, v_ba: str | None) -> str:
    """Order 1: A=base, B=phase3. Order 2: A=phase3, B=base."""
    if v_ab == "tie" or v_ba == "tie":
        return "tie"
    if v_ab is None or v_ba is None:
        return "invalid"
    p3 = (v_ab == "B") + (v_ba == "A")
    return {2: "win", 0: "loss"}.get(p3, "tie")


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    rows = read_jsonl("data/chunks/continuation_eval.jsonl", ("prefix", "prefix_ids"))[: params.eval_continuations.prefixes]
    base_at, phase3_at, judge_part = wiring(params)
    base_txt = continuations(params, base_at, rows)
    p3_txt = continuations(params, phase3_at, rows)
    judge_model, tok = (None, None)
    if params.judge.backend in ("lm", "likelihood"):
        judge_model, tok = load_model("models/base", dtype=params.base.dtype)
        judge_model.to(pick_device())
    with build(judge_part, params, judge_model, tok) as judge, StageRun("eval_continuations", params) as tr:
        # Identical continuations are a tie without asking the judge (common with a barely-moved model).
        differ = [i for i, (b, p) in enumerate(zip(base_txt, p3_txt)) if b != p]
        items = [(rows[i]["prefix"], base_txt[i], p3_txt[i]) for i in differ]
        items += [(rows[i]["prefix"], p3_txt[i], base_txt[i]) for i in differ]
        got = judge.judge_pairs(items) if items else []
        check_invalid_rate(judge.stats, params.judge.max_invalid_rate, "eval_continuations judge")
        n, m = len(rows), len(differ)
        verdicts = [Verdict("tie")] * (2 * n)
        for j, i in enumerate(differ):
            verdicts[i], verdicts[n + i] = got[j], got[m + j]
        out = [outcome(verdicts[i].winner, verdicts[n + i].winner) for i in range(n)]
        counts = {k: out.count(k) for k in ("win", "loss", "tie", "invalid")}
        lo, hi = wilson_interval(counts["win"], n)
        metrics = {
            "prefixes": n, "comparisons": n, "wins": counts["win"], "losses": counts["loss"],
            "ties": counts["tie"], "invalid": counts["invalid"], "win_rate": counts["win"] / n if n else 0.0,
            "win_rate_lo": lo, "win_rate_hi": hi,
            "decisive_win_rate": counts["win"] / max(counts["win"] + counts["loss"], 1),
            "wall_time_s": round(time.time() - t0, 2),
        }  # fmt: skip
        write_jsonl(PAIRS, [
            {"id": r["id"], "prefix": r["prefix"], "base": b, "phase3": p, "verdict_base_first": verdicts[i].winner,
             "verdict_phase3_first": verdicts[n + i].winner, "outcome": o}
            for i, (r, b, p, o) in enumerate(zip(rows, base_txt, p3_txt, out))
        ])  # fmt: skip
        tr.write_metrics(METRICS, metrics)
        tr.log_artifact(PAIRS)


if __name__ == "__main__":
    stage_main("eval_continuations", run)
