"""RLMT (Phase 4B) for one arm: GRPO on thought -> suffix rollouts judged against the true suffix.

Starts from the arm's SFT model (models/sft_<arm>), trains it with rewards from the reference judge
on prefixes cut at a teacher thought of the SFT train rows (data/thoughts/train.jsonl, shuffled with
params.seed, from rlmt.row_offset on; thinkmid/data/prefixes.py, params.prefixes) (see
thinkmid/train/rlmt.py for one step), keeps the SFT model frozen as
the KL reference, and writes models/<arm>_rlmt, reports/rlmt/<arm>.json (the RLMT table row) and
reports/rlmt/<arm>_steps.json (per-step metrics). Resumes from checkpoints/rlmt_<arm> after a kill.
The learning rate is the top-level `lr` (`dvc exp run -S lr=1e-6`). Under `accelerate launch` (DDP,
in-process `hf` engine) each process samples and judges its share of each step's groups.

    python -m stages.rlmt --arm think_base
    accelerate launch --config_file configs/accelerate/ddp.yaml -m stages.rlmt --arm think_base
"""

from __future__ import annotations

import copy
import logging
import sys
import time

from thinkmid import ARMS_RLMT
from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.data.prefixes import prefix_rows
from thinkmid.errors import InputError
from thinkmid.io import read_jsonl, write_json
from thinkmid.models.load import load_model, save_model
from thinkmid.rollouts import arm_model_dir
from thinkmid.track import StageRun
from thinkmid.train.checkpoint import clear_checkpoints, saved_run_id
from thinkmid.train.dist import Dist
from thinkmid.train.loop import NonFiniteLossError
from thinkmid.train.rlmt import RlmtTrainer, summarize
from thinkmid.engines.wiring import Part, build, policy

log = logging.getLogger("thinkmid.rlmt")

RL_ROWS = "data/thoughts/train.jsonl"  # the seed's RL rows are SFT train rows (train_rlmt.py: --rl-split train)


def rl_rows(params: Params, tokenizer) -> list[dict]:
    """The RL prefixes: SFT train rows shuffled with params.seed, from rlmt.row_offset on, cut at the
    first qualifying teacher thought (rows without one are skipped)."""
    rows = prefix_rows(read_jsonl(RL_ROWS, ("id", "text")), tokenizer, params.prefixes, params.seed,
                       offset=params.rlmt.row_offset)  # fmt: skip
    if len(rows) < params.rlmt.prefixes_per_step:
        raise InputError(f"{RL_ROWS}: {len(rows)} usable RL prefixes (a teacher thought with >= "
                         f"prefixes.min_before tokens before and >= prefixes.min_after after, from row "
                         f"rlmt.row_offset={params.rlmt.row_offset} on); rlmt.prefixes_per_step needs "
                         f"{params.rlmt.prefixes_per_step}")  # fmt: skip
    return rows


def paths(arm: str) -> dict[str, str]:
    return {
        "sft": arm_model_dir(arm),
        "out": arm_model_dir(f"{arm}_rlmt"),
        "ckpt": f"checkpoints/rlmt_{arm}",
        "metrics": f"reports/rlmt/{arm}.json",
        "steps": f"reports/rlmt/{arm}_steps.json",
    }


def wiring(params: Params, arm: str | None) -> list[Part]:
    """The reference judge (its server first, so a judge that cannot start costs no sampling), then the
    policy engine on the arm's SFT model, synced with the trained policy every engine.reload_every updates."""
    return [Part("reference_judge"), policy(paths(arm)["sft"], trains=True, label=arm)]


def _pusher(policy_model, engine, tok, every: int, steps: int):
    """After every `every` updates, bring the engine up to date with the policy (no-op in process);
    not after the last update (nothing samples after it)."""

    def push(step: int | None = None) -> None:
        if step is not None and ((step + 1) % every or step + 1 >= steps):
            return
        engine.sync(policy_model, tok)

    return push


