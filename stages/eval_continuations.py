"""Held-out continuation quality, phase3 vs base: the record's headline and a stricter one.

Both models continue each held-out prefix (eval_continuations.temperature; 0 = greedy, as the seed;
chunks.suffix_tokens new tokens). The pair is judged in both A/B orders. The record's headline
("81/128 = 63.28%") uses ONE order per prefix, drawn with a seeded coin, and counts phase3 wins over
valid verdicts (`wins`, `comparisons`, `win_rate`). The stricter figure needs both orders
(`both_orders_wins`, `both_orders_win_rate` = wins over all prefixes). Also the raw suffix NLL of the
true suffix under base and phase3 (`base_suffix_nll`, `phase3_suffix_nll`; the record: 2.56 -> 2.60)
over the continuation_eval rows (eval_continuations.nll_rows, all by default).
See thinkmid/evals/continuations.py for the definitions.

    python -m stages.eval_continuations
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.factory import pick_device
from thinkmid.engines.wiring import Part, build, policy
from thinkmid.evals import continuations as ec_maths
from thinkmid.io import read_jsonl, write_jsonl
from thinkmid.judges.base import check_invalid_rate
from thinkmid.models.load import load_model
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun

METRICS, PAIRS = "reports/eval_continuations/metrics.json", "reports/eval_continuations/pairs.jsonl"
ROWS = "data/chunks/continuation_eval.jsonl"


def wiring(params: Params, arm: str | None = None) -> list[Part]:
    """Base, then phase3, each on its own engine (a server engine serves each model in turn), then the judge."""
    return [policy("models/base", label="base"), policy("models/phase3", label="phase3"), Part("judge")]


def continuations(params: Params, part: Part, rows: list[dict], nll_rows: list[dict]) -> tuple[list[str], float]:
    """(decoded continuations, raw suffix NLL) of one model; the model is dropped on return."""
    model_dir = part.model
    model, tok = load_model(model_dir, dtype=params.base.dtype)
    model.to(pick_device())
    ec = params.eval_continuations
    nll = ec_maths.suffix_nll(model, nll_rows, ec.nll_batch_size)
    sp = SamplingParams(
        max_new_tokens=params.chunks.suffix_tokens, temperature=ec.temperature, top_p=ec.top_p, seed=params.seed
    )
    with build(part, params, model, tok) as eng:
        outs = eng.generate([list(r["prefix_ids"]) for r in rows], sp)
    return [tok.decode(o[0].token_ids, skip_special_tokens=True) for o in outs], nll


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    ec = params.eval_continuations
    all_rows = read_jsonl(ROWS, ("prefix", "prefix_ids", "suffix_ids"))
    rows = all_rows[: ec.prefixes]
    nll_rows = all_rows if ec.nll_rows is None else all_rows[: ec.nll_rows]
    base_at, phase3_at, judge_part = wiring(params)
    base_txt, base_nll = continuations(params, base_at, rows, nll_rows)
    p3_txt, p3_nll = continuations(params, phase3_at, rows, nll_rows)
    judge_model, tok = (None, None)
    if params.judge.backend in ("lm", "likelihood"):
        judge_model, tok = load_model("models/base", dtype=params.base.dtype)
        judge_model.to(pick_device())
    with build(judge_part, params, judge_model, tok) as judge, StageRun("eval_continuations", params) as tr:
        n = len(rows)
        # Identical continuations (common under greedy decoding when phase3 barely moved) are not sent to
        # the judge: there is nothing to prefer, and a likelihood judge would call the pair invalid.
        differ = [i for i in range(n) if base_txt[i] != p3_txt[i]]
        items = [(rows[i]["prefix"], base_txt[i], p3_txt[i]) for i in differ]
        items += [(rows[i]["prefix"], p3_txt[i], base_txt[i]) for i in differ]
        got = [v.winner for v in judge.judge_pairs(items)] if items else []
        check_invalid_rate(judge.stats, params.judge.max_invalid_rate, "eval_continuations judge")
        base_first, p3_first = ["same"] * n, ["same"] * n
        for j, i in enumerate(differ):
            base_first[i], p3_first[i] = got[j], got[len(differ) + j]
        swaps = ec_maths.order_swaps(n, params.seed)
        # The record's one order per prefix: the verdict of the order its coin picked.
        single = ec_maths.single_order([p3_first[i] if s else base_first[i] for i, s in enumerate(swaps)], swaps)
        both = [ec_maths.both_orders(a, b) for a, b in zip(base_first, p3_first)]
        metrics = ec_maths.headline(single, both)
        metrics.update(
            {
                "base_suffix_nll": base_nll,
                "phase3_suffix_nll": p3_nll,
                "phase3_minus_base_suffix_nll": p3_nll - base_nll,
                "nll_rows": len(nll_rows),
            }
        )
        write_jsonl(
            PAIRS,
            [
                {
                    "id": r["id"],
                    "prefix": r["prefix"],
                    "base": b,
                    "phase3": p,
                    "phase3_was_option_a": s,
                    "verdict_base_first": v1,
                    "verdict_phase3_first": v2,
                    "outcome": o,
                    "both_orders_outcome": o2,
                }
                for r, b, p, s, v1, v2, o, o2 in zip(rows, base_txt, p3_txt, swaps, base_first, p3_first, single, both)
            ],
        )
        tr.write_metrics(METRICS, metrics)
        write_timing(tr, timing_path("eval_continuations"), {"wall_time_s": round(time.time() - t0, 2)})
        tr.log_artifact(PAIRS)


if __name__ == "__main__":
    stage_main("eval_continuations", run)
