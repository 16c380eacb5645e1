"""In-process judge: verdicts read from one forward of the judge model, prompts sharing their KV.

Layout. A judge prompt template (prompts/*.txt) is rendered through the judge's chat template the
way an OpenAI-compatible server renders a one-message chat (the user turn, then the assistant's
generation prompt). A tokenizer without a chat template gets Qwen's ChatML, which is what
Qwen3-4B-Instruct-2507's template renders for one user message. After that text comes the forced
opening of the JSON verdict (e.g. `{"winner": "`) as the tokens the model itself would emit, and the
next token is the verdict: one of the template's own example answers (`{"winner": "A"}` ...), whose
meaning comes from the strict parser in parse.py; the tokens before the examples part is the opening.
The prompt is cut into blocks before each candidate slot ({a}, {b}, {predicted}): block 0 (chat
header, instructions, prefix, and for the reference judge the true continuation) is computed once for
every item that shares it; with share='all' block 1 (+ candidate A) once for the pairs that show that
candidate first. share='head' cuts only before the first candidate, 'none' not at all.

Tokens. Each block is tokenized once. A cut is kept only where it is a token boundary of the whole
prompt (checked per block: e.g. a candidate that starts with a newline that would merge with the glue
before it is joined to its parent block), so the ids are those of tokenizing the whole prompt.

Sampling (the seed's judge decoding: temperature 0.7, top_p 0.6). At the verdict position the
next-token distribution over the FULL vocabulary is tempered and cut to its nucleus the way a server
does it (tokens by falling probability, kept while the mass before them is < top_p, renormalised).
The verdict is then drawn among the valid verdict tokens in proportion to their nucleus mass. The
nucleus mass on every other token (what a server would have answered off the JSON path) is the
item's `invalid` share: reported in Verdict.raw, summed in `invalid_mass`, never hidden. No verdict
token in the nucleus: an invalid verdict. Temperature 0: greedy over the full vocabulary.

A pair whose two candidates are the same text is a fair coin flip, decided without the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import torch

from thinkmid.engines.treeforward import TreeForward
from thinkmid.engines.treepack import pack
from thinkmid.judges.base import JudgeStats, Verdict
from thinkmid.judges.parse import VerdictError, load_prompt, parse_match, parse_winner, render

CANDIDATE_SLOTS = ("a", "b", "predicted")
_MARK = re.compile(r"\x00(prefix|a|b|predicted|reference)\x00")
_EXAMPLE = re.compile(r'\{"\w+":\s*(?:"[^"\\]*"|true|false|-?\d+)\}')
DEFAULT_EXAMPLES = {"pairwise": ('{"winner": "A"}', '{"winner": "B"}'), "reference": ('{"score": 1}', '{"score": 0}')}
CHATML = "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n"


def chat_text(tokenizer, content: str) -> str:
    """The text a server builds for one user message plus the generation prompt."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
    return CHATML.format(content=content)


def _meaning(kind: str, example: str):
    try:
        return parse_winner(example) if kind == "pairwise" else parse_match(example)
    except VerdictError:
        return None


@dataclass(frozen=True)
class Layout:
    """A judge prompt as glue text and slots: pieces[0], slot, pieces[2], slot, ..., pieces[-1]
    (odd indices are slot names); `opening` the forced verdict opening ids; `options` (token id,
    meaning) of the valid verdict tokens."""

    pieces: tuple[str, ...]
    opening: tuple[int, ...]
    options: tuple[tuple[int, object], ...]

    def blocks(self, values: dict[str, str], share: str = "all") -> list[str]:
        """The prompt text cut into shareable blocks (concatenated: the whole chat-rendered prompt)."""
        out = [self.pieces[0]]
        cuts = 0
        for i in range(1, len(self.pieces), 2):
            slot = self.pieces[i]
            if slot in CANDIDATE_SLOTS and (share == "all" or (share == "head" and cuts == 0)):
                out.append("")
                cuts += 1
            out[-1] += values[slot] + self.pieces[i + 1]
        return out

    def text(self, values: dict[str, str]) -> str:
        return "".join(self.blocks(values, "none"))


