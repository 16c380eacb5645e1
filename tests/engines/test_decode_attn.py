"""The Triton decode-attention kernel, run by Triton's CPU interpreter, against plain attention.

The interpreter is switched on by TRITON_INTERPRET=1 before Triton is imported, so these run in a
child process; on a GPU the same kernel is compiled (checked by benchmarks/bench_generate.py).
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("triton")

KERNEL = """
import torch
from thinkmid.engines.decode_attn import decode_attention
from thinkmid.engines.attn_backends import attn_math
NEG = float("-inf")
# fp32 online softmax against direct softmax: ~1e-6 apart, but one run in ~100 came out 4e-5 apart on
# the same inputs (BLAS summation order varies between processes); wrong indexing or masking is >1e-2.
TOL = 2e-4
for seed, (n, kvh, m, hd, t, blk) in enumerate([(3, 2, 5, 32, 70, 64), (2, 1, 16, 16, 33, 16), (1, 2, 2, 64, 128, 32)]):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(n, kvh, r, hd, generator=g) for r in (m, t, t))
    bias = torch.zeros(n, t)
    bias[0, : t - 3] = NEG  # left padding longer than a block: a fully masked block first
    o, lse = decode_attention(q, k, v, 0.3, bias=bias, block_n=blk)
    ro, rl = attn_math(q, k, v, bias[:, None, None, :], 0.3)
    assert torch.allclose(o, ro, atol=TOL) and torch.allclose(lse, rl, atol=TOL), (
        seed, "bias", (o - ro).abs().max().item(), (lse - rl).abs().max().item())
    cache = torch.randn(2, n, kvh, t + 9, hd, generator=g)  # strided slices of a bigger cache
    filled = torch.tensor([t - 5])
    o, lse = decode_attention(q, cache[0], cache[1], 0.3, length=filled, block_n=blk)
    ro, rl = attn_math(q, cache[0][:, :, : t - 5], cache[1][:, :, : t - 5], 0.0, 0.3)
    assert torch.allclose(o, ro, atol=TOL) and torch.allclose(lse, rl, atol=TOL), (
        seed, "length", (o - ro).abs().max().item(), (lse - rl).abs().max().item())
print("ok")
"""

DECODER = """
import torch, sys
sys.path.insert(0, "tests")
from conftest import make_tiny_qwen3
from thinkmid.models.tokenizer import qwen3_tokenizer
from thinkmid.engines.base import SamplingParams
from thinkmid.engines.hf import HFEngine
from thinkmid.engines.fastgen import StaticDecoder
model = make_tiny_qwen3()
tok = qwen3_tokenizer()
assert StaticDecoder(model).triton, "the decoder did not take the Triton kernel"
eng = HFEngine(model, tok, batch_size=8, fast=True)
prompts = [tok.encode(t) for t in ("The river runs", "In 1887 the first", "x")]
outs = eng.generate(prompts, SamplingParams(max_new_tokens=12, n=2, temperature=0))
for p, comps in zip(prompts, outs):
    ref = model.generate(torch.tensor([p]), max_new_tokens=12, do_sample=False, eos_token_id=None,
                         pad_token_id=tok.pad_token_id)[0, len(p):].tolist()
    assert all(c.token_ids == ref for c in comps), (c.token_ids, ref)
    with torch.no_grad():
        lp = torch.log_softmax(model(torch.tensor([p + ref])).logits[0].float(), -1)[len(p) - 1 : -1]
    want = lp.gather(-1, torch.tensor(ref)[:, None]).squeeze(-1)
    assert torch.allclose(want, torch.tensor(comps[0].logprobs), atol=1e-4)
print("ok")
"""


def _run(code, *args):
    env = {**os.environ, "TRITON_INTERPRET": "1", "THINKMID_DECODE_ATTN": "triton"}
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]


def test_kernel_matches_plain_attention():
    _run(KERNEL)


def test_decoder_with_kernel_equals_transformers_greedy():
    _run(DECODER)
