import torch

from thinkmid.engines.base import SamplingParams, two_stage
from thinkmid.engines.hf import HFEngine, sample_next
from thinkmid.models.tokenizer import think_ids


def _prompts(tok):
    texts = ["The river runs", "A short one", "Population growth in the capital region was slow for"]
    return [tok.encode(t) for t in texts]


def test_greedy_matches_transformers_generate(tiny_model, qwen_tok):
    eng = HFEngine(tiny_model, qwen_tok, batch_size=8)
    prompts = _prompts(qwen_tok)
    outs = eng.generate(prompts, SamplingParams(max_new_tokens=12, temperature=0))
    for p, comps in zip(prompts, outs):
        ref = tiny_model.generate(
            torch.tensor([p]), max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=qwen_tok.pad_token_id
        )
        assert comps[0].token_ids == ref[0, len(p) :].tolist()


def test_logprobs_match_teacher_forcing(tiny_model, qwen_tok):
    eng = HFEngine(tiny_model, qwen_tok, batch_size=4)
    prompts = _prompts(qwen_tok)
    outs = eng.generate(prompts, SamplingParams(max_new_tokens=8, n=3, temperature=1.0, seed=3))
    for p, comps in zip(prompts, outs):
        assert len(comps) == 3
        for c in comps:
            full = torch.tensor([p + c.token_ids])
            with torch.no_grad():
                logp = torch.log_softmax(tiny_model(full).logits[0].float(), -1)
            ref = logp[len(p) - 1 : -1].gather(-1, torch.tensor(c.token_ids)[:, None]).squeeze(-1)
            assert torch.allclose(ref, torch.tensor(c.logprobs), atol=1e-4)


def test_stop_tokens_end_rows_and_samples_differ(tiny_model, qwen_tok):
    eng = HFEngine(tiny_model, qwen_tok, batch_size=16)
    p = _prompts(qwen_tok)[:1]
    # Make every sampled token a stop token except for a few: rows must stop at the first one.
    comps = eng.generate(p, SamplingParams(max_new_tokens=20, n=8, temperature=1.0, seed=1))[0]
    stop = comps[0].token_ids[2]
    comps2 = eng.generate(p, SamplingParams(max_new_tokens=20, n=8, temperature=1.0, seed=1, stop_token_ids=(stop,)))[0]
    assert comps2[0].token_ids == comps[0].token_ids[:3] and comps2[0].finish_reason == "stop"
    assert len({tuple(c.token_ids) for c in comps}) > 1


def test_top_p_keeps_only_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(4000, 1)
    gen = torch.Generator().manual_seed(0)
    tok, _ = sample_next(logits, 1.0, 0.7, gen)
    counts = torch.bincount(tok, minlength=4).float() / 4000
    assert counts[2] == 0 and counts[3] == 0  # outside the 0.7 nucleus (0.5 + 0.3 covers it)
    assert abs(counts[0] - 0.5 / 0.8) < 0.04
    tok, _ = sample_next(logits, 0.5, 1.0, gen)  # temperature 0.5 sharpens: p ~ p^2
    counts = torch.bincount(tok, minlength=4).float() / 4000
    expect = torch.tensor([0.25, 0.09, 0.0225, 0.0025]) / 0.365
    assert torch.allclose(counts, expect, atol=0.04)


def test_two_stage_inserts_close_tag(tiny_model, qwen_tok):
    open_id, close_id = think_ids(qwen_tok)
    eng = HFEngine(tiny_model, qwen_tok, batch_size=8)
    prompts = [qwen_tok.encode("Some prefix text") + [open_id]]
    out = two_stage(
        eng,
        prompts,
        SamplingParams(max_new_tokens=5, n=2, stop_token_ids=(close_id,)),
        SamplingParams(max_new_tokens=6),
        [close_id],
    )
    assert len(out[0]) == 2
    for c in out[0]:
        assert close_id not in c.thought.token_ids and len(c.suffix.token_ids) == 6
