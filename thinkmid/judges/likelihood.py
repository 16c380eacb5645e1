"""A pairwise judge that prefers the continuation the judge model finds more likely.

Verdict: the candidate with the higher mean per-token log-prob given the prefix. It cannot be fooled
by option position (it never sees an A/B prompt), so it gives a usable signal even from a 135M model,
where option-token judging collapses to always answering one letter. Equal scores are invalid.
"""

from __future__ import annotations

import torch

from thinkmid.judges.base import JudgeStats, Verdict
from thinkmid.train.logprobs import sequence_logprobs


class LikelihoodPairwiseJudge:
    def __init__(self, model, tokenizer, batch_size: int = 16):
        self.model, self.tok, self.batch_size = model, tokenizer, batch_size
        self.stats = JudgeStats()

    @torch.no_grad()
    def scores(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Mean log p(continuation | prefix) per (prefix, continuation)."""
        uniq = {p: None for p in pairs}
        keys = list(uniq)
        prompts = [self.tok.encode(p, add_special_tokens=False) or [self.tok.eos_token_id] for p, _ in keys]
        comps = [self.tok.encode(c, add_special_tokens=False) or [self.tok.eos_token_id] for _, c in keys]
        was_training = self.model.training
        self.model.eval()
        lp, mask = sequence_logprobs(self.model, prompts, comps, self.tok.pad_token_id, micro_batch=self.batch_size)
        if was_training:
            self.model.train()
        means = ((lp * mask).sum(-1) / mask.sum(-1).clamp(min=1)).tolist()
        table = dict(zip(keys, means))
        return [table[p] for p in pairs]

    def judge_pairs(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        flat = [(p, a) for p, a, _ in items] + [(p, b) for p, _, b in items]
        s = self.scores(flat) if items else []
        n = len(items)
        out = []
        for i in range(n):
            sa, sb = s[i], s[n + i]
            raw = f"{sa - sb:+.6f}"
            if sa == sb:
                out.append(Verdict(None, raw, "equal likelihood"))
                self.stats.invalid += 1
            else:
                out.append(Verdict("A" if sa > sb else "B", raw))
        self.stats.calls += n
        return out
