"""The engine's thought hooks: an allowed-token mask (slow and fast path, end forced at the cap) and
continuous latent steps before decoding (the fast path agrees with the batched KV-cache loop)."""

import pytest
import torch

from tests.conftest import make_tiny_qwen3
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.hf import HFEngine, generate_latent, latent_prefixes
from thinkmid.thoughts.continuous import ProjectionHead

PROMPTS = [[9707, 11, 1879, 0], [785, 6722], [40, 1079, 264, 1273, 13, 576]]
ALLOWED = (100, 200, 300, 151668)


@pytest.mark.parametrize("fast", [False, True])
def test_allowed_tokens_mask_sampling(qwen_tok, fast):
    eng = HFEngine(make_tiny_qwen3(), qwen_tok, batch_size=8, fast=fast)
    outs = eng.generate(PROMPTS, SamplingParams(max_new_tokens=6, n=2, temperature=1.0, allowed_token_ids=ALLOWED))
    toks = [t for comps in outs for c in comps for t in c.token_ids]
    assert toks and set(toks) <= set(ALLOWED)
    free = eng.generate(PROMPTS, SamplingParams(max_new_tokens=6, n=2, temperature=1.0))
    assert not {t for comps in free for c in comps for t in c.token_ids} <= set(ALLOWED)


@pytest.mark.parametrize("fast", [False, True])
def test_two_stage_masks_the_thought_only_and_forces_the_end(qwen_tok, fast):
    eng = HFEngine(make_tiny_qwen3(), qwen_tok, batch_size=8, fast=fast)
    close = 151668
    th = SamplingParams(max_new_tokens=3, temperature=1.0, stop_token_ids=(close,), allowed_token_ids=(100, 200, 300))
    su = SamplingParams(max_new_tokens=5, temperature=1.0)
    outs = eng.two_stage(PROMPTS, th, su, [close])
    for comps in outs:
        c = comps[0]
        assert set(c.thought.token_ids) <= {100, 200, 300} and len(c.thought.token_ids) == 3  # cap reached, end forced
        assert not c.closed_by_model
        assert not set(c.suffix.token_ids) <= {100, 200, 300}  # the answer is not masked


def test_fast_and_slow_paths_agree_greedy_with_a_mask(qwen_tok):
    model = make_tiny_qwen3()
    p = SamplingParams(max_new_tokens=5, temperature=0.0, allowed_token_ids=tuple(range(1000, 1400)))
    slow = HFEngine(model, qwen_tok, fast=False).generate(PROMPTS, p)
    fast = HFEngine(model, qwen_tok, fast=True).generate(PROMPTS, p)
    assert [o[0].token_ids for o in slow] == [o[0].token_ids for o in fast]


def test_latent_prefixes_match_a_step_by_step_loop(qwen_tok):
    model = make_tiny_qwen3()
    torch.manual_seed(0)
    head = ProjectionHead(model.config.hidden_size)
    embs = latent_prefixes(model, PROMPTS, head, steps=3, after_ids=[151668])
    for prompt, e in zip(PROMPTS, embs):  # one prompt at a time, no padding, no cache
        x = model.get_input_embeddings()(torch.tensor([prompt]))
        for _ in range(3):
            h = model(inputs_embeds=x, output_hidden_states=True).hidden_states[-1][:, -1]
            x = torch.cat([x, head(h)[:, None]], 1)
        assert e.shape[0] == len(prompt) + 4
        torch.testing.assert_close(e[: len(prompt) + 3], x[0], atol=1e-4, rtol=1e-4)


def test_generate_latent_fast_and_slow_agree_and_zero_steps_is_plain(qwen_tok):
    model = make_tiny_qwen3()
    torch.manual_seed(0)
    head = ProjectionHead(model.config.hidden_size)
    p = SamplingParams(max_new_tokens=5, temperature=0.0)
    slow = generate_latent(HFEngine(model, qwen_tok, fast=False), PROMPTS, head, 2, [151668], p)
    fast = generate_latent(HFEngine(model, qwen_tok, fast=True), PROMPTS, head, 2, [151668], p)
    assert [o[0].token_ids for o in slow] == [o[0].token_ids for o in fast]
    for a, b in zip(slow, fast):
        assert a[0].logprobs == pytest.approx(b[0].logprobs, abs=1e-3)
    zero = generate_latent(HFEngine(model, qwen_tok, fast=False), PROMPTS, head, 0, [151668], p)
    plain = HFEngine(model, qwen_tok, fast=False).generate([q + [151668] for q in PROMPTS], p)
    assert [o[0].token_ids for o in zero] == [o[0].token_ids for o in plain]
    for a, b in zip(zero, plain):
        assert a[0].logprobs == pytest.approx(b[0].logprobs, abs=1e-4)
    assert [o[0].logprobs[0] for o in zero] != pytest.approx([o[0].logprobs[0] for o in slow], abs=1e-4)
