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
    small noise, so they are distinct from each other yet in the range the model reads. A padded
    embedding (Qwen3's 151,936 rows for 151,669 ids) already has rows for them and keeps its size."""
    new = [t for t in abstract_tokens(n) + [ABS_OPEN, ABS_CLOSE] if t not in tok.get_vocab()]
    if not new:
        return
    known = len(tok)  # rows [0, known) belong to real tokens; past them a padded matrix holds filler
    tok.add_special_tokens({"additional_special_tokens": new}, replace_extra_special_tokens=False)
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tok), mean_resizing=False)
    emb = model.get_input_embeddings().weight
    idx = torch.tensor(tok.convert_tokens_to_ids(new), device=emb.device)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mean, std = emb[:known].mean(0), emb[:known].std(0).mean()
        noise = torch.randn(len(new), emb.shape[1], generator=g).to(emb.device, emb.dtype) * std * 0.5
        emb[idx] = mean + noise
        out = model.get_output_embeddings()
        if out is not None and out.weight.data_ptr() != emb.data_ptr():
            out.weight[idx.to(out.weight.device)] = out.weight[:known].mean(0) + noise.to(out.weight.device)


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


def anchored_sequences(tok, problems, n: int, m: int) -> list[list[int]]:
    """Reasoning-anchored abstract sequences (our addition, not the card's): z_k names the verbal
    reasoning's token at the k-th of m evenly spaced positions (those the continuous arm distils; the
    last is the reasoning's last token). Each reasoning token id maps to an abstract token by its
    frequency rank at those positions over `problems` (ties by id; ranks past n wrap), so for a
    generated chain z is the running state every ~L/m steps, relabelled. An empty reasoning gives
    the most frequent token throughout."""
    from collections import Counter

    from thinkmid.thoughts.continuous import spaced_positions

    abs_ids, _, _ = ids(tok, n)
    anchors = []
    for p in problems:
        r = enc(tok, p.steps)
        anchors.append([r[i] for i in spaced_positions(len(r), m)] if r else [])
    counts = Counter(t for a in anchors for t in a)
    rank = {t: i for i, (t, _) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
    return [[abs_ids[rank[t] % n] for t in a] if a else [abs_ids[0]] * m for a in anchors]


def phase_a_example(tok, p, z: list[int], n: int, z_loss: bool, seq_len: int | None) -> dict:
    t_open, t_close = think_ids_of(tok)
    _, a_open, a_close = ids(tok, n)
    return build(
        [
            (PROMPT, prompt_ids(tok, p), False),
            (REASON, [t_open] + enc(tok, p.steps) + [t_close], True),
            (LATENT, [a_open] + z + [a_close], z_loss),
            (ANSWER_SEG, answer_ids(tok, p), True),
        ],
        seq_len,
    )


def phase_b_example(tok, p, z: list[int], n: int, seq_len: int | None) -> dict:
    _, a_open, a_close = ids(tok, n)
    return build(
        [
            (PROMPT, prompt_ids(tok, p), False),
            (LATENT, [a_open] + z + [a_close], True),
            (ANSWER_SEG, answer_ids(tok, p), True),
        ],
        seq_len,
    )


def thought_params(
    tok, n: int, max_tokens: int, temperature: float, seed: int, allow_end: bool = True
) -> SamplingParams:
    """Sampling of abstract tokens: the abstract vocabulary and, with `allow_end`, the end marker."""
    abs_ids, _, a_close = ids(tok, n)
    end = (a_close,) if allow_end else ()
    return SamplingParams(
        max_new_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop_token_ids=end,
        allowed_token_ids=tuple(abs_ids) + end,
    )


def sample_after(
    engine, tok, prompts: list[list[int]], n: int, min_tokens: int, max_tokens: int, temperature: float, seed: int
) -> list[list[int]]:
    """One abstract sequence (end marker stripped) after each prompt, which ends in <abstract>: the
    first `min_tokens` with the end marker masked out (the card's minimum length m; without it an
    untrained end row can win from the first position and every later round learns empty sequences),
    the rest up to `max_tokens` with it allowed; the end is forced at the cap by the caller."""
    _, _, a_close = ids(tok, n)
    lo = min(min_tokens, max_tokens)
    head = [[] for _ in prompts]
    if lo > 0:
        outs = engine.generate(prompts, thought_params(tok, n, lo, temperature, seed, allow_end=False))
        head = [list(o[0].token_ids) for o in outs]
    if max_tokens > lo:
        outs = engine.generate(
            [p + h for p, h in zip(prompts, head)], thought_params(tok, n, max_tokens - lo, temperature, seed + 7919)
        )
        head = [h + [t for t in o[0].token_ids if t != a_close] for h, o in zip(head, outs)]
    return head


def sample_sequences(
    engine,
    tok,
    problems,
    n: int,
    max_tokens: int,
    temperature: float,
    seed: int,
    with_reasoning: bool = False,
    min_tokens: int = 0,
) -> list[list[int]]:
    """One abstract sequence per problem, from the prompt alone or, as the teacher of a later round's
    Phase A, after [prompt; verbal reasoning] as in the Phase A layout."""
    _, a_open, _ = ids(tok, n)
    t_open, t_close = think_ids_of(tok)
    reason = (lambda p: [t_open] + enc(tok, p.steps) + [t_close]) if with_reasoning else (lambda p: [])
    prompts = [prompt_ids(tok, p) + reason(p) + [a_open] for p in problems]
    return sample_after(engine, tok, prompts, n, min_tokens, max_tokens, temperature, seed)


@torch.no_grad()
def answer_accuracy(model, examples: list[dict], pad_id: int, bottleneck: bool, batch_size: int = 256) -> float:
    """Share of examples whose every answer token is the model's argmax (teacher-forced), in the
    Phase A layout (`bottleneck`, the answer cut off from the reasoning) or the Phase B one."""
    from thinkmid.thoughts.train import collate

    dev = next(model.parameters()).device
    was = model.training
    model.eval()
    hits = 0
    for s in range(0, len(examples), batch_size):
        b = collate(examples[s : s + batch_size], pad_id, bottleneck, next(model.parameters()).dtype)
        logits = model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev)).logits
        pred, seg, ids = logits[:, :-1].argmax(-1).cpu(), b["seg"][:, 1:], b["input_ids"][:, 1:]
        ok = torch.where(seg == ANSWER_SEG, pred == ids, torch.ones_like(ids, dtype=torch.bool)).all(1)
        hits += int(ok.sum())
    if was:
        model.train()
    return hits / max(1, len(examples))