def make_layout(template: str, tokenizer, kind: str) -> Layout:
    """Layout of a template (kind 'pairwise' or 'reference'); verdict examples read from the template."""
    marked = render(template, **{s: f"\x00{s}\x00" for s in ("prefix", "a", "b", "predicted", "reference")})
    parts = _MARK.split(chat_text(tokenizer, marked))
    found = {}
    for ex in _EXAMPLE.findall(template):
        m = _meaning(kind, ex)
        if m is not None and m not in found:
            found[m] = ex
    examples = list(found.values()) if len(found) >= 2 else list(DEFAULT_EXAMPLES[kind])
    ids = [tokenizer.encode(e, add_special_tokens=False) for e in examples]
    n = 0
    while all(len(x) > n for x in ids) and len({x[n] for x in ids}) == 1:
        n += 1
    heads = [x[n] if len(x) > n else None for x in ids]
    if None in heads or len(set(heads)) != len(heads):
        raise ValueError(f"verdict examples {examples} do not differ in one token after a common opening")
    options = tuple((h, _meaning(kind, e)) for h, e in zip(heads, examples))
    return Layout(tuple(parts), tuple(ids[0][:n]), options)


def verdict_probs(logits: torch.Tensor, option_ids, temperature: float, top_p: float) -> torch.Tensor:
    """[n, len(option_ids)] nucleus probabilities of the option tokens: softmax(logits / T) over the
    full vocabulary, top_p applied as a server does (by falling probability, a token is kept while the
    mass before it is < top_p; always at least the top token), renormalised. 1 - sum is the invalid share."""
    x = logits.float()
    ids = torch.as_tensor(list(option_ids), device=x.device)
    if temperature <= 0:
        top = x.argmax(-1, keepdim=True)
        return (top == ids[None]).float()
    probs = torch.softmax(x / temperature, -1)
    if top_p < 1.0:
        sp, idx = probs.sort(-1, descending=True)
        keep = (sp.cumsum(-1) - sp) < top_p
        probs = torch.zeros_like(probs).scatter_(-1, idx, sp * keep)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs[:, ids]


