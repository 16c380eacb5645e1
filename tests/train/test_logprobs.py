import pytest
import torch

from thinkmid.train.logprobs import sequence_logprobs

PAD = 151643


def _reference(model, prompt, comp):
    """Unbatched: one row, no padding, full log_softmax."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + comp])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return torch.stack([logp[len(prompt) - 1 + j, t] for j, t in enumerate(comp)])


def _rows():
    g = torch.Generator().manual_seed(0)
    lens = [(5, 3), (1, 7), (9, 1), (3, 0), (2, 4)]
    prompts = [torch.randint(0, 151000, (p,), generator=g).tolist() for p, _ in lens]
    comps = [torch.randint(0, 151000, (c,), generator=g).tolist() for _, c in lens]
    return prompts, comps


@pytest.mark.parametrize("micro_batch", [16, 2])
def test_batched_matches_unbatched(tiny_model, micro_batch):
    prompts, comps = _rows()
    with torch.no_grad():
        lp, mask = sequence_logprobs(tiny_model, prompts, comps, PAD, micro_batch=micro_batch)
    assert lp.shape == mask.shape == (5, 7)
    for r, (p, c) in enumerate(zip(prompts, comps)):
        assert mask[r].tolist() == [1.0] * len(c) + [0.0] * (7 - len(c))
        assert torch.all(lp[r, len(c) :] == 0)
        if c:
            torch.testing.assert_close(lp[r, : len(c)], _reference(tiny_model, p, c), atol=1e-5, rtol=1e-5)


def test_loss_mask_and_gradients(tiny_model):
    prompts, comps = _rows()
    lm = [[1] * (len(c) - 1) + [0] if c else [] for c in comps]  # e.g. drop an inserted </think>
    lp, mask = sequence_logprobs(tiny_model, prompts, comps, PAD, loss_mask=lm)
    assert mask[0].tolist()[:3] == [1.0, 1.0, 0.0]
    (lp * mask).sum().backward()
    assert tiny_model.get_input_embeddings().weight.grad is not None


def test_without_logits_to_keep_matches(tiny_model):
    prompts, comps = _rows()

    class Plain(torch.nn.Module):  # a model whose forward does not accept logits_to_keep
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask=None, use_cache=False):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)

    with torch.no_grad():
        a, _ = sequence_logprobs(tiny_model, prompts, comps, PAD)
        b, _ = sequence_logprobs(Plain(tiny_model), prompts, comps, PAD)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(tiny_model, dtype):
    prompts, comps = _rows()
    with torch.no_grad():
        want, _ = sequence_logprobs(tiny_model, prompts, comps, PAD)
        got, mask = sequence_logprobs(tiny_model.to("cuda", dtype), prompts, comps, PAD)
    assert got.device.type == "cuda" and got.dtype == torch.float32
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(got.cpu(), want, atol=tol, rtol=tol)


def test_bad_shapes(tiny_model):
    with pytest.raises(ValueError):
        sequence_logprobs(tiny_model, [[1]], [[2], [3]], PAD)
    with pytest.raises(ValueError):
        sequence_logprobs(tiny_model, [[]], [[2]], PAD)
    with pytest.raises(ValueError):
        sequence_logprobs(tiny_model, [[1]], [[2, 3]], PAD, loss_mask=[[1]])
