"""RLMT (Phase 4B) for one arm: GRPO on thought -> suffix rollouts judged against the true suffix.

Starts from the arm's SFT model (models/sft_<arm>), trains it with rewards from the reference judge
on prefixes cut at a teacher thought of the SFT train rows (data/thoughts/train.jsonl, shuffled with
params.seed, from rlmt.row_offset on; thinkmid/data/prefixes.py, params.prefixes) (see
thinkmid/train/rlmt.py for one step), keeps the SFT model frozen as
the KL reference, and writes models/<arm>_rlmt, reports/rlmt/<arm>.json (the RLMT table row) and
reports/rlmt/<arm>_steps.json (per-step metrics), and <arm>_timing.json (wall and step times). A
`Recipe` (thinkmid/train/recipe.py); resumes from checkpoints/rlmt_<arm> after a kill, refused if the
params (but the lr and schedule), the SFT model or the rows changed.
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

from thinkmid.cli import stage_main
from thinkmid.config import Params
from thinkmid.config.arms import rlmt_model
from thinkmid.data.prefixes import prefix_rows
from thinkmid.engines.wiring import Part, build, policy
from thinkmid.errors import InputError
from thinkmid.io import read_jsonl, write_json
from thinkmid.models.load import load_model, save_model
from thinkmid.timing import timing_path, write_timing
from thinkmid.train.loop import NonFiniteLossError
from thinkmid.train.recipe import Recipe
from thinkmid.train.rlmt import RlmtTrainer, summarize

log = logging.getLogger("thinkmid.rlmt")

RL_ROWS = "data/thoughts/train.jsonl"  # the seed's RL rows are SFT train rows (train_rlmt.py: --rl-split train)


def rl_rows(params: Params, tokenizer) -> list[dict]:
    """The RL prefixes: SFT train rows shuffled with params.seed, from rlmt.row_offset on, cut at the
    first qualifying teacher thought (rows without one are skipped)."""
    rows = prefix_rows(
        read_jsonl(RL_ROWS, ("id", "text")), tokenizer, params.prefixes, params.seed, offset=params.rlmt.row_offset
    )
    if len(rows) < params.rlmt.prefixes_per_step:
        raise InputError(
            f"{RL_ROWS}: {len(rows)} usable RL prefixes (a teacher thought with >= "
            f"prefixes.min_before tokens before and >= prefixes.min_after after, from row "
            f"rlmt.row_offset={params.rlmt.row_offset} on); rlmt.prefixes_per_step needs "
            f"{params.rlmt.prefixes_per_step}"
        )
    return rows


def paths(params: Params, arm: str) -> dict[str, str]:
    return {
        "sft": params.arms.rlmt[arm],  # the arm's start model, from params.yaml's arms.rlmt
        "out": rlmt_model(arm),
        "ckpt": f"checkpoints/rlmt_{arm}",
        "metrics": f"reports/rlmt/{arm}.json",
        "steps": f"reports/rlmt/{arm}_steps.json",
    }


def wiring(params: Params, arm: str | None) -> list[Part]:
    """The reference judge (its server first, so a judge that cannot start costs no sampling), then the
    policy engine on the arm's SFT model, synced with the trained policy every engine.reload_every updates."""
    return [Part("reference_judge"), policy(paths(params, arm)["sft"], trains=True, label=arm)]


def _pusher(policy_model, engine, tok, every: int, steps: int):
    """After every `every` updates, bring the engine up to date with the policy (no-op in process);
    not after the last update (nothing samples after it)."""

    def push(step: int | None = None) -> None:
        if step is not None and ((step + 1) % every or step + 1 >= steps):
            return
        engine.sync(policy_model, tok)

    return push