class _TreeJudge:
    """Shared machinery: items -> blocks -> a forest of token blocks -> option probabilities."""

    def __init__(
        self,
        model,
        tokenizer,
        prompt: str,
        kind: str,
        temperature: float = 0.7,
        top_p: float = 0.6,
        share: str = "all",
        max_batch_tokens: int = 131072,
        seed: int = 0,
        attn: str | None = None,
        compile: bool = True,
        fp8: bool = False,
        template: str | None = None,
    ):
        """template: the prompt text itself instead of prompts/<prompt>.txt (benchmarks of variants)."""
        if share not in ("all", "head", "none"):
            raise ValueError(f"share must be all, head or none, got {share!r}")
        self.model, self.tokenizer = model, tokenizer
        self.layout = make_layout(template if template is not None else load_prompt(prompt), tokenizer, kind)
        self.temperature, self.top_p, self.share = temperature, top_p, share
        self.max_batch_tokens, self.seed = max_batch_tokens, seed
        self.forward = TreeForward(model, attn=attn, compile=compile, fp8=fp8)
        self.stats = JudgeStats()
        self.invalid_mass = 0.0  # summed invalid share over every item judged by the model
        self.calls = 0
        self._ids: dict[str, list[int]] = {}
        self._cut_ok: dict[tuple[str, str], bool] = {}
        self.last_batches: list[dict] = []  # per forward: tokens, nodes, leaves (for benchmarks)

    def _tok(self, text: str) -> list[int]:
        ids = self._ids.get(text)
        if ids is None:
            ids = self._ids[text] = self.tokenizer.encode(text, add_special_tokens=False)
        return ids

    def _encode_many(self, texts) -> None:
        """Tokenize the texts not seen yet in one batched call (the Rust tokenizer runs it in parallel)."""
        new = list({t for t in texts if t not in self._ids})
        if new:
            for t, ids in zip(new, self.tokenizer(new, add_special_tokens=False)["input_ids"]):
                self._ids[t] = list(ids)

    @staticmethod
    def _cuts(raw: list[str]) -> list[tuple[str, str]]:
        """(block after the cut, the last 32 characters before it) for cuts 1.. of raw blocks."""
        return [(b, "".join(raw[:j])[-32:]) for j, b in enumerate(raw) if j]

    def _blocks(self, values: dict[str, str], raw: list[str] | None = None) -> list[str]:
        """Blocks, a block joined to the one before it where its cut is not a token boundary of the
        whole prompt (checked on the 32 characters before the cut and the 64 after it)."""
        raw = raw if raw is not None else self.layout.blocks(values, self.share)
        out = [raw[0]]
        for b, tail in self._cuts(raw):
            head = b[:64]  # the tokens at a cut depend on the text near it only
            ok = self._cut_ok.get((tail, head))
            if ok is None:
                ok = self._cut_ok[(tail, head)] = self._tok(tail + head) == self._tok(tail) + self._tok(head)
            if ok:
                out.append(b)
            else:
                out[-1] += b
        return out

    def prompt_ids(self, values: dict[str, str]) -> list[int]:
        """The ids of one whole prompt, as the forest computes them (for checks and baselines)."""
        return [t for b in self._blocks(values) for t in self._tok(b)] + list(self.layout.opening)

    def _forest(self, items: list[dict[str, str]]):
        """Nodes (parent, ids), children lists, and the leaf node of each item."""
        nodes, key_of, children, leaf = [], {}, [[]], []
        raws = [self.layout.blocks(v, self.share) for v in items]
        texts = set()
        for raw in raws:
            texts.update(raw)
            for b, tail in self._cuts(raw):
                if (tail, b[:64]) not in self._cut_ok:
                    texts.update((tail, b[:64], tail + b[:64]))
        self._encode_many(texts)
        for values, raw in zip(items, raws):
            parent = -1
            blocks = self._blocks(values, raw)
            for j, b in enumerate(blocks):
                last = j == len(blocks) - 1
                key = (parent, b, last)
                n = key_of.get(key)
                if n is None:
                    n = key_of[key] = len(nodes)
                    nodes.append((parent, self._tok(b) + (list(self.layout.opening) if last else [])))
                    children.append([])
                    children[parent + 1].append(n)
                parent = n
            leaf.append(parent)
        return nodes, children, leaf

    def _batches(self, nodes, children):
        """Leaves in depth-first order, grouped so each forward holds <= max_batch_tokens tokens
        (a root's block is repeated in each forward that holds its leaves)."""
        order, stack = [], list(reversed(children[0]))
        while stack:
            n = stack.pop()
            if not children[n + 1]:
                order.append(n)
            stack.extend(reversed(children[n + 1]))
        batches, cur, size = [], {}, 0
        for lf in order:
            path, n = [], lf
            while n >= 0 and n not in cur:
                path.append(n)
                n = nodes[n][0]
            extra = sum(len(nodes[m][1]) for m in path)
            if cur and size + extra > self.max_batch_tokens:
                batches.append(cur)
                cur, size, path, n = {}, 0, [], lf
                while n >= 0:
                    path.append(n)
                    n = nodes[n][0]
                extra = sum(len(nodes[m][1]) for m in path)
            for m in reversed(path):
                cur[m] = len(cur)
            size += extra
        if cur:
            batches.append(cur)
        return batches

    @torch.no_grad()
    def probabilities(self, items: list[dict[str, str]]) -> np.ndarray:
        """[len(items), n_options] nucleus probabilities of the verdict tokens (rows sum to <= 1)."""
        if not items:
            return np.zeros((0, len(self.layout.options)))
        was_training = self.model.training
        self.model.eval()
        nodes, children, leaf = self._forest(items)
        opts = [t for t, _ in self.layout.options]
        per_leaf = {}
        self.last_batches = []
        try:
            pad = self.max_batch_tokens if self.forward.attn == "flex" else None
            pending = []
            for batch in self._batches(nodes, children):
                local = [(batch.get(nodes[n][0], -1), nodes[n][1]) for n in batch]
                leaves = [n for n in batch if not children[n + 1]]
                p = pack(local, [batch[n] for n in leaves])
                ready = self.forward.prepare(p, pad)  # host work, while the GPU runs the previous batch
                probs = verdict_probs(self.forward.run(ready), opts, self.temperature, self.top_p)
                pending.append((leaves, probs))
                self.last_batches.append({"tokens": p.tokens, "nodes": len(local), "leaves": len(leaves)})
            for leaves, probs in pending:
                per_leaf.update(zip(leaves, probs.cpu().numpy()))
        finally:
            if was_training:
                self.model.train()
        return np.stack([per_leaf[lf] for lf in leaf])

    def _draw(self, probs: np.ndarray):
        """(option index or None, error) per row: drawn among the valid tokens by their mass."""
        rng = np.random.default_rng([self.seed, self.calls])
        self.calls += 1
        out = []
        for row in probs:
            tot = float(row.sum())
            if not tot > 0:
                out.append((None, "no verdict token in the nucleus"))
                continue
            out.append((int(rng.choice(len(row), p=row / tot)), None))
        return out

    def _raw(self, row) -> str:
        d = {str(m): round(float(p), 6) for (_, m), p in zip(self.layout.options, row)}
        d["invalid"] = round(max(0.0, 1.0 - float(row.sum())), 6)
        return json.dumps(d)


