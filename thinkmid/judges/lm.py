"""Judges with a local causal LM: the verdict is read from next-token log-probs of the options.

Pairwise: after the pairwise_lm prompt, margin = log p(" A") - log p(" B"). Reference: after the
reference_lm prompt, margin = log p(" Yes") - log p(" No"). With `calibrate`, the margin the model
gives a content-free item ("N/A" in every slot) is measured once and subtracted (contextual
calibration), so that a small judge's preference for one option letter does not decide alone.
A margin of exactly 0 (or NaN) is an invalid verdict. Prompts are batched (left-padded).
"""

from __future__ import annotations

import math

import torch

from thinkmid.judges.base import JudgeStats, Verdict
from thinkmid.judges.parse import load_prompt, render

CONTENT_FREE = "N/A"


def option_id(tokenizer, text: str) -> int:
    ids = tokenizer.encode(text, add_special_tokens=False)
    if not ids:
        raise ValueError(f"tokenizer maps {text!r} to no tokens")
    return ids[0]  # one token for " A"/" Yes" in BPE vocabularies; else its first piece decides


class _OptionScorer:
    def __init__(
        self,
        model,
        tokenizer,
        options: tuple[str, str],
        prompt: str,
        calibrate: bool,
        batch_size: int,
        max_tokens: int | None,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.ids = (option_id(tokenizer, options[0]), option_id(tokenizer, options[1]))
        if self.ids[0] == self.ids[1]:
            raise ValueError(f"options {options} share their first token")
        self.template = load_prompt(prompt)
        self.calibrate, self.batch_size = calibrate, max(1, batch_size)
        self.max_tokens = max_tokens or getattr(model.config, "max_position_embeddings", 2048) or 2048
        self.bias: float | None = None  # measured on first use when calibrating
        self.stats = JudgeStats()
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (tokenizer.eos_token_id or 0)

    def _encode(self, text: str) -> list[int]:
        ids = self.tokenizer.encode(text.rstrip(), add_special_tokens=False)
        return ids[-self.max_tokens :]  # too long: drop the start, keep the question

    @torch.no_grad()
    def margins(self, prompts: list[str]) -> list[float]:
        model = self.model
        was_training = model.training
        model.eval()
        dev = next(model.parameters()).device
        enc = [self._encode(p) for p in prompts]
        order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))  # similar lengths pad less
        out = [0.0] * len(enc)
        for s in range(0, len(order), self.batch_size):
            idx = order[s : s + self.batch_size]
            width = max(len(enc[i]) for i in idx)
            ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                ids[r, width - len(enc[i]) :] = torch.tensor(enc[i])
                mask[r, width - len(enc[i]) :] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev)).logits
            logp = torch.log_softmax(logits[:, -1].float(), -1)
            m = (logp[:, self.ids[0]] - logp[:, self.ids[1]]).tolist()
            for r, i in enumerate(idx):
                out[i] = m[r]
        if was_training:
            model.train()
        return out

    def calibrated(self, prompts: list[str], content_free: str) -> list[float]:
        if self.calibrate and self.bias is None:
            self.bias = self.margins([content_free])[0]
        raw = self.margins(prompts)
        return [m - (self.bias or 0.0) for m in raw]


class LMPairwiseJudge:
    def __init__(
        self,
        model,
        tokenizer,
        calibrate: bool = True,
        batch_size: int = 8,
        prompt: str = "pairwise_lm",
        max_tokens: int | None = None,
    ):
        self._s = _OptionScorer(model, tokenizer, (" A", " B"), prompt, calibrate, batch_size, max_tokens)
        self.stats = self._s.stats

    @property
    def bias(self) -> float | None:
        return self._s.bias

    def margins(self, items: list[tuple[str, str, str]]) -> list[float]:
        """Calibrated log p(A) - log p(B) per item."""
        prompts = [render(self._s.template, prefix=p, a=a, b=b) for p, a, b in items]
        cf = render(self._s.template, prefix=CONTENT_FREE, a=CONTENT_FREE, b=CONTENT_FREE)
        return self._s.calibrated(prompts, cf) if items else []

    def judge_pairs(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        out = []
        for m in self.margins(items):
            if math.isnan(m) or m == 0:
                out.append(Verdict(None, f"{m:.6f}", "no preference (margin 0 or NaN)"))
                self.stats.invalid += 1
            else:
                out.append(Verdict("A" if m > 0 else "B", f"{m:.6f}"))
        self.stats.calls += len(items)
        return out


class LMReferenceJudge:
    def __init__(
        self,
        model,
        tokenizer,
        calibrate: bool = True,
        batch_size: int = 8,
        prompt: str = "reference_lm",
        max_tokens: int | None = None,
    ):
        self._s = _OptionScorer(model, tokenizer, (" Yes", " No"), prompt, calibrate, batch_size, max_tokens)
        self.stats = self._s.stats

    @property
    def bias(self) -> float | None:
        return self._s.bias

    def margins(self, items: list[tuple[str, str, str]]) -> list[float]:
        """Calibrated log p(Yes) - log p(No) per item."""
        prompts = [render(self._s.template, prefix=p, predicted=pr, reference=r) for p, pr, r in items]
        cf = render(self._s.template, prefix=CONTENT_FREE, predicted=CONTENT_FREE, reference=CONTENT_FREE)
        return self._s.calibrated(prompts, cf) if items else []

    def judge(self, items: list[tuple[str, str, str]]) -> list[int | None]:
        out: list[int | None] = []
        for m in self.margins(items):
            if math.isnan(m) or m == 0:
                out.append(None)
                self.stats.invalid += 1
            else:
                out.append(int(m > 0))
        self.stats.calls += len(items)
        return out
