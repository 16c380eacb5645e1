"""The paper DAG's stages beyond the record (knowledge gates, thought interfaces) for LIFECYCLE.md:
their work under a params file, and their projection from a stand-in run.

These stages write no per-step times, so the projection reads them from MLflow: every training step
logs a metric, and the median gap between consecutive steps of one run is its step time (the gaps
around a phase's evaluation fall out as outliers). A stage run's fixed cost is its wall time minus its
steps; its projection is that fixed cost + the step time x the paper's steps + the paper's extra
generation at GEN_TOK_S (the 0.6B engine's measured rate at batch 256, benchmarks/RESULTS.md): an
estimate, marked as such in the table's notes.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from pathlib import Path

GEN_TOK_S = 42_500  # 0.6B generation, batch 256, one H200 (benchmarks/RESULTS.md)
STEP_KEYS = {"knowledge_gates": "loss", "rlmt": "loss", "self_improve": "dpo_loss"}  # else train_loss
EXTRA_UNITS = {
    "knowledge_gates": "step",
    "verbal_thought": "step",
    "abstract_thought": "step",
    "continuous_thought": "step",
}


def _gsm8k_eval(params) -> int:
    lim = params.reasoning_eval.gsm8k.limit
    return min(1319, lim) if lim else 1319


def arm_work(params) -> dict[str, dict[str, dict]]:
    """stage -> arm -> {task, steps, samples, gen_tokens, trained_tokens}: the counts per arm run."""
    kg = params.knowledge_gates
    probs = min(kg.eval_problems, _gsm8k_eval(params)) if kg.eval_problems is not None else _gsm8k_eval(params)
    steps = math.ceil(kg.train_facts / kg.forget_batch_size) * kg.epochs
    evals = (len(kg.off_fractions) + 1) * probs * kg.eval_k  # each off-fraction and the ungated model
    out: dict[str, dict[str, dict]] = {"knowledge_gates": {}}
    for arm in kg.arms:
        out["knowledge_gates"][arm] = dict(
            task="gsm8k",
            steps=steps,
            samples=evals,
            gen_tokens=evals * kg.eval_max_new_tokens,
            trained_tokens=steps * kg.forget_batch_size * (1 + kg.retain_per_forget) * kg.seq_len,
        )
    th = params.thoughts
    for stage in ("verbal_thought", "abstract_thought", "continuous_thought"):
        out[stage] = {}
    for arm, spec in th.arms.items():
        t = th.tasks[spec.task]
        phase = math.ceil(t.train / t.batch_size) * t.epochs
        answer = t.max_answer_tokens
        verbal_gen = t.eval * sum(b + answer for b in [0, *t.verbal_budgets])
        out["verbal_thought"][arm] = dict(
            task=spec.task,
            steps=2 * phase,  # with worked steps in <think>, and without
            samples=t.eval * (len(t.verbal_budgets) + 1),
            gen_tokens=verbal_gen,
            trained_tokens=2 * phase * t.batch_size * t.seq_len,
        )
        ab = th.abstract
        out["abstract_thought"][arm] = dict(
            task=spec.task,
            steps=ab.rounds * 2 * phase,  # Phase A and Phase B per round
            samples=(2 * ab.rounds - 1) * t.train + t.eval * (len(t.abstract_budgets) + 2),
            gen_tokens=(2 * ab.rounds - 1) * t.train * ab.max_tokens
            + t.eval * sum(b + answer for b in [*t.abstract_budgets, ab.max_tokens, 0]),
            trained_tokens=ab.rounds * 2 * phase * t.batch_size * t.seq_len,
        )
        co = th.continuous
        out["continuous_thought"][arm] = dict(
            task=spec.task,
            steps=co.head_fit_steps + phase,
            samples=t.train * co.rollouts + t.eval * len(t.latent_steps),
            gen_tokens=t.train * co.rollouts * (max(t.verbal_budgets) + answer) + t.eval * len(t.latent_steps) * answer,
            trained_tokens=phase * t.batch_size * t.seq_len,
        )
    return out


def rows(params) -> list[dict]:
    """One row per (stage, task): work summed over the arms of that task."""
    out = []
    for stage, arms in arm_work(params).items():
        for task in sorted({w["task"] for w in arms.values()}):
            ws = [w for w in arms.values() if w["task"] == task]
            name = stage if stage == "knowledge_gates" else f"{stage} ({task})"
            out.append(
                dict(
                    stage=name,
                    runs=len(ws),
                    units=ws[0]["steps"],
                    steps=sum(w["steps"] for w in ws),
                    samples=sum(w["samples"] for w in ws),
                    judge_calls=0,
                    gen_tokens=sum(w["gen_tokens"] for w in ws),
                    trained_tokens=sum(w["trained_tokens"] for w in ws),
                    note=f"per arm ({', '.join(a for a, w in arms.items() if w['task'] == task)}): "
                    + ("gates trained, then greedy GSM8K at each off-fraction" if stage == "knowledge_gates" else task),
                )
            )
    return out


def step_time(db: Path, stage: str, arm: str) -> float | None:
    """Median seconds between consecutive training steps of MLflow run `<stage>/<arm>` (`<stage>`
    when arm is empty); None with fewer than three steps."""
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        ts = [
            t
            for (t,) in con.execute(
                "SELECT m.timestamp FROM metrics m JOIN runs r ON m.run_uuid = r.run_uuid "
                "WHERE r.name = ? AND m.key = ? ORDER BY m.timestamp",
                (f"{stage}/{arm}" if arm else stage, STEP_KEYS.get(stage, "train_loss")),
            )
        ]
    finally:
        con.close()
    gaps = [(b - a) / 1000 for a, b in zip(ts, ts[1:])]
    # one gap is no step time: two steps of two phases (a GSM8K thought arm with one step a phase) have
    # an evaluation between them (16 s on the H200 against a ~1 s step)
    return statistics.median(gaps) if len(gaps) >= 2 else None


def stage_step_time(db: Path, stage: str) -> float | None:
    """The median over a stage's MLflow runs (`<stage>` or `<stage>/<arm>`) of their step times."""
    if not db.exists():
        return None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        names = [
            n for (n,) in con.execute("SELECT name FROM runs WHERE name = ? OR name LIKE ?", (stage, f"{stage}/%"))
        ]
    finally:
        con.close()
    times = [t for t in (step_time(db, stage, n.partition("/")[2]) for n in names) if t]
    return statistics.median(times) if times else None