def run(params: Params, arm: str | None) -> None:
    t_start = time.time()
    rp, p = params.rlmt, paths(arm)
    server_engine = params.engine.backend != "hf"
    dist = Dist()  # first: under accelerate it selects this process's GPU for everything below
    if dist.enabled and server_engine:
        raise InputError("engine.backend: several rlmt processes need the in-process `hf` engine; "
                         "scale a server engine with its own data parallelism instead")  # fmt: skip
    device = dist.device()
    policy, tok = load_model(p["sft"], dtype=params.base.dtype)
    rows = rl_rows(params, tok)
    ref_model = copy.deepcopy(policy)  # the frozen SFT weights (taken before a checkpoint is restored)
    policy.to(device)
    ref_model.to(device)
    judge_part, policy_at = wiring(params, arm)
    run_id = saved_run_id(p["ckpt"])  # the MLflow run a checkpoint carries, resumed exactly
    # the reward gate's judge (models/base for `lm`, never the policy), then the policy's engine
    with build(judge_part, params) as judge, build(policy_at, params, policy, tok, progress=dist.is_main) as engine, \
            dist.tracker("rlmt", params, arm, run_id=run_id) as tr:  # fmt: skip
        push = _pusher(policy, engine, tok, params.engine.reload_every, rp.steps)
        # Samples up to reload_every - 1 updates old: the engine's own log-probs are the old policy.
        stale = server_engine and params.engine.reload_every > 1
        trainer = RlmtTrainer(
            policy, ref_model, tok, engine, judge, rows, rp, lr=params.lr, seed=params.seed,
            max_invalid_rate=params.reference_judge.max_invalid_rate,
            micro_batch=params.engine.batch_size, after_update=push if server_engine else None,
            old_logprobs="engine" if stale else "policy",
            fingerprint={"reference_judge": params.reference_judge.model_dump(exclude={"endpoint"}), "arm": arm},
            dist=dist,
        )  # fmt: skip
        start = trainer.restore(p["ckpt"])
        if start:
            log.info("resuming %s from step %d", tr.name, start)
            if server_engine:
                push()  # the server was started from the SFT weights
        logged = tr.logged_steps("reward_mean")
        for h in trainer.history:  # steps checkpointed by a run whose MLflow run did not get them
            if h["step"] not in logged:
                tr.log_metrics(_step_metrics(h), step=h["step"])
        setup_s = time.time() - t_start
        try:
            _loop(trainer, tr, rp, start, logged, p, dist.is_main)
        except RuntimeError as e:  # NonFiniteLossError, too many invalid verdicts: report, keep checkpoints
            if dist.is_main:
                _report(tr, trainer, arm, p, f"{type(e).__name__}: {e}", setup_s)
            log.error("rlmt/%s stopped at step %d (checkpoints kept in %s)", arm, trainer.next_step, p["ckpt"])
            raise
        if dist.is_main:
            _report(tr, trainer, arm, p, None, setup_s)
            save_model(policy, tok, p["out"])
    if dist.is_main:
        clear_checkpoints(p["ckpt"])
    dist.barrier()
    dist.end()


def _step_metrics(h: dict) -> dict:
    return {k: v for k, v in h.items() if k != "step"}


def _report(tr: StageRun, trainer: RlmtTrainer, arm: str, p: dict, stopped: str | None, setup_s: float) -> None:
    write_json(p["steps"], trainer.history)
    summary = summarize(arm, trainer.history, stopped, trainer.wall_time_s + setup_s)
    tr.write_metrics(p["metrics"], summary, log=False)
    # invalid_judge_rate is also a per-step series: an unstepped value would land on its step 0.
    tr.log_metrics({k: v for k, v in summary.items() if k != "invalid_judge_rate"})
    tr.log_artifact(p["steps"])


def _loop(trainer: RlmtTrainer, tr: StageRun, rp, start: int, logged: set[int], p: dict, main: bool = True) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(range(start, rp.steps), initial=start, total=rp.steps, desc=f"rlmt/{tr.arm}" if main else "rlmt",
               unit="step", disable=not main)  # fmt: skip
    for step in bar:
        m = trainer.step(step)
        if step not in logged:  # a resumed MLflow run may hold steps that were redone after a kill
            tr.log_metrics(_step_metrics(m), step=step)
        bar.set_postfix(reward=f"{m['reward_mean']:.3f}", kl=f"{m['kl'] or 0:.2g}")
        if (step + 1) % rp.checkpoint_every == 0 and step + 1 < rp.steps and main:
            trainer.save(p["ckpt"])
            write_json(p["steps"], trainer.history)


def main(argv=None) -> None:
    try:
        stage_main("rlmt", run, arms=ARMS_RLMT, argv=argv)
    except NonFiniteLossError as e:
        print(f"error: {e}; the last checkpoint is kept, rerun to resume from it", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
