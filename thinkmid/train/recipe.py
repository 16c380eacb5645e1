"""One shape for the training stages (self_improve, sft, rlmt), after torchtune's recipes:
setup -> train -> cleanup, with one resume path.

A `Recipe` subclass implements `setup()` (models, data, optimizer, scheduler, engines; it calls
`self.resume(...)`), `train_step(step) -> metrics` and `cleanup()` (final metrics and the model).
`run()` calls them in that order inside the stage's MLflow run (resuming the run id stored with the
checkpoint, never one matched by name), logs every step's metrics once (a resumed MLflow run may
already hold steps redone after a kill), checkpoints after every `checkpoint_every` completed steps
(not after the last) and clears the checkpoints once the outputs are written. A checkpoint's step is
the number of completed optimizer steps, so a resumed run starts at that step.

Resume: each checkpoint carries a fingerprint (`make_fingerprint`) of the params sections the stage
reads, flattened to dotted keys, and the identity of its start model and data files
(`path_identity`). A checkpoint whose fingerprint differs is REFUSED with an InputError naming every
changed key or file (delete the checkpoint directory to start over); a changed batch size is one of
them, so a resumed run never skips or repeats rows. The optimizer-schedule keys (`SCHEDULE_KEYS`) are
exempt: a resumed run uses the CURRENT lr, weight decay, warmup, schedule and grad clip (lowering
`sft.lr` after a non-finite loss and rerunning is the documented recovery), and says so in the log.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from thinkmid.errors import InputError
from thinkmid.timing import split_timing
from thinkmid.train.checkpoint import clear_checkpoints, load_latest_checkpoint, save_checkpoint, saved_run_id

log = logging.getLogger(__name__)

# Keys a resumed run takes from the current params (matched on the last part of the dotted key).
SCHEDULE_KEYS = frozenset(
    {
        "lr",
        "weight_decay",
        "warmup_steps",
        "raw_warmup_steps",
        "min_lr_ratio",
        "lr_schedule",
        "max_grad_norm",
        "checkpoint_every",
    }
)
_WHOLE = 4 << 20  # files up to this size are hashed whole; larger ones by size and three 1 MiB samples
_SAMPLE = 1 << 20


def path_identity(path: str | Path) -> str:
    """A cheap content identity of a file or directory (a model dir, a data file): sha256 over each
    file's relative name and size, whole small files, and head / middle / tail MiB of large ones
    (weights differ throughout after any training step, so samples tell two models apart)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found (a training stage's start model or data)")
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        size = f.stat().st_size
        h.update(f"{f.relative_to(path) if path.is_dir() else f.name}\0{size}\0".encode())
        with f.open("rb") as fh:
            if size <= _WHOLE:
                h.update(fh.read())
                continue
            for at in (0, size // 2, size - _SAMPLE):
                fh.seek(at)
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()[:16]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def make_fingerprint(sections: dict[str, Any], inputs: dict[str, str | Path] | None = None) -> dict:
    """{"params": refused-on-change keys, "schedule": SCHEDULE_KEYS taken from now, "inputs": name ->
    identity}. `sections`: {"sft": params.sft.model_dump(), "seed": params.seed, ...}."""
    flat = json.loads(json.dumps(_flatten(sections)))  # as the checkpoint's JSON will hold it
    sched = {k: v for k, v in flat.items() if k.rsplit(".", 1)[-1] in SCHEDULE_KEYS}
    fixed = {k: v for k, v in flat.items() if k not in sched}
    ids = {name: f"{p}@{path_identity(p)}" for name, p in sorted((inputs or {}).items())}
    return {"params": fixed, "schedule": sched, "inputs": ids}


def _changes(old: dict, new: dict) -> list[str]:
    return [
        f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k)
    ]


def check_fingerprint(directory, step: int, saved: dict | None, now: dict) -> None:
    """Refuse (InputError naming each change) a checkpoint written under other params or inputs; log
    the schedule keys that changed (the current ones are used)."""
    if not saved or "params" not in saved:
        raise InputError(
            f"{directory}: the checkpoint of step {step} carries no fingerprint of the params and "
            f"start model it was written under; delete {directory} to start over"
        )
    refused = _changes(saved["params"], now["params"]) + [
        f"{name} changed ({saved['inputs'].get(name, '(absent)')} -> {now['inputs'].get(name, '(absent)')})"
        for name in sorted(set(saved.get("inputs", {})) | set(now["inputs"]))
        if saved.get("inputs", {}).get(name) != now["inputs"].get(name)
    ]
    if refused:
        raise InputError(
            f"{directory}: the checkpoint of step {step} was written under other settings: "
            f"{'; '.join(refused)}. Restore them, or delete {directory} to start over"
        )
    if moved := _changes(saved.get("schedule", {}), now["schedule"]):
        log.warning("%s: resuming at step %d with the current %s", directory, step, "; ".join(moved))


def set_schedule_position(scheduler, step: int) -> None:
    """Put a fresh LambdaLR (built from the current params) at `step`, as `step` scheduler.step()
    calls would have: the resumed run follows the current schedule from where it stopped."""
    scheduler.last_epoch = step
    lrs = [base * lam(step) for base, lam in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = lrs  # what get_last_lr() reads


def resume(directory, fingerprint: dict, model, optimizer, scheduler=None) -> tuple[int, dict] | None:
    """Restore the newest checkpoint under `directory` if its fingerprint matches; None when there is none.

    Weights, optimizer moments and RNG states come from the checkpoint; lr, weight decay and the
    rest of each param group, and the schedule, from the current optimizer and scheduler.
    """
    current = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
    got = load_latest_checkpoint(directory, model, optimizer, None)
    if got is None:
        return None
    step, extra = got
    check_fingerprint(directory, step, extra.get("fingerprint"), fingerprint)
    for group, now in zip(optimizer.param_groups, current):
        group.update(now)
    if scheduler is not None:
        set_schedule_position(scheduler, step)
    return step, extra


class Recipe:
    """setup() -> train() -> cleanup() of one training stage; see the module docstring.

    A subclass sets, in setup(): model, optimizer, scheduler, total, fingerprint (and calls
    resume()), and may enter engines into `self.stack`. `history` holds each step's metrics
    (timing keys included; `steps_rows()` / `timing()` split them for the DVC files).
    """

    stage = ""
    step_key = "loss"  # the per-step metric whose MLflow history says which steps are logged
    can_checkpoint = True

    def __init__(self, params, arm: str | None = None, dist=None):
        from thinkmid.train.dist import Dist

        self.params, self.arm = params, arm
        self.dist = dist if dist is not None else Dist()
        self.step, self.total, self.history = 0, 0, []
        self.extra: dict = {}  # the restored checkpoint's extra
        self.timing_s = 0.0  # wall time of earlier processes of a resumed run
        self._t0 = time.perf_counter()
        self.model = self.optimizer = self.scheduler = self.tr = self.stack = None
        self.fingerprint: dict = {}

    # --- what a stage implements ---------------------------------------------------------------
    @property
    def ckpt(self) -> str:
        return f"checkpoints/{self.stage}" + (f"_{self.arm}" if self.arm else "")

    @property
    def checkpoint_every(self) -> int:
        raise NotImplementedError

    def setup(self) -> None:
        raise NotImplementedError

    def train_step(self, step: int) -> dict:
        raise NotImplementedError

    def cleanup(self) -> None:
        raise NotImplementedError

    def checkpoint_extra(self) -> dict:
        return {}

    def on_error(self, error: RuntimeError) -> None:
        """A step raised (a non-finite loss, too many invalid verdicts); the checkpoints are kept."""

    # --- the shared shape ----------------------------------------------------------------------
    def resume(self) -> None:
        """Restore the newest checkpoint (refused on a fingerprint mismatch); sets step, history, extra."""
        got = resume(self.ckpt, self.fingerprint, self.model, self.optimizer, self.scheduler)
        if got is not None:
            self.step, self.extra = got
            self.history = [h for h in self.extra.get("history", []) if h["step"] < self.step]
            self.timing_s = float(self.extra.get("wall_time_s", 0.0))
            log.info("%s: resuming from step %d", self.ckpt, self.step)

    def wall_time_s(self) -> float:
        return round(self.timing_s + time.perf_counter() - self._t0, 2)

    def record(self, row: dict) -> None:
        self.history.append(row)

    def save(self) -> None:
        extra = {
            "history": self.history,
            "fingerprint": self.fingerprint,
            "wall_time_s": self.wall_time_s(),
            **self.checkpoint_extra(),
        }
        save_checkpoint(self.ckpt, self.step, self.model, self.optimizer, self.scheduler, extra=extra)

    def steps_rows(self) -> list[dict]:
        """The history without timing keys (the DVC steps file: stable across reruns)."""
        return [split_timing(h)[0] for h in self.history]

    def step_timing(self) -> list[dict]:
        return [{"step": h["step"], **split_timing(h)[1]} for h in self.history]

    def train(self) -> None:
        from tqdm.auto import tqdm

        logged = self.tr.logged_steps(self.step_key)
        for h in self.history:  # steps checkpointed by a process whose MLflow run did not get them
            if h["step"] not in logged:
                self.tr.log_metrics({k: v for k, v in h.items() if k != "step"}, step=h["step"])
        main = self.dist.is_main
        bar = tqdm(total=self.total, initial=self.step, desc=self.tr_name(), unit="step", disable=not main)
        while self.step < self.total:
            step = self.step
            row = {"step": step, **self.train_step(step)}
            self.record(row)
            if step not in logged:
                self.tr.log_metrics({k: v for k, v in row.items() if k != "step"}, step=step)
            self.step = step + 1
            bar.update(1)
            if self.step % self.checkpoint_every == 0 and self.step < self.total and main and self.can_checkpoint:
                self.save()
        bar.close()

    def tr_name(self) -> str:
        return f"{self.stage}/{self.arm}" if self.arm else self.stage

    def run(self) -> None:
        with contextlib.ExitStack() as stack:
            self.stack = stack
            self.setup()
            self.tr = stack.enter_context(
                self.dist.tracker(self.stage, self.params, self.arm, run_id=saved_run_id(self.ckpt))
            )
            try:
                self.train()
            except RuntimeError as e:  # NonFiniteLossError, too many invalid verdicts: report, keep checkpoints
                self.on_error(e)
                log.error("%s stopped at step %d (checkpoints kept in %s)", self.tr_name(), self.step, self.ckpt)
                raise
            self.cleanup()
        if self.dist.is_main:
            clear_checkpoints(self.ckpt)
        self.dist.barrier()
        self.dist.end()
