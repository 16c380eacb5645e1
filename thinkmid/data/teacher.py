"""The teacher: writes one short thought per chosen sentence boundary of a chunk.

Where thoughts go is decided here (sentence boundaries, seeded); the teacher only writes their text,
conditioned on the chunk up to that point. With teacher_thoughts.mode "rewrite" the teacher instead
rewrites whole chunks (`rewrite`, thinkmid/data/rewrite.py), as the seed's did. Backends: `lm` (a local model through an Engine, chat
template when the tokenizer has one) or `endpoint` (an OpenAI-compatible chat server).
"""

from __future__ import annotations

import random
from importlib import resources

from thinkmid.data.thoughts import audit_row, choose_boundaries, clean_thought, interleave
from thinkmid.engines.base import SamplingParams

CONTEXT_CHARS = 1200  # the teacher sees at most this much text before the boundary


def teacher_prompt(context: str) -> str:
    tmpl = resources.files("thinkmid.data").joinpath("prompts/teacher_thought.txt").read_text(encoding="utf-8")
    return tmpl.format(context=context[-CONTEXT_CHARS:].strip())


class EngineTeacher:
    """Thoughts from a local model through the generation engine (one batched call)."""

    def __init__(
        self,
        engine,
        tokenizer,
        max_tokens: int,
        temperature: float,
        seed: int,
        top_p: float = 0.95,
        rewrite_max_tokens: int = 1536,
    ):
        self.engine, self.tok = engine, tokenizer
        self.rewrite_params = SamplingParams(
            max_new_tokens=rewrite_max_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop_token_ids=tuple(i for i in {tokenizer.eos_token_id} if i is not None),
        )
        self.params = SamplingParams(
            max_new_tokens=max_tokens,
            temperature=temperature,
            top_p=0.95,
            seed=seed,
            stop_token_ids=tuple(i for i in {tokenizer.eos_token_id, *_newline_ids(tokenizer)} if i is not None),
        )

    def _encode(self, text: str, cue: str = "\nThought:") -> list[int]:
        if getattr(self.tok, "chat_template", None):
            ids = self.tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
            return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        return self.tok.encode(text + cue)

    def thoughts(self, contexts: list[str]) -> list[str]:
        prompts = [self._encode(teacher_prompt(c)) for c in contexts]
        outs = self.engine.generate(prompts, self.params)
        return [self.tok.decode(o[0].token_ids, skip_special_tokens=True) for o in outs]

    def rewrite(self, prompts: list[str], attempt: int = 0) -> list[str]:
        """One whole-chunk rewrite per prompt; a new attempt samples with another seed."""
        p = self.rewrite_params
        params = SamplingParams(
            max_new_tokens=p.max_new_tokens,
            temperature=p.temperature,
            top_p=p.top_p,
            stop_token_ids=p.stop_token_ids,
            seed=p.seed + 7919 * attempt,
        )
        outs = self.engine.generate([self._encode(t, "\n\n") for t in prompts], params)
        return [self.tok.decode(o[0].token_ids, skip_special_tokens=True) for o in outs]


class ChatTeacher:
    """Thoughts from an OpenAI-compatible chat endpoint (SGLang, vLLM, transformers serve)."""

    def __init__(
        self,
        client,
        model: str | None,
        max_tokens: int,
        temperature: float,
        top_p: float = 0.95,
        rewrite_max_tokens: int = 1536,
    ):
        self.client, self.model, self.max_tokens, self.temperature = client, model, max_tokens, temperature
        self.top_p, self.rewrite_max_tokens = top_p, rewrite_max_tokens

    def rewrite(self, prompts: list[str], attempt: int = 0) -> list[str]:
        """Whole-chunk rewrites (T, top_p, thinking disabled as the seed asked); "" for a failed call."""
        bodies = [
            {
                "model": self.model,
                "messages": [{"role": "user", "content": p}],
                "temperature": self.temperature,
                "top_p": self.top_p,
                "max_tokens": self.rewrite_max_tokens,
                "chat_template_kwargs": {"enable_thinking": False},
            }
            for p in prompts
        ]
        out = []
        for r in self.client.post_many("/chat/completions", bodies):
            ok = isinstance(r, dict) and r.get("choices")
            out.append((r["choices"][0].get("message", {}).get("content") or "") if ok else "")
        return out

    def thoughts(self, contexts: list[str]) -> list[str]:
        bodies = [
            {
                "model": self.model,
                "messages": [{"role": "user", "content": teacher_prompt(c)}],
                "max_tokens": self.max_tokens,
                "temperature": self.temperature,
            }
            for c in contexts
        ]
        out = []
        for r in self.client.post_many("/chat/completions", bodies):
            # A failed request (after retries) yields no thought; the audit counts that row as dropped.
            ok = isinstance(r, dict) and r.get("choices")
            out.append((r["choices"][0].get("message", {}).get("content") or "") if ok else "")
        return out


def _newline_ids(tokenizer) -> list[int]:
    return [i for t, i in tokenizer.get_vocab().items() if t in ("Ċ", "ĊĊ", "\n", "\n\n")]


def interleave_rows(rows: list[dict], teacher, min_n: int, max_n: int, seed: int) -> tuple[list[dict], list[dict]]:
    """Return (rows with "interleaved" text, audits). One teacher call for all boundaries."""
    plans = []
    for r in rows:
        rng = random.Random(f"{seed}:{r['id']}")
        plans.append(choose_boundaries(r["text"], min_n, max_n, rng))
    contexts = [r["text"][:p] for r, pos in zip(rows, plans) for p in pos]
    raw = teacher.thoughts(contexts) if contexts else []
    out, audits, k = [], [], 0
    for r, pos in zip(rows, plans):
        thoughts = [clean_thought(t) for t in raw[k : k + len(pos)]]
        k += len(pos)
        keep = [(p, t) for p, t in zip(pos, thoughts) if t]
        text = interleave(r["text"], [p for p, _ in keep], [t for _, t in keep]) if keep else r["text"]
        audit = audit_row(r["text"], text)
        if audit["ok"] and len(keep) < min_n:
            audit = {**audit, "ok": False, "reason": "too_few_thoughts"}
        audits.append(audit)
        out.append({**r, "interleaved": text, "n_thoughts": len(keep)})
    return out, audits


def prefix_thoughts(rows: list[dict], teacher) -> list[str]:
    """The teacher's thought at the prefix/suffix boundary of each row (for the thought-use probe)."""
    return [clean_thought(t) for t in teacher.thoughts([r["prefix"] for r in rows])]
