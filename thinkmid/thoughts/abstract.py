"""Abstract thought (after Abstract-CoT, arXiv 2604.22709): a short sequence from a reserved vocabulary.

The tokenizer and embeddings gain `vocab_size` abstract tokens <abs_00>.. plus <abstract> and
</abstract> markers (new rows, trained with the rest of the model). T rounds of two phases:

- Phase A, bottleneck SFT on [prompt; verbal reasoning; <abstract> z </abstract>; answer], the answer
  masked from attending the reasoning, so whatever the answer learns from the reasoning must pass
  through the abstract positions. Round 1: z is random (no loss on it); later rounds: z sampled from
  the previous round's model in this same layout, i.e. after the reasoning (loss on z then too), so
  the abstract tokens themselves, not only their positions, come to encode the reasoning.
- Phase B, self-distillation on [prompt; <abstract> z </abstract>; answer] with plain causal attention,
  z sampled from the prompt alone by the Phase A model.

Decoding an abstract thought is the engine's two-stage plan with an allowed-token mask (the abstract
vocabulary and </abstract>), the end marker forced at the length cap, then the answer.
"""

from __future__ import annotations

import random

import torch

from thinkmid.engines.base import SamplingParams
from thinkmid.thoughts.tasks import ANSWER_SEG, LATENT, PROMPT, REASON, answer_ids, build, enc, prompt_ids, think_ids_of

ABS_OPEN, ABS_CLOSE = "<abstract>", "</abstract>"


def abstract_tokens(n: int) -> list[str]:
    return [f"<abs_{i:02d}>" for i in range(n)]


def extend_vocab(model, tok, n: int, seed: int = 0) -> None:
    """Add the abstract tokens and markers (idempotent). New embedding rows start at the mean row plus
    small noise, so they are distinct from each other yet in the range the model reads."""
    new = [t for t in abstract_tokens(n) + [ABS_OPEN, ABS_CLOSE] if t not in tok.get_vocab()]
    if not new:
        return
    tok.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    emb = model.get_input_embeddings().weight
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mean, std = emb[:old].mean(0), emb[:old].std(0).mean()
        rows = emb.shape[0] - old
        noise = torch.randn(rows, emb.shape[1], generator=g).to(emb.device, emb.dtype) * std * 0.5
        emb[old:] = mean + noise
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            out.weight[old:] = out.weight[:old].mean(0) + noise.to(out.weight.device)


def ids(tok, n: int) -> tuple[list[int], int, int]:
    """(abstract token ids, <abstract> id, </abstract> id)."""
    vocab = tok.get_vocab()
    missing = [t for t in abstract_tokens(n) + [ABS_OPEN, ABS_CLOSE] if t not in vocab]
    if missing:
        raise ValueError(f"tokenizer lacks the abstract tokens {missing[:3]}..; extend_vocab first")
    return [vocab[t] for t in abstract_tokens(n)], vocab[ABS_OPEN], vocab[ABS_CLOSE]


def random_sequences(count: int, length: int, abs_ids: list[int], seed: int) -> list[list[int]]:
    rng = random.Random(f"{seed}:random-abstract")
    return [[rng.choice(abs_ids) for _ in range(length)] for _ in range(count)]


def phase_a_example(tok, p, z: list[int], n: int, z_loss: bool, seq_len: int | None) -> dict:
    t_open, t_close = think_ids_of(tok)
    _, a_open, a_close = ids(tok, n)
    return build([(PROMPT, prompt_ids(tok, p), False), (REASON, [t_open] + enc(tok, p.steps) + [t_close], True),
                  (LATENT, [a_open] + z + [a_close], z_loss), (ANSWER_SEG, answer_ids(tok, p), True)], seq_len)  # fmt: skip


def phase_b_example(tok, p, z: list[int], n: int, seq_len: int | None) -> dict:
    _, a_open, a_close = ids(tok, n)
    return build([(PROMPT, prompt_ids(tok, p), False), (LATENT, [a_open] + z + [a_close], True),
                  (ANSWER_SEG, answer_ids(tok, p), True)], seq_len)  # fmt: skip


def thought_params(tok, n: int, max_tokens: int, temperature: float, seed: int) -> SamplingParams:
    """Sampling of one abstract sequence: the abstract vocabulary and the end marker only."""
    abs_ids, _, a_close = ids(tok, n)
    return SamplingParams(max_new_tokens=max_tokens, temperature=temperature, seed=seed,
                          stop_token_ids=(a_close,), allowed_token_ids=tuple(abs_ids) + (a_close,))  # fmt: skip


def sample_sequences(engine, tok, problems, n: int, max_tokens: int, temperature: float, seed: int,
                     with_reasoning: bool = False) -> list[list[int]]:  # fmt: skip
    """One abstract sequence per problem (the end marker stripped), from the prompt alone or, as the
    teacher of a later round's Phase A, after [prompt; verbal reasoning] as in the Phase A layout."""
    _, a_open, a_close = ids(tok, n)
    t_open, t_close = think_ids_of(tok)
    reason = (lambda p: [t_open] + enc(tok, p.steps) + [t_close]) if with_reasoning else (lambda p: [])
    prompts = [prompt_ids(tok, p) + reason(p) + [a_open] for p in problems]
    outs = engine.generate(prompts, thought_params(tok, n, max_tokens, temperature, seed))
    return [[t for t in o[0].token_ids if t != a_close] for o in outs]
