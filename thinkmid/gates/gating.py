"""Per-neuron gates on the MLP intermediate activations, attached as forward pre-hooks on down_proj.

Qwen3 and Llama (SmolLM2) MLPs compute down_proj(act_fn(gate_proj(x)) * up_proj(x)); the input of
down_proj is the activated intermediate vector, so scaling it per neuron is the card's "gate after
the activation" without touching the model's code. A pre-hook is the least invasive place: it works
for any module that calls `mlp.down_proj(...)`, including the fast decoder of the hf engine.

Gate value g = sigmoid(logit) (`soft`, training) or a 0/1 mask (`mask`, evaluation at a threshold);
the gated activation is h * g / s with s per layer: `mean` s = mean(g), `energy` s = sqrt(mean(g^2))
(card, "Scale Mode"). `off` leaves the model untouched (the ungated teacher of the retain loss).
"""

from __future__ import annotations

import contextlib
import math

import torch
from safetensors.torch import load_file
from safetensors.torch import save as _st_bytes

from thinkmid.errors import InputError
from thinkmid.io import atomic_path

SCALE_MODES = ("mean", "energy")
_EPS = 1e-6  # a layer whose gates are all closed outputs zeros instead of 0/0


def find_mlps(model) -> list[torch.nn.Module]:
    """The MLP modules (those with a Linear `down_proj`), in layer order; all of one width."""
    mlps = [m for _, m in model.named_modules() if isinstance(getattr(m, "down_proj", None), torch.nn.Linear)]
    if not mlps:
        raise InputError(f"{type(model).__name__}: no MLP with a down_proj Linear to gate")
    widths = {m.down_proj.in_features for m in mlps}
    if len(widths) != 1:
        raise InputError(f"{type(model).__name__}: MLP widths differ across layers ({sorted(widths)})")
    return mlps


class GateSet(torch.nn.Module):
    """Gate logits [layers, width] and the hooks that apply them to a model."""

    def __init__(self, layers: int, width: int, scale_mode: str = "energy", init_std: float = 0.1, seed: int = 0):
        super().__init__()
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
        gen = torch.Generator().manual_seed(int(seed))
        self.logits = torch.nn.Parameter(torch.randn(layers, width, generator=gen) * init_std)
        self.register_buffer("mask", torch.ones(layers, width), persistent=False)
        self.scale_mode = scale_mode
        self.mode = "soft"
        self._handles: list = []

    @classmethod
    def for_model(cls, model, **kw) -> GateSet:
        mlps = find_mlps(model)
        return cls(len(mlps), mlps[0].down_proj.in_features, **kw)

    def values(self) -> torch.Tensor:
        """sigmoid(logits) in float64 (thresholds and statistics are taken on these)."""
        return torch.sigmoid(self.logits.detach().double())

    def factors(self, layer: int) -> torch.Tensor:
        """The per-neuron multiplier of one layer: gate / rescale."""
        g = torch.sigmoid(self.logits[layer]) if self.mode == "soft" else self.mask[layer]
        scale = g.mean() if self.scale_mode == "mean" else g.pow(2).mean().sqrt()
        return g / scale.clamp_min(_EPS)

    def attach(self, model) -> GateSet:
        self.detach()
        mlps = find_mlps(model)
        if (len(mlps), mlps[0].down_proj.in_features) != tuple(self.logits.shape):
            raise InputError(
                f"gates of shape {tuple(self.logits.shape)} do not fit a model with "
                f"{len(mlps)} MLPs of width {mlps[0].down_proj.in_features}"
            )
        self.to(mlps[0].down_proj.weight.device)
        for i, mlp in enumerate(mlps):
            self._handles.append(mlp.down_proj.register_forward_pre_hook(self._hook(i)))
        return self

    def _hook(self, layer: int):
        def pre_hook(module, args):
            if self.mode == "off":
                return None
            h = args[0]
            return (h * self.factors(layer).to(h.dtype),) + tuple(args[1:])

        return pre_hook

    def detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextlib.contextmanager
    def ungated(self):
        """Run the model without gates inside the block (the retain loss's teacher)."""
        old, self.mode = self.mode, "off"
        try:
            yield
        finally:
            self.mode = old

    def close_below(self, threshold: float | None) -> float:
        """Evaluation mode: gates with sigmoid < threshold closed (0), the rest open (1); None = ungated.

        Returns the fraction of gates closed."""
        if threshold is None:
            self.mode = "off"
            return 0.0
        closed = self.values() < threshold
        self.mask.copy_((~closed).to(self.mask.dtype))
        self.mode = "mask"
        return float(closed.double().mean())


