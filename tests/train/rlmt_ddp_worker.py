"""Two RLMT policy updates of a tiny Qwen3 on fixed, judged groups, as one process or as one rank of
several (gloo on CPU; each rank takes its share of whole groups, as RlmtTrainer does). Rank 0 writes
the metrics of each update and the final weights to argv[1]; tests/train/test_rlmt_ddp.py compares."""

from __future__ import annotations

import copy
import json
import math
import sys

import torch
from ddp_worker import VOCAB, make_tiny_qwen3
from safetensors.torch import save_file

from thinkmid.config import RlmtParams
from thinkmid.rollouts import Sample
from thinkmid.train.dist import Dist
from thinkmid.train.optim import make_optimizer, make_scheduler
from thinkmid.train.rlmt import policy_update

CLOSE, PAD = VOCAB - 1, 0


def groups_for(step: int, n_groups: int = 3, k: int = 4) -> list[list[Sample]]:
    gen = torch.Generator().manual_seed(100 + step)
    ids = lambda n: torch.randint(1, VOCAB - 1, (n,), generator=gen).tolist()  # noqa: E731
    out = []
    for g in range(n_groups):
        prompt = ids(5 + g)
        group = []
        for i in range(k):
            th, su = ids(1 + (g + i) % 3), ids(2 + (g * i) % 4)
            group.append(Sample(prompt, th, su, [], [], True, "", "", reward=(g + i + step) % 2))
        out.append(group)
    return out


def main(out: str) -> None:
    torch.set_num_threads(1)
    dist = Dist(cpu=True)
    policy = make_tiny_qwen3(seed=0).train()
    ref = copy.deepcopy(policy).eval().requires_grad_(False)
    rp = RlmtParams(
        k=4,
        prefixes_per_step=3,
        thought_max_tokens=4,
        suffix_max_tokens=6,
        kl_coef=0.05,
        steps=2,
        warmup_steps=0,
        max_grad_norm=1.0,
    )
    opt = make_optimizer(policy, lr=1e-2)
    sched = make_scheduler(opt, 0, 2, 0.1)
    model, opt = dist.prepare(policy, opt)
    metrics = []
    for step in range(2):
        mine = dist.split(groups_for(step))  # 3 groups: rank 0 gets 1, rank 1 gets 2
        m = policy_update(model, ref, opt, sched, mine, CLOSE, PAD, rp, step, micro_batch=3, dist=dist)
        metrics.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()})
    if dist.is_main:
        state = {k: v.detach().clone().contiguous() for k, v in dist.unwrap(model).state_dict().items()}
        save_file(state, out + ".safetensors")
        with open(out + ".json", "w") as f:
            json.dump({"world_size": dist.world_size, "metrics": metrics}, f)
    dist.barrier()
    dist.end()


if __name__ == "__main__":
    main(sys.argv[1])
