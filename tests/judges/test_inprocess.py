"""The in-process judge (shared-prefix tree forward) against a plain transformers forward, on CPU in fp32."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch

from thinkmid.engines.treeforward import TreeForward
from thinkmid.engines.treepack import (
    dense_mask,
    kv_blocks,
    pack,
    padded,
    padded_ends,
    visible,
    visible_interval,
)
from thinkmid.judges.inprocess import (
    InprocessPairwiseJudge,
    InprocessReferenceJudge,
    make_layout,
    verdict_probs,
)
from thinkmid.judges.pairwise import score_pools
from thinkmid.judges.parse import load_prompt, render

CHATML_JINJA = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
PREFIXES = ["The river rose all night, and by morning the village", "Prices of copper fell in March as"]
POOL = [
    " was under water.",  # leading space, the usual continuation
    "\nThe bridge held.",  # a leading newline merges with the glue's newline: the cut must move
    "nobody slept.\n",  # a trailing newline
    " demand from {b} builders slowed",  # a slot name inside a value is never substituted
]
SCORE_TEMPLATE = (
    "Text:\n{prefix}\nTrue:\n{reference}\nPredicted:\n{predicted}\n"
    'Answer {"score": 1} if they match, else {"score": 0}.'
)


@pytest.fixture(scope="module")
def chat_tok():
    from thinkmid.models.tokenizer import qwen3_tokenizer

    tok = qwen3_tokenizer()
    tok.chat_template = CHATML_JINJA
    return tok


@pytest.fixture(scope="module")
def model():
    from tests.conftest import make_tiny_qwen3

    return make_tiny_qwen3(seed=3).float()


def _pairs():
    return [(p, a, b) for p in PREFIXES for a in POOL for b in POOL if a != b]


def _plain(model, tok, text: str, opening: str, option_ids, temperature=0.7, top_p=0.6):
    """A plain transformers forward on the whole chat-rendered prompt + the forced opening."""
    full = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)
    ids = tok.encode(full + opening, add_special_tokens=False)
    with torch.no_grad():
        logits = model(torch.tensor([ids]), logits_to_keep=1).logits[:, -1]
    return ids, verdict_probs(logits, option_ids, temperature, top_p)[0].numpy()


def test_layout_reads_the_verdict_from_the_template(chat_tok):
    lay = make_layout(load_prompt("pairwise_quality"), chat_tok, "pairwise")
    assert chat_tok.decode(list(lay.opening)) == '{"winner": "'
    assert [(chat_tok.decode([t]), m) for t, m in lay.options] == [("A", "A"), ("B", "B")]
    lay = make_layout(SCORE_TEMPLATE, chat_tok, "reference")
    assert chat_tok.decode(list(lay.opening)) == '{"score": '
    assert [(chat_tok.decode([t]), m) for t, m in lay.options] == [("1", 1), ("0", 0)]
    assert lay.pieces[0].startswith("<|im_start|>user\n") and lay.pieces[-1].endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "share,max_tokens,attn",
    [
        ("all", 131072, "dense"),
        ("head", 131072, "dense"),
        ("none", 131072, "dense"),
        ("all", 500, "dense"),
        ("all", 500, "flex"),  # the CUDA path's kernel and mask rule (interval: the judge packs depth-first)
    ],
)
def test_pairwise_equals_plain_forward(model, chat_tok, share, max_tokens, attn):
    judge = InprocessPairwiseJudge(model, chat_tok, share=share, max_batch_tokens=max_tokens, attn=attn)
    if attn == "flex":
        forests = judge._forest([{"prefix": p, "a": a, "b": b} for p, a, b in _pairs()])
        batch = judge._batches(forests[0], forests[1])[0]
        local = [(batch.get(forests[0][n][0], -1), forests[0][n][1]) for n in batch]
        assert "ends" in judge.forward.prepare(pack(local, [0]), max_tokens)
    items = _pairs()
    got = judge.probabilities([{"prefix": p, "a": a, "b": b} for p, a, b in items])
    tpl = load_prompt("pairwise_quality")
    opts = [t for t, _ in judge.layout.options]
    plain_tokens = 0
    for (p, a, b), row in zip(items, got):
        ids, want = _plain(model, chat_tok, render(tpl, prefix=p, a=a, b=b), '{"winner": "', opts)
        assert judge.prompt_ids({"prefix": p, "a": a, "b": b}) == ids
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-9)
        plain_tokens += len(ids)
    packed = sum(b["tokens"] for b in judge.last_batches)
    if share == "none":
        assert packed == plain_tokens
    else:  # each prefix's head (and with 'all' each first candidate's block) computed once per forward
        assert packed < plain_tokens * (0.6 if max_tokens > 1000 else 0.9)
    if max_tokens < 1000:
        assert len(judge.last_batches) > 2


def test_reference_judge_same_path(model, chat_tok, tmp_path, monkeypatch):
    from thinkmid.judges import parse

    (tmp_path / "score_ref.txt").write_text(SCORE_TEMPLATE)
    monkeypatch.setattr(parse, "PROMPTS", tmp_path)
    parse.load_prompt.cache_clear()
    try:
        judge = InprocessReferenceJudge(model, chat_tok, prompt="score_ref", temperature=1.0, top_p=1.0)
    finally:
        parse.load_prompt.cache_clear()
    items = [(p, pred, POOL[0]) for p in PREFIXES for pred in POOL]
    got = judge.probabilities([{"prefix": p, "predicted": pr, "reference": r} for p, pr, r in items])
    for (p, pr, r), row in zip(items, got):
        _, want = _plain(
            model,
            chat_tok,
            render(SCORE_TEMPLATE, prefix=p, predicted=pr, reference=r),
            '{"score": ',
            [t for t, _ in judge.layout.options],
            1.0,
            1.0,
        )
        np.testing.assert_allclose(row, want, rtol=1e-4, atol=1e-12)
    verdicts = judge.judge(items)
    assert all(v in (0, 1) for v in verdicts) and judge.stats.calls == len(items)
    assert judge.invalid_mass > 0.9 * len(items)  # a random judge puts its mass elsewhere: reported, not hidden


def _forest(seed=0):
    r = random.Random(seed)
    nodes = []
    for _ in range(3):
        root = len(nodes)
        nodes.append((-1, [r.randrange(100) for _ in range(r.randrange(20, 70))]))
        for _ in range(r.randrange(1, 4)):
            mid = len(nodes)
            nodes.append((root, [r.randrange(100) for _ in range(r.randrange(1, 30))]))
            for _ in range(r.randrange(0, 4)):
                nodes.append((mid, [r.randrange(100) for _ in range(r.randrange(1, 25))]))
    return nodes


def test_kv_block_lists_are_exactly_the_visible_blocks():
    p = pack(_forest(), [0])
    bs, length = 16, -(-p.tokens // 16) * 16 + 16
    cnt, idx, fcnt, fidx = kv_blocks(p, length, block=bs)
    t = torch.arange(length)
    m = visible(t[:, None], t[None, :], *padded(p, length, bs))  # the rule flex applies inside blocks
    assert torch.equal(m[: p.tokens, : p.tokens], dense_mask(p))
    assert p.ends is not None  # _forest packs depth-first: the interval rule is the same mask, padding included
    assert torch.equal(visible_interval(t[:, None], t[None, :], padded_ends(p, length, bs)), m)
    blocks = m.view(length // bs, bs, length // bs, bs)
    want, whole = blocks.any(3).any(1), blocks.all(3).all(1)
    n_full = 0
    for qb in range(length // bs):
        part, full = idx[qb, : cnt[qb]].tolist(), fidx[qb, : fcnt[qb]].tolist()
        assert sorted(part + full) == want[qb].nonzero().flatten().tolist()
        assert all(whole[qb, kb] for kb in full)  # a block that skips the mask is visible throughout
        n_full += len(full)
    assert n_full > 0


def _not_preorder(nodes):
    """The same forest with one leaf moved to the end: parents still come first, but its parent's
    subtree is no longer one token range."""
    leaf = next(i for i in range(len(nodes)) if nodes[i][0] >= 0 and all(par != i for par, _ in nodes))
    order = [i for i in range(len(nodes)) if i != leaf] + [leaf]
    new = {old: n for n, old in enumerate(order)}
    return [(new[nodes[i][0]] if nodes[i][0] >= 0 else -1, nodes[i][1]) for i in order]


def test_subtree_ends_only_for_preorder_packings():
    p = pack(_forest(1), [0])
    for n, (s, e) in enumerate(p.spans):  # a node's subtree: from its start to ends, nothing else inside
        inside = [m for m, path in enumerate(p.paths) if n in path]
        assert int(p.ends[s]) == max(p.spans[m][1] for m in inside)
        assert sum(p.spans[m][1] - p.spans[m][0] for m in inside) == int(p.ends[s]) - s
    assert pack(_not_preorder(_forest(1)), [0]).ends is None


@pytest.mark.parametrize("mask", ["interval", "ancestors"])
def test_flex_path_equals_dense_path(model, mask):
    flex = TreeForward(model, attn="flex", mask=mask)
    for seed, pad_to in ((1, None), (1, 1000), (2, 1000)):  # the last reuses the mask buffers of the second
        nodes = _forest(seed)
        leaves = [i for i in range(len(nodes)) if all(par != i for par, _ in nodes)]
        p = pack(nodes, leaves)
        assert ("ends" in flex.prepare(p, pad_to)) == (mask == "interval")
        dense = TreeForward(model, attn="dense")(p)
        torch.testing.assert_close(flex(p, pad_to), dense, rtol=1e-4, atol=1e-5)
        flex.full_blocks = False  # every block through the mask: the same numbers
        torch.testing.assert_close(flex(p, pad_to), dense, rtol=1e-4, atol=1e-5)
        flex.full_blocks = True
        if mask == "interval":  # a packing out of preorder falls back to the ancestor table, same numbers
            shuffled = _not_preorder(nodes)
            q = pack(shuffled, [i for i in range(len(shuffled)) if all(par != i for par, _ in shuffled)])
            assert "ends" not in flex.prepare(q, pad_to)
            torch.testing.assert_close(flex(q, pad_to), TreeForward(model, attn="dense")(q), rtol=1e-4, atol=1e-5)
        modules = TreeForward(model, attn="dense")
        assert modules.functional  # Qwen3 layers run as functions of their weights; the module path agrees
        modules.functional = False
        torch.testing.assert_close(modules(p), dense, rtol=1e-5, atol=1e-6)
        for n, row in zip(leaves, dense):  # and every leaf equals a plain forward of its path
            path = [t for a in p.paths[n] for t in nodes[a][1]]
            with torch.no_grad():
                want = model(torch.tensor([path]), logits_to_keep=1).logits[0, -1]
            torch.testing.assert_close(row, want, rtol=1e-4, atol=1e-5)


def test_verdict_probs_temperature_and_top_p():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    for t in (0.5, 0.7, 1.0):
        p = torch.softmax(logits / t, -1)[0]
        got = verdict_probs(logits, [1, 2], t, 1.0)[0]
        torch.testing.assert_close(got, p[[1, 2]])
        assert abs(float(got[0] / got[1]) - np.exp(0.5 / t)) < 1e-4
    p = torch.softmax(logits / 0.7, -1)[0]  # [0.72, 0.17, 0.08, ...]: the nucleus at 0.6 is token 0 only
    assert verdict_probs(logits, [0, 1], 0.7, 0.6).tolist() == [[1.0, 0.0]]
    top = float(p[0] + p[1])  # top_p 0.85: tokens 0, 1 (mass before 1 is 0.72 < 0.85), 2 (0.89 > 0.85: out)
    want = torch.stack([p[1] / top, torch.tensor(0.0)])
    torch.testing.assert_close(verdict_probs(logits, [1, 2], 0.7, 0.85)[0], want)
    assert verdict_probs(logits, [1, 2], 0.0, 0.6).tolist() == [[0.0, 0.0]]  # greedy token 0: invalid


def test_draws_follow_the_probabilities(model, chat_tok):
    judge = InprocessPairwiseJudge(model, chat_tok, seed=7)
    rows = np.array([[0.3, 0.1], [0.05, 0.45], [0.0, 0.0]])
    n = 20000
    counts = np.zeros((3, 3))
    big = np.repeat(rows, n, axis=0)
    for i, (k, err) in enumerate(judge._draw(big)):
        counts[i // n, 2 if k is None else k] += 1
    # P(first) = 0.75 and 0.1; sd of a frequency over 20,000 draws <= 0.0036: 0.02 is > 5 sd
    assert abs(counts[0, 0] / n - 0.75) < 0.02 and abs(counts[1, 0] / n - 0.1) < 0.02
    assert counts[2, 2] == n  # no verdict token in the nucleus: invalid, never guessed
    # through the model: one item asked n times is drawn n times, by its own probabilities
    item = (PREFIXES[0], POOL[0], POOL[2])
    verdicts = judge.judge_pairs([item] * 4000)
    pa, pb = judge.probabilities([{"prefix": item[0], "a": item[1], "b": item[2]}])[0]
    freq = sum(v.winner == "A" for v in verdicts) / 4000
    assert abs(freq - pa / (pa + pb)) < 0.04  # sd <= 0.008
    assert judge.stats.calls == 4000 and judge.stats.invalid == 0


def test_duplicate_candidate_is_a_coin_flip(model, chat_tok):
    judge = InprocessPairwiseJudge(model, chat_tok, seed=1)
    pool = [POOL[0], POOL[2], POOL[0]]  # candidates 0 and 2 are the same text
    scores = score_pools([PREFIXES[0]], [pool], judge, random.Random(0))
    assert len(scores[0][0]) == 3 and scores[0][1] == 0
    verdicts = judge.judge_pairs([(PREFIXES[0], POOL[1], POOL[1])] * 400)
    wins_a = sum(v.winner == "A" for v in verdicts)
    assert 140 < wins_a < 260 and all(v.valid and "identical" in v.raw for v in verdicts)


def test_factory_and_params(model, chat_tok):
    from pydantic import ValidationError

    from thinkmid.config import JudgeParams
    from thinkmid.judges.factory import make_pairwise_judge, make_reference_judge

    jp = JudgeParams(backend="inprocess", inprocess={"temperature": 0.5, "share": "head"})
    pj = make_pairwise_judge(jp, model, chat_tok)
    assert isinstance(pj, InprocessPairwiseJudge) and pj.temperature == 0.5 and pj.share == "head"
    assert pj.top_p == 0.6
    rj = make_reference_judge(jp, model, copy.deepcopy(chat_tok))
    assert isinstance(rj, InprocessReferenceJudge)
    with pytest.raises(ValidationError):
        JudgeParams(backend="inprocess", inprocess={"top_p": 0})
    with pytest.raises(ValidationError, match="hub_id is not set"):
        JudgeParams(backend="inprocess", model="hub")


def test_hub_judge_loads_through_the_base_loader(model, chat_tok, monkeypatch):
    """model: hub goes through load_base (hub or cache at the pinned revision, in inprocess.dtype), and
    a model not in the cache offline is one error naming the role's key."""
    from thinkmid.config import JudgeParams
    from thinkmid.errors import InputError
    from thinkmid.judges.factory import make_reference_judge
    from thinkmid.models import load

    jp = JudgeParams(backend="inprocess", model="hub", hub_id="Qwen/Qwen3-4B-Instruct-2507", revision="abc123")
    seen = []
    monkeypatch.setattr(load, "load_base", lambda spec, key: seen.append((spec, key)) or (model, chat_tok))
    judge = make_reference_judge(jp)
    spec, key = seen[0]
    assert isinstance(judge, InprocessReferenceJudge) and judge.model is model
    assert (spec.source, spec.hub_id, spec.revision, spec.dtype, key) == (
        "hub",
        "Qwen/Qwen3-4B-Instruct-2507",
        "abc123",
        "bfloat16",
        "reference_judge.hub_id",
    )
    monkeypatch.undo()
    with pytest.raises(InputError, match=r"^judge\.hub_id: could not load 'thinkmid-test/no-such-judge'"):
        load.load_base(
            spec.model_copy(update={"hub_id": "thinkmid-test/no-such-judge"}), offline=True, key="judge.hub_id"
        )


def test_fp8_linear_layers_stay_close(model):
    """The fp8 option (fp8 weights with row scales, per-token fp8 activations) tracks the fp32 forward."""
    nodes = _forest(3)
    leaves = [i for i in range(len(nodes)) if all(par != i for par, _ in nodes)]
    p = pack(nodes, leaves)
    ref = TreeForward(model, attn="dense")(p)
    fp8 = TreeForward(model, attn="dense", fp8=True)
    assert fp8.w8[0]["q_proj"][0].dtype == torch.float8_e4m3fn
    got = fp8(p)
    cos = torch.nn.functional.cosine_similarity(got - got.mean(-1, keepdim=True), ref - ref.mean(-1, keepdim=True), -1)
    assert cos.min() > 0.98 and not torch.equal(got, ref)