def thresholds_for(values: torch.Tensor, fractions: list[float]) -> list[float]:
    """For each fraction f, a threshold t such that `values < t` holds for round(f * N) of the values
    (midway between the k-th and k+1-th smallest; exact unless values tie)."""
    s = values.flatten().double().sort().values
    n = s.numel()
    out = []
    for f in fractions:
        k = round(f * n)
        if k <= 0:
            out.append(float(s[0]))
        elif k >= n:
            out.append(math.nextafter(float(s[-1]), math.inf))
        else:
            out.append(float((s[k - 1] + s[k]) / 2))
    return out


def knowledge_mask(values: torch.Tensor, threshold: float) -> torch.Tensor:
    """Knowledge neurons: the gates the forget loss pushed below `threshold` (card: 0.5)."""
    return values < threshold


def gate_stats(values: torch.Tensor, threshold: float) -> dict[str, torch.Tensor]:
    km = knowledge_mask(values, threshold)
    v = values.double()
    return {
        "total_gates": torch.tensor(v.numel(), dtype=torch.int64),
        "sigmoid_mean": v.mean(),
        "sigmoid_std": v.std(unbiased=False),
        "sigmoid_min": v.min(),
        "sigmoid_max": v.max(),
        "knowledge_neurons": km.sum().to(torch.int64),
        "knowledge_fraction": km.double().mean(),
        "threshold": torch.tensor(float(threshold), dtype=torch.float64),
        "layer_sigmoid_mean": v.mean(dim=1),
        "layer_knowledge_neurons": km.sum(dim=1).to(torch.int64),
    }


def save_file(tensors: dict, path: str, metadata: dict[str, str]) -> None:
    """safetensors' save_file with the metadata keys in sorted order: safetensors writes them in its
    hash map's order, which changes from process to process, so equal gates gave files (and DVC
    hashes) that differed. Same header length, so the data offsets stand."""
    import json
    import struct

    raw = _st_bytes(tensors, metadata=metadata)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n:  # cannot happen for a reordering; keep the library's bytes rather than break offsets
        text = raw[8 : 8 + n]
    with open(path, "wb") as fh:
        fh.write(raw[:8] + text.ljust(n, b" ") + raw[8 + n :])


def save_gate_files(directory, gates: GateSet, threshold: float, fractions: list[float], meta: dict[str, str]) -> dict:
    """Write the four safetensors files atomically; returns the statistics as plain numbers."""
    from pathlib import Path

    values = gates.values()
    km = knowledge_mask(values, threshold)
    thr = thresholds_for(values, fractions)
    achieved = [float((values < t).double().mean()) for t in thr]
    stats = gate_stats(values, threshold)
    meta = {**meta, "scale_mode": gates.scale_mode, "layers": str(values.shape[0]), "width": str(values.shape[1])}
    with atomic_path(Path(directory)) as tmp:
        tmp.mkdir(parents=True)
        save_file(
            {"logits": gates.logits.detach().float().cpu().contiguous()},
            str(tmp / "gate_logits.safetensors"),
            metadata=meta,
        )
        idx = km.nonzero()
        save_file(
            {"mask": km.contiguous(), "layer": idx[:, 0].contiguous(), "neuron": idx[:, 1].contiguous()},
            str(tmp / "knowledge_neurons.safetensors"),
            metadata={**meta, "threshold": repr(threshold)},
        )
        save_file({k: v.contiguous() for k, v in stats.items()}, str(tmp / "gate_stats.safetensors"), metadata=meta)
        save_file(
            {
                "off_fractions": torch.tensor(fractions, dtype=torch.float64),
                "thresholds": torch.tensor(thr, dtype=torch.float64),
                "achieved_off_fractions": torch.tensor(achieved, dtype=torch.float64),
            },
            str(tmp / "thresholds.safetensors"),
            metadata=meta,
        )
    plain = {k: (v.tolist() if v.dim() else v.item()) for k, v in stats.items()}
    plain["thresholds"] = dict(zip((f"{f:g}" for f in fractions), thr))
    plain["achieved_off_fractions"] = dict(zip((f"{f:g}" for f in fractions), achieved))
    return plain


def load_gate_logits(directory) -> tuple[torch.Tensor, dict[str, str]]:
    from pathlib import Path

    from safetensors import safe_open

    path = Path(directory) / "gate_logits.safetensors"
    if not path.exists():
        raise InputError(f"{path}: not found; run knowledge_gates for this arm first")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return load_file(str(path))["logits"], meta


def load_knowledge_mask(directory) -> torch.Tensor:
    from pathlib import Path

    path = Path(directory) / "knowledge_neurons.safetensors"
    if not path.exists():
        raise InputError(f"{path}: not found; run knowledge_gates for this arm first")
    return load_file(str(path))["mask"]
