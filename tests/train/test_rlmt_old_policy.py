"""Stale samples (a server engine synced every few updates): the engine's own log-probs are PPO's old policy."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from thinkmid.config import RlmtParams
from thinkmid.engines.hf import HFEngine
from thinkmid.errors import InputError
from thinkmid.judges.base import JudgeStats
from thinkmid.rollouts import sample_groups
from thinkmid.train.optim import make_optimizer
from thinkmid.train.rlmt import RlmtTrainer, policy_update

CLOSE = 151668
RP = RlmtParams(
    steps=2,
    prefixes_per_step=2,
    k=2,
    thought_max_tokens=3,
    suffix_max_tokens=4,
    kl_coef=0.0,
    clip_eps=0.2,
    max_grad_norm=1.0,
)


@pytest.fixture()
def groups(tiny_model, qwen_tok):
    rows = [{"prefix_ids": qwen_tok.encode(t)} for t in ("The river runs", "Most of the country")]
    got = sample_groups(HFEngine(tiny_model, qwen_tok), qwen_tok, rows, 2, 3, 4, 1.0, seed=3)
    for g in got:
        g[0].reward, g[1].reward = 1, 0  # mixed groups: non-zero advantages
    return got


def shifted(groups, by: float):
    """The same samples, as if the sampling policy had given every token `by` more log-prob."""
    return [
        [
            dataclasses.replace(
                s, thought_logps=[x + by for x in s.thought_logps], suffix_logps=[x + by for x in s.suffix_logps]
            )
            for s in g
        ]
        for g in groups
    ]


def update(model, groups, old_from):
    policy = copy.deepcopy(model).train()
    return policy_update(
        policy,
        copy.deepcopy(model),
        make_optimizer(policy, 1e-3),
        None,
        groups,
        CLOSE,
        151643,
        RP,
        step=0,
        micro_batch=8,
        old_from=old_from,
    )


def test_engine_logprobs_are_the_old_policy(tiny_model, groups):
    fresh_policy, fresh_engine = update(tiny_model, groups, "policy"), update(tiny_model, groups, "engine")
    assert fresh_policy["clip_frac"] == 0.0 == fresh_engine["clip_frac"]  # engine == policy (fp32): ratio 1
    assert abs(fresh_policy["loss"] - fresh_engine["loss"]) < 1e-4
    stale = shifted(groups, -3.0)  # the sampler found these tokens far less likely than the policy does now
    assert update(tiny_model, stale, "policy")["clip_frac"] == 0.0  # teacher-forced old: the staleness is lost
    assert update(tiny_model, stale, "engine")["clip_frac"] > 0.5  # ratio e^3: clipped


class NoLogprobEngine:
    """A server engine that returns no log-probs (`transformers serve`)."""

    def __init__(self, inner):
        self.inner, self.tokenizer, self.has_logprobs = inner, inner.tokenizer, False

    def generate(self, prompts, params):
        return self.inner.generate(prompts, params)


def test_stale_samples_without_server_logprobs_are_refused(tiny_model, qwen_tok):
    class Judge:
        stats = JudgeStats()

        def judge(self, items):
            self.stats.calls += len(items)
            return [i % 2 for i in range(len(items))]

    rows = [
        {"id": str(i), "prefix": t, "suffix": " x", "prefix_ids": qwen_tok.encode(t), "suffix_ids": [87]}
        for i, t in enumerate(("The river runs", "Most of the country"))
    ]
    policy = copy.deepcopy(tiny_model)
    trainer = RlmtTrainer(
        policy,
        copy.deepcopy(tiny_model),
        qwen_tok,
        NoLogprobEngine(HFEngine(policy, qwen_tok)),
        Judge(),
        rows,
        RP,
        lr=1e-4,
        seed=0,
        old_logprobs="engine",
    )
    with pytest.raises(InputError, match="reload_every > 1 .* returns none; set engine.reload_every: 1"):
        trainer.step(0)
    with pytest.raises(ValueError, match="old_logprobs"):
        RlmtTrainer(
            policy, copy.deepcopy(tiny_model), qwen_tok, None, Judge(), rows, RP, lr=1e-4, seed=0, old_logprobs="server"
        )


def test_a_step_without_valid_verdicts_skips_the_update(tiny_model, groups):
    """Only a run allowing 100% invalid verdicts reaches this (the invalid-rate stop raises first):
    no update, the same metric keys, no NaN."""
    for g in groups:
        for s in g:
            s.reward = None
    policy = copy.deepcopy(tiny_model).train()
    before = [p.detach().clone() for p in policy.parameters()]
    opt = make_optimizer(policy, 1e-3)
    m = policy_update(policy, copy.deepcopy(tiny_model), opt, None, groups, CLOSE, 151643, RP, step=0, micro_batch=8)
    assert m["valid_samples"] == 0.0 and m["loss"] == 0.0 and m["grad_norm"] == 0.0
    assert set(m) >= {"loss", "pg_loss", "kl", "clip_frac", "grad_norm", "lr", "logprob_mismatch"}
    assert all(bool((a == b).all()) for a, b in zip(before, policy.parameters()))
