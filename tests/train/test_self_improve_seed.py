"""Phase 3 as the seed ran it (scripts/train_dpo.py): the original suffix can be the rejected
candidate (rejected = argmin over the whole pool, counted as rejected_is_pivot_rate), and rollouts
never sample end-of-text (`min_new_tokens = max_new_tokens`)."""

import copy
from types import SimpleNamespace

import pytest

from thinkmid.engines.base import SamplingParams
from thinkmid.engines.hf import HFEngine
from thinkmid.judges.base import JudgeStats, Verdict
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.self_improve import self_improve_step


class AgainstTheSource:
    """A pairwise judge that always prefers the candidate that is not the given source text (and
    otherwise A): the original suffix loses every comparison, so it is the pool's argmin."""

    def __init__(self, source_texts):
        self.sources, self.stats = set(source_texts), JudgeStats()

    def judge_pairs(self, items):
        self.stats.calls += len(items)
        return [
            Verdict("A" if b in self.sources and a not in self.sources else "B" if a in self.sources else "A")
            for _, a, b in items
        ]


def _p(rejected_from, suppress_eos=True):
    return SimpleNamespace(
        k=3, temperature=1.0, beta=0.1, max_grad_norm=1.0, rejected_from=rejected_from, suppress_eos=suppress_eos
    )


@pytest.mark.parametrize("rejected_from,pivot_rate", [("pool", 1.0), ("rollouts", 0.0)])
def test_rejected_is_pivot(tiny_model, qwen_tok, rejected_from, pivot_rate):
    policy = copy.deepcopy(tiny_model)
    ref = copy.deepcopy(tiny_model).eval().requires_grad_(False)
    suffixes = [" and the river runs on.", " where the hills begin."]
    rows = [
        {"prefix": p, "prefix_ids": qwen_tok.encode(p), "suffix_ids": qwen_tok.encode(s)}
        for p, s in zip(["The town lies by the sea", "Farms cover the plain"], suffixes)
    ]
    sources = {qwen_tok.decode(qwen_tok.encode(s), skip_special_tokens=True) for s in suffixes}
    opt = make_optimizer(policy, 1e-4)
    sched = make_scheduler(opt, 0, 2, 0.1)
    engine = HFEngine(policy, qwen_tok, batch_size=8)
    m = self_improve_step(
        0,
        rows,
        policy,
        ref,
        qwen_tok,
        engine,
        AgainstTheSource(sources),
        opt,
        sched,
        _p(rejected_from),
        seed=0,
        suffix_tokens=5,
    )
    assert m["original_suffix_mean_score"] == 0.0
    assert m["rejected_is_pivot_rate"] == pivot_rate and m["pairs"] >= 1
    if rejected_from == "pool":  # every rollout beats the source once, so every prefix has a pair
        assert m["pairs"] == 2


def test_suppressed_tokens_are_never_sampled(tiny_model, qwen_tok):
    engine = HFEngine(tiny_model, qwen_tok, batch_size=8)
    prompt = [qwen_tok.encode("The capital of the country is")]
    greedy = engine.generate(prompt, SamplingParams(max_new_tokens=6, temperature=0))[0][0].token_ids
    banned = tuple(sorted(set(greedy)))
    again = engine.generate(prompt, SamplingParams(max_new_tokens=6, temperature=0, suppress_token_ids=banned))
    assert len(again[0][0].token_ids) == 6 and not set(again[0][0].token_ids) & set(banned)
    sampled = engine.generate(
        prompt, SamplingParams(max_new_tokens=6, n=4, temperature=1.0, seed=3, suppress_token_ids=banned)
    )
    assert all(not set(c.token_ids) & set(banned) for c in sampled[0])
