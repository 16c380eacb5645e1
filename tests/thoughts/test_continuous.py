"""Continuous thought: teacher positions, the distillation + answer loss, and teacher-state weighting."""

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
