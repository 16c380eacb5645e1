"""Abstract-thought arm (Abstract-CoT warm-up): T rounds of bottleneck SFT (Phase A) and
self-distillation (Phase B) from the arm's start model with 64 reserved abstract tokens added.
Our additions (params thoughts.abstract.round1_z / phase_b_z / phase_a / chain_tokens; the card's path is
the default): round-1 z anchored to the verbal reasoning instead of random, Phase B on those z
instead of the model's own prompt-only samples, Phase A optional, m = the generated chain's length.

Scored on the held-out problems at each abstract-token cap of `abstract_budgets` (decoding masked to
the abstract vocabulary and </abstract>, the end forced at the cap), with the ablations: random
abstract tokens of the same lengths, and no abstract tokens. Resumable
(checkpoints/abstract_thought_<arm>: finished phases are skipped, a killed one resumes). Outputs
models/abstract_<arm> and reports/thoughts/abstract_<arm>*.json.

    python -m stages.abstract_thought --arm modsum
"""

from __future__ import annotations

import time

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import engine_for, pick_device
from thinkmid.models.load import load_model, save_model
from thinkmid.thoughts import abstract as ab
from thinkmid.thoughts import arm_spec, arms_in_params, task_problems, write_outputs
from thinkmid.thoughts import evaluate as ev
from thinkmid.thoughts.train import run_phase
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun
from thinkmid.train.checkpoint import clear_checkpoints


def sequence_length(ap, task) -> tuple[int, int]:
    """(m, min tokens): the generated task's chain length for both with `chain_tokens`, else the params'."""
    from thinkmid.thoughts.procedural import chain_length

    if ap.chain_tokens and task.kind != "gsm8k":
        m = chain_length(task)
        return m, m
    return ap.max_tokens, ap.min_tokens


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    spec, task = arm_spec(params, arm)
    ap = params.thoughts.abstract
    m, lo = sequence_length(ap, task)
    train, held = task_problems(spec.task)
    ckpt = f"checkpoints/abstract_thought_{arm}"
    model, tok = load_model(spec.model, dtype=params.base.dtype)
    ab.extend_vocab(model, tok, ap.vocab_size, params.seed)
    model.to(pick_device())
    abs_ids, _, _ = ab.ids(tok, ap.vocab_size)
    n = ap.vocab_size
    task_b = task.model_copy(update={"epochs": ap.phase_b_epochs}) if ap.phase_b_epochs else task
    with (
        StageRun("abstract_thought", params, arm=arm) as tr,
        engine_for(params.engine, model, tok, None, progress=False) as eng,
    ):
        metrics: dict = {
            "arm": arm,
            "task": spec.task,
            "split": "eval",
            "train_problems": len(train),
            "abstract_vocab": n,
            "rounds": ap.rounds,
            "abstract_max_tokens": m,
            "round1_z": ap.round1_z,
            "phase_b_z": ap.phase_b_z,
        }
        step0 = 0
        for r in range(1, ap.rounds + 1):
            seed = params.seed * 1000 + r
            if r > 1:  # later rounds: sampled from the previous round's model after the reasoning (the teacher)
                zs = ab.sample_sequences(
                    eng, tok, train, n, m, ap.temperature, seed, with_reasoning=True, min_tokens=lo
                )
            elif ap.round1_z == "reasoning":  # ours: the reasoning's tokens at m evenly spaced positions
                zs = ab.anchored_sequences(tok, train, n, m)
            else:  # the card's round 1: random abstract sequences, no loss on them
                zs = ab.random_sequences(len(train), m, abs_ids, seed)
            if ap.phase_a:
                z_loss = r > 1 or ap.round1_z == "reasoning"
                ex = [ab.phase_a_example(tok, p, z, n, z_loss, task.seq_len) for p, z in zip(train, zs)]
                s = run_phase(
                    f"r{r}_phase_a", model, ex, task, seed, ckpt, tr, step0, tok.pad_token_id, bottleneck=True
                )
                step0 += s["steps"]
                metrics[f"r{r}_phase_a_final_loss"] = s["final_loss"]
                probe = ab.bottleneck_probe(eng, model, tok, held, n, lo, m, seed + 900)
                metrics.update({f"r{r}_{k}": v for k, v in probe.items()})
            if ap.phase_b_z == "prompt":  # the card: z sampled from the prompt alone by the Phase A model
                zs = ab.sample_sequences(eng, tok, train, n, m, ap.temperature, seed + 500, min_tokens=lo)
            ex = [ab.phase_b_example(tok, p, z, n, task.seq_len) for p, z in zip(train, zs)]
            s = run_phase(f"r{r}_phase_b", model, ex, task_b, seed, ckpt, tr, step0, tok.pad_token_id)
            step0 += s["steps"]
            metrics[f"r{r}_phase_b_final_loss"] = s["final_loss"]
            metrics[f"r{r}_mean_abstract_tokens"] = sum(map(len, zs)) / max(1, len(zs))
        rows, samples = ev.abstract(
            eng,
            tok,
            held,
            n,
            task.abstract_budgets,
            task.max_answer_tokens,
            params.seed,
            temperature=ap.eval_temperature or ap.temperature,
            min_tokens=lo,
        )
        save_model(model, tok, f"models/abstract_{arm}")
        metrics.update(ev.headline(rows, "abstract"))
        for name in ("abstract_random", "abstract_none"):
            metrics[f"accuracy_{name}"] = next(r["accuracy"] for r in rows if r["interface"] == name)
        metrics["steps"] = step0
        write_outputs(tr, "abstract", arm, rows, samples, metrics)
        write_timing(tr, timing_path("abstract_thought", arm), {"wall_time_s": round(time.time() - t0, 2)})
    clear_checkpoints(ckpt)


if __name__ == "__main__":
    stage_main("abstract_thought", run, arms=arms_in_params())
