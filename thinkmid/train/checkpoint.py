"""Resumable training state: weights, optimizer, scheduler, RNG states, step and a JSON `extra`.

Layout of `<dir>/step-00000012/` (written to a temp dir and renamed, so it is whole or absent):
  model.safetensors      the weights (tied weights handled by safetensors.torch.save_model)
  optimizer.safetensors  every tensor of the optimizer state, keyed `<param index>.<name>`
  rng.safetensors        torch CPU (and CUDA) generator states
  state.json             step, extra, optimizer param groups and non-tensor state, scheduler,
                         python and numpy RNG states, and the MLflow run id (saved_run_id)
Nothing is pickled, so loading a checkpoint never runs code. The last `keep` checkpoints are kept.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from thinkmid.errors import InputError
from thinkmid.io import atomic_path

log = logging.getLogger(__name__)

FORMAT = 1
_NAME = re.compile(r"^step-(\d{8})$")


def _unwrap(model):
    """The bare module under DDP/accelerate wrappers (their state keys carry a `module.` prefix)."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def _optimizer_split(optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _optimizer_join(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["plain_state"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])  # JSON turned the tuple into a list
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _rng_capture() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
    py = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, meta


def _rng_restore(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith("cuda_")), key=lambda k: int(k[5:]))]
    if cuda and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        else:
            log.warning(
                "checkpoint has %d CUDA RNG states, this host %d GPUs: not restored",
                len(cuda),
                torch.cuda.device_count(),
            )
    v, state, gauss = meta["python"]
    random.setstate((v, tuple(state), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def _checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temp dirs start with '.', so they never match)."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(
    directory: str | Path,
    step: int,
    model,
    optimizer: torch.optim.Optimizer,
    scheduler=None,
    extra: dict | None = None,
    keep: int = 2,
    run_id: str | None = None,
) -> Path:
    """Write the state after `step` completed optimizer steps; returns the checkpoint's path.

    Under DDP call it on the main process only (the model may be the wrapped one). `run_id`: the
    MLflow run to resume with this checkpoint; by default the StageRun this process is inside.
    """
    if run_id is None:
        from thinkmid.track import active_run_id

        run_id = active_run_id()
    directory = Path(directory)
    opt_tensors, opt_meta = _optimizer_split(optimizer)
    rng_tensors, rng_meta = _rng_capture()
    state = {
        "format": FORMAT,
        "step": int(step),
        "extra": extra or {},
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_meta,
        "mlflow_run_id": run_id,
    }
    # Serialise first so a non-JSON `extra` fails before anything is written.
    text = json.dumps(state, allow_nan=False)
    final = directory / f"step-{int(step):08d}"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        save_model(_unwrap(model), str(tmp / "model.safetensors"))
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        save_file(rng_tensors, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(text, encoding="utf-8")
    _prune(directory, keep)
    return final


def _prune(directory: Path, keep: int) -> None:
    ckpts = _checkpoints(directory)
    for _, path in ckpts[: max(0, len(ckpts) - keep)]:
        shutil.rmtree(path, ignore_errors=True)
    for p in directory.iterdir():  # temp dirs left by a killed save (we are the only writer)
        if p.name.startswith(".step-") and (".tmp-" in p.name or ".old-" in p.name):
            shutil.rmtree(p, ignore_errors=True)


def _load_one(path: Path, model, optimizer, scheduler) -> tuple[int, dict]:
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if state.get("format") != FORMAT:
        raise ValueError(f"unknown checkpoint format {state.get('format')!r}")
    bare = _unwrap(model)
    device = next(bare.parameters()).device
    load_model(bare, str(path / "model.safetensors"), strict=True, device=str(device))
    opt_tensors = load_file(str(path / "optimizer.safetensors"))
    optimizer.load_state_dict(_optimizer_join(opt_tensors, state["optimizer"]))
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    _rng_restore(load_file(str(path / "rng.safetensors")), state["rng"])
    return int(state["step"]), state["extra"]


def load_latest_checkpoint(directory: str | Path, model, optimizer, scheduler=None) -> tuple[int, dict] | None:
    """Restore the newest readable checkpoint into the given objects; None when there is none.

    Falls back to the older one if the newest cannot be read; raises InputError if none can.
    """
    ckpts = _checkpoints(Path(directory))
    errors = []
    for step, path in reversed(ckpts):
        try:
            return _load_one(path, model, optimizer, scheduler)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint: try the previous one
            log.warning("checkpoint %s unreadable (%s: %s); trying an older one", path, type(e).__name__, e)
            errors.append(f"{path.name}: {type(e).__name__}: {e}")
    if errors:
        raise InputError(
            f"{directory}: no checkpoint could be restored ({'; '.join(errors)}); if the model or "
            f"optimizer changed since it was written, delete the directory to start over"
        )
    return None


def saved_run_id(directory: str | Path) -> str | None:
    """The MLflow run id stored with the newest checkpoint that has one (None when there is none):
    pass it to StageRun(run_id=...) so a resumed stage continues exactly that run."""
    for _, path in reversed(_checkpoints(Path(directory))):
        try:
            run_id = json.loads((path / "state.json").read_text(encoding="utf-8")).get("mlflow_run_id")
        except (OSError, ValueError):
            continue
        if run_id:
            return str(run_id)
    return None


def clear_checkpoints(directory: str | Path) -> None:
    """Remove the checkpoint directory once the stage's final output is written."""
    shutil.rmtree(Path(directory), ignore_errors=True)


def latest_step(directory: str | Path) -> int | None:
    ckpts = _checkpoints(Path(directory))
    return ckpts[-1][0] if ckpts else None