def bottleneck_probe(engine, model, tok, problems, n: int, min_tokens: int, max_tokens: int, seed: int) -> dict:
    """Where the answer's information sits after Phase A: teacher sequences z sampled after the
    reasoning, then the answer's teacher-forced accuracy (a) in the Phase A layout with those z,
    (b) the same with random z of the same lengths, (c) in the Phase B layout (no reasoning) with
    those z. (a) = (b) > (c) at chance: the answer reads the reasoning through the hidden states at
    the abstract positions, and the token identities, all Phase B can learn from, carry nothing."""
    abs_ids, _, _ = ids(tok, n)
    zs = sample_sequences(engine, tok, problems, n, max_tokens, 1.0, seed, with_reasoning=True, min_tokens=min_tokens)
    rand = [random_sequences(1, len(z), abs_ids, seed + i)[0] for i, z in enumerate(zs)]
    pad = tok.pad_token_id
    return {
        "phase_a_answer_accuracy": answer_accuracy(
            model, [phase_a_example(tok, p, z, n, True, None) for p, z in zip(problems, zs)], pad, True
        ),
        "phase_a_random_z_answer_accuracy": answer_accuracy(
            model, [phase_a_example(tok, p, z, n, True, None) for p, z in zip(problems, rand)], pad, True
        ),
        "teacher_z_answer_accuracy": answer_accuracy(
            model, [phase_b_example(tok, p, z, n, None) for p, z in zip(problems, zs)], pad, False
        ),
    }