class InprocessPairwiseJudge(_TreeJudge):
    def __init__(self, model, tokenizer, prompt: str = "pairwise_quality", **kw):
        super().__init__(model, tokenizer, prompt, "pairwise", **kw)

    def judge_pairs(self, items: list[tuple[str, str, str]]) -> list[Verdict]:
        """items: (prefix, A, B). Identical A and B: a fair coin flip, without the model."""
        same = [a == b for _, a, b in items]
        todo = [{"prefix": p, "a": a, "b": b} for (p, a, b), s in zip(items, same) if not s]
        probs = self.probabilities(todo)
        drawn = iter(self._draw(probs))
        rows = iter(probs)
        coin = np.random.default_rng([self.seed, self.calls, 1])
        out = []
        for s in same:
            if s:
                raw = '{"A": 0.5, "B": 0.5, "invalid": 0.0, "tie": "identical candidates"}'
                out.append(Verdict("AB"[int(coin.integers(2))], raw))
                continue
            row = next(rows)
            self.invalid_mass += max(0.0, 1.0 - float(row.sum()))
            k, err = next(drawn)
            if k is None:
                out.append(Verdict(None, self._raw(row), err))
                self.stats.invalid += 1
            else:
                out.append(Verdict(self.layout.options[k][1], self._raw(row)))
        self.stats.calls += len(items)
        return out


class InprocessReferenceJudge(_TreeJudge):
    def __init__(self, model, tokenizer, prompt: str = "reference_match", **kw):
        super().__init__(model, tokenizer, prompt, "reference", **kw)
        self.last_raw: list[str] = []

    def judge(self, items: list[tuple[str, str, str]]) -> list[int | None]:
        """items: (prefix, predicted, true suffix) -> 1 / 0 / None (invalid)."""
        probs = self.probabilities([{"prefix": p, "predicted": pr, "reference": r} for p, pr, r in items])
        out: list[int | None] = []
        self.last_raw = []
        for row, (k, _err) in zip(probs, self._draw(probs)):
            self.invalid_mass += max(0.0, 1.0 - float(row.sum()))
            self.last_raw.append(self._raw(row))
            if k is None:
                self.stats.invalid += 1
                out.append(None)
            else:
                out.append(int(self.layout.options[k][1]))
        self.stats.calls += len(items)
        return out


def from_params(kind: str, judge_params, model, tokenizer):
    """Build the in-process judge of a `judge` / `reference_judge` section (backend: inprocess).
    `model: path` / `model: hub` loads the judge model (judge.model_path / judge.hub_id at
    judge.revision) onto the device, beside the policy; `model: base` judges with the model passed
    in, or loads models/base when none is."""
    ip = judge_params.inprocess
    if judge_params.model in ("path", "hub"):
        from thinkmid.engines.factory import pick_device
        from thinkmid.judges import factory

        role = "judge" if kind == "pairwise" else "reference_judge"
        model, tokenizer = factory.load_judge_model(judge_params, dtype=ip.dtype, role=role)
        model.to(pick_device())
    elif model is None or tokenizer is None:  # a stage that passes no model: the base model dir, as `lm` does
        from thinkmid.engines.factory import pick_device
        from thinkmid.models.load import load_model

        model, tokenizer = load_model("models/base", dtype=ip.dtype)
        model.to(pick_device())
    kw = dict(
        temperature=ip.temperature,
        top_p=ip.top_p,
        share=ip.share,
        max_batch_tokens=ip.max_batch_tokens,
        seed=ip.seed,
        fp8=ip.fp8,
    )
    if ip.prompt:
        kw["prompt"] = ip.prompt
    cls = InprocessPairwiseJudge if kind == "pairwise" else InprocessReferenceJudge
    return cls(model, tokenizer, **kw)
