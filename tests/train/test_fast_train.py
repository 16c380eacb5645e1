"""The fused training forward (q/k/v and gate/up as single matmuls, chunked CE) against the HF model.

On the CPU in float64: loss and every gradient equal the plain HF forward + cross entropy on right-
padded rows. On CUDA (skipped here, run on the GPU machine): the compiled path through Dist.lm_loss.
"""

import pytest
import torch

from thinkmid.train.dist import Dist
from thinkmid.train.fast import causal_lm_loss_fused, fused_supported, use_fast_sft
from thinkmid.train.losses import causal_lm_loss


def _batch(seed=0, rows=3, width=21):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 151000, (rows, width), generator=g)
    attn = torch.ones_like(ids)
    attn[1, 15:] = 0
    attn[2, 7:] = 0
    return ids, attn, ids.masked_fill(attn == 0, -100)


def _grads(model):
    out = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    return out


def test_fused_loss_and_grads_equal_hf(tiny_model):
    m = tiny_model.train().double()
    assert fused_supported(m) and not use_fast_sft(m)  # CPU: the stages keep the plain path
    ids, attn, labels = _batch()
    ref = causal_lm_loss(m(input_ids=ids, attention_mask=attn).logits, labels)
    ref.backward()
    g_ref = _grads(m)
    got = causal_lm_loss_fused(m, ids, labels, chunk=16)
    got.backward()
    g_got = _grads(m)
    assert abs(ref.item() - got.item()) < 1e-6
    assert all(torch.allclose(g_ref[n], g_got[n], atol=1e-6) for n in g_ref)


def test_bucket_padding_changes_nothing(tiny_model):
    m = tiny_model.train().double()
    ids, _, labels = _batch(seed=1, width=19)
    a = causal_lm_loss_fused(m, ids, labels)
    padded = torch.nn.functional.pad(ids, (0, 5)), torch.nn.functional.pad(labels, (0, 5), value=-100)
    assert abs(a.item() - causal_lm_loss_fused(m, *padded).item()) < 1e-9


def test_unsupported_shapes_are_refused(tiny_model):
    tiny_model.config.attention_dropout = 0.1
    assert not fused_supported(tiny_model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_dist_lm_loss_takes_the_compiled_fused_path_on_cuda(tiny_model):
    m = tiny_model.float().cuda().train()
    assert use_fast_sft(m)
    ids, attn, labels = _batch(seed=2, width=37)
    batch = {"input_ids": ids, "attention_mask": attn, "labels": labels}
    ref = causal_lm_loss(m(input_ids=ids.cuda(), attention_mask=attn.cuda()).logits, labels.cuda())
    ref.backward()
    g_ref = _grads(m)
    loss, value, tokens = Dist().lm_loss(m, batch)
    loss.backward()
    g_got = _grads(m)
    assert abs(ref.item() - value) < 1e-4 and tokens == int(attn.sum())
    worst = max(((g_ref[n] - g_got[n]).abs().max() / (g_ref[n].abs().max() + 1e-12)).item() for n in g_ref)
    assert worst < 1e-3, worst
