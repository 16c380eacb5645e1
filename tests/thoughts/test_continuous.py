"""Continuous thought: teacher positions, the distillation + answer loss, and teacher-state weighting."""

import math

import pytest
import torch

from tests.conftest import make_tiny_qwen3
from thinkmid.config import ContinuousThoughtParams
from thinkmid.thoughts import continuous as ct
from thinkmid.thoughts.tasks import Problem

PROBLEMS = [Problem("2+3", "2+3=5", "5"), Problem("4+4", "4+4=8", "8")]


def test_spaced_positions():
    assert ct.spaced_positions(8, 4) == [1, 3, 5, 7]
    assert ct.spaced_positions(3, 4) == [0, 1, 2, 2]
    assert ct.spaced_positions(1, 2) == [0, 0]


def _module():
    lm = make_tiny_qwen3()
    torch.manual_seed(0)
    return ct.LatentLM(lm, ct.ProjectionHead(lm.config.hidden_size))


@pytest.mark.parametrize("distill,loss", [("per_step", "smooth_l1"), ("final_step", "l1")])
def test_latent_forward_trains_head_and_model(qwen_tok, distill, loss):
    m = _module()
    p = ContinuousThoughtParams(latent_steps=3, distill=distill, distill_loss=loss)
    targets = torch.randn(2, 3, m.lm.config.hidden_size)
    total, ntok = ct.latent_forward(m, qwen_tok, PROBLEMS, 3, targets, torch.ones(2), p)
    ce_only, _ = ct.latent_forward(m, qwen_tok, PROBLEMS, 3, targets, torch.zeros(2), p)
    assert ntok == sum(len(qwen_tok.encode(f"A: {q.answer}")) + 1 for q in PROBLEMS)
    assert total.item() > ce_only.item()  # the distillation term is there, and weight 0 removes it
    total.backward()
    assert m.head.mlp[0].weight.grad.abs().sum() > 0
    assert m.lm.model.layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0


def test_teacher_states_weighting(qwen_tok):
    lm = make_tiny_qwen3()
    rolls = [[([100, 101, 102], [9], True), ([200], [9], False)], [([300, 301], [9], False)]]
    t_all, w_all, _ = ct.teacher_states(lm, qwen_tok, PROBLEMS, rolls, 2, "uniform")
    t_ok, w_ok, stats = ct.teacher_states(lm, qwen_tok, PROBLEMS, rolls, 2, "correct")
    assert w_all.tolist() == [1.0, 1.0] and w_ok.tolist() == [1.0, 0.0]
    assert stats == {"rollout_accuracy": pytest.approx(1 / 3), "distilled_problems": 1}
    assert not torch.allclose(t_all[0], t_ok[0])  # the wrong rollout is averaged in only when uniform
    assert t_ok.shape == (2, 2, lm.config.hidden_size)


def test_teacher_states_batched_equals_one_rollout_at_a_time(qwen_tok):
    lm = make_tiny_qwen3()
    rolls = [[([100, 101, 102, 103], [9], True), ([200], [9], True)], [([300, 301], [9, 10], True)]]
    one, w1, _ = ct.teacher_states(lm, qwen_tok, PROBLEMS, rolls, [2, 3], "uniform", batch_size=1)
    many, w2, _ = ct.teacher_states(lm, qwen_tok, PROBLEMS, rolls, [2, 3], "uniform", batch_size=8)
    assert sorted(many) == [2, 3] and many[3].shape == (2, 3, lm.config.hidden_size)
    for k in (2, 3):  # right padding of the shorter rollouts changes none of the read states
        torch.testing.assert_close(one[k], many[k], rtol=1e-4, atol=1e-5)
    assert w1.tolist() == w2.tolist() == [1.0, 1.0]
    single, _, _ = ct.teacher_states(lm, qwen_tok, PROBLEMS, rolls, 3, "uniform")
    torch.testing.assert_close(single, many[3])


def test_answer_loss_reaches_the_first_latent_step(qwen_tok):
    """The latent feedback path trains: with no distillation at all, the answer's CE alone gives the
    projection head a gradient, which it can only get through the fed-back latent embeddings."""
    m = _module()
    p = ContinuousThoughtParams(latent_steps=3, distill_weight=0.0)
    loss, _ = ct.latent_forward(m, qwen_tok, PROBLEMS, 3, None, None, p)
    loss.backward()
    assert m.head.mlp[0].weight.grad.abs().sum() > 0 and m.head.mlp[3].weight.grad.abs().sum() > 0
    m.zero_grad()
    loss0, _ = ct.latent_forward(m, qwen_tok, PROBLEMS, 0, None, None, p)  # zero steps: the ablation, no head
    loss0.backward()
    assert m.head.mlp[0].weight.grad is None or m.head.mlp[0].weight.grad.abs().sum() == 0


def test_step_schedule():
    assert {ct.step_schedule(4, [0, 1, 4], False)(list(range(i, i + 3))) for i in range(50)} == {4}
    pick = ct.step_schedule(4, [0, 1, 2, 4], True)
    seen = [pick(list(range(i, i + 3))) for i in range(400)]
    assert set(seen) == {0, 1, 2, 4} and 0.35 < seen.count(4) / len(seen) < 0.65
    assert pick([5, 9, 2]) == pick([5, 9, 2])  # a resumed phase makes the same choice


def test_fit_head_maps_states_to_the_next_thought_embedding(qwen_tok):
    lm = make_tiny_qwen3()
    head = ct.ProjectionHead.for_model(lm)
    rolls = [[([100, 101, 102, 103], [9], True)], [([300, 301, 302], [9], False)]]  # only correct rollouts count
    before = ct.fit_head(head, lm, qwen_tok, PROBLEMS, rolls, steps=1)
    after = ct.fit_head(head, lm, qwen_tok, PROBLEMS, rolls, steps=200)
    assert after < before * 0.5
    assert lm.model.layers[0].self_attn.q_proj.weight.grad is None  # the model itself stays as it was
    assert math.isnan(ct.fit_head(head, lm, qwen_tok, PROBLEMS, [[], []], steps=5))  # nothing to fit on


def test_head_starts_at_the_embedding_scale():
    lm = make_tiny_qwen3()
    head = ct.ProjectionHead.for_model(lm)
    out = head(torch.randn(4, lm.config.hidden_size))
    rms = lm.get_input_embeddings().weight.pow(2).mean().sqrt()
    torch.testing.assert_close(out.pow(2).mean().sqrt(), rms, rtol=0.05, atol=0)
