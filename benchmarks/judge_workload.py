"""The Phase 3 judge benchmark's workload (benchmarks/bench_judge.py times it): the 4B judge shape, the
prompt layouts, random single-token words as text, one step's pairs, and the FLOPs and flex tiles of
one step's packed forests."""

from __future__ import annotations

import torch

from benchmarks.common import H100_BF16_DENSE, QWEN3_TINY, random_qwen3
from thinkmid.engines.treepack import pack
from thinkmid.judges.pairwise import _pairs

STEPS_FULL, PREFIXES, POOL = 2000, 16, 17
PEAK = H100_BF16_DENSE  # 989 TFLOP/s: the H100/H200 SXM bf16 dense datasheet figure
RUN2_STEP_S, RUN2_TFLOP = 7.21, 3152.0  # 2026-12-01 run2: old layout (train12's prompt text), ancestor mask
QWEN3_4B = dict(
    hidden_size=2560,
    intermediate_size=9728,
    num_hidden_layers=36,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
)
FORMAT_LINE = "Reply with one JSON object"


def format_last(template: str) -> str:
    """The old layout of a judge template: its verdict-format line moved after the candidates (the
    line and the blank line after it leave their place; the template ends on that line)."""
    lines = template.rstrip("\n").split("\n")
    i = next(i for i, ln in enumerate(lines) if ln.startswith(FORMAT_LINE))
    line = lines.pop(i)
    if i < len(lines) and not lines[i].strip():
        lines.pop(i)
    return "\n".join(lines + ["", line]) + "\n"


def template_of(layout: str, name: str = "pairwise_quality") -> str:
    from thinkmid.judges.parse import load_prompt

    t = load_prompt(name)
    if layout not in ("new", "old"):
        raise ValueError(f"layout must be new or old, got {layout!r}")
    return t if layout == "new" else format_last(t)


def judge_model(tiny: bool, dev):
    m = random_qwen3(
        QWEN3_TINY if tiny else QWEN3_4B,
        dev,
        0,
        vocab_size=151936,
        max_position_embeddings=8192,
        rope_theta=5e6,
        eos_token_id=151645,
        pad_token_id=151643,
    )
    return m if dev == "meta" else m.to(torch.float32 if tiny else torch.bfloat16).eval()


def word_pieces(tok):
    words = sorted(
        w
        for w in tok.get_vocab()
        if w.startswith("Ġ") and w[1:].isascii() and w[1:].isalpha() and 3 <= len(w) <= 9 and w[1:].islower()
    )
    return [tok.convert_tokens_to_string([w]) for w in words]


def step_items(words, rng, prefix_len, cand_len, n_prefixes=PREFIXES, pool=POOL):
    text = lambda n: "".join(rng.choice(words) for _ in range(n))  # noqa: E731
    items = []
    for _ in range(n_prefixes):
        prefix = text(prefix_len).lstrip()
        items += _pairs(prefix, [text(cand_len) for _ in range(pool)], rng)[1]
    return items


def flops_per_token(model) -> float:
    """2 x the weights every token multiplies (all linear layers but the LM head)."""
    return 2.0 * sum(p.numel() for n, p in model.model.layers.named_parameters() if p.dim() == 2)


def attn_flops(model, visible_keys: float) -> float:
    c = model.config
    return 4.0 * c.num_attention_heads * c.head_dim * c.num_hidden_layers * visible_keys


def step_work(jd, vals, model, fpt, lm, length=None):
    """One step's packed tokens, visible keys, FLOPs and flex tiles (full / partial, real query blocks)."""
    from thinkmid.engines.treepack import BLOCK, kv_blocks

    nodes, children, leaf = jd._forest(vals)
    packed = vis = 0.0  # visible keys summed over packed tokens = sum of (RoPE position + 1), per forward
    full = part = 0
    batches = jd._batches(nodes, children)
    for batch in batches:
        p = pack([(batch.get(nodes[n][0], -1), nodes[n][1]) for n in batch], [])
        packed += p.tokens
        vis += float((p.pos + 1).sum())
        if length:
            n = -(-max(length, p.tokens) // BLOCK) * BLOCK
            cnt, _, fcnt, _ = kv_blocks(p, n)
            real = -(-p.tokens // BLOCK)
            part, full = part + int(cnt[:real].sum()), full + int(fcnt[:real].sum())
    flops = fpt * packed + attn_flops(model, vis) + lm * len(set(leaf))
    return {
        "forwards": len(batches),
        "packed_tokens": int(packed),
        "visible_keys": vis,
        "flops": flops,
        "tiles_full": full,
        "tiles_partial": part,
    }
