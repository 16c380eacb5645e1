"""Continuous thought (after QThink / CODI / Coconut): K latent steps fed back as input embeddings.

After the prompt and `<think>`, the last hidden state goes through a projection head
(Linear-GELU-Linear-LayerNorm) and comes back as the next input embedding, K times; then `</think>`
and the answer are decoded as text. Training distills teacher hidden states into the K latent
states: the teacher is the model's own verbal reasoning, several rollouts per problem, read at K
evenly spaced positions of each rollout's thought and averaged uniformly or over the correct
rollouts only; per-step (all K states) or final-step (the last one); L1 or smooth-L1; plus the
answer's cross-entropy.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F
from torch import nn

from thinkmid.engines.base import SamplingParams
from thinkmid.thoughts.tasks import answer_ids, is_correct, prompt_ids, think_ids_of


class ProjectionHead(nn.Module):
    def __init__(self, hidden: int, out_scale: float = 1.0):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.LayerNorm(hidden))
        with torch.no_grad():
            self.mlp[3].weight.fill_(out_scale)

    @classmethod
    def for_model(cls, lm) -> "ProjectionHead":
        """A head whose output starts at the scale of the model's own input embeddings: the LayerNorm
        alone gives unit RMS, 50x the 0.02 of a freshly initialised embedding table, so the latent
        inputs would sit far outside anything the model has read (measured: the tiny arm then answers
        one constant)."""
        w = lm.get_input_embeddings().weight.detach().float()
        return cls(w.shape[1], out_scale=float(w.pow(2).mean().sqrt()))

    def forward(self, x):
        return self.mlp(x.to(self.mlp[0].weight.dtype))


class LatentLM(nn.Module):
    """The language model and its projection head, trained (and checkpointed) together."""

    def __init__(self, lm, head: ProjectionHead):
        super().__init__()
        self.lm, self.head = lm, head


def spaced_positions(length: int, k: int) -> list[int]:
    """K evenly spaced indices into a span of `length` (>= 1) tokens; the last is always length - 1."""
    return [min(length - 1, max(0, math.ceil((i + 1) * length / k) - 1)) for i in range(k)]


def rollouts(engine, tok, problems, n: int, max_thought: int, max_answer: int, temperature: float, seed: int):
    """n verbal rollouts per problem: (thought ids, answer ids, correct) lists."""
    t_open, t_close = think_ids_of(tok)
    prompts = [prompt_ids(tok, p) + [t_open] for p in problems]
    th = SamplingParams(max_new_tokens=max_thought, n=n, temperature=temperature, seed=seed, stop_token_ids=(t_close,))
    su = SamplingParams(max_new_tokens=max_answer, temperature=0.0, seed=seed, stop_token_ids=(tok.eos_token_id,))
    outs = engine.two_stage(prompts, th, su, [t_close])
    return [
        [(c.thought.token_ids, c.suffix.token_ids, is_correct(p.answer, tok.decode(c.suffix.token_ids))) for c in comps]
        for p, comps in zip(problems, outs)
    ]


@torch.no_grad()
def teacher_states(model, tok, problems, rolls, k, weighting: str, batch_size: int = 64):
    """Targets [N, K, d] and distillation weights [N] (0 where no rollout counts), plus statistics.
    `k` a list of step counts: targets is then {k: [N, k, d]}, all read from the same forwards.
    Rollouts go through the model `batch_size` at a time, right-padded (causal: padding after a row
    changes none of its states)."""
    t_open, t_close = think_ids_of(tok)
    dev = next(model.parameters()).device
    ks = [k] if isinstance(k, int) else sorted(set(k))
    d = model.config.hidden_size
    sums = {kk: torch.zeros(len(problems), kk, d, device=dev) for kk in ks}
    used = torch.zeros(len(problems), device=dev)
    items, n_correct = [], 0  # (problem index, ids, first span position, span length)
    for i, (p, rs) in enumerate(zip(problems, rolls)):
        for thought, answer, ok in rs:
            n_correct += int(ok)
            if weighting == "correct" and not ok:
                continue
            q = prompt_ids(tok, p) + [t_open]
            items.append((i, q + list(thought) + [t_close] + list(answer), len(q) - 1, len(thought) + 1))
    was = model.training
    model.eval()
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    for s in range(0, len(items), batch_size):
        group = items[s : s + batch_size]
        width = max(len(it[1]) for it in group)
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for r, (_, seq, _, _) in enumerate(group):
            ids[r, : len(seq)], mask[r, : len(seq)] = torch.tensor(seq), 1
        h = model(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True).hidden_states[-1]
        for r, (i, _, start, length) in enumerate(group):  # span: <think> and the thought tokens
            for kk in ks:
                sums[kk][i] += h[r, [start + j for j in spaced_positions(length, kk)]].float()
            used[i] += 1
    if was:
        model.train()
    targets = {kk: v / used.clamp(min=1)[:, None, None] for kk, v in sums.items()}
    weights = (used > 0).float()
    stats = {
        "rollout_accuracy": n_correct / max(1, sum(len(r) for r in rolls)),
        "distilled_problems": int(weights.sum()),
    }
    return (targets[k] if isinstance(k, int) else targets), weights, stats


def fit_head(
    head: ProjectionHead,
    lm,
    tok,
    problems,
    rolls,
    steps: int,
    rollouts_used: int = 1024,
    lr: float = 1e-3,
    seed: int = 0,
) -> float:
    """Warm-start the projection head on the verbal model's own rollouts: map the last hidden state
    at <think> and each thought token to the input embedding of the thought token that follows, so
    the latent loop starts as the verbal chain with soft tokens instead of from noise (a fresh head
    left the tiny arm at chance after 300 distillation steps). Only the head trains; returns the
    final loss (MSE relative to the embeddings' mean square)."""
    t_open, _ = think_ids_of(tok)
    dev = next(lm.parameters()).device
    emb = lm.get_input_embeddings().weight.detach()
    xs, ys = [], []
    items = [(p, th) for p, rs in zip(problems, rolls) for th, _, ok in rs if ok and len(th) > 0][:rollouts_used]
    with torch.no_grad():
        for s in range(0, len(items), 256):
            group = items[s : s + 256]
            seqs = [prompt_ids(tok, p) + [t_open] + list(th) for p, th in group]
            width = max(map(len, seqs))
            ids = torch.zeros(len(seqs), width, dtype=torch.long)
            mask = torch.zeros(len(seqs), width, dtype=torch.long)
            for r, q in enumerate(seqs):
                ids[r, : len(q)], mask[r, : len(q)] = torch.tensor(q), 1
            h = lm(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True).hidden_states[-1]
            for r, (q, (_, th)) in enumerate(zip(seqs, group)):
                start = len(q) - len(th) - 1  # <think>: its state is followed by thought token 1
                xs.append(h[r, start : len(q) - 1].float())
                ys.append(emb[torch.tensor(th, device=dev)].float())
    if not xs:
        return float("nan")
    x, y = torch.cat(xs), torch.cat(ys)
    scale = y.pow(2).mean().clamp(min=1e-12)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        idx = torch.randint(len(x), (min(512, len(x)),), generator=gen).to(x.device)
        loss = F.mse_loss(head(x[idx]).float(), y[idx]) / scale
        opt.zero_grad()
        loss.backward()
        opt.step()
    return float(loss.detach())


def step_schedule(k: int, eval_steps: list[int], mixed: bool):
    """The latent-step count of a training batch: always K, or (`mixed`) K for half the batches and
    each other eval count for an equal share of the rest, so every count the eval runs (0, the
    ablation, included) has been trained to end in an answer. Chosen from the batch's indices, so a
    resumed phase repeats the same choices."""
    others = sorted(set(eval_steps) - {k})
    if not mixed or not others:
        return lambda idx: k
    cycle = [k] * len(others) + others
    return lambda idx: random.Random(",".join(map(str, idx))).choice(cycle)  # a str seed hashes with sha512


def latent_forward(module: LatentLM, tok, problems, k: int, targets=None, weights=None, params=None):
    """(answer CE + weighted distillation loss, answer tokens) for a batch of problems."""
    lm, head = module.lm, module.head
    t_open, t_close = think_ids_of(tok)
    dev = next(lm.parameters()).device
    qs = [prompt_ids(tok, p) + [t_open] for p in problems]
    ans = [[t_close] + answer_ids(tok, p) for p in problems]
    b, wq, wa = len(problems), max(map(len, qs)), max(map(len, ans))
    q_ids = torch.zeros(b, wq, dtype=torch.long)
    q_mask = torch.zeros(b, wq, dtype=torch.long)
    a_ids = torch.zeros(b, wa, dtype=torch.long)
    a_mask = torch.zeros(b, wa, dtype=torch.long)
    for r, (q, a) in enumerate(zip(qs, ans)):
        q_ids[r, wq - len(q) :], q_mask[r, wq - len(q) :] = torch.tensor(q), 1
        a_ids[r, : len(a)], a_mask[r, : len(a)] = torch.tensor(a), 1
    q_ids, q_mask, a_ids, a_mask = q_ids.to(dev), q_mask.to(dev), a_ids.to(dev), a_mask.to(dev)
    pos = (q_mask.cumsum(-1) - 1).clamp(min=0)
    out = lm(input_ids=q_ids, attention_mask=q_mask, position_ids=pos, use_cache=True, output_hidden_states=True)
    cache, h, mask, nxt = out.past_key_values, out.hidden_states[-1][:, -1], q_mask, pos[:, -1] + 1
    states = []
    for _ in range(k):
        e = head(h).to(lm.get_input_embeddings().weight.dtype)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
        out = lm(
            inputs_embeds=e[:, None],
            attention_mask=mask,
            position_ids=nxt[:, None],
            past_key_values=cache,
            use_cache=True,
            output_hidden_states=True,
        )
        cache, h, nxt = out.past_key_values, out.hidden_states[-1][:, -1], nxt + 1
        states.append(h)
    mask = torch.cat([mask, a_mask], 1)
    apos = nxt[:, None] + torch.arange(wa, device=dev)[None]
    logits = lm(input_ids=a_ids, attention_mask=mask, position_ids=apos, past_key_values=cache).logits
    labels = torch.where(a_mask.bool(), a_ids, -100)[:, 1:]
    ce = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
    loss = ce
    if targets is not None and k > 0 and params.distill_weight > 0:
        s = torch.stack(states, 1).float()  # [b, K, d]
        t = targets.to(s.device)
        if params.distill == "final_step":
            s, t = s[:, -1:], t[:, -1:]
        fn = F.l1_loss if params.distill_loss == "l1" else F.smooth_l1_loss
        per = fn(s, t, reduction="none").mean((1, 2))
        w = weights.to(s.device)
        loss = loss + params.distill_weight * (per * w).sum() / w.sum().clamp(min=1.0)
    return loss, int((labels != -100).sum())


def answer_params(tok, max_answer: int, seed: int = 0) -> SamplingParams:
    return SamplingParams(max_new_tokens=max_answer, temperature=0.0, seed=seed, stop_token_ids=(tok.eos_token_id,))
