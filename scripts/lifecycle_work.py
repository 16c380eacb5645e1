"""The work each lifecycle stage asks for under a params file, for benchmarks/LIFECYCLE.md.

    python scripts/lifecycle_work.py profiles/paper.yaml                    # the table, to stdout
    python scripts/lifecycle_work.py profiles/paper.yaml --rates rates.json --write benchmarks/LIFECYCLE.md

Counts come from the params only: steps, samples (generations), judge calls, generated tokens (an
upper bound: every sample at its token budget) and trained tokens (upper bound: full sequences).
`--rates` is a JSON of measured seconds per unit from a run on the target machine, e.g.
{"rlmt": 27.1, "sft": 2.2} (units in UNITS: seconds per RLMT step, per SFT step, ...); the
projected time of a stage is its units x seconds per unit x runs. `--measured DIR` derives them from
a stand-in run instead (benchmarks/paper_lifecycle.sh's output: stage_times.json, params.yaml and
reports/): a stage with per-step times (`step_time_s` in its steps files) is projected as its
measured fixed cost (loading, evaluation) plus the mean step time x the paper's steps; any other as
its wall time per unit of the stand-in's work x the paper's units (an upper bound: loading is scaled
too). `--write` replaces the table between the markers of the given markdown file.

    python scripts/lifecycle_work.py profiles/paper.yaml --measured runs/paper --write benchmarks/LIFECYCLE.md
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # lifecycle_extra, beside this file
from lifecycle_extra import EXTRA_UNITS, stage_step_time  # noqa: E402
from lifecycle_extra import rows as extra_rows  # noqa: E402  the stages beyond the record: gates, thought arms

# Full sizes of the reasoning benchmarks (a `limit` takes fewer): GSM8K test, MATH-500, GPQA-Diamond,
# OlympiadBench as the seed selected it (zwhe99/simplerl-OlympiadBench, first 300 rows filtered: the record's 220).
BENCH_SIZES = {"gsm8k": 1319, "math500": 500, "gpqa_diamond": 198, "olympiadbench": 220}
PROBE_CONDITIONS = 5  # sampled, swapped, blank, generic, teacher (thinkmid/evals/probe.py)
N_SFT, N_RLMT, N_GATE = 3, 2, 4
UNITS = {  # what one measured second is per, for each stage
    "self_improve": "step",
    "eval_continuations": "sample",
    "teacher_thoughts": "generated token",
    "sft": "step",
    "rlmt": "step",
    "reward_gate": "sample",
    "thought_probe": "suffix sample",
    "reasoning_eval": "generated token",
}
# Stages without `foreach`: one DVC run does the work of all their arms (`runs` in work())
ALL_ARMS_IN_ONE_RUN = {"reward_gate", "thought_probe"}
# The seed's record (reference/rlmt-results.txt): wall times where it gives them or they follow from it.
RECORDED = {
    "sft": "1,479 / 1,229 / 1,224 s (tokens seen / tok/s of raw_base, think_base, think_phase3)",
    "rlmt": "5,488 s think_base, 5,448 s think_phase3",
    "reward_gate": "about 78 min, 4 arms (log 18:10:47 ET, complete at 19:29 ET)",
    "reasoning_eval": "overnight SGLang, ~2.2k generated tok/s; 2 hosts x 2 arms",
}
MARK_START, MARK_END = "<!-- work:start -->", "<!-- work:end -->"


def work(params) -> list[dict]:
    """One row per stage: runs (arms), units per run, and the work counts summed over runs."""
    c, si, ec, tt, sft, rl = (
        params.chunks,
        params.self_improve,
        params.eval_continuations,
        params.teacher_thoughts,
        params.sft,
        params.rlmt,
    )
    two_stage = rl.thought_max_tokens + rl.suffix_max_tokens
    rows = []

    def row(stage, runs, units, steps=0, samples=0, judge=0, gen=0, trained=0, note=""):
        rows.append(
            dict(
                stage=stage,
                runs=runs,
                units=units,
                steps=steps,
                samples=samples,
                judge_calls=judge,
                gen_tokens=gen,
                trained_tokens=trained,
                note=note,
            )
        )

    si_samples = si.steps * si.prefixes_per_step * si.k
    pool = si.k + 1
    row(
        "self_improve",
        1,
        si.steps,
        si.steps,
        si_samples,
        si.steps * si.prefixes_per_step * pool * (pool - 1) // 2,
        si_samples * c.suffix_tokens,
        si.steps * 2 * si.prefixes_per_step * (c.prefix_tokens + c.suffix_tokens),
        f"K={si.k} + the true suffix, judged full-pairwise",
    )
    n = ec.prefixes
    row("eval_continuations", 1, 2 * n, 0, 2 * n, 2 * n, 2 * n * c.suffix_tokens, 0, "base and phase3, both orders")
    if tt.mode == "rewrite":  # one call per chunk: the teacher rewrites it with its thoughts placed
        calls = c.sft_train + c.sft_val
        row(
            "teacher_thoughts",
            1,
            calls * tt.rewrite_max_tokens,
            0,
            calls,
            0,
            calls * tt.rewrite_max_tokens,
            0,
            f"rewrite: one call per chunk, up to {tt.rewrite_max_tokens} tokens (retries not counted)",
        )
    else:
        calls = math.ceil((c.sft_train + c.sft_val) * (tt.min_thoughts + tt.max_thoughts) / 2) + c.gate
        row(
            "teacher_thoughts",
            1,
            calls * tt.thought_max_tokens,
            0,
            calls,
            0,
            calls * tt.thought_max_tokens,
            0,
            f"{tt.min_thoughts}-{tt.max_thoughts} thoughts per row (mean used) + one per gate row",
        )
    sft_steps = math.ceil(c.sft_train / sft.batch_size) * sft.epochs
    row(
        "sft",
        N_SFT,
        sft_steps,
        N_SFT * sft_steps,
        N_SFT * c.sft_val,
        0,
        N_SFT * c.sft_val * c.suffix_tokens,
        N_SFT * sft_steps * sft.batch_size * sft.seq_len,
        "per arm: steps; samples = the repetition metric",
    )
    rl_samples = rl.steps * rl.prefixes_per_step * rl.k
    row(
        "rlmt",
        N_RLMT,
        rl.steps,
        N_RLMT * rl.steps,
        N_RLMT * rl_samples,
        N_RLMT * rl_samples,
        N_RLMT * rl_samples * two_stage,
        N_RLMT * rl_samples * (c.prefix_tokens + two_stage + 1),
        f"per arm: {rl.prefixes_per_step} prefixes x K={rl.k}",
    )
    g = params.reward_gate
    gate = g.prefixes * g.k
    row(
        "reward_gate",
        N_GATE,
        gate,
        0,
        N_GATE * gate,
        N_GATE * gate,
        N_GATE * gate * two_stage,
        0,
        f"{g.prefixes} prefixes x K={g.k} per arm",
    )
    tp = params.thought_probe
    suffixes = tp.prefixes * PROBE_CONDITIONS * tp.k
    row(
        "thought_probe",
        N_GATE,
        suffixes,
        0,
        N_GATE * (tp.prefixes + suffixes),
        N_GATE * suffixes,
        N_GATE * (tp.prefixes * rl.thought_max_tokens + suffixes * rl.suffix_max_tokens),
        0,
        f"{PROBE_CONDITIONS} thought conditions x k={tp.k} per prefix (teacher: rows with one)",
    )
    re = params.reasoning_eval
    problems = {
        b: min(BENCH_SIZES[b], getattr(re, b).limit or BENCH_SIZES[b]) for b in BENCH_SIZES if getattr(re, b).enabled
    }
    per_arm = sum(problems.values()) * re.k
    row(
        "reasoning_eval",
        N_GATE,
        per_arm * re.max_new_tokens,
        0,
        N_GATE * per_arm,
        0,
        N_GATE * per_arm * re.max_new_tokens,
        0,
        " + ".join(f"{b} {n}" for b, n in problems.items()) + f", k={re.k}",
    )
    return rows + extra_rows(params)


def unit(stage: str) -> str:
    """A row's unit; rows of lifecycle_extra are named `<stage> (<task>)`."""
    base = stage.split(" (")[0]
    return UNITS.get(base) or EXTRA_UNITS[base]


