"""Knowledge gates of one arm: train a sigmoid gate per MLP intermediate neuron of the arm's frozen
model to forget entity knowledge while keeping its reasoning distribution, then close the gates in
order and measure entity-knowledge and GSM8K accuracy at each off-fraction.

Arms: `knowledge_gates.arms` in params.yaml maps each arm that runs to its model (base, phase3, an SFT or
an RLMT arm's output: thinkmid/config/arms.py checks it). Outputs, safetensors only:
models/gates/<arm>/{gate_logits,knowledge_neurons,gate_stats,thresholds}.safetensors; metrics
reports/knowledge_gates/<arm>.json, per-step losses <arm>_steps.json and the probe curve
<arm>_curve.json (DVC plots). Resumable from checkpoints/knowledge_gates_<arm>.

    python -m stages.knowledge_gates --arm think_base
"""

from __future__ import annotations

import logging
import time
import zlib

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.engines.factory import pick_device
from thinkmid.errors import InputError
from thinkmid.evals.reasoning import gsm8k
from thinkmid.gates.data import encode_fact, encode_text, load_sources
from thinkmid.gates.gating import GateSet, save_gate_files
from thinkmid.gates.probe import probe_points, solution_rows
from thinkmid.gates.train import train_gates
from thinkmid.io import write_json
from thinkmid.models.load import load_model
from thinkmid.timing import timing_path, write_timing
from thinkmid.track import StageRun
from thinkmid.train.checkpoint import clear_checkpoints

log = logging.getLogger(__name__)


def gate_seed(seed: int, arm: str) -> int:
    """Each arm's gates start from their own init, so overlap between arms is not shared init."""
    return zlib.crc32(f"{seed}:{arm}".encode())


def point_key(frac: float) -> str:
    return f"off_{round(frac * 100):02d}"


def run(params: Params, arm: str | None) -> None:
    t0 = time.time()
    cfg = params.knowledge_gates
    if arm not in cfg.arms:
        raise InputError(f"--arm: {arm!r} is not in knowledge_gates.arms ({list(cfg.arms)})")
    train_facts, eval_facts, retain_texts = load_sources(cfg, params.reasoning_eval.gsm8k, params.seed)
    problems = gsm8k.load(params.reasoning_eval.gsm8k, params.seed)[: cfg.eval_problems]
    model_dir = cfg.arms[arm]
    model, tok = load_model(model_dir, dtype=params.base.dtype)
    model.to(pick_device())
    facts = [encode_fact(tok, f, cfg.seq_len) for f in train_facts]
    held = [encode_fact(tok, f, cfg.seq_len) for f in eval_facts]
    retain = [encode_text(tok, t, cfg.seq_len) for t in retain_texts]
    solutions = solution_rows(tok, problems, cfg.seq_len)
    gates = GateSet.for_model(
        model, scale_mode=cfg.scale_mode, init_std=cfg.init_logit_std, seed=gate_seed(params.seed, arm)
    ).attach(model)
    ckpt = f"checkpoints/knowledge_gates_{arm}"
    with StageRun("knowledge_gates", params, arm=arm) as tr:
        logged = tr.logged_steps("loss")

        def on_step(m: dict) -> None:
            if m["step"] not in logged:
                tr.log_metrics({k: v for k, v in m.items() if k != "step"}, step=m["step"])
                logged.add(m["step"])

        history = train_gates(model, gates, facts, retain, cfg, params.seed, tok.pad_token_id, ckpt, arm, on_step)
        for m in history:  # steps a killed run checkpointed before its MLflow run got them
            on_step(m)
        t_train = time.time()
        stats = save_gate_files(
            f"models/gates/{arm}",
            gates,
            cfg.knowledge_threshold,
            cfg.off_fractions,
            {"arm": arm, "model_dir": model_dir},
        )
        thresholds = [stats["thresholds"][f"{f:g}"] for f in cfg.off_fractions]
        points = probe_points(
            model,
            gates,
            tok,
            held,
            problems,
            solutions,
            cfg.off_fractions,
            thresholds,
            cfg,
            cfg.batch_size,
            params.seed,
            params.reasoning_eval.top_p,
        )
        t_probe = time.time()
        flat = {}
        for p in points:
            for key in ("entity_acc", "entity_token_acc", "entity_nll", "reasoning_acc", "gsm8k_solution_nll"):
                if p.get(key) is not None:
                    flat[f"{key}_{point_key(p['off_fraction'])}"] = p[key]
        last = history[-1] if history else {}
        metrics = {
            "arm": arm,
            "steps": len(history),
            "train_facts": len(facts),
            "eval_facts": len(held),
            "reasoning_rows": len(retain),
            "eval_problems": len(problems),
            "final_loss": last.get("loss"),
            "final_forget_loss": last.get("forget_loss"),
            "final_retain_kl": last.get("retain_kl"),
            "entity_ce_first": history[0]["entity_ce"] if history else None,
            "entity_ce_last": last.get("entity_ce"),
            **{k: v for k, v in stats.items() if not isinstance(v, (list, dict))},
            "thresholds": stats["thresholds"],
            "points": points,
            **flat,
        }
        write_json(f"reports/knowledge_gates/{arm}_steps.json", history)
        write_json(f"reports/knowledge_gates/{arm}_curve.json", points)
        tr.write_metrics(f"reports/knowledge_gates/{arm}.json", metrics)
        timing = {
            "train_time_s": round(t_train - t0, 2),
            "probe_time_s": round(t_probe - t_train, 2),
            "wall_time_s": round(time.time() - t0, 2),
        }
        write_timing(tr, timing_path("knowledge_gates", arm), timing)
        for name in ("steps", "curve"):
            tr.log_artifact(f"reports/knowledge_gates/{arm}_{name}.json")
        log.info(
            "knowledge_gates/%s: %d steps, %d knowledge neurons of %d, %.1f s",
            arm,
            len(history),
            stats["knowledge_neurons"],
            stats["total_gates"],
            timing["wall_time_s"],
        )
    clear_checkpoints(ckpt)


if __name__ == "__main__":
    stage_main("knowledge_gates", run, arms=lambda p: p.knowledge_gates.arms)
