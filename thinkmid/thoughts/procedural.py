"""A procedurally generated task with worked steps, and the small random-init model that learns it.

Two kinds, both with a verbal reasoning trace a small model can learn in minutes and an answer that
is hard to produce without one (the implicit-CoT / Coconut / CODI tasks):

- `modsum`: an addition chain mod m. "385927" -> steps "16574" (running sums mod 10) -> "4"; mod 2 it
  is a parity chain, whose steps (a 4-entry table at a fixed offset) a 2-layer model learns quickly.
  Each step is one table lookup; the answer alone needs the whole chain at once.
- `mult`: multi-digit multiplication. "37*46" -> partial products and their running sum -> "1702".

The model is a Qwen3 decoder with a character-level tokenizer (digits, operators, the thought
markers), so it trains fast on a CPU; it is saved as an ordinary safetensors HF directory.
"""

from __future__ import annotations

import random

from thinkmid import THINK_CLOSE, THINK_OPEN
from thinkmid.config.thoughts import chain_length  # noqa: F401  (its home is the params: check_params needs it)
from thinkmid.thoughts.tasks import Problem

EOS = "<|endoftext|>"
CHARS = list("0123456789+-*=,:;>? ()QA\n") + [chr(c) for c in range(ord("a"), ord("z") + 1)]


def hops_problem(rng: random.Random, hops: int, letters: int) -> Problem:
    """Pointer chasing: a shuffled table of a random permutation of `letters` letters and a start
    letter; the answer is the letter `hops` links away. Steps: the letters visited on the way."""
    names = [chr(ord("a") + i) for i in range(letters)]
    perm = names[:]
    rng.shuffle(perm)
    table = list(zip(names, perm))
    rng.shuffle(table)
    link = dict(zip(names, perm))
    cur = rng.choice(names)
    q = ",".join(f"{k}>{v}" for k, v in table) + f";{cur}"
    seen = []
    for _ in range(hops):
        cur = link[cur]
        seen.append(cur)
    return Problem(question=q, steps=" ".join(seen[:-1]) if hops > 1 else "", answer=cur)


def modsum_problem(rng: random.Random, terms: int, modulus: int) -> Problem:
    """With single-digit terms (modulus <= 10) the chain is written compactly, one character per term
    and per running sum ("101101" -> "11011"), so step i sits a fixed distance after term i + 1."""
    xs = [rng.randrange(modulus) for _ in range(terms)]
    run, steps = xs[0], []
    for x in xs[1:]:
        run = (run + x) % modulus
        steps.append(str(run))
    if modulus <= 10:
        return Problem(question="".join(map(str, xs)), steps="".join(steps), answer=str(run))
    return Problem(question="+".join(map(str, xs)), steps=" ".join(steps), answer=str(run))


def mult_problem(rng: random.Random, digits: int) -> Problem:
    lo, hi = 10 ** (digits - 1), 10**digits - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    parts, total, steps = [], 0, []
    for i, d in enumerate(reversed(str(b))):
        p = a * int(d) * 10**i
        parts.append(p)
        total += p
        steps.append(f"{a}*{int(d) * 10**i}={p}")
    if len(parts) > 1:
        steps.append("+".join(map(str, parts)) + f"={total}")
    return Problem(question=f"{a}*{b}", steps=",".join(steps), answer=str(a * b))


def generate(task, seed: int) -> tuple[list[Problem], list[Problem]]:
    """(train, eval) problems, disjoint by question text, deterministic in (seed, task)."""
    rng = random.Random(f"{seed}:{task.kind}:{task.terms}:{task.modulus}:{task.digits}")
    make = {
        "modsum": lambda: modsum_problem(rng, task.terms, task.modulus),
        "mult": lambda: mult_problem(rng, task.digits),
        "hops": lambda: hops_problem(rng, task.terms, task.modulus),
    }[task.kind]
    seen: set[str] = set()
    out: list[Problem] = []
    need = task.train + task.eval
    tries = 0
    while len(out) < need:
        p = make()
        tries += 1
        if tries > 50 * need:
            raise ValueError(f"task {task.kind}: cannot draw {need} distinct problems at this size")
        if p.question not in seen:
            seen.add(p.question)
            out.append(p)
    return out[: task.train], out[task.train :]


def char_tokenizer():
    """A character-level tokenizer (one token per character) with the thought markers as single tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {EOS: 0, "<unk>": 1}
    for c in CHARS:
        vocab.setdefault(c, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, pad_token=EOS, unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": [THINK_OPEN, THINK_CLOSE]})
    return tok


def init_model(tokenizer, hidden_size: int, layers: int, heads: int, seed: int, max_context: int = 1024):
    """A random-init Qwen3 decoder sized for the task (tied embeddings, vocab = the tokenizer's)."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if hidden_size % heads:
        raise ValueError(f"hidden_size {hidden_size} is not a multiple of heads {heads}")
    torch.manual_seed(seed)
    cfg = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden_size // heads,
        max_position_embeddings=max_context,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen3ForCausalLM(cfg).eval()