def step_times(reports: Path, stage: str) -> list[float]:
    """`step_time_s` of the steady steps under reports/<stage>/, all arms: each file's first step
    (compilation and warm-up) left out, so it counts as fixed cost."""
    out = []
    for f in sorted((reports / stage).glob("*.json")) if (reports / stage).is_dir() else []:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        recs = data if isinstance(data, list) else data.get("steps", []) if isinstance(data, dict) else []
        recs = recs if isinstance(recs, list) else []  # a timing file's "steps" may be a count
        out += [float(r["step_time_s"]) for r in recs if isinstance(r, dict) and "step_time_s" in r][1:]
    return out


def projections(paper_rows: list[dict], run_dir: Path, load_params) -> tuple[dict[str, float], dict[str, float]]:
    """Stage -> (seconds per unit, projected seconds for the paper's work) from a stand-in run."""
    walls: dict[str, float] = {}
    arms: dict[str, int] = {}  # runs that finished: a stand-in run may have stopped before every arm did
    for name, secs in json.loads((run_dir / "stage_times.json").read_text(encoding="utf-8")).items():
        if secs is None:  # failed or cut off
            continue
        s = name.split("@")[0]
        walls[s], arms[s] = walls.get(s, 0.0) + float(secs), arms.get(s, 0) + 1
    stand = {r["stage"]: r for r in work(load_params(run_dir / "params.yaml"))}
    for s in ALL_ARMS_IN_ONE_RUN & set(arms) & set(stand):  # one DVC run of these covers every arm
        arms[s] *= stand[s]["runs"]
    rates, proj = {}, {}
    for r in paper_rows:
        s = r["stage"]
        if s not in UNITS or s not in walls or s not in stand:  # lifecycle_extra projects the others
            continue
        steps = step_times(run_dir / "reports", s)
        per = sum(steps) / len(steps) if steps else stage_step_time(run_dir / "mlflow.db", s)
        if UNITS[s] == "step" and per:
            fixed = max(0.0, walls[s] - per * stand[s]["units"] * arms[s]) / arms[s]  # per run: load, eval, save
            rates[s], proj[s] = per, r["runs"] * (fixed + per * r["units"])
        else:
            per = walls[s] / (stand[s]["units"] * arms[s])
            rates[s], proj[s] = per, per * r["units"] * r["runs"]
    return rates, proj


