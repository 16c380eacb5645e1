"""The static-cache decoder (the engine's CUDA path, run here on CPU in fp32) against transformers.

Greedy output equals transformers' greedy token for token; returned log-probs equal a teacher-forced
pass; two-stage decoding in one loop equals the two-call `base.two_stage`; the GPU sampler respects
temperature and top-p (statistically, on a small vocabulary).
"""

import torch

from thinkmid.engines.base import SamplingParams, two_stage
from thinkmid.engines.hf import HFEngine
from thinkmid.engines.sampling import nucleus_sample
from thinkmid.models.tokenizer import think_ids

TEXTS = [
    "The river runs",
    "A short one",
    "Population growth in the capital region was slow for",
    "In 1887 the first",
    "x",
]


def _teacher_forced(model, prompt, ids):
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([prompt + ids])).logits[0].float(), -1)
    return logp[len(prompt) - 1 : -1].gather(-1, torch.tensor(ids)[:, None]).squeeze(-1)


def test_fast_greedy_equals_transformers(tiny_model, qwen_tok):
    eng = HFEngine(tiny_model, qwen_tok, batch_size=4, fast=True)  # 4 rows: two batches of prompts
    assert eng._fast_decoder() is not None
    prompts = [qwen_tok.encode(t) for t in TEXTS]
    outs = eng.generate(prompts, SamplingParams(max_new_tokens=20, temperature=0))
    for p, comps in zip(prompts, outs):
        ref = tiny_model.generate(
            torch.tensor([p]), max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=qwen_tok.pad_token_id
        )
        assert comps[0].token_ids == ref[0, len(p) :].tolist()
        assert comps[0].finish_reason == "length"


def test_fast_logprobs_match_teacher_forcing_shared_prefix(tiny_model, qwen_tok):
    eng = HFEngine(tiny_model, qwen_tok, batch_size=8, fast=True)
    prompts = [qwen_tok.encode(t) for t in TEXTS[:3]]
    # top_p 1: the nucleus search is covered by the sampler test, and costs seconds per step on CPU
    outs = eng.generate(prompts, SamplingParams(max_new_tokens=10, n=4, temperature=1.0, top_p=1.0, seed=5))
    for p, comps in zip(prompts, outs):
        assert len(comps) == 4 and len({tuple(c.token_ids) for c in comps}) > 1
        for c in comps:
            ref = _teacher_forced(tiny_model, p, c.token_ids)
            assert torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)


def test_fast_stop_tokens(tiny_model, qwen_tok):
    eng = HFEngine(tiny_model, qwen_tok, batch_size=8, fast=True)
    p = [qwen_tok.encode(TEXTS[0])]
    greedy = eng.generate(p, SamplingParams(max_new_tokens=12, temperature=0))[0][0].token_ids
    stop = greedy[4]
    first = greedy.index(stop)
    c = eng.generate(p, SamplingParams(max_new_tokens=12, temperature=0, stop_token_ids=(stop,)))[0][0]
    assert c.token_ids == greedy[: first + 1] and c.finish_reason == "stop"


def test_fast_two_stage_equals_two_calls(tiny_model, qwen_tok):
    open_id, close_id = think_ids(qwen_tok)
    prompts = [qwen_tok.encode(t) + [open_id] for t in TEXTS[:3]]
    slow = HFEngine(tiny_model, qwen_tok, batch_size=8, fast=False)
    fast = HFEngine(tiny_model, qwen_tok, batch_size=8, fast=True)
    # Greedy, with a thought stop token the greedy path emits for some prompts and not for others.
    probe = slow.generate(prompts, SamplingParams(max_new_tokens=6, temperature=0))
    stop = probe[0][0].token_ids[2]
    su = SamplingParams(max_new_tokens=5, temperature=0)
    for th_stop, closed in ((stop, True), (close_id, False)):  # closed by the model / thought budget spent
        th = SamplingParams(max_new_tokens=6, n=2, temperature=0, stop_token_ids=(th_stop,))
        a = two_stage(slow, prompts, th, su, [close_id])
        b = fast.two_stage(prompts, th, su, [close_id])
        assert b[0][0].closed_by_model is closed
        for ga, gb in zip(a, b):
            for x, y in zip(ga, gb):
                assert x.thought.token_ids == y.thought.token_ids and x.closed_by_model == y.closed_by_model
                assert x.thought.finish_reason == y.thought.finish_reason
                assert x.suffix.token_ids == y.suffix.token_ids and len(y.suffix.token_ids) == 5
                assert torch.allclose(torch.tensor(x.suffix.logprobs), torch.tensor(y.suffix.logprobs), atol=1e-4)


def test_gpu_sampler_temperature_and_top_p():
    torch.manual_seed(0)
    probs = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    logits = probs.log().repeat(20000, 1)
    ones = torch.ones(20000)
    tok, lp = nucleus_sample(logits, ones, ones * 0.75)  # nucleus: 0.4 + 0.25 + 0.15 = 0.8 >= 0.75
    freq = torch.bincount(tok, minlength=6).float() / len(tok)
    assert freq[3:].sum() == 0
    assert torch.allclose(freq[:3], probs[:3] / 0.8, atol=0.015)
    assert torch.allclose(lp, probs.log()[tok], atol=1e-5)  # raw model log-probs, not the nucleus'
    tok, _ = nucleus_sample(logits, ones * 0.5, ones)  # temperature 0.5: p ~ p^2
    freq = torch.bincount(tok, minlength=6).float() / len(tok)
    assert torch.allclose(freq, probs**2 / (probs**2).sum(), atol=0.015)
    tok, _ = nucleus_sample(logits, ones * 0, ones)  # greedy
    assert (tok == 0).all()


def test_fast_suppressed_tokens_equal_the_generic_loop(tiny_model, qwen_tok):
    """Phase 3's suppressed end-of-text takes the static decoder too, and bans exactly what the loop bans."""
    prompts = [qwen_tok.encode(t) for t in TEXTS[:3]]
    slow = HFEngine(tiny_model, qwen_tok, batch_size=8, fast=False)
    fast = HFEngine(tiny_model, qwen_tok, batch_size=8, fast=True)
    free = slow.generate(prompts, SamplingParams(max_new_tokens=6, temperature=0))
    banned = tuple({c[0].token_ids[0] for c in free} | {c[0].token_ids[3] for c in free})  # greedy picks, banned
    params = SamplingParams(max_new_tokens=6, temperature=0, suppress_token_ids=banned)
    a, b = slow.generate(prompts, params), fast.generate(prompts, params)
    for ga, gb in zip(a, b):
        assert ga[0].token_ids == gb[0].token_ids and not set(gb[0].token_ids) & set(banned)
