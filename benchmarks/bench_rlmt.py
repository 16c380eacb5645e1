"""One RLMT step at the seed config: 2 prefixes x 16 samples, thought 48 + suffix 128, then an update
(policy + reference teacher-forced log-probs, clipped surrogate + k3 KL, backward, fused AdamW).
The judge is not timed (rewards are random). Run: PYTHONPATH=. python benchmarks/bench_rlmt.py
"""

from __future__ import annotations

import copy
import random
import time

import torch

from benchmarks.common import FakeTok, emit, qwen3_06b, sync
from thinkmid.engines.base import SamplingParams, two_stage
from thinkmid.engines.hf import HFEngine
from thinkmid.train.logprobs import sequence_logprobs
from thinkmid.train.losses import group_advantages, rlmt_loss
from thinkmid.train.optim import make_optimizer

G, K, THOUGHT, SUFFIX, PREFIX, CLOSE = 2, 16, 48, 128, 256, 151668


def step(policy, ref, engine, opt, prompts, two_call: bool):
    th = SamplingParams(max_new_tokens=THOUGHT, n=K, temperature=1.0, top_p=0.95, stop_token_ids=(CLOSE,))
    su = SamplingParams(max_new_tokens=SUFFIX, temperature=1.0, top_p=0.95, stop_token_ids=(151643,))
    sync()
    t0 = time.perf_counter()
    outs = two_stage(engine, prompts, th, su, [CLOSE]) if two_call else engine.two_stage(prompts, th, su, [CLOSE])
    sync()
    t_gen = time.perf_counter() - t0
    ps, cs, masks, olds = [], [], [], []
    for p, group in zip(prompts, outs):
        for c in group:
            ps.append(p)
            cs.append(c.thought.token_ids + [CLOSE] + c.suffix.token_ids)
            masks.append([1] * len(c.thought.token_ids) + [0] + [1] * len(c.suffix.token_ids))
            olds.append(c.thought.logprobs + [0.0] + c.suffix.logprobs)
    rewards = torch.tensor([[random.randint(0, 1) for _ in range(K)] for _ in prompts], dtype=torch.float32)
    adv = group_advantages(rewards).cuda()
    policy.train()
    new, mask = sequence_logprobs(policy, ps, cs, 151643, loss_mask=masks, micro_batch=32)
    with torch.no_grad():
        refl, _ = sequence_logprobs(ref, ps, cs, 151643, micro_batch=32)
    old = torch.zeros_like(new)
    for r, o in enumerate(olds):
        old[r, : len(o)] = torch.tensor(o, device="cuda")
    loss, _ = rlmt_loss(new, old, refl, mask, adv)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    policy.eval()
    sync()
    return time.perf_counter() - t0, t_gen


def main():
    policy = qwen3_06b()
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    opt = make_optimizer(policy, lr=1e-6)
    engine = HFEngine(policy, FakeTok(), batch_size=256)
    r = random.Random(0)
    prompts = [[r.randrange(1000, 150000) for _ in range(PREFIX)] for _ in range(G)]
    for two_call, name in ((False, "one_call_two_stage"), (True, "base_two_stage_two_calls")):
        step(policy, ref, engine, opt, prompts, two_call)  # warm-up: graph capture, compile
        ts = [step(policy, ref, engine, opt, prompts, two_call) for _ in range(3)]
        tot, gen = sorted(ts)[1]
        emit(
            figure="rlmt_step_s",
            variant=name,
            config=f"{G}x{K}, {THOUGHT}+{SUFFIX}",
            step_s=round(tot, 3),
            generate_s=round(gen, 3),
            update_s=round(tot - gen, 3),
            target_s=3.0,
            judge="not timed",
        )


if __name__ == "__main__":
    main()