def projections(paper, stand, stage_times: dict, db: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(row name -> median step seconds, row name -> projected seconds) for rows whose every arm ran."""
    paper_w, stand_w = arm_work(paper), arm_work(stand)
    rates, proj = {}, {}
    for row in rows(paper):
        stage, _, task = row["stage"].partition(" (")
        task = task.rstrip(")") or "gsm8k"
        total, per_step, ok = 0.0, [], True
        ran = [a for a, w in stand_w[stage].items() if w["task"] == task and stage_times.get(f"{stage}@{a}")]
        for arm, w in paper_w[stage].items():
            if w["task"] != task:
                continue
            # a paper arm the stand-in left out (same task, same model shape) is costed as one that ran
            src = arm if arm in ran else (ran[0] if ran else None)
            wall, sw = stage_times.get(f"{stage}@{src}"), stand_w[stage].get(src)
            st = step_time(db, stage, src) if src else None
            if wall is None or sw is None or st is None:
                ok = False
                break
            fixed = max(0.0, wall - st * sw["steps"])
            total += fixed + st * w["steps"] + max(0, w["gen_tokens"] - sw["gen_tokens"]) / GEN_TOK_S
            per_step.append(st)
        if ok and per_step:
            rates[row["stage"]], proj[row["stage"]] = statistics.median(per_step), total
    return rates, proj