class Rlmt(Recipe):
    """The RLMT recipe over RlmtTrainer, which owns one step, the history and the checkpoints."""

    stage, step_key = "rlmt", "reward_mean"

    @property
    def checkpoint_every(self) -> int:
        return self.params.rlmt.checkpoint_every

    @property
    def ckpt(self) -> str:
        return paths(self.params, self.arm)["ckpt"]

    def setup(self) -> None:
        params, rp, p, dist = self.params, self.params.rlmt, paths(self.params, self.arm), self.dist
        server_engine = params.engine.backend != "hf"
        if dist.enabled and server_engine:
            raise InputError(
                "engine.backend: several rlmt processes need the in-process `hf` engine; "
                "scale a server engine with its own data parallelism instead"
            )
        self.model, self.tok = load_model(p["sft"], dtype=params.base.dtype)
        rows = rl_rows(params, self.tok)
        ref_model = copy.deepcopy(self.model)  # the frozen SFT weights (taken before a checkpoint is restored)
        self.model.to(dist.device())
        ref_model.to(dist.device())
        judge_part, policy_at = wiring(params, self.arm)
        # the reward gate's judge (models/base for `lm`, never the policy), then the policy's engine
        judge = self.stack.enter_context(build(judge_part, params))
        engine = self.stack.enter_context(build(policy_at, params, self.model, self.tok, progress=dist.is_main))
        push = _pusher(self.model, engine, self.tok, params.engine.reload_every, rp.steps)
        # Samples up to reload_every - 1 updates old: the engine's own log-probs are the old policy.
        stale = server_engine and params.engine.reload_every > 1
        self.trainer = RlmtTrainer(
            self.model,
            ref_model,
            self.tok,
            engine,
            judge,
            rows,
            rp,
            lr=params.lr,
            seed=params.seed,
            max_invalid_rate=params.reference_judge.max_invalid_rate,
            micro_batch=params.engine.batch_size,
            after_update=push if server_engine else None,
            old_logprobs="engine" if stale else "policy",
            fingerprint={
                "reference_judge": params.reference_judge.model_dump(exclude={"endpoint"}),
                "arm": self.arm,
                "base.dtype": params.base.dtype,
                "prefixes": params.prefixes.model_dump(),
            },
            inputs={"start model": p["sft"], "rows": RL_ROWS},
            dist=dist,
        )
        self.total = rp.steps
        self.step = self.trainer.restore(self.ckpt)
        self.history = self.trainer.history
        if self.step and server_engine:
            push()  # the server was started from the SFT weights
        self.setup_s = time.perf_counter() - self._t0

    def train_step(self, step: int) -> dict:
        m = self.trainer.step(step)
        return {k: v for k, v in m.items() if k != "step"}

    def record(self, row: dict) -> None:
        pass  # RlmtTrainer.step appended it to the history already

    def save(self) -> None:
        self.trainer.save(self.ckpt)
        write_json(paths(self.params, self.arm)["steps"], self.steps_rows())

    def on_error(self, error: RuntimeError) -> None:
        if self.dist.is_main:
            self._report(f"{type(error).__name__}: {error}")

    def cleanup(self) -> None:
        if self.dist.is_main:
            self._report(None)
            save_model(self.model, self.tok, paths(self.params, self.arm)["out"])

    def _report(self, stopped: str | None) -> None:
        p = paths(self.params, self.arm)
        write_json(p["steps"], self.steps_rows())
        summary = summarize(self.arm, self.trainer.history, stopped)
        self.tr.write_metrics(p["metrics"], summary, log=False)
        # invalid_judge_rate is also a per-step series: an unstepped value would land on its step 0.
        self.tr.log_metrics({k: v for k, v in summary.items() if k != "invalid_judge_rate"})
        write_timing(
            self.tr,
            timing_path("rlmt", self.arm),
            {"wall_time_s": round(self.trainer.wall_time_s + self.setup_s, 2), "steps": self.step_timing()},
        )
        self.tr.log_artifact(p["steps"])


def run(params: Params, arm: str | None) -> None:
    Rlmt(params, arm).run()


def main(argv=None) -> None:
    try:
        stage_main("rlmt", run, arms=lambda p: p.arms.rlmt, argv=argv)
    except NonFiniteLossError as e:
        print(f"error: {e}; the last checkpoint is kept, rerun to resume from it", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