def fmt_int(x) -> str:
    return f"{x:,}" if x else "-"


def fmt_s(s: float | None) -> str:
    if s is None:
        return ""
    return f"{s:,.0f} s ({s / 3600:.1f} h)"


def table(rows: list[dict], rates: dict[str, float], projected: dict[str, float] | None = None) -> str:
    head = (
        "| stage | runs | steps | samples | judge calls | generated tokens (max) | trained tokens (max) | "
        "measured H200 rate | projected full time | seed's recorded time |"
    )
    out = [head, "|" + " --- |" * 10]
    total, known = 0.0, True
    for r in rows:
        s = r["stage"]
        rate = rates.get(s)
        proj = (projected or {}).get(s, rate * r["units"] * r["runs"] if rate is not None else None)
        known &= proj is not None
        total += proj or 0.0
        out.append(
            f"| {s} | {r['runs']} | {fmt_int(r['steps'])} | {fmt_int(r['samples'])} | {fmt_int(r['judge_calls'])} "
            f"| {fmt_int(r['gen_tokens'])} | {fmt_int(r['trained_tokens'])} | "
            f"{f'{rate:.3g} s / {unit(s)}' if rate is not None else ''} | {fmt_s(proj)} | {RECORDED.get(s, '')} |"
        )
    out.append(f"| **whole lifecycle** | | | | | | | | {fmt_s(total) if known else '(needs every rate)'} | |")
    return "\n".join(out) + "\n\n" + "\n".join(f"- {r['stage']}: {r['note']}" for r in rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("params", nargs="?", default=str(ROOT / "profiles" / "paper.yaml"))
    ap.add_argument("--rates", help="JSON {stage: measured seconds per unit}")
    ap.add_argument("--measured", help="a benchmarks/paper_lifecycle.sh output dir: rates from its stand-in run")
    ap.add_argument("--write", help="markdown file whose table between the work markers is replaced")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from thinkmid.config import load_params
    from thinkmid.profile import PROFILES, load_profile

    path = Path(args.params).resolve()
    # a profile file is an overlay of the default: read it merged, as `python -m thinkmid.profile` writes it
    params = load_profile(path.stem) if path.parent == PROFILES else load_params(path)
    rates = json.loads(Path(args.rates).read_text()) if args.rates else {}
    rows = work(params)
    unknown = set(rates) - {r["stage"] for r in rows}
    if unknown:
        raise SystemExit(
            f"error: --rates: unknown stages {sorted(unknown)}; expected some of {[r['stage'] for r in rows]}"
        )
    import lifecycle_extra

    projected = None
    if args.measured:
        run = Path(args.measured)
        rates, projected = projections(rows, run, load_params)
        times = json.loads((run / "stage_times.json").read_text(encoding="utf-8"))
        r2, p2 = lifecycle_extra.projections(params, load_params(run / "params.yaml"), times, run / "mlflow.db")
        rates, projected = {**rates, **r2}, {**projected, **p2}
    text = table(rows, rates, projected)
    if not args.write:
        print(text, end="")
        return 0
    doc = Path(args.write).read_text(encoding="utf-8")
    if MARK_START not in doc or MARK_END not in doc:
        raise SystemExit(f"error: {args.write}: no {MARK_START} ... {MARK_END} markers")
    head, rest = doc.split(MARK_START, 1)
    Path(args.write).write_text(f"{head}{MARK_START}\n{text}{MARK_END}{rest.split(MARK_END, 1)[1]}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
